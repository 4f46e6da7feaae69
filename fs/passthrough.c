/* fs/passthrough.c — see passthrough.h.
 *
 * The kernel offers passthrough in INIT (flags2 bit FUSE_PASSTHROUGH) and
 * takes it if the reply sets that bit with a stacking depth; a file to
 * pass reads to is registered on the device (an ioctl, CAP_SYS_ADMIN) for
 * a backing id, which an OPEN's reply names with FOPEN_PASSTHROUGH.
 * libfuse 3.14 builds those replies without the fields (they are padding
 * in its headers), so the writer given to fuse_session_custom_io() fills
 * them in on the way out. The wire layout below is the kernel's ABI
 * (<linux/fuse.h>, protocol 7.40), spelled out since Debian 12's headers
 * predate it.
 *
 * The kernel binds an inode to one backing file while any passthrough
 * open of it lasts, and refuses an open of the other kind meanwhile: so
 * opens of each kind are counted, and an inode is opened the kind it is
 * open already. The first open that finds its message whole in the
 * cache (up to 1 MiB, fetched at open) registers the file, and the
 * registration is kept after the last close for the opens after (up to
 * PT_KEPT_MAX, and until the store drops the message: a registered file
 * holds its blocks). An inode read through imapfs because its message
 * was not whole (a larger one) stays so for the mount: the kernel has
 * its pages.
 *
 * Locks: the store calls back with its own lock let go, but maybe from
 * under the account's; so nothing of cache/ is called with pt->lock held.
 */
#include "fs/passthrough.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fs/mount.h"

#define PT_FLAGS2_PASSTHROUGH (1u << (37 - 32)) /* FUSE_PASSTHROUGH */
#define PT_FOPEN_PASSTHROUGH  (1u << 7)		/* FOPEN_PASSTHROUGH */
/* statfs() types of stacking filesystems the cache may sit on. */
#define PT_OVERLAYFS_MAGIC 0x794c7630
#define PT_ECRYPTFS_MAGIC  0xf15f

struct pt_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define PT_IOC_BACKING_OPEN  _IOW(229, 1, struct pt_backing_map)
#define PT_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

/* fuse_init_out as of 7.40: flags2 and max_stack_depth follow
 * map_alignment, where libfuse 3.14 has flags2 and padding. */
struct pt_init_out {
	uint32_t major, minor, max_readahead, flags;
	uint16_t max_background, congestion_threshold;
	uint32_t max_write, time_gran;
	uint16_t max_pages, map_alignment;
	uint32_t flags2, max_stack_depth;
	uint16_t request_timeout, unused[11];
};

struct pt_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;
};

/* Registered messages kept while no file has them open (each costs
 * the kernel a struct file, some 300 bytes). */
#define PT_KEPT_MAX 16384

/* A registered message. */
typedef struct {
	fuse_ino_t ino;
	guint32 uidvalidity; /* of the message registered */
	int32_t id;	     /* its backing id */
	guint opens;	     /* files open on it */
	gboolean gone;	     /* the store dropped it while open */
	GList idle;	     /* in FsPassthrough.idle while none is */
} PtInode;

struct FsPassthrough {
	CacheAccount *acct;
	int fd;
	guint64 init_unique; /* the INIT request, until answered */
	gint offered;	     /* the kernel offered passthrough */
	gint agreed;	     /* and we asked for it in the reply */
	gint refused;	     /* registering a file failed: not again */
	guint32 stack_depth; /* asked for at INIT */
	GMutex lock;
	GHashTable *inodes; /* fuse_ino_t -> PtInode */
	GHashTable *paged;  /* fuse_ino_t read through imapfs */
	GHashTable *plain;  /* fuse_ino_t -> files open through imapfs */
	GQueue idle;	    /* PtInode, registered and not open, oldest
			     * first */
};

/* The backing id the reply to the OPEN this thread is answering names;
 * set by fs_passthrough_open() just before the reply is written. */
static __thread int32_t reply_backing_id;

/* libfuse hands the I/O functions the session's userdata: the mount. */
static FsPassthrough *pt_of(void *userdata)
{
	return ((FsMount *)userdata)->passthrough;
}

static ssize_t pt_read(int fd, void *buf, size_t len, void *userdata)
{
	FsPassthrough *pt = pt_of(userdata);
	ssize_t n = read(fd, buf, len);
	const struct fuse_in_header *in = buf;

	if (n >= (ssize_t)(sizeof(*in) + sizeof(struct fuse_init_in)) &&
	    in->opcode == FUSE_INIT) {
		const struct fuse_init_in *arg = (const void *)(in + 1);

		pt->init_unique = in->unique;
		if ((arg->flags & FUSE_INIT_EXT) &&
		    (arg->flags2 & PT_FLAGS2_PASSTHROUGH))
			g_atomic_int_set(&pt->offered, TRUE);
	}
	return n;
}

static ssize_t pt_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	FsPassthrough *pt = pt_of(userdata);
	const struct fuse_out_header *out = iov[0].iov_base;
	int32_t id = reply_backing_id;

	reply_backing_id = 0;
	if (count == 2 && out->error == 0 && id != 0 &&
	    iov[1].iov_len == sizeof(struct pt_open_out)) {
		struct pt_open_out arg;
		struct iovec v[2] = {iov[0], {&arg, sizeof(arg)}};

		memcpy(&arg, iov[1].iov_base, sizeof(arg));
		arg.open_flags |= PT_FOPEN_PASSTHROUGH;
		arg.backing_id = id;
		return writev(fd, v, 2);
	}
	if (pt->init_unique != 0 && out->unique == pt->init_unique) {
		pt->init_unique = 0;
		if (count == 2 && out->error == 0 &&
		    iov[1].iov_len == sizeof(struct pt_init_out) &&
		    g_atomic_int_get(&pt->offered)) {
			struct pt_init_out arg;
			struct iovec v[2] = {iov[0], {&arg, sizeof(arg)}};

			memcpy(&arg, iov[1].iov_base, sizeof(arg));
			/* The kernel takes no passthrough with a writeback
			 * cache; imapfs asks for none. */
			if (!(arg.flags & FUSE_WRITEBACK_CACHE)) {
				arg.flags |= FUSE_INIT_EXT;
				arg.flags2 |= PT_FLAGS2_PASSTHROUGH;
				arg.max_stack_depth = pt->stack_depth;
				g_atomic_int_set(&pt->agreed, TRUE);
				g_debug("the kernel reads cached messages "
					"from the cache itself "
					"(passthrough)");
			}
			return writev(fd, v, 2);
		}
	}
	return writev(fd, iov, count);
}

static ssize_t pt_splice(int fdin, off_t *offin, int fdout, off_t *offout,
			 size_t len, unsigned int flags, void *userdata)
{
	(void)userdata;
	return splice(fdin, offin, fdout, offout, len, flags);
}

static const struct fuse_custom_io pt_io = {
	.writev = pt_writev,
	.read = pt_read,
	.splice_receive = pt_splice,
	.splice_send = pt_splice,
};

/* Registering a backing file takes CAP_SYS_ADMIN (Linux 6.9 to 6.18 at
 * least): without it, passthrough is not even asked for. */
static gboolean may_register(void)
{
	g_autofree char *status = NULL;
	const char *line;
	guint64 caps;

	if (!g_file_get_contents("/proc/self/status", &status, NULL, NULL))
		return FALSE;
	line = strstr(status, "\nCapEff:");
	if (line == NULL)
		return FALSE;
	caps = g_ascii_strtoull(line + strlen("\nCapEff:"), NULL, 16);
	return (caps >> 21) & 1; /* CAP_SYS_ADMIN */
}

/* The kernel counts the mount one level above the cache's filesystem,
 * and allows a backing file only from a lower one: the depth asked for
 * is the least that the cache allows (a higher one would keep the mount
 * from being stacked on itself, by an overlayfs say). */
static guint32 stack_depth(const char *cache_dir)
{
	struct statfs st;

	if (statfs(cache_dir, &st) == 0 &&
	    (st.f_type == PT_OVERLAYFS_MAGIC || st.f_type == PT_ECRYPTFS_MAGIC))
		return 2; /* FILESYSTEM_MAX_STACK_DEPTH */
	return 1;
}

FsPassthrough *fs_passthrough_attach(struct fuse_session *se,
				     const char *cache_dir)
{
	FsPassthrough *pt;
	int err;

	if (!may_register()) {
		g_debug("reads of cached mail go through imapfs: having the "
			"kernel read the cache itself takes CAP_SYS_ADMIN");
		return NULL;
	}
	pt = g_new0(FsPassthrough, 1);
	pt->fd = fuse_session_fd(se);
	pt->stack_depth = stack_depth(cache_dir);
	g_mutex_init(&pt->lock);
	pt->inodes = g_hash_table_new_full(g_direct_hash, g_direct_equal,
					   NULL, g_free);
	pt->paged = g_hash_table_new(g_direct_hash, g_direct_equal);
	pt->plain = g_hash_table_new(g_direct_hash, g_direct_equal);
	err = fuse_session_custom_io(se, &pt_io, pt->fd);
	if (err != 0) {
		g_message("reads go through imapfs: the FUSE session's "
			  "device could not be taken over (%s)",
			  g_strerror(-err));
		fs_passthrough_free(pt);
		return NULL;
	}
	return pt;
}

void fs_passthrough_free(FsPassthrough *pt)
{
	if (pt == NULL)
		return;
	g_hash_table_destroy(pt->inodes);
	g_hash_table_destroy(pt->paged);
	g_hash_table_destroy(pt->plain);
	g_mutex_clear(&pt->lock);
	g_free(pt);
}

static void unregister_locked(FsPassthrough *pt, PtInode *node)
{
	uint32_t id = node->id;

	if (ioctl(pt->fd, PT_IOC_BACKING_CLOSE, &id) < 0)
		g_debug("closing backing file %u: %s", id, g_strerror(errno));
	g_hash_table_remove(pt->inodes, GSIZE_TO_POINTER(node->ino));
}

/* The store let go of a registered message (@tag is its inode): so does
 * the kernel, unless a file has it open. */
static void on_gone(guint64 tag, gpointer data)
{
	FsPassthrough *pt = data;
	PtInode *node;

	g_mutex_lock(&pt->lock);
	node = g_hash_table_lookup(pt->inodes, GSIZE_TO_POINTER(tag));
	if (node != NULL && node->opens == 0) {
		g_queue_unlink(&pt->idle, &node->idle);
		unregister_locked(pt, node);
	} else if (node != NULL) {
		node->gone = TRUE; /* at the last close */
	}
	g_mutex_unlock(&pt->lock);
}

void fs_passthrough_bind(FsPassthrough *pt, CacheAccount *acct)
{
	if (pt == NULL)
		return;
	pt->acct = acct;
	cache_account_set_file_gone_func(acct, on_gone, pt);
}

/* A backing id for @fd, or 0 with a log line the first time. */
static int32_t register_file(FsPassthrough *pt, int fd)
{
	struct pt_backing_map map = {.fd = fd};
	int id = ioctl(pt->fd, PT_IOC_BACKING_OPEN, &map);

	if (id > 0)
		return id;
	if (!g_atomic_int_get(&pt->refused)) {
		g_atomic_int_set(&pt->refused, TRUE);
		g_message("reads of cached mail go through imapfs: the kernel "
			  "refused to read the cache itself (%s)",
			  g_strerror(errno));
	}
	return 0;
}

/* Counts an open of @node, or of inode @key through imapfs (@node NULL),
 * and names the backing id to the reply. */
static gboolean open_locked(FsPassthrough *pt, PtInode *node, gpointer key)
{
	if (node == NULL) {
		guint n = GPOINTER_TO_UINT(g_hash_table_lookup(pt->plain, key));

		g_hash_table_insert(pt->plain, key, GUINT_TO_POINTER(n + 1));
		reply_backing_id = 0;
		return FALSE;
	}
	if (node->opens++ == 0)
		g_queue_unlink(&pt->idle, &node->idle);
	reply_backing_id = node->id;
	return TRUE;
}

/* Whether an open of @key must be through imapfs: the kernel has (or is
 * reading) its pages that way, or a file is open that way. */
static gboolean plain_locked(FsPassthrough *pt, gpointer key)
{
	return g_atomic_int_get(&pt->refused) ||
	       g_hash_table_contains(pt->paged, key) ||
	       g_hash_table_contains(pt->plain, key);
}

static void on_interrupt(fuse_req_t req, void *data)
{
	g_cancellable_cancel(data);
}

gboolean fs_passthrough_open(FsPassthrough *pt, fuse_req_t req,
			     fuse_ino_t ino, CacheFile *file)
{
	g_autoptr(GCancellable) cancel = NULL;
	g_autoptr(GError) error = NULL;
	gpointer key = GSIZE_TO_POINTER(ino);
	gboolean pass;
	PtInode *node;
	int32_t id = 0;
	int fd;

	if (pt == NULL || !g_atomic_int_get(&pt->agreed))
		return FALSE;
	g_mutex_lock(&pt->lock);
	node = g_hash_table_lookup(pt->inodes, key);
	/* The inode names another message now (its mailbox was made anew
	 * under the same id): the old registration goes once unused; while
	 * the old message is open, the kernel refuses this open (EIO). */
	if (node != NULL && node->uidvalidity != file->uidvalidity) {
		if (node->opens > 0) {
			pass = open_locked(pt, NULL, key);
			g_mutex_unlock(&pt->lock);
			return pass;
		}
		g_queue_unlink(&pt->idle, &node->idle);
		unregister_locked(pt, node);
		node = NULL;
	}
	if (node != NULL || plain_locked(pt, key)) {
		pass = open_locked(pt, node, key);
		g_mutex_unlock(&pt->lock);
		return pass;
	}
	g_mutex_unlock(&pt->lock);

	/* A message fetched whole is fetched now, where its first read
	 * would have, so that the kernel reads it from the cache file. One
	 * that cannot be is opened anyway: its reads say why. A cache file
	 * of another size than the listing's (damaged) is not passed on:
	 * reads through imapfs stop at the size the kernel was told. */
	cancel = g_cancellable_new();
	fuse_req_interrupt_func(req, on_interrupt, cancel);
	fd = cache_account_file_whole(pt->acct, file, cancel, &error);
	fuse_req_interrupt_func(req, NULL, NULL);
	if (error != NULL)
		g_debug("open of %s %u without passthrough: %s",
			file->mailbox, file->ref.uid, error->message);
	if (fd >= 0 && file->fd_size == file->size)
		id = register_file(pt, fd);
	if (id != 0)
		cache_account_tag_file(pt->acct, file, ino);

	g_mutex_lock(&pt->lock);
	node = g_hash_table_lookup(pt->inodes, key);
	if (node != NULL || plain_locked(pt, key)) {
		/* Another open of it came first, either way. */
		if (id != 0) {
			uint32_t mine = id;

			ioctl(pt->fd, PT_IOC_BACKING_CLOSE, &mine);
		}
	} else if (id != 0) {
		/* Open, so in no queue: counted here. */
		node = g_new0(PtInode, 1);
		node->ino = ino;
		node->uidvalidity = file->uidvalidity;
		node->id = id;
		node->opens = 1;
		node->idle.data = node;
		g_hash_table_insert(pt->inodes, key, node);
		reply_backing_id = id;
		g_mutex_unlock(&pt->lock);
		return TRUE;
	} else if (error == NULL) {
		/* Not whole, and not to be fetched at open (over 1 MiB): read
		 * through imapfs from now on. A fetch that failed (the server
		 * away, or Ctrl-C) is tried again at the next open. */
		g_hash_table_add(pt->paged, key);
	}
	pass = open_locked(pt, node, key);
	g_mutex_unlock(&pt->lock);
	return pass;
}

void fs_passthrough_close(FsPassthrough *pt, fuse_ino_t ino,
			  gboolean passthrough)
{
	gpointer key = GSIZE_TO_POINTER(ino);
	PtInode *node;
	guint n;

	reply_backing_id = 0;
	if (pt == NULL || !g_atomic_int_get(&pt->agreed))
		return;
	g_mutex_lock(&pt->lock);
	if (!passthrough) {
		n = GPOINTER_TO_UINT(g_hash_table_lookup(pt->plain, key));
		if (n > 1)
			g_hash_table_insert(pt->plain, key,
					    GUINT_TO_POINTER(n - 1));
		else
			g_hash_table_remove(pt->plain, key);
		g_mutex_unlock(&pt->lock);
		return;
	}
	node = g_hash_table_lookup(pt->inodes, key);
	if (node != NULL && node->opens > 0 && --node->opens == 0) {
		if (node->gone) {
			unregister_locked(pt, node);
		} else {
			g_queue_push_tail_link(&pt->idle, &node->idle);
			while (pt->idle.length > PT_KEPT_MAX)
				unregister_locked(
					pt,
					g_queue_pop_head_link(&pt->idle)->data);
		}
	}
	g_mutex_unlock(&pt->lock);
}

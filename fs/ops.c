/* fs/ops.c — the FUSE low-level handlers.
 *
 * Each handler is short: decode the inode, ask cache/account.h, reply once.
 * No handler holds a lock while replying; the cache copies out what it
 * returns. Directory listings are snapshots taken at opendir, so readdir
 * offsets stay valid while the mailbox changes underneath.
 *
 * Changes go through the mutation table in cache/ (cache/account.h); files
 * being created live in fs/newfile.c until they become messages.
 */
#include "fs/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>

#include "fs/errmap.h"
#include "fs/inode.h"
#include "fs/names.h"
#include "fs/newfile.h"
#include "fs/notify.h"
#include "fs/passthrough.h"
#include "fs/xattr.h"

#define FS_NEGATIVE_TIMEOUT 1.0
/* How long the name a message was moved under stays known (µs): mv
 * stats it right after, later when the machine is loaded. */
#define FS_MOVED_NAME_GRACE (2 * G_USEC_PER_SEC)
/* How long its old inode stands for it (µs): past the grace, with room. */
#define FS_MOVED_KEEP (10 * G_USEC_PER_SEC)

static FsMount *mount_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static char *message_name(const CacheMessage *msg);

/* Where @ino is in the tree, for log lines: "INBOX/0000000005-Hi.eml",
 * from what the index holds (no round trip), else its number. */
static char *describe(FsMount *mnt, fuse_ino_t ino)
{
	CacheMailbox mbox = {0};
	CacheMessage msg = {0};
	GString *path;
	guint32 id, uid;
	g_autofree char *new_name = NULL;

	if (ino == FUSE_ROOT_ID)
		return g_strdup("the mount's root");
	if (fs_newfiles_is_new(ino)) {
		new_name = fs_newfiles_name(mnt->newfiles, ino, &id);
		if (!new_name)
			return g_strdup("a new file");
		uid = 0;
	} else if (!fs_inode_decode(ino, &id, &uid)) {
		id = 0;
	}
	if (!id || !cache_account_peek_mailbox(mnt->acct, id, &mbox))
		return g_strdup_printf("inode %" G_GINT64_MODIFIER "x",
				       (guint64)ino);
	path = g_string_new(NULL);
	{
		char sep[2] = {mbox.delimiter, '\0'};
		g_auto(GStrv) parts =
			mbox.delimiter
				? g_strsplit(mbox.full_name, sep, -1)
				: g_strdupv((char *[]){mbox.full_name, NULL});

		for (guint i = 0; parts[i]; i++) {
			g_autofree char *name = fs_names_from_mailbox(parts[i]);

			g_string_append_printf(path, "%s%s", i ? "/" : "",
					       name);
		}
	}
	cache_mailbox_clear(&mbox);
	if (uid && cache_account_peek_message(mnt->acct, (CacheMsgRef){id, uid},
					      &msg)) {
		g_autofree char *name = message_name(&msg);

		g_string_append_printf(path, "/%s", name);
		cache_message_clear(&msg);
	} else if (uid) {
		g_string_append_printf(path, "/(UID %u)", uid);
	} else if (new_name) {
		g_string_append_printf(path, "/%s", new_name);
	}
	return g_string_free(path, FALSE);
}

/* Answers @req with @error's errno and logs it, saying what failed
 * where. */
static void reply_error_in(fuse_req_t req, const GError *error,
			   const char *what, const char *place)
{
	g_autofree char *where = g_strdup_printf("%s %s", what, place);
	g_autofree char *problem = NULL;
	g_autoptr(GError) told = NULL;

	/* "Did not answer" while connections cannot even be made: say
	 * why they cannot. */
	if (g_error_matches(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_TIMEOUT) &&
	    (problem = cache_account_connect_problem(mount_of(req)->acct))) {
		told = g_error_new(error->domain, error->code,
				   "%s; the last attempt to connect failed: %s",
				   error->message, problem);
		error = told;
	}
	fuse_reply_err(req, fs_errno_log(error, where));
}

static void reply_error(fuse_req_t req, const GError *error, const char *what,
			guint64 ino)
{
	g_autofree char *place = describe(mount_of(req), ino);

	reply_error_in(req, error, what, place);
}

/* As reply_error(), for the entry @name of directory @parent; @name as
 * the log can show it (valid UTF-8, control characters as '?'). */
static void reply_error_at(fuse_req_t req, const GError *error,
			   const char *what, fuse_ino_t parent,
			   const char *name)
{
	g_autofree char *shown = g_utf8_make_valid(name, -1);
	g_autofree char *dir = NULL;
	g_autofree char *place = NULL;

	for (char *c = shown; *c; c++)
		if ((guchar)*c < 0x20 || *c == 0x7f)
			*c = '?';
	if (parent == FUSE_ROOT_ID) {
		place = g_strdup(shown);
	} else {
		dir = describe(mount_of(req), parent);
		place = g_strdup_printf("%s/%s", dir, shown);
	}
	reply_error_in(req, error, what, place);
}

/* A FUSE interrupt (the reader got a signal) cancels the wait. */
static void on_interrupt(fuse_req_t req, void *data)
{
	g_cancellable_cancel(data);
}

static void fill_entry(FsMount *mnt, const struct stat *st,
		       struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = st->st_ino;
	e->attr = *st;
	e->attr_timeout = mnt->timeout;
	e->entry_timeout = mnt->timeout;
}

/* ---- Lookup and attributes --------------------------------------------- */

/* Where an inode's message is: for a file created here and added since,
 * or a message moved since the kernel learnt the inode, the message it
 * became. FALSE for directories and pending files. */
static gboolean message_ref(FsMount *mnt, fuse_ino_t ino, CacheMsgRef *out)
{
	FsMoved *moved;

	if (fs_newfiles_is_new(ino))
		return fs_newfiles_committed(mnt->newfiles, ino, out) &&
		       out->uid != 0;
	if (!fs_inode_decode(ino, &out->mailbox_id, &out->uid) || !out->uid)
		return FALSE;
	g_mutex_lock(&mnt->lock);
	moved = g_hash_table_lookup(mnt->moved, GSIZE_TO_POINTER(ino));
	/* Only for as long as the kernel may still use the old inode. */
	if (moved && g_get_monotonic_time() - moved->at > FS_MOVED_KEEP) {
		g_hash_table_remove(mnt->moved, GSIZE_TO_POINTER(ino));
		moved = NULL;
	}
	if (moved)
		*out = moved->ref;
	g_mutex_unlock(&mnt->lock);
	return TRUE;
}

/* The mailbox directory @ino stands for, or FALSE if it is none: the one
 * it was looked up as, or the one the server made anew in its place (a
 * message inode keeps naming the old mailbox's message). */
static gboolean dir_id(FsMount *mnt, fuse_ino_t ino, guint32 *out_id)
{
	guint32 uid;

	if (fs_newfiles_is_new(ino) || !fs_inode_decode(ino, out_id, &uid) ||
	    uid)
		return FALSE;
	*out_id = cache_account_current_dir(mnt->acct, *out_id);
	return TRUE;
}

static gboolean stat_inode(FsMount *mnt, fuse_ino_t ino, struct stat *st,
			   GError **error)
{
	guint32 id, uid;

	if (fs_newfiles_is_new(ino)) {
		CacheMsgRef ref;

		if (fs_newfiles_stat(mnt->newfiles, ino, mnt->uid, mnt->gid,
				     st))
			return TRUE;
		if (!fs_newfiles_committed(mnt->newfiles, ino, &ref) ||
		    !ref.uid) {
			g_set_error(error, IMAPFS_CACHE_ERROR,
				    CACHE_ERROR_NOT_FOUND, "no such file");
			return FALSE;
		}
		if (!stat_inode(mnt, fs_inode_msg(ref.mailbox_id, ref.uid), st,
				error))
			return FALSE;
		st->st_ino = ino;
		return TRUE;
	}
	if (!fs_inode_decode(ino, &id, &uid)) {
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_FOUND,
			    "unknown inode");
		return FALSE;
	}
	if (uid == 0) {
		CacheMailbox mbox;

		id = cache_account_current_dir(mnt->acct, id);
		if (!cache_account_get_mailbox(mnt->acct, id, &mbox, error))
			return FALSE;
		fs_inode_stat_dir(&mbox, mnt->uid, mnt->gid, mnt->mount_time,
				  st);
		st->st_ino = ino;
		cache_mailbox_clear(&mbox);
	} else {
		CacheMsgRef ref;
		CacheMessage msg;

		message_ref(mnt, ino, &ref);
		if (!cache_account_get_message(mnt->acct, ref, &msg, error))
			return FALSE;
		fs_inode_stat_msg(ref.mailbox_id, &msg, mnt->uid, mnt->gid, st);
		st->st_ino = ino;
		cache_message_clear(&msg);
	}
	return TRUE;
}

/* The file name a message is listed under: the name it was added under,
 * else the canonical one. (transfer full) */
static char *message_name(const CacheMessage *msg)
{
	return msg->alias ? g_strdup(msg->alias)
			  : fs_names_message(msg->uid, msg->subject);
}

/* The UID of the message listed as @name in mailbox @id, or 0. */
static guint32 find_message(FsMount *mnt, guint32 id, const char *name,
			    GError **error)
{
	CacheMessage msg;
	guint32 uid;

	uid = cache_account_find_alias(mnt->acct, id, name);
	if (uid)
		return uid;
	if (!fs_names_parse_message(name, &uid))
		return 0;
	if (!cache_account_get_message(mnt->acct, (CacheMsgRef){id, uid}, &msg,
				       error))
		return 0;
	{
		g_autofree char *listed = message_name(&msg);

		if (strcmp(listed, name) != 0)
			uid = 0;
	}
	cache_message_clear(&msg);
	return uid;
}

/* The child mailbox called @name, or 0. Only the canonical spelling of a
 * name is accepted, so one mailbox never has two names. */
static guint32 find_mailbox(FsMount *mnt, guint32 parent_id, const char *name)
{
	g_autofree char *component = fs_names_to_mailbox(name, '\0');
	g_autofree char *canonical = NULL;

	if (!component)
		return 0;
	canonical = fs_names_from_mailbox(component);
	if (strcmp(canonical, name) != 0)
		return 0;
	return cache_account_find_child(mnt->acct, parent_id, component);
}

static void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;
	struct fuse_entry_param e;
	guint32 pid, id, uid;
	struct stat st;

	if (!dir_id(mnt, parent, &pid)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	id = find_mailbox(mnt, pid, name);
	if (id) {
		CacheMailbox mbox;

		if (!cache_account_get_mailbox(mnt->acct, id, &mbox, &error)) {
			reply_error(req, error, "lookup", parent);
			return;
		}
		fs_inode_stat_dir(&mbox, mnt->uid, mnt->gid, mnt->mount_time,
				  &st);
		cache_mailbox_clear(&mbox);
		fill_entry(mnt, &st, &e);
		fuse_reply_entry(req, &e);
		return;
	}
	if (pid != CACHE_ROOT_ID) {
		fuse_ino_t ino = fs_newfiles_find(mnt->newfiles, pid, name);

		if (ino && fs_newfiles_stat(mnt->newfiles, ino, mnt->uid,
					    mnt->gid, &st)) {
			fill_entry(mnt, &st, &e);
			e.attr_timeout = e.entry_timeout = 0;
			fuse_reply_entry(req, &e);
			return;
		}
		/* The mailbox made anew in its place, if a sync finds so. */
		pid = cache_account_settle_dir(mnt->acct, pid, FALSE, &error);
		uid = pid ? find_message(mnt, pid, name, &error) : 0;
		if (uid &&
		    stat_inode(mnt, fs_inode_msg(pid, uid), &st, &error)) {
			fill_entry(mnt, &st, &e);
			fuse_reply_entry(req, &e);
			return;
		}
		if (error && !g_error_matches(error, IMAPFS_CACHE_ERROR,
					      CACHE_ERROR_NOT_FOUND)) {
			reply_error(req, error, "lookup", parent);
			return;
		}
	}
	memset(&e, 0, sizeof(e));
	e.entry_timeout = FS_NEGATIVE_TIMEOUT;
	fuse_reply_entry(req, &e);
}

static void fs_op_getattr(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;
	struct stat st;

	if (!stat_inode(mnt, ino, &st, &error)) {
		reply_error(req, error, "getattr", ino);
		return;
	}
	fuse_reply_attr(req, &st, mnt->timeout);
}

/* ---- Directories -------------------------------------------------------- */

/* One entry of a directory snapshot: its name and what its attributes
 * are made from (fs_inode_stat_fill), not a whole struct stat, since a
 * mailbox may hold 100,000 of them. */
typedef struct {
	char *name;
	fuse_ino_t ino;
	guint32 nlink; /* 0 for a message */
	guint64 size;
	gint64 mtime;
} DirEntry;

static void dir_entry_clear(gpointer data)
{
	g_free(((DirEntry *)data)->name);
}

static void add_entry(GArray *dir, char *name, const struct stat *st)
{
	DirEntry entry = {name, st->st_ino,
			  S_ISDIR(st->st_mode) ? (guint32)st->st_nlink : 0,
			  st->st_size, st->st_mtime};

	g_array_append_val(dir, entry);
}

typedef struct {
	GArray *dir;
	guint32 mailbox_id;
} MessageEntries;

static void add_message_entry(const CacheMessage *msg, gpointer user_data)
{
	MessageEntries *m = user_data;
	DirEntry entry = {message_name(msg),
			  fs_inode_msg(m->mailbox_id, msg->uid), 0, msg->size,
			  msg->internaldate};

	g_array_append_val(m->dir, entry);
}

/* An open directory (fi->fh): its listing when opened. */
typedef struct {
	GArray *entries;   /* DirEntry */
	guint dropped;	   /* fs_notify_entries_dropped() before it */
} FsDir;

static void dir_free(FsDir *dir)
{
	g_array_unref(dir->entries);
	g_free(dir);
}

static GArray *snapshot_dir(FsMount *mnt, guint32 id, GError **error)
{
	g_autoptr(GArray) dir = NULL;
	g_autoptr(GArray) children = NULL;
	CacheMailbox self, parent = {0};
	struct stat st;

	/* The mailbox may have been made anew since @id was looked up. */
	while (!cache_account_get_mailbox(mnt->acct, id, &self, error)) {
		guint32 now = cache_account_current_dir(mnt->acct, id);

		if (now == id)
			return NULL;
		g_clear_error(error);
		id = now;
	}
	/* Listing may find the mailbox made anew: its entries are then the
	 * new one's messages, under the new id. */
	if (!(self.flags & CACHE_MAILBOX_NOSELECT)) {
		guint32 now =
			cache_account_settle_dir(mnt->acct, id, TRUE, error);

		cache_mailbox_clear(&self);
		if (!now ||
		    !cache_account_get_mailbox(mnt->acct, now, &self, error))
			return NULL;
		id = now;
	}
	dir = g_array_new(FALSE, TRUE, sizeof(DirEntry));
	g_array_set_clear_func(dir, dir_entry_clear);

	fs_inode_stat_dir(&self, mnt->uid, mnt->gid, mnt->mount_time, &st);
	add_entry(dir, g_strdup("."), &st);
	if (id != CACHE_ROOT_ID &&
	    cache_account_get_mailbox(mnt->acct, self.parent_id, &parent,
				      NULL)) {
		fs_inode_stat_dir(&parent, mnt->uid, mnt->gid, mnt->mount_time,
				  &st);
		cache_mailbox_clear(&parent);
	}
	add_entry(dir, g_strdup(".."), &st);

	children = cache_account_list_children(mnt->acct, id, error);
	if (!children) {
		cache_mailbox_clear(&self);
		return NULL;
	}
	for (guint i = 0; i < children->len; i++) {
		CacheMailbox *child = &g_array_index(children, CacheMailbox, i);

		if (!*child->component)
			continue;
		fs_inode_stat_dir(child, mnt->uid, mnt->gid, mnt->mount_time,
				  &st);
		add_entry(dir, fs_names_from_mailbox(child->component), &st);
	}
	if (!(self.flags & CACHE_MAILBOX_NOSELECT)) {
		MessageEntries m = {dir, id};

		if (!cache_account_foreach_message(
			    mnt->acct, id, add_message_entry, &m, error)) {
			cache_mailbox_clear(&self);
			return NULL;
		}
	}
	cache_mailbox_clear(&self);
	return g_steal_pointer(&dir);
}

static void fs_op_opendir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;
	guint32 id;
	FsDir *dir;

	if (!dir_id(mnt, ino, &id)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	dir = g_new0(FsDir, 1);
	/* Counted before the listing is made: a name dropped meanwhile
	 * counts as dropped after it. */
	dir->dropped = fs_notify_entries_dropped(mnt->notify);
	dir->entries = snapshot_dir(mnt, id, &error);
	if (!dir->entries) {
		g_free(dir);
		reply_error(req, error, "opendir", ino);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)dir;
	if (fuse_reply_open(req, fi) != 0)
		dir_free(dir);
}

static void reply_dir(fuse_req_t req, size_t size, off_t off,
		      struct fuse_file_info *fi, gboolean plus)
{
	FsMount *mnt = mount_of(req);
	FsDir *fsdir = (FsDir *)(uintptr_t)fi->fh;
	GArray *dir = fsdir->entries;
	g_autofree char *buf = g_malloc(size);
	size_t used = 0;
	/* A name the kernel was told to forget since the listing was made
	 * may be in it: its entries then come without attributes, which
	 * would make the kernel take each name for a live one again. */
	gboolean stale = plus && fs_notify_entries_dropped(mnt->notify) !=
					 fsdir->dropped;

	for (guint i = off; i < dir->len; i++) {
		DirEntry *entry = &g_array_index(dir, DirEntry, i);
		struct stat st;
		size_t n;

		fs_inode_stat_fill(entry->ino, entry->nlink, entry->size,
				   entry->mtime, mnt->uid, mnt->gid, &st);
		if (plus) {
			struct fuse_entry_param e;

			fill_entry(mnt, &st, &e);
			if (stale)
				e.ino = 0;
			n = fuse_add_direntry_plus(req, buf + used, size - used,
						   entry->name, &e, i + 1);
		} else {
			n = fuse_add_direntry(req, buf + used, size - used,
					      entry->name, &st, i + 1);
		}
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
}

static void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off, struct fuse_file_info *fi)
{
	reply_dir(req, size, off, fi, FALSE);
}

static void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			      off_t off, struct fuse_file_info *fi)
{
	reply_dir(req, size, off, fi, TRUE);
}

static void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino,
			     struct fuse_file_info *fi)
{
	dir_free((FsDir *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- Files -------------------------------------------------------------- */

/* An open message (fi->fh). */
typedef struct {
	CacheFile file;
	gboolean passthrough; /* the kernel reads the cache file itself */
} FsOpenMessage;

static void count_open(FsMount *mnt, fuse_ino_t ino, int delta)
{
	gpointer key = GSIZE_TO_POINTER(ino);
	guint n;

	g_mutex_lock(&mnt->lock);
	n = GPOINTER_TO_UINT(g_hash_table_lookup(mnt->open_count, key)) + delta;
	if (n)
		g_hash_table_insert(mnt->open_count, key, GUINT_TO_POINTER(n));
	else
		g_hash_table_remove(mnt->open_count, key);
	g_mutex_unlock(&mnt->lock);
}

static gboolean is_open(FsMount *mnt, fuse_ino_t ino)
{
	gboolean open;

	g_mutex_lock(&mnt->lock);
	open = g_hash_table_contains(mnt->open_count, GSIZE_TO_POINTER(ino));
	g_mutex_unlock(&mnt->lock);
	return open;
}

static void fs_op_open(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;
	FsOpenMessage *om;
	CacheMsgRef ref;

	/* A read-only mount needs nothing from an open. ENOSYS says so once:
	 * from then on the kernel opens files without asking, keeps their
	 * pages and sends no RELEASE, and reads come with no handle. */
	if (mnt->no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (fs_newfiles_is_new(ino) &&
	    !fs_newfiles_committed(mnt->newfiles, ino, &ref)) {
		fs_newfiles_open(mnt->newfiles, ino);
		fi->direct_io = 1;
		fuse_reply_open(req, fi);
		return;
	}
	if (!message_ref(mnt, ino, &ref)) {
		/* A new file that became a message we cannot place (the
		 * server gave no APPENDUID): look it up by its name again. */
		fuse_reply_err(req, fs_newfiles_is_new(ino) ? ENOENT : EISDIR);
		return;
	}
	/* A message's bytes never change. */
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	om = g_new0(FsOpenMessage, 1);
	if (!cache_account_open(mnt->acct, ref, &om->file, &error)) {
		g_free(om);
		reply_error(req, error, "open", ino);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)om;
	count_open(mnt, ino, 1);
	om->passthrough =
		fs_passthrough_open(mnt->passthrough, req, ino, &om->file);
	/* What the kernel cached of a message stays right (it keeps no
	 * pages of a file it reads through), and closing it needs no word
	 * from us. */
	fi->keep_cache = !om->passthrough;
	fi->noflush = 1;
	if (fuse_reply_open(req, fi) != 0) {
		fs_passthrough_close(mnt->passthrough, ino, om->passthrough);
		count_open(mnt, ino, -1);
		cache_account_close(mnt->acct, &om->file);
		g_free(om);
	}
}

/* Answers a read of @file from the message store, by splice where the
 * kernel allows. */
static void reply_read(fuse_req_t req, fuse_ino_t ino, CacheFile *file,
		       size_t size, off_t off)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;
	g_autoptr(GCancellable) cancel = g_cancellable_new();
	CacheSpan span;
	gboolean ok;

	fuse_req_interrupt_func(req, on_interrupt, cancel);
	ok = cache_account_read_file(mnt->acct, file, off, size, &span, cancel,
				     &error);
	fuse_req_interrupt_func(req, NULL, NULL);
	if (!ok) {
		reply_error(req, error, "read", ino);
		return;
	}
	if (span.len == 0) {
		fuse_reply_buf(req, NULL, 0);
	} else {
		struct fuse_bufvec buf = FUSE_BUFVEC_INIT(span.len);

		buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		buf.buf[0].fd = span.fd;
		buf.buf[0].pos = span.pos;
		fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	}
	cache_span_release(&span);
}

static void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	FsMount *mnt = mount_of(req);
	FsOpenMessage *om = (FsOpenMessage *)(uintptr_t)fi->fh;

	if (om) {
		reply_read(req, ino, &om->file, size, off);
	} else if (mnt->no_open) {
		/* Opened without us: open the message for this read (a pin
		 * and an open() of the store file, per read: what the kernel
		 * caches is not read again). */
		g_autoptr(GError) error = NULL;
		CacheFile once;
		CacheMsgRef ref;

		if (!message_ref(mnt, ino, &ref)) {
			fuse_reply_err(req, EISDIR);
		} else if (!cache_account_open(mnt->acct, ref, &once, &error)) {
			reply_error(req, error, "read", ino);
		} else {
			reply_read(req, ino, &once, size, off);
			cache_account_close(mnt->acct, &once);
		}
	} else {
		g_autofree char *buf = g_malloc(size);
		ssize_t n =
			fs_newfiles_read(mnt->newfiles, ino, buf, size, off);

		if (n < 0)
			fuse_reply_err(req, -n);
		else
			fuse_reply_buf(req, buf, n);
	}
}

static void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
			size_t size, off_t off, struct fuse_file_info *fi)
{
	FsMount *mnt = mount_of(req);
	ssize_t n;

	if (fi->fh) { /* an existing message: immutable */
		fuse_reply_err(req, EPERM);
		return;
	}
	n = fs_newfiles_write(mnt->newfiles, mnt->acct, ino, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, -n);
	else
		fuse_reply_write(req, n);
}

/* A file removed while its APPEND was under way: rm said it was gone, so
 * the message it became goes too, as rm of any message would. */
static void remove_dropped(FsMount *mnt, fuse_ino_t ino, const char *name)
{
	g_autoptr(GError) error = NULL;
	CacheMsgRef ref;

	if (!fs_newfiles_committed(mnt->newfiles, ino, &ref) || ref.uid == 0) {
		g_warning("%s was removed while it was being added, but the "
			  "server did not say which message it became: it "
			  "stays in the mailbox; remove it by hand",
			  name);
		return;
	}
	if (!cache_account_delete(mnt->acct, ref, mnt->rm_expunge, &error))
		g_warning("%s was removed while it was being added, but "
			  "removing the message it became failed: %s; it "
			  "stays in the mailbox",
			  name, error->message);
}

/* Adds a pending file to its mailbox and makes the kernel forget the name
 * it had: the message is listed under its own name from now on. */
static gboolean commit_new(FsMount *mnt, fuse_ino_t ino, gboolean keep_name,
			   GError **error)
{
	g_autofree char *name = NULL;
	gboolean dropped = FALSE;
	guint32 parent;

	if (!fs_newfiles_commit(mnt->newfiles, ino, mnt->acct, keep_name,
				&parent, &name, &dropped, error))
		return FALSE;
	if (dropped)
		remove_dropped(mnt, ino, name);
	fs_notify_entry(mnt->notify, fs_inode_dir(parent), name, 0);
	fs_notify_inode(mnt->notify, fs_inode_dir(parent));
	return TRUE;
}

static void fs_op_flush(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;

	if (mnt->no_open) { /* nothing to do at close(): say so once */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	/* The last close() of a new file by the process that made it is
	 * where cp learns whether it was added. Other closes leave it be
	 * (see fs_newfiles_closing); the last release catches the rest. */
	if (!fi->fh && fs_newfiles_ready(mnt->newfiles, ino, FALSE)) {
		int signal = 0;

		switch (fs_newfiles_closing(mnt->newfiles, ino,
					    fuse_req_ctx(req)->pid, &signal)) {
		case FS_NEWFILE_CLOSE_KILLED: {
			g_autofree char *why = g_strdup_printf(
				"the program writing it was killed (signal "
				"%d) before it closed it",
				signal);

			fs_newfiles_abandon(mnt->newfiles, ino, why);
			break;
		}
		case FS_NEWFILE_CLOSE_LAST:
			if (!commit_new(mnt, ino, FALSE, &error)) {
				/* close() says it failed: the message is not
				 * added later behind the writer's back (a
				 * copy made again would be a duplicate). */
				g_autofree char *why = g_strdup_printf(
					"%s, and close() said so",
					error->message);

				fs_newfiles_abandon(mnt->newfiles, ino, why);
				reply_error(req, error,
					    "adding the new message", ino);
				return;
			}
			break;
		case FS_NEWFILE_CLOSE_OTHER:
			break;
		}
	}
	fuse_reply_err(req, 0);
}

static void fs_op_release(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	FsMount *mnt = mount_of(req);
	FsOpenMessage *om = (FsOpenMessage *)(uintptr_t)fi->fh;

	if (om) {
		fs_passthrough_close(mnt->passthrough, ino, om->passthrough);
		count_open(mnt, ino, -1);
		cache_account_close(mnt->acct, &om->file);
		g_free(om);
	} else if (fs_newfiles_release(mnt->newfiles, ino) &&
		   fs_newfiles_ready(mnt->newfiles, ino, FALSE)) {
		g_autoptr(GError) error = NULL;

		if (!commit_new(mnt, ino, FALSE, &error))
			fs_errno_log(error, "adding the new message");
	}
	fuse_reply_err(req, 0);
}

/* ---- Extended attributes ------------------------------------------------ */

static void reply_xattr_value(fuse_req_t req, const char *value, size_t len,
			      size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
}

static void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			   size_t size)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;
	g_autofree char *value = NULL;
	CacheMailbox mbox;
	CacheMsgRef ref;
	guint32 id, uid;

	/* security.*, system.* and the like cost no round trip. */
	if (!g_str_has_prefix(name, FS_XATTR_PREFIX)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (fs_newfiles_is_new(ino) && !message_ref(mnt, ino, &ref)) {
		value = strcmp(name, FS_XATTR_PREFIX "flags") == 0
				? fs_newfiles_get_flags(mnt->newfiles, ino)
				: NULL;
		if (!value && strcmp(name, FS_XATTR_PREFIX "flags") == 0)
			value = g_strdup("");
		if (!value)
			fuse_reply_err(req, ENODATA);
		else
			reply_xattr_value(req, value, strlen(value), size);
		return;
	}
	if (message_ref(mnt, ino, &ref)) {
		id = ref.mailbox_id;
		uid = ref.uid;
	} else if (dir_id(mnt, ino, &id)) {
		uid = 0;
	} else {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (!cache_account_get_mailbox(mnt->acct, id, &mbox, &error)) {
		reply_error(req, error, "getxattr", ino);
		return;
	}
	if (uid == 0) {
		value = fs_xattr_mailbox(&mbox, name);
	} else {
		CacheMessage msg;

		if (!cache_account_get_message(
			    mnt->acct, (CacheMsgRef){id, uid}, &msg, &error)) {
			cache_mailbox_clear(&mbox);
			reply_error(req, error, "getxattr", ino);
			return;
		}
		value = fs_xattr_message(&mbox, &msg, name);
		cache_message_clear(&msg);
	}
	cache_mailbox_clear(&mbox);
	if (!value)
		fuse_reply_err(req, ENODATA);
	else
		reply_xattr_value(req, value, strlen(value), size);
}

static void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	guint32 id, uid;
	const char *names;
	gsize len;

	if (!fs_newfiles_is_new(ino) &&
	    (!fs_inode_decode(ino, &id, &uid) || uid == 0)) {
		reply_xattr_value(req, "", 0, size);
		return;
	}
	names = fs_xattr_message_list(&len);
	reply_xattr_value(req, names, len, size);
}

/* Sets the flags of a message or of a file being created. */
static int set_flags(FsMount *mnt, fuse_ino_t ino, const char *text)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *flags = cache_account_check_flags(text, &error);
	CacheMsgRef ref;

	if (!flags)
		return fs_errno_log(error, "setfattr user.imap.flags");
	if (fs_newfiles_is_new(ino) && !message_ref(mnt, ino, &ref))
		return -fs_newfiles_set_flags(mnt->newfiles, ino, flags);
	if (!message_ref(mnt, ino, &ref))
		return EPERM; /* directories have no flags */
	if (!cache_account_set_flags(mnt->acct, ref, flags, &error))
		return fs_errno_log(error, "setfattr user.imap.flags");
	return 0;
}

static void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			   const char *value, size_t size, int flags)
{
	FsMount *mnt = mount_of(req);
	g_autofree char *text = NULL;

	if (strcmp(name, FS_XATTR_PREFIX "flags") != 0) {
		/* The other user.imap.* are facts of the server. */
		if (g_str_has_prefix(name, FS_XATTR_PREFIX)) {
			g_message("%s is read-only; only %sflags can be set",
				  name, FS_XATTR_PREFIX);
			fuse_reply_err(req, EPERM);
		} else {
			fuse_reply_err(req, ENOTSUP);
		}
		return;
	}
	/* Every message has its flags, if only an empty set. */
	if (flags & XATTR_CREATE) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	if (memchr(value, '\0', size)) {
		g_message("setfattr %s: the value holds a NUL byte", name);
		fuse_reply_err(req, EINVAL);
		return;
	}
	text = g_strndup(value, size);
	fuse_reply_err(req, set_flags(mnt, ino, text));
}

static void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	FsMount *mnt = mount_of(req);

	if (strcmp(name, FS_XATTR_PREFIX "flags") == 0)
		fuse_reply_err(req, set_flags(mnt, ino, ""));
	else if (g_str_has_prefix(name, FS_XATTR_PREFIX))
		fuse_reply_err(req, EPERM);
	else
		fuse_reply_err(req, ENODATA);
}

/* ---- Changes ------------------------------------------------------------ */

static void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			  int to_set, struct fuse_file_info *fi)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;
	CacheMsgRef ref;
	struct stat st;
	int err = 0;

	if (fs_newfiles_is_new(ino) && !message_ref(mnt, ino, &ref)) {
		if (to_set & FUSE_SET_ATTR_SIZE)
			err = -fs_newfiles_truncate(mnt->newfiles, ino,
						    attr->st_size);
		if (!err && (to_set & FUSE_SET_ATTR_MTIME))
			err = -fs_newfiles_set_mtime(mnt->newfiles, ino,
						     attr->st_mtime);
		if (!err && (to_set & FUSE_SET_ATTR_MTIME_NOW))
			err = -fs_newfiles_set_mtime(mnt->newfiles, ino,
						     g_get_real_time() /
							     G_USEC_PER_SEC);
	} else if (to_set & FUSE_SET_ATTR_SIZE) {
		err = EPERM; /* a message's bytes never change */
	}
	/* Owner, mode and times of messages and mailboxes are the server's
	 * (mtime is INTERNALDATE); changing them is accepted and has no
	 * effect, so that cp -p and rsync -a into the mount work. */
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	if (!stat_inode(mnt, ino, &st, &error)) {
		reply_error(req, error, "setattr", ino);
		return;
	}
	fuse_reply_attr(req, &st, fs_newfiles_is_new(ino) ? 0 : mnt->timeout);
}

/* The selectable mailbox that directory inode @ino is, or 0 with @err. */
static guint32 mailbox_dir(FsMount *mnt, fuse_ino_t ino, int *err)
{
	g_autoptr(GError) error = NULL;
	CacheMailbox mbox;
	guint32 id;
	gboolean selectable;

	if (!dir_id(mnt, ino, &id)) {
		*err = ENOTDIR;
		return 0;
	}
	if (id == CACHE_ROOT_ID) {
		*err = EPERM; /* the root holds mailboxes, not messages */
		return 0;
	}
	if (!cache_account_get_mailbox(mnt->acct, id, &mbox, &error)) {
		*err = fs_errno_log(error, "mailbox");
		return 0;
	}
	selectable = !(mbox.flags & CACHE_MAILBOX_NOSELECT);
	cache_mailbox_clear(&mbox);
	if (!selectable) {
		*err = EPERM;
		return 0;
	}
	return id;
}

static void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			 mode_t mode, struct fuse_file_info *fi)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;
	struct fuse_entry_param e;
	fuse_ino_t ino;
	struct stat st;
	int err = 0;
	guint32 id = mailbox_dir(mnt, parent, &err), now;

	if (!id) {
		fuse_reply_err(req, err);
		return;
	}
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!fs_newfiles_create(mnt->newfiles, id, name, fuse_req_ctx(req)->pid,
				&ino, &error)) {
		reply_error_at(req, error, "create", parent, name);
		return;
	}
	/* Made anew meanwhile, after its pending files were moved. */
	now = cache_account_current_dir(mnt->acct, id);
	if (now != id)
		fs_newfiles_move_mailbox(mnt->newfiles, id, now);
	fs_newfiles_open(mnt->newfiles, ino);
	fs_newfiles_stat(mnt->newfiles, ino, mnt->uid, mnt->gid, &st);
	fill_entry(mnt, &st, &e);
	e.attr_timeout = e.entry_timeout = 0;
	fi->fh = 0;
	fi->direct_io = 1;
	fuse_reply_create(req, &e, fi);
}

static void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, dev_t rdev)
{
	/* A message is made by writing it: create + write + close. */
	fuse_reply_err(req, EPERM);
}

static void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;
	g_autofree char *component = NULL;
	g_autofree char *canonical = NULL;
	struct fuse_entry_param e;
	guint32 pid, id;
	CacheMailbox mbox;
	struct stat st;

	if (!dir_id(mnt, parent, &pid)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	component =
		fs_names_to_mailbox(name, cache_account_delimiter(mnt->acct));
	canonical = component ? fs_names_from_mailbox(component) : NULL;
	if (!component || strcmp(canonical, name) != 0) {
		g_message("mkdir \"%s\": not a mailbox name this server can "
			  "take (a %%XX escape, or the server's hierarchy "
			  "delimiter)",
			  name);
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!cache_account_create_mailbox(mnt->acct, pid, component, &error)) {
		reply_error_at(req, error, "mkdir", parent, name);
		return;
	}
	id = cache_account_find_child(mnt->acct, pid, component);
	if (!id || !cache_account_get_mailbox(mnt->acct, id, &mbox, &error)) {
		if (!error)
			g_set_error(&error, IMAPFS_CACHE_ERROR, CACHE_ERROR_IO,
				    "mailbox \"%s\" was created but is not "
				    "listed by the server",
				    component);
		reply_error_at(req, error, "mkdir", parent, name);
		return;
	}
	fs_inode_stat_dir(&mbox, mnt->uid, mnt->gid, mnt->mount_time, &st);
	cache_mailbox_clear(&mbox);
	fill_entry(mnt, &st, &e);
	fs_notify_inode(mnt->notify, parent);
	fuse_reply_entry(req, &e);
}

static void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;
	guint32 pid, id;

	if (!dir_id(mnt, parent, &pid)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	id = find_mailbox(mnt, pid, name);
	if (!id) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!cache_account_delete_mailbox(mnt->acct, id, &error)) {
		reply_error(req, error, "rmdir", fs_inode_dir(id));
		return;
	}
	fs_notify_inode(mnt->notify, parent);
	fuse_reply_err(req, 0);
}

static void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;
	guint32 pid, uid;
	fuse_ino_t ino;

	if (!dir_id(mnt, parent, &pid)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (fs_newfiles_unlink(mnt->newfiles, pid, name) == 0) {
		fuse_reply_err(req, 0);
		return;
	}
	uid = find_message(mnt, pid, name, &error);
	if (!uid) {
		if (error)
			reply_error_at(req, error, "unlink", parent, name);
		else
			fuse_reply_err(req, ENOENT);
		return;
	}
	ino = fs_inode_msg(pid, uid);
	/* An open file stays readable until closed: keep its bytes. */
	if (is_open(mnt, ino) &&
	    !cache_account_keep(mnt->acct, (CacheMsgRef){pid, uid}, &error)) {
		reply_error_at(req, error, "unlink", parent, name);
		return;
	}
	if (!cache_account_delete(mnt->acct, (CacheMsgRef){pid, uid},
				  mnt->rm_expunge, &error)) {
		reply_error_at(req, error, "unlink", parent, name);
		return;
	}
	fuse_reply_err(req, 0);
}

/* TRUE if pending file @ino holds message @ref already; a failure to
 * tell is logged and counts as no. */
static gboolean same_message(FsMount *mnt, fuse_ino_t ino, CacheMsgRef ref)
{
	g_autoptr(GError) error = NULL;
	gboolean same = FALSE;

	if (!fs_newfiles_same_as(mnt->newfiles, ino, mnt->acct, ref, &same,
				 &error))
		g_message("comparing a new file with message %u: %s; it is "
			  "added as a message of its own",
			  ref.uid, error->message);
	return same;
}

static void rename_new(FsMount *mnt, fuse_req_t req, fuse_ino_t ino,
		       guint32 to_id, const char *newname)
{
	g_autoptr(GError) error = NULL;
	int err = -fs_newfiles_rename(mnt->newfiles, ino, to_id, newname);
	gboolean taken;
	guint32 uid;

	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	/* rsync's "write .name.XXXXXX, set times and xattrs, rename": the
	 * rename is where the message is complete. If a message is already
	 * listed under the new name, the new one keeps its own name, unless
	 * it is that very message (a backup whose copy has bare LFs, which
	 * rsync sends again as it differs in size): then only its flags are
	 * taken, and nothing is added twice. */
	uid = find_message(mnt, to_id, newname, NULL);
	taken = uid != 0;
	if (taken && fs_newfiles_ready(mnt->newfiles, ino, TRUE) &&
	    same_message(mnt, ino, (CacheMsgRef){to_id, uid})) {
		g_autofree char *flags =
			fs_newfiles_get_flags(mnt->newfiles, ino);

		fs_newfiles_discard(mnt->newfiles, ino);
		fs_notify_entry(mnt->notify, fs_inode_dir(to_id), newname, 0);
		if (flags && !cache_account_set_flags(mnt->acct,
						      (CacheMsgRef){to_id, uid},
						      flags, &error)) {
			reply_error(req, error, "setting flags", ino);
			return;
		}
		fuse_reply_err(req, 0);
		return;
	}
	if (fs_newfiles_ready(mnt->newfiles, ino, TRUE) &&
	    !commit_new(mnt, ino, !taken, &error)) {
		/* As at close(): the rename says it failed, so the name
		 * goes and the message is not added later behind the
		 * writer's back; rsync's next run sends it again. */
		g_autofree char *why = g_strdup_printf(
			"%s, and the rename onto its name said so",
			error->message);

		fs_newfiles_abandon(mnt->newfiles, ino, why);
		fs_notify_entry(mnt->notify, fs_inode_dir(to_id), newname, 0);
		reply_error(req, error, "adding the new message", ino);
		return;
	}
	fuse_reply_err(req, 0);
}

static void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname,
			 unsigned int flags)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;
	guint32 pid, nid, id, uid, new_uid;
	fuse_ino_t ino;

	if (flags & RENAME_EXCHANGE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!dir_id(mnt, parent, &pid) || !dir_id(mnt, newparent, &nid)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	/* A mailbox: RENAME. */
	id = find_mailbox(mnt, pid, name);
	if (id) {
		g_autofree char *component = fs_names_to_mailbox(
			newname, cache_account_delimiter(mnt->acct));
		g_autofree char *canonical =
			component ? fs_names_from_mailbox(component) : NULL;

		if (!component || strcmp(canonical, newname) != 0) {
			g_message("rename to \"%s\": not a mailbox name this "
				  "server can take",
				  newname);
			fuse_reply_err(req, EINVAL);
			return;
		}
		if (!cache_account_rename_mailbox(mnt->acct, id, nid, component,
						  &error)) {
			reply_error_at(req, error, "rename", parent, name);
			return;
		}
		fs_notify_inode(mnt->notify, parent);
		fs_notify_inode(mnt->notify, newparent);
		fuse_reply_err(req, 0);
		return;
	}
	/* A file being created. */
	ino = fs_newfiles_find(mnt->newfiles, pid, name);
	if (ino) {
		int err = 0;
		guint32 to = mailbox_dir(mnt, newparent, &err);

		if (!to)
			fuse_reply_err(req, err);
		else
			rename_new(mnt, req, ino, to, newname);
		return;
	}
	/* A message: MOVE into another mailbox. */
	uid = find_message(mnt, pid, name, &error);
	if (!uid) {
		if (error)
			reply_error_at(req, error, "rename", parent, name);
		else
			fuse_reply_err(req, ENOENT);
		return;
	}
	if (nid == pid) {
		g_message(
			"rename \"%s\" -> \"%s\": a message's name comes from "
			"the message; move it into another mailbox instead",
			name, newname);
		fuse_reply_err(req, EPERM);
		return;
	}
	{
		int err = 0;

		if (!mailbox_dir(mnt, newparent, &err)) {
			fuse_reply_err(req, err);
			return;
		}
	}
	ino = fs_inode_msg(pid, uid);
	if (is_open(mnt, ino) &&
	    !cache_account_keep(mnt->acct, (CacheMsgRef){pid, uid}, &error)) {
		reply_error_at(req, error, "rename", parent, name);
		return;
	}
	if (!cache_account_move(mnt->acct, (CacheMsgRef){pid, uid}, nid,
				&new_uid, &error)) {
		reply_error_at(req, error, "rename", parent, name);
		return;
	}
	/* Without UIDPLUS the source stays (marked \Deleted): then its inode
	 * is still its own. */
	if (new_uid &&
	    !cache_account_get_message(mnt->acct, (CacheMsgRef){pid, uid}, NULL,
				       NULL)) {
		FsMoved *to = g_new(FsMoved, 1);

		to->ref = (CacheMsgRef){nid, new_uid};
		to->at = g_get_monotonic_time();
		g_mutex_lock(&mnt->lock);
		g_hash_table_replace(mnt->moved, GSIZE_TO_POINTER(ino), to);
		g_mutex_unlock(&mnt->lock);
	}
	/* The message now has another UID, so another inode and maybe another
	 * name: the kernel must not keep the typed name for it. Until it has
	 * dropped it, the old inode stands for the moved message; mv
	 * (coreutils) stats each destination right after renaming, so the drop
	 * waits a moment. */
	fs_notify_entry(mnt->notify, newparent, newname, FS_MOVED_NAME_GRACE);
	fuse_reply_err(req, 0);
}

static void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			  const char *name)
{
	fuse_reply_err(req, EPERM);
}

static void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		       const char *newname)
{
	fuse_reply_err(req, EPERM);
}

/* What df shows for an account whose server names no storage limit: room
 * enough that a file manager, which compares a copy's size with the free
 * space first, does not refuse to copy mail in. */
#define STATFS_UNKNOWN_BYTES (G_GUINT64_CONSTANT(1) << 50) /* 1 PiB */

static void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	/* Blocks of 1 KiB, the unit of an IMAP storage quota; f_bsize too,
	 * since GIO (file managers) counts the blocks in f_bsize. */
	struct statvfs sv = {
		.f_bsize = 1024,
		.f_frsize = 1024,
		.f_namemax = 255,
	};
	CacheQuota quota;

	cache_account_quota(mount_of(req)->acct, &quota);
	if (!quota.has_storage) {
		quota.storage_limit = STATFS_UNKNOWN_BYTES;
		quota.storage_used = 0;
	}
	sv.f_blocks = quota.storage_limit / sv.f_frsize;
	sv.f_bfree = sv.f_bavail =
		(quota.storage_limit - quota.storage_used) / sv.f_frsize;
	if (quota.has_messages) {
		sv.f_files = quota.messages_limit;
		sv.f_ffree = sv.f_favail =
			quota.messages_limit - quota.messages_used;
	}
	fuse_reply_statfs(req, &sv);
}

static void fs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	FsMount *mnt = userdata;

	mnt->no_open =
		mnt->read_only && (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT);
	/* Replies from the disk cache go to the kernel by splice(2), without
	 * a copy through this process, where the kernel allows. */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	/* Every readdir brings attributes, not only a directory's first:
	 * the kernel marks a file's atime stale after each read from us
	 * (on a read-write mount), and only fresh attributes spare the next
	 * walk's stat() of it a GETATTR each. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_op_init,
	.lookup = fs_op_lookup,
	.getattr = fs_op_getattr,
	.setattr = fs_op_setattr,
	.mknod = fs_op_mknod,
	.mkdir = fs_op_mkdir,
	.unlink = fs_op_unlink,
	.rmdir = fs_op_rmdir,
	.symlink = fs_op_symlink,
	.rename = fs_op_rename,
	.link = fs_op_link,
	.open = fs_op_open,
	.read = fs_op_read,
	.write = fs_op_write,
	.flush = fs_op_flush,
	.release = fs_op_release,
	.opendir = fs_op_opendir,
	.readdir = fs_op_readdir,
	.readdirplus = fs_op_readdirplus,
	.releasedir = fs_op_releasedir,
	.statfs = fs_op_statfs,
	.setxattr = fs_op_setxattr,
	.getxattr = fs_op_getxattr,
	.listxattr = fs_op_listxattr,
	.removexattr = fs_op_removexattr,
	.create = fs_op_create,
};

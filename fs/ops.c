/* fs/ops.c — the FUSE low-level handlers.
 *
 * Each handler is short: decode the inode, ask cache/account.h, reply once.
 * No handler holds a lock while replying; the cache copies out what it
 * returns. Directory listings are snapshots taken at opendir, so readdir
 * offsets stay valid while the mailbox changes underneath.
 *
 * This version mounts read-only: every change answers EROFS.
 */
#include "fs/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fs/errmap.h"
#include "fs/inode.h"
#include "fs/names.h"
#include "fs/notify.h"
#include "fs/xattr.h"

#define FS_NEGATIVE_TIMEOUT 1.0

static FsMount *mount_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void reply_error(fuse_req_t req, const GError *error, const char *what,
			guint64 ino)
{
	g_autofree char *where =
		g_strdup_printf("%s (inode %" G_GINT64_MODIFIER "x)", what, ino);

	fuse_reply_err(req, fs_errno_log(error, where));
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
	guint32 pid, puid, id, uid;
	struct stat st;

	if (!fs_inode_decode(parent, &pid, &puid) || puid) {
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
	if (pid != CACHE_ROOT_ID && fs_names_parse_message(name, &uid)) {
		CacheMsgRef ref = {pid, uid};
		CacheMessage msg;

		if (cache_account_get_message(mnt->acct, ref, &msg, &error)) {
			g_autofree char *canonical =
				fs_names_message(uid, msg.subject);
			gboolean same = strcmp(canonical, name) == 0;

			fs_inode_stat_msg(pid, &msg, mnt->uid, mnt->gid, &st);
			cache_message_clear(&msg);
			if (same) {
				fill_entry(mnt, &st, &e);
				fuse_reply_entry(req, &e);
				return;
			}
		} else if (!g_error_matches(error, IMAPFS_CACHE_ERROR,
					    CACHE_ERROR_NOT_FOUND)) {
			reply_error(req, error, "lookup", parent);
			return;
		}
	}
	memset(&e, 0, sizeof(e));
	e.entry_timeout = FS_NEGATIVE_TIMEOUT;
	fuse_reply_entry(req, &e);
}

static gboolean stat_inode(FsMount *mnt, fuse_ino_t ino, struct stat *st,
			   GError **error)
{
	guint32 id, uid;

	if (!fs_inode_decode(ino, &id, &uid)) {
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_FOUND,
			    "unknown inode");
		return FALSE;
	}
	if (uid == 0) {
		CacheMailbox mbox;

		if (!cache_account_get_mailbox(mnt->acct, id, &mbox, error))
			return FALSE;
		fs_inode_stat_dir(&mbox, mnt->uid, mnt->gid, mnt->mount_time,
				  st);
		cache_mailbox_clear(&mbox);
	} else {
		CacheMsgRef ref = {id, uid};
		CacheMessage msg;

		if (!cache_account_get_message(mnt->acct, ref, &msg, error))
			return FALSE;
		fs_inode_stat_msg(id, &msg, mnt->uid, mnt->gid, st);
		cache_message_clear(&msg);
	}
	return TRUE;
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

typedef struct {
	char *name;
	struct stat st;
} DirEntry;

static void dir_entry_clear(gpointer data)
{
	g_free(((DirEntry *)data)->name);
}

static void add_entry(GArray *dir, char *name, const struct stat *st)
{
	DirEntry entry = {name, *st};

	g_array_append_val(dir, entry);
}

static GArray *snapshot_dir(FsMount *mnt, guint32 id, GError **error)
{
	g_autoptr(GArray) dir = NULL;
	g_autoptr(GArray) children = NULL;
	CacheMailbox self, parent = {0};
	struct stat st;

	if (!cache_account_get_mailbox(mnt->acct, id, &self, error))
		return NULL;
	dir = g_array_new(FALSE, TRUE, sizeof(DirEntry));
	g_array_set_clear_func(dir, dir_entry_clear);

	fs_inode_stat_dir(&self, mnt->uid, mnt->gid, mnt->mount_time, &st);
	add_entry(dir, g_strdup("."), &st);
	if (id != CACHE_ROOT_ID &&
	    cache_account_get_mailbox(mnt->acct, self.parent_id, &parent,
				      NULL)) {
		fs_inode_stat_dir(&parent, mnt->uid, mnt->gid,
				  mnt->mount_time, &st);
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
		g_autoptr(GArray) msgs =
			cache_account_list_messages(mnt->acct, id, error);

		if (!msgs) {
			cache_mailbox_clear(&self);
			return NULL;
		}
		for (guint i = 0; i < msgs->len; i++) {
			CacheMessage *msg = &g_array_index(msgs, CacheMessage, i);

			fs_inode_stat_msg(id, msg, mnt->uid, mnt->gid, &st);
			add_entry(dir, fs_names_message(msg->uid, msg->subject),
				  &st);
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
	guint32 id, uid;
	GArray *dir;

	if (!fs_inode_decode(ino, &id, &uid) || uid) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	dir = snapshot_dir(mnt, id, &error);
	if (!dir) {
		reply_error(req, error, "opendir", ino);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)dir;
	if (fuse_reply_open(req, fi) != 0)
		g_array_unref(dir);
}

static void reply_dir(fuse_req_t req, size_t size, off_t off,
		      struct fuse_file_info *fi, gboolean plus)
{
	FsMount *mnt = mount_of(req);
	GArray *dir = (GArray *)(uintptr_t)fi->fh;
	g_autofree char *buf = g_malloc(size);
	size_t used = 0;

	for (guint i = off; i < dir->len; i++) {
		DirEntry *entry = &g_array_index(dir, DirEntry, i);
		size_t n;

		if (plus) {
			struct fuse_entry_param e;

			fill_entry(mnt, &entry->st, &e);
			n = fuse_add_direntry_plus(req, buf + used, size - used,
						   entry->name, &e, i + 1);
		} else {
			n = fuse_add_direntry(req, buf + used, size - used,
					      entry->name, &entry->st, i + 1);
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
	g_array_unref((GArray *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- Files -------------------------------------------------------------- */

static void fs_op_open(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;
	guint32 id, uid;
	struct stat st;

	if (!fs_inode_decode(ino, &id, &uid) || uid == 0) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (!stat_inode(mnt, ino, &st, &error)) {
		reply_error(req, error, "open", ino);
		return;
	}
	/* A message never changes: what the kernel cached stays right. */
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	FsMount *mnt = mount_of(req);
	g_autoptr(GError) error = NULL;
	g_autoptr(GCancellable) cancel = g_cancellable_new();
	CacheMsgRef ref;
	CacheSpan span;
	gboolean ok;

	if (!fs_inode_decode(ino, &ref.mailbox_id, &ref.uid) || ref.uid == 0) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	fuse_req_interrupt_func(req, on_interrupt, cancel);
	ok = cache_account_read(mnt->acct, ref, off, size, &span, cancel,
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

static void fs_op_release(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
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
	guint32 id, uid;

	/* security.*, system.* and the like cost no round trip. */
	if (!g_str_has_prefix(name, FS_XATTR_PREFIX) ||
	    !fs_inode_decode(ino, &id, &uid)) {
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
		CacheMsgRef ref = {id, uid};
		CacheMessage msg;

		if (!cache_account_get_message(mnt->acct, ref, &msg, &error)) {
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

	if (!fs_inode_decode(ino, &id, &uid) || uid == 0) {
		reply_xattr_value(req, "", 0, size);
		return;
	}
	names = fs_xattr_message_list(&len);
	reply_xattr_value(req, names, len, size);
}

/* ---- Everything else ---------------------------------------------------- */

static void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = {
		.f_bsize = 4096,
		.f_frsize = 4096,
		.f_namemax = 255,
	};

	fuse_reply_statfs(req, &sv);
}

static void fs_op_erofs(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

static void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			  int to_set, struct fuse_file_info *fi)
{
	fs_op_erofs(req);
}

static void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, dev_t rdev)
{
	fs_op_erofs(req);
}

static void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode)
{
	fs_op_erofs(req);
}

static void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_op_erofs(req);
}

static void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			  const char *name)
{
	fs_op_erofs(req);
}

static void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname,
			 unsigned int flags)
{
	fs_op_erofs(req);
}

static void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		       const char *newname)
{
	fs_op_erofs(req);
}

static void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			 mode_t mode, struct fuse_file_info *fi)
{
	fs_op_erofs(req);
}

static void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			   const char *value, size_t size, int flags)
{
	fs_op_erofs(req);
}

static void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fs_op_erofs(req);
}

const struct fuse_lowlevel_ops fs_ops = {
	.lookup = fs_op_lookup,
	.getattr = fs_op_getattr,
	.setattr = fs_op_setattr,
	.mknod = fs_op_mknod,
	.mkdir = fs_op_mkdir,
	.unlink = fs_op_unlink,
	.rmdir = fs_op_unlink,
	.symlink = fs_op_symlink,
	.rename = fs_op_rename,
	.link = fs_op_link,
	.open = fs_op_open,
	.read = fs_op_read,
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

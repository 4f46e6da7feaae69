/* fs/newfile.c — pending new files (see newfile.h for the life cycle).
 *
 * Each pending file is an unnamed-looking temporary file "new-<n>" in the
 * cache's new/ directory, removed once its APPEND succeeded. The table
 * maps temporary inode -> file and (mailbox, name) -> inode. Committed
 * files stay in the inode map (a few bytes each) so the kernel's inode for
 * them keeps resolving to the message they became.
 */
#include "fs/newfile.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cache/error.h"
#include "fs/names.h"

typedef struct {
	fuse_ino_t ino;
	guint32 mailbox_id;
	char *name;
	char *path;
	int fd; /* -1 once committed */
	guint opens;
	char *flags;  /* canonical; nullable */
	gint64 mtime; /* 0: not set */
	gint64 ctime;
	pid_t creator;
	gboolean committed;
	gboolean committing;
	gboolean dropped; /* unlinked, or its writer was killed, before it
			   * was added */
	int write_errno;  /* a write failed: it is never added */
	CacheMsgRef ref;  /* once committed */
} NewFile;

struct FsNewFiles {
	char *dir;
	GMutex lock; /* guards everything below; a leaf lock */
	guint64 next;
	GHashTable *by_ino;  /* fuse_ino_t * -> NewFile * (owned) */
	GHashTable *by_name; /* "<mailbox>/<name>" -> NewFile * */
};

static void newfile_free(NewFile *file)
{
	if (file->fd >= 0)
		close(file->fd);
	g_free(file->name);
	g_free(file->path);
	g_free(file->flags);
	g_free(file);
}

static char *name_key(guint32 mailbox_id, const char *name)
{
	return g_strdup_printf("%u/%s", mailbox_id, name);
}

FsNewFiles *fs_newfiles_new(const char *dir, GError **error)
{
	FsNewFiles *files;

	if (g_mkdir_with_parents(dir, 0700) < 0) {
		int err = errno;

		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
			    "cannot create %s: %s", dir, g_strerror(err));
		return NULL;
	}
	files = g_new0(FsNewFiles, 1);
	files->dir = g_strdup(dir);
	/* Temporary inode numbers differ between mounts too (they are
	 * matched in other processes' /proc/PID/fdinfo, which names no
	 * mount): a random high part. */
	files->next = (guint64)g_random_int_range(1, 1 << 20) << 32;
	g_mutex_init(&files->lock);
	files->by_ino = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
					      (GDestroyNotify)newfile_free);
	files->by_name =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	return files;
}

void fs_newfiles_free(FsNewFiles *files)
{
	GHashTableIter iter;
	gpointer value;

	if (!files)
		return;
	g_hash_table_iter_init(&iter, files->by_ino);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		NewFile *file = value;
		struct stat st;

		if (file->committed || file->dropped)
			continue;
		if (file->fd >= 0 && fstat(file->fd, &st) == 0 &&
		    st.st_size == 0)
			g_unlink(file->path); /* nothing to keep */
		else if (file->name[0] == '.')
			g_warning("%s was never added to the mailbox (its name "
				  "starts with '.' and it was not renamed); "
				  "its bytes are kept in %s",
				  file->name, file->path);
		else
			g_warning("%s was never added to the mailbox (%s); "
				  "its bytes are kept in %s",
				  file->name,
				  file->opens > 0
					  ? "it was still open"
					  : "adding it failed: see above",
				  file->path);
	}
	g_hash_table_unref(files->by_name);
	g_hash_table_unref(files->by_ino);
	g_mutex_clear(&files->lock);
	g_free(files->dir);
	g_free(files);
}

/* The process (thread group) of thread @tid, as FUSE names callers by
 * thread: a program may create a file in one thread and close it in
 * another. 0 if it is gone. */
static pid_t process_of(pid_t tid)
{
	char path[64], line[128];
	pid_t tgid = 0;
	FILE *f;

	g_snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Tgid: %d", &tgid) == 1)
			break;
	fclose(f);
	return tgid;
}

/* Reads /proc/@tid/stat: TRUE if the thread is exiting because a signal
 * killed its process; *out_signal gets the signal. */
static gboolean killed_by_signal(pid_t tid, int *out_signal)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)tid);
	g_autofree char *text = NULL;
	g_auto(GStrv) fields = NULL;
	const char *rest;
	guint64 flags, exit_code;

	if (!g_file_get_contents(path, &text, NULL, NULL))
		return FALSE;
	/* After the command name (in parentheses, any bytes), fields 3 on:
	 * flags is field 9, exit_code field 52 (Linux 3.5). */
	rest = strrchr(text, ')');
	if (!rest)
		return FALSE;
	fields = g_strsplit(g_strstrip((char *)rest + 1), " ", 0);
	if (g_strv_length(fields) < 50)
		return FALSE;
	flags = g_ascii_strtoull(fields[6], NULL, 10);
	exit_code = g_ascii_strtoull(fields[49], NULL, 10);
	if (!(flags & 0x4) /* PF_EXITING */ || (exit_code & 0x7f) == 0)
		return FALSE;
	*out_signal = (int)(exit_code & 0x7f);
	return TRUE;
}

/* TRUE if process @tgid still holds a descriptor of our inode @ino (by
 * /proc/@tgid/fdinfo; the descriptor being closed is already gone from
 * its table, and so is every one once the process is exiting). */
static gboolean still_open_in(pid_t tgid, fuse_ino_t ino)
{
	g_autofree char *dir_path =
		g_strdup_printf("/proc/%d/fdinfo", (int)tgid);
	g_autofree char *want = g_strdup_printf(
		"\nino:\t%" G_GUINT64_FORMAT "\n", (guint64)ino);
	GDir *dir = g_dir_open(dir_path, 0, NULL);
	const char *name;
	gboolean found = FALSE;

	if (!dir)
		return FALSE;
	while (!found && (name = g_dir_read_name(dir))) {
		g_autofree char *path = g_build_filename(dir_path, name, NULL);
		g_autofree char *info = NULL;

		if (g_file_get_contents(path, &info, NULL, NULL))
			found = strstr(info, want) != NULL;
	}
	g_dir_close(dir);
	return found;
}

static NewFile *lookup_locked(FsNewFiles *files, fuse_ino_t ino)
{
	return g_hash_table_lookup(files->by_ino, &ino);
}

/* A dropped file nobody has open needs its descriptor no more (its bytes,
 * when kept, stay at its path): one per dropped file would run the
 * process out of descriptors. */
static void close_if_done_locked(NewFile *file)
{
	if (file->dropped && file->opens == 0 && !file->committing &&
	    file->fd >= 0) {
		close(file->fd);
		file->fd = -1;
	}
}

gboolean fs_newfiles_create(FsNewFiles *files, guint32 mailbox_id,
			    const char *name, pid_t creator,
			    fuse_ino_t *out_ino, GError **error)
{
	NewFile *file = g_new0(NewFile, 1);
	pid_t process = process_of(creator); /* /proc: outside the lock */
	char base[32];
	gboolean remade = FALSE;

	g_mutex_lock(&files->lock);
	/* Never over bytes an earlier run kept here: a name of its own. */
	do {
		file->ino = FS_INO_NEW_BIT | ++files->next;
		g_snprintf(base, sizeof(base), "new-%" G_GUINT64_FORMAT "-%u",
			   files->next & G_MAXUINT32, (guint)getpid());
		g_free(file->path);
		file->path = g_build_filename(files->dir, base, NULL);
		file->fd = open(file->path,
				O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		/* The directory was removed while mounted (a user freeing
		 * space): made again, once. */
		if (file->fd < 0 && errno == ENOENT && !remade &&
		    g_mkdir_with_parents(files->dir, 0700) == 0) {
			remade = TRUE;
			errno = EEXIST;
		}
	} while (file->fd < 0 && errno == EEXIST);
	if (file->fd < 0) {
		int err = errno;

		g_mutex_unlock(&files->lock);
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err),
			    "cannot create %s: %s", file->path,
			    g_strerror(err));
		newfile_free(file);
		return FALSE;
	}
	file->mailbox_id = mailbox_id;
	file->creator = process;
	file->name = g_strdup(name);
	file->ctime = g_get_real_time() / G_USEC_PER_SEC;
	g_hash_table_insert(files->by_ino, &file->ino, file);
	g_hash_table_replace(files->by_name, name_key(mailbox_id, name), file);
	g_mutex_unlock(&files->lock);
	*out_ino = file->ino;
	return TRUE;
}

fuse_ino_t fs_newfiles_find(FsNewFiles *files, guint32 mailbox_id,
			    const char *name)
{
	g_autofree char *key = name_key(mailbox_id, name);
	NewFile *file;
	fuse_ino_t ino;

	g_mutex_lock(&files->lock);
	file = g_hash_table_lookup(files->by_name, key);
	ino = file ? file->ino : 0;
	g_mutex_unlock(&files->lock);
	return ino;
}

gboolean fs_newfiles_stat(FsNewFiles *files, fuse_ino_t ino, uid_t uid,
			  gid_t gid, struct stat *st)
{
	NewFile *file;
	struct stat fst;
	gboolean ok = FALSE;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	if (file && file->fd >= 0 && fstat(file->fd, &fst) == 0) {
		memset(st, 0, sizeof(*st));
		st->st_ino = ino;
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_uid = uid;
		st->st_gid = gid;
		st->st_size = fst.st_size;
		st->st_blocks = fst.st_blocks;
		st->st_blksize = 4096;
		st->st_mtime = file->mtime ? file->mtime : fst.st_mtime;
		st->st_atime = st->st_mtime;
		st->st_ctime = file->ctime;
		ok = TRUE;
	}
	g_mutex_unlock(&files->lock);
	return ok;
}

FsNewFileClose fs_newfiles_closing(FsNewFiles *files, fuse_ino_t ino, pid_t tid,
				   int *out_signal)
{
	pid_t process = process_of(tid);
	NewFile *file;
	pid_t creator;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	creator = file ? file->creator : 0;
	g_mutex_unlock(&files->lock);
	if (!process || process != creator)
		return FS_NEWFILE_CLOSE_OTHER;
	if (killed_by_signal(tid, out_signal))
		return FS_NEWFILE_CLOSE_KILLED;
	if (still_open_in(process, ino))
		return FS_NEWFILE_CLOSE_OTHER;
	return FS_NEWFILE_CLOSE_LAST;
}

/* Marks a file still pending as dropped and frees its name: TRUE if it
 * was. */
static gboolean drop_locked(FsNewFiles *files, NewFile *file)
{
	g_autofree char *key = NULL;

	if (!file || file->committed || file->committing || file->dropped)
		return FALSE;
	key = name_key(file->mailbox_id, file->name);
	if (g_hash_table_lookup(files->by_name, key) == file)
		g_hash_table_remove(files->by_name, key);
	file->dropped = TRUE;
	return TRUE;
}

void fs_newfiles_abandon(FsNewFiles *files, fuse_ino_t ino, const char *why)
{
	NewFile *file;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	if (drop_locked(files, file)) {
		close_if_done_locked(file);
		g_warning("%s was not added to the mailbox: %s; what was "
			  "written is kept in %s",
			  file->name, why, file->path);
	}
	g_mutex_unlock(&files->lock);
}

char *fs_newfiles_name(FsNewFiles *files, fuse_ino_t ino,
		       guint32 *out_mailbox_id)
{
	NewFile *file;
	char *name = NULL;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	if (file) {
		name = g_strdup(file->name);
		*out_mailbox_id = file->mailbox_id;
	}
	g_mutex_unlock(&files->lock);
	return name;
}

gboolean fs_newfiles_committed(FsNewFiles *files, fuse_ino_t ino,
			       CacheMsgRef *out_ref)
{
	NewFile *file;
	gboolean committed = FALSE;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	if (file && file->committed) {
		*out_ref = file->ref;
		committed = TRUE;
	}
	g_mutex_unlock(&files->lock);
	return committed;
}

/* The fd of a pending file, dup'ed so I/O runs outside the lock. */
static int pending_fd(FsNewFiles *files, fuse_ino_t ino)
{
	NewFile *file;
	int fd = -ENOENT;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	if (file && file->fd >= 0 && !file->committing) {
		fd = dup(file->fd);
		if (fd < 0)
			fd = -errno;
	} else if (file) {
		fd = -EBUSY; /* already on its way to the server */
	}
	g_mutex_unlock(&files->lock);
	return fd;
}

ssize_t fs_newfiles_write(FsNewFiles *files, CacheAccount *acct,
			  fuse_ino_t ino, const char *buf, size_t size,
			  off_t off)
{
	int fd = pending_fd(files, ino);
	ssize_t n;

	if (fd < 0)
		return fd == -EBUSY ? -EPERM : fd;
	n = pwrite(fd, buf, size, off);
	/* A disk full of cached messages makes room for a new one. */
	if (n < 0 && (errno == ENOSPC || errno == EDQUOT) &&
	    cache_account_make_room(acct, size))
		n = pwrite(fd, buf, size, off);
	if (n < 0) {
		NewFile *file;

		n = -errno;
		g_mutex_lock(&files->lock);
		file = lookup_locked(files, ino);
		if (file)
			file->write_errno = -n;
		g_mutex_unlock(&files->lock);
	}
	close(fd);
	return n;
}

ssize_t fs_newfiles_read(FsNewFiles *files, fuse_ino_t ino, char *buf,
			 size_t size, off_t off)
{
	int fd = pending_fd(files, ino);
	ssize_t n;

	if (fd < 0)
		return fd;
	n = pread(fd, buf, size, off);
	if (n < 0)
		n = -errno;
	close(fd);
	return n;
}

int fs_newfiles_truncate(FsNewFiles *files, fuse_ino_t ino, off_t size)
{
	int fd = pending_fd(files, ino);
	int ret = 0;

	if (fd < 0)
		return fd == -EBUSY ? -EPERM : fd;
	if (ftruncate(fd, size) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int fs_newfiles_set_mtime(FsNewFiles *files, fuse_ino_t ino, gint64 mtime)
{
	NewFile *file;
	int ret = -ENOENT;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	if (file && !file->committed) {
		file->mtime = mtime;
		ret = 0;
	}
	g_mutex_unlock(&files->lock);
	return ret;
}

int fs_newfiles_set_flags(FsNewFiles *files, fuse_ino_t ino, const char *flags)
{
	NewFile *file;
	int ret = -ENOENT;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	if (file && !file->committed) {
		g_free(file->flags);
		file->flags = g_strdup(flags);
		ret = 0;
	}
	g_mutex_unlock(&files->lock);
	return ret;
}

char *fs_newfiles_get_flags(FsNewFiles *files, fuse_ino_t ino)
{
	NewFile *file;
	char *flags = NULL;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	if (file)
		flags = g_strdup(file->flags);
	g_mutex_unlock(&files->lock);
	return flags;
}

void fs_newfiles_open(FsNewFiles *files, fuse_ino_t ino)
{
	NewFile *file;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	if (file)
		file->opens++;
	g_mutex_unlock(&files->lock);
}

gboolean fs_newfiles_release(FsNewFiles *files, fuse_ino_t ino)
{
	NewFile *file;
	gboolean last = FALSE;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	if (file && file->opens > 0)
		last = --file->opens == 0;
	if (file)
		close_if_done_locked(file);
	g_mutex_unlock(&files->lock);
	return last;
}

int fs_newfiles_rename(FsNewFiles *files, fuse_ino_t ino, guint32 mailbox_id,
		       const char *name)
{
	g_autofree char *old_key = NULL;
	NewFile *file;
	int ret = -ENOENT;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	if (file && !file->committed) {
		old_key = name_key(file->mailbox_id, file->name);
		g_hash_table_remove(files->by_name, old_key);
		g_free(file->name);
		file->name = g_strdup(name);
		file->mailbox_id = mailbox_id;
		g_hash_table_replace(files->by_name, name_key(mailbox_id, name),
				     file);
		ret = 0;
	}
	g_mutex_unlock(&files->lock);
	return ret;
}

void fs_newfiles_move_mailbox(FsNewFiles *files, guint32 old_id, guint32 new_id)
{
	GHashTableIter iter;
	gpointer value;

	g_mutex_lock(&files->lock);
	g_hash_table_iter_init(&iter, files->by_ino);
	while (g_hash_table_iter_next(&iter, NULL, &value)) {
		NewFile *file = value;
		g_autofree char *key = NULL;

		if (file->mailbox_id != old_id)
			continue;
		key = name_key(old_id, file->name);
		if (g_hash_table_lookup(files->by_name, key) == file) {
			g_autofree char *new_key = name_key(new_id, file->name);

			g_hash_table_remove(files->by_name, key);
			/* A file made there since, under that name, is
			 * newer: it keeps the name, as in create. */
			if (!g_hash_table_contains(files->by_name, new_key))
				g_hash_table_insert(files->by_name,
						    g_steal_pointer(&new_key),
						    file);
		}
		file->mailbox_id = new_id;
	}
	g_mutex_unlock(&files->lock);
}

int fs_newfiles_unlink(FsNewFiles *files, guint32 mailbox_id, const char *name)
{
	g_autofree char *key = name_key(mailbox_id, name);
	NewFile *file;
	int ret = -ENOENT;

	g_mutex_lock(&files->lock);
	file = g_hash_table_lookup(files->by_name, key);
	if (file) {
		g_hash_table_remove(files->by_name, key);
		g_unlink(file->path);
		/* An open fd keeps the bytes readable until the last
		 * close; they are never added. */
		file->dropped = TRUE;
		close_if_done_locked(file);
		ret = 0;
	}
	g_mutex_unlock(&files->lock);
	return ret;
}

gboolean fs_newfiles_same_as(FsNewFiles *files, fuse_ino_t ino,
			     CacheAccount *acct, CacheMsgRef ref,
			     gboolean *out_same, GError **error)
{
	int fd = pending_fd(files, ino);
	gboolean ok;

	if (fd < 0) {
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(-fd),
			    "pending file: %s", g_strerror(-fd));
		return FALSE;
	}
	ok = cache_account_same_message(acct, ref, fd, out_same, error);
	close(fd);
	return ok;
}

void fs_newfiles_discard(FsNewFiles *files, fuse_ino_t ino)
{
	NewFile *file;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	if (drop_locked(files, file)) {
		g_unlink(file->path);
		close_if_done_locked(file);
	}
	g_mutex_unlock(&files->lock);
}

gboolean fs_newfiles_ready(FsNewFiles *files, fuse_ino_t ino, gboolean final)
{
	NewFile *file;
	gboolean ready = FALSE;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	if (file && !file->committed && !file->committing && !file->dropped)
		ready = final || file->name[0] != '.';
	g_mutex_unlock(&files->lock);
	return ready;
}

gboolean fs_newfiles_commit(FsNewFiles *files, fuse_ino_t ino,
			    CacheAccount *acct, gboolean keep_name,
			    guint32 *out_parent, char **out_name,
			    gboolean *out_dropped, GError **error)
{
	g_autofree char *flags = NULL;
	g_autofree char *alias = NULL;
	guint32 mailbox_id, uid = 0, parsed;
	gint64 mtime;
	NewFile *file;
	gboolean ok;
	int fd, dup_errno = 0;

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	if (!file || file->committed || file->committing || file->dropped) {
		g_mutex_unlock(&files->lock);
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_FOUND,
			    "no pending file");
		return FALSE;
	}
	/* Some of its bytes never arrived: adding the rest would add a
	 * message cut short. Its writer was told, at write() and now at
	 * close(); the part written goes too, not to fill a full disk. */
	if (file->write_errno) {
		int err = file->write_errno;

		drop_locked(files, file);
		close_if_done_locked(file);
		g_unlink(file->path);
		g_set_error(error, G_IO_ERROR, cache_io_error_from_errno(err),
			    "a write to it failed (%s), so nothing was added "
			    "to the mailbox",
			    g_strerror(err));
		g_mutex_unlock(&files->lock);
		return FALSE;
	}
	file->committing = TRUE;
	fd = dup(file->fd);
	if (fd < 0)
		dup_errno = errno;
	flags = g_strdup(file->flags);
	mailbox_id = file->mailbox_id;
	mtime = file->mtime;
	/* Keep a name that looks like a message file (a backup's), so the
	 * next rsync of that backup sees it is there. */
	if (keep_name && fs_names_parse_message(file->name, &parsed))
		alias = g_strdup(file->name);
	g_mutex_unlock(&files->lock);

	if (fd < 0) {
		int err = dup_errno;

		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err),
			    "pending file: %s", g_strerror(err));
		ok = FALSE;
	} else {
		/* The mailbox the server made anew in its place, if so. */
		mailbox_id = cache_account_current_dir(acct, mailbox_id);
		ok = cache_account_append(acct, mailbox_id, fd, flags, mtime,
					  alias, &uid, error);
		close(fd);
	}

	g_mutex_lock(&files->lock);
	file = lookup_locked(files, ino);
	file->committing = FALSE;
	if (!ok)
		close_if_done_locked(file);
	if (ok) {
		g_autofree char *key = name_key(file->mailbox_id, file->name);

		file->committed = TRUE;
		file->ref = (CacheMsgRef){mailbox_id, uid};
		if (g_hash_table_lookup(files->by_name, key) == file)
			g_hash_table_remove(files->by_name, key);
		*out_parent = file->mailbox_id;
		*out_name = g_strdup(file->name);
		*out_dropped = file->dropped;
		close(file->fd);
		file->fd = -1;
		g_unlink(file->path);
	}
	g_mutex_unlock(&files->lock);
	return ok;
}

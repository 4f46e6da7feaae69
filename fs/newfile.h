/* fs/newfile.h — files created in a mailbox directory, before they become
 * messages.
 *
 * create + write + close of a file in a mailbox is an APPEND. Until then
 * the bytes live in a private temporary file and the node has a temporary
 * inode number (bit 63 set, so it can never collide with a computed one,
 * see fs/inode.h). The APPEND happens when the file is closed, or, for a
 * name starting with '.' (rsync's temporary files), when it is renamed to
 * its final name: rsync sets the time and the xattrs between close and
 * rename, and both belong in the APPEND (INTERNALDATE, flags). The final
 * name, when it has the shape of a message file name, is kept as the new
 * message's name, so a second rsync of the same backup finds it.
 * Thread-safe: one lock, never held across a call into cache/.
 */
#ifndef IMAPFS_FS_NEWFILE_H
#define IMAPFS_FS_NEWFILE_H

#include <fuse_lowlevel.h>
#include <glib.h>
#include <sys/stat.h>
#include "cache/account.h"

#define FS_INO_NEW_BIT ((fuse_ino_t)1 << 63)

typedef struct FsNewFiles FsNewFiles;

FsNewFiles *fs_newfiles_new(const char *dir, GError **error);
/* Frees the table; files never added are logged, and their bytes stay in
 * the directory so nothing is lost silently. NULL-safe. */
void fs_newfiles_free(FsNewFiles *files);

static inline gboolean fs_newfiles_is_new(fuse_ino_t ino)
{
	return (ino & FS_INO_NEW_BIT) != 0;
}

/* Creates @name in mailbox @mailbox_id for thread @creator (FUSE's
 * caller pid); *out_ino gets its inode. */
gboolean fs_newfiles_create(FsNewFiles *files, guint32 mailbox_id,
			    const char *name, pid_t creator,
			    fuse_ino_t *out_ino, GError **error);
/* What a close() of pending file @ino by thread @tid (FUSE's caller pid)
 * means. Only the creating process ends a message; a child that inherited
 * the descriptor and closes it (at exit or exec) does not, nor does the
 * creator closing one of several descriptors (a shell's dup2 and close
 * around a redirection): the message is complete at the creator's last
 * close, in whichever of its threads. */
typedef enum {
	FS_NEWFILE_CLOSE_OTHER,	 /* not the end of the message */
	FS_NEWFILE_CLOSE_LAST,	 /* the creator's last descriptor */
	FS_NEWFILE_CLOSE_KILLED, /* the creator was killed by *out_signal */
} FsNewFileClose;
FsNewFileClose fs_newfiles_closing(FsNewFiles *files, fuse_ino_t ino, pid_t tid,
				   int *out_signal);
/* @ino is never added, for the reason @why ("the program writing it was
 * killed ..."): its name goes, its bytes stay in the directory, and a log
 * line says why and where. */
void fs_newfiles_abandon(FsNewFiles *files, fuse_ino_t ino, const char *why);
/* The pending file called @name in @mailbox_id, or 0. */
fuse_ino_t fs_newfiles_find(FsNewFiles *files, guint32 mailbox_id,
			    const char *name);
/* FALSE if @ino is unknown. A committed file stats as its message would
 * not: callers redirect through fs_newfiles_committed() first. */
gboolean fs_newfiles_stat(FsNewFiles *files, fuse_ino_t ino, uid_t uid,
			  gid_t gid, struct stat *st);
/* The name of pending file @ino and its mailbox (*out_mailbox_id), or
 * NULL. (transfer full) */
char *fs_newfiles_name(FsNewFiles *files, fuse_ino_t ino,
		       guint32 *out_mailbox_id);
/* TRUE if @ino was added as message *out_ref. */
gboolean fs_newfiles_committed(FsNewFiles *files, fuse_ino_t ino,
			       CacheMsgRef *out_ref);

/* Data and attributes; negative errno on failure. A write that finds the
 * disk full has @acct make room and is tried again; a file a write to
 * which failed all the same is never added: its commit fails with that
 * error, and its bytes go. */
ssize_t fs_newfiles_write(FsNewFiles *files, CacheAccount *acct,
			  fuse_ino_t ino, const char *buf, size_t size,
			  off_t off);
ssize_t fs_newfiles_read(FsNewFiles *files, fuse_ino_t ino, char *buf,
			 size_t size, off_t off);
int fs_newfiles_truncate(FsNewFiles *files, fuse_ino_t ino, off_t size);
int fs_newfiles_set_mtime(FsNewFiles *files, fuse_ino_t ino, gint64 mtime);
/* @flags canonical (cache_account_check_flags), or NULL to clear. */
int fs_newfiles_set_flags(FsNewFiles *files, fuse_ino_t ino, const char *flags);
/* (transfer full), nullable. */
char *fs_newfiles_get_flags(FsNewFiles *files, fuse_ino_t ino);

void fs_newfiles_open(FsNewFiles *files, fuse_ino_t ino);
/* Returns TRUE when that was the last open handle. */
gboolean fs_newfiles_release(FsNewFiles *files, fuse_ino_t ino);

/* Renames the pending file (the kernel checked the target is free). */
int fs_newfiles_rename(FsNewFiles *files, fuse_ino_t ino, guint32 mailbox_id,
		       const char *name);
/* Forgets the pending file @name of @mailbox_id: -ENOENT if none. */
int fs_newfiles_unlink(FsNewFiles *files, guint32 mailbox_id, const char *name);
/* Files pending in mailbox @old_id are in @new_id from now on (the server
 * made the mailbox anew). Any thread. */
void fs_newfiles_move_mailbox(FsNewFiles *files, guint32 old_id,
			      guint32 new_id);

/* TRUE if the file should become a message now: not yet added, and
 * (unless @final) its name does not start with '.'. */
gboolean fs_newfiles_ready(FsNewFiles *files, fuse_ino_t ino, gboolean final);

/* *out_same: whether pending file @ino holds message @ref, byte for byte
 * once its bare LFs are made CRLF (a backup's copy of it). */
gboolean fs_newfiles_same_as(FsNewFiles *files, fuse_ino_t ino,
			     CacheAccount *acct, CacheMsgRef ref,
			     gboolean *out_same, GError **error);
/* Forgets pending file @ino and its bytes: the server has them already. */
void fs_newfiles_discard(FsNewFiles *files, fuse_ino_t ino);

/* APPENDs the file. With @keep_name, a name with the shape of a message
 * file name stays the message's name. On success it is no longer pending
 * by name, and *out_parent / *out_name (transfer full) say which entry the
 * kernel must forget. *out_dropped is TRUE if the file was unlinked while
 * its APPEND was under way: the caller then removes the message it
 * became (fs_newfiles_committed() names it). */
gboolean fs_newfiles_commit(FsNewFiles *files, fuse_ino_t ino,
			    CacheAccount *acct, gboolean keep_name,
			    guint32 *out_parent, char **out_name,
			    gboolean *out_dropped, GError **error);

#endif

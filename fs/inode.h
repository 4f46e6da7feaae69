/* fs/inode.h — inode numbers, computed, never stored.
 *
 * A node is a mailbox directory or a message, and both already have stable
 * names in cache/: (mailbox id) and (mailbox id, UID). So the inode number
 * is simply that pair packed into 64 bits: mailbox id in the high half,
 * UID (0 for the directory itself) in the low half; the root is
 * FUSE_ROOT_ID. Numbers are stable for the life of the mount, and no inode
 * table, lookup count or forget bookkeeping is needed.
 */
#ifndef IMAPFS_FS_INODE_H
#define IMAPFS_FS_INODE_H

#include <fuse_lowlevel.h>
#include <glib.h>
#include <sys/stat.h>
#include "cache/account.h"

static inline fuse_ino_t fs_inode_dir(guint32 mailbox_id)
{
	return mailbox_id == CACHE_ROOT_ID ? FUSE_ROOT_ID
					   : (fuse_ino_t)mailbox_id << 32;
}

static inline fuse_ino_t fs_inode_msg(guint32 mailbox_id, guint32 uid)
{
	return ((fuse_ino_t)mailbox_id << 32) | uid;
}

/* Splits @ino: *out_uid is 0 for a directory. FALSE for a number we never
 * handed out. */
gboolean fs_inode_decode(fuse_ino_t ino, guint32 *out_mailbox_id,
			 guint32 *out_uid);

/* Attributes from their few varying parts: @nlink 0 makes a message
 * (regular file, @size bytes), else a directory with @nlink links; @mtime
 * is INTERNALDATE or the directory's time. */
void fs_inode_stat_fill(fuse_ino_t ino, guint32 nlink, guint64 size,
			gint64 mtime, uid_t uid, gid_t gid, struct stat *st);

/* Attributes of a directory and of a message. */
void fs_inode_stat_dir(const CacheMailbox *mbox, uid_t uid, gid_t gid,
		       time_t mtime, struct stat *st);
void fs_inode_stat_msg(guint32 mailbox_id, const CacheMessage *msg, uid_t uid,
		       gid_t gid, struct stat *st);

#endif

/* fs/inode.c — inode numbers and the attributes behind them. */
#include "fs/inode.h"

#include <string.h>

gboolean fs_inode_decode(fuse_ino_t ino, guint32 *out_mailbox_id,
			 guint32 *out_uid)
{
	if (ino == FUSE_ROOT_ID) {
		*out_mailbox_id = CACHE_ROOT_ID;
		*out_uid = 0;
		return TRUE;
	}
	*out_mailbox_id = ino >> 32;
	*out_uid = ino & 0xffffffffu;
	return *out_mailbox_id != CACHE_ROOT_ID;
}

void fs_inode_stat_fill(fuse_ino_t ino, guint32 nlink, guint64 size,
			gint64 mtime, uid_t uid, gid_t gid, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = uid;
	st->st_gid = gid;
	st->st_mtime = st->st_ctime = st->st_atime = mtime;
	if (nlink) {
		st->st_mode = S_IFDIR | 0700;
		st->st_nlink = nlink;
		st->st_size = 4096;
		st->st_blksize = 4096;
	} else {
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_size = size;
		st->st_blksize = 128 * 1024;
		st->st_blocks = (size + 511) / 512;
	}
}

void fs_inode_stat_dir(const CacheMailbox *mbox, uid_t uid, gid_t gid,
		       time_t mtime, struct stat *st)
{
	fs_inode_stat_fill(fs_inode_dir(mbox->id), 2 + mbox->n_children, 0,
			   mtime, uid, gid, st);
}

void fs_inode_stat_msg(guint32 mailbox_id, const CacheMessage *msg, uid_t uid,
		       gid_t gid, struct stat *st)
{
	fs_inode_stat_fill(fs_inode_msg(mailbox_id, msg->uid), 0, msg->size,
			   msg->internaldate, uid, gid, st);
}

/* fs/mount.h — the state of one mount, passed to every handler as libfuse
 * userdata (fuse_req_userdata()). No globals. */
#ifndef IMAPFS_FS_MOUNT_H
#define IMAPFS_FS_MOUNT_H

#include <fuse_lowlevel.h>
#include <glib.h>
#include <sys/types.h>
#include "cache/account.h"

typedef struct FsNotify FsNotify;
typedef struct FsNewFiles FsNewFiles;
typedef struct FsPassthrough FsPassthrough;

/* An inode whose message was moved: the message it became, and when. */
typedef struct {
	CacheMsgRef ref;
	gint64 at; /* monotonic time of the move */
} FsMoved;

typedef struct {
	CacheAccount *acct; /* set after daemonizing, before the loop */
	FsNotify *notify;
	uid_t uid; /* owner shown for every node: who mounted */
	gid_t gid;
	time_t mount_time;	/* mtime of directories */
	double timeout;		/* kernel entry/attr cache, seconds */
	gboolean rm_expunge;	/* -o rm=expunge: rm never goes to Trash */
	gboolean read_only;	/* -o ro */
	gboolean no_open;	/* read-only, and the kernel can open files
				 * without asking us (set at init) */
	FsNewFiles *newfiles;	/* files being created (fs/newfile.h) */
	FsPassthrough *passthrough; /* fs/passthrough.h; NULL: none */
	GMutex lock;		/* guards the tables below; a leaf lock */
	GHashTable *open_count; /* message ino -> open handles */
	GHashTable *moved;	/* message ino -> FsMoved * it became by
				 * a move: the kernel keeps the old inode
				 * under the new name, and mv stats it */
} FsMount;

/* The handlers, for fuse_session_new(). */
extern const struct fuse_lowlevel_ops fs_ops;

#endif

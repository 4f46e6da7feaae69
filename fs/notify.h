/* fs/notify.h — telling the kernel what it cached is wrong.
 *
 * fuse_lowlevel_notify_inval_*() must not run inside a request on the same
 * inode (it would wait on the kernel's lock that request holds) nor under a
 * cache lock, so invalidations are queued from any thread and applied by
 * one thread of their own. */
#ifndef IMAPFS_FS_NOTIFY_H
#define IMAPFS_FS_NOTIFY_H

#include <fuse_lowlevel.h>
#include "fs/mount.h"

/* Starts the thread. After fuse_daemonize(). */
FsNotify *fs_notify_new(struct fuse_session *se);
/* Stops and joins the thread; NULL-safe. Before the session is freed. */
void fs_notify_free(FsNotify *notify);

/* Queues "drop attributes and data of @ino". Any thread, never blocks. */
void fs_notify_inode(FsNotify *notify, fuse_ino_t ino);
/* Queues "forget the entry @name in directory @parent", to be done no
 * sooner than @delay_us from now; items without a delay do not wait
 * behind it. */
void fs_notify_entry(FsNotify *notify, fuse_ino_t parent, const char *name,
		     gint64 delay_us);
/* How many entries have been queued to be forgotten so far: a listing
 * made before the count last moved may name one of them. */
guint fs_notify_entries_dropped(FsNotify *notify);

#endif

/* fs/notify.c — the invalidation thread (see notify.h for why). */
#include "fs/notify.h"

#include <errno.h>

struct FsNotify {
	struct fuse_session *se; /* borrowed */
	GAsyncQueue *queue;	 /* fuse_ino_t, 0 = stop */
	GThread *thread;
};

static gpointer notify_main(gpointer data)
{
	FsNotify *notify = data;

	for (;;) {
		gpointer item = g_async_queue_pop(notify->queue);
		fuse_ino_t ino = *(fuse_ino_t *)item;
		int ret;

		g_free(item);
		if (ino == 0)
			break;
		ret = fuse_lowlevel_notify_inval_inode(notify->se, ino, 0, 0);
		/* ENOENT: the kernel does not know the inode; nothing to do. */
		if (ret < 0 && ret != -ENOENT)
			g_debug("invalidating inode %" G_GUINT64_FORMAT
				": %s",
				(guint64)ino, g_strerror(-ret));
	}
	return NULL;
}

FsNotify *fs_notify_new(struct fuse_session *se)
{
	FsNotify *notify = g_new0(FsNotify, 1);

	notify->se = se;
	notify->queue = g_async_queue_new();
	notify->thread = g_thread_new("imapfs-notify", notify_main, notify);
	return notify;
}

void fs_notify_inode(FsNotify *notify, fuse_ino_t ino)
{
	fuse_ino_t *item = g_new(fuse_ino_t, 1);

	*item = ino;
	g_async_queue_push(notify->queue, item);
}

void fs_notify_free(FsNotify *notify)
{
	if (!notify)
		return;
	fs_notify_inode(notify, 0);
	g_thread_join(notify->thread);
	g_async_queue_unref(notify->queue);
	g_free(notify);
}

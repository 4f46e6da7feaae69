/* fs/notify.c — the invalidation thread (see notify.h for why). */
#include "fs/notify.h"

#include <errno.h>
#include <string.h>

typedef struct {
	fuse_ino_t ino;	   /* 0: stop (fs_notify_free) */
	char *name;	   /* NULL: the inode; else an entry of it */
	gint64 not_before; /* monotonic time */
} Item;

struct FsNotify {
	struct fuse_session *se; /* borrowed */
	GAsyncQueue *queue;	 /* Item * */
	GThread *thread;
};

static gpointer notify_main(gpointer data)
{
	FsNotify *notify = data;

	for (;;) {
		Item *item = g_async_queue_pop(notify->queue);
		fuse_ino_t ino = item->ino;
		int ret;

		gint64 wait;

		if (ino == 0) {
			g_free(item);
			break;
		}
		wait = item->not_before - g_get_monotonic_time();
		if (wait > 0)
			g_usleep(wait);
		if (item->name)
			ret = fuse_lowlevel_notify_inval_entry(
				notify->se, ino, item->name,
				strlen(item->name));
		else
			ret = fuse_lowlevel_notify_inval_inode(notify->se, ino,
							       0, 0);
		g_free(item->name);
		g_free(item);
		/* ENOENT: the kernel does not know the inode; nothing to do. */
		if (ret < 0 && ret != -ENOENT)
			g_debug("invalidating inode %" G_GUINT64_FORMAT ": %s",
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

static void push(FsNotify *notify, fuse_ino_t ino, char *name,
		 gint64 not_before)
{
	Item *item = g_new0(Item, 1);

	item->ino = ino;
	item->name = name;
	item->not_before = not_before;
	g_async_queue_push(notify->queue, item);
}

void fs_notify_inode(FsNotify *notify, fuse_ino_t ino)
{
	g_return_if_fail(ino != 0);
	push(notify, ino, NULL, 0);
}

void fs_notify_entry(FsNotify *notify, fuse_ino_t parent, const char *name,
		     gint64 delay_us)
{
	g_return_if_fail(parent != 0);
	push(notify, parent, g_strdup(name), g_get_monotonic_time() + delay_us);
}

void fs_notify_free(FsNotify *notify)
{
	if (!notify)
		return;
	push(notify, 0, NULL, 0);
	g_thread_join(notify->thread);
	g_async_queue_unref(notify->queue);
	g_free(notify);
}

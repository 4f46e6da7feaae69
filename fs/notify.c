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
	gint entries_dropped;	 /* atomic */
};

static void item_free(Item *item)
{
	g_free(item->name);
	g_free(item);
}

static void apply(FsNotify *notify, Item *item)
{
	int ret;

	if (item->name)
		ret = fuse_lowlevel_notify_inval_entry(
			notify->se, item->ino, item->name, strlen(item->name));
	else
		ret = fuse_lowlevel_notify_inval_inode(notify->se, item->ino, 0,
						       0);
	/* ENOENT: the kernel does not know the inode; nothing to do. */
	if (ret < 0 && ret != -ENOENT)
		g_debug("invalidating inode %" G_GUINT64_FORMAT ": %s",
			(guint64)item->ino, g_strerror(-ret));
	item_free(item);
}

/* Items come in order; one with a time to wait for waits in @delayed
 * (all wait equally long, so that list is in time order too) while the
 * others go on. At the stop, what still waits is dropped: the kernel
 * forgets everything at unmount. */
static gpointer notify_main(gpointer data)
{
	FsNotify *notify = data;
	GQueue delayed = G_QUEUE_INIT;

	for (;;) {
		Item *next = g_queue_peek_head(&delayed);
		gint64 now = g_get_monotonic_time();
		Item *item;

		if (next && next->not_before <= now) {
			apply(notify, g_queue_pop_head(&delayed));
			continue;
		}
		item = next ? g_async_queue_timeout_pop(notify->queue,
							next->not_before - now)
			    : g_async_queue_pop(notify->queue);
		if (!item)
			continue;
		if (item->ino == 0) {
			item_free(item);
			break;
		}
		if (item->not_before > g_get_monotonic_time())
			g_queue_push_tail(&delayed, item);
		else
			apply(notify, item);
	}
	g_queue_clear_full(&delayed, (GDestroyNotify)item_free);
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
	g_atomic_int_inc(&notify->entries_dropped);
	push(notify, parent, g_strdup(name), g_get_monotonic_time() + delay_us);
}

guint fs_notify_entries_dropped(FsNotify *notify)
{
	return notify ? (guint)g_atomic_int_get(&notify->entries_dropped) : 0;
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

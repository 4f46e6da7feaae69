/* cache/wait.c — blocking on an IMAP command, for FUSE threads.
 *
 * The pool completes commands on the imap-io thread; FUSE threads sleep
 * here on a condition variable with a deadline. Cancellation (a FUSE
 * interrupt) wakes them through a GCancellable handler. Because a waiter may
 * leave before the command completes, both sides hold a reference.
 */
#include "cache/wait.h"

#include "cache/error.h"

struct CacheWait {
	gatomicrefcount ref;
	GMutex lock; /* guards the fields below; a leaf lock */
	GCond cond;
	gboolean done;
	ImapReply *reply;
	GError *error;
	GArray *thens; /* Then: to run at completion */
	/* Owned by the imap-io thread once submitted: */
	ImapDataFunc data;
	CacheWaitDoneFunc done_func;
	gpointer user_data;
	GDestroyNotify user_free;
};

typedef struct {
	CacheWaitThenFunc func;
	gpointer user_data;
} Then;

CacheWait *cache_wait_new(void)
{
	CacheWait *wait = g_new0(CacheWait, 1);

	g_atomic_ref_count_init(&wait->ref);
	g_mutex_init(&wait->lock);
	g_cond_init(&wait->cond);
	return wait;
}

CacheWait *cache_wait_ref(CacheWait *wait)
{
	g_atomic_ref_count_inc(&wait->ref);
	return wait;
}

void cache_wait_unref(CacheWait *wait)
{
	if (!wait || !g_atomic_ref_count_dec(&wait->ref))
		return;
	imap_reply_free(wait->reply);
	g_clear_error(&wait->error);
	if (wait->thens)
		g_array_unref(wait->thens);
	g_mutex_clear(&wait->lock);
	g_cond_clear(&wait->cond);
	g_free(wait);
}

/* Marks @wait done (its lock held by the caller, who sets reply and
 * error first) and returns the thens to run once the lock is dropped. */
static GArray *finish_locked(CacheWait *wait)
{
	wait->done = TRUE;
	g_cond_broadcast(&wait->cond);
	return g_steal_pointer(&wait->thens);
}

static void run_thens(CacheWait *wait, GArray *thens)
{
	for (guint i = 0; thens && i < thens->len; i++) {
		Then *then = &g_array_index(thens, Then, i);

		then->func(wait->error, then->user_data);
	}
	if (thens)
		g_array_unref(thens);
}

static void on_data(const ImapResponse *resp, guint32 uidvalidity,
		    gpointer user_data)
{
	CacheWait *wait = user_data;

	if (wait->data)
		wait->data(resp, uidvalidity, wait->user_data);
}

static void on_done(ImapReply *reply, GError *error, gpointer user_data)
{
	CacheWait *wait = user_data;
	GArray *thens;

	if (wait->done_func)
		wait->done_func(wait, reply, error, wait->user_data);
	if (wait->user_free)
		wait->user_free(wait->user_data);
	wait->user_data = NULL;

	g_mutex_lock(&wait->lock);
	wait->reply = reply;
	wait->error = error;
	thens = finish_locked(wait);
	g_mutex_unlock(&wait->lock);
	run_thens(wait, thens);
	cache_wait_unref(wait);
}

void cache_wait_complete(CacheWait *wait, const GError *error)
{
	GArray *thens;

	g_mutex_lock(&wait->lock);
	wait->error = error ? g_error_copy(error) : NULL;
	thens = finish_locked(wait);
	g_mutex_unlock(&wait->lock);
	run_thens(wait, thens);
}

void cache_wait_then(CacheWait *wait, CacheWaitThenFunc func,
		     gpointer user_data)
{
	Then then = {func, user_data};
	gboolean done;

	g_mutex_lock(&wait->lock);
	done = wait->done;
	if (!done) {
		if (!wait->thens)
			wait->thens = g_array_new(FALSE, FALSE, sizeof(Then));
		g_array_append_val(wait->thens, then);
	}
	g_mutex_unlock(&wait->lock);
	if (done)
		func(wait->error, user_data);
}

void cache_wait_submit(CacheWait *wait, ImapPool *pool, const char *mailbox,
		       ImapCommand *cmd, ImapDataFunc data,
		       CacheWaitDoneFunc done, gpointer user_data,
		       GDestroyNotify user_free)
{
	wait->data = data;
	wait->done_func = done;
	wait->user_data = user_data;
	wait->user_free = user_free;
	/* Without a data func, untagged responses go into the reply. */
	imap_pool_submit(pool, mailbox, cmd, data ? on_data : NULL, on_done,
			 cache_wait_ref(wait));
}

static void on_cancelled(GCancellable *cancel, gpointer user_data)
{
	CacheWait *wait = user_data;

	g_mutex_lock(&wait->lock);
	g_cond_broadcast(&wait->cond);
	g_mutex_unlock(&wait->lock);
}

gboolean cache_wait_block(CacheWait *wait, guint timeout_s,
			  GCancellable *cancel, GError **error)
{
	gint64 deadline =
		g_get_monotonic_time() + (gint64)timeout_s * G_TIME_SPAN_SECOND;
	gulong handler = 0;
	gboolean ok;

	if (cancel)
		handler = g_cancellable_connect(
			cancel, G_CALLBACK(on_cancelled), wait, NULL);
	g_mutex_lock(&wait->lock);
	while (!wait->done) {
		if (g_cancellable_is_cancelled(cancel))
			break;
		if (!g_cond_wait_until(&wait->cond, &wait->lock, deadline))
			break;
	}
	if (wait->done) {
		ok = wait->error == NULL;
		if (!ok)
			g_propagate_error(error, g_error_copy(wait->error));
	} else if (g_cancellable_is_cancelled(cancel)) {
		ok = FALSE;
		g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_CANCELLED,
				    "interrupted");
	} else {
		ok = FALSE;
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_TIMEOUT,
			    "the server did not answer within %u s", timeout_s);
	}
	g_mutex_unlock(&wait->lock);
	if (handler)
		g_cancellable_disconnect(cancel, handler);
	return ok;
}

CacheWait *cache_wait_start(ImapPool *pool, const char *mailbox,
			    guint32 uidvalidity, ImapCommand *cmd)
{
	CacheWait *wait = cache_wait_new();

	imap_pool_submit_uids(pool, mailbox, uidvalidity, cmd, NULL, on_done,
			      cache_wait_ref(wait));
	return wait;
}

gboolean cache_wait_finish(CacheWait *wait, guint timeout_s,
			   GCancellable *cancel, ImapReply **out_reply,
			   GError **error)
{
	gboolean ok = cache_wait_block(wait, timeout_s, cancel, error);

	if (out_reply) {
		g_mutex_lock(&wait->lock);
		*out_reply = g_steal_pointer(&wait->reply);
		g_mutex_unlock(&wait->lock);
	}
	return ok;
}

gboolean cache_wait_run(ImapPool *pool, const char *mailbox,
			guint32 uidvalidity, ImapCommand *cmd, guint timeout_s,
			GCancellable *cancel, ImapReply **out_reply,
			GError **error)
{
	g_autoptr(CacheWait) wait =
		cache_wait_start(pool, mailbox, uidvalidity, cmd);

	return cache_wait_finish(wait, timeout_s, cancel, out_reply, error);
}

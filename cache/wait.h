/* cache/wait.h — the only place a FUSE thread blocks.
 *
 * A CacheWait runs one IMAP command through the pool and lets any number of
 * threads block until it completes, with a deadline and a GCancellable (a
 * FUSE interrupt). A waiter that gives up does not stop the command: it
 * still completes, and its data still reaches the cache. Refcounted and
 * thread-safe; the pool's callbacks hold their own reference.
 */
#ifndef IMAPFS_CACHE_WAIT_H
#define IMAPFS_CACHE_WAIT_H

#include <gio/gio.h>
#include "imap/pool.h"

typedef struct CacheWait CacheWait;

/* Runs on the imap-io thread when the command completes, before waiters
 * wake: @error (borrowed, nullable) says how it ended. */
typedef void (*CacheWaitDoneFunc)(CacheWait *wait, const ImapReply *reply,
				  const GError *error, gpointer user_data);

CacheWait *cache_wait_new(void);
CacheWait *cache_wait_ref(CacheWait *wait);
void cache_wait_unref(CacheWait *wait); /* NULL-safe */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CacheWait, cache_wait_unref)

/* Submits @cmd (transfer full). @data (nullable) gets the untagged data;
 * @done (nullable) runs once at completion; @user_data is freed with
 * @user_free (nullable) on the imap-io thread after @done. Call once. */
void cache_wait_submit(CacheWait *wait, ImapPool *pool, const char *mailbox,
		       ImapCommand *cmd, ImapDataFunc data,
		       CacheWaitDoneFunc done, gpointer user_data,
		       GDestroyNotify user_free);

/* Completes @wait by hand, for a job of several commands that the caller
 * submitted itself: records a copy of @error (nullable) and wakes every
 * waiter. Call once, on any thread, instead of cache_wait_submit(). */
void cache_wait_complete(CacheWait *wait, const GError *error);

/* Runs @func once @wait has completed, with its error (borrowed; NULL on
 * success): at once on this thread if it has, else on the thread that
 * completes it, after the waiters are woken. Never blocks. */
typedef void (*CacheWaitThenFunc)(const GError *error, gpointer user_data);
void cache_wait_then(CacheWait *wait, CacheWaitThenFunc func,
		     gpointer user_data);

/* Blocks until the command has completed, @timeout_s passed
 * (CACHE_ERROR_TIMEOUT) or @cancel fired (G_IO_ERROR_CANCELLED). TRUE if
 * the command succeeded; else the command's error is copied to @error. */
gboolean cache_wait_block(CacheWait *wait, guint timeout_s,
			  GCancellable *cancel, GError **error);

/* Submits @cmd (transfer full), keeping its reply for
 * cache_wait_finish(): several such commands go out together.
 * @uidvalidity: see imap_pool_submit_uids() (0: any). */
CacheWait *cache_wait_start(ImapPool *pool, const char *mailbox,
			    guint32 uidvalidity, ImapCommand *cmd);
/* Blocks as cache_wait_block(); *out_reply (nullable) gets the reply. */
gboolean cache_wait_finish(CacheWait *wait, guint timeout_s,
			   GCancellable *cancel, ImapReply **out_reply,
			   GError **error);

/* cache_wait_start() and cache_wait_finish() in one. */
gboolean cache_wait_run(ImapPool *pool, const char *mailbox,
			guint32 uidvalidity, ImapCommand *cmd, guint timeout_s,
			GCancellable *cancel, ImapReply **out_reply,
			GError **error);

#endif

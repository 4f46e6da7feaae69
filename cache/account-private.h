/* cache/account-private.h — the account's state, shared by the files of
 * cache/ that keep it (account, sync, prefetch, lookahead, mutate). */
#ifndef IMAPFS_CACHE_ACCOUNT_PRIVATE_H
#define IMAPFS_CACHE_ACCOUNT_PRIVATE_H

#include "cache/account.h"
#include "cache/index.h"
#include "cache/store.h"
#include "cache/wait.h"
#include "imap/idle.h"
#include "imap/pool.h"

struct CacheAccount {
	ImapPool *pool;
	CacheStore *store;
	char *cache_dir;
	guint timeout_s;
	gint64 list_ttl; /* microseconds */

	/* Lock order: lock, then the store's leaf lock. Never held across
	 * imap_pool_submit() or a call into fs/. Taken on the imap-io thread
	 * by completion callbacks, briefly. */
	GMutex lock;
	CacheIndex *index;
	GHashTable *inflight; /* job key -> CacheWait * (a reference) */
	GMutex save_lock;     /* one index save at a time; taken before
			       * lock */
	char *index_path;
	gint64 saved_at;	  /* monotonic time of the last save */
	guint64 saved_generation; /* the sum of generations then */

	/* Prefetch (cache/prefetch.c), under lock: */
	GHashTable *scans;	/* mailbox id -> Scan * */
	GHashTable *ahead;	/* job key -> its prefetch batch, while
				 * background (cache/prefetch.c) */
	guint64 prefetch_bytes; /* bytes asked for and not yet arrived */
	gdouble prefetch_rate;	/* bytes/s batches came at; 0: unknown */
	gboolean no_condstore;	/* the server refused a CONDSTORE refresh */
	gboolean no_vanished;	/* and one with VANISHED (QRESYNC) */

	/* Look-ahead (cache/lookahead.c), under lock: */
	guint32 walk_next[2]; /* the last look-ahead's picks, per order */
	gint walk_order;      /* the order a walk was seen to follow, or
			       * -1 (see lookahead.c) */
	guint32 last_listed;  /* the mailbox a readdir last asked for */
	guint list_changes;   /* mailbox list changes the server announced */

	/* Quota (cache/quota.c), under lock: */
	CacheQuota quota;
	gint64 quota_at; /* monotonic time it came; 0: not yet */

	/* Mailbox renames under way (cache/mutate.c), under lock; each
	 * signals renamed as it ends, its index change made. */
	guint renaming;
	GCond renamed;

	ImapIdle *idle;	      /* watches INBOX; nullable */
	GCancellable *ending; /* cancelled by cache_account_end() */

	CacheInvalidateFunc invalidate;
	CacheInvalidateEntryFunc invalidate_entry;
	CacheRenewedFunc renewed;
	gpointer invalidate_data;
};

/* Joins the job named @key if one is running, else registers @fresh under
 * it. Returns a reference to the wait to block on; *out_is_new tells the
 * caller to submit @fresh. Takes the lock. */
CacheWait *cache_account_join(CacheAccount *acct, const char *key,
			      CacheWait *fresh, gboolean *out_is_new);
/* Blocks for @wait as reads and listings do: until it completes, the
 * timeout, @cancel (nullable) or cache_account_end(). */
gboolean cache_account_block(CacheAccount *acct, CacheWait *wait,
			     GCancellable *cancel, GError **error);
/* The same for @wait_s seconds at most (0: the timeout), not cancellable
 * but by cache_account_end(); with @wait_s, not at all while the server
 * cannot be reached (CACHE_ERROR_TIMEOUT). */
gboolean cache_account_block_within(CacheAccount *acct, CacheWait *wait,
				    guint wait_s, GError **error);

/* How long a refresh of a listing already shown is waited for before it is
 * shown as it is, the refresh going on behind: a server that does not
 * answer, or a link busy with a prefetch, does not hold up ls for the
 * whole timeout at each step. */
#define CACHE_REFRESH_WAIT_S 3
/* Lists the mailboxes if that was never done, or (@refresh) if the list
 * is older than the TTL. */
gboolean cache_account_ensure_listed(CacheAccount *acct, gboolean refresh,
				     GError **error);
/* Syncs mailbox @id if it never was, or (@refresh) if it is stale. */
gboolean cache_account_ensure_synced(CacheAccount *acct, guint32 id,
				     gboolean refresh, GError **error);

/* Records that message @ref really has @size bytes (the server's
 * RFC822.SIZE was wrong) and tells fs/ to drop what the kernel cached.
 * Takes the lock; any thread. */
void cache_account_correct_size(CacheAccount *acct, CacheMsgRef ref,
				const char *mailbox, guint64 size);

/* Unregisters @key; called from a job's completion. Takes the lock. */
void cache_account_leave(CacheAccount *acct, const char *key);

#endif

/* cache/quota.c — how full the account is, for statfs (df).
 *
 * GETQUOTAROOT INBOX (RFC 9208) names INBOX's quota roots and how much of
 * each is used. The answer is kept for the list TTL; a later call answers
 * from it at once and asks again in the background, so that df, and file
 * managers that look at the free space before each copy, wait on the
 * server once per mount at most. A server without QUOTA costs nothing.
 */
#include "cache/account-private.h"
#include "imap/caps.h"
#include "imap/error.h"

/* The key of the ask in flight in acct->inflight. */
#define QUOTA_KEY "quota"

/* @reply's QUOTA responses folded into @out: of several roots, the one
 * with the least room left, for each resource. */
static void quota_from_reply(const ImapReply *reply, CacheQuota *out)
{
	gint64 storage_room = -1, messages_room = -1;

	*out = (CacheQuota){0};
	for (guint i = 0; reply && i < reply->untagged->len; i++) {
		ImapQuota q;

		if (!imap_response_get_quota(reply->untagged->pdata[i], &q))
			continue;
		if (q.storage_limit >= 0) {
			/* KiB; kept where bytes do not overflow */
			gint64 limit = MIN(q.storage_limit, G_MAXINT64 / 1024);
			gint64 used = MIN(q.storage_used, limit);

			if (storage_room < 0 || limit - used < storage_room) {
				storage_room = limit - used;
				out->has_storage = TRUE;
				out->storage_limit = (guint64)limit * 1024;
				out->storage_used = (guint64)used * 1024;
			}
		}
		if (q.messages_limit >= 0) {
			gint64 used = MIN(q.messages_used, q.messages_limit);

			if (messages_room < 0 ||
			    q.messages_limit - used < messages_room) {
				messages_room = q.messages_limit - used;
				out->has_messages = TRUE;
				out->messages_limit = q.messages_limit;
				out->messages_used = used;
			}
		}
	}
}

static void quota_done(CacheWait *wait, const ImapReply *reply,
		       const GError *error, gpointer user_data)
{
	CacheAccount *acct = user_data;
	CacheQuota quota;

	/* A refusal (NO, BAD) means no quota to show; a lost connection or
	 * a timeout keeps the last answer, to be asked again next time. */
	gboolean refused = error && error->domain == IMAPFS_IMAP_ERROR &&
			   (error->code == IMAP_ERROR_FAILED ||
			    error->code == IMAP_ERROR_BAD);

	if (error)
		g_debug("GETQUOTAROOT: %s", error->message);
	quota_from_reply(error ? NULL : reply, &quota);
	g_mutex_lock(&acct->lock);
	if (!error || refused) {
		acct->quota = quota;
		acct->quota_at = g_get_monotonic_time();
	}
	g_mutex_unlock(&acct->lock);
	cache_account_leave(acct, QUOTA_KEY);
}

void cache_account_quota(CacheAccount *acct, CacheQuota *out)
{
	g_autoptr(CacheWait) wait = NULL;
	g_autoptr(CacheWait) fresh = NULL;
	g_autofree char *problem = NULL;
	gboolean known, stale, is_new;

	*out = (CacheQuota){0};
	if (!(imap_pool_caps(acct->pool) & IMAP_CAP_QUOTA))
		return;
	g_mutex_lock(&acct->lock);
	known = acct->quota_at != 0;
	*out = acct->quota;
	stale = !known ||
		g_get_monotonic_time() - acct->quota_at >= acct->list_ttl;
	g_mutex_unlock(&acct->lock);
	if (!stale)
		return;
	fresh = cache_wait_new();
	wait = cache_account_join(acct, QUOTA_KEY, fresh, &is_new);
	if (is_new)
		cache_wait_submit(fresh, acct->pool, NULL,
				  imap_command_new(NULL, IMAP_COMMAND_RETRIABLE,
						   "GETQUOTAROOT INBOX"),
				  NULL, quota_done, acct, NULL);
	/* The first time, wait for the answer, unless the server cannot be
	 * reached now: df then shows no quota rather than hang. */
	problem = cache_account_connect_problem(acct);
	if (known || problem || !cache_account_block(acct, wait, NULL, NULL))
		return;
	g_mutex_lock(&acct->lock);
	*out = acct->quota;
	g_mutex_unlock(&acct->lock);
}

/* cache/lookahead.c — which mailbox a walk visits next, and starting on it.
 *
 * A walk is depth-first: after a mailbox's files come its child mailboxes,
 * then its next sibling. Siblings come in one of two orders: readdir's,
 * which is the index's (grep -r, find), or sorted by name (rsync, ls). The
 * next mailbox in each order is started, at most two. Mailboxes that cannot
 * hold messages are walked through; so are those read in the last minute,
 * since grep -r visits a mailbox's children before its files (readdir
 * lists them first). A next mailbox that turns out empty passes the turn
 * on, a few times at most.
 */
#include "cache/lookahead.h"

#include <string.h>

#include "cache/prefetch.h"
#include "cache/sync.h"

#define EMPTY_PASSES 4 /* empty mailboxes passed over in a row, at most */

static gint by_name(gconstpointer a, gconstpointer b)
{
	const CacheIndexMailbox *x = *(CacheIndexMailbox *const *)a;
	const CacheIndexMailbox *y = *(CacheIndexMailbox *const *)b;

	return strcmp(x->component, y->component);
}

static GPtrArray *children(CacheIndex *index, guint32 id, gboolean sorted)
{
	GPtrArray *out = cache_index_children(index, id);

	if (sorted)
		g_ptr_array_sort(out, by_name);
	return out;
}

/* The mailbox after @id in a depth-first walk, or CACHE_ROOT_ID. */
static guint32 next_in_walk(CacheIndex *index, guint32 id, gboolean sorted)
{
	g_autoptr(GPtrArray) below = children(index, id, sorted);

	if (below->len)
		return ((CacheIndexMailbox *)below->pdata[0])->id;
	while (id != CACHE_ROOT_ID) {
		CacheIndexMailbox *mbox = cache_index_mailbox(index, id);
		g_autoptr(GPtrArray) siblings = NULL;
		guint i;

		if (!mbox)
			break;
		siblings = children(index, mbox->parent_id, sorted);
		for (i = 0; i < siblings->len && siblings->pdata[i] != mbox;
		     i++)
			;
		if (i + 1 < siblings->len)
			return ((CacheIndexMailbox *)siblings->pdata[i + 1])
				->id;
		id = mbox->parent_id;
	}
	return CACHE_ROOT_ID;
}

/* The next mailbox after @id that holds messages and was not just read. */
static guint32 next_candidate(CacheAccount *acct, guint32 id, gboolean sorted)
{
	/* A walk ends at the root; the bound only guards a broken tree. */
	for (guint steps = 0; steps < 100000; steps++) {
		CacheIndexMailbox *mbox;

		id = next_in_walk(acct->index, id, sorted);
		mbox = cache_index_mailbox(acct->index, id);
		if (!mbox)
			return CACHE_ROOT_ID;
		if (mbox->wire_name &&
		    !(mbox->flags & CACHE_MAILBOX_NOSELECT) &&
		    !cache_prefetch_seen_locked(acct, id))
			return id;
	}
	return CACHE_ROOT_ID;
}

static void look_ahead(CacheAccount *acct, guint32 id, guint empty_passes);

static void start(CacheAccount *acct, guint32 id, guint empty_passes)
{
	if (!cache_prefetch_begin(acct, id) && empty_passes < EMPTY_PASSES)
		look_ahead(acct, id, empty_passes + 1);
}

static void on_synced(CacheAccount *acct, guint32 id, gpointer user_data)
{
	start(acct, id, GPOINTER_TO_UINT(user_data));
}

static void look_ahead(CacheAccount *acct, guint32 id, guint empty_passes)
{
	guint32 next[2];
	gboolean fresh[2];

	g_mutex_lock(&acct->lock);
	for (guint i = 0; i < 2; i++) {
		CacheIndexMailbox *mbox;

		next[i] = next_candidate(acct, id, i == 1);
		mbox = cache_index_mailbox(acct->index, next[i]);
		/* As fresh as a readdir would want it. */
		fresh[i] = mbox && mbox->synced && mbox->synced_at &&
			   g_get_monotonic_time() - mbox->synced_at <
				   acct->list_ttl;
	}
	g_mutex_unlock(&acct->lock);

	for (guint i = 0; i < 2; i++) {
		if (next[i] == CACHE_ROOT_ID || (i == 1 && next[1] == next[0]))
			continue;
		g_debug("mailbox %u: after it, a walk visits %u; %s", id,
			next[i], fresh[i] ? "fetching ahead" : "listing ahead");
		if (fresh[i])
			start(acct, next[i], empty_passes);
		else
			cache_sync_messages_start(
				acct, next[i], on_synced,
				GUINT_TO_POINTER(empty_passes));
	}
}

void cache_lookahead_after(CacheAccount *acct, guint32 mailbox_id)
{
	look_ahead(acct, mailbox_id, 0);
}

/* cache/lookahead.c — which mailbox a walk visits next, and starting on it.
 *
 * A walk is depth-first: after a mailbox's files come its child mailboxes,
 * then its next sibling. Siblings come in one of two orders: readdir's,
 * which is the index's (grep -r, find), or sorted by name (rsync, ls).
 *
 * After a scan, the next mailbox in each order is started, at most two,
 * until the walk is seen to arrive where only one of them said. Mailboxes
 * that cannot hold messages or are known to be empty are passed over; so
 * are those read in the last minute, since grep -r visits a mailbox's
 * children before its files (readdir lists them first). A next mailbox
 * that turns out empty passes the turn on, a few times at most.
 *
 * A walk that only lists (find, du, rsync building its file list ahead of
 * copying) shows itself by listing two mailboxes in a row in walk order;
 * the next LIST_AHEAD are then listed at once. A readdir of the root and
 * then of one mailbox (ls MNT; ls MNT/INBOX) is not taken for a walk.
 */
#include "cache/lookahead.h"

#include <string.h>

#include "cache/prefetch.h"
#include "cache/sync.h"

#define EMPTY_PASSES 4 /* empty mailboxes passed over in a row, at most */
#define LIST_AHEAD   4 /* mailboxes listed ahead of a listing walk */

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

/* As fresh as a readdir would want it. */
static gboolean fresh_locked(CacheAccount *acct, CacheIndexMailbox *mbox)
{
	return mbox && mbox->synced && mbox->synced_at &&
	       g_get_monotonic_time() - mbox->synced_at < acct->list_ttl;
}

static gboolean selectable(CacheIndexMailbox *mbox)
{
	return mbox && mbox->wire_name &&
	       !(mbox->flags & CACHE_MAILBOX_NOSELECT);
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

/* The next mailbox after @id that can hold messages, is not known to be
 * empty, and was not just read. */
static guint32 next_candidate(CacheAccount *acct, guint32 id, gboolean sorted)
{
	/* A walk ends at the root; the bound only guards a broken tree. */
	for (guint steps = 0; steps < 100000; steps++) {
		CacheIndexMailbox *mbox;

		id = next_in_walk(acct->index, id, sorted);
		mbox = cache_index_mailbox(acct->index, id);
		if (!mbox)
			return CACHE_ROOT_ID;
		if (selectable(mbox) &&
		    !(mbox->synced && cache_index_sorted(mbox)->len == 0) &&
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
	char *names[3] = {NULL, NULL, NULL}; /* for the log */
	gint order;

	g_mutex_lock(&acct->lock);
	if (empty_passes == 0) {
		/* The walk came to @id: if only one order had it next, the
		 * walk follows that one, and only its next is started. */
		gboolean by_index = id == acct->walk_next[0];
		gboolean by_name = id == acct->walk_next[1];

		if (by_index != by_name)
			acct->walk_order = by_name ? 1 : 0;
		else if (!by_index)
			acct->walk_order = -1;
	}
	order = acct->walk_order;
	for (guint i = 0; i < 2; i++) {
		CacheIndexMailbox *mbox;

		next[i] = next_candidate(acct, id, i == 1);
		mbox = cache_index_mailbox(acct->index, next[i]);
		fresh[i] = fresh_locked(acct, mbox);
		names[i] = g_strdup(mbox ? mbox->full_name : "");
	}
	names[2] = g_strdup(
		cache_index_mailbox(acct->index, id)
			? cache_index_mailbox(acct->index, id)->full_name
			: "");
	acct->walk_next[0] = next[0];
	acct->walk_next[1] = next[1];
	g_mutex_unlock(&acct->lock);

	for (guint i = 0; i < 2; i++) {
		if (next[i] == CACHE_ROOT_ID ||
		    (i == 1 && next[1] == next[0]) ||
		    (order >= 0 && (gint)i != order))
			continue;
		g_debug("after mailbox %s a walk visits %s: %s ahead", names[2],
			names[i], fresh[i] ? "fetching" : "listing");
		if (fresh[i])
			start(acct, next[i], empty_passes);
		else
			cache_sync_messages_start(
				acct, next[i], on_synced,
				GUINT_TO_POINTER(empty_passes));
	}
	for (guint i = 0; i < 3; i++)
		g_free(names[i]);
}

void cache_lookahead_after(CacheAccount *acct, guint32 mailbox_id)
{
	look_ahead(acct, mailbox_id, 0);
}

void cache_lookahead_listing(CacheAccount *acct, guint32 mailbox_id)
{
	guint32 todo[LIST_AHEAD];
	guint n = 0;
	gint order = -1;

	g_mutex_lock(&acct->lock);
	for (guint i = 0; i < 2 && acct->last_listed; i++)
		if (next_in_walk(acct->index, acct->last_listed, i == 1) ==
		    mailbox_id)
			order = (gint)i;
	acct->last_listed = mailbox_id;
	if (order >= 0) {
		guint32 id = mailbox_id;

		for (guint steps = 0; steps < 64 && n < LIST_AHEAD; steps++) {
			CacheIndexMailbox *mbox;

			id = next_in_walk(acct->index, id, order == 1);
			mbox = cache_index_mailbox(acct->index, id);
			if (!mbox)
				break;
			if (selectable(mbox) && !fresh_locked(acct, mbox))
				todo[n++] = id;
		}
	}
	g_mutex_unlock(&acct->lock);
	for (guint i = 0; i < n; i++)
		cache_sync_messages_start(acct, todo[i], NULL, NULL);
}

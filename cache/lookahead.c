/* cache/lookahead.c — which mailbox a walk visits next, and starting on it.
 *
 * A walk is depth-first: after a mailbox's files come its child mailboxes,
 * then its next sibling. Siblings come in one of two orders: readdir's,
 * which is the index's (grep -r, find), or by name in bytes (rsync).
 *
 * After a scan, the next mailbox in each order is started, at most two,
 * until the walk is seen to arrive where only one of them said; from then
 * on only that order's. Mailboxes that cannot hold messages or are known
 * to be empty are passed over; so are those read in the last minute, since
 * grep -r visits a mailbox's children before its files (readdir lists them
 * first). A next mailbox that turns out empty passes the turn on, in its
 * order, a few times at most.
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

enum { WALK_UNKNOWN = -1, WALK_READDIR, WALK_BY_NAME, WALK_ORDERS };

static gint compare_names(gconstpointer a, gconstpointer b)
{
	const CacheIndexMailbox *x = *(CacheIndexMailbox *const *)a;
	const CacheIndexMailbox *y = *(CacheIndexMailbox *const *)b;

	return strcmp(x->component, y->component);
}

static void add_walk(CacheIndex *index, guint32 id, gint order, GArray *out)
{
	g_autoptr(GPtrArray) children = cache_index_children(index, id);

	if (order == WALK_BY_NAME)
		g_ptr_array_sort(children, compare_names);
	for (guint i = 0; i < children->len; i++) {
		CacheIndexMailbox *child = children->pdata[i];

		g_array_append_val(out, child->id);
		add_walk(index, child->id, order, out);
	}
}

/* Every mailbox in the order a depth-first walk in @order visits them. */
static GArray *walk(CacheIndex *index, gint order)
{
	GArray *out = g_array_new(FALSE, FALSE, sizeof(guint32));

	add_walk(index, CACHE_ROOT_ID, order, out);
	return out;
}

/* Where @id is in @ids, or @ids->len. */
static guint position(GArray *ids, guint32 id)
{
	guint i = 0;

	while (i < ids->len && g_array_index(ids, guint32, i) != id)
		i++;
	return i;
}

static gboolean selectable(CacheIndexMailbox *mbox)
{
	return mbox && mbox->wire_name &&
	       !(mbox->flags & CACHE_MAILBOX_NOSELECT);
}

/* As fresh as a readdir would want it. */
static gboolean fresh_locked(CacheAccount *acct, CacheIndexMailbox *mbox)
{
	return mbox && mbox->synced && mbox->synced_at &&
	       g_get_monotonic_time() - mbox->synced_at < acct->list_ttl;
}

/* The mailbox after @id in @order that can hold messages, is not known to
 * be empty, and was not just read; or CACHE_ROOT_ID. */
static guint32 next_candidate(CacheAccount *acct, guint32 id, gint order)
{
	g_autoptr(GArray) ids = walk(acct->index, order);

	for (guint i = position(ids, id) + 1; i < ids->len; i++) {
		guint32 next = g_array_index(ids, guint32, i);
		CacheIndexMailbox *mbox =
			cache_index_mailbox(acct->index, next);

		if (selectable(mbox) &&
		    !(mbox->synced && cache_index_sorted(mbox)->len == 0) &&
		    !cache_prefetch_seen_locked(acct, next))
			return next;
	}
	return CACHE_ROOT_ID;
}

static void look_ahead(CacheAccount *acct, guint32 id, gint only,
		       guint empty_passes);

/* Prefetches the start of @id, or, if it is empty, looks past it. */
static void begin_or_pass_on(CacheAccount *acct, guint32 id, gint order,
			     guint empty_passes)
{
	if (!cache_prefetch_begin(acct, id) && empty_passes < EMPTY_PASSES)
		look_ahead(acct, id, order, empty_passes + 1);
}

/* What a look-ahead that had to list a mailbox first does next, packed
 * into the hook's pointer: nothing to free if the listing fails. */
#define THEN(order, empty_passes)                                              \
	GUINT_TO_POINTER((empty_passes)*WALK_ORDERS + (guint)(order))

static void on_synced(CacheAccount *acct, guint32 id, gpointer user_data)
{
	guint then = GPOINTER_TO_UINT(user_data);

	begin_or_pass_on(acct, id, (gint)(then % WALK_ORDERS),
			 then / WALK_ORDERS);
}

/* Starts on the mailboxes after @id: in order @only, or in every order
 * (WALK_UNKNOWN) for a walk that arrived at @id itself. */
static void look_ahead(CacheAccount *acct, guint32 id, gint only,
		       guint empty_passes)
{
	guint32 next[WALK_ORDERS] = {CACHE_ROOT_ID, CACHE_ROOT_ID};
	gboolean fresh[WALK_ORDERS] = {FALSE, FALSE};
	g_autofree char *here = NULL;
	char *names[WALK_ORDERS] = {NULL, NULL}; /* for the log */
	CacheIndexMailbox *self;
	gint order = only;

	g_mutex_lock(&acct->lock);
	if (empty_passes == 0) {
		/* The walk came to @id: if only one order had it next, the
		 * walk follows that one. */
		gboolean readdir = id == acct->walk_next[WALK_READDIR];
		gboolean name = id == acct->walk_next[WALK_BY_NAME];

		if (readdir != name)
			acct->walk_order = name ? WALK_BY_NAME : WALK_READDIR;
		else if (!readdir)
			acct->walk_order = WALK_UNKNOWN;
		order = acct->walk_order;
	}
	for (gint i = 0; i < WALK_ORDERS; i++) {
		CacheIndexMailbox *mbox;

		if (order != WALK_UNKNOWN && i != order)
			continue;
		next[i] = next_candidate(acct, id, i);
		mbox = cache_index_mailbox(acct->index, next[i]);
		fresh[i] = fresh_locked(acct, mbox);
		names[i] = g_strdup(mbox ? mbox->full_name : "");
		acct->walk_next[i] = next[i];
	}
	self = cache_index_mailbox(acct->index, id);
	here = g_strdup(self ? self->full_name : "");
	g_mutex_unlock(&acct->lock);

	for (gint i = 0; i < WALK_ORDERS; i++) {
		if (next[i] != CACHE_ROOT_ID &&
		    !(i == WALK_BY_NAME && next[i] == next[WALK_READDIR])) {
			g_debug("after mailbox %s a walk visits %s: %s ahead",
				here, names[i],
				fresh[i] ? "fetching" : "listing");
			if (fresh[i])
				begin_or_pass_on(acct, next[i], i,
						 empty_passes);
			else
				cache_sync_messages_start(
					acct, next[i], on_synced,
					THEN(i, empty_passes));
		}
		g_free(names[i]);
	}
}

void cache_lookahead_after(CacheAccount *acct, guint32 mailbox_id)
{
	look_ahead(acct, mailbox_id, WALK_UNKNOWN, 0);
}

void cache_lookahead_listing(CacheAccount *acct, guint32 mailbox_id)
{
	guint32 todo[LIST_AHEAD];
	guint n = 0;
	gint order = WALK_UNKNOWN;
	guint32 last;

	g_mutex_lock(&acct->lock);
	last = acct->last_listed;
	acct->last_listed = mailbox_id;
	for (gint i = 0; i < WALK_ORDERS && order == WALK_UNKNOWN &&
			 last != CACHE_ROOT_ID && mailbox_id != CACHE_ROOT_ID;
	     i++) {
		g_autoptr(GArray) ids = walk(acct->index, i);
		guint pos = position(ids, last);

		if (pos + 1 < ids->len &&
		    g_array_index(ids, guint32, pos + 1) == mailbox_id) {
			order = i;
			for (guint j = pos + 2; j < ids->len && n < LIST_AHEAD;
			     j++) {
				guint32 id = g_array_index(ids, guint32, j);
				CacheIndexMailbox *mbox =
					cache_index_mailbox(acct->index, id);

				if (selectable(mbox) &&
				    !fresh_locked(acct, mbox))
					todo[n++] = id;
			}
		}
	}
	g_mutex_unlock(&acct->lock);
	for (guint i = 0; i < n; i++)
		cache_sync_messages_start(acct, todo[i], NULL, NULL);
}

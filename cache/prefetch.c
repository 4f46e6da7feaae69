/* cache/prefetch.c — batched whole-message fetches and scan detection.
 *
 * A Batch is one "UID FETCH <set> (BODY.PEEK[])" command. Each of its
 * messages is registered as its own in-flight job ("fetch:<mailbox>:<uid>",
 * the same key a plain read of that message uses), with a CacheWait that is
 * completed the moment that message's body is stored, so a reader never
 * waits for more than the message it wants. Bodies arrive on the imap-io
 * thread, mostly spooled, and are linked into the store.
 *
 * The detector keeps, per mailbox, the UID last read from its start and how
 * many reads in a row followed UID order. A scan is taken to start at the
 * third such read, or at once when the mailbox's first message is read
 * (where grep -r, rsync and cp -r begin). From then on it keeps messages
 * requested ahead of the reader, and never has more than PREFETCH_BUDGET
 * bytes asked for and not yet arrived. What is kept ahead grows with the
 * scan, like a kernel's readahead: 16 messages (512 KiB) at a start on the
 * first message, 64 (2 MiB) at the third read, doubling with each read in
 * order up to PREFETCH_WINDOW messages or PREFETCH_AHEAD_BYTES, so a look
 * at a mailbox's first message costs little. It is topped up when under
 * half of it is ahead, in number and in bytes: at 60 ms and more than
 * 100 MB/s, half of a 256-message window was less than a round trip's
 * worth of data. The byte limits shrink to a quarter and a half of a small
 * cache budget (or of the memory that holds messages while the cache's disk
 * is full), so what is fetched ahead is not evicted before it is read.
 * Once a scan has brought in its mailbox's last message, cache/lookahead.c
 * starts on the mailbox a walk visits next, through cache_prefetch_begin().
 *
 * Batches fetched ahead are background commands for the pool, which sends
 * them after what the user waits for (imap/pool.c). A reader that comes to
 * wait for a message of one has it hurried: it may still be queued. One
 * already on the wire cannot be: on a slow link, what is asked for ahead
 * is held to PREFETCH_AHEAD_SECONDS of what batches were seen to arrive
 * at, so that such a wait stays short (at 300 KB/s, 32 MiB ahead made a
 * read wait 104 s, past -o timeout).
 */
#include "cache/prefetch.h"

#include <string.h>
#include <unistd.h>

#include "cache/lookahead.h"
#include "cache/sync.h"

#define PREFETCH_WINDOW	     1024
#define PREFETCH_RAMP	     6 /* window halvings at a scan's start */
#define PREFETCH_AHEAD_BYTES (32 * 1024 * 1024)
#define PREFETCH_BUDGET	     (64 * 1024 * 1024)
#define BATCH_MESSAGES	     64
#define BATCH_BYTES	     (4 * 1024 * 1024)
#define PREFETCH_AHEAD_SECONDS 2
#define PREFETCH_AHEAD_MIN     (1024 * 1024)
/* A batch smaller than this says nothing of the link's rate; one that
 * came faster than RATE_MIN_SPAN, only that it is fast. */
#define RATE_MIN_BYTES (256 * 1024)
#define RATE_MIN_SPAN  (10 * G_TIME_SPAN_MILLISECOND)

typedef struct {
	guint32 last_uid;      /* last message read from its start */
	guint hits;	       /* reads in a row that followed UID order */
	guint32 ahead_uid;     /* highest UID requested ahead; 0: no scan */
	gboolean wants_next;   /* look ahead once the last message is in */
	gboolean looked_ahead; /* the next mailbox was asked for */
	gint64 read_at;	       /* monotonic time of the last read */
} Scan;

/* A scan idle this long is a past walk's, not the current one's. */
#define SCAN_RECENT (60 * G_TIME_SPAN_SECOND)

static gboolean scan_recent(const Scan *scan)
{
	return scan && g_get_monotonic_time() - scan->read_at < SCAN_RECENT;
}

typedef struct {
	guint32 uid;
	guint64 size;	/* as the index said */
	guint64 budget; /* bytes it holds of prefetch_bytes */
	char *key;
	CacheWait *wait;
	gboolean done;
} Item;

typedef struct {
	CacheAccount *acct; /* borrowed */
	guint32 mailbox_id;
	char *mailbox;
	guint32 uidvalidity;
	GHashTable *items; /* uid -> Item * (owned) */
	GArray *uids;	   /* guint32, in order added */
	gboolean ahead;	   /* fetched ahead of the reader: background */
	gint64 first_at;   /* monotonic time its first body came */
	gint64 last_at;	   /* and its last */
	guint64 bytes;	   /* its bodies' bytes after the first */
} Batch;

static char *job_key(guint32 mailbox_id, guint32 uid)
{
	return g_strdup_printf("fetch:%u:%u", mailbox_id, uid);
}

static void item_free(Item *item)
{
	g_free(item->key);
	cache_wait_unref(item->wait);
	g_free(item);
}

static Batch *batch_new(CacheAccount *acct, guint32 mailbox_id,
			const char *mailbox, guint32 uidvalidity)
{
	Batch *batch = g_new0(Batch, 1);

	batch->acct = acct;
	batch->mailbox_id = mailbox_id;
	batch->mailbox = g_strdup(mailbox);
	batch->uidvalidity = uidvalidity;
	batch->items = g_hash_table_new_full(g_direct_hash, g_direct_equal,
					     NULL, (GDestroyNotify)item_free);
	batch->uids = g_array_new(FALSE, FALSE, sizeof(guint32));
	return batch;
}

static void batch_free(Batch *batch)
{
	g_hash_table_unref(batch->items);
	g_array_unref(batch->uids);
	g_free(batch->mailbox);
	g_free(batch);
}

static void release_budget(CacheAccount *acct, guint64 bytes)
{
	if (!bytes)
		return;
	g_mutex_lock(&acct->lock);
	acct->prefetch_bytes -= MIN(bytes, acct->prefetch_bytes);
	g_mutex_unlock(&acct->lock);
}

static guint32 last_uid(GPtrArray *sorted)
{
	return sorted->len
		       ? ((CacheMessage *)sorted->pdata[sorted->len - 1])->uid
		       : 0;
}

/* Message @uid of @mailbox_id is in the store: if it is the last one of a
 * scan that wants the next mailbox, start on that now. Its connection is
 * about to be free (only the batch's tagged reply is still to come), so
 * the look-ahead mostly goes there instead of opening another. */
static void next_mailbox_if_last(CacheAccount *acct, guint32 mailbox_id,
				 guint32 uid)
{
	CacheIndexMailbox *mbox;
	Scan *scan;
	gboolean go = FALSE;

	g_mutex_lock(&acct->lock);
	scan = g_hash_table_lookup(acct->scans, GUINT_TO_POINTER(mailbox_id));
	mbox = cache_index_mailbox(acct->index, mailbox_id);
	if (scan && scan->wants_next && !scan->looked_ahead && mbox &&
	    last_uid(cache_index_sorted(mbox)) == uid) {
		scan->looked_ahead = TRUE;
		go = TRUE;
	}
	g_mutex_unlock(&acct->lock);
	if (go)
		cache_lookahead_after(acct, mailbox_id);
}

/* Ends @item: wakes its waiters with @error (nullable) and unregisters it.
 * imap-io thread. */
static void item_finish(Batch *batch, Item *item, const GError *error)
{
	if (batch->ahead) {
		g_mutex_lock(&batch->acct->lock);
		g_hash_table_remove(batch->acct->ahead, item->key);
		g_mutex_unlock(&batch->acct->lock);
	}
	item->done = TRUE;
	release_budget(batch->acct, item->budget);
	item->budget = 0;
	cache_account_leave(batch->acct, item->key);
	cache_wait_complete(item->wait, error);
	if (!error)
		next_mailbox_if_last(batch->acct, batch->mailbox_id, item->uid);
}

static void on_batch_data(const ImapResponse *resp, guint32 uidvalidity,
			  gpointer user_data)
{
	Batch *batch = user_data;
	g_autoptr(GError) error = NULL;
	const ImapValue *body;
	ImapFetch fetch;
	Item *item;

	if (g_strcmp0(resp->name, "FETCH") != 0 ||
	    !imap_response_get_fetch(resp, &fetch, NULL))
		return;
	body = fetch.body;
	item = g_hash_table_lookup(batch->items, GUINT_TO_POINTER(fetch.uid));
	/* Other commands' data reaches us too: take only whole bodies of
	 * our UIDs, fetched under our UIDVALIDITY. */
	if (item && !item->done && body && body->type != IMAP_VALUE_NIL &&
	    !fetch.has_origin && g_strcmp0(fetch.body_section, "") == 0 &&
	    uidvalidity == batch->uidvalidity) {
		CacheKey key = {batch->mailbox, batch->uidvalidity, item->uid};
		CacheMsgRef ref = {batch->mailbox_id, item->uid};

		batch->last_at = g_get_monotonic_time();
		if (batch->first_at)
			batch->bytes += body->len;
		else
			batch->first_at = batch->last_at;

		if (cache_store_put_whole(
			    batch->acct->store, &key,
			    body->type == IMAP_VALUE_STRING ? body->str : NULL,
			    body->fd, body->len, &error) &&
		    body->len != item->size)
			cache_account_correct_size(batch->acct, ref,
						   batch->mailbox, body->len);
		item_finish(batch, item, error);
	}
	imap_fetch_clear(&fetch);
}

/* Folds what @batch took to arrive into the account's rate. */
static void note_rate(Batch *batch)
{
	gint64 span = MAX(batch->last_at - batch->first_at, RATE_MIN_SPAN);
	CacheAccount *acct = batch->acct;
	gdouble rate;

	if (batch->bytes < RATE_MIN_BYTES)
		return;
	rate = batch->bytes / ((gdouble)span / G_TIME_SPAN_SECOND);
	g_mutex_lock(&acct->lock);
	acct->prefetch_rate = acct->prefetch_rate
				      ? (acct->prefetch_rate + rate) / 2
				      : rate;
	g_mutex_unlock(&acct->lock);
}

static void on_batch_done(ImapReply *reply, GError *error, gpointer user_data)
{
	Batch *batch = user_data;
	gboolean gone = FALSE;

	if (!error && batch->ahead)
		note_rate(batch);

	for (guint i = 0; i < batch->uids->len; i++) {
		guint32 uid = g_array_index(batch->uids, guint32, i);
		Item *item = g_hash_table_lookup(batch->items,
						 GUINT_TO_POINTER(uid));
		g_autoptr(GError) missing = NULL;

		if (item->done)
			continue;
		if (!error) {
			g_set_error(&missing, IMAPFS_CACHE_ERROR,
				    CACHE_ERROR_NOT_FOUND,
				    "the server sent no body for UID %u of %s "
				    "(expunged meanwhile?)",
				    uid, batch->mailbox);
			gone = TRUE;
		}
		item_finish(batch, item, error ? error : missing);
	}
	/* Messages the listing still shows are gone: list the mailbox
	 * again now, so that their names go too. */
	if (gone)
		cache_sync_on_change(batch->mailbox, IMAP_IDLE_MESSAGES, NULL,
				     batch->acct);
	imap_reply_free(reply);
	g_clear_error(&error);
	batch_free(batch);
}

/* Adds @uid to @batch if no fetch of it is under way; *out_wait (nullable)
 * gets a reference to the wait to block on either way. */
static void batch_add(Batch *batch, guint32 uid, guint64 size, guint64 budget,
		      CacheWait **out_wait)
{
	g_autoptr(CacheWait) fresh = cache_wait_new();
	char *key = job_key(batch->mailbox_id, uid);
	gboolean is_new;
	CacheWait *wait = cache_account_join(batch->acct, key, fresh, &is_new);

	if (is_new) {
		Item *item = g_new0(Item, 1);

		item->uid = uid;
		item->size = size;
		item->budget = budget;
		item->key = key;
		item->wait = cache_wait_ref(wait);
		g_hash_table_insert(batch->items, GUINT_TO_POINTER(uid), item);
		g_array_append_val(batch->uids, uid);
		if (batch->ahead) {
			g_mutex_lock(&batch->acct->lock);
			g_hash_table_insert(batch->acct->ahead, item->key,
					    batch);
			g_mutex_unlock(&batch->acct->lock);
		}
	} else {
		g_free(key);
		release_budget(batch->acct, budget);
	}
	if (out_wait)
		*out_wait = wait;
	else
		cache_wait_unref(wait);
}

/* "3:5,9" for UIDs in ascending order. */
static char *uid_set(GArray *uids)
{
	GString *out = g_string_new(NULL);

	for (guint i = 0; i < uids->len;) {
		guint32 first = g_array_index(uids, guint32, i), last = first;

		while (++i < uids->len &&
		       g_array_index(uids, guint32, i) == last + 1)
			last++;
		if (out->len)
			g_string_append_c(out, ',');
		if (last > first)
			g_string_append_printf(out, "%u:%u", first, last);
		else
			g_string_append_printf(out, "%u", first);
	}
	return g_string_free(out, FALSE);
}

static void batch_submit(Batch *batch)
{
	g_autofree char *set = NULL;
	g_autoptr(GError) error = NULL;
	ImapCommand *cmd;

	if (batch->uids->len == 0) {
		batch_free(batch);
		return;
	}
	set = uid_set(batch->uids);
	cmd = imap_command_new(
		&error,
		IMAP_COMMAND_RETRIABLE |
			(batch->ahead ? IMAP_COMMAND_BACKGROUND : 0),
		"UID FETCH %U (BODY.PEEK[])", set);
	if (!cmd) {
		on_batch_done(NULL, g_steal_pointer(&error), batch);
		return;
	}
	imap_pool_submit(batch->acct->pool, batch->mailbox, cmd, on_batch_data,
			 on_batch_done, batch);
}

/* Someone waits for message @ref: if a batch fetched ahead has it, that
 * batch is background work no longer. */
static void hurry(CacheAccount *acct, CacheMsgRef ref)
{
	g_autofree char *key = job_key(ref.mailbox_id, ref.uid);
	Batch *batch;

	g_mutex_lock(&acct->lock);
	batch = g_hash_table_lookup(acct->ahead, key);
	g_mutex_unlock(&acct->lock);
	/* The pool only compares the pointer, which may be gone by then. */
	if (batch)
		imap_pool_hurry(acct->pool, batch);
}

gboolean cache_prefetch_whole(CacheAccount *acct, CacheMsgRef ref,
			      const char *mailbox, guint32 uidvalidity,
			      gboolean note_read, GCancellable *cancel,
			      GError **error)
{
	Batch *batch = batch_new(acct, ref.mailbox_id, mailbox, uidvalidity);
	g_autoptr(CacheWait) wait = NULL;
	guint64 size = 0;

	{
		CacheIndexMailbox *mbox;
		CacheMessage *msg = NULL;

		g_mutex_lock(&acct->lock);
		mbox = cache_index_mailbox(acct->index, ref.mailbox_id);
		if (mbox)
			msg = cache_index_message(mbox, ref.uid);
		if (msg)
			size = msg->size;
		g_mutex_unlock(&acct->lock);
	}
	batch_add(batch, ref.uid, size, 0, &wait);
	if (!g_hash_table_contains(batch->items, GUINT_TO_POINTER(ref.uid)))
		hurry(acct, ref); /* another batch has it coming */
	batch_submit(batch);
	if (note_read)
		cache_prefetch_note_read(acct, ref);
	return cache_account_block(acct, wait, cancel, error);
}

CacheWait *cache_prefetch_pending(CacheAccount *acct, CacheMsgRef ref)
{
	g_autofree char *key = job_key(ref.mailbox_id, ref.uid);
	CacheWait *wait;

	hurry(acct, ref);

	g_mutex_lock(&acct->lock);
	wait = g_hash_table_lookup(acct->inflight, key);
	if (wait)
		cache_wait_ref(wait);
	g_mutex_unlock(&acct->lock);
	return wait;
}

/* Index in @sorted of the first message with a UID >= @uid. */
static guint lower_bound(GPtrArray *sorted, guint32 uid)
{
	guint lo = 0, hi = sorted->len;

	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;

		if (((CacheMessage *)sorted->pdata[mid])->uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

typedef struct {
	guint32 uid;
	guint64 size;
} Candidate;

/* Fetches @todo (Candidates, their sizes already counted in
 * prefetch_bytes) in batches, less what the store already holds. */
static void submit(CacheAccount *acct, guint32 mailbox_id, const char *mailbox,
		   guint32 uidvalidity, GArray *todo)
{
	Batch *batch = NULL;
	guint64 batch_bytes = 0;

	for (guint i = 0; i < todo->len; i++) {
		Candidate *c = &g_array_index(todo, Candidate, i);
		CacheKey key = {mailbox, uidvalidity, c->uid};
		int fd = cache_store_open_complete(acct->store, &key,
						   c->size);

		if (fd >= 0) { /* already here */
			close(fd);
			release_budget(acct, c->size);
			next_mailbox_if_last(acct, mailbox_id, c->uid);
			continue;
		}
		if (batch && (batch->uids->len >= BATCH_MESSAGES ||
			      batch_bytes + c->size > BATCH_BYTES)) {
			batch_submit(batch);
			batch = NULL;
		}
		if (!batch) {
			batch = batch_new(acct, mailbox_id, mailbox,
					  uidvalidity);
			batch->ahead = TRUE;
			batch_bytes = 0;
		}
		batch_add(batch, c->uid, c->size, c->size, NULL);
		batch_bytes += c->size;
	}
	if (batch)
		batch_submit(batch);
}

/* The byte limits of a scan's window and of all prefetch. */
static void limits(CacheAccount *acct, guint64 *ahead_max, guint64 *budget)
{
	guint64 room = cache_store_budget(acct->store);
	gdouble rate;

	*ahead_max = PREFETCH_AHEAD_BYTES;
	*budget = PREFETCH_BUDGET;
	if (room) {
		*ahead_max = MIN(*ahead_max, room / 4);
		*budget = MIN(*budget, room / 2);
	}
	g_mutex_lock(&acct->lock);
	rate = acct->prefetch_rate;
	g_mutex_unlock(&acct->lock);
	/* Until a batch has shown the rate, a batch's worth. */
	guint64 cap = rate ? MAX((guint64)(rate * PREFETCH_AHEAD_SECONDS),
				 PREFETCH_AHEAD_MIN)
			   : BATCH_BYTES;

	*ahead_max = MIN(*ahead_max, cap);
	*budget = MIN(*budget, 2 * cap);
}

/* Adds the messages of @sorted from @start to @end to @todo, and their
 * sizes to prefetch_bytes, while they fit in @ahead_max bytes ahead of the
 * reader (@ahead already) and in @budget; with @admit_big, the first may
 * be bigger than @ahead_max alone. */
static void take_locked(CacheAccount *acct, Scan *scan, GPtrArray *sorted,
			guint start, guint end, guint64 ahead,
			guint64 ahead_max, guint64 budget, gboolean admit_big,
			GArray *todo)
{
	for (guint i = start; i < end; i++) {
		CacheMessage *msg = sorted->pdata[i];
		Candidate c = {msg->uid, msg->size};

		if ((ahead + msg->size > ahead_max &&
		     (ahead > 0 || !admit_big)) ||
		    acct->prefetch_bytes + msg->size > budget)
			break;
		ahead += msg->size;
		acct->prefetch_bytes += msg->size;
		g_array_append_val(todo, c);
		scan->ahead_uid = msg->uid;
	}
}

void cache_prefetch_note_read(CacheAccount *acct, CacheMsgRef ref)
{
	g_autoptr(GArray) todo = g_array_new(FALSE, FALSE, sizeof(Candidate));
	g_autofree char *mailbox = NULL;
	guint32 uidvalidity = 0;
	CacheIndexMailbox *mbox;
	GPtrArray *sorted;
	Scan *scan;
	guint pos, start, end, shift, window;
	guint64 ahead = 0, ahead_max, budget;
	gboolean look_ahead = FALSE;

	limits(acct, &ahead_max, &budget);
	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, ref.mailbox_id);
	if (!mbox || !mbox->synced || !mbox->wire_name)
		goto unlock;
	sorted = cache_index_sorted(mbox);
	pos = lower_bound(sorted, ref.uid);
	if (pos >= sorted->len ||
	    ((CacheMessage *)sorted->pdata[pos])->uid != ref.uid)
		goto unlock;
	scan = g_hash_table_lookup(acct->scans,
				   GUINT_TO_POINTER(ref.mailbox_id));
	if (!scan) {
		scan = g_new0(Scan, 1);
		g_hash_table_insert(acct->scans,
				    GUINT_TO_POINTER(ref.mailbox_id), scan);
	}
	scan->read_at = g_get_monotonic_time();
	if (scan->last_uid == ref.uid)
		goto unlock; /* the same file again */
	if (pos > 0 && scan->last_uid &&
	    ((CacheMessage *)sorted->pdata[pos - 1])->uid == scan->last_uid) {
		scan->hits++;
	} else {
		scan->hits = 0;
		scan->ahead_uid = 0;
		scan->wants_next = FALSE;
		scan->looked_ahead = FALSE;
	}
	scan->last_uid = ref.uid;
	if (scan->ahead_uid == 0 && scan->hits < 2 && pos > 0)
		goto unlock;
	shift = PREFETCH_RAMP - MIN(scan->hits, PREFETCH_RAMP);
	window = PREFETCH_WINDOW >> shift;
	ahead_max >>= shift;

	/* Top up only when under half the window is ahead, in number and
	 * in bytes. */
	start = pos + 1;
	if (scan->ahead_uid > ref.uid) {
		start = scan->ahead_uid == G_MAXUINT32
				? sorted->len
				: lower_bound(sorted, scan->ahead_uid + 1);
		if (start - pos > window / 2)
			goto check_end;
		for (guint i = pos + 1; i < start; i++)
			ahead += ((CacheMessage *)sorted->pdata[i])->size;
		if (ahead >= ahead_max / 2)
			goto check_end;
	}
	end = MIN(sorted->len, pos + 1 + window);
	/* A sure scan takes the next message even if it alone is more than
	 * the window. */
	take_locked(acct, scan, sorted, start, end, ahead, ahead_max, budget,
		    scan->hits >= 2, todo);
	mailbox = g_strdup(mbox->wire_name);
	uidvalidity = mbox->uidvalidity;
check_end:
	/* Once a scan has asked for the mailbox's last message, a tree walk
	 * is about to move on: the next mailbox is started when that message
	 * is in (next_mailbox_if_last), or now if it is. One read in order
	 * first; a read of the last message alone (cat of the newest, or of
	 * a mailbox's only message) counts only where a walk was expected. */
	if (!scan->wants_next &&
	    (scan->hits >= 1 || (pos + 1 == sorted->len &&
				 (acct->walk_next[0] == ref.mailbox_id ||
				  acct->walk_next[1] == ref.mailbox_id))) &&
	    (scan->ahead_uid >= last_uid(sorted) || pos + 1 == sorted->len)) {
		g_autofree char *key =
			job_key(ref.mailbox_id, last_uid(sorted));
		gboolean coming = g_hash_table_contains(acct->inflight, key);

		for (guint i = 0; i < todo->len && !coming; i++)
			coming = g_array_index(todo, Candidate, i).uid ==
				 last_uid(sorted);
		scan->wants_next = TRUE;
		if (!coming) {
			scan->looked_ahead = TRUE;
			look_ahead = TRUE;
		}
	}
unlock:
	g_mutex_unlock(&acct->lock);

	if (todo->len)
		submit(acct, ref.mailbox_id, mailbox, uidvalidity, todo);
	if (look_ahead)
		cache_lookahead_after(acct, ref.mailbox_id);
}

gboolean cache_prefetch_begin(CacheAccount *acct, guint32 mailbox_id)
{
	g_autoptr(GArray) todo = g_array_new(FALSE, FALSE, sizeof(Candidate));
	g_autofree char *mailbox = NULL;
	guint32 uidvalidity = 0;
	CacheIndexMailbox *mbox;
	GPtrArray *sorted;
	Scan *scan;
	guint window = PREFETCH_WINDOW >> PREFETCH_RAMP;
	guint64 ahead_max, budget;
	gboolean empty = FALSE;

	limits(acct, &ahead_max, &budget);
	ahead_max >>= PREFETCH_RAMP;
	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, mailbox_id);
	scan = g_hash_table_lookup(acct->scans, GUINT_TO_POINTER(mailbox_id));
	if (!mbox || !mbox->synced || !mbox->wire_name || scan_recent(scan))
		goto unlock;
	sorted = cache_index_sorted(mbox);
	empty = sorted->len == 0;
	if (empty)
		goto unlock;
	/* As if its first message had been read: that read finds it on its
	 * way, and the reads after it carry the scan on. */
	if (!scan) {
		scan = g_new0(Scan, 1);
		g_hash_table_insert(acct->scans, GUINT_TO_POINTER(mailbox_id),
				    scan);
	}
	*scan = (Scan){.last_uid = ((CacheMessage *)sorted->pdata[0])->uid,
		       .read_at = g_get_monotonic_time()};
	/* The first message is taken whatever its size: the reader would
	 * fetch it anyway. */
	take_locked(acct, scan, sorted, 0, MIN(sorted->len, window), 0,
		    ahead_max, budget, TRUE, todo);
	mailbox = g_strdup(mbox->wire_name);
	uidvalidity = mbox->uidvalidity;
unlock:
	g_mutex_unlock(&acct->lock);
	if (todo->len)
		submit(acct, mailbox_id, mailbox, uidvalidity, todo);
	return !empty;
}

gboolean cache_prefetch_seen_locked(CacheAccount *acct, guint32 mailbox_id)
{
	return scan_recent(
		g_hash_table_lookup(acct->scans, GUINT_TO_POINTER(mailbox_id)));
}

/* cache/account.c — the facade fs/ calls.
 *
 * Answers from the index when it is fresh enough and from the store when
 * the bytes are there; otherwise asks the server through the pool and
 * blocks in cache/wait.c. Concurrent requests for the same thing (a
 * mailbox listing, a message, a chunk) join one job instead of sending the
 * command twice.
 *
 * Reading: a message up to CACHE_WHOLE_MAX is fetched whole with
 * BODY.PEEK[]; a larger one in CACHE_STORE_CHUNK-aligned ranges with
 * BODY.PEEK[]<off.len>, growing the range while a reader goes on
 * sequentially. RFC822.SIZE is only the server's word: a whole fetch gives
 * the true size, and a range that comes back short or long corrects it;
 * then fs/ is told to drop what the kernel cached.
 */
#include "cache/account.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/account-private.h"
#include "cache/index-file.h"
#include "cache/lookahead.h"
#include "cache/prefetch.h"
#include "cache/sync.h"
#include "cache/text.h"
#include "imap/caps.h"
#include "imap/error.h"

#define CACHE_WHOLE_MAX	    (1024 * 1024)
#define CACHE_READAHEAD_MAX (4 * 1024 * 1024)

void cache_mailbox_clear(CacheMailbox *mbox)
{
	g_clear_pointer(&mbox->component, g_free);
	g_clear_pointer(&mbox->full_name, g_free);
}

char *cache_format_internaldate(gint64 internaldate)
{
	return imap_format_internaldate(internaldate);
}

void cache_message_clear(CacheMessage *msg)
{
	g_clear_pointer(&msg->flags, g_free);
	g_clear_pointer(&msg->subject, g_free);
	g_clear_pointer(&msg->from, g_free);
	g_clear_pointer(&msg->message_id, g_free);
	g_clear_pointer(&msg->alias, g_free);
}

/* The index a previous mount saved, marked stale so that it is refreshed
 * on first use (one round trip per mailbox), or an empty one. */
static CacheIndex *load_index(const char *path)
{
	g_autoptr(GError) error = NULL;
	CacheIndex *index = cache_index_read_file(path, &error);

	if (!index) {
		if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
			g_message("not using the saved index: %s; starting "
				  "afresh",
				  error->message);
		return cache_index_new();
	}
	cache_index_set_listed_at(index, 0);
	return index;
}

/* Saves the index if it changed since the last save and (unless @now) the
 * last save is older than a minute. Any thread but the imap-io thread. */
static void save_index(CacheAccount *acct, gboolean now)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) data = NULL;
	guint64 generation;

	/* One save at a time, so an older snapshot never lands last. */
	g_mutex_lock(&acct->save_lock);
	g_mutex_lock(&acct->lock);
	generation = cache_index_generation(acct->index);
	if (generation == acct->saved_generation ||
	    (!now && g_get_monotonic_time() - acct->saved_at <
			     60 * G_TIME_SPAN_SECOND)) {
		g_mutex_unlock(&acct->lock);
		g_mutex_unlock(&acct->save_lock);
		return;
	}
	data = cache_index_serialize(acct->index);
	acct->saved_generation = generation;
	acct->saved_at = g_get_monotonic_time();
	g_mutex_unlock(&acct->lock);
	/* A disk full of cached messages makes room for the index too. */
	if (!cache_index_write_file(acct->index_path, data, &error) &&
	    g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE) &&
	    cache_store_make_room(acct->store, g_bytes_get_size(data))) {
		g_clear_error(&error);
		cache_index_write_file(acct->index_path, data, &error);
	}
	if (error) {
		g_warning("cannot save the index: %s", error->message);
		/* Not saved: the next save (at unmount, say) tries again. */
		g_mutex_lock(&acct->lock);
		acct->saved_generation = 0;
		g_mutex_unlock(&acct->lock);
	}
	g_mutex_unlock(&acct->save_lock);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	remove(path);
	return 0;
}

gboolean cache_account_make_room(CacheAccount *acct, guint64 bytes)
{
	return cache_store_make_room(acct->store, bytes);
}

/* Removes what @dir holds for an account: its index and messages (files
 * being created, in new/, stay). */
static void clear_cache_dir(const char *dir)
{
	g_autofree char *index = g_build_filename(dir, "index", NULL);
	g_autofree char *messages = g_build_filename(dir, "messages", NULL);

	g_unlink(index);
	nftw(messages, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

gboolean cache_account_claim_dir(const char *dir, const char *account,
				 GError **error)
{
	g_autofree char *path = g_build_filename(dir, "account", NULL);
	g_autofree char *owner = NULL;
	g_autofree char *text = g_strconcat(account, "\n", NULL);
	g_autoptr(GError) local = NULL;

	if (g_file_get_contents(path, &owner, NULL, NULL) &&
	    g_strcmp0(g_strchomp(owner), account) == 0)
		return TRUE;
	/* Another account's bytes, or bytes of no known account. The old
	 * name goes first: if the new one cannot be written, the directory
	 * must not go on naming the other account. */
	if (owner)
		g_message("cache directory %s was used for %s; clearing it "
			  "for %s",
			  dir, owner, account);
	g_unlink(path);
	clear_cache_dir(dir);
	if (g_file_set_contents_full(path, text, -1,
				     G_FILE_SET_CONTENTS_CONSISTENT, 0600,
				     &local))
		return TRUE;
	/* Unnamed, what this mount caches is cleared by the next one: safe,
	 * and the messages read meanwhile are held in memory. (GLib has no
	 * code of its own for EDQUOT; its text says it.) */
	if (g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOSPC) ||
	    strstr(local->message, g_strerror(EDQUOT))) {
		g_warning("the disk of the cache directory %s is full; "
			  "messages are held in memory until it has room (free "
			  "some space there, or give another directory with "
			  "-o cache_dir)",
			  dir);
		return TRUE;
	}
	g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_IO,
		    "cannot claim the cache directory %s for %s: %s", dir,
		    account, local->message);
	return FALSE;
}

/* The server answers again: the watcher, kept away by the outage, need
 * not wait out its pause (up to 5 minutes) to tell of new mail. */
static void on_reconnected(gpointer user_data)
{
	CacheAccount *acct = user_data;

	/* Under the lock: cache_account_free() takes the watcher away
	 * under it before it frees it. */
	g_mutex_lock(&acct->lock);
	if (acct->idle)
		imap_idle_nudge(acct->idle);
	g_mutex_unlock(&acct->lock);
}

CacheAccount *cache_account_new(ImapPool *pool, const CacheOptions *opts,
				GError **error)
{
	g_autofree char *store_dir = NULL;
	CacheAccount *acct;
	CacheStore *store;

	cache_text_init();
	if (g_mkdir_with_parents(opts->cache_dir, 0700) < 0) {
		int err = errno;

		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err),
			    "cannot create cache directory %s: %s",
			    opts->cache_dir, g_strerror(err));
		imap_pool_free(pool);
		return NULL;
	}
	store_dir = g_build_filename(opts->cache_dir, "messages", NULL);
	store = cache_store_new(store_dir, opts->cache_size, error);
	if (!store) {
		imap_pool_free(pool);
		return NULL;
	}

	acct = g_new0(CacheAccount, 1);
	acct->pool = pool;
	acct->store = store;
	acct->cache_dir = g_strdup(opts->cache_dir);
	acct->timeout_s = opts->timeout_s ? opts->timeout_s : 60;
	acct->list_ttl = (gint64)opts->list_ttl_s * G_TIME_SPAN_SECOND;
	g_mutex_init(&acct->lock);
	g_mutex_init(&acct->save_lock);
	g_cond_init(&acct->renamed);
	acct->index_path = g_build_filename(opts->cache_dir, "index", NULL);
	acct->index = load_index(acct->index_path);
	acct->inflight =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
				      (GDestroyNotify)cache_wait_unref);
	acct->walk_order = -1;
	acct->ending = g_cancellable_new();
	acct->ahead = g_hash_table_new(g_str_hash, g_str_equal);
	acct->scans = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
					    g_free);
	imap_pool_set_select_func(pool, cache_sync_on_select, acct);
	imap_pool_set_reconnected_func(pool, on_reconnected, acct);
	return acct;
}

void cache_account_free(CacheAccount *acct)
{
	ImapIdle *idle;

	if (!acct)
		return;
	/* First the watcher and the pool: every callback that could touch us
	 * has run. */
	g_mutex_lock(&acct->lock);
	idle = g_steal_pointer(&acct->idle);
	g_mutex_unlock(&acct->lock);
	imap_idle_free(idle);
	imap_pool_free(acct->pool);
	save_index(acct, TRUE);
	g_free(acct->index_path);
	g_hash_table_unref(acct->inflight);
	g_hash_table_unref(acct->scans);
	g_hash_table_unref(acct->ahead);
	cache_index_free(acct->index);
	cache_store_free(acct->store);
	g_object_unref(acct->ending);
	g_cond_clear(&acct->renamed);
	g_mutex_clear(&acct->lock);
	g_free(acct->cache_dir);
	g_free(acct);
}

void cache_account_end(CacheAccount *acct)
{
	g_cancellable_cancel(acct->ending);
}

static void cancel_too(GCancellable *ending, gpointer cancel)
{
	g_cancellable_cancel(cancel);
}

gboolean cache_account_block_within(CacheAccount *acct, CacheWait *wait,
				    guint wait_s, GError **error)
{
	g_autofree char *problem = NULL;

	/* A refresh of what is shown already would only wait out its time
	 * while the server cannot be reached: it goes on behind, and what
	 * was shown is shown at once. */
	if (wait_s && (problem = imap_pool_unreachable(acct->pool))) {
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_TIMEOUT,
			    "the server cannot be reached: %s", problem);
		return FALSE;
	}
	if (!wait_s || wait_s > acct->timeout_s)
		wait_s = acct->timeout_s;
	return cache_wait_block(wait, wait_s, acct->ending, error);
}

gboolean cache_account_block(CacheAccount *acct, CacheWait *wait,
			     GCancellable *cancel, GError **error)
{
	gulong handler = 0;
	gboolean ok;

	if (!cancel)
		cancel = acct->ending;
	else
		handler = g_cancellable_connect(
			acct->ending, G_CALLBACK(cancel_too), cancel, NULL);
	ok = cache_wait_block(wait, acct->timeout_s, cancel, error);
	if (handler)
		g_cancellable_disconnect(acct->ending, handler);
	return ok;
}

void cache_account_set_invalidate_func(CacheAccount *acct,
				       CacheInvalidateFunc func,
				       CacheInvalidateEntryFunc entry_func,
				       CacheRenewedFunc renewed_func,
				       gpointer user_data)
{
	acct->invalidate = func;
	acct->invalidate_entry = entry_func;
	acct->renewed = renewed_func;
	acct->invalidate_data = user_data;
}

char *cache_account_connect_problem(CacheAccount *acct)
{
	return imap_pool_connect_problem(acct->pool);
}

void cache_account_watch(CacheAccount *acct)
{
	if (acct->idle)
		return;
	if (!(imap_pool_caps(acct->pool) & IMAP_CAP_IDLE)) {
		g_message("the server does not offer IDLE: changes made "
			  "elsewhere show after list_ttl");
		return;
	}
	ImapIdle *idle =
		imap_idle_new(imap_pool_config(acct->pool), IMAP_IDLE_CONN_NO,
			      "INBOX", cache_sync_on_change, acct);

	g_mutex_lock(&acct->lock);
	acct->idle = idle;
	g_mutex_unlock(&acct->lock);
}

CacheWait *cache_account_join(CacheAccount *acct, const char *key,
			      CacheWait *fresh, gboolean *out_is_new)
{
	CacheWait *wait;

	g_mutex_lock(&acct->lock);
	wait = g_hash_table_lookup(acct->inflight, key);
	*out_is_new = wait == NULL;
	if (!wait) {
		wait = fresh;
		g_hash_table_insert(acct->inflight, g_strdup(key),
				    cache_wait_ref(wait));
	}
	cache_wait_ref(wait);
	g_mutex_unlock(&acct->lock);
	return wait;
}

void cache_account_leave(CacheAccount *acct, const char *key)
{
	g_mutex_lock(&acct->lock);
	g_hash_table_remove(acct->inflight, key);
	g_mutex_unlock(&acct->lock);
}

/* ---- Mailboxes ---------------------------------------------------------- */

gboolean cache_account_ensure_listed(CacheAccount *acct, gboolean refresh,
				     GError **error)
{
	GError *local = NULL;
	gboolean listed, stale, loaded;

	g_mutex_lock(&acct->lock);
	listed = cache_index_ever_listed(acct->index);
	/* listed_at 0: a list saved by an earlier mount, never confirmed by
	 * this one: ask the server before trusting it for anything. */
	loaded = cache_index_listed_at(acct->index) == 0;
	stale = g_get_monotonic_time() - cache_index_listed_at(acct->index) >=
		acct->list_ttl;
	g_mutex_unlock(&acct->lock);
	if (listed && !loaded && !(refresh && stale))
		return TRUE;
	if (!cache_sync_mailboxes(acct,
				  listed && !loaded ? CACHE_REFRESH_WAIT_S : 0,
				  &local)) {
		/* A refresh that fails still leaves the old list usable. */
		if (listed) {
			g_warning("cannot refresh the mailbox list (it is "
				  "shown as it was): %s",
				  local->message);
			g_error_free(local);
			return TRUE;
		}
		g_propagate_error(error, local);
		return FALSE;
	}
	return TRUE;
}

static void copy_mailbox_locked(CacheAccount *acct,
				const CacheIndexMailbox *mbox,
				CacheMailbox *out)
{
	memset(out, 0, sizeof(*out));
	out->id = mbox->id;
	out->parent_id = mbox->parent_id;
	out->component = g_strdup(mbox->component);
	out->full_name = g_strdup(mbox->full_name);
	out->delimiter = mbox->delimiter;
	out->flags = mbox->flags;
	if (!mbox->wire_name)
		out->flags |= CACHE_MAILBOX_NOSELECT;
	out->n_children = cache_index_n_children(acct->index, mbox->id);
	out->uidvalidity = mbox->uidvalidity;
	out->uidnext = mbox->uidnext;
	out->highestmodseq = mbox->highestmodseq;
	out->n_messages = g_hash_table_size(mbox->by_uid);
}

gboolean cache_account_get_mailbox(CacheAccount *acct, guint32 id,
				   CacheMailbox *out, GError **error)
{
	if (!cache_account_ensure_listed(acct, FALSE, error))
		return FALSE;
	if (cache_account_peek_mailbox(acct, id, out))
		return TRUE;
	g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_FOUND,
		    "no mailbox %u", id);
	return FALSE;
}

gboolean cache_account_peek_mailbox(CacheAccount *acct, guint32 id,
				    CacheMailbox *out)
{
	CacheIndexMailbox *mbox;

	g_mutex_lock(&acct->lock);
	if (id == CACHE_ROOT_ID) {
		memset(out, 0, sizeof(*out));
		out->component = g_strdup("");
		out->full_name = g_strdup("");
		out->flags = CACHE_MAILBOX_NOSELECT;
		out->n_children =
			cache_index_n_children(acct->index, CACHE_ROOT_ID);
		g_mutex_unlock(&acct->lock);
		return TRUE;
	}
	mbox = cache_index_mailbox(acct->index, id);
	if (mbox)
		copy_mailbox_locked(acct, mbox, out);
	g_mutex_unlock(&acct->lock);
	return mbox != NULL;
}

GArray *cache_account_list_children(CacheAccount *acct, guint32 parent_id,
				    GError **error)
{
	g_autoptr(GPtrArray) children = NULL;
	GArray *out;
	CacheIndexMailbox *self;
	gboolean own_refresh;

	if (!cache_account_ensure_listed(acct, TRUE, error))
		return NULL;
	/* A mailbox that holds messages tells the look-ahead once its own
	 * refresh is done (cache_account_foreach_message), so that it does
	 * not wait behind the ones started ahead. */
	g_mutex_lock(&acct->lock);
	self = cache_index_mailbox(acct->index, parent_id);
	own_refresh = self && self->wire_name &&
		      !(self->flags & CACHE_MAILBOX_NOSELECT);
	g_mutex_unlock(&acct->lock);
	if (!own_refresh)
		cache_lookahead_listing(acct, parent_id);
	out = g_array_new(FALSE, TRUE, sizeof(CacheMailbox));
	g_array_set_clear_func(out, (GDestroyNotify)cache_mailbox_clear);
	g_mutex_lock(&acct->lock);
	if (parent_id != CACHE_ROOT_ID &&
	    !cache_index_mailbox(acct->index, parent_id)) {
		g_mutex_unlock(&acct->lock);
		g_array_unref(out);
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_FOUND,
			    "no mailbox %u", parent_id);
		return NULL;
	}
	children = cache_index_children(acct->index, parent_id);
	g_array_set_size(out, children->len);
	for (guint i = 0; i < children->len; i++)
		copy_mailbox_locked(acct, children->pdata[i],
				    &g_array_index(out, CacheMailbox, i));
	g_mutex_unlock(&acct->lock);
	return out;
}

guint32 cache_account_current_dir(CacheAccount *acct, guint32 id)
{
	g_mutex_lock(&acct->lock);
	id = cache_index_current(acct->index, id);
	g_mutex_unlock(&acct->lock);
	return id;
}

guint32 cache_account_settle_dir(CacheAccount *acct, guint32 id,
				 gboolean refresh, GError **error)
{
	/* Twice at most: the second time for the mailbox made anew. */
	for (guint pass = 0; pass < 2; pass++) {
		id = cache_account_current_dir(acct, id);
		if (!cache_account_ensure_synced(acct, id, refresh, error))
			return 0;
		if (cache_account_current_dir(acct, id) == id)
			return id;
	}
	return cache_account_current_dir(acct, id);
}

guint32 cache_account_find_child(CacheAccount *acct, guint32 parent_id,
				 const char *component)
{
	g_autoptr(GPtrArray) children = NULL;
	guint32 id = 0;

	if (!cache_account_ensure_listed(acct, FALSE, NULL))
		return 0;
	g_mutex_lock(&acct->lock);
	children = cache_index_children(acct->index, parent_id);
	for (guint i = 0; i < children->len && !id; i++) {
		CacheIndexMailbox *mbox = children->pdata[i];

		if (strcmp(mbox->component, component) == 0)
			id = mbox->id;
	}
	g_mutex_unlock(&acct->lock);
	return id;
}

/* ---- Messages ----------------------------------------------------------- */

/* After asking mailbox @id for something failed with *@error: where the
 * server refused (a NO, as for a mailbox it does not have), the list is
 * asked again, and if the mailbox is no longer in it (another client
 * deleted or renamed it), *@error says so, as NOT_FOUND. Returns whether
 * it did. */
static gboolean mailbox_gone(CacheAccount *acct, guint32 id, GError **error)
{
	g_autofree char *name = NULL;
	CacheIndexMailbox *mbox;
	gboolean gone;

	if (!g_error_matches(*error, IMAPFS_IMAP_ERROR,
			     IMAP_ERROR_NONEXISTENT) &&
	    !g_error_matches(*error, IMAPFS_IMAP_ERROR, IMAP_ERROR_FAILED))
		return FALSE;
	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, id);
	name = g_strdup(mbox ? mbox->full_name : NULL);
	g_mutex_unlock(&acct->lock);
	if (!name || !cache_sync_mailboxes(acct, 0, NULL))
		return FALSE;
	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, id);
	/* (One left as the parent of others, \Noselect, is still there.) */
	gone = !mbox || g_strcmp0(mbox->full_name, name) != 0;
	g_mutex_unlock(&acct->lock);
	if (!gone)
		return FALSE;
	g_debug("%s: %s", name, (*error)->message);
	g_clear_error(error);
	g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_FOUND,
		    "mailbox %s is no longer on the server (another client "
		    "deleted or renamed it)",
		    name);
	return TRUE;
}

/* Syncs mailbox @id if it never was, or (with @refresh) if it is stale. */
gboolean cache_account_ensure_synced(CacheAccount *acct, guint32 id,
				     gboolean refresh, GError **error)
{
	CacheIndexMailbox *mbox;
	GError *local = NULL;
	gboolean synced = FALSE, stale = FALSE, unconfirmed = FALSE;

	if (!cache_account_ensure_listed(acct, FALSE, error))
		return FALSE;
	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, id);
	if (mbox) {
		synced = mbox->synced;
		stale = g_get_monotonic_time() - mbox->synced_at >=
			acct->list_ttl;
		/* synced_at 0: loaded from disk, or known to have changed. */
		unconfirmed = mbox->synced_at == 0;
	}
	g_mutex_unlock(&acct->lock);
	if (!mbox) {
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_FOUND,
			    "no mailbox %u", id);
		return FALSE;
	}
	if (synced && !unconfirmed && !(refresh && stale))
		return TRUE;
	/* Only stale: shown as it is if the server is slow to answer. Known
	 * to have changed (by our own mv, say): waited for. */
	if (cache_sync_messages(acct, id,
				synced && !unconfirmed ? CACHE_REFRESH_WAIT_S
						       : 0,
				&local)) {
		save_index(acct, FALSE);
	} else {
		if (!mailbox_gone(acct, id, &local) && synced) {
			g_autofree char *name = NULL;

			g_mutex_lock(&acct->lock);
			mbox = cache_index_mailbox(acct->index, id);
			name = g_strdup(mbox ? mbox->full_name : "?");
			g_mutex_unlock(&acct->lock);
			g_warning("cannot refresh mailbox %s (its listing is "
				  "shown as it was): %s",
				  name, local->message);
			g_error_free(local);
			return TRUE;
		}
		g_propagate_error(error, local);
		return FALSE;
	}
	return TRUE;
}

gboolean cache_account_foreach_message(CacheAccount *acct, guint32 mailbox_id,
				       CacheMessageFunc func,
				       gpointer user_data, GError **error)
{
	CacheIndexMailbox *mbox;

	if (!cache_account_ensure_synced(acct, mailbox_id, TRUE, error))
		return FALSE;
	cache_lookahead_listing(acct, mailbox_id);
	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, mailbox_id);
	if (mbox) {
		GPtrArray *sorted = cache_index_sorted(mbox);

		for (guint i = 0; i < sorted->len; i++)
			func(sorted->pdata[i], user_data);
	}
	g_mutex_unlock(&acct->lock);
	return TRUE;
}

gboolean cache_account_get_message(CacheAccount *acct, CacheMsgRef ref,
				   CacheMessage *out, GError **error)
{
	if (!cache_account_ensure_synced(acct, ref.mailbox_id, FALSE, error))
		return FALSE;
	if (cache_account_peek_message(acct, ref, out))
		return TRUE;
	g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_FOUND,
		    "no message %u in mailbox %u", ref.uid, ref.mailbox_id);
	return FALSE;
}

gboolean cache_account_peek_message(CacheAccount *acct, CacheMsgRef ref,
				    CacheMessage *out)
{
	CacheIndexMailbox *mbox;
	CacheMessage *msg = NULL;

	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, ref.mailbox_id);
	if (mbox)
		msg = cache_index_message(mbox, ref.uid);
	if (msg && out)
		cache_message_copy_to(msg, out);
	g_mutex_unlock(&acct->lock);
	return msg != NULL;
}

guint32 cache_account_find_alias(CacheAccount *acct, guint32 mailbox_id,
				 const char *alias)
{
	CacheIndexMailbox *mbox;
	CacheMessage *msg = NULL;
	guint32 uid;

	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, mailbox_id);
	if (mbox)
		msg = cache_index_message_by_alias(mbox, alias);
	uid = msg ? msg->uid : 0;
	g_mutex_unlock(&acct->lock);
	return uid;
}

/* ---- Reading ------------------------------------------------------------ */

void cache_account_correct_size(CacheAccount *acct, CacheMsgRef ref,
				const char *mailbox, guint64 size)
{
	CacheIndexMailbox *mbox;
	CacheMessage *msg = NULL;
	gboolean changed = FALSE;

	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, ref.mailbox_id);
	if (mbox)
		msg = cache_index_message(mbox, ref.uid);
	if (msg && msg->size != size) {
		g_message("UID %u in %s: the server said %" G_GUINT64_FORMAT
			  " bytes, the message has %" G_GUINT64_FORMAT,
			  ref.uid, mailbox, msg->size, size);
		msg->size = size;
		mbox->generation++;
		changed = TRUE;
	}
	g_mutex_unlock(&acct->lock);
	if (changed && acct->invalidate)
		acct->invalidate(ref, acct->invalidate_data);
}

/* A range of a large message: UID FETCH uid (BODY.PEEK[]<off.len>). */
typedef struct {
	CacheAccount *acct; /* borrowed */
	CacheWait *wait;    /* completed with the job's outcome */
	CacheMsgRef ref;
	char *key;     /* inflight key */
	char *mailbox; /* wire name */
	guint32 uidvalidity;
	guint64 size; /* what the index said when we asked */
	guint64 off;  /* requested origin and length */
	guint64 len;
	gboolean got;	  /* the body arrived and was stored */
	guint64 new_size; /* the true size, if a short range showed it */
	GError *error;
} FetchJob;

static void fetch_job_free(gpointer data)
{
	FetchJob *job = data;

	cache_wait_unref(job->wait);
	g_clear_error(&job->error);
	g_free(job->key);
	g_free(job->mailbox);
	g_free(job);
}

/* imap-io thread: place the range in the store. */
static void on_fetch_data(const ImapResponse *resp, guint32 uidvalidity,
			  gpointer user_data)
{
	FetchJob *job = user_data;
	CacheKey key = {job->mailbox, job->uidvalidity, job->ref.uid};
	ImapFetch fetch;
	const ImapValue *body;
	guint64 expect;
	gsize n;

	if (g_strcmp0(resp->name, "FETCH") != 0 ||
	    !imap_response_get_fetch(resp, &fetch, NULL))
		return;
	body = fetch.body;
	/* Data of other commands in flight reaches us too: take only the
	 * range we asked for. */
	if (fetch.uid != job->ref.uid || !body || job->got || job->error ||
	    g_strcmp0(fetch.body_section, "") != 0 || !fetch.has_origin ||
	    fetch.origin != job->off)
		goto out;
	if (uidvalidity != job->uidvalidity) {
		g_set_error(&job->error, IMAPFS_CACHE_ERROR,
			    CACHE_ERROR_NOT_FOUND,
			    "mailbox %s changed UIDVALIDITY", job->mailbox);
		goto out;
	}
	if (body->type == IMAP_VALUE_NIL) {
		g_set_error(&job->error, IMAPFS_CACHE_ERROR, CACHE_ERROR_IO,
			    "server sent no body for UID %u in %s",
			    job->ref.uid, job->mailbox);
		goto out;
	}
	n = body->len;
	expect = MIN(job->len, job->size - job->off);
	if (n > expect) {
		/* Longer than RFC822.SIZE said: only a whole fetch tells the
		 * true size. Store nothing; the reader will fetch it whole. */
		job->got = TRUE;
		goto out;
	}
	if (n < expect)
		job->new_size = job->off + n; /* it ends here */
	if (!cache_store_put_range(
		    job->acct->store, &key,
		    job->new_size ? job->new_size : job->size, job->off,
		    body->type == IMAP_VALUE_STRING ? body->str : NULL,
		    body->fd, n, &job->error))
		goto out;
	job->got = TRUE;
out:
	imap_fetch_clear(&fetch);
}

static void on_fetch_done(ImapReply *reply, GError *error, gpointer user_data)
{
	FetchJob *job = user_data;

	cache_account_leave(job->acct, job->key);
	if (!error && job->error) {
		/* The cache's own failure: the reader's line names it. */
		if (job->error->domain != G_IO_ERROR)
			g_warning("UID %u of %s: %s", job->ref.uid,
				  job->mailbox, job->error->message);
		error = g_steal_pointer(&job->error);
	}
	if (!error && job->new_size)
		cache_account_correct_size(job->acct, job->ref, job->mailbox,
					   job->new_size);
	cache_wait_complete(job->wait, error);
	imap_reply_free(reply);
	g_clear_error(&error);
	fetch_job_free(job);
}

typedef struct {
	char *mailbox;
	guint32 uidvalidity;
	guint64 size;
} MsgPlace;

static gboolean locate(CacheAccount *acct, CacheMsgRef ref, MsgPlace *out,
		       GError **error)
{
	CacheIndexMailbox *mbox;
	CacheMessage *msg = NULL;

	if (!cache_account_ensure_synced(acct, ref.mailbox_id, FALSE, error))
		return FALSE;
	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, ref.mailbox_id);
	if (mbox && mbox->synced)
		msg = cache_index_message(mbox, ref.uid);
	if (msg) {
		out->mailbox = g_strdup(mbox->wire_name);
		out->uidvalidity = mbox->uidvalidity;
		out->size = msg->size;
	}
	g_mutex_unlock(&acct->lock);
	if (!msg)
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_FOUND,
			    "message %u of mailbox %u is gone", ref.uid,
			    ref.mailbox_id);
	return msg != NULL;
}

/* After a fetch under the name @wire failed: whether @ref's mailbox has
 * another name now, once no rename is under way (the failure may be the
 * rename's, and its index change may come just after), or @cancel. */
static gboolean renamed_from(CacheAccount *acct, CacheMsgRef ref,
			     const char *wire, GCancellable *cancel)
{
	CacheIndexMailbox *mbox;
	gboolean renamed;

	g_mutex_lock(&acct->lock);
	while (acct->renaming && !g_cancellable_is_cancelled(cancel))
		g_cond_wait_until(&acct->renamed, &acct->lock,
				  g_get_monotonic_time() +
					  G_TIME_SPAN_SECOND / 10);
	mbox = cache_index_mailbox(acct->index, ref.mailbox_id);
	renamed = mbox && g_strcmp0(mbox->wire_name, wire) != 0;
	g_mutex_unlock(&acct->lock);
	return renamed;
}

/* Fetches what a read of [off, off+len) needs, or joins the fetch that is
 * already under way, and waits for it. With @note_read, tells the
 * prefetch's detector of a read from offset 0 once the fetch is asked
 * for. */
static gboolean fetch_for_read(CacheAccount *acct, CacheMsgRef ref,
			       const MsgPlace *place, goffset off, gsize len,
			       gboolean whole, gboolean note_read,
			       GCancellable *cancel, GError **error)
{
	g_autoptr(CacheWait) fresh = cache_wait_new();
	g_autoptr(CacheWait) wait = NULL;
	g_autofree char *key = NULL;
	CacheKey ck = {place->mailbox, place->uidvalidity, ref.uid};
	guint64 end = MIN((guint64)off + len, place->size);
	guint64 start = off - off % CACHE_STORE_CHUNK;
	guint64 span = end - start;
	gboolean is_new;
	int prev;

	if (whole)
		return cache_prefetch_whole(acct, ref, place->mailbox,
					    place->uidvalidity, note_read,
					    cancel, error);
	/* Reading on from the chunk before: read further ahead. */
	if (start >= CACHE_STORE_CHUNK) {
		prev = cache_store_open_range(acct->store, &ck, place->size,
					      start - CACHE_STORE_CHUNK, 1);
		if (prev >= 0) {
			close(prev);
			span = MAX(span, MIN(start / 2 + CACHE_STORE_CHUNK,
					     CACHE_READAHEAD_MAX));
		}
	}
	span = (span + CACHE_STORE_CHUNK - 1) / CACHE_STORE_CHUNK *
	       CACHE_STORE_CHUNK;
	key = g_strdup_printf("range:%u:%u:%" G_GUINT64_FORMAT, ref.mailbox_id,
			      ref.uid, start);
	wait = cache_account_join(acct, key, fresh, &is_new);
	if (is_new) {
		FetchJob *job = g_new0(FetchJob, 1);

		job->acct = acct;
		job->wait = cache_wait_ref(wait);
		job->ref = ref;
		job->key = g_strdup(key);
		job->mailbox = g_strdup(place->mailbox);
		job->uidvalidity = place->uidvalidity;
		job->size = place->size;
		job->off = start;
		job->len = span;
		imap_pool_submit(
			acct->pool, place->mailbox,
			imap_command_new(NULL, IMAP_COMMAND_RETRIABLE,
					 "UID FETCH %u (BODY.PEEK[]<%u.%u>)",
					 ref.uid, (guint)start, (guint)span),
			on_fetch_data, on_fetch_done, job);
	}
	if (note_read)
		cache_prefetch_note_read(acct, ref);
	return cache_account_block(acct, wait, cancel, error);
}

static gboolean span_from_fd(int fd, goffset off, gsize len,
			     CacheSpan *out_span)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		close(fd);
		return FALSE;
	}
	out_span->fd = fd;
	out_span->pos = off;
	out_span->len =
		off >= st.st_size ? 0 : MIN(len, (gsize)(st.st_size - off));
	return TRUE;
}

/* Tells the prefetch's detector of a read from offset 0, unless *@noted. */
static void note_read_once(CacheAccount *acct, CacheMsgRef ref,
			   gboolean *noted)
{
	if (!*noted)
		cache_prefetch_note_read(acct, ref);
	*noted = TRUE;
}

/* The read path. @expect_uidvalidity (0: any) is what an open file was
 * opened under: another UIDVALIDITY means another message with that UID,
 * which is NOT_FOUND for the reader. */
static gboolean read_message(CacheAccount *acct, CacheMsgRef ref,
			     guint32 expect_uidvalidity, goffset off, gsize len,
			     CacheSpan *out_span, GCancellable *cancel,
			     GError **error)
{
	/* A read from offset 0 is told to the prefetch's detector once, after
	 * this read's own fetch (if any) is asked for, which must not go
	 * behind what the detector then fetches ahead. */
	gboolean noted = off != 0;

	*out_span = (CacheSpan){.fd = -1, .borrowed = FALSE};
	for (guint attempt = 0; attempt < 4; attempt++) {
		MsgPlace place = {0};
		GError *failed = NULL;
		CacheKey key;
		gboolean whole;
		int fd;

		if (!locate(acct, ref, &place, error))
			return FALSE;
		if (expect_uidvalidity &&
		    place.uidvalidity != expect_uidvalidity) {
			g_free(place.mailbox);
			g_set_error(error, IMAPFS_CACHE_ERROR,
				    CACHE_ERROR_NOT_FOUND,
				    "message %u of mailbox %u is gone (new "
				    "UIDVALIDITY)",
				    ref.uid, ref.mailbox_id);
			return FALSE;
		}
		key = (CacheKey){place.mailbox, place.uidvalidity, ref.uid};
		if ((guint64)off >= place.size) {
			g_free(place.mailbox);
			note_read_once(acct, ref, &noted);
			out_span->len = 0;
			return TRUE;
		}
		fd = cache_store_open_complete(acct->store, &key,
					       place.size);
		if (fd >= 0) {
			g_free(place.mailbox);
			note_read_once(acct, ref, &noted);
			/* The file on disk is the whole message: its size is
			 * the truth, whatever the server said. */
			return span_from_fd(fd, off, MIN(len, place.size - off),
					    out_span) ||
			       (g_set_error(error, IMAPFS_CACHE_ERROR,
					    CACHE_ERROR_IO, "cache file: %s",
					    g_strerror(errno)),
				FALSE);
		}
		whole = place.size <= CACHE_WHOLE_MAX || attempt >= 2;
		if (!whole) {
			/* Already coming whole (a prefetch): wait for that. */
			g_autoptr(CacheWait) pending =
				cache_prefetch_pending(acct, ref);

			if (pending) {
				g_free(place.mailbox);
				note_read_once(acct, ref, &noted);
				if (!cache_account_block(acct, pending, cancel,
							 error))
					return FALSE;
				continue;
			}
			fd = cache_store_open_range(acct->store, &key,
						    place.size, off, len);
			if (fd >= 0) {
				g_free(place.mailbox);
				note_read_once(acct, ref, &noted);
				out_span->fd = fd;
				out_span->pos = off;
				out_span->len = MIN(len, place.size - off);
				return TRUE;
			}
		}
		if (!fetch_for_read(acct, ref, &place, off, len, whole, !noted,
				    cancel, &failed)) {
			/* Asked for under a name that a rename took away:
			 * again under the new one. */
			if (g_cancellable_is_cancelled(cancel) ||
			    !renamed_from(acct, ref, place.mailbox, cancel)) {
				mailbox_gone(acct, ref.mailbox_id, &failed);
				g_free(place.mailbox);
				g_propagate_error(error, failed);
				return FALSE;
			}
			g_debug("UID %u of %s: asked again, the mailbox was "
				"renamed: %s", ref.uid, place.mailbox,
				failed->message);
			g_clear_error(&failed);
		}
		noted = TRUE;
		g_free(place.mailbox);
	}
	g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_IO,
		    "message %u of mailbox %u could not be read consistently",
		    ref.uid, ref.mailbox_id);
	return FALSE;
}

gboolean cache_account_open(CacheAccount *acct, CacheMsgRef ref, CacheFile *out,
			    GError **error)
{
	MsgPlace place = {0};

	memset(out, 0, sizeof(*out));
	if (!locate(acct, ref, &place, error))
		return FALSE;
	out->ref = ref;
	out->mailbox = place.mailbox;
	out->uidvalidity = place.uidvalidity;
	out->size = place.size;
	out->fd = -1;
	cache_store_pin(acct->store,
			&(CacheKey){out->mailbox, out->uidvalidity, ref.uid});
	return TRUE;
}

void cache_account_close(CacheAccount *acct, CacheFile *file)
{
	if (!file->mailbox)
		return;
	if (file->fd >= 0)
		close(file->fd);
	file->fd = -1;
	cache_store_unpin(
		acct->store,
		&(CacheKey){file->mailbox, file->uidvalidity, file->ref.uid});
	g_clear_pointer(&file->mailbox, g_free);
}

gboolean cache_account_keep(CacheAccount *acct, CacheMsgRef ref, GError **error)
{
	MsgPlace place = {0};
	CacheKey key;
	gboolean ok = TRUE;
	int fd;

	if (!locate(acct, ref, &place, error))
		return FALSE;
	key = (CacheKey){place.mailbox, place.uidvalidity, ref.uid};
	fd = cache_store_open_complete(acct->store, &key, place.size);
	if (fd >= 0)
		close(fd);
	else
		ok = fetch_for_read(acct, ref, &place, 0, place.size, TRUE,
				    FALSE, NULL, error);
	g_free(place.mailbox);
	return ok;
}

/* Keeps an fd of the whole message in @file once the store has it, so the
 * reads after the first cost no open(). Any thread; the first wins. */
static int file_fd(CacheAccount *acct, CacheFile *file)
{
	CacheKey key = {file->mailbox, file->uidvalidity, file->ref.uid};
	struct stat st;
	int fd = g_atomic_int_get(&file->fd);

	if (fd >= 0)
		return fd;
	fd = cache_store_open_complete(acct->store, &key, file->size);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -1;
	}
	/* fd_size is written before fd is published, and only by the
	 * thread that publishes it; readers see it after reading fd. */
	g_mutex_lock(&acct->lock);
	if (file->fd < 0) {
		file->fd_size = st.st_size;
		g_atomic_int_set(&file->fd, fd);
	} else {
		close(fd);
		fd = file->fd;
	}
	g_mutex_unlock(&acct->lock);
	return fd;
}

gboolean cache_account_read_file(CacheAccount *acct, CacheFile *file,
				 goffset off, gsize len, CacheSpan *out_span,
				 GCancellable *cancel, GError **error)
{
	GError *local = NULL;
	CacheKey key = {file->mailbox, file->uidvalidity, file->ref.uid};
	int fd = file_fd(acct, file);

	if (fd >= 0) {
		out_span->fd = fd;
		out_span->borrowed = TRUE;
		out_span->pos = off;
		out_span->len = (guint64)off >= file->fd_size
					? 0
					: MIN(len, file->fd_size - off);
		if (off == 0)
			cache_prefetch_note_read(acct, file->ref);
		return TRUE;
	}
	if (read_message(acct, file->ref, file->uidvalidity, off, len, out_span,
			 cancel, &local))
		return TRUE;
	if (!g_error_matches(local, IMAPFS_CACHE_ERROR,
			     CACHE_ERROR_NOT_FOUND)) {
		g_propagate_error(error, local);
		return FALSE;
	}
	/* Gone from the index (moved or deleted while open): what the store
	 * kept is still the message's, byte for byte. */
	fd = cache_store_open_complete(acct->store, &key, file->size);
	if (fd < 0) {
		g_propagate_error(error, local);
		return FALSE;
	}
	g_error_free(local);
	if (!span_from_fd(fd, off, len, out_span)) {
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_IO,
			    "cache file: %s", g_strerror(errno));
		return FALSE;
	}
	return TRUE;
}

int cache_account_file_whole(CacheAccount *acct, CacheFile *file,
			     GCancellable *cancel, GError **error)
{
	CacheSpan span;

	/* Its first byte, read as a reader's first read would: from the
	 * whole file, or fetching a message fetched whole. */
	if (file_fd(acct, file) < 0 &&
	    (file->size > CACHE_WHOLE_MAX || file->size == 0))
		return -1;
	if (!cache_account_read_file(acct, file, 0, 1, &span, cancel, error))
		return -1;
	cache_span_release(&span);
	return file_fd(acct, file);
}

void cache_account_set_file_gone_func(CacheAccount *acct,
				      CacheFileGoneFunc func, gpointer data)
{
	cache_store_set_gone_func(acct->store, func, data);
}

void cache_account_tag_file(CacheAccount *acct, const CacheFile *file,
			    guint64 tag)
{
	cache_store_tag(acct->store, &(CacheKey){file->mailbox,
						 file->uidvalidity,
						 file->ref.uid},
			tag);
}

void cache_span_release(CacheSpan *span)
{
	if (span && span->fd >= 0 && !span->borrowed)
		close(span->fd);
	if (span)
		span->fd = -1;
}

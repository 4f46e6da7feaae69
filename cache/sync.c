/* cache/sync.c — refreshing the index.
 *
 * A mailbox is first listed with one command:
 *   UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE
 *                  BODY.PEEK[HEADER.FIELDS (SUBJECT FROM MESSAGE-ID)])
 * (the three fields a name and the xattrs need; ENVELOPE would bring From
 * three times over, as Sender and Reply-To, and every To and Cc: 411
 * bytes a message against 287 on the bench's corpus, more on real mail).
 * Later refreshes pipeline two commands in one round trip:
 *   UID FETCH 1:* (UID FLAGS)                  flags, and who is gone
 *   UID FETCH <max+1>:* (the same items as a first listing)
 * (RFC 9051 §6.4.8: "n:*" with n above every UID still returns the last
 * message, so UIDs at or below max are ignored there.)
 *
 * With CONDSTORE (RFC 7162) a refresh asks only for what changed, still in
 * one round trip:
 *   UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE <modseq>)
 *   UID FETCH <max+1>:* (... MODSEQ)
 *   UID SEARCH RETURN (ALL) ALL        (ESEARCH; else UID SEARCH ALL)
 * where the search says which UIDs still exist. A server that refuses it
 * (BAD) gets the plain refresh from then on. With QRESYNC enabled, the
 * first command also names who went, and there is no search:
 *   UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE <modseq> VANISHED)
 *   UID FETCH <max+1>:* (... MODSEQ)
 * (RFC 7162 §3.2.6: "* VANISHED (EARLIER) <uids>" before the FETCHes).
 * The search's answer grows with the gaps in a mailbox's UIDs, once per
 * refresh: hundreds of KB for a large mailbox long pruned. A server that
 * refuses VANISHED gets the search from then on.
 *
 * Data arrives on the imap-io thread into a SyncJob; the job's completion
 * applies it to the index under the account lock, and only if the
 * mailbox's UIDVALIDITY still matches what the data was fetched under.
 */
#include "cache/sync.h"

#include <string.h>
#include <unistd.h>

#include "cache/text.h"
#include "imap/caps.h"
#include "imap/error.h"
#include "imap/utf7.h"

#define SYNC_PASSES 3 /* refresh passes for one request, at most */
#define HEADER_SPOOLED_MAX (1024 * 1024) /* read of a spooled header block */

/* What a listing asks of each message. */
#define LISTED                                 \
	"UID FLAGS RFC822.SIZE INTERNALDATE " \
	"BODY.PEEK[HEADER.FIELDS (SUBJECT FROM MESSAGE-ID)]"

/* ---- Mailboxes ---------------------------------------------------------- */

typedef struct {
	CacheAccount *acct; /* borrowed: outlives every job */
	GArray *items;	    /* ImapListItem */
	guint changes;	    /* acct->list_changes when it began */
} ListJob;

static void list_job_free(gpointer data)
{
	ListJob *job = data;

	g_array_unref(job->items);
	g_free(job);
}

static void on_list_data(const ImapResponse *resp, guint32 uidvalidity,
			 gpointer user_data)
{
	ListJob *job = user_data;
	ImapListItem item;

	if (g_strcmp0(resp->name, "LIST") != 0)
		return;
	if (!imap_response_get_list(resp, &item, NULL))
		return;
	g_array_append_val(job->items, item);
}

static guint flags_from_attrs(guint attrs)
{
	guint flags = 0;

	if (attrs & (IMAP_MBOX_NOSELECT | IMAP_MBOX_NONEXISTENT))
		flags |= CACHE_MAILBOX_NOSELECT;
	if (attrs & IMAP_MBOX_TRASH)
		flags |= CACHE_MAILBOX_TRASH;
	if (attrs & IMAP_MBOX_JUNK)
		flags |= CACHE_MAILBOX_JUNK;
	if (attrs & IMAP_MBOX_SENT)
		flags |= CACHE_MAILBOX_SENT;
	if (attrs & IMAP_MBOX_DRAFTS)
		flags |= CACHE_MAILBOX_DRAFTS;
	if (attrs & IMAP_MBOX_ARCHIVE)
		flags |= CACHE_MAILBOX_ARCHIVE;
	return flags;
}

/* The UTF-8 name of a wire name; INBOX in any case is "INBOX". A name that
 * is not valid modified UTF-7 is shown as it is (made valid UTF-8). */
static char *display_name(const char *wire)
{
	char *utf8;

	if (g_ascii_strcasecmp(wire, "INBOX") == 0)
		return g_strdup("INBOX");
	utf8 = imap_utf7_decode(wire);
	if (!utf8) {
		g_message("mailbox name \"%s\" is not modified UTF-7; shown "
			  "as sent",
			  wire);
		utf8 = g_utf8_make_valid(wire, -1);
	}
	return utf8;
}

/* A mailbox's place in the tree. */
typedef struct {
	guint32 id;
	guint32 parent_id;
	char *component;
} Named;

static void named_clear(gpointer data)
{
	g_free(((Named *)data)->component);
}

static void on_list_done(CacheWait *wait, const ImapReply *reply,
			 const GError *error, gpointer user_data)
{
	ListJob *job = user_data;
	CacheAccount *acct = job->acct;
	g_autoptr(GArray) before = g_array_new(FALSE, FALSE, sizeof(Named));

	cache_account_leave(acct, "list");
	if (error)
		return;
	g_array_set_clear_func(before, named_clear);
	g_mutex_lock(&acct->lock);
	/* The mailboxes there were, to tell the kernel of those now gone. */
	for (guint32 id = 1; id <= cache_index_max_id(acct->index); id++) {
		CacheIndexMailbox *mbox = cache_index_mailbox(acct->index, id);
		Named named = {id, 0, NULL};

		if (mbox) {
			named.parent_id = mbox->parent_id;
			named.component = g_strdup(mbox->component);
			g_array_append_val(before, named);
		}
	}
	cache_index_list_begin(acct->index);
	for (guint i = 0; i < job->items->len; i++) {
		ImapListItem *item =
			&g_array_index(job->items, ImapListItem, i);
		g_autofree char *name = display_name(item->name);

		if (!*name)
			continue;
		if (item->delimiter &&
		    strstr(name, (char[]){item->delimiter, 0, 0}) == name)
			continue; /* a leading delimiter: not a name we map */
		cache_index_list_add(acct->index, item->name, name,
				     item->delimiter,
				     flags_from_attrs(item->attrs));
	}
	cache_index_list_end(acct->index);
	/* A change announced since the LIST went out may not be in it: the
	 * list stays unconfirmed, and the next use asks again. */
	if (job->changes != acct->list_changes)
		cache_index_set_listed_at(acct->index, 0);
	for (guint i = 0; i < before->len; i++) {
		Named *named = &g_array_index(before, Named, i);

		if (cache_index_mailbox(acct->index, named->id))
			g_clear_pointer(&named->component, g_free);
	}
	g_mutex_unlock(&acct->lock);
	/* A name the kernel looked up stays for list_ttl otherwise: a stat
	 * would find a mailbox deleted elsewhere. */
	for (guint i = 0; i < before->len && acct->invalidate_entry; i++) {
		Named *named = &g_array_index(before, Named, i);

		if (named->component)
			acct->invalidate_entry(named->parent_id,
					       named->component,
					       acct->invalidate_data);
	}
}

static void list_item_clear(gpointer data)
{
	imap_list_item_clear(data);
}

gboolean cache_sync_mailboxes(CacheAccount *acct, guint wait_s, GError **error)
{
	g_autoptr(CacheWait) fresh = cache_wait_new();
	g_autoptr(CacheWait) wait = NULL;
	gboolean is_new;

	wait = cache_account_join(acct, "list", fresh, &is_new);
	if (is_new) {
		guint caps = imap_pool_caps(acct->pool);
		gboolean special = (caps & IMAP_CAP_SPECIAL_USE) &&
				   (caps & IMAP_CAP_LIST_EXTENDED);
		ListJob *job = g_new0(ListJob, 1);
		ImapCommand *cmd;

		job->acct = acct;
		g_mutex_lock(&acct->lock);
		job->changes = acct->list_changes;
		g_mutex_unlock(&acct->lock);
		job->items = g_array_new(FALSE, TRUE, sizeof(ImapListItem));
		g_array_set_clear_func(job->items, list_item_clear);
		cmd = special ? imap_command_new(
					NULL, IMAP_COMMAND_RETRIABLE,
					"LIST \"\" \"*\" RETURN (SPECIAL-USE)")
			      : imap_command_new(NULL, IMAP_COMMAND_RETRIABLE,
						 "LIST \"\" \"*\"");
		cache_wait_submit(wait, acct->pool, NULL, cmd, on_list_data,
				  on_list_done, job, list_job_free);
	}
	return cache_account_block_within(acct, wait, wait_s, error);
}

/* ---- Messages ----------------------------------------------------------- */

typedef struct {
	CacheAccount *acct; /* borrowed */
	CacheWait *wait;    /* completed when the job is applied */
	guint32 id;
	char *key;
	gboolean full;	       /* a first listing, not a refresh */
	guint32 max_uid;       /* refresh: the highest UID we knew */
	GArray *gaps;	       /* guint32: UIDs below it asked for too */
	guint32 uidvalidity;   /* what the data was fetched under */
	gboolean mixed;	       /* data came under two UIDVALIDITYs */
	GHashTable *meta;      /* uid -> CacheMessage * (new messages) */
	GHashTable *flags;     /* refresh: uid -> flags string (everyone, or
				* with CHANGEDSINCE only who changed) */
	gboolean changedsince; /* a CONDSTORE refresh */
	gboolean earlier;      /* with VANISHED: no SEARCH */
	GArray *present;       /* CONDSTORE: ImapUidRange, from SEARCH */
	gboolean searched;     /* present holds the server's answer */
	guint64 max_modseq;    /* highest MODSEQ seen */
	gboolean unattributed; /* flags came without a UID (another
				* client's change, by sequence number) */
	gboolean has_exists;   /* the server said how many there are */
	guint32 exists;	       /* EXISTS, less EXPUNGEs seen after it */
	guint changes;	       /* the mailbox's changes when it began */
	GArray *gone;	       /* guint32: UIDs the refresh removed */
	GArray *vanished;      /* ImapUidRange: expunges told by UID
				* (QRESYNC) meanwhile */
	gboolean expunged;     /* an expunge told by sequence number
				* meanwhile: the answers may predate it */
	guint pending;	       /* commands not yet complete */
	GError *error;	       /* first failure */
} SyncJob;

static void sync_job_free(SyncJob *job)
{
	cache_wait_unref(job->wait);
	g_hash_table_unref(job->meta);
	g_clear_pointer(&job->flags, g_hash_table_unref);
	g_clear_pointer(&job->present, g_array_unref);
	g_clear_pointer(&job->gone, g_array_unref);
	g_clear_pointer(&job->vanished, g_array_unref);
	g_clear_pointer(&job->gaps, g_array_unref);
	g_clear_error(&job->error);
	g_free(job->key);
	g_free(job);
}

static char *join_flags(char **flags)
{
	GString *out = g_string_new(NULL);
	char *result;

	for (guint i = 0; flags && flags[i]; i++) {
		/* \Recent belongs to one session and cannot be set. */
		if (g_ascii_strcasecmp(flags[i], "\\Recent") == 0)
			continue;
		if (out->len)
			g_string_append_c(out, ' ');
		g_string_append(out, flags[i]);
	}
	/* Kept as long as the message is listed: its size, not the
	 * GString's. */
	result = g_strndup(out->str, out->len);
	g_string_free(out, TRUE);
	return result;
}

/* The header lines of a listing's FETCH (a server may name the fields in
 * any case), or NULL. A block over the parser's 64 KiB for memory (one
 * huge field: hostile, or broken) was spooled: its first MiB is read into
 * @spooled, enough to reach the fields after an 80 KB Message-ID.
 * (transfer none) */
static const char *header_block(const ImapFetch *fetch, char **spooled,
				gsize *out_len)
{
	const ImapValue *hdr = fetch->body;
	ssize_t n;

	if (!hdr || !fetch->body_section ||
	    g_ascii_strncasecmp(fetch->body_section, "HEADER.FIELDS ", 14) !=
		    0)
		return NULL;
	if (hdr->type == IMAP_VALUE_STRING) {
		*out_len = hdr->len;
		return hdr->str;
	}
	if (hdr->type != IMAP_VALUE_SPOOLED)
		return NULL;
	*spooled = g_malloc(HEADER_SPOOLED_MAX);
	n = pread(hdr->fd, *spooled, HEADER_SPOOLED_MAX, 0);
	*out_len = n > 0 ? (gsize)n : 0;
	return *spooled;
}

static CacheMessage *message_from_fetch(const ImapFetch *fetch)
{
	CacheMessage *msg = g_new0(CacheMessage, 1);
	g_autofree char *spooled = NULL;
	gsize len = 0;
	const char *block = header_block(fetch, &spooled, &len);

	msg->uid = fetch->uid;
	msg->size = fetch->size;
	msg->internaldate = fetch->internaldate;
	msg->modseq = fetch->has_modseq ? fetch->modseq : 0;
	msg->flags = join_flags(fetch->flags);
	if (block) {
		g_autofree char *subject =
			cache_text_header_field(block, len, "Subject");
		g_autofree char *from =
			cache_text_header_field(block, len, "From");
		g_autofree char *message_id =
			cache_text_header_field(block, len, "Message-ID");

		msg->subject = cache_text_decode_header(subject);
		msg->from = cache_text_decode_address(from);
		/* Not RFC 2047 text: decoded, one message could pose as
		 * another. */
		msg->message_id = cache_text_one_line(message_id);
	}
	return msg;
}

static void note_uidvalidity(SyncJob *job, guint32 uidvalidity)
{
	if (!uidvalidity)
		return;
	if (job->uidvalidity && job->uidvalidity != uidvalidity)
		job->mixed = TRUE;
	job->uidvalidity = uidvalidity;
}

/* Notes "* VANISHED set" (QRESYNC): those UIDs are gone whatever the
 * other answers said. Returns how many went since EXISTS: none for
 * "(EARLIER)", which tells of the past, and is taken only where the job
 * asked for it. */
static guint64 note_vanished(SyncJob *job, const ImapResponse *resp)
{
	const ImapValue *set, *tag;
	guint first = job->vanished->len;
	gboolean earlier = FALSE;
	guint64 n = 0;

	if (!resp->args || resp->args->items->len < 1 ||
	    resp->args->items->len > 2)
		return 0;
	if (resp->args->items->len == 2) {
		tag = resp->args->items->pdata[0];
		earlier = tag->type == IMAP_VALUE_LIST &&
			  tag->items->len == 1 &&
			  ((ImapValue *)tag->items->pdata[0])->type ==
				  IMAP_VALUE_ATOM &&
			  g_ascii_strcasecmp(
				  ((ImapValue *)tag->items->pdata[0])->str,
				  "EARLIER") == 0;
		if (!earlier || !job->earlier)
			return 0;
	}
	set = resp->args->items->pdata[resp->args->items->len - 1];
	if (set->type != IMAP_VALUE_ATOM ||
	    !imap_parse_uid_set(set->str, job->vanished))
		return 0;
	for (guint i = first; i < job->vanished->len; i++) {
		ImapUidRange *r =
			&g_array_index(job->vanished, ImapUidRange, i);

		n += (guint64)r->last - r->first + 1;
	}
	return earlier ? 0 : n;
}

static gboolean has_uid(GArray *uids, guint32 uid)
{
	for (guint i = 0; uids && i < uids->len; i++)
		if (g_array_index(uids, guint32, i) == uid)
			return TRUE;
	return FALSE;
}

/* Runs on the imap-io thread, as does everything that touches the job
 * until it is applied. */
static void on_sync_data(const ImapResponse *resp, guint32 uidvalidity,
			 gpointer user_data)
{
	SyncJob *job = user_data;
	ImapFetch fetch;

	/* A message that arrived since the connection last looked is
	 * announced by EXISTS during our command, but the command's "1:*" may
	 * not cover it: remember how many there should be. */
	if (g_strcmp0(resp->name, "EXISTS") == 0 && resp->has_number) {
		job->has_exists = TRUE;
		job->exists = resp->number;
		return;
	}
	if (g_strcmp0(resp->name, "EXPUNGE") == 0 ||
	    g_strcmp0(resp->name, "VANISHED") == 0) {
		guint64 gone = 1;

		if (resp->name[0] == 'V')
			gone = note_vanished(job, resp);
		else
			job->expunged = TRUE;
		if (job->has_exists)
			job->exists -= (guint32)MIN(job->exists, gone);
		return;
	}
	if (job->present && (g_strcmp0(resp->name, "SEARCH") == 0 ||
			     g_strcmp0(resp->name, "ESEARCH") == 0)) {
		note_uidvalidity(job, uidvalidity);
		if (imap_response_get_search(resp, job->present))
			job->searched = TRUE;
		return;
	}
	if (g_strcmp0(resp->name, "FETCH") != 0 ||
	    !imap_response_get_fetch(resp, &fetch, NULL))
		return;
	note_uidvalidity(job, uidvalidity);
	if (fetch.has_modseq)
		job->max_modseq = MAX(job->max_modseq, fetch.modseq);
	if (fetch.uid == 0) {
		/* The server may tell of a change once, by sequence number,
		 * instead of in our CHANGEDSINCE answer. */
		if (fetch.flags)
			job->unattributed = TRUE;
		imap_fetch_clear(&fetch);
		return;
	}
	if (fetch.has_size && fetch.has_internaldate &&
	    (job->full || fetch.uid > job->max_uid ||
	     has_uid(job->gaps, fetch.uid))) {
		g_hash_table_replace(job->meta, GUINT_TO_POINTER(fetch.uid),
				     message_from_fetch(&fetch));
	} else if (job->flags && fetch.flags) {
		g_hash_table_replace(job->flags, GUINT_TO_POINTER(fetch.uid),
				     join_flags(fetch.flags));
	}
	imap_fetch_clear(&fetch);
}

static gboolean uid_in(GArray *ranges, guint32 uid)
{
	guint lo = 0, hi = ranges->len;

	/* Servers answer in ascending order; search as if sorted, then
	 * fall back to a scan for one that did not. */
	while (lo < hi) {
		guint mid = lo + (hi - lo) / 2;
		ImapUidRange *r = &g_array_index(ranges, ImapUidRange, mid);

		if (uid < r->first)
			hi = mid;
		else if (uid > r->last)
			lo = mid + 1;
		else
			return TRUE;
	}
	for (guint i = 0; i < ranges->len; i++) {
		ImapUidRange *r = &g_array_index(ranges, ImapUidRange, i);

		if (uid >= r->first && uid <= r->last)
			return TRUE;
	}
	return FALSE;
}

/* UIDs the refresh saw (their flags came) below the highest it knew,
 * that the table does not list: the next pass asks for them. */
static void note_gaps_locked(SyncJob *job, CacheIndexMailbox *mbox)
{
	GHashTableIter iter;
	gpointer key;

	if (mbox->gaps)
		g_array_set_size(mbox->gaps, 0);
	if (!job->flags)
		return;
	g_hash_table_iter_init(&iter, job->flags);
	while (g_hash_table_iter_next(&iter, &key, NULL)) {
		guint32 uid = GPOINTER_TO_UINT(key);

		if (uid > job->max_uid || cache_index_message(mbox, uid) ||
		    uid_in(job->vanished, uid))
			continue;
		if (!mbox->gaps)
			mbox->gaps = g_array_new(FALSE, FALSE, sizeof(guint32));
		g_array_append_val(mbox->gaps, uid);
	}
}

static void apply_locked(SyncJob *job, CacheIndexMailbox *mbox)
{
	GHashTableIter iter;
	gpointer key, value;

	if (job->mixed ||
	    (!job->full &&
	     (!mbox->synced || mbox->uidvalidity != job->uidvalidity))) {
		/* UIDVALIDITY changed under us (SELECT may already have
		 * cleared the table): what we hold is void, and a refresh
		 * cannot rebuild it. Left unsynced, the caller lists anew. */
		cache_index_clear_messages(mbox, job->gone);
		return;
	}
	if (job->full) {
		/* Unsynced when the listing began, so it held nothing. */
		cache_index_clear_messages(mbox, NULL);
	} else {
		GArray *gone = job->gone;
		GPtrArray *sorted = cache_index_sorted(mbox);

		for (guint i = 0; i < sorted->len; i++) {
			CacheMessage *msg = g_ptr_array_index(sorted, i);
			const char *flags = g_hash_table_lookup(
				job->flags, GUINT_TO_POINTER(msg->uid));
			gboolean there;

			/* Who is still there: the search's answer, or all
			 * but who VANISHED, or whose flags came. */
			if (job->present)
				there = uid_in(job->present, msg->uid);
			else
				there = job->earlier || flags != NULL;
			there = there && !uid_in(job->vanished, msg->uid);

			if (!there) {
				g_array_append_val(gone, msg->uid);
			} else if (flags && strcmp(flags, msg->flags) != 0) {
				g_free(msg->flags);
				msg->flags = g_strdup(flags);
				mbox->generation++;
			}
		}
		for (guint i = 0; i < gone->len; i++)
			cache_index_remove_message(
				mbox, g_array_index(gone, guint32, i));
	}
	g_hash_table_iter_init(&iter, job->meta);
	while (g_hash_table_iter_next(&iter, &key, &value)) {
		if (uid_in(job->vanished, GPOINTER_TO_UINT(key)))
			continue; /* freed with the job */
		g_hash_table_iter_steal(&iter);
		cache_index_put_message(mbox, value);
	}
	if (job->uidvalidity)
		mbox->uidvalidity = job->uidvalidity;
	mbox->synced_modseq = MAX(mbox->synced_modseq, job->max_modseq);
	mbox->synced = TRUE;
	/* A change announced since the commands went out, or an expunge the
	 * server told of by sequence number while answering, may not be in
	 * what they brought: left unconfirmed, the next reader syncs again
	 * (a refresh started for the change is already on its way). */
	mbox->synced_at = job->changes == mbox->changes && !job->expunged
				  ? g_get_monotonic_time()
				  : 0;
	note_gaps_locked(job, mbox);
	mbox->missing = (job->has_exists &&
			 job->exists > g_hash_table_size(mbox->by_uid)) ||
			(mbox->gaps && mbox->gaps->len);
	mbox->flags_unsure = job->changedsince && job->unattributed;
	/* More listed than the server has: a VANISHED that left one out.
	 * Only a scan of every flag makes the table sure again. */
	if (job->earlier && job->has_exists &&
	    job->exists < g_hash_table_size(mbox->by_uid))
		mbox->flags_unsure = TRUE;
	mbox->gone_unsure = job->expunged;
}

static void on_sync_done(ImapReply *reply, GError *error, gpointer user_data)
{
	SyncJob *job = user_data;
	CacheAccount *acct = job->acct;
	CacheIndexMailbox *mbox;
	gboolean refused = FALSE;

	if (error && !job->error)
		job->error = g_error_copy(error);
	if (reply)
		note_uidvalidity(job, reply->uidvalidity);
	imap_reply_free(reply);
	g_clear_error(&error);
	if (--job->pending > 0)
		return;

	cache_account_leave(acct, job->key);
	if (!job->error && job->present && !job->searched)
		g_set_error(&job->error, IMAPFS_CACHE_ERROR, CACHE_ERROR_IO,
			    "the server did not answer UID SEARCH");
	if (job->changedsince &&
	    g_error_matches(job->error, IMAPFS_IMAP_ERROR, IMAP_ERROR_BAD)) {
		/* Nothing applied: the next pass scans every flag, and the
		 * refreshes after it do without what was refused. */
		if (job->earlier)
			g_message("the server refused a refresh with VANISHED "
				  "(%s); asking which messages remain from "
				  "now on",
				  job->error->message);
		else
			g_message("the server refused a CONDSTORE refresh "
				  "(%s); refreshing by scanning all flags "
				  "from now on",
				  job->error->message);
		g_mutex_lock(&acct->lock);
		if (job->earlier)
			acct->no_vanished = TRUE;
		else
			acct->no_condstore = TRUE;
		mbox = cache_index_mailbox(acct->index, job->id);
		if (mbox)
			mbox->flags_unsure = TRUE;
		g_mutex_unlock(&acct->lock);
		g_clear_error(&job->error);
		refused = TRUE;
	}
	if (!job->error && !refused) {
		g_mutex_lock(&acct->lock);
		mbox = cache_index_mailbox(acct->index, job->id);
		if (mbox)
			apply_locked(job, mbox);
		g_mutex_unlock(&acct->lock);
		/* The kernel may hold their attributes and pages: a stat or a
		 * read of an expunged message then fails now, not after the
		 * attribute timeout. */
		for (guint i = 0; i < job->gone->len && acct->invalidate; i++) {
			CacheMsgRef ref = {
				job->id, g_array_index(job->gone, guint32, i)};

			acct->invalidate(ref, acct->invalidate_data);
		}
	}
	cache_wait_complete(job->wait, job->error);
	sync_job_free(job);
}

static gboolean sync_once(CacheAccount *acct, guint32 id, guint wait_s,
			  GError **error);

/* The MODSEQ everything we hold is current as of: every change on the
 * server gets a higher one (RFC 7162 §3.1.1). 0: unknown. */
static guint64 index_modseq(CacheIndexMailbox *mbox)
{
	GPtrArray *sorted = cache_index_sorted(mbox);
	guint64 max = mbox->synced_modseq;

	for (guint i = 0; i < sorted->len; i++)
		max = MAX(max, ((CacheMessage *)sorted->pdata[i])->modseq);
	return max;
}

gboolean cache_sync_messages(CacheAccount *acct, guint32 id, guint wait_s,
			     GError **error)
{
	/* A second pass when the first could not finish the job: after a
	 * UIDVALIDITY change (the table was dropped: list it all again),
	 * after an EXISTS the fetch did not cover (commands sent now see it),
	 * after a change we could not place (scan every flag once), or after
	 * an expunge told by sequence number while the answers came. */
	for (guint pass = 0; pass < SYNC_PASSES; pass++) {
		CacheIndexMailbox *mbox;
		gboolean done = TRUE;

		if (!sync_once(acct, id, wait_s, error))
			return FALSE;
		g_mutex_lock(&acct->lock);
		mbox = cache_index_mailbox(acct->index, id);
		if (mbox)
			done = mbox->synced && !mbox->missing &&
			       !mbox->flags_unsure && !mbox->gone_unsure;
		g_mutex_unlock(&acct->lock);
		if (done)
			return TRUE;
	}
	return TRUE;
}

/* The first UID above @uid to ask for. None is above the highest UID
 * there can be, and "0:*" is not a set: that one is asked for again
 * (n:* names the highest UID when n is above it). */
static guint32 uid_after(guint32 uid)
{
	return uid == G_MAXUINT32 ? uid : uid + 1;
}

/* Starts one pass of the refresh of mailbox @id, or joins the one under
 * way. Returns the wait, or NULL with @error. */
static CacheWait *sync_submit(CacheAccount *acct, guint32 id, GError **error)
{
	g_autoptr(CacheWait) fresh = cache_wait_new();
	CacheWait *wait;
	g_autofree char *key = g_strdup_printf("sync:%u", id);
	g_autofree char *wire = NULL;
	gboolean is_new, synced = FALSE;
	guint32 max_uid = 0;
	guint64 modseq = 0;
	guint changes = 0;
	guint caps = imap_pool_caps(acct->pool);
	g_autoptr(GArray) gaps = NULL;
	gboolean condstore, vanished;
	CacheIndexMailbox *mbox;

	g_mutex_lock(&acct->lock);
	condstore = (caps & IMAP_CAP_CONDSTORE) && !acct->no_condstore;
	vanished = (caps & IMAP_CAP_QRESYNC) && !acct->no_vanished;
	mbox = cache_index_mailbox(acct->index, id);
	if (mbox && mbox->wire_name &&
	    !(mbox->flags & CACHE_MAILBOX_NOSELECT)) {
		wire = g_strdup(mbox->wire_name);
		synced = mbox->synced;
		max_uid = synced ? cache_index_max_uid(mbox) : 0;
		if (synced && mbox->gaps && mbox->gaps->len)
			gaps = g_array_copy(mbox->gaps);
		modseq = synced ? index_modseq(mbox) : 0;
		/* Never past what the server last said it had: a MODSEQ of
		 * another mailbox's (an index of an older imapfs copied one
		 * with a moved message) would hide what happened since. */
		if (mbox->highestmodseq)
			modseq = MIN(modseq, mbox->highestmodseq);
		changes = mbox->changes;
		/* A change could not be placed: only a scan of every flag
		 * makes the table sure again (a CHANGEDSINCE from a MODSEQ it
		 * may already cover would not). */
		if (mbox->flags_unsure)
			condstore = FALSE;
	}
	g_mutex_unlock(&acct->lock);
	if (!wire) {
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_FOUND,
			    "mailbox %u cannot hold messages", id);
		return NULL;
	}

	wait = cache_account_join(acct, key, fresh, &is_new);
	if (is_new) {
		SyncJob *job = g_new0(SyncJob, 1);
		ImapCommand *cmds[4] = {NULL, NULL, NULL, NULL};
		guint n = 0;

		job->acct = acct;
		job->wait = cache_wait_ref(wait);
		job->id = id;
		job->key = g_strdup(key);
		job->full = !synced;
		job->max_uid = max_uid;
		job->changes = changes;
		job->gone = g_array_new(FALSE, FALSE, sizeof(guint32));
		job->vanished = g_array_new(FALSE, FALSE, sizeof(ImapUidRange));
		job->meta = g_hash_table_new_full(
			g_direct_hash, g_direct_equal, NULL,
			(GDestroyNotify)cache_message_free);
		if (job->full) {
			cmds[n++] = imap_command_new(
				NULL, IMAP_COMMAND_RETRIABLE,
				condstore ? "UID FETCH 1:* (" LISTED " MODSEQ)"
					  : "UID FETCH 1:* (" LISTED ")");
		} else if (condstore && modseq) {
			g_autofree char *since =
				g_strdup_printf("%" G_GUINT64_FORMAT, modseq);

			job->changedsince = TRUE;
			job->earlier = vanished;
			job->flags = g_hash_table_new_full(
				g_direct_hash, g_direct_equal, NULL, g_free);
			cmds[n++] = imap_command_new(
				NULL, IMAP_COMMAND_RETRIABLE,
				vanished ? "UID FETCH 1:* (UID FLAGS) "
					   "(CHANGEDSINCE %a VANISHED)"
					 : "UID FETCH 1:* (UID FLAGS) "
					   "(CHANGEDSINCE %a)",
				since);
			cmds[n++] = imap_command_new(
				NULL, IMAP_COMMAND_RETRIABLE,
				"UID FETCH %u:* (" LISTED " MODSEQ)",
				uid_after(max_uid));
			if (!vanished) {
				job->present = g_array_new(
					FALSE, FALSE, sizeof(ImapUidRange));
				cmds[n++] = imap_command_new(
					NULL, IMAP_COMMAND_RETRIABLE,
					(caps & IMAP_CAP_ESEARCH)
						? "UID SEARCH RETURN (ALL) ALL"
						: "UID SEARCH ALL");
			}
		} else {
			job->flags = g_hash_table_new_full(
				g_direct_hash, g_direct_equal, NULL, g_free);
			cmds[n++] =
				imap_command_new(NULL, IMAP_COMMAND_RETRIABLE,
						 "UID FETCH 1:* (UID FLAGS)");
			cmds[n++] = imap_command_new(
				NULL, IMAP_COMMAND_RETRIABLE,
				"UID FETCH %u:* (" LISTED ")",
				uid_after(max_uid));
		}
		if (!job->full && gaps) {
			g_autoptr(GString) set = g_string_new(NULL);

			for (guint i = 0; i < gaps->len; i++)
				g_string_append_printf(
					set, "%s%u", i ? "," : "",
					g_array_index(gaps, guint32, i));
			job->gaps = g_steal_pointer(&gaps);
			cmds[n++] = imap_command_new(
				NULL, IMAP_COMMAND_RETRIABLE,
				condstore ? "UID FETCH %U (" LISTED " MODSEQ)"
					  : "UID FETCH %U (" LISTED ")",
				set->str);
		}
		/* Set before the first submit: completions may run at once. */
		job->pending = n;
		for (guint i = 0; i < n; i++)
			imap_pool_submit(acct->pool, wire, cmds[i],
					 on_sync_data, on_sync_done, job);
	}
	return wait;
}

static gboolean sync_once(CacheAccount *acct, guint32 id, guint wait_s,
			  GError **error)
{
	g_autoptr(CacheWait) wait = sync_submit(acct, id, error);

	return wait && cache_account_block_within(acct, wait, wait_s, error);
}

typedef struct {
	CacheAccount *acct;
	guint32 id;
	CacheSyncedFunc synced;
	gpointer user_data;
	guint pass;
} Started;

static void start_pass(Started *started);

static void on_started_done(const GError *error, gpointer user_data)
{
	Started *started = user_data;
	CacheAccount *acct = started->acct;
	CacheIndexMailbox *mbox;

	gboolean again = FALSE;

	/* If a pass left something unsure (an EXISTS or an expunge it did
	 * not cover, flags it could not place), another follows, as in
	 * cache_sync_messages(); past the last the next reader syncs. */
	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, started->id);
	if (mbox && (mbox->missing || mbox->flags_unsure))
		mbox->synced_at = 0;
	again = !error && mbox && mbox->synced_at == 0 &&
		++started->pass < SYNC_PASSES;
	g_mutex_unlock(&acct->lock);
	if (again) {
		start_pass(started);
		return;
	}
	if (!error && started->synced)
		started->synced(acct, started->id, started->user_data);
	g_free(started);
}

void cache_sync_messages_start(CacheAccount *acct, guint32 id,
			       CacheSyncedFunc synced, gpointer user_data)
{
	Started *started = g_new0(Started, 1);

	started->acct = acct;
	started->id = id;
	started->synced = synced;
	started->user_data = user_data;
	start_pass(started);
}

static void start_pass(Started *started)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(CacheWait) wait =
		sync_submit(started->acct, started->id, &error);

	if (!wait) {
		g_debug("mailbox %u not refreshed: %s", started->id,
			error->message);
		g_free(started);
		return;
	}
	cache_wait_then(wait, on_started_done, started);
}

/* Mailboxes were made, deleted or renamed, or anything may have changed
 * (@all): the list is asked for again before it is trusted, and the
 * kernel drops what it holds of every directory. */
static void on_list_change(CacheAccount *acct, gboolean all)
{
	g_autoptr(GArray) dirs = g_array_new(FALSE, FALSE, sizeof(guint32));
	guint32 id = CACHE_ROOT_ID;

	g_array_append_val(dirs, id);
	g_mutex_lock(&acct->lock);
	/* As a list loaded from disk: asked for again before any use. */
	cache_index_set_listed_at(acct->index, 0);
	acct->list_changes++;
	for (id = 1; id <= cache_index_max_id(acct->index); id++) {
		CacheIndexMailbox *mbox = cache_index_mailbox(acct->index, id);

		if (!mbox)
			continue;
		if (all) {
			mbox->changes++;
			mbox->synced_at = 0;
		}
		g_array_append_val(dirs, id);
	}
	g_mutex_unlock(&acct->lock);
	g_debug("mailboxes changed on the server");
	for (guint i = 0; i < dirs->len && acct->invalidate; i++) {
		CacheMsgRef dir = {g_array_index(dirs, guint32, i), 0};

		acct->invalidate(dir, acct->invalidate_data);
	}
}

static void add_once(GPtrArray *out, CacheIndexMailbox *mbox)
{
	if (mbox && !g_ptr_array_find(out, mbox, NULL))
		g_ptr_array_add(out, mbox);
}

/* The mailboxes a notification may name (@wire, as the server sent it),
 * into @out: the one with that wire name, the one with that full name
 * (Dovecot 2.3 sends names in NOTIFY STATUS as UTF-8, not in the modified
 * UTF-7 of LIST), and the one it decodes to. Where they differ, all are
 * refreshed: one refresh too many costs little, a change missed costs
 * list_ttl. With the lock held. */
static void notified_mailboxes(CacheIndex *index, const char *wire,
			       GPtrArray *out)
{
	g_autofree char *decoded = NULL;

	if (g_ascii_strcasecmp(wire, "INBOX") == 0) {
		add_once(out, cache_index_mailbox_by_name(index, "INBOX"));
		return;
	}
	for (guint32 id = 1; id <= cache_index_max_id(index); id++) {
		CacheIndexMailbox *mbox = cache_index_mailbox(index, id);

		if (mbox && g_strcmp0(mbox->wire_name, wire) == 0)
			add_once(out, mbox);
	}
	if (g_utf8_validate(wire, -1, NULL))
		add_once(out, cache_index_mailbox_by_name(index, wire));
	decoded = imap_utf7_decode(wire);
	if (decoded)
		add_once(out, cache_index_mailbox_by_name(index, decoded));
}

/* Whether INBOX's listing, made in this mount, may lack what @now (the
 * watcher's EXAMINE) shows: unless UIDNEXT, HIGHESTMODSEQ and the count
 * all agree, it may. With the lock held. */
static gboolean inbox_may_differ(CacheIndexMailbox *mbox,
				 const ImapMailboxInfo *now)
{
	return !now || !now->highestmodseq ||
	       now->uidvalidity != mbox->uidvalidity ||
	       now->uidnext != mbox->uidnext ||
	       now->highestmodseq != mbox->highestmodseq ||
	       now->exists != g_hash_table_size(mbox->by_uid);
}

/* The watch has begun, on INBOX (@inbox_now: what its EXAMINE said) and,
 * with @all, on every mailbox. What was listed in this mount before may
 * have changed unseen: such a listing counts as stale (a look refreshes
 * it, waiting 3 s at most) and INBOX's is refreshed now, unless
 * @inbox_now shows it as it was. What was loaded from disk is asked for
 * before use anyway, and what was not listed costs nothing. Left alone,
 * since each would cost the first `ls` after mounting a round trip for a
 * window of a fraction of one: a listing still on its way, and the list
 * of mailboxes (listed at mount, before the watch has logged in). */
static void on_watch_begun(CacheAccount *acct, gboolean all,
			   const ImapMailboxInfo *inbox_now)
{
	g_autoptr(GPtrArray) found = g_ptr_array_new();
	CacheIndexMailbox *inbox;
	guint32 refresh = 0;
	gboolean marked = FALSE;
	gint64 stale = MAX(1, g_get_monotonic_time() - acct->list_ttl);

	g_mutex_lock(&acct->lock);
	inbox = cache_index_mailbox_by_name(acct->index, "INBOX");
	add_once(found, inbox);
	if (all)
		for (guint32 id = 1; id <= cache_index_max_id(acct->index);
		     id++)
			add_once(found, cache_index_mailbox(acct->index, id));
	for (guint i = 0; i < found->len; i++) {
		CacheIndexMailbox *mbox = found->pdata[i];
		gboolean listed = mbox->synced && mbox->synced_at;

		if (!listed ||
		    (mbox == inbox && !inbox_may_differ(mbox, inbox_now)))
			continue;
		mbox->changes++;
		mbox->synced_at = MIN(mbox->synced_at, stale);
		if (mbox == inbox)
			refresh = mbox->id;
		marked = TRUE;
	}
	g_mutex_unlock(&acct->lock);
	/* Connections that selected a mailbox before may not show what
	 * came since either: they catch up before their next command. */
	if (marked)
		imap_pool_note_change(acct->pool, NULL);
	if (refresh)
		cache_sync_messages_start(acct, refresh, NULL, NULL);
}

void cache_sync_on_change(const char *mailbox, ImapIdleChange change,
			  const ImapMailboxInfo *info, gpointer user_data)
{
	CacheAccount *acct = user_data;
	g_autoptr(GPtrArray) found = g_ptr_array_new();
	g_autoptr(GArray) dirs = g_array_new(FALSE, FALSE, sizeof(CacheMsgRef));
	g_autoptr(GArray) synced = g_array_new(FALSE, FALSE, sizeof(guint32));
	g_autoptr(GPtrArray) wires = g_ptr_array_new_with_free_func(g_free);

	if (change == IMAP_IDLE_BEGUN) {
		on_watch_begun(acct, mailbox == NULL, info);
		return;
	}

	if (change == IMAP_IDLE_MAILBOXES || change == IMAP_IDLE_ANY) {
		on_list_change(acct, change == IMAP_IDLE_ANY);
		if (change == IMAP_IDLE_MAILBOXES)
			return;
		/* INBOX, as after a reconnection without NOTIFY. */
		change = IMAP_IDLE_MESSAGES;
		mailbox = "INBOX";
	}
	g_mutex_lock(&acct->lock);
	notified_mailboxes(acct->index, mailbox, found);
	for (guint i = 0; i < found->len; i++) {
		CacheIndexMailbox *mbox = found->pdata[i];
		CacheMsgRef dir = {mbox->id, 0};

		mbox->changes++;
		mbox->synced_at = 0;
		g_array_append_val(dirs, dir);
		if (mbox->synced)
			g_array_append_val(synced, mbox->id);
		if (mbox->wire_name)
			g_ptr_array_add(wires, g_strdup(mbox->wire_name));
	}
	g_mutex_unlock(&acct->lock);
	/* Connections that have it selected may not show what came. (That
	 * the index has every UID says nothing of what an older view
	 * shows.) */
	for (guint i = 0; i < wires->len; i++)
		imap_pool_note_change(acct->pool, wires->pdata[i]);
	g_debug("mailbox %s changed on the server", mailbox);
	for (guint i = 0; i < dirs->len && acct->invalidate; i++)
		acct->invalidate(g_array_index(dirs, CacheMsgRef, i),
				 acct->invalidate_data);
	/* When messages came or went, refreshed now rather than at the next
	 * look: the kernel may hold an expunged message's attributes, and
	 * only a refresh finds it gone and has them dropped. Flags are not
	 * cached by the kernel; they wait for the next look, which spares a
	 * server that reports another client's flag change by sequence
	 * number a scan of every flag for each such change. */
	for (guint i = 0; i < synced->len && change == IMAP_IDLE_MESSAGES; i++)
		cache_sync_messages_start(
			acct, g_array_index(synced, guint32, i), NULL, NULL);
}

void cache_sync_on_select(const char *mailbox, const ImapMailboxInfo *info,
			  gpointer user_data)
{
	CacheAccount *acct = user_data;
	g_autofree char *name = display_name(mailbox);
	g_autofree char *component = NULL;
	CacheIndexMailbox *mbox;
	CacheMsgRef old_dir = {0, 0};
	guint32 parent_id = 0, new_id = 0;

	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox_by_name(acct->index, name);
	if (mbox) {
		if (mbox->synced && mbox->uidvalidity &&
		    mbox->uidvalidity != info->uidvalidity) {
			g_message("mailbox %s: UIDVALIDITY changed from %u to "
				  "%u; it is another mailbox now, listed anew",
				  name, mbox->uidvalidity, info->uidvalidity);
			old_dir.mailbox_id = mbox->id;
			parent_id = mbox->parent_id;
			component = g_strdup(mbox->component);
			mbox = cache_index_renew(acct->index, mbox);
			new_id = mbox->id;
		}
		mbox->uidvalidity = info->uidvalidity;
		mbox->uidnext = info->uidnext;
		mbox->highestmodseq = info->highestmodseq;
		mbox->readonly = info->readonly;
		if (info->permanentflags) {
			g_strfreev(mbox->permanentflags);
			mbox->permanentflags = g_strdupv(info->permanentflags);
		}
	}
	g_mutex_unlock(&acct->lock);
	/* Under its new id, nothing the kernel holds of the old one (inode
	 * numbers are mailbox id and UID) reaches a message of the new: the
	 * kernel is told to forget the directory's name, so that a lookup
	 * finds the new one, and what it holds of the old directory. */
	if (component && acct->invalidate_entry)
		acct->invalidate_entry(parent_id, component,
				       acct->invalidate_data);
	if (old_dir.mailbox_id && acct->invalidate)
		acct->invalidate(old_dir, acct->invalidate_data);
	if (old_dir.mailbox_id && acct->renewed)
		acct->renewed(old_dir.mailbox_id, new_id,
			      acct->invalidate_data);
}

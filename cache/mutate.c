/* cache/mutate.c — the mutation table (DESIGN.md, "Mutations").
 *
 *   set flags        UID STORE uid FLAGS (...)
 *   move             UID MOVE, else UID COPY + UID STORE +FLAGS.SILENT
 *                    (\Deleted) + UID EXPUNGE uid (UIDPLUS), else COPY +
 *                    STORE only, with a log line saying why it stays
 *   delete           move to Trash, else STORE \Deleted + UID EXPUNGE uid
 *   append           APPEND mailbox (flags) "date" {literal}
 *   mailboxes        CREATE / DELETE / RENAME
 *
 * Every function here runs on a FUSE thread and blocks in cache/wait.c.
 * The server is changed first; the index is updated after success, here
 * and nowhere else. A bare EXPUNGE is never sent: it would also remove
 * what other clients marked \Deleted. Commands that are not idempotent are
 * never resent by the pool; when their connection drops, the outcome is
 * found by looking at the mailbox again, so that a message ends up in the
 * source, or in both, never in neither.
 */
#include "cache/account.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cache/account-private.h"
#include "cache/flags.h"
#include "cache/sync.h"
#include "cache/text.h"
#include "imap/caps.h"
#include "imap/error.h"
#include "imap/utf7.h"

/* What a change needs to know about the mailbox it touches. */
typedef struct {
	char *wire;
	char *full_name;
	guint32 uidvalidity;
	guint flags;
	gboolean readonly;
	char **permanentflags;
	guint32 parent_id;
} Place;

static void place_clear(Place *place)
{
	g_free(place->wire);
	g_free(place->full_name);
	g_strfreev(place->permanentflags);
	memset(place, 0, sizeof(*place));
}

static gboolean place_of(CacheAccount *acct, guint32 id, Place *out,
			 GError **error)
{
	CacheIndexMailbox *mbox;

	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, id);
	if (mbox) {
		out->wire = g_strdup(mbox->wire_name);
		out->full_name = g_strdup(mbox->full_name);
		out->uidvalidity = mbox->uidvalidity;
		out->flags = mbox->flags;
		if (!mbox->wire_name)
			out->flags |= CACHE_MAILBOX_NOSELECT;
		out->readonly = mbox->readonly;
		out->permanentflags = g_strdupv(mbox->permanentflags);
		out->parent_id = mbox->parent_id;
	}
	g_mutex_unlock(&acct->lock);
	if (!mbox)
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_FOUND,
			    "no mailbox %u", id);
	return mbox != NULL;
}

/* The message must be known, in a mailbox we may change. */
static gboolean message_place(CacheAccount *acct, CacheMsgRef ref, Place *out,
			      CacheMessage *out_msg, GError **error)
{
	gboolean found = FALSE;

	if (!cache_account_ensure_synced(acct, ref.mailbox_id, FALSE, error) ||
	    !place_of(acct, ref.mailbox_id, out, error))
		return FALSE;
	g_mutex_lock(&acct->lock);
	{
		CacheIndexMailbox *mbox =
			cache_index_mailbox(acct->index, ref.mailbox_id);
		CacheMessage *msg =
			mbox ? cache_index_message(mbox, ref.uid) : NULL;

		if (msg && out_msg)
			cache_message_copy_to(msg, out_msg);
		found = msg != NULL;
	}
	g_mutex_unlock(&acct->lock);
	if (!found) {
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_FOUND,
			    "message %u is no longer in %s", ref.uid,
			    out->full_name);
		place_clear(out);
		return FALSE;
	}
	if (out->readonly) {
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_READONLY,
			    "mailbox %s is read-only on the server",
			    out->full_name);
		place_clear(out);
		if (out_msg)
			cache_message_clear(out_msg);
		return FALSE;
	}
	return TRUE;
}

static gboolean run(CacheAccount *acct, ImapCommand *cmd, ImapReply **out_reply,
		    GError **error)
{
	if (!cmd)
		return FALSE; /* imap_command_new() set @error */
	return cache_wait_run(acct->pool, NULL, 0, cmd, acct->timeout_s, NULL,
			      out_reply, error);
}

static gboolean is_connection_lost(const GError *error)
{
	return g_error_matches(error, IMAPFS_IMAP_ERROR,
			       IMAP_ERROR_CONNECTION_LOST) ||
	       g_error_matches(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_TIMEOUT) ||
	       g_error_matches(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_TIMEOUT);
}

/* Next time anyone lists mailbox @id, ask the server. */
static void mark_stale(CacheAccount *acct, guint32 id)
{
	CacheIndexMailbox *mbox;

	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, id);
	if (mbox)
		mbox->synced_at = 0;
	g_mutex_unlock(&acct->lock);
}

/* Runs @cmd, which names messages of mailbox @id (at @place) by UID: only
 * if the mailbox still has the UIDVALIDITY they were listed under, for
 * under another the same UIDs name other messages. */
static gboolean run_uids(CacheAccount *acct, guint32 id, const Place *place,
			 ImapCommand *cmd, ImapReply **out_reply,
			 GError **error)
{
	g_autoptr(GError) local = NULL;

	if (!cmd)
		return FALSE; /* imap_command_new() set @error */
	if (cache_wait_run(acct->pool, place->wire, place->uidvalidity, cmd,
			   acct->timeout_s, NULL, out_reply, &local))
		return TRUE;
	if (g_error_matches(local, IMAPFS_IMAP_ERROR, IMAP_ERROR_UIDVALIDITY)) {
		g_message("%s was made anew on the server: its messages "
			  "are listed again, and this change is not made to "
			  "any of them (%s)",
			  place->full_name, local->message);
		mark_stale(acct, id);
	} else if (g_error_matches(local, IMAPFS_IMAP_ERROR,
				   IMAP_ERROR_EXPUNGED)) {
		/* Another client expunged it: the next listing drops it. */
		mark_stale(acct, id);
	}
	g_propagate_error(error, g_steal_pointer(&local));
	return FALSE;
}

/* Mailbox @id of the index while it has @uidvalidity (that of the UIDs
 * a command named), or NULL. Under acct->lock. */
static CacheIndexMailbox *listed_mailbox_locked(CacheAccount *acct,
						guint32 id,
						guint32 uidvalidity)
{
	CacheIndexMailbox *mbox = cache_index_mailbox(acct->index, id);

	return mbox && mbox->uidvalidity == uidvalidity ? mbox : NULL;
}

static void forget_message(CacheAccount *acct, CacheMsgRef ref,
			   guint32 uidvalidity)
{
	CacheIndexMailbox *mbox;

	g_mutex_lock(&acct->lock);
	mbox = listed_mailbox_locked(acct, ref.mailbox_id, uidvalidity);
	if (mbox)
		cache_index_remove_message(mbox, ref.uid);
	g_mutex_unlock(&acct->lock);
}

/* TRUE if UID @uid is still in mailbox @id, by asking the server. */
static gboolean still_there(CacheAccount *acct, guint32 id, guint32 uid,
			    GError **error)
{
	CacheIndexMailbox *mbox;
	gboolean there = FALSE;

	mark_stale(acct, id);
	if (!cache_account_ensure_synced(acct, id, TRUE, error))
		return TRUE; /* cannot tell: assume the safe answer */
	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, id);
	there = mbox && cache_index_message(mbox, uid);
	g_mutex_unlock(&acct->lock);
	return there;
}

/* Word @i (0-based) of a response code argument as a UID, or 0 if it is
 * not a single number (a set like "3:5" is not). */
static guint32 code_uid(const char *arg, guint i)
{
	g_auto(GStrv) words = arg ? g_strsplit(arg, " ", -1) : NULL;
	guint64 n;

	if (!words || g_strv_length(words) <= i ||
	    !g_ascii_string_to_unsigned(words[i], 10, 1, G_MAXUINT32, &n, NULL))
		return 0;
	return n;
}

/* The new UID of @src_uid from COPYUID ("uidvalidity src dst"), which
 * comes with the tagged OK of COPY, and in an untagged OK before the
 * EXPUNGE of MOVE (RFC 6851 §4.3), and the target's UIDVALIDITY in
 * *@out_uidvalidity. Untagged data can reach a command that did not ask
 * for it, so the source UID must be ours. */
static guint32 reply_copyuid(const ImapReply *reply, guint32 src_uid,
			     guint32 *out_uidvalidity)
{
	const char *arg = NULL;

	if (g_strcmp0(reply->code, "COPYUID") == 0 &&
	    code_uid(reply->code_arg, 1) == src_uid)
		arg = reply->code_arg;
	for (guint i = 0; i < reply->untagged->len && !arg; i++) {
		const ImapResponse *resp = reply->untagged->pdata[i];

		if (resp->status == IMAP_STATUS_OK &&
		    g_strcmp0(resp->code, "COPYUID") == 0 &&
		    code_uid(resp->code_arg, 1) == src_uid)
			arg = resp->code_arg;
	}
	*out_uidvalidity = code_uid(arg, 0);
	return code_uid(arg, 2);
}

/* Whether @reply has an untagged FETCH of @uid; its flags, normalized, in
 * *@out_flags (nullable) where it has them. */
static gboolean reply_fetch(const ImapReply *reply, guint32 uid,
			    char **out_flags)
{
	gboolean found = FALSE;

	for (guint i = 0; i < reply->untagged->len && !found; i++) {
		const ImapResponse *resp = reply->untagged->pdata[i];
		ImapFetch fetch;

		if (g_strcmp0(resp->name, "FETCH") != 0 ||
		    !imap_response_get_fetch(resp, &fetch, NULL))
			continue;
		if (fetch.uid == uid) {
			found = TRUE;
			if (fetch.flags && out_flags) {
				g_autofree char *joined =
					g_strjoinv(" ", fetch.flags);

				*out_flags =
					cache_flags_normalize(joined, NULL);
			}
		}
		imap_fetch_clear(&fetch);
	}
	return found;
}

/* What the index shows of the flags of @ref under @uidvalidity, or NULL. */
static char *listed_flags(CacheAccount *acct, CacheMsgRef ref,
			  guint32 uidvalidity)
{
	CacheIndexMailbox *mbox;
	CacheMessage *msg = NULL;
	char *flags;

	g_mutex_lock(&acct->lock);
	mbox = listed_mailbox_locked(acct, ref.mailbox_id, uidvalidity);
	if (mbox)
		msg = cache_index_message(mbox, ref.uid);
	flags = msg ? g_strdup(msg->flags) : NULL;
	g_mutex_unlock(&acct->lock);
	return flags;
}

/* Says in *@error, as NOT_FOUND, that @ref has left @place. */
static void set_gone_error(GError **error, CacheMsgRef ref,
			   const Place *place)
{
	g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_FOUND,
		    "UID %u is no longer in %s on the server (another client "
		    "moved or deleted it)",
		    ref.uid, place->full_name);
}

/* A UID command that named only @ref was answered OK without touching
 * it: if the server no longer has it (another client expunged it, and
 * the server says nothing of UIDs it does not have), *@error says so,
 * and FALSE is returned. */
static gboolean check_still_there(CacheAccount *acct, CacheMsgRef ref,
				  const Place *place, GError **error)
{
	if (still_there(acct, ref.mailbox_id, ref.uid, NULL))
		return TRUE;
	set_gone_error(error, ref, place);
	return FALSE;
}

/* ---- Flags -------------------------------------------------------------- */

char *cache_account_check_flags(const char *flags, GError **error)
{
	return cache_flags_normalize(flags, error);
}

gboolean cache_account_set_flags(CacheAccount *acct, CacheMsgRef ref,
				 const char *flags, GError **error)
{
	g_autofree char *wanted = cache_flags_normalize(flags, error);
	g_autoptr(ImapReply) reply = NULL;
	g_autofree char *stored = NULL;
	Place place = {0};
	gboolean ok;

	if (!wanted)
		return FALSE;
	if (!message_place(acct, ref, &place, NULL, error))
		return FALSE;
	if (!cache_flags_keywords_allowed(wanted, place.permanentflags)) {
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_UNSUPPORTED,
			    "mailbox %s cannot store keywords other than its "
			    "PERMANENTFLAGS: \"%s\" refused",
			    place.full_name, wanted);
		place_clear(&place);
		return FALSE;
	}
	ok = run_uids(acct, ref.mailbox_id, &place,
		      imap_command_new(error, IMAP_COMMAND_RETRIABLE,
				       "UID STORE %u FLAGS %F", ref.uid,
				       wanted),
		      &reply, error);
	/* The server tells of each message whose flags changed, and of
	 * none it does not have: with no word of one whose flags were
	 * listed otherwise, look whether it is still there. */
	if (ok && !reply_fetch(reply, ref.uid, &stored)) {
		g_autofree char *had =
			listed_flags(acct, ref, place.uidvalidity);

		if (!cache_flags_equal(had, wanted))
			ok = check_still_there(acct, ref, &place, error);
	}
	if (ok) {
		/* The server's answer is the truth (it may drop what it
		 * cannot keep); without one, what we asked for. */
		g_mutex_lock(&acct->lock);
		{
			CacheIndexMailbox *mbox = listed_mailbox_locked(
				acct, ref.mailbox_id, place.uidvalidity);
			CacheMessage *msg =
				mbox ? cache_index_message(mbox, ref.uid)
				     : NULL;

			if (msg) {
				g_free(msg->flags);
				msg->flags = g_strdup(stored ? stored : wanted);
				mbox->generation++;
			}
		}
		g_mutex_unlock(&acct->lock);
	}
	place_clear(&place);
	return ok;
}

/* ---- Move and delete ---------------------------------------------------- */

/* Puts what we know of the moved message under its new UID, so the
 * destination lists it at once; else the destination is asked again. */
static void place_copy(CacheAccount *acct, guint32 to_id, guint32 new_uid,
		       const CacheMessage *msg)
{
	CacheIndexMailbox *mbox;

	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, to_id);
	if (mbox && mbox->synced && new_uid) {
		CacheMessage *copy = cache_message_copy(msg);
		g_autofree char *flags = copy->flags;

		copy->uid = new_uid;
		copy->flags = g_strdup(flags);
		/* MODSEQs count within one mailbox: the source's would make
		 * this one's refreshes ask for changes since then. */
		copy->modseq = 0;
		g_clear_pointer(&copy->alias, g_free);
		cache_index_put_message(mbox, copy);
	} else if (mbox) {
		mbox->synced_at = 0;
	}
	g_mutex_unlock(&acct->lock);
	if (!new_uid)
		mark_stale(acct, to_id);
}

/* Adds @flag to what the index shows of the message. */
static void add_flag(CacheAccount *acct, CacheMsgRef ref, guint32 uidvalidity,
		     const char *flag)
{
	CacheIndexMailbox *mbox;
	CacheMessage *msg = NULL;

	g_mutex_lock(&acct->lock);
	mbox = listed_mailbox_locked(acct, ref.mailbox_id, uidvalidity);
	if (mbox)
		msg = cache_index_message(mbox, ref.uid);
	if (msg) {
		g_auto(GStrv) have = g_strsplit(msg->flags, " ", -1);

		if (!g_strv_contains((const char *const *)have, flag)) {
			char *flags = *msg->flags ? g_strconcat(msg->flags, " ",
								flag, NULL)
						  : g_strdup(flag);

			g_free(msg->flags);
			msg->flags = flags;
			mbox->generation++;
		}
	}
	g_mutex_unlock(&acct->lock);
}

/* STORE \Deleted, then UID EXPUNGE of that UID alone where the server has
 * UIDPLUS. Without it the message stays, marked: a bare EXPUNGE would take
 * other clients' deleted mail with it. */
static gboolean expunge_uid(CacheAccount *acct, const Place *place,
			    CacheMsgRef ref, GError **error)
{
	gboolean ok;

	ok = run_uids(acct, ref.mailbox_id, place,
		      imap_command_new(error, IMAP_COMMAND_RETRIABLE,
				       "UID STORE %u +FLAGS.SILENT (\\Deleted)",
				       ref.uid),
		      NULL, error);
	if (!ok)
		return FALSE;
	if (!(imap_pool_caps(acct->pool) & IMAP_CAP_UIDPLUS)) {
		g_message("UID %u in %s is marked \\Deleted but stays: the "
			  "server lacks UIDPLUS, and a plain EXPUNGE would "
			  "also remove what other clients marked \\Deleted",
			  ref.uid, place->full_name);
		add_flag(acct, ref, place->uidvalidity, "\\Deleted");
		return TRUE;
	}
	ok = run_uids(acct, ref.mailbox_id, place,
		      imap_command_new(error, 0, "UID EXPUNGE %u", ref.uid),
		      NULL, error);
	if (!ok && is_connection_lost(*error)) {
		GError *look = NULL;

		if (!still_there(acct, ref.mailbox_id, ref.uid, &look)) {
			g_clear_error(error);
			ok = TRUE;
		}
		g_clear_error(&look);
	}
	if (ok)
		forget_message(acct, ref, place->uidvalidity);
	return ok;
}

/* The highest UID listed in mailbox @id, or -1 if it was never listed. */
static gint64 synced_max_uid(CacheAccount *acct, guint32 id)
{
	CacheIndexMailbox *mbox;
	gint64 max = -1;

	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, id);
	if (mbox && mbox->synced)
		max = cache_index_max_uid(mbox);
	g_mutex_unlock(&acct->lock);
	return max;
}

/* The last message listed in @id above @max_uid with @size and, unless
 * 0, @internaldate, or 0; *out_n (nullable) counts those that fit. How a
 * message whose APPEND, or MOVE, answer was lost is found again. */
static guint32 find_new(CacheAccount *acct, guint32 id, guint32 max_uid,
			guint64 size, gint64 internaldate, guint *out_n)
{
	CacheIndexMailbox *mbox;
	guint32 found = 0;
	guint n = 0;

	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, id);
	if (mbox) {
		GPtrArray *sorted = cache_index_sorted(mbox);

		for (guint i = 0; i < sorted->len; i++) {
			CacheMessage *msg = sorted->pdata[i];

			if (msg->uid > max_uid && msg->size == size &&
			    (!internaldate ||
			     msg->internaldate == internaldate)) {
				found = msg->uid;
				n++;
			}
		}
	}
	g_mutex_unlock(&acct->lock);
	if (out_n)
		*out_n = n;
	return found;
}

/* The UID @msg got when it was moved into @id above @before, found by
 * listing @id again (a MOVE keeps size and INTERNALDATE); 0 if none or
 * several fit. */
static guint32 find_arrived(CacheAccount *acct, guint32 id, guint32 before,
			    const CacheMessage *msg)
{
	guint n;
	guint32 uid;

	mark_stale(acct, id);
	if (!cache_account_ensure_synced(acct, id, TRUE, NULL))
		return 0;
	uid = find_new(acct, id, before, msg->size, msg->internaldate, &n);
	return n == 1 ? uid : 0;
}

/* A UID MOVE of @ref was answered OK without COPYUID by a server with
 * UIDPLUS, which says where what it moves goes: it moved nothing, as for
 * a message another client has expunged (Dovecot: "No messages found"),
 * unless it kept the new UID to itself. Looks which: FALSE with *@error
 * if the message is still in the source (nothing moved) or in neither
 * mailbox (NOT_FOUND); else TRUE, with the UID it has in @to_id in
 * *@out_found where one message there fits @msg. */
static gboolean moved_unsaid(CacheAccount *acct, CacheMsgRef ref,
			     const Place *from, guint32 to_id, gint64 before,
			     const CacheMessage *msg, guint32 *out_found,
			     GError **error)
{
	g_autoptr(GError) look = NULL;
	guint32 uid;
	guint n;

	if (still_there(acct, ref.mailbox_id, ref.uid, &look)) {
		if (look)
			return TRUE; /* cannot tell; as the server said */
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_IO,
			    "the server moved nothing: UID %u is still in %s; "
			    "try again",
			    ref.uid, from->full_name);
		return FALSE;
	}
	mark_stale(acct, to_id);
	if (!cache_account_ensure_synced(acct, to_id, TRUE, NULL))
		return TRUE; /* cannot tell; it left the source */
	uid = find_new(acct, to_id, before < 0 ? 0 : (guint32)before,
		       msg->size, msg->internaldate, &n);
	if (n == 0) {
		set_gone_error(error, ref, from);
		return FALSE;
	}
	*out_found = n == 1 ? uid : 0;
	return TRUE;
}

gboolean cache_account_move(CacheAccount *acct, CacheMsgRef ref, guint32 to_id,
			    guint32 *out_uid, GError **error)
{
	g_autoptr(ImapReply) reply = NULL;
	Place from = {0}, to = {0};
	CacheMessage msg = {0};
	guint32 new_uid = 0, found = 0, new_uidvalidity = 0;
	gint64 before;
	gboolean ok = FALSE;
	guint caps;

	if (out_uid)
		*out_uid = 0;
	if (!message_place(acct, ref, &from, &msg, error))
		return FALSE;
	if (!place_of(acct, to_id, &to, error))
		goto out;
	if (to.flags & CACHE_MAILBOX_NOSELECT) {
		g_set_error(error, IMAPFS_CACHE_ERROR,
			    CACHE_ERROR_NOT_PERMITTED,
			    "mailbox %s cannot hold messages", to.full_name);
		goto out;
	}
	if (to_id == ref.mailbox_id) {
		g_set_error(error, IMAPFS_CACHE_ERROR,
			    CACHE_ERROR_NOT_PERMITTED,
			    "a message's name comes from the message; it "
			    "cannot be renamed within %s",
			    from.full_name);
		goto out;
	}
	caps = imap_pool_caps(acct->pool);
	before = synced_max_uid(acct, to_id);
	if (caps & IMAP_CAP_MOVE) {
		ok = run_uids(acct, ref.mailbox_id, &from,
			      imap_command_new(error, 0, "UID MOVE %u %q",
					       ref.uid, to.wire),
			      &reply, error);
		imap_pool_note_change(acct->pool, to.wire);
		/* A server with UIDPLUS says where what it moved went; an
		 * OK without it moved nothing (Dovecot: "No messages
		 * found"), unless it did and kept that to itself. */
		if (ok && (caps & IMAP_CAP_UIDPLUS) &&
		    !reply_copyuid(reply, ref.uid, &new_uidvalidity)) {
			ok = moved_unsaid(acct, ref, &from, to_id, before,
					  &msg, &found, error);
		}
		if (ok) {
			forget_message(acct, ref, from.uidvalidity);
		} else if (is_connection_lost(*error)) {
			GError *look = NULL;

			/* Gone from the source: it moved. Still there: it
			 * did not, and nothing is lost either way. */
			if (!still_there(acct, ref.mailbox_id, ref.uid,
					 &look)) {
				g_clear_error(error);
				ok = TRUE;
				forget_message(acct, ref, from.uidvalidity);
				/* Its new UID went with the answer: look
				 * for it, so that its new name resolves. */
				if (before >= 0)
					found = find_arrived(acct, to_id,
							     (guint32)before,
							     &msg);
			}
			g_clear_error(&look);
		}
	} else {
		ok = run_uids(acct, ref.mailbox_id, &from,
			      imap_command_new(error, 0, "UID COPY %u %q",
					       ref.uid, to.wire),
			      &reply, error);
		imap_pool_note_change(acct->pool, to.wire);
		/* A COPY whose answer was lost may or may not have
		 * happened; the source is untouched either way, so report
		 * the failure and let the user look. */
		if (ok)
			ok = expunge_uid(acct, &from, ref, error);
	}
	if (ok) {
		new_uid = found	  ? found
			  : reply ? reply_copyuid(reply, ref.uid,
						  &new_uidvalidity)
				  : 0;
		/* Found by listing: the index has it as the server does. */
		if (!found)
			place_copy(acct, to_id, new_uid, &msg);
		/* Its bytes are the same: what the cache has of them is
		 * the new message's, not fetched again. Only where the
		 * server said which it is (one found by its size and date
		 * may be another). */
		if (!found && new_uid && new_uidvalidity)
			cache_store_move(acct->store,
					 &(CacheKey){from.wire,
						     from.uidvalidity,
						     ref.uid},
					 &(CacheKey){to.wire, new_uidvalidity,
						     new_uid});
		if (out_uid)
			*out_uid = new_uid;
	}
out:
	cache_message_clear(&msg);
	place_clear(&from);
	place_clear(&to);
	return ok;
}

gboolean cache_account_delete(CacheAccount *acct, CacheMsgRef ref,
			      gboolean expunge, GError **error)
{
	guint32 trash_id = 0;
	Place place = {0};
	gboolean ok;

	if (!expunge) {
		CacheIndexMailbox *trash;

		g_mutex_lock(&acct->lock);
		trash = cache_index_find_trash(acct->index);
		if (trash)
			trash_id = trash->id;
		g_mutex_unlock(&acct->lock);
	}
	if (trash_id && trash_id != ref.mailbox_id)
		return cache_account_move(acct, ref, trash_id, NULL, error);
	if (!message_place(acct, ref, &place, NULL, error))
		return FALSE;
	ok = expunge_uid(acct, &place, ref, error);
	place_clear(&place);
	return ok;
}

/* ---- Append ------------------------------------------------------------- */

/* The file's bytes with every bare LF made CRLF, as IMAP wants; 8-bit
 * bytes are sent as they are. */
static GBytes *read_message(int fd, GError **error)
{
	GByteArray *out = g_byte_array_new();
	char buf[65536];
	gboolean cr = FALSE;
	off_t off = 0;
	ssize_t n;

	while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
		ssize_t start = 0;

		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' && !cr) {
				g_byte_array_append(out, (guint8 *)buf + start,
						    i - start);
				g_byte_array_append(out, (guint8 *)"\r", 1);
				start = i;
			}
			cr = buf[i] == '\r';
		}
		g_byte_array_append(out, (guint8 *)buf + start, n - start);
		off += n;
	}
	if (n < 0) {
		int err = errno;

		g_byte_array_unref(out);
		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err),
			    "reading the new message: %s", g_strerror(err));
		return NULL;
	}
	return g_byte_array_free_to_bytes(out);
}

/* Whether message @ref is @body, byte for byte. */
static gboolean same_bytes(CacheAccount *acct, CacheMsgRef ref, GBytes *body,
			   gboolean *out_same, GError **error)
{
	g_autofree guint8 *buf = NULL;
	const guint8 *want;
	gsize len, off = 0;
	CacheFile file;
	gboolean ok = TRUE;

	*out_same = FALSE;
	if (!cache_account_open(acct, ref, &file, error))
		return FALSE;
	want = g_bytes_get_data(body, &len);
	*out_same = file.size == len;
	buf = g_malloc(CACHE_STORE_CHUNK);
	while (ok && *out_same && off < len) {
		CacheSpan span;
		ssize_t n;

		/* span.len is at most the CACHE_STORE_CHUNK asked for. */
		ok = cache_account_read_file(acct, &file, (goffset)off,
					     CACHE_STORE_CHUNK, &span, NULL,
					     error);
		if (!ok)
			break;
		n = span.len ? pread(span.fd, buf, span.len, span.pos) : 0;
		if (n <= 0 || (gsize)n > len - off ||
		    memcmp(buf, want + off, (gsize)n) != 0)
			*out_same = FALSE;
		off += n > 0 ? (gsize)n : 0;
		cache_span_release(&span);
	}
	cache_account_close(acct, &file);
	return ok;
}

gboolean cache_account_same_message(CacheAccount *acct, CacheMsgRef ref, int fd,
				    gboolean *out_same, GError **error)
{
	g_autoptr(GBytes) body = read_message(fd, error);

	*out_same = FALSE;
	return body && same_bytes(acct, ref, body, out_same, error);
}

/* A message of mailbox @mailbox_id whose bytes are @body (a new file's,
 * bare LFs made CRLF), and that no other file was taken for (so that a
 * backup's two copies of one message stay two): found by Message-ID and
 * size, then compared byte for byte; 0 if none. */
static guint32 held_already(CacheAccount *acct, guint32 mailbox_id,
			    GBytes *body)
{
	g_autoptr(GArray) uids = g_array_new(FALSE, FALSE, sizeof(guint32));
	g_autofree char *raw = NULL;
	g_autofree char *message_id = NULL;
	CacheIndexMailbox *mbox;
	const char *data;
	const char *end;
	gsize len;

	data = g_bytes_get_data(body, &len);
	end = memmem(data, len, "\r\n\r\n", 4);
	raw = cache_text_header_field(data, end ? (gsize)(end - data) + 2 : len,
				      "Message-ID");
	message_id = cache_text_one_line(raw);
	if (!message_id || !*message_id)
		return 0;
	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox(acct->index, mailbox_id);
	if (mbox) {
		GPtrArray *same = cache_index_by_message_id(mbox, message_id);

		for (guint i = 0; same && i < same->len; i++) {
			CacheMessage *msg = same->pdata[i];

			if (msg->size == len && !msg->alias)
				g_array_append_val(uids, msg->uid);
		}
	}
	g_mutex_unlock(&acct->lock);
	for (guint i = 0; i < uids->len; i++) {
		guint32 uid = g_array_index(uids, guint32, i);
		gboolean same = FALSE;

		if (same_bytes(acct, (CacheMsgRef){mailbox_id, uid}, body,
			       &same, NULL) &&
		    same)
			return uid;
	}
	return 0;
}

gboolean cache_account_append(CacheAccount *acct, guint32 mailbox_id, int fd,
			      const char *flags, gint64 internaldate,
			      const char *alias, guint32 *out_uid,
			      GError **error)
{
	g_autoptr(GBytes) body = NULL;
	g_autoptr(ImapReply) reply = NULL;
	g_autofree char *wanted = NULL;
	g_autofree char *date = NULL;
	ImapCommand *cmd;
	Place place = {0};
	guint32 before, uid = 0;
	gboolean ok;

	if (out_uid)
		*out_uid = 0;
	wanted = cache_flags_normalize(flags ? flags : "", error);
	if (!wanted)
		return FALSE;
	if (!cache_account_ensure_synced(acct, mailbox_id, FALSE, error) ||
	    !place_of(acct, mailbox_id, &place, error))
		return FALSE;
	if (place.flags & CACHE_MAILBOX_NOSELECT) {
		g_set_error(error, IMAPFS_CACHE_ERROR,
			    CACHE_ERROR_NOT_PERMITTED,
			    "mailbox %s cannot hold messages", place.full_name);
		place_clear(&place);
		return FALSE;
	}
	body = read_message(fd, error);
	if (!body) {
		place_clear(&place);
		return FALSE;
	}
	if (g_bytes_get_size(body) == 0) {
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_INVALID,
			    "an empty file is not a message; nothing was "
			    "added to %s",
			    place.full_name);
		place_clear(&place);
		return FALSE;
	}
	/* A backup's file (its name, @alias, is a message's) that the
	 * mailbox holds already: a restore run again from a mount whose
	 * cache knows none of the names the last run kept. Not added twice;
	 * only its flags are taken, as where the name is known. */
	if (alias && (uid = held_already(acct, mailbox_id, body))) {
		ok = !flags || cache_account_set_flags(
				       acct, (CacheMsgRef){mailbox_id, uid},
				       flags, error);
		goto named;
	}
	date = internaldate > 0 ? imap_format_internaldate(internaldate) : NULL;
	before = (guint32)MAX(synced_max_uid(acct, mailbox_id), 0);
	if (date)
		cmd = imap_command_new(error, 0, "APPEND %q %F %q %L",
				       place.wire, wanted, date, body);
	else
		cmd = imap_command_new(error, 0, "APPEND %q %F %L", place.wire,
				       wanted, body);
	/* APPEND needs no selected mailbox; NULL lets any connection take
	 * it. */
	ok = run(acct, cmd, &reply, error);
	/* Whatever came of it: a lost answer may hide an APPEND made. */
	imap_pool_note_change(acct->pool, place.wire);
	if (ok && g_strcmp0(reply->code, "APPENDUID") == 0)
		uid = code_uid(reply->code_arg, 1);
	if (!ok && !is_connection_lost(*error)) {
		place_clear(&place);
		return FALSE;
	}
	/* Learn the new message's facts (and, after a lost answer, whether
	 * it arrived at all). */
	mark_stale(acct, mailbox_id);
	if (!cache_account_ensure_synced(acct, mailbox_id, TRUE, NULL))
		g_debug("mailbox %s: listing after APPEND failed; it will "
			"catch up later",
			place.full_name);
	if (!uid)
		uid = find_new(acct, mailbox_id, before, g_bytes_get_size(body),
			       0, NULL);
	if (!ok) {
		if (!uid) {
			place_clear(&place);
			return FALSE; /* the connection error stands */
		}
		g_clear_error(error);
		ok = TRUE;
	}
named:
	if (uid && alias) {
		g_mutex_lock(&acct->lock);
		{
			CacheIndexMailbox *mbox =
				cache_index_mailbox(acct->index, mailbox_id);
			CacheMessage *msg =
				mbox ? cache_index_message(mbox, uid) : NULL;

			if (msg && !cache_index_message_by_alias(mbox, alias))
				cache_index_set_alias(mbox, msg, alias);
		}
		g_mutex_unlock(&acct->lock);
	}
	if (out_uid)
		*out_uid = uid;
	place_clear(&place);
	return ok;
}

/* ---- Mailboxes ---------------------------------------------------------- */

char cache_account_delimiter(CacheAccount *acct)
{
	char delimiter;

	if (!cache_account_ensure_listed(acct, FALSE, NULL))
		return '\0';
	g_mutex_lock(&acct->lock);
	delimiter = cache_index_delimiter(acct->index);
	g_mutex_unlock(&acct->lock);
	return delimiter;
}

/* The UTF-8 full name of @component under @parent_id. */
static char *child_name(CacheAccount *acct, guint32 parent_id,
			const char *component, GError **error)
{
	char delimiter = cache_account_delimiter(acct);
	Place parent = {0};
	char *name;

	if (!*component || (delimiter && strchr(component, delimiter))) {
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_INVALID,
			    "\"%s\" cannot be a mailbox name here (the "
			    "server uses '%c' between levels)",
			    component, delimiter ? delimiter : '?');
		return NULL;
	}
	if (parent_id == CACHE_ROOT_ID)
		return g_strdup(component);
	if (!delimiter) {
		g_set_error(error, IMAPFS_CACHE_ERROR,
			    CACHE_ERROR_NOT_PERMITTED,
			    "the server has no mailbox hierarchy");
		return NULL;
	}
	if (!place_of(acct, parent_id, &parent, error))
		return NULL;
	name = g_strdup_printf("%s%c%s", parent.full_name, delimiter,
			       component);
	place_clear(&parent);
	return name;
}

static gboolean is_inbox(const char *full_name)
{
	return g_ascii_strcasecmp(full_name, "INBOX") == 0;
}

gboolean cache_account_create_mailbox(CacheAccount *acct, guint32 parent_id,
				      const char *component, GError **error)
{
	g_autofree char *name = NULL;
	g_autoptr(GError) failed = NULL;
	CacheIndexMailbox *mbox;
	gboolean known, there;

	if (!cache_account_ensure_listed(acct, FALSE, error))
		return FALSE;
	name = child_name(acct, parent_id, component, error);
	if (!name)
		return FALSE;
	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox_by_name(acct->index, name);
	known = mbox && !mbox->gone;
	g_mutex_unlock(&acct->lock);
	if (run(acct, imap_command_new(error, 0, "CREATE %m", name), NULL,
		&failed))
		return cache_sync_mailboxes(acct, 0, error);
	/* Dovecot may answer [ALREADYEXISTS] to a CREATE that did create
	 * the mailbox, when another session opens a mailbox at that moment
	 * (seen with the IDLE connection's EXAMINE at mount); and the answer
	 * of one may be lost with its connection. If it was not listed
	 * before and is now, it is taken as ours. */
	if (known ||
	    !(g_error_matches(failed, IMAPFS_IMAP_ERROR,
			      IMAP_ERROR_ALREADYEXISTS) ||
	      is_connection_lost(failed)) ||
	    !cache_sync_mailboxes(acct, 0, NULL)) {
		g_propagate_error(error, g_steal_pointer(&failed));
		return FALSE;
	}
	g_mutex_lock(&acct->lock);
	mbox = cache_index_mailbox_by_name(acct->index, name);
	there = mbox && !mbox->gone;
	g_mutex_unlock(&acct->lock);
	if (!there && is_connection_lost(failed)) {
		/* It was not made: make it now, once. */
		g_clear_error(&failed);
		if (run(acct, imap_command_new(error, 0, "CREATE %m", name),
			NULL, error))
			return cache_sync_mailboxes(acct, 0, error);
		return FALSE;
	}
	if (!there) {
		g_propagate_error(error, g_steal_pointer(&failed));
		return FALSE;
	}
	g_debug("CREATE %s: %s, but it was not listed before: taken as made",
		name, failed->message);
	return TRUE;
}

/* Whether the server lists the mailbox @wire now, into @listed; FALSE
 * with @error if it could not be asked. For a command whose answer was
 * lost with its connection: did it happen? */
static gboolean ask_listed(CacheAccount *acct, const char *wire,
			   gboolean *listed, GError **error)
{
	g_autoptr(ImapReply) reply = NULL;

	*listed = FALSE;
	if (!run(acct,
		 imap_command_new(error, IMAP_COMMAND_RETRIABLE, "LIST \"\" %q",
				  wire),
		 &reply, error))
		return FALSE;
	/* A name holding % or * is also a pattern: only an exact match
	 * counts. */
	for (guint i = 0; i < reply->untagged->len; i++) {
		const ImapResponse *resp = reply->untagged->pdata[i];
		ImapListItem item;

		if (g_strcmp0(resp->name, "LIST") != 0 ||
		    !imap_response_get_list(resp, &item, NULL))
			continue;
		if (strcmp(item.name, wire) == 0 &&
		    !(item.attrs & IMAP_MBOX_NONEXISTENT))
			*listed = TRUE;
		imap_list_item_clear(&item);
	}
	return TRUE;
}

/* Runs a DELETE or RENAME (@cmd; @again is the same command, built
 * alike) whose effect is that @gone is no longer listed and, for a RENAME,
 * @made is. If the answer is lost with its connection, asks the server
 * which happened: done is success; not done, @again is sent. */
static gboolean run_checked(CacheAccount *acct, ImapCommand *cmd,
			    ImapCommand *again, const char *gone,
			    const char *made, GError **error)
{
	g_autoptr(ImapCommand) resend = again;
	g_autoptr(GError) failed = NULL;
	gboolean gone_listed, made_listed = FALSE;

	if (!cmd)
		return FALSE; /* imap_command_new() set @error */
	if (run(acct, cmd, NULL, &failed))
		return TRUE;
	if (!is_connection_lost(failed) ||
	    !ask_listed(acct, gone, &gone_listed, NULL) ||
	    (made && !ask_listed(acct, made, &made_listed, NULL))) {
		g_propagate_error(error, g_steal_pointer(&failed));
		return FALSE;
	}
	if (!gone_listed && (!made || made_listed)) {
		g_debug("%s: %s, but it was done: taken as done", gone,
			failed->message);
		return TRUE;
	}
	if (gone_listed && !made_listed && resend) { /* no @made: unlisted */
		g_debug("%s: %s, and it was not done: sent once more", gone,
			failed->message);
		return run(acct, g_steal_pointer(&resend), NULL, error);
	}
	g_propagate_error(error, g_steal_pointer(&failed));
	return FALSE;
}

/* Item @item of "* STATUS @wire (... ITEM n ...)" in @reply, or -1; @wire
 * NULL: of any mailbox (the reply of a lone STATUS). */
static gint64 status_number(const ImapReply *reply, const char *wire,
			    const char *item)
{
	for (guint i = 0; reply && i < reply->untagged->len; i++) {
		const ImapResponse *resp = reply->untagged->pdata[i];
		const ImapValue *items = imap_value_item(resp->args, 1);

		if (g_strcmp0(resp->name, "STATUS") != 0 ||
		    (wire && g_strcmp0(imap_value_get_string(
					       imap_value_item(resp->args, 0)),
				       wire) != 0))
			continue;
		for (guint k = 0; k + 1 < imap_value_n_items(items); k += 2) {
			guint64 n;

			if (imap_value_is_atom(imap_value_item(items, k),
					       item) &&
			    imap_value_get_number(imap_value_item(items, k + 1),
						  &n))
				return n;
		}
	}
	return -1;
}

gboolean cache_account_delete_mailbox(CacheAccount *acct, guint32 id,
				      GError **error)
{
	g_autoptr(ImapReply) status = NULL;
	gint64 counted;
	Place place = {0};
	guint n_children, n_messages = 0;
	gboolean ok;

	if (!cache_account_ensure_listed(acct, TRUE, error) ||
	    !place_of(acct, id, &place, error))
		return FALSE;
	if (is_inbox(place.full_name)) {
		g_set_error(error, IMAPFS_CACHE_ERROR,
			    CACHE_ERROR_NOT_PERMITTED,
			    "INBOX cannot be removed");
		place_clear(&place);
		return FALSE;
	}
	if (place.wire && !(place.flags & CACHE_MAILBOX_NOSELECT)) {
		mark_stale(acct, id);
		if (!cache_account_ensure_synced(acct, id, TRUE, error)) {
			place_clear(&place);
			return FALSE;
		}
	}
	g_mutex_lock(&acct->lock);
	{
		CacheIndexMailbox *mbox = cache_index_mailbox(acct->index, id);

		n_children = cache_index_n_children(acct->index, id);
		if (mbox)
			n_messages = g_hash_table_size(mbox->by_uid);
	}
	g_mutex_unlock(&acct->lock);
	if (n_children || n_messages) {
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_EMPTY,
			    "mailbox %s still holds %u messages and %u "
			    "mailboxes",
			    place.full_name, n_messages, n_children);
		place_clear(&place);
		return FALSE;
	}
	if (!place.wire) {
		/* A parent the server never listed: nothing to delete. */
		place_clear(&place);
		return cache_sync_mailboxes(acct, 0, error);
	}
	/* DELETE takes whatever is inside: ask once more, as late as we can,
	 * in case another client added a message since we listed. (A
	 * \Noselect mailbox holds none, and STATUS may be refused on it.) */
	counted = 0;
	if (!(place.flags & CACHE_MAILBOX_NOSELECT)) {
		if (!run(acct,
			 imap_command_new(error, IMAP_COMMAND_RETRIABLE,
					  "STATUS %q (MESSAGES)", place.wire),
			 &status, error)) {
			place_clear(&place);
			return FALSE;
		}
		counted = status_number(status, NULL, "MESSAGES");
	}
	if (counted != 0) {
		if (counted < 0)
			g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_IO,
				    "the server did not say how many messages "
				    "%s holds; it is not deleted",
				    place.full_name);
		else
			g_set_error(error, IMAPFS_CACHE_ERROR,
				    CACHE_ERROR_NOT_EMPTY,
				    "mailbox %s still holds %" G_GINT64_FORMAT
				    " messages",
				    place.full_name, counted);
		mark_stale(acct, id);
		place_clear(&place);
		return FALSE;
	}
	ok = run_checked(acct,
			 imap_command_new(error, 0, "DELETE %q", place.wire),
			 imap_command_new(NULL, 0, "DELETE %q", place.wire),
			 place.wire, NULL, error);
	place_clear(&place);
	return ok && cache_sync_mailboxes(acct, 0, error);
}

/* A mailbox whose cached messages follow it to its new name. */
typedef struct {
	guint32 id;
	guint32 uidvalidity;
	char *from; /* wire names */
	char *to;
} Renamed;

static void renamed_clear(gpointer data)
{
	Renamed *r = data;

	g_free(r->from);
	g_free(r->to);
}

/* Notes @id's mailbox and those below it, with what names their cached
 * messages now. Under acct->lock. */
static void note_renamed_locked(CacheAccount *acct, guint32 id, GArray *out)
{
	CacheIndexMailbox *mbox = cache_index_mailbox(acct->index, id);
	g_autoptr(GPtrArray) kids = cache_index_children(acct->index, id);

	if (mbox && mbox->wire_name && mbox->uidvalidity) {
		Renamed r = {id, mbox->uidvalidity, g_strdup(mbox->wire_name),
			     NULL};

		g_array_append_val(out, r);
	}
	for (guint i = 0; i < kids->len; i++)
		note_renamed_locked(
			acct, ((CacheIndexMailbox *)kids->pdata[i])->id, out);
}

/* Moves what the cache holds of each of the @renamed mailboxes to its new
 * name, where the server says it kept its UIDVALIDITY (asked of all at
 * once): a mailbox that got a new one may some day get the old one back,
 * and the moved files would then be taken for its messages. */
static void carry_cache(CacheAccount *acct, GArray *renamed)
{
	g_autoptr(GPtrArray) waits = g_ptr_array_new_with_free_func(
		(GDestroyNotify)cache_wait_unref);
	g_autoptr(GArray) kept =
		g_array_new(FALSE, FALSE, sizeof(CacheStoreRename));
	gint64 deadline =
		g_get_monotonic_time() + acct->timeout_s * G_TIME_SPAN_SECOND;

	for (guint i = 0; i < renamed->len; i++) {
		const Renamed *r = &g_array_index(renamed, Renamed, i);
		ImapCommand *cmd =
			imap_command_new(NULL, IMAP_COMMAND_RETRIABLE,
					 "STATUS %q (UIDVALIDITY)", r->to);

		g_ptr_array_add(waits, cmd ? cache_wait_start(acct->pool, NULL,
							     0, cmd)
					   : NULL);
	}
	for (guint i = 0; i < renamed->len; i++) {
		const Renamed *r = &g_array_index(renamed, Renamed, i);
		g_autoptr(ImapReply) reply = NULL;
		CacheWait *wait = waits->pdata[i];
		gint64 left = deadline - g_get_monotonic_time();

		/* They answer together, or not: one timeout for all. */
		if (wait && left > 0 &&
		    cache_wait_finish(wait,
				      MAX(1, left / G_TIME_SPAN_SECOND), NULL,
				      &reply, NULL) &&
		    status_number(reply, r->to, "UIDVALIDITY") ==
			    r->uidvalidity)
			g_array_append_val(kept,
					   ((CacheStoreRename){r->from, r->to,
							       r->uidvalidity}));
		else
			g_debug("%s: the server did not say it kept its "
				"UIDVALIDITY: what was cached of it is "
				"fetched again",
				r->to);
	}
	cache_store_move_mailboxes(acct->store,
				   (const CacheStoreRename *)kept->data,
				   kept->len);
}

gboolean cache_account_rename_mailbox(CacheAccount *acct, guint32 id,
				      guint32 parent_id, const char *component,
				      GError **error)
{
	g_autofree char *name = NULL;
	g_autofree char *wire = NULL;
	g_autoptr(GArray) renamed = g_array_new(FALSE, TRUE, sizeof(Renamed));
	Place place = {0};
	gboolean ok;

	g_array_set_clear_func(renamed, renamed_clear);
	if (!cache_account_ensure_listed(acct, FALSE, error) ||
	    !place_of(acct, id, &place, error))
		return FALSE;
	if (is_inbox(place.full_name)) {
		g_set_error(error, IMAPFS_CACHE_ERROR,
			    CACHE_ERROR_NOT_PERMITTED,
			    "INBOX cannot be renamed");
		place_clear(&place);
		return FALSE;
	}
	if (!place.wire) {
		g_set_error(error, IMAPFS_CACHE_ERROR,
			    CACHE_ERROR_NOT_PERMITTED,
			    "%s exists only as the parent of other mailboxes; "
			    "rename those instead",
			    place.full_name);
		place_clear(&place);
		return FALSE;
	}
	name = child_name(acct, parent_id, component, error);
	if (!name) {
		place_clear(&place);
		return FALSE;
	}
	/* What %m sends: the name in modified UTF-7. */
	wire = imap_utf7_encode(name);
	if (!wire) {
		g_set_error(error, IMAPFS_CACHE_ERROR, CACHE_ERROR_INVALID,
			    "%s cannot be a mailbox name", name);
		place_clear(&place);
		return FALSE;
	}
	/* A read whose fetch fails meanwhile waits for the index to say
	 * whether the name changed (cache/account.c). */
	g_mutex_lock(&acct->lock);
	acct->renaming++;
	g_mutex_unlock(&acct->lock);
	ok = run_checked(
		acct,
		imap_command_new(error, 0, "RENAME %q %m", place.wire, name),
		imap_command_new(NULL, 0, "RENAME %q %m", place.wire, name),
		place.wire, wire, error);
	g_mutex_lock(&acct->lock);
	if (ok) {
		CacheIndexMailbox *mbox = cache_index_mailbox(acct->index, id);

		if (mbox) {
			note_renamed_locked(acct, id, renamed);
			cache_index_rename(acct->index, mbox, parent_id, name,
					   wire);
		}
		for (guint i = 0; i < renamed->len; i++) {
			Renamed *r = &g_array_index(renamed, Renamed, i);

			r->to = g_strdup(
				cache_index_mailbox(acct->index, r->id)
					->wire_name);
		}
	}
	acct->renaming--;
	g_cond_broadcast(&acct->renamed);
	g_mutex_unlock(&acct->lock);
	if (ok) {
		carry_cache(acct, renamed);
		ok = cache_sync_mailboxes(acct, 0, error);
	}
	place_clear(&place);
	return ok;
}

/* imap/idle.c — mailboxes watched with IDLE and NOTIFY, on a thread of
 * their own.
 *
 * The thread connects (blocking, like the pool's connectors), EXAMINEs the
 * mailbox (read-only: \Recent stays for other clients), sends NOTIFY SET
 * for every mailbox of the account where the server offers it, and runs
 * IDLE. It then sleeps in poll() on the socket and on a wake-up pipe until
 * the server says something, the IDLE is due for renewal, or
 * imap_idle_free() asks it to stop; it ends an IDLE with DONE. EXISTS,
 * EXPUNGE, VANISHED and FETCH are reported for the EXAMINEd mailbox,
 * STATUS for the others (RFC 5465 §5: MESSAGES or UIDNEXT when messages
 * came or went, HIGHESTMODSEQ alone for flags), LIST for mailboxes made,
 * deleted or renamed; everything else is ignored. A lost connection is
 * retried after 1 s, doubling up to IDLE_PAUSE_MAX while it keeps failing,
 * and what happened while it was down counts as a change.
 */
#include "imap/idle.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "imap/caps.h"
#include "imap/conn.h"
#include "imap/connect.h"
#include "imap/error.h"

/* RFC 2177: servers may end an IDLE after 30 minutes. */
#define IDLE_RENEW     (25 * 60 * G_TIME_SPAN_SECOND)
#define IDLE_PAUSE_MAX 300 /* seconds between reconnections, at most */
#define IDLE_STOP_WAIT (2 * G_TIME_SPAN_SECOND) /* for DONE and LOGOUT */

struct ImapIdle {
	ImapConfig *cfg;
	guint conn_no;
	char *mailbox;
	ImapIdleFunc changed;
	gpointer user_data;
	GThread *thread;
	int wake[2];		 /* written to stop, or to cut a pause short */
	ImapConnectAbort *abort; /* fired to stop while connecting */
	gboolean notify_refused; /* said so once */
	gboolean notified;	 /* NOTIFY was on at some time */
	gint nudged;		 /* imap_idle_nudge() during the pause */

	GMutex lock;
	GCond ended_cond;
	gboolean stopping;
	gboolean ended;
	int fd; /* the connection's socket, or -1 */
};

static gboolean stopping(ImapIdle *idle)
{
	gboolean stop;

	g_mutex_lock(&idle->lock);
	stop = idle->stopping;
	g_mutex_unlock(&idle->lock);
	return stop;
}

/* Publishes the connection's socket for imap_idle_free() to shut; FALSE
 * if asked to stop already. */
static gboolean set_fd(ImapIdle *idle, int fd)
{
	gboolean go;

	g_mutex_lock(&idle->lock);
	go = !idle->stopping;
	idle->fd = go ? fd : -1;
	g_mutex_unlock(&idle->lock);
	return go;
}

/* Waits until @fd (if not -1) has something to read, we are asked to
 * stop, or @deadline (monotonic) passes. TRUE if @fd has something. */
static gboolean wait_for(ImapIdle *idle, int fd, gint64 deadline)
{
	struct pollfd fds[2] = {{idle->wake[0], POLLIN, 0}, {fd, POLLIN, 0}};
	gint64 left = deadline - g_get_monotonic_time();
	int n;

	if (left <= 0)
		return FALSE;
	n = poll(fds, fd >= 0 ? 2 : 1, (int)MIN(left / 1000 + 1, G_MAXINT));
	if (n < 0 && errno != EINTR)
		g_usleep(G_TIME_SPAN_SECOND); /* never spin */
	if (n > 0 && fds[0].revents != 0 && !stopping(idle)) {
		char buf[16];

		while (read(idle->wake[0], buf, sizeof(buf)) > 0)
			; /* a nudge: taken */
	}
	return n > 0 && fd >= 0 && fds[1].revents != 0;
}

/* What "* STATUS name (item value ...)" tells of mailbox name. */
static gboolean status_change(const ImapResponse *resp, const char **out_name,
			      ImapIdleChange *out)
{
	const ImapValue *items = imap_value_item(resp->args, 1);

	*out_name = imap_value_get_string(imap_value_item(resp->args, 0));
	if (*out_name == NULL || **out_name == '\0')
		return FALSE;
	*out = IMAP_IDLE_FLAGS;
	for (guint i = 0; i + 1 < imap_value_n_items(items); i += 2) {
		const ImapValue *item = imap_value_item(items, i);

		if (imap_value_is_atom(item, "MESSAGES") ||
		    imap_value_is_atom(item, "UIDNEXT") ||
		    imap_value_is_atom(item, "UIDVALIDITY"))
			*out = IMAP_IDLE_MESSAGES;
	}
	return TRUE;
}

/* Whether @resp announces a change, and which, to which mailbox (a wire
 * name borrowed from @resp or @idle; NULL for IMAP_IDLE_MAILBOXES). */
static gboolean is_change(ImapIdle *idle, const ImapResponse *resp,
			  const char **out_name, ImapIdleChange *out)
{
	static const char *const messages[] = {"EXISTS", "EXPUNGE", "VANISHED"};

	if (resp->kind != IMAP_RESPONSE_UNTAGGED || resp->name == NULL)
		return FALSE;
	if (strcmp(resp->name, "STATUS") == 0)
		return status_change(resp, out_name, out);
	*out_name = NULL;
	*out = IMAP_IDLE_MAILBOXES;
	if (strcmp(resp->name, "LIST") == 0)
		return TRUE;
	*out_name = idle->mailbox;
	*out = IMAP_IDLE_MESSAGES;
	for (guint i = 0; i < G_N_ELEMENTS(messages); i++)
		if (strcmp(resp->name, messages[i]) == 0)
			return TRUE;
	*out = IMAP_IDLE_FLAGS;
	return strcmp(resp->name, "FETCH") == 0;
}

/* Notes a change to report; the worse of two for one mailbox wins. */
static void note_change(GHashTable *pending, const char *name,
			ImapIdleChange change)
{
	gpointer old;

	if (g_hash_table_lookup_extended(pending, name ? name : "", NULL,
					 &old) &&
	    GPOINTER_TO_INT(old) == IMAP_IDLE_MESSAGES)
		return;
	g_hash_table_insert(pending, g_strdup(name ? name : ""),
			    GINT_TO_POINTER(change));
}

/* Reports the changes noted, and forgets them. */
static void report(ImapIdle *idle, GHashTable *pending)
{
	GHashTableIter iter;
	gpointer key, value;

	g_hash_table_iter_init(&iter, pending);
	while (g_hash_table_iter_next(&iter, &key, &value))
		idle->changed(*(char *)key ? key : NULL, GPOINTER_TO_INT(value),
			      NULL, idle->user_data);
	g_hash_table_remove_all(pending);
}

/* One IDLE, from its start to the server's tagged reply: until a renewal
 * is due or we are asked to stop. */
static gboolean idle_once(ImapIdle *idle, ImapStream *stream, GError **error)
{
	gint64 renew_at = g_get_monotonic_time() + IDLE_RENEW;
	g_autofree char *tag = NULL;
	gboolean idling = FALSE; /* the server sent its '+' */
	/* Changes not reported yet: wire name ("" for none) -> change. */
	g_autoptr(GHashTable) pending =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	ImapIdleChange change;
	const char *name;
	gboolean done_sent = FALSE;

	tag = imap_stream_start(stream, imap_command_new(error, 0, "IDLE"),
				error);
	if (tag == NULL)
		return FALSE;
	for (;;) {
		g_autoptr(ImapResponse) resp = NULL;

		/* A burst (another client expunging a thousand messages, each
		 * its own line) is reported once, when nothing more is
		 * buffered. */
		if (g_hash_table_size(pending) > 0 &&
		    !imap_stream_buffered(stream))
			report(idle, pending);
		/* DONE answers the continuation (RFC 2177): not before it. */
		if (idling && !done_sent &&
		    (stopping(idle) || g_get_monotonic_time() >= renew_at)) {
			if (!imap_stream_send_line(stream, "DONE\r\n", error))
				return FALSE;
			done_sent = TRUE;
		}
		if (idling && !done_sent && !imap_stream_buffered(stream) &&
		    !wait_for(idle, imap_stream_fd(stream), renew_at))
			continue; /* time to renew, or to stop */
		resp = imap_stream_read(stream, error);
		if (resp == NULL)
			return FALSE;
		if (resp->kind == IMAP_RESPONSE_TAGGED &&
		    g_strcmp0(resp->tag, tag) == 0) {
			report(idle, pending);
			if (resp->status == IMAP_STATUS_OK)
				return TRUE;
			g_propagate_error(error,
					  imap_wire_status_error("IDLE", resp));
			return FALSE;
		}
		/* RFC 5465 §5.8: the server gave up telling; starting
		 * anew (with a reconnection) counts as a change anywhere. */
		if (resp->kind == IMAP_RESPONSE_UNTAGGED &&
		    g_strcmp0(resp->code, "NOTIFICATIONOVERFLOW") == 0) {
			g_set_error(error, IMAPFS_IMAP_ERROR,
				    IMAP_ERROR_PROTOCOL,
				    "the server stopped telling of changes "
				    "(NOTIFICATIONOVERFLOW)");
			return FALSE;
		}
		if (resp->kind == IMAP_RESPONSE_UNTAGGED &&
		    resp->status == IMAP_STATUS_BYE) {
			g_set_error(error, IMAPFS_IMAP_ERROR,
				    IMAP_ERROR_CONNECTION_LOST,
				    "the server closed the connection: %s",
				    resp->text);
			return FALSE;
		}
		if (resp->kind == IMAP_RESPONSE_CONTINUATION) {
			idling = TRUE;
		} else if (is_change(idle, resp, &name, &change)) {
			note_change(pending, name, change);
		}
	}
}

/* Asks to hear of every mailbox of the account (RFC 5465): the EXAMINEd
 * one as under IDLE, the others by STATUS, and mailboxes made, deleted or
 * renamed by LIST. FALSE only if the connection failed. */
static gboolean notify_all(ImapIdle *idle, ImapStream *stream, gboolean *out_on,
			   GError **error)
{
	g_autoptr(GError) refused = NULL;

	*out_on = FALSE;
	if (!(imap_stream_caps(stream) & IMAP_CAP_NOTIFY))
		return TRUE;
	*out_on = imap_stream_run(
		stream,
		imap_command_new(NULL, 0,
				 "NOTIFY SET (selected (MessageNew "
				 "MessageExpunge FlagChange)) (personal "
				 "(MessageNew MessageExpunge FlagChange "
				 "MailboxName))"),
		NULL, &refused);
	if (*out_on)
		return TRUE;
	if (refused->code == IMAP_ERROR_CONNECTION_LOST ||
	    refused->code == IMAP_ERROR_TIMEOUT ||
	    refused->code == IMAP_ERROR_PROTOCOL) {
		g_propagate_error(error, g_steal_pointer(&refused));
		return FALSE;
	}
	if (!idle->notify_refused)
		g_message("watching only %s for changes: %s", idle->mailbox,
			  refused->message);
	idle->notify_refused = TRUE;
	return TRUE;
}

/* EXAMINE, NOTIFY, then IDLE after IDLE until asked to stop (TRUE) or the
 * connection fails (FALSE). @again: a connection was up before. */
static gboolean watch(ImapIdle *idle, ImapStream *stream, gboolean again,
		      GError **error)
{
	ImapCommand *examine =
		imap_command_new(error, 0, "EXAMINE %q", idle->mailbox);
	g_autoptr(GPtrArray) said = g_ptr_array_new_with_free_func(
		(GDestroyNotify)imap_response_free);
	ImapMailboxInfo info = {0};
	gboolean all;

	if (examine == NULL || !imap_stream_run(stream, examine, said, error) ||
	    !notify_all(idle, stream, &all, error))
		return FALSE;
	/* What changed before went unseen: between the mount's first
	 * listings and now, or while the connection was down (anywhere, had
	 * NOTIFY been on). */
	idle->notified |= all;
	for (guint i = 0; i < said->len; i++)
		imap_mailbox_info_update(&info, said->pdata[i]);
	if (!again)
		idle->changed(all ? NULL : idle->mailbox, IMAP_IDLE_BEGUN,
			      &info, idle->user_data);
	else if (idle->notified)
		idle->changed(NULL, IMAP_IDLE_ANY, NULL, idle->user_data);
	else
		idle->changed(idle->mailbox, IMAP_IDLE_MESSAGES, NULL,
			      idle->user_data);
	imap_mailbox_info_clear(&info);
	while (!stopping(idle))
		if (!idle_once(idle, stream, error))
			return FALSE;
	imap_stream_run(stream, imap_command_new(NULL, 0, "LOGOUT"), NULL,
			NULL);
	return TRUE;
}

static gpointer idle_main(gpointer data)
{
	ImapIdle *idle = data;
	guint pause_s = 1;
	gboolean again = FALSE; /* a connection was up before */

	while (!stopping(idle)) {
		g_autoptr(GError) error = NULL;
		g_autoptr(ImapStream) stream = imap_stream_connect_abortable(
			idle->cfg, idle->conn_no, idle->abort, &error);
		gint64 began = g_get_monotonic_time();

		if (stream && !(imap_stream_caps(stream) & IMAP_CAP_IDLE)) {
			g_message("the server no longer offers IDLE: changes "
				  "made elsewhere show after list_ttl");
			break;
		}
		if (stream) {
			gboolean stopped;

			if (!set_fd(idle, imap_stream_fd(stream)))
				break;
			stopped = watch(idle, stream, again, &error);
			again = TRUE;
			set_fd(idle, -1);
			if (stopped || stopping(idle))
				break;
			/* Up for a while (longer than the pause, and 30 s):
			 * a drop now and then (a server restart, a network
			 * change) is retried at once again; connections cut
			 * again and again back off. */
			if (g_get_monotonic_time() - began >=
			    (gint64)MAX(pause_s, 30) * G_TIME_SPAN_SECOND)
				pause_s = 1;
		}
		if (stopping(idle))
			break;
		g_message("watching %s for changes: %s; trying again in %u s",
			  idle->mailbox, error ? error->message : "failed",
			  pause_s);
		g_atomic_int_set(&idle->nudged, 0);
		wait_for(idle, -1,
			 g_get_monotonic_time() + pause_s * G_TIME_SPAN_SECOND);
		pause_s = g_atomic_int_get(&idle->nudged)
				  ? 1
				  : MIN(pause_s * 2, IDLE_PAUSE_MAX);
	}
	g_mutex_lock(&idle->lock);
	idle->ended = TRUE;
	g_cond_signal(&idle->ended_cond);
	g_mutex_unlock(&idle->lock);
	return NULL;
}

ImapIdle *imap_idle_new(const ImapConfig *cfg, guint conn_no,
			const char *mailbox, ImapIdleFunc changed,
			gpointer user_data)
{
	ImapIdle *idle = g_new0(ImapIdle, 1);

	if (pipe2(idle->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		g_warning("cannot watch %s for changes: pipe: %s", mailbox,
			  g_strerror(errno));
		g_free(idle);
		return NULL;
	}
	idle->cfg = imap_config_copy(cfg);
	idle->conn_no = conn_no;
	idle->mailbox = g_strdup(mailbox);
	idle->changed = changed;
	idle->user_data = user_data;
	idle->fd = -1;
	idle->abort = imap_connect_abort_new();
	g_mutex_init(&idle->lock);
	g_cond_init(&idle->ended_cond);
	idle->thread = g_thread_new("imap-idle", idle_main, idle);
	return idle;
}

void imap_idle_nudge(ImapIdle *idle)
{
	gboolean pausing;

	g_mutex_lock(&idle->lock);
	pausing = idle->fd < 0 && !idle->stopping;
	g_mutex_unlock(&idle->lock);
	if (!pausing || g_atomic_int_get(&idle->nudged))
		return;
	g_atomic_int_set(&idle->nudged, 1);
	if (write(idle->wake[1], "n", 1) < 0)
		g_debug("nudging the IDLE thread: %s", g_strerror(errno));
}

void imap_idle_free(ImapIdle *idle)
{
	gint64 deadline = g_get_monotonic_time() + IDLE_STOP_WAIT;

	if (idle == NULL)
		return;
	g_mutex_lock(&idle->lock);
	idle->stopping = TRUE;
	/* An attempt to connect has nothing to end cleanly: given up now. */
	if (idle->fd < 0)
		imap_connect_abort_fire(idle->abort);
	g_mutex_unlock(&idle->lock);
	if (write(idle->wake[1], "x", 1) < 0)
		g_debug("waking the IDLE thread: %s", g_strerror(errno));
	/* A clean end (DONE, LOGOUT) if the server answers soon; else the
	 * socket is shut so that a blocked read returns. */
	g_mutex_lock(&idle->lock);
	while (!idle->ended &&
	       g_cond_wait_until(&idle->ended_cond, &idle->lock, deadline))
		;
	if (!idle->ended && idle->fd >= 0)
		shutdown(idle->fd, SHUT_RDWR);
	else if (!idle->ended) /* connecting again since */
		imap_connect_abort_fire(idle->abort);
	g_mutex_unlock(&idle->lock);
	g_thread_join(idle->thread);
	imap_connect_abort_free(idle->abort);
	close(idle->wake[0]);
	close(idle->wake[1]);
	g_mutex_clear(&idle->lock);
	g_cond_clear(&idle->ended_cond);
	imap_config_free(idle->cfg);
	g_free(idle->mailbox);
	g_free(idle);
}

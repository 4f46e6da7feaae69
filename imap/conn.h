/* imap/conn.h — one connection on the imap-io thread (private to imap/).
 *
 * Also holds what imap/connect.c and imap/conn.c share: the layout of
 * ImapStream and the wire helpers (command segments, trace lines, status
 * errors, raw send and receive).
 *
 * An ImapConn takes over a logged-in ImapStream, makes its socket
 * non-blocking and runs it from a GSource on the imap-io thread's context.
 * It knows nothing of mailboxes or retries: it sends commands in order,
 * pipelined up to a depth, and reports each response to its owner through
 * ImapConnHandlers. Not thread-safe: every call on the imap-io thread.
 */
#ifndef IMAPFS_IMAP_CONN_H
#define IMAPFS_IMAP_CONN_H

#include <glib.h>
#include <openssl/ssl.h>

#include "imap/command.h"
#include "imap/compress.h"
#include "imap/connect.h"
#include "imap/parser.h"
#include "imap/response.h"

struct ImapStream {
	int fd;
	SSL *ssl; /* nullable: plaintext */
	ImapParser *parser;
	int spool_fd;	   /* directory for big literals, or -1 */
	GByteArray *inbuf; /* received, not yet fed to the parser */
	guint caps;	   /* ImapCaps */
	guint conn_no;
	guint next_tag; /* tags are "A<next_tag>" */
	gboolean trace;
	guint timeout_s;
	char *host;		 /* for messages */
	ImapConnectAbort *abort; /* while connecting: fd is registered there */
	ImapCompress *z;	 /* after COMPRESS DEFLATE; else NULL */
	gsize z_taken;		 /* bytes of the write whose deflated form
				  * is not all sent yet */
};

/* ---- wire helpers (connect.c and conn.c) ----------------------------- */

/* The wire form of @cmd under @tag, cut after each synchronising literal
 * header: GBytes segments; the sender waits for a '+' continuation before
 * each segment after the first. Literals use "{n+}" when @caps has
 * LITERAL+ (or LITERAL- and n <= 4096), else "{n}". (transfer full) */
GPtrArray *imap_wire_segments(const ImapCommand *cmd, const char *tag,
			      guint caps);

/* Trace lines at debug level: "[conn N] C: A1 LOGIN <hidden>" */
void imap_wire_trace_command(guint conn_no, const char *tag,
			     const ImapCommand *cmd);
void imap_wire_trace_response(guint conn_no, const ImapResponse *resp);

/* "NO [CODE arg] text" of a status response. (transfer full) */
char *imap_wire_status_text(const ImapResponse *resp);
/* IMAPFS_IMAP_ERROR for a NO/BAD reply to @cmd_name:
 * "UID FETCH: NO [NONEXISTENT] Mailbox doesn't exist: x". */
GError *imap_wire_status_error(const char *cmd_name, const ImapResponse *resp);

/* Raw I/O on a stream (TLS or not, compressed or not), blocking or not
 * depending on the socket. Return > 0: bytes moved; 0: end of stream
 * (recv only); -1: error set (IMAP_ERROR_CONNECTION_LOST); -2: would
 * block or timed out, and *out_want_other says the SSL layer waits for
 * the other direction. After -2 from send, the next send starts with the
 * same bytes (what was deflated of them is still going out). */
gssize imap_stream_recv(ImapStream *stream, void *buf, gsize len,
			gboolean *out_want_other, GError **error);
gssize imap_stream_send(ImapStream *stream, const void *buf, gsize len,
			gboolean *out_want_other, GError **error);

/* ---- ImapConn -------------------------------------------------------- */

typedef struct ImapConn ImapConn;

typedef struct {
	/* An untagged response (transfer full). @cmd_data: the oldest
	 * command in flight, or NULL when none. BYE is not passed on: the
	 * connection drops instead. */
	void (*untagged)(ImapConn *conn, gpointer cmd_data, ImapResponse *resp,
			 gpointer user_data);
	/* The tagged reply (transfer full) of @cmd_data, whatever its
	 * status. The command is no longer the connection's. */
	void (*tagged)(ImapConn *conn, gpointer cmd_data, ImapResponse *resp,
		       gpointer user_data);
	/* The connection is dead (drop, BYE, protocol error, timeout).
	 * @unfinished holds the cmd_data of every command without a tagged
	 * reply, oldest first; the handler takes them (the queue itself is
	 * borrowed). Runs from its own idle callback, never from inside
	 * another ImapConn call, so the handler may imap_conn_free(). */
	void (*lost)(ImapConn *conn, const GError *error, GQueue *unfinished,
		     gpointer user_data);
} ImapConnHandlers;

/* Takes @stream (transfer full) and starts serving it on @context.
 * @depth: commands in flight at most (>= 1). @handlers is copied. */
ImapConn *imap_conn_new(ImapStream *stream, GMainContext *context, guint depth,
			const ImapConnHandlers *handlers, gpointer user_data);

/* Closes the connection without calling any handler; first writes a
 * LOGOUT if @logout (best effort, never waits). The cmd_data of commands
 * not finished are appended to @out_unfinished if non-NULL. NULL-safe. */
void imap_conn_close(ImapConn *conn, gboolean logout, GQueue *out_unfinished);
void imap_conn_free(ImapConn *conn); /* imap_conn_close(conn, FALSE, NULL) */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImapConn, imap_conn_free)

/* Queues @cmd (borrowed: must stay valid until its tagged or lost
 * handler) to be sent after the ones queued before. Never calls a handler
 * from inside. */
void imap_conn_send(ImapConn *conn, const ImapCommand *cmd, gpointer cmd_data);

/* Calls @func(cmd_data, @user_data) for every command in flight, oldest
 * first. */
void imap_conn_foreach_in_flight(ImapConn *conn, GFunc func,
				 gpointer user_data);
/* Commands queued or in flight. */
guint imap_conn_outstanding(const ImapConn *conn);
/* TRUE if another command may be queued without exceeding the depth. */
gboolean imap_conn_has_room(const ImapConn *conn);
/* FALSE once the connection has died (the lost handler is pending). */
gboolean imap_conn_is_alive(const ImapConn *conn);

#endif

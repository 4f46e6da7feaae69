/* imap/conn.c — one IMAP connection on the imap-io thread.
 *
 * Owns the stream (socket, SSL object, parser) and two queues: `pending`
 * (not sent yet) and `in_flight` (sent, waiting for the tagged reply).
 * Runs only on the imap-io thread, so nothing here locks.
 *
 * One custom GSource per connection watches the socket and carries a ready
 * time, which serves three purposes: "dispatch soon" after a command is
 * queued (sending happens from the source, never from inside
 * imap_conn_send), "dispatch again" when OpenSSL still holds decrypted
 * bytes (SSL_pending: poll() cannot see them), and the silence deadline
 * while commands are outstanding.
 *
 * Commands are held in `pending` rather than written ahead into the socket,
 * so nothing is sent behind a command that waits for a '+' continuation
 * (a synchronising literal), and the pipeline depth is respected. A
 * failure never calls the owner from the middle of a dispatch: the
 * connection marks itself dead and reports `lost` from an idle callback,
 * so the owner may free it there.
 */
#include "imap/conn.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "imap/caps.h"
#include "imap/error.h"

#define CONN_READ_CHUNK		(256 * 1024)
#define CONN_READS_PER_DISPATCH 4
/* Bytes sent per turn before other connections get theirs: a big APPEND
 * must not hold up every other command. */
#define CONN_WRITE_PER_TURN (1024 * 1024)
#define LITERAL_MINUS_MAX   4096 /* RFC 7888 §4 */

/* ---- wire helpers ---------------------------------------------------- */

GPtrArray *imap_wire_segments(const ImapCommand *cmd, const char *tag,
			      guint caps)
{
	GPtrArray *segs =
		g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	GByteArray *cur = g_byte_array_new();
	guint n = imap_command_n_parts(cmd);

	g_byte_array_append(cur, (const guint8 *)tag, (guint)strlen(tag));
	g_byte_array_append(cur, (const guint8 *)" ", 1);
	for (guint i = 0; i < n; i++) {
		const ImapCommandPart *part = imap_command_part(cmd, i);
		char hdr[48];
		gsize len;
		gboolean nonsync;

		g_byte_array_append(cur, (const guint8 *)part->text,
				    (guint)part->text_len);
		if (part->literal == NULL)
			continue;
		len = g_bytes_get_size(part->literal);
		nonsync = (caps & IMAP_CAP_LITERALPLUS) ||
			  ((caps & IMAP_CAP_LITERALMINUS) &&
			   len <= LITERAL_MINUS_MAX);
		g_snprintf(hdr, sizeof(hdr), "{%" G_GSIZE_FORMAT "%s}\r\n", len,
			   nonsync ? "+" : "");
		g_byte_array_append(cur, (const guint8 *)hdr,
				    (guint)strlen(hdr));
		if (!nonsync) {
			g_ptr_array_add(segs, g_byte_array_free_to_bytes(cur));
			cur = g_byte_array_new();
		}
		g_byte_array_append(cur, g_bytes_get_data(part->literal, NULL),
				    (guint)len);
	}
	g_byte_array_append(cur, (const guint8 *)"\r\n", 2);
	g_ptr_array_add(segs, g_byte_array_free_to_bytes(cur));
	return segs;
}

void imap_wire_trace_command(guint conn_no, const char *tag,
			     const ImapCommand *cmd)
{
	g_autofree char *text = imap_command_describe(cmd);

	g_debug("[conn %u] C: %s %s", conn_no, tag, text);
}

static const char *const status_names[] = {
	[IMAP_STATUS_NONE] = "",   [IMAP_STATUS_OK] = "OK",
	[IMAP_STATUS_NO] = "NO",   [IMAP_STATUS_BAD] = "BAD",
	[IMAP_STATUS_BYE] = "BYE", [IMAP_STATUS_PREAUTH] = "PREAUTH",
};

static const char *status_name(ImapStatus st)
{
	return (guint)st < G_N_ELEMENTS(status_names) ? status_names[st] : "?";
}

static void describe_value(GString *s, const ImapValue *v)
{
	if (v == NULL)
		return;
	switch (v->type) {
	case IMAP_VALUE_ATOM:
		g_string_append(s, v->str);
		break;
	case IMAP_VALUE_NIL:
		g_string_append(s, "NIL");
		break;
	case IMAP_VALUE_STRING:
		if (v->len > 200 || memchr(v->str, '\n', v->len) != NULL ||
		    memchr(v->str, '\0', v->len) != NULL) {
			g_string_append_printf(s, "{%" G_GSIZE_FORMAT " bytes}",
					       v->len);
			break;
		}
		g_string_append_c(s, '"');
		for (gsize i = 0; i < v->len; i++) {
			if (v->str[i] == '"' || v->str[i] == '\\')
				g_string_append_c(s, '\\');
			g_string_append_c(s, v->str[i]);
		}
		g_string_append_c(s, '"');
		break;
	case IMAP_VALUE_SPOOLED:
		g_string_append_printf(s, "{%" G_GSIZE_FORMAT " bytes}",
				       v->len);
		break;
	case IMAP_VALUE_LIST:
		g_string_append_c(s, '(');
		for (guint i = 0; v->items != NULL && i < v->items->len; i++) {
			if (i > 0)
				g_string_append_c(s, ' ');
			describe_value(s, v->items->pdata[i]);
		}
		g_string_append_c(s, ')');
		break;
	}
}

void imap_wire_trace_response(guint conn_no, const ImapResponse *resp)
{
	g_autoptr(GString) s = g_string_new(NULL);

	switch (resp->kind) {
	case IMAP_RESPONSE_CONTINUATION:
		g_string_append_printf(s, "+ %s", resp->text);
		break;
	case IMAP_RESPONSE_TAGGED:
	case IMAP_RESPONSE_UNTAGGED:
		g_string_append(s, resp->kind == IMAP_RESPONSE_TAGGED
					   ? resp->tag
					   : "*");
		if (resp->status != IMAP_STATUS_NONE) {
			g_autofree char *st = imap_wire_status_text(resp);
			g_string_append_printf(s, " %s", st);
			break;
		}
		if (resp->has_number)
			g_string_append_printf(s, " %u", resp->number);
		g_string_append_printf(s, " %s", resp->name);
		for (guint i = 0; i < imap_value_n_items(resp->args); i++) {
			g_string_append_c(s, ' ');
			describe_value(s, imap_value_item(resp->args, i));
		}
		break;
	}
	g_debug("[conn %u] S: %s", conn_no, s->str);
}

char *imap_wire_status_text(const ImapResponse *resp)
{
	GString *s = g_string_new(status_name(resp->status));

	if (resp->code != NULL) {
		g_string_append_printf(s, " [%s", resp->code);
		if (resp->code_arg != NULL && resp->code_arg[0] != '\0')
			g_string_append_printf(s, " %s", resp->code_arg);
		g_string_append_c(s, ']');
	}
	if (resp->text != NULL && resp->text[0] != '\0')
		g_string_append_printf(s, " %s", resp->text);
	return g_string_free(s, FALSE);
}

GError *imap_wire_status_error(const char *cmd_name, const ImapResponse *resp)
{
	g_autofree char *text = imap_wire_status_text(resp);
	ImapErrorCode code = imap_error_code_from_response(
		resp->code, resp->status == IMAP_STATUS_BAD);

	return g_error_new(IMAPFS_IMAP_ERROR, code, "%s: %s", cmd_name, text);
}

/* ---- ImapConn -------------------------------------------------------- */

typedef struct {
	const ImapCommand *cmd; /* borrowed */
	gpointer data;		/* the owner's */
	char *tag;
	GPtrArray *segs; /* GBytes; NULL until sent */
	guint next_seg;
} ConnCmd;

typedef struct {
	GSource base;
	ImapConn *conn;
} ConnSource;

struct ImapConn {
	ImapStream *stream;
	GMainContext *context;
	GSource *source; /* ConnSource */
	gpointer fd_tag;
	GSource *lost_source; /* set once dead */
	ImapConnHandlers handlers;
	gpointer user_data;
	guint depth;

	GQueue pending;	  /* ConnCmd *, not sent */
	GQueue in_flight; /* ConnCmd *, oldest first */
	ConnCmd *sending; /* in flight, waits for '+' for more */
	GByteArray *outbuf;
	gsize out_pos; /* outbuf's bytes before this are sent */
	guint8 *readbuf;
	gboolean read_wants_write;
	gboolean write_wants_read; /* SSL: then G_IO_OUT would spin */
	gboolean more_to_read;
	gboolean more_to_write; /* out of turn with bytes to send */
	gint64 last_activity;	/* monotonic us */
	char *bye;		/* text of an untagged BYE */

	gboolean dead;
	GError *error; /* why dead */
};

static void conn_cmd_free(ConnCmd *c)
{
	if (c == NULL)
		return;
	g_free(c->tag);
	if (c->segs != NULL)
		g_ptr_array_unref(c->segs);
	g_free(c);
}

static gboolean conn_report_lost(gpointer data)
{
	ImapConn *conn = data;
	GQueue unfinished = G_QUEUE_INIT;
	ConnCmd *c;

	g_clear_pointer(&conn->lost_source, g_source_unref);
	while ((c = g_queue_pop_head(&conn->in_flight)) != NULL) {
		g_queue_push_tail(&unfinished, c->data);
		conn_cmd_free(c);
	}
	while ((c = g_queue_pop_head(&conn->pending)) != NULL) {
		g_queue_push_tail(&unfinished, c->data);
		conn_cmd_free(c);
	}
	conn->sending = NULL;
	/* May free conn. */
	conn->handlers.lost(conn, conn->error, &unfinished, conn->user_data);
	g_queue_clear(&unfinished);
	return G_SOURCE_REMOVE;
}

/* Marks the connection dead (takes @error) and reports it from an idle
 * callback. Callers return right away. */
static void conn_fail(ImapConn *conn, GError *error)
{
	if (conn->dead) {
		g_error_free(error);
		return;
	}
	conn->dead = TRUE;
	conn->error = error;
	g_debug("[conn %u] dropped: %s", conn->stream->conn_no, error->message);
	if (conn->source != NULL) {
		g_source_destroy(conn->source);
		g_clear_pointer(&conn->source, g_source_unref);
	}
	conn->lost_source = g_idle_source_new();
	g_source_set_priority(conn->lost_source, G_PRIORITY_DEFAULT);
	g_source_set_callback(conn->lost_source, conn_report_lost, conn, NULL);
	g_source_attach(conn->lost_source, conn->context);
}

static void conn_fail_closed(ImapConn *conn)
{
	if (conn->bye != NULL)
		conn_fail(conn, g_error_new(IMAPFS_IMAP_ERROR,
					    IMAP_ERROR_CONNECTION_LOST,
					    "%s closed the connection: %s",
					    conn->stream->host, conn->bye));
	else
		conn_fail(conn, g_error_new(IMAPFS_IMAP_ERROR,
					    IMAP_ERROR_CONNECTION_LOST,
					    "%s closed the connection",
					    conn->stream->host));
}

static gsize out_left(const ImapConn *conn)
{
	return conn->outbuf->len - conn->out_pos;
}

static void conn_append_segment(ImapConn *conn, ConnCmd *c)
{
	GBytes *seg = c->segs->pdata[c->next_seg++];
	gsize len;
	const guint8 *data = g_bytes_get_data(seg, &len);

	/* Sent bytes go once they are half the buffer: each byte is moved
	 * a bounded number of times. */
	if (conn->out_pos > 0 && conn->out_pos >= conn->outbuf->len / 2) {
		g_byte_array_remove_range(conn->outbuf, 0,
					  (guint)conn->out_pos);
		conn->out_pos = 0;
	}
	g_byte_array_append(conn->outbuf, data, (guint)len);
	conn->sending = c->next_seg < c->segs->len ? c : NULL;
}

/* Moves commands from pending into the output while the pipeline has
 * room and no command waits for a continuation. */
static void conn_fill(ImapConn *conn)
{
	while (conn->sending == NULL && conn->pending.length > 0 &&
	       conn->in_flight.length < conn->depth) {
		ConnCmd *c = g_queue_pop_head(&conn->pending);
		ImapStream *s = conn->stream;

		c->tag = g_strdup_printf("A%u", s->next_tag++);
		c->segs = imap_wire_segments(c->cmd, c->tag, s->caps);
		c->next_seg = 0;
		if (s->trace)
			imap_wire_trace_command(s->conn_no, c->tag, c->cmd);
		if (conn->in_flight.length == 0)
			conn->last_activity = g_get_monotonic_time();
		g_queue_push_tail(&conn->in_flight, c);
		conn_append_segment(conn, c);
	}
}

static void conn_flush(ImapConn *conn)
{
	gsize sent = 0;

	conn_fill(conn);
	conn->more_to_write = FALSE;
	while (out_left(conn) > 0) {
		GError *error = NULL;
		gboolean other;
		gssize n;

		if (sent >= CONN_WRITE_PER_TURN) {
			conn->more_to_write = TRUE;
			return;
		}
		n = imap_stream_send(conn->stream,
				     conn->outbuf->data + conn->out_pos,
				     out_left(conn), &other, &error);
		if (n == -1) {
			conn_fail(conn, error);
			return;
		}
		conn->write_wants_read = n == -2 && other;
		if (n == -2)
			return;
		conn->out_pos += (gsize)n;
		sent += (gsize)n;
		if (out_left(conn) == 0) {
			g_byte_array_set_size(conn->outbuf, 0);
			conn->out_pos = 0;
		}
		conn->last_activity = g_get_monotonic_time();
	}
}

static void conn_protocol_error(ImapConn *conn, const char *why)
{
	conn_fail(conn, g_error_new(IMAPFS_IMAP_ERROR, IMAP_ERROR_PROTOCOL,
				    "protocol error from %s: %s",
				    conn->stream->host, why));
}

static void conn_handle(ImapConn *conn, ImapResponse *resp)
{
	if (conn->stream->trace)
		imap_wire_trace_response(conn->stream->conn_no, resp);

	switch (resp->kind) {
	case IMAP_RESPONSE_CONTINUATION:
		imap_response_free(resp);
		if (conn->sending == NULL) {
			conn_protocol_error(conn, "a continuation request "
						  "nothing waited for");
			return;
		}
		conn_append_segment(conn, conn->sending);
		return;
	case IMAP_RESPONSE_TAGGED: {
		ConnCmd *c = NULL;
		for (GList *l = conn->in_flight.head; l != NULL; l = l->next) {
			ConnCmd *x = l->data;
			if (strcmp(x->tag, resp->tag) == 0) {
				c = x;
				g_queue_delete_link(&conn->in_flight, l);
				break;
			}
		}
		if (c == NULL) {
			g_autofree char *why = g_strdup_printf(
				"a reply to tag %s, which is not in flight",
				resp->tag);
			imap_response_free(resp);
			conn_protocol_error(conn, why);
			return;
		}
		/* A reply before all literals went out: send no more. */
		if (conn->sending == c)
			conn->sending = NULL;
		gpointer data = c->data;
		conn_cmd_free(c);
		conn->handlers.tagged(conn, data, resp, conn->user_data);
		return;
	}
	case IMAP_RESPONSE_UNTAGGED:
		if (resp->status == IMAP_STATUS_BYE) {
			g_free(conn->bye);
			conn->bye = g_strdup(resp->text);
			imap_response_free(resp);
			conn_fail_closed(conn);
			return;
		} else {
			ConnCmd *oldest = g_queue_peek_head(&conn->in_flight);
			guint caps;
			if (resp->name != NULL &&
			    g_str_equal(resp->name, "CAPABILITY") &&
			    imap_caps_from_response(resp, &caps))
				conn->stream->caps = caps;
			conn->handlers.untagged(conn,
						oldest ? oldest->data : NULL,
						resp, conn->user_data);
		}
		return;
	}
	imap_response_free(resp);
}

/* Feeds @len bytes to the parser and handles what comes out. */
static void conn_feed(ImapConn *conn, const guint8 *data, gsize len)
{
	gsize off = 0;

	while (off < len && !conn->dead) {
		ImapResponse *resp = NULL;
		gsize used = 0;
		ImapParseStatus st =
			imap_parser_feed(conn->stream->parser, data + off,
					 len - off, &used, &resp);
		off += used;
		if (st == IMAP_PARSE_ERROR) {
			const ImapParser *parser = conn->stream->parser;

			/* The spool's own failure is not the server's. */
			if (imap_parser_error_is_local(parser))
				conn_fail(conn,
					  g_error_new_literal(
						  IMAPFS_IMAP_ERROR,
						  IMAP_ERROR_PROTOCOL,
						  imap_parser_error(parser)));
			else
				conn_protocol_error(conn,
						    imap_parser_error(parser));
			return;
		}
		if (st == IMAP_PARSE_NEED_MORE)
			break;
		conn_handle(conn, resp);
	}
}

static void conn_read(ImapConn *conn)
{
	ImapStream *s = conn->stream;

	conn->read_wants_write = FALSE;
	conn->more_to_read = FALSE;
	if (s->inbuf->len > 0) {
		g_autoptr(GByteArray) left = s->inbuf;
		s->inbuf = g_byte_array_new();
		conn_feed(conn, left->data, left->len);
		if (conn->dead)
			return;
	}
	for (guint i = 0; i < CONN_READS_PER_DISPATCH; i++) {
		GError *error = NULL;
		gboolean other = FALSE;
		gsize filled = 0;
		gssize n;

		/* A TLS record is at most 16 KiB: gather several before
		 * parsing, so a big literal reaches its spool file in few
		 * writes. */
		do {
			n = imap_stream_recv(s, conn->readbuf + filled,
					     CONN_READ_CHUNK - filled, &other,
					     &error);
			if (n > 0)
				filled += n;
		} while (n > 0 && filled < CONN_READ_CHUNK);
		if (filled > 0) {
			conn->last_activity = g_get_monotonic_time();
			conn_feed(conn, conn->readbuf, filled);
			if (conn->dead) {
				g_clear_error(&error);
				return;
			}
		}
		if (n == -1) {
			conn_fail(conn, error);
			return;
		}
		if (n == -2) {
			conn->read_wants_write = other;
			return;
		}
		if (n == 0) {
			conn_fail_closed(conn);
			return;
		}
	}
	/* Out of turns with data left: come back after other sources. */
	conn->more_to_read = TRUE;
}

static void conn_update_source(ImapConn *conn)
{
	GIOCondition events = G_IO_IN;
	gint64 ready = -1;

	if (conn->dead || conn->source == NULL)
		return;
	if ((out_left(conn) > 0 && !conn->write_wants_read) ||
	    conn->read_wants_write)
		events |= G_IO_OUT;
	g_source_modify_unix_fd(conn->source, conn->fd_tag, events);
	if (conn->more_to_read || conn->more_to_write ||
	    imap_stream_buffered(conn->stream))
		ready = 0;
	else if (conn->in_flight.length > 0 && conn->stream->timeout_s > 0)
		ready = conn->last_activity +
			(gint64)conn->stream->timeout_s * G_USEC_PER_SEC;
	g_source_set_ready_time(conn->source, ready);
}

static gboolean conn_dispatch(GSource *source, GSourceFunc cb, gpointer ud)
{
	ImapConn *conn = ((ConnSource *)source)->conn;

	conn_flush(conn);
	if (conn->dead)
		return G_SOURCE_REMOVE;
	conn_read(conn);
	if (conn->dead)
		return G_SOURCE_REMOVE;
	conn_flush(conn);
	if (conn->dead)
		return G_SOURCE_REMOVE;
	if (conn->in_flight.length > 0 && conn->stream->timeout_s > 0 &&
	    !conn->more_to_read &&
	    g_get_monotonic_time() - conn->last_activity >=
		    (gint64)conn->stream->timeout_s * G_USEC_PER_SEC) {
		conn_fail(conn,
			  g_error_new(IMAPFS_IMAP_ERROR, IMAP_ERROR_TIMEOUT,
				      "%s did not answer within %u s",
				      conn->stream->host,
				      conn->stream->timeout_s));
		return G_SOURCE_REMOVE;
	}
	conn_update_source(conn);
	return G_SOURCE_CONTINUE;
}

static const GSourceFuncs conn_source_funcs = {
	.dispatch = conn_dispatch,
};

ImapConn *imap_conn_new(ImapStream *stream, GMainContext *context, guint depth,
			const ImapConnHandlers *handlers, gpointer user_data)
{
	ImapConn *conn = g_new0(ImapConn, 1);
	int flags;

	conn->stream = stream;
	conn->context = g_main_context_ref(context);
	conn->handlers = *handlers;
	conn->user_data = user_data;
	conn->depth = MAX(depth, 1);
	conn->outbuf = g_byte_array_new();
	conn->readbuf = g_malloc(CONN_READ_CHUNK);
	conn->last_activity = g_get_monotonic_time();

	flags = fcntl(stream->fd, F_GETFL);
	fcntl(stream->fd, F_SETFL, flags | O_NONBLOCK);
	if (stream->ssl != NULL)
		SSL_set_mode(stream->ssl,
			     SSL_MODE_ENABLE_PARTIAL_WRITE |
				     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

	conn->source = g_source_new((GSourceFuncs *)&conn_source_funcs,
				    sizeof(ConnSource));
	((ConnSource *)conn->source)->conn = conn;
	g_source_set_static_name(conn->source, "imap-conn");
	conn->fd_tag = g_source_add_unix_fd(conn->source, stream->fd, G_IO_IN);
	/* Bytes read during login may already hold a response. */
	g_source_set_ready_time(conn->source,
				imap_stream_buffered(stream) ? 0 : -1);
	g_source_attach(conn->source, context);
	return conn;
}

void imap_conn_close(ImapConn *conn, gboolean logout, GQueue *out_unfinished)
{
	ConnCmd *c;

	if (conn == NULL)
		return;
	if (logout && !conn->dead && conn->sending == NULL) {
		/* Best effort: one non-blocking attempt, no waiting. */
		g_autofree char *line = g_strdup_printf(
			"A%u LOGOUT\r\n", conn->stream->next_tag++);
		GError *error = NULL;
		gboolean other;
		gssize n = 0;

		if (out_left(conn) > 0)
			n = imap_stream_send(conn->stream,
					     conn->outbuf->data + conn->out_pos,
					     out_left(conn), &other, &error);
		g_clear_error(&error);
		/* Unless what was queued went out whole, LOGOUT would land
		 * inside it. */
		if (n >= 0 && (gsize)n == out_left(conn)) {
			if (conn->stream->trace)
				g_debug("[conn %u] C: %s",
					conn->stream->conn_no, "LOGOUT");
			imap_stream_send(conn->stream, line, strlen(line),
					 &other, &error);
			g_clear_error(&error);
		}
	}
	if (conn->source != NULL) {
		g_source_destroy(conn->source);
		g_clear_pointer(&conn->source, g_source_unref);
	}
	if (conn->lost_source != NULL) {
		g_source_destroy(conn->lost_source);
		g_clear_pointer(&conn->lost_source, g_source_unref);
	}
	while ((c = g_queue_pop_head(&conn->in_flight)) != NULL) {
		if (out_unfinished != NULL)
			g_queue_push_tail(out_unfinished, c->data);
		conn_cmd_free(c);
	}
	while ((c = g_queue_pop_head(&conn->pending)) != NULL) {
		if (out_unfinished != NULL)
			g_queue_push_tail(out_unfinished, c->data);
		conn_cmd_free(c);
	}
	imap_stream_free(conn->stream);
	g_main_context_unref(conn->context);
	g_byte_array_unref(conn->outbuf);
	g_free(conn->readbuf);
	g_free(conn->bye);
	g_clear_error(&conn->error);
	g_free(conn);
}

void imap_conn_free(ImapConn *conn)
{
	imap_conn_close(conn, FALSE, NULL);
}

void imap_conn_send(ImapConn *conn, const ImapCommand *cmd, gpointer cmd_data)
{
	ConnCmd *c = g_new0(ConnCmd, 1);

	c->cmd = cmd;
	c->data = cmd_data;
	g_queue_push_tail(&conn->pending, c);
	if (conn->source != NULL)
		g_source_set_ready_time(conn->source, 0);
}

void imap_conn_foreach_in_flight(ImapConn *conn, GFunc func, gpointer user_data)
{
	for (GList *l = conn->in_flight.head; l; l = l->next)
		func(((ConnCmd *)l->data)->data, user_data);
}

guint imap_conn_outstanding(const ImapConn *conn)
{
	return conn->pending.length + conn->in_flight.length;
}

gboolean imap_conn_has_room(const ImapConn *conn)
{
	return !conn->dead && imap_conn_outstanding(conn) < conn->depth;
}

gboolean imap_conn_is_alive(const ImapConn *conn)
{
	return !conn->dead;
}

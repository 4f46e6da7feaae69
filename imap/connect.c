/* imap/connect.c — one logged-in connection, the blocking way.
 *
 * Everything up to the authenticated state happens here, on the caller's
 * thread, with plain blocking calls: the socket gets SO_RCVTIMEO and
 * SO_SNDTIMEO of the configured timeout, so every step is bounded. Only
 * the TCP connect itself is non-blocking, to bound it with poll().
 *
 * The stream carries its parser and the bytes already received, so that
 * imap/conn.c can take it over in mid-stream. STARTTLS discards what the
 * server said before the handshake (capabilities, and any bytes after the
 * tagged OK, which would be an injection: RFC 9051 §11.1), and no
 * plaintext fallback is ever taken.
 */
#include "imap/connect.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "imap/auth.h"
#include "imap/caps.h"
#include "imap/conn.h"
#include "imap/error.h"
#include "imap/tls.h"

struct ImapConnectAbort {
	GMutex lock;
	gboolean fired;
	GArray *fds; /* int: the sockets of attempts under way */
};

ImapConnectAbort *imap_connect_abort_new(void)
{
	ImapConnectAbort *abort = g_new0(ImapConnectAbort, 1);

	g_mutex_init(&abort->lock);
	abort->fds = g_array_new(FALSE, FALSE, sizeof(int));
	return abort;
}

void imap_connect_abort_fire(ImapConnectAbort *abort)
{
	g_mutex_lock(&abort->lock);
	abort->fired = TRUE;
	for (guint i = 0; i < abort->fds->len; i++)
		shutdown(g_array_index(abort->fds, int, i), SHUT_RDWR);
	g_mutex_unlock(&abort->lock);
}

void imap_connect_abort_free(ImapConnectAbort *abort)
{
	if (abort == NULL)
		return;
	g_array_unref(abort->fds);
	g_mutex_clear(&abort->lock);
	g_free(abort);
}

/* FALSE if @abort has fired: the attempt is not to begin. */
static gboolean abort_watch(ImapConnectAbort *abort, int fd)
{
	gboolean fired;

	if (abort == NULL)
		return TRUE;
	g_mutex_lock(&abort->lock);
	fired = abort->fired;
	if (!fired)
		g_array_append_val(abort->fds, fd);
	g_mutex_unlock(&abort->lock);
	return !fired;
}

/* Before @fd is closed or leaves the connect phase. */
static void abort_unwatch(ImapConnectAbort *abort, int fd)
{
	if (abort == NULL)
		return;
	g_mutex_lock(&abort->lock);
	for (guint i = 0; i < abort->fds->len; i++)
		if (g_array_index(abort->fds, int, i) == fd) {
			g_array_remove_index_fast(abort->fds, i);
			break;
		}
	g_mutex_unlock(&abort->lock);
}

static gboolean abort_fired(ImapConnectAbort *abort)
{
	gboolean fired;

	if (abort == NULL)
		return FALSE;
	g_mutex_lock(&abort->lock);
	fired = abort->fired;
	g_mutex_unlock(&abort->lock);
	return fired;
}

/* A socket connected to @ai, watched by @abort (nullable) until
 * abort_unwatch(); -1 with *out_errno. */
static int tcp_connect_one(const struct addrinfo *ai, guint timeout_s,
			   ImapConnectAbort *abort, int *out_errno)
{
	int fd = socket(ai->ai_family,
			ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			ai->ai_protocol);
	if (fd < 0) {
		*out_errno = errno;
		return -1;
	}
	if (!abort_watch(abort, fd)) {
		*out_errno = ECANCELED;
		close(fd);
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			*out_errno = errno;
			abort_unwatch(abort, fd);
			close(fd);
			return -1;
		}
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		int ms = timeout_s > 0 ? (int)MIN(timeout_s, 3600u) * 1000 : -1;
		int r;
		do
			r = poll(&pfd, 1, ms);
		while (r < 0 && errno == EINTR);
		if (r == 0) {
			*out_errno = ETIMEDOUT;
			abort_unwatch(abort, fd);
			close(fd);
			return -1;
		}
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		if (r < 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		if (soerr != 0) {
			*out_errno = soerr;
			abort_unwatch(abort, fd);
			close(fd);
			return -1;
		}
	}
	/* Back to blocking, bounded by the timeouts. */
	int flags = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	if (timeout_s > 0) {
		struct timeval tv = {.tv_sec = timeout_s};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Probes after a minute of quiet, not the system's two hours: a NAT
	 * or firewall that forgets idle connections then neither drops ours
	 * nor leaves the next command hanging until the timeout. Four
	 * unanswered probes, 15 s apart, close it; the pool opens another. */
	int idle = 60, interval = 15, count = 4;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
	return fd;
}

static int tcp_connect(const ImapConfig *cfg, ImapConnectAbort *abort,
		       GError **error)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_ADDRCONFIG};
	struct addrinfo *res = NULL;
	char port[8];
	int fd = -1, err = 0, r;

	g_snprintf(port, sizeof(port), "%u", cfg->port);
	r = getaddrinfo(cfg->host, port, &hints, &res);
	if (r != 0) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_CONNECT,
			    "cannot resolve %s: %s (check the host name)",
			    cfg->host,
			    r == EAI_SYSTEM ? g_strerror(errno)
					    : gai_strerror(r));
		return -1;
	}
	for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
		fd = tcp_connect_one(ai, cfg->timeout_s, abort, &err);
	freeaddrinfo(res);
	if (fd < 0) {
		if (err == ETIMEDOUT)
			g_set_error(error, IMAPFS_IMAP_ERROR,
				    IMAP_ERROR_CONNECT,
				    "cannot connect to %s:%u: no answer within "
				    "%u s",
				    cfg->host, cfg->port, cfg->timeout_s);
		else
			g_set_error(error, IMAPFS_IMAP_ERROR,
				    IMAP_ERROR_CONNECT,
				    "cannot connect to %s:%u: %s", cfg->host,
				    cfg->port, g_strerror(err));
	}
	return fd;
}

static char *ssl_error_reason(void)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	const char *r = last != 0 ? ERR_reason_error_string(last) : NULL;
	return g_strdup(r != NULL ? r : "unknown TLS error");
}

/* Sets the "connection failed" error for @errnum (0: closed). Returns -1. */
static gssize stream_failed(ImapStream *stream, int errnum, GError **error)
{
	g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_CONNECTION_LOST,
		    "connection to %s failed: %s", stream->host,
		    errnum != 0 ? g_strerror(errnum) : "closed");
	return -1;
}

/* What an SSL_read (@reading) or SSL_write that returned @n <= 0 means, in
 * the convention of imap_stream_recv() and imap_stream_send(). */
static gssize ssl_outcome(ImapStream *stream, int n, gboolean reading,
			  gboolean *out_want_other, GError **error)
{
	int err = SSL_get_error(stream->ssl, n);

	if (err == SSL_ERROR_ZERO_RETURN && reading)
		return 0;
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		/* TLS may need the other direction first (renegotiation,
		 * key update): the caller then polls for that one. */
		*out_want_other = (err == SSL_ERROR_WANT_WRITE) == reading;
		return -2;
	}
	if (err == SSL_ERROR_SYSCALL) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return -2;
		if (ERR_peek_error() == 0 && errno == 0 && reading)
			return 0;
		if (ERR_peek_error() == 0)
			return stream_failed(stream, errno, error);
	}
	{
		g_autofree char *why = ssl_error_reason();

		g_set_error(error, IMAPFS_IMAP_ERROR,
			    IMAP_ERROR_CONNECTION_LOST,
			    "TLS error on the connection to %s: %s",
			    stream->host, why);
	}
	return -1;
}

static gssize raw_recv(ImapStream *stream, void *buf, gsize len,
		       gboolean *out_want_other, GError **error)
{
	*out_want_other = FALSE;
	if (stream->ssl != NULL) {
		int n;

		ERR_clear_error();
		n = SSL_read(stream->ssl, buf, (int)MIN(len, G_MAXINT));
		return n > 0 ? n
			     : ssl_outcome(stream, n, TRUE, out_want_other,
					   error);
	}
	for (;;) {
		ssize_t n = recv(stream->fd, buf, len, 0);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -2;
		return stream_failed(stream, errno, error);
	}
}

/* SSL_write() on a socket whose peer has gone raises SIGPIPE; keep it
 * from killing the process without touching the process-wide disposition:
 * block it on this thread for the call and consume a pending one. */
static int ssl_write_nosigpipe(SSL *ssl, const void *buf, int len)
{
	sigset_t pipe_set, old;
	int n, saved;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	n = SSL_write(ssl, buf, len);
	saved = errno;
	if (n <= 0 && saved == EPIPE && !sigismember(&old, SIGPIPE)) {
		struct timespec zero = {0, 0};
		sigtimedwait(&pipe_set, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return n;
}

static gssize raw_send(ImapStream *stream, const void *buf, gsize len,
		       gboolean *out_want_other, GError **error)
{
	*out_want_other = FALSE;
	if (len == 0)
		return 0;
	if (stream->ssl != NULL) {
		int n;

		ERR_clear_error();
		n = ssl_write_nosigpipe(stream->ssl, buf,
					(int)MIN(len, G_MAXINT));
		return n > 0 ? n
			     : ssl_outcome(stream, n, FALSE, out_want_other,
					   error);
	}
	for (;;) {
		ssize_t n = send(stream->fd, buf, len, MSG_NOSIGNAL);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -2;
		return stream_failed(stream, errno, error);
	}
}

/* Set once compression failed on a connection (COMPRESS unanswered, or
 * data that does not inflate): connections are made without it from then
 * on. */
static gint compress_failed;

static void give_up_compress(ImapStream *stream, const char *why)
{
	if (!g_atomic_int_get(&compress_failed))
		g_message("%s; connecting to %s without compression from now "
			  "on (-o nocompress says so from the start)",
			  why, stream->host);
	g_atomic_int_set(&compress_failed, 1);
}

gssize imap_stream_recv(ImapStream *stream, void *buf, gsize len,
			gboolean *out_want_other, GError **error)
{
	if (stream->z == NULL)
		return raw_recv(stream, buf, len, out_want_other, error);
	for (;;) {
		gssize n = imap_compress_inflate(stream->z, buf, len, error);
		gsize room;
		guint8 *space;

		space = imap_compress_in_space(stream->z, &room);
		if (n == 0 && room == 0) {
			g_set_error(error, IMAPFS_IMAP_ERROR,
				    IMAP_ERROR_CONNECTION_LOST,
				    "the server's compressed data from %s "
				    "does not inflate",
				    stream->host);
			n = -1;
		}
		if (n == -1)
			give_up_compress(stream, "compressed data from the "
						 "server did not inflate");
		if (n != 0)
			return n;
		n = raw_recv(stream, space, room, out_want_other, error);
		if (n <= 0)
			return n;
		imap_compress_in_added(stream->z, (gsize)n);
	}
}

/* What one compressed send deflates at most. */
#define DEFLATE_CHUNK (256 * 1024)

gssize imap_stream_send(ImapStream *stream, const void *buf, gsize len,
			gboolean *out_want_other, GError **error)
{
	gsize taken, left;
	const guint8 *out;

	if (stream->z == NULL)
		return raw_send(stream, buf, len, out_want_other, error);
	*out_want_other = FALSE;
	if (len == 0)
		return 0;
	if (stream->z_taken == 0) {
		stream->z_taken = MIN(len, DEFLATE_CHUNK);
		imap_compress_deflate(stream->z, buf, stream->z_taken);
	}
	while ((out = imap_compress_out(stream->z, &left)), left > 0) {
		gssize n = raw_send(stream, out, left, out_want_other, error);

		if (n < 0)
			return n;
		imap_compress_consume(stream->z, (gsize)n);
	}
	taken = stream->z_taken;
	stream->z_taken = 0;
	return (gssize)taken;
}

static gboolean stream_write_all(ImapStream *stream, GBytes *bytes,
				 GError **error)
{
	gsize len;
	const guint8 *p = g_bytes_get_data(bytes, &len);

	while (len > 0) {
		gboolean other;
		gssize n = imap_stream_send(stream, p, len, &other, error);
		if (n == -1)
			return FALSE;
		if (n == -2) {
			g_set_error(error, IMAPFS_IMAP_ERROR,
				    IMAP_ERROR_TIMEOUT,
				    "sending to %s timed out after %u s",
				    stream->host, stream->timeout_s);
			return FALSE;
		}
		p += n;
		len -= (gsize)n;
	}
	return TRUE;
}

/* Blocks for the next complete response. (transfer full) */
static ImapResponse *stream_read_response(ImapStream *stream, GError **error)
{
	guint8 buf[16384];

	for (;;) {
		if (stream->inbuf->len > 0) {
			ImapResponse *resp = NULL;
			gsize used = 0;
			ImapParseStatus st = imap_parser_feed(
				stream->parser, stream->inbuf->data,
				stream->inbuf->len, &used, &resp);
			g_byte_array_remove_range(
				stream->inbuf, 0,
				(guint)MIN(used, stream->inbuf->len));
			if (st == IMAP_PARSE_ERROR) {
				g_set_error(error, IMAPFS_IMAP_ERROR,
					    IMAP_ERROR_PROTOCOL,
					    "%s sent a response that cannot "
					    "be parsed: %s",
					    stream->host,
					    imap_parser_error(stream->parser));
				return NULL;
			}
			if (st == IMAP_PARSE_RESPONSE) {
				if (stream->trace)
					imap_wire_trace_response(
						stream->conn_no, resp);
				return resp;
			}
		}
		gboolean other;
		gssize n = imap_stream_recv(stream, buf, sizeof(buf), &other,
					    error);
		if (n == -1)
			return NULL;
		if (n == -2) {
			g_set_error(error, IMAPFS_IMAP_ERROR,
				    IMAP_ERROR_TIMEOUT,
				    "%s did not answer within %u s",
				    stream->host, stream->timeout_s);
			return NULL;
		}
		if (n == 0) {
			g_set_error(error, IMAPFS_IMAP_ERROR,
				    IMAP_ERROR_CONNECTION_LOST,
				    "%s closed the connection", stream->host);
			return NULL;
		}
		g_byte_array_append(stream->inbuf, buf, (guint)n);
	}
}

static void note_caps(ImapStream *stream, const ImapResponse *resp)
{
	guint caps;

	if (resp->status != IMAP_STATUS_NO && resp->status != IMAP_STATUS_BAD &&
	    imap_caps_from_response(resp, &caps))
		stream->caps = caps;
}

char *imap_stream_start(ImapStream *stream, ImapCommand *cmd, GError **error)
{
	g_autoptr(ImapCommand) owned = cmd;
	g_autoptr(GPtrArray) segs = NULL;
	g_autofree char *tag = NULL;

	if (cmd == NULL) /* not built: @error says why */
		return NULL;
	tag = g_strdup_printf("A%u", stream->next_tag++);
	segs = imap_wire_segments(cmd, tag, stream->caps);
	if (segs->len != 1) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_INVALID,
			    "%s needs continuations; use imap_stream_run",
			    imap_command_name(cmd));
		return NULL;
	}
	if (stream->trace)
		imap_wire_trace_command(stream->conn_no, tag, cmd);
	if (!stream_write_all(stream, segs->pdata[0], error))
		return NULL;
	return g_steal_pointer(&tag);
}

gboolean imap_stream_send_line(ImapStream *stream, const char *line,
			       GError **error)
{
	g_autoptr(GBytes) bytes = g_bytes_new(line, strlen(line));

	if (stream->trace)
		g_debug("[conn %u] C: %.*s", stream->conn_no,
			(int)strcspn(line, "\r\n"), line);
	return stream_write_all(stream, bytes, error);
}

ImapResponse *imap_stream_read(ImapStream *stream, GError **error)
{
	return stream_read_response(stream, error);
}

gboolean imap_stream_buffered(const ImapStream *stream)
{
	return stream->inbuf->len > 0 ||
	       (stream->ssl != NULL && SSL_pending(stream->ssl) > 0) ||
	       (stream->z != NULL && imap_compress_has_input(stream->z));
}

int imap_stream_fd(const ImapStream *stream)
{
	return stream->fd;
}

gboolean imap_stream_run(ImapStream *stream, ImapCommand *cmd,
			 GPtrArray *out_untagged, GError **error)
{
	return imap_stream_run_then(stream, cmd, NULL, out_untagged, NULL,
				    error);
}

gboolean imap_stream_run_then(ImapStream *stream, ImapCommand *cmd,
			      ImapCommand *then, GPtrArray *out_untagged,
			      GError **then_error, GError **error)
{
	g_autoptr(ImapCommand) owned = cmd;
	g_autoptr(ImapCommand) owned_then = then;
	g_autoptr(GPtrArray) segs = NULL;
	g_autoptr(GPtrArray) then_segs = NULL;
	g_autofree char *tag = NULL;
	g_autofree char *then_tag = NULL;
	g_autofree char *bye = NULL;
	g_autoptr(GError) outcome = NULL;
	gboolean done = FALSE, then_done = TRUE;
	guint next_seg = 1;

	g_return_val_if_fail(stream != NULL, FALSE);
	g_return_val_if_fail(cmd != NULL, FALSE);

	tag = g_strdup_printf("A%u", stream->next_tag++);
	segs = imap_wire_segments(cmd, tag, stream->caps);
	if (stream->trace)
		imap_wire_trace_command(stream->conn_no, tag, cmd);
	if (!stream_write_all(stream, segs->pdata[0], error))
		return FALSE;
	/* The follower goes out at once, unless @cmd waits for a '+'. */
	if (then != NULL && segs->len == 1) {
		then_tag = g_strdup_printf("A%u", stream->next_tag++);
		then_segs = imap_wire_segments(then, then_tag, stream->caps);
		if (then_segs->len == 1) {
			if (stream->trace)
				imap_wire_trace_command(stream->conn_no,
							then_tag, then);
			if (!stream_write_all(stream, then_segs->pdata[0],
					      error))
				return FALSE;
			then_done = FALSE;
		}
	}
	if (then != NULL && then_done)
		g_set_error(then_error, IMAPFS_IMAP_ERROR, IMAP_ERROR_INVALID,
			    "%s not pipelined", imap_command_name(then));

	/* A failed @cmd is the answer: the follower's is not waited for. */
	while (!done || (!then_done && !outcome)) {
		g_autoptr(GError) local = NULL;
		g_autoptr(ImapResponse) resp =
			stream_read_response(stream, &local);

		if (resp == NULL && done) {
			/* Only the follower's answer was missing. */
			if (then_error != NULL && local != NULL)
				*then_error = g_error_copy(local);
			g_propagate_error(error, g_steal_pointer(&local));
			return FALSE;
		}
		if (resp == NULL) {
			if (bye != NULL &&
			    local->code == IMAP_ERROR_CONNECTION_LOST)
				g_set_error(error, IMAPFS_IMAP_ERROR,
					    IMAP_ERROR_CONNECTION_LOST,
					    "%s closed the connection: %s",
					    stream->host, bye);
			else
				g_propagate_error(error,
						  g_steal_pointer(&local));
			return FALSE;
		}
		switch (resp->kind) {
		case IMAP_RESPONSE_CONTINUATION:
			if (done || next_seg >= segs->len) {
				g_set_error(error, IMAPFS_IMAP_ERROR,
					    IMAP_ERROR_PROTOCOL,
					    "%s sent a continuation request "
					    "nothing waited for",
					    stream->host);
				return FALSE;
			}
			if (!stream_write_all(stream, segs->pdata[next_seg++],
					      error))
				return FALSE;
			break;
		case IMAP_RESPONSE_TAGGED:
			if (then_tag && !then_done &&
			    g_strcmp0(resp->tag, then_tag) == 0) {
				then_done = TRUE;
				note_caps(stream, resp);
				if (resp->status != IMAP_STATUS_OK)
					g_propagate_error(
						then_error,
						imap_wire_status_error(
							imap_command_name(then),
							resp));
				break;
			}
			if (done || g_strcmp0(resp->tag, tag) != 0) {
				g_set_error(error, IMAPFS_IMAP_ERROR,
					    IMAP_ERROR_PROTOCOL,
					    "%s answered command tag %s, which "
					    "was never sent",
					    stream->host, resp->tag);
				return FALSE;
			}
			done = TRUE;
			note_caps(stream, resp);
			if (resp->status != IMAP_STATUS_OK)
				outcome = imap_wire_status_error(
					imap_command_name(cmd), resp);
			break;
		case IMAP_RESPONSE_UNTAGGED:
			if (resp->status == IMAP_STATUS_BYE) {
				g_free(bye);
				bye = g_strdup(resp->text);
			}
			note_caps(stream, resp);
			if (out_untagged != NULL)
				g_ptr_array_add(out_untagged,
						g_steal_pointer(&resp));
			break;
		}
	}
	if (outcome) {
		g_propagate_error(error, g_steal_pointer(&outcome));
		return FALSE;
	}
	return TRUE;
}

static gboolean stream_query_caps(ImapStream *stream, GError **error)
{
	ImapCommand *cmd =
		imap_command_new(error, IMAP_COMMAND_RETRIABLE, "CAPABILITY");

	if (cmd == NULL)
		return FALSE;
	stream->caps = 0;
	if (!imap_stream_run(stream, cmd, NULL, error))
		return FALSE;
	if (stream->caps == 0) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "%s sent no CAPABILITY list", stream->host);
		return FALSE;
	}
	return TRUE;
}

/* Reads the greeting; *out_preauth when the server logged us in. */
static gboolean stream_greeting(ImapStream *stream, const ImapConfig *cfg,
				gboolean *out_preauth, GError **error)
{
	g_autoptr(GError) local = NULL;
	g_autoptr(ImapResponse) resp = stream_read_response(stream, &local);

	if (resp == NULL) {
		if (local->code == IMAP_ERROR_TIMEOUT)
			g_set_error(error, IMAPFS_IMAP_ERROR,
				    IMAP_ERROR_TIMEOUT,
				    "no IMAP greeting from %s:%u within %u s "
				    "(is it an IMAP server? for port 993 use "
				    "imaps)",
				    cfg->host, cfg->port, cfg->timeout_s);
		else
			g_set_error(error, IMAPFS_IMAP_ERROR, local->code,
				    "no IMAP greeting from %s:%u: %s",
				    cfg->host, cfg->port, local->message);
		return FALSE;
	}
	if (resp->kind != IMAP_RESPONSE_UNTAGGED ||
	    (resp->status != IMAP_STATUS_OK &&
	     resp->status != IMAP_STATUS_PREAUTH &&
	     resp->status != IMAP_STATUS_BYE)) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "%s:%u did not greet like an IMAP server",
			    cfg->host, cfg->port);
		return FALSE;
	}
	if (resp->status == IMAP_STATUS_BYE) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_CONNECT,
			    "%s:%u refused the connection: %s", cfg->host,
			    cfg->port, resp->text);
		return FALSE;
	}
	*out_preauth = resp->status == IMAP_STATUS_PREAUTH;
	note_caps(stream, resp);
	return TRUE;
}

static gboolean stream_starttls(ImapStream *stream, const ImapConfig *cfg,
				gboolean preauth, GError **error)
{
	ImapCommand *cmd;

	if (preauth) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_UNSUPPORTED,
			    "%s logged us in (PREAUTH) before STARTTLS; "
			    "refusing an unencrypted session (use imaps)",
			    cfg->host);
		return FALSE;
	}
	if (!(stream->caps & IMAP_CAP_STARTTLS)) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_UNSUPPORTED,
			    "%s does not offer STARTTLS; refusing to continue "
			    "without TLS (use imaps on port 993, or "
			    "-o tls=none to allow plaintext)",
			    cfg->host);
		return FALSE;
	}
	cmd = imap_command_new(error, 0, "STARTTLS");
	if (cmd == NULL || !imap_stream_run(stream, cmd, NULL, error))
		return FALSE;
	if (stream->inbuf->len > 0) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "%s sent data after its STARTTLS answer (a "
			    "possible injection); giving up",
			    cfg->host);
		return FALSE;
	}
	stream->ssl =
		imap_tls_connect(stream->fd, cfg->host, cfg->cafile, error);
	if (stream->ssl == NULL)
		return FALSE;
	/* What the server said in plaintext cannot be trusted. */
	return stream_query_caps(stream, error);
}

/* Set once a server left the ENABLE sent behind a login unanswered: it is
 * sent after the login from then on. */
static gint no_early_enable;

/* COMPRESS DEFLATE (RFC 4978): from its OK on, both ways are deflated,
 * which on a slow link cuts what mail takes to come to a half or less.
 * Refused (NO, BAD): the connection goes on as it was. Unanswered:
 * *@out_again, for an attempt without it. */
static gboolean start_compress(ImapStream *stream, gboolean *out_again,
			       GError **error)
{
	g_autoptr(GError) refused = NULL;
	guint8 *space;
	gsize room;

	if (!imap_stream_run(stream,
			     imap_command_new(NULL, 0, "COMPRESS DEFLATE"),
			     NULL, &refused)) {
		if (refused->code == IMAP_ERROR_CONNECTION_LOST ||
		    refused->code == IMAP_ERROR_TIMEOUT ||
		    refused->code == IMAP_ERROR_PROTOCOL) {
			give_up_compress(stream, refused->message);
			*out_again = TRUE;
			g_propagate_error(error, g_steal_pointer(&refused));
			return FALSE;
		}
		g_message("%s: %s; going on without compression",
			  stream->host, refused->message);
		return TRUE;
	}
	stream->z = imap_compress_new();
	/* What came after the OK is deflated already. */
	space = imap_compress_in_space(stream->z, &room);
	if (stream->inbuf->len > room) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_PROTOCOL,
			    "%s sent more than a response after COMPRESS",
			    stream->host);
		return FALSE;
	}
	memcpy(space, stream->inbuf->data, stream->inbuf->len);
	imap_compress_in_added(stream->z, stream->inbuf->len);
	g_byte_array_set_size(stream->inbuf, 0);
	return TRUE;
}

/* One attempt of imap_stream_connect(); *out_again when it failed for the
 * early ENABLE or for COMPRESS alone, and another attempt without it may
 * succeed;
 * *out_refused when the server refused the credentials. */
static ImapStream *stream_connect(const ImapConfig *cfg, const char *token,
				  guint conn_no, ImapConnectAbort *abort,
				  gboolean *out_again, gboolean *out_refused,
				  GError **error)
{
	g_autoptr(ImapStream) stream = NULL;
	g_autoptr(GError) enabled = NULL; /* the early ENABLE's failure */
	gboolean preauth = FALSE, enable = TRUE;
	int fd;

	g_return_val_if_fail(cfg != NULL && cfg->host != NULL, NULL);

	fd = tcp_connect(cfg, abort, error);
	if (fd < 0)
		return NULL;
	stream = g_new0(ImapStream, 1);
	stream->fd = fd;
	stream->abort = abort;
	stream->spool_fd = -1;
	stream->inbuf = g_byte_array_new();
	stream->conn_no = conn_no;
	stream->next_tag = 1;
	stream->trace = cfg->trace;
	stream->timeout_s = cfg->timeout_s;
	stream->host = g_strdup(cfg->host);
	if (cfg->spool_dir != NULL) {
		stream->spool_fd = open(cfg->spool_dir,
					O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		/* Removed while mounted (a user freeing space): made again. */
		if (stream->spool_fd < 0 && errno == ENOENT &&
		    g_mkdir_with_parents(cfg->spool_dir, 0700) == 0)
			stream->spool_fd =
				open(cfg->spool_dir,
				     O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (stream->spool_fd < 0) {
			int e = errno;
			g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_FAILED,
				    "cannot open spool directory %s: %s",
				    cfg->spool_dir, g_strerror(e));
			return NULL;
		}
	}
	stream->parser = imap_parser_new(NULL, stream->spool_fd);

	if (cfg->tls == IMAP_TLS_IMPLICIT) {
		stream->ssl =
			imap_tls_connect(fd, cfg->host, cfg->cafile, error);
		if (stream->ssl == NULL)
			return NULL;
	}
	if (!stream_greeting(stream, cfg, &preauth, error))
		return NULL;
	if (stream->caps == 0 && !stream_query_caps(stream, error))
		return NULL;
	if (cfg->tls == IMAP_TLS_STARTTLS &&
	    !stream_starttls(stream, cfg, preauth, error))
		return NULL;
	/* QRESYNC (RFC 7162 §3.2.3): every FETCH the server sends carries
	 * the UID, also one telling of another client's flag change, and
	 * expunges come as VANISHED with UIDs. Without it such a change
	 * comes by sequence number only, and placing it takes a scan of
	 * every flag. Servers name QRESYNC only once logged in, so where
	 * ENABLE is offered before, ENABLE QRESYNC goes right behind the
	 * login, saving a round trip (RFC 5161: a server ignores what it
	 * does not know). A refusal is no reason to give up the
	 * connection. */
	if (!preauth) {
		gboolean early = (stream->caps & IMAP_CAP_ENABLE) &&
				 !g_atomic_int_get(&no_early_enable);

		if (!imap_auth_login(
			    stream, cfg, token, stream->ssl != NULL,
			    early ? imap_command_new(NULL, 0, "ENABLE QRESYNC")
				  : NULL,
			    &enabled, out_refused, error)) {
			if (early && g_error_matches(enabled, IMAPFS_IMAP_ERROR,
						     IMAP_ERROR_TIMEOUT)) {
				g_message("%s did not answer the ENABLE sent "
					  "behind the login; it is sent after "
					  "the login from now on",
					  cfg->host);
				g_atomic_int_set(&no_early_enable, 1);
				*out_again = TRUE;
			}
			return NULL;
		}
		if (stream->caps == 0 && !stream_query_caps(stream, error))
			return NULL;
		enable = !early || enabled != NULL;
	}
	if (enable && (stream->caps & IMAP_CAP_QRESYNC) &&
	    (stream->caps & IMAP_CAP_ENABLE)) {
		g_autoptr(GError) refused = NULL;

		if (!imap_stream_run(
			    stream, imap_command_new(NULL, 0, "ENABLE QRESYNC"),
			    NULL, &refused)) {
			if (refused->code == IMAP_ERROR_CONNECTION_LOST ||
			    refused->code == IMAP_ERROR_TIMEOUT ||
			    refused->code == IMAP_ERROR_PROTOCOL) {
				g_propagate_error(error,
						  g_steal_pointer(&refused));
				return NULL;
			}
			g_message("%s: %s", cfg->host, refused->message);
		}
	}
	if ((stream->caps & IMAP_CAP_COMPRESS_DEFLATE) && !cfg->no_compress &&
	    !g_atomic_int_get(&compress_failed) &&
	    !start_compress(stream, out_again, error))
		return NULL;
	abort_unwatch(abort, stream->fd);
	stream->abort = NULL;
	return g_steal_pointer(&stream);
}

/* A token from cfg->token, or NULL with IMAP_ERROR_AUTH. (transfer full;
 * wipe_token() it) */
static char *get_token(const ImapConfig *cfg, GError **error)
{
	g_autoptr(GError) local = NULL;
	char *token = cfg->token(cfg->token_data, &local);

	if (!token)
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH,
			    "no OAuth 2.0 token for %s: %s", cfg->user,
			    local ? local->message : "none given");
	return token;
}

static void wipe_token(char *token)
{
	if (token) {
		OPENSSL_cleanse(token, strlen(token));
		g_free(token);
	}
}

ImapStream *imap_stream_connect_abortable(const ImapConfig *cfg, guint conn_no,
					  ImapConnectAbort *abort,
					  GError **error)
{
	g_autoptr(GError) local = NULL;
	gboolean again = FALSE, refused = FALSE;
	ImapStream *stream = NULL;
	char *token = NULL;

	if (!imap_login_gate_check(cfg, error))
		return NULL;
	/* An OAuth 2.0 token is got before connecting: the command may take
	 * a while (it may renew the token), and the server's login timer
	 * should not run meanwhile. */
	if (cfg->token && !(token = get_token(cfg, error)))
		return NULL;
	stream = stream_connect(cfg, token, conn_no, abort, &again, &refused,
				&local);
	if (stream == NULL && again) {
		g_clear_error(&local);
		stream = stream_connect(cfg, token, conn_no, abort, &again,
					&refused, &local);
	}
	/* A token that expired a moment ago: the helper gives a new one
	 * when asked again. Once, and only with another token; then the
	 * gate closes. */
	if (stream == NULL && refused && cfg->token) {
		char *fresh = get_token(cfg, NULL);

		if (fresh && strcmp(fresh, token) != 0) {
			wipe_token(token);
			token = g_steal_pointer(&fresh);
			g_clear_error(&local);
			refused = FALSE;
			stream = stream_connect(cfg, token, conn_no, abort,
						&again, &refused, &local);
		}
		wipe_token(fresh);
	}
	wipe_token(token);
	if (stream)
		imap_login_gate_passed(cfg);
	else if (refused)
		imap_login_gate_refused(cfg, local);
	if (stream == NULL && abort_fired(abort)) {
		g_clear_error(&local);
		g_set_error_literal(&local, IMAPFS_IMAP_ERROR,
				    IMAP_ERROR_SHUTDOWN,
				    "connection attempt abandoned: imapfs is "
				    "stopping");
	}
	if (local)
		g_propagate_error(error, g_steal_pointer(&local));
	return stream;
}

ImapStream *imap_stream_connect(const ImapConfig *cfg, guint conn_no,
				GError **error)
{
	return imap_stream_connect_abortable(cfg, conn_no, NULL, error);
}

void imap_stream_free(ImapStream *stream)
{
	if (stream == NULL)
		return;
	if (stream->ssl != NULL)
		SSL_free(stream->ssl);
	if (stream->fd >= 0) {
		abort_unwatch(stream->abort, stream->fd);
		close(stream->fd);
	}
	imap_parser_free(stream->parser);
	if (stream->spool_fd >= 0)
		close(stream->spool_fd);
	g_byte_array_unref(stream->inbuf);
	imap_compress_free(stream->z);
	g_free(stream->host);
	g_free(stream);
}

guint imap_stream_caps(const ImapStream *stream)
{
	g_return_val_if_fail(stream != NULL, 0);
	return stream->caps;
}

/* imap/connect.h — open one logged-in IMAP connection, blocking.
 *
 * imap_stream_connect() does everything up to the authenticated state in
 * blocking style on the calling thread: resolve, TCP connect (with the
 * config's timeout), TLS (implicit or STARTTLS; verified against the system
 * store plus cafile, SNI, host name check, TLS >= 1.2), greeting,
 * CAPABILITY, authentication (AUTHENTICATE PLAIN with SASL-IR, else LOGIN;
 * never over plaintext unless allow_plaintext_auth) and ENABLE of what we
 * use. fs/main.c calls it before daemonizing so the user sees a wrong host,
 * port, password or certificate on the terminal; the pool calls it from
 * short-lived connector threads and then hands the stream to the imap-io
 * thread. A stream is used by one thread at a time.
 */
#ifndef IMAPFS_IMAP_CONNECT_H
#define IMAPFS_IMAP_CONNECT_H

#include <glib.h>
#include "imap/config.h"
#include "imap/command.h"
#include "imap/response.h"

typedef struct ImapStream ImapStream;
typedef struct ImapConnectAbort ImapConnectAbort;

/* Returns a logged-in stream or NULL with an IMAPFS_IMAP_ERROR whose message
 * says what went wrong and what to do, e.g.
 * "cannot connect to mail.example.com:993: Connection refused",
 * "certificate of mail.example.com not trusted: self-signed certificate (use
 * -o cafile=FILE to trust it)", "login as alice refused: [AUTHENTICATIONFAILED]
 * Authentication failed." @conn_no numbers the trace lines. */
ImapStream *imap_stream_connect(const ImapConfig *cfg, guint conn_no,
				GError **error);

/* Attempts that another thread can end at once (at unmount), instead of
 * after the timeout: imap_connect_abort_fire() shuts the socket of every
 * attempt under way with @abort, and every later one fails before it
 * starts, with IMAP_ERROR_SHUTDOWN. Free the ImapConnectAbort only once
 * every attempt under it has returned. */
ImapConnectAbort *imap_connect_abort_new(void);
void imap_connect_abort_fire(ImapConnectAbort *abort); /* any thread */
void imap_connect_abort_free(ImapConnectAbort *abort); /* NULL-safe */
ImapStream *imap_stream_connect_abortable(const ImapConfig *cfg, guint conn_no,
					  ImapConnectAbort *abort,
					  GError **error);
void imap_stream_free(ImapStream *stream); /* NULL-safe; closes quietly */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImapStream, imap_stream_free)

guint imap_stream_caps(const ImapStream *stream); /* ImapCaps bits */

/* Runs one command to completion, blocking. Untagged responses are appended
 * to @out_untagged if non-NULL (ImapResponse *, transfer full). FALSE with
 * an error for NO/BAD (message: command name, status, code, server text) or
 * transport failure. Takes @cmd (transfer full). */
gboolean imap_stream_run(ImapStream *stream, ImapCommand *cmd,
			 GPtrArray *out_untagged, GError **error);
/* The same, with @then (transfer full, nullable) sent right behind @cmd,
 * without waiting for its answer (one round trip for both), and both
 * answers read. @then's own outcome goes to @then_error (nullable; also
 * set when it could not go out behind @cmd, which needed continuations:
 * it was not sent then). */
gboolean imap_stream_run_then(ImapStream *stream, ImapCommand *cmd,
			      ImapCommand *then, GPtrArray *out_untagged,
			      GError **then_error, GError **error);

/* For a command that runs long (IDLE), by hand: imap_stream_start() sends
 * @cmd (transfer full; no synchronising literal) and returns its tag
 * (transfer full) or NULL with an error; imap_stream_read() blocks for the
 * next response (transfer full; NULL with an error: timeout, lost
 * connection, unparsable); imap_stream_send_line() sends raw text such as
 * "DONE\r\n". Whether a response is already buffered (poll() would not
 * see it), and the socket to poll otherwise: */
char *imap_stream_start(ImapStream *stream, ImapCommand *cmd, GError **error);
ImapResponse *imap_stream_read(ImapStream *stream, GError **error);
gboolean imap_stream_send_line(ImapStream *stream, const char *line,
			       GError **error);
gboolean imap_stream_buffered(const ImapStream *stream);
int imap_stream_fd(const ImapStream *stream);

#endif

/* imap/auth.h — logging in on a blocking stream (private to imap/).
 *
 * AUTHENTICATE PLAIN with an initial response (SASL-IR) when the server
 * offers both, else LOGIN. Refuses to send a password over a plaintext link
 * unless the config allows it, and refuses LOGIN when the server says
 * LOGINDISABLED. Runs on the thread that owns the stream.
 */
#ifndef IMAPFS_IMAP_AUTH_H
#define IMAPFS_IMAP_AUTH_H

#include <glib.h>
#include "imap/config.h"
#include "imap/connect.h"

/* Logs in as cfg->user, with cfg->password, or with the OAuth 2.0 access
 * @token (from cfg->token; NULL for a password). @encrypted: the link is
 * TLS. On success the
 * stream's capabilities are those the server announced after login (the
 * caller asks again when they are 0). FALSE with IMAP_ERROR_AUTH (refused
 * or not attempted) or a transport error. @then (transfer full, nullable)
 * is sent right behind the login, in the same round trip; its outcome in
 * @then_error, as for imap_stream_run_then(). *out_refused is set when the
 * server refused the credentials (not when it could not check them now:
 * [UNAVAILABLE]). */
gboolean imap_auth_login(ImapStream *stream, const ImapConfig *cfg,
			 const char *token, gboolean encrypted,
			 ImapCommand *then, GError **then_error,
			 gboolean *out_refused, GError **error);

/* FALSE, with IMAP_ERROR_AUTH saying until when and why, while @cfg's
 * login gate (imap/config.h) holds logins back; TRUE otherwise (or without
 * a gate). Checked before connecting. */
gboolean imap_login_gate_check(const ImapConfig *cfg, GError **error);
/* The server refused the credentials (@refusal says how, for the log and
 * for later attempts): the gate closes. */
void imap_login_gate_refused(const ImapConfig *cfg, const GError *refusal);
/* A login succeeded: the gate opens, its pauses start over. */
void imap_login_gate_passed(const ImapConfig *cfg);

#endif

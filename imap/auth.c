/* imap/auth.c — LOGIN and AUTHENTICATE PLAIN.
 *
 * The password leaves this file only inside a command flagged
 * IMAP_COMMAND_SECRET, so traces show "<hidden>"; the buffers that held it
 * here are wiped. After a successful login the capabilities are cleared
 * unless the tagged OK carried new ones: RFC 9051 §6.2.2 lets a server
 * change them once the client is authenticated.
 */
#include "imap/auth.h"

#include <string.h>

#include <openssl/crypto.h>

#include "imap/caps.h"
#include "imap/conn.h"
#include "imap/error.h"

/* base64("\0user\0password"), RFC 4616. (transfer full) */
static char *plain_response(const char *user, const char *password)
{
	gsize ulen = strlen(user), plen = strlen(password);
	gsize len = 1 + ulen + 1 + plen;
	guint8 *buf = g_malloc(len);
	char *b64;

	buf[0] = '\0';
	memcpy(buf + 1, user, ulen);
	buf[1 + ulen] = '\0';
	memcpy(buf + 2 + ulen, password, plen);
	b64 = g_base64_encode(buf, len);
	OPENSSL_cleanse(buf, len);
	g_free(buf);
	return b64;
}

static void wipe_string(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		g_free(s);
	}
}

gboolean imap_auth_login(ImapStream *stream, const ImapConfig *cfg,
			 gboolean encrypted, ImapCommand *then,
			 GError **then_error, GError **error)
{
	g_autoptr(ImapCommand) owned_then = then;
	g_autoptr(GError) local = NULL;
	ImapCommand *cmd;
	gboolean use_plain;
	const char *password = cfg->password != NULL ? cfg->password : "";
	guint caps = stream->caps;

	if (cfg->user == NULL || cfg->user[0] == '\0') {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH,
			    "no user name given for %s", cfg->host);
		return FALSE;
	}
	if (!encrypted && !cfg->allow_plaintext_auth) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH,
			    "refusing to send the password for %s to %s over "
			    "a plaintext connection (use TLS, or allow it "
			    "with -o allow_plaintext_auth)",
			    cfg->user, cfg->host);
		return FALSE;
	}
	use_plain = (caps & IMAP_CAP_AUTH_PLAIN) && (caps & IMAP_CAP_SASL_IR);
	if (!use_plain && (caps & IMAP_CAP_LOGINDISABLED)) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH,
			    "%s does not allow LOGIN on this connection "
			    "(LOGINDISABLED) and offers no AUTHENTICATE PLAIN "
			    "with SASL-IR (use TLS)",
			    cfg->host);
		return FALSE;
	}

	if (use_plain) {
		char *b64 = plain_response(cfg->user, password);
		cmd = imap_command_new(&local, IMAP_COMMAND_SECRET,
				       "AUTHENTICATE PLAIN %a", b64);
		wipe_string(b64);
	} else {
		cmd = imap_command_new(&local, IMAP_COMMAND_SECRET,
				       "LOGIN %q %q", cfg->user, password);
	}
	if (cmd == NULL) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH,
			    "cannot log in as %s on %s: %s", cfg->user,
			    cfg->host, local->message);
		return FALSE;
	}

	stream->caps = 0;
	if (!imap_stream_run_then(stream, cmd, g_steal_pointer(&owned_then),
				  NULL, then_error, &local)) {
		if (local->domain == IMAPFS_IMAP_ERROR &&
		    local->code != IMAP_ERROR_CONNECTION_LOST &&
		    local->code != IMAP_ERROR_TIMEOUT &&
		    local->code != IMAP_ERROR_PROTOCOL) {
			/* local->message is "LOGIN: NO [...] text"; keep the
			 * server's part. */
			const char *words = strstr(local->message, ": ");
			words = words != NULL ? words + 2 : local->message;
			if (g_str_has_prefix(words, "NO ") ||
			    g_str_has_prefix(words, "BAD "))
				words += words[0] == 'N' ? 3 : 4;
			g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH,
				    "login as %s on %s refused: %s (check the "
				    "user name and password)",
				    cfg->user, cfg->host, words);
		} else {
			g_propagate_error(error, g_steal_pointer(&local));
		}
		stream->caps = caps;
		return FALSE;
	}
	return TRUE;
}

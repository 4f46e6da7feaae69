/* imap/auth.c — LOGIN, AUTHENTICATE PLAIN, and OAuth 2.0 (OAUTHBEARER,
 * XOAUTH2).
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

/* The first pause after a refusal, and the longest, in seconds. */
#define GATE_FIRST_S 120
#define GATE_MAX_S   3600

struct ImapLoginGate {
	GMutex lock;
	gint64 until;	 /* monotonic time logins may go again; 0: now */
	gint64 until_at; /* the same in seconds since the epoch */
	guint pause_s;	 /* the pause after the next refusal */
	char *why;	 /* the last refusal */
};

ImapLoginGate *imap_login_gate_new(void)
{
	ImapLoginGate *gate = g_new0(ImapLoginGate, 1);

	g_mutex_init(&gate->lock);
	return gate;
}

void imap_login_gate_free(ImapLoginGate *gate)
{
	if (!gate)
		return;
	g_mutex_clear(&gate->lock);
	g_free(gate->why);
	g_free(gate);
}

gboolean imap_login_gate_check(const ImapConfig *cfg, GError **error)
{
	ImapLoginGate *gate = cfg->login_gate;
	gboolean open;

	if (!gate)
		return TRUE;
	g_mutex_lock(&gate->lock);
	open = g_get_monotonic_time() >= gate->until;
	if (!open) {
		g_autoptr(GDateTime) when =
			g_date_time_new_from_unix_local(gate->until_at);
		g_autofree char *hms = g_date_time_format(when, "%H:%M:%S");

		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH,
			    "no new login to %s before %s: %s (mount again "
			    "to log in at once)",
			    cfg->host, hms, gate->why);
	}
	g_mutex_unlock(&gate->lock);
	return open;
}

void imap_login_gate_refused(const ImapConfig *cfg, const GError *refusal)
{
	ImapLoginGate *gate = cfg->login_gate;
	guint pause_s;

	if (!gate)
		return;
	g_mutex_lock(&gate->lock);
	pause_s = gate->pause_s ? gate->pause_s : GATE_FIRST_S;
	gate->until = g_get_monotonic_time() + pause_s * G_TIME_SPAN_SECOND;
	gate->until_at = g_get_real_time() / G_USEC_PER_SEC + pause_s;
	gate->pause_s = MIN(pause_s * 2, GATE_MAX_S);
	g_free(gate->why);
	gate->why = g_strdup(refusal->message);
	g_mutex_unlock(&gate->lock);
	g_warning("%s; no new login for %u minutes, lest the server lock the "
		  "account or bar this address",
		  refusal->message, pause_s / 60);
}

void imap_login_gate_passed(const ImapConfig *cfg)
{
	ImapLoginGate *gate = cfg->login_gate;

	if (!gate)
		return;
	g_mutex_lock(&gate->lock);
	gate->until = 0;
	gate->pause_s = 0;
	g_mutex_unlock(&gate->lock);
}

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

/* The SASL initial response of an OAuth 2.0 login, base64: OAUTHBEARER's
 * (RFC 7628 §3.1; the user name in its GS2 header with ',' and '=' as =2C
 * and =3D) or XOAUTH2's. (transfer full; wipe it) */
static char *oauth_response(gboolean bearer, const ImapConfig *cfg,
			    const char *token)
{
	/* Sized once: a buffer grown on the way would leave copies of the
	 * token behind, unwiped. */
	GString *s = g_string_sized_new(3 * strlen(cfg->user) +
					strlen(cfg->host) + strlen(token) + 64);
	char *b64;

	if (bearer) {
		g_string_append(s, "n,a=");
		for (const char *p = cfg->user; *p; p++) {
			if (*p == ',')
				g_string_append(s, "=2C");
			else if (*p == '=')
				g_string_append(s, "=3D");
			else
				g_string_append_c(s, *p);
		}
		g_string_append_printf(s, ",\001host=%s\001port=%u\001",
				       cfg->host, cfg->port);
	} else {
		g_string_append_printf(s, "user=%s\001", cfg->user);
	}
	/* Not through a printf: its buffer would keep the token. */
	g_string_append(s, "auth=Bearer ");
	g_string_append(s, token);
	g_string_append(s, "\001\001");
	b64 = g_base64_encode((const guchar *)s->str, s->len);
	OPENSSL_cleanse(s->str, s->allocated_len);
	g_string_free(s, TRUE);
	return b64;
}

/* A token as RFC 6750 §2.1 has it: printable ASCII, no blank. */
static gboolean printable(const char *s)
{
	for (; *s; s++) {
		if (*s <= ' ' || *s > '~')
			return FALSE;
	}
	return TRUE;
}

/* No control character, such as the response's separator %x01. */
static gboolean no_controls(const char *s)
{
	for (; *s; s++) {
		if ((guchar)*s < ' ' || *s == 0x7f)
			return FALSE;
	}
	return TRUE;
}

/* What the server's error challenge says (base64 JSON such as
 * {"status":"401","schemes":"bearer"}), as one printable line.
 * (transfer full) */
static char *challenge_text(const char *b64)
{
	gsize len = 0;
	g_autofree guchar *raw = g_base64_decode(b64, &len);
	char *text = g_strndup((const char *)raw, len);

	for (char *p = text; *p; p++) {
		if ((guchar)*p < ' ' || (guchar)*p > '~')
			*p = '?';
	}
	return text;
}

static gboolean send_secret_line(ImapStream *stream, const char *line,
				 GError **error)
{
	gboolean trace = stream->trace, ok;

	if (trace)
		g_debug("[conn %u] C: <hidden>", stream->conn_no);
	stream->trace = FALSE;
	ok = imap_stream_send_line(stream, line, error);
	stream->trace = trace;
	return ok;
}

/* AUTHENTICATE OAUTHBEARER, else XOAUTH2, with @token, which cfg->token
 * gave for this login (tokens expire; a mount lives longer). On failure
 * the server sends its reason as a challenge, which the client answers
 * (with %x01, or an empty line for XOAUTH2) before the NO comes. */
static gboolean oauth_login(ImapStream *stream, const ImapConfig *cfg,
			    const char *token, gboolean *out_refused,
			    GError **error)
{
	g_autoptr(GError) local = NULL;
	g_autofree char *tag = NULL;
	g_autofree char *reason = NULL;
	guint caps = stream->caps;
	gboolean bearer = (caps & IMAP_CAP_AUTH_OAUTHBEARER) != 0;
	gboolean sasl_ir = (caps & IMAP_CAP_SASL_IR) != 0;
	const char *mech = bearer ? "OAUTHBEARER" : "XOAUTH2";
	char *b64, *line;
	ImapCommand *cmd;

	if (!(caps & (IMAP_CAP_AUTH_OAUTHBEARER | IMAP_CAP_AUTH_XOAUTH2))) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH,
			    "%s offers no OAuth 2.0 login (AUTH=OAUTHBEARER "
			    "or AUTH=XOAUTH2); log in with a password "
			    "instead (leave out -o auth=oauth2)",
			    cfg->host);
		return FALSE;
	}
	if (!no_controls(cfg->user)) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH,
			    "the user name for %s has a control character, "
			    "which an OAuth 2.0 login cannot carry",
			    cfg->host);
		return FALSE;
	}
	if (!*token || !printable(token)) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH,
			    "the OAuth 2.0 token for %s is %s; the password "
			    "command must print the access token alone",
			    cfg->user,
			    *token ? "not one word of printable ASCII"
				   : "empty");
		return FALSE;
	}
	b64 = oauth_response(bearer, cfg, token);
	cmd = sasl_ir ? imap_command_new(&local, IMAP_COMMAND_SECRET,
					 "AUTHENTICATE %a %a", mech, b64)
		      : imap_command_new(&local, 0, "AUTHENTICATE %a", mech);
	line = g_strconcat(b64, "\r\n", NULL);
	wipe_string(b64);
	if (!cmd) {
		wipe_string(line);
		g_propagate_error(error, g_steal_pointer(&local));
		return FALSE;
	}
	stream->caps = 0;
	tag = imap_stream_start(stream, cmd, error);
	for (gboolean sent = sasl_ir; tag;) {
		g_autoptr(ImapResponse) resp = imap_stream_read(stream, error);
		guint new_caps;

		if (!resp)
			break;
		if (resp->kind == IMAP_RESPONSE_CONTINUATION) {
			gboolean ok;

			if (!sent) {
				ok = send_secret_line(stream, line, error);
				sent = TRUE;
			} else {
				g_free(reason);
				reason = challenge_text(resp->text);
				ok = imap_stream_send_line(
					stream, bearer ? "AQ==\r\n" : "\r\n",
					error);
			}
			if (!ok)
				break;
			continue;
		}
		if (imap_caps_from_response(resp, &new_caps) &&
		    resp->status != IMAP_STATUS_NO &&
		    resp->status != IMAP_STATUS_BAD)
			stream->caps = new_caps;
		if (resp->kind != IMAP_RESPONSE_TAGGED ||
		    g_strcmp0(resp->tag, tag) != 0)
			continue;
		wipe_string(line);
		if (resp->status == IMAP_STATUS_OK)
			return TRUE;
		{
			g_autofree char *text = imap_wire_status_text(resp);
			const char *words = strchr(text, ' ');
			gboolean for_now =
				g_strcmp0(resp->code, "UNAVAILABLE") == 0 ||
				g_strcmp0(resp->code, "LIMIT") == 0;
			GError *refused = g_error_new(
				IMAPFS_IMAP_ERROR,
				for_now ? IMAP_ERROR_UNAVAILABLE
					: IMAP_ERROR_AUTH,
				"OAuth 2.0 login (%s) as %s on %s refused: "
				"%s%s%s (check that the password command "
				"prints a fresh access token for this "
				"account)",
				mech, cfg->user, cfg->host,
				words ? words + 1 : text, reason ? " " : "",
				reason ? reason : "");

			*out_refused = !for_now;
			g_propagate_error(error, refused);
		}
		stream->caps = caps;
		return FALSE;
	}
	wipe_string(line);
	stream->caps = caps;
	return FALSE;
}

gboolean imap_auth_login(ImapStream *stream, const ImapConfig *cfg,
			 const char *token, gboolean encrypted,
			 ImapCommand *then, GError **then_error,
			 gboolean *out_refused, GError **error)
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
	if (token) {
		/* Not pipelined: the exchange may take a challenge. */
		g_set_error(then_error, IMAPFS_IMAP_ERROR, IMAP_ERROR_INVALID,
			    "not sent behind an OAuth 2.0 login");
		return oauth_login(stream, cfg, token, out_refused, error);
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
			/* Not the credentials: the server cannot check them
			 * now, or has no room for another connection. */
			gboolean busy = g_str_has_prefix(words, "[LIMIT]");
			gboolean for_now =
				busy ||
				g_str_has_prefix(words, "[UNAVAILABLE]");
			GError *refused = g_error_new(
				IMAPFS_IMAP_ERROR,
				for_now ? IMAP_ERROR_UNAVAILABLE
					: IMAP_ERROR_AUTH,
				"login as %s on %s refused: %s (%s)", cfg->user,
				cfg->host, words,
				busy ? "for now; fewer connections, -o "
				       "max_conns=N, may help"
				: for_now
					? "for now: the server could not check "
					  "it; try again later"
					: "check the user name and password");

			*out_refused = !for_now;
			g_propagate_error(error, refused);
		} else {
			g_propagate_error(error, g_steal_pointer(&local));
		}
		stream->caps = caps;
		return FALSE;
	}
	return TRUE;
}

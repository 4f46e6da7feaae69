/* imap/config.h — where and how to reach the server, and how to log in. */
#ifndef IMAPFS_IMAP_CONFIG_H
#define IMAPFS_IMAP_CONFIG_H

#include <glib.h>

typedef enum {
	IMAP_TLS_IMPLICIT, /* imaps://, TLS from the first byte */
	IMAP_TLS_STARTTLS, /* imap://, STARTTLS required */
	IMAP_TLS_NONE,	   /* imap:// with -o tls=none: plaintext */
} ImapTlsMode;

typedef struct ImapLoginGate ImapLoginGate; /* see below */

/* A fresh OAuth 2.0 access token for one login, or NULL with @error set.
 * (transfer full; the caller wipes it) Any thread. */
typedef char *(*ImapTokenFunc)(gpointer user_data, GError **error);

typedef struct {
	char *host;
	guint16 port;
	ImapTlsMode tls;
	char *cafile; /* nullable: extra trust anchors */
	char *user;
	char *password;		       /* wiped by imap_config_free() */
	/* Non-NULL: log in with OAuth 2.0 (OAUTHBEARER, else XOAUTH2), a
	 * token from it at each login, instead of the password. */
	ImapTokenFunc token;
	gpointer token_data;
	/* Nullable: holds logins back after the server refused one; shared
	 * by every connection of a mount (imap_login_gate_new()). */
	ImapLoginGate *login_gate;
	gboolean allow_plaintext_auth; /* LOGIN over a plaintext link */
	guint max_conns;	       /* pool size, >= 1 */
	char *spool_dir; /* for big literals; nullable: no spool */
	gboolean trace;	 /* log the wire at debug level */
	guint timeout_s; /* connect and silence timeout */
	gboolean no_compress; /* no COMPRESS DEFLATE where offered */
} ImapConfig;

/* After the server refuses the credentials of a mount (a password
 * changed since, a token revoked), no login is tried again for a while: 2
 * minutes, doubling up to an hour while refusals go on; a login that
 * succeeds opens the gate again. Servers answer a stream of failed logins
 * by locking the account or banning the address (fail2ban), and the same
 * credentials cannot do better. A refusal marked [UNAVAILABLE] (the server
 * could not check them now) does not count. Thread-safe; imap/auth.c. */
ImapLoginGate *imap_login_gate_new(void);
void imap_login_gate_free(ImapLoginGate *gate); /* NULL-safe */

ImapConfig *imap_config_copy(const ImapConfig *cfg);
void imap_config_free(ImapConfig *cfg); /* NULL-safe */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImapConfig, imap_config_free)

#endif

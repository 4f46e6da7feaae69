/* imap/config.h — where and how to reach the server. Plain data. */
#ifndef IMAPFS_IMAP_CONFIG_H
#define IMAPFS_IMAP_CONFIG_H

#include <glib.h>

typedef enum {
	IMAP_TLS_IMPLICIT, /* imaps://, TLS from the first byte */
	IMAP_TLS_STARTTLS, /* imap://, STARTTLS required */
	IMAP_TLS_NONE,	   /* imap:// with -o tls=none: plaintext */
} ImapTlsMode;

typedef struct {
	char *host;
	guint16 port;
	ImapTlsMode tls;
	char *cafile; /* nullable: extra trust anchors */
	char *user;
	char *password;		       /* wiped by imap_config_free() */
	gboolean allow_plaintext_auth; /* LOGIN over a plaintext link */
	guint max_conns;	       /* pool size, >= 1 */
	char *spool_dir; /* for big literals; nullable: no spool */
	gboolean trace;	 /* log the wire at debug level */
	guint timeout_s; /* connect and silence timeout */
} ImapConfig;

ImapConfig *imap_config_copy(const ImapConfig *cfg);
void imap_config_free(ImapConfig *cfg); /* NULL-safe */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImapConfig, imap_config_free)

#endif

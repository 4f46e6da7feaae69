/* imap/tls.h — OpenSSL for one connection (private to imap/).
 *
 * imap_tls_connect() runs a verified TLS client handshake on a connected,
 * blocking socket: TLS >= 1.2, SSL_VERIFY_PEER against the system trust
 * store plus an optional CA file, SNI, and a host name (or IP address)
 * check. Any thread; the returned SSL object is then used by one thread at
 * a time.
 */
#ifndef IMAPFS_IMAP_TLS_H
#define IMAPFS_IMAP_TLS_H

#include <glib.h>
#include <openssl/ssl.h>

/* Returns an SSL object bound to @fd after a successful handshake (free
 * with SSL_free(); it does not close @fd), or NULL with IMAP_ERROR_TLS
 * (IMAP_ERROR_TIMEOUT if the socket timed out) and a message that says
 * what failed and what to do. @cafile nullable. */
SSL *imap_tls_connect(int fd, const char *host, const char *cafile,
		      GError **error);

#endif

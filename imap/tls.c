/* imap/tls.c — the TLS client side of a connection.
 *
 * One SSL_CTX per handshake: it is cheap next to the handshake itself and
 * keeps this file free of shared state. The SSL object keeps its own
 * reference to the context, so the context is released right away.
 *
 * Verification is OpenSSL's (SSL_VERIFY_PEER + SSL_set1_host or an IP
 * check); nothing here compares names by hand. When the handshake fails
 * because of the certificate, the message gives the verify result, which is
 * what the user can act on, rather than the generic "certificate verify
 * failed" from the error queue.
 */
#include "imap/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "imap/error.h"

static gboolean is_ip_literal(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, host, &a4) == 1 ||
	       inet_pton(AF_INET6, host, &a6) == 1;
}

/* The most specific reason OpenSSL has queued, or @fallback. */
static char *ssl_error_text(const char *fallback)
{
	unsigned long e, last = 0;
	char buf[256];

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0)
		return g_strdup(fallback);
	const char *reason = ERR_reason_error_string(last);
	if (reason != NULL)
		return g_strdup(reason);
	ERR_error_string_n(last, buf, sizeof(buf));
	return g_strdup(buf);
}

static SSL_CTX *tls_context_new(const char *cafile, GError **error)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		g_autofree char *why = ssl_error_text("out of memory");
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_TLS,
			    "cannot set up TLS: %s", why);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* A server that closes without close_notify is just a close. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_default_verify_paths(ctx);
	if (cafile != NULL &&
	    SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
		g_autofree char *why = ssl_error_text("unreadable");
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_TLS,
			    "cannot load CA file %s: %s", cafile, why);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static void handshake_error(SSL *ssl, int ret, const char *host, GError **error)
{
	int err = SSL_get_error(ssl, ret);
	long verify = SSL_get_verify_result(ssl);

	if (verify != X509_V_OK) {
		const char *hint;

		ERR_clear_error();
		if (verify == X509_V_ERR_HOSTNAME_MISMATCH ||
		    verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
			hint = "connect using a name the certificate lists";
		else
			hint = "add the server's CA with -o cafile=FILE";
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_TLS,
			    "TLS handshake with %s failed: certificate verify "
			    "failed: %s (%s)",
			    host, X509_verify_cert_error_string(verify), hint);
		return;
	}
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ||
	    (err == SSL_ERROR_SYSCALL &&
	     (errno == EAGAIN || errno == EWOULDBLOCK))) {
		ERR_clear_error();
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_TIMEOUT,
			    "TLS handshake with %s timed out", host);
		return;
	}
	/* A hang-up or a reset before the handshake is done says nothing
	 * of TLS: the server (or a proxy before it) may be restarting, and
	 * the next attempt may work. */
	if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_CONNECT,
			    "TLS handshake with %s failed: %s", host,
			    ret == 0 || errno == 0
				    ? "connection closed by the server"
				    : g_strerror(errno));
		return;
	}
	g_autofree char *why = ssl_error_text(NULL);

	/* Bytes that are no TLS record: a plaintext port. Nothing at all,
	 * or an end of stream: the peer (or a proxy before it) hung up. */
	if (!why || err == SSL_ERROR_ZERO_RETURN || strstr(why, "eof")) {
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_CONNECT,
			    "TLS handshake with %s failed: the connection "
			    "was closed in the middle of it (the server, or "
			    "a proxy in front of it, may be down or "
			    "restarting)",
			    host);
		return;
	}
	g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_TLS,
		    "TLS handshake with %s failed: %s (is this a TLS port? "
		    "for port 143 use STARTTLS)",
		    host, why);
}

SSL *imap_tls_connect(int fd, const char *host, const char *cafile,
		      GError **error)
{
	SSL_CTX *ctx;
	SSL *ssl;
	int ret;

	g_return_val_if_fail(host != NULL, NULL);

	ERR_clear_error();
	ctx = tls_context_new(cafile, error);
	if (ctx == NULL)
		return NULL;
	ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
		g_autofree char *why = ssl_error_text("out of memory");
		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_TLS,
			    "cannot set up TLS: %s", why);
		SSL_free(ssl);
		return NULL;
	}
	if (is_ip_literal(host)) {
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
		X509_VERIFY_PARAM_set1_ip_asc(param, host);
	} else {
		/* RFC 6066 §3: SNI carries DNS names only. */
		SSL_set_tlsext_host_name(ssl, host);
		SSL_set1_host(ssl, host);
	}
	ret = SSL_connect(ssl);
	if (ret != 1) {
		handshake_error(ssl, ret, host, error);
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

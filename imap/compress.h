/* imap/compress.h — COMPRESS=DEFLATE (RFC 4978) for one stream (private
 * to imap/).
 *
 * Once the server has said OK to COMPRESS DEFLATE, every byte either way
 * is raw deflate (RFC 1951), inside TLS where there is TLS. What is sent
 * is flushed at the end of each write (Z_SYNC_FLUSH), so the server can
 * act on a command at once; what comes is inflated as it arrives.
 */
#ifndef IMAPFS_IMAP_COMPRESS_H
#define IMAPFS_IMAP_COMPRESS_H

#include <glib.h>

typedef struct ImapCompress ImapCompress;

ImapCompress *imap_compress_new(void);
void imap_compress_free(ImapCompress *z); /* NULL-safe */

/* Raw bytes that came: where to put them, and how many at most (0: the
 * last ones are not used up yet), then how many were put. */
guint8 *imap_compress_in_space(ImapCompress *z, gsize *out_room);
void imap_compress_in_added(ImapCompress *z, gsize n);

/* Inflates what came into @buf: bytes written, 0 if it needs more raw
 * bytes, or -1 with @error (the server's stream is damaged). */
gssize imap_compress_inflate(ImapCompress *z, void *buf, gsize len,
			     GError **error);

/* Whether inflating gives more without new raw bytes (exact: poll()
 * cannot see what is held here). */
gboolean imap_compress_has_input(const ImapCompress *z);

/* Deflates @len bytes of @data (all of them) into the bytes to send,
 * flushed. */
void imap_compress_deflate(ImapCompress *z, const void *data, gsize len);

/* The deflated bytes not yet sent, and their count; consume()d once
 * sent. */
const guint8 *imap_compress_out(const ImapCompress *z, gsize *out_len);
void imap_compress_consume(ImapCompress *z, gsize n);

#endif

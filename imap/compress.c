/* imap/compress.c — see compress.h. zlib with raw deflate (negative
 * window bits), as RFC 4978 §3 asks. */
#include "imap/compress.h"

#include <zlib.h>

#include "imap/error.h"

#define IN_SIZE (64 * 1024)

struct ImapCompress {
	z_stream inflater;
	z_stream deflater;
	guint8 *in;	 /* raw bytes received, from inflater.next_in on */
	GByteArray *out; /* deflated, not yet sent, from out_pos on */
	gsize out_pos;
	guint8 peek;	 /* inflated, not yet given: after a call that filled */
	gboolean peeked; /* its buffer, whether there was more */
};

ImapCompress *imap_compress_new(void)
{
	ImapCompress *z = g_new0(ImapCompress, 1);

	/* -15: raw deflate, 32 KiB window. */
	if (inflateInit2(&z->inflater, -15) != Z_OK ||
	    deflateInit2(&z->deflater, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15,
			 8, Z_DEFAULT_STRATEGY) != Z_OK)
		g_error("zlib: out of memory");
	z->in = g_malloc(IN_SIZE);
	z->out = g_byte_array_new();
	return z;
}

void imap_compress_free(ImapCompress *z)
{
	if (z == NULL)
		return;
	inflateEnd(&z->inflater);
	deflateEnd(&z->deflater);
	g_free(z->in);
	g_byte_array_unref(z->out);
	g_free(z);
}

guint8 *imap_compress_in_space(ImapCompress *z, gsize *out_room)
{
	*out_room = z->inflater.avail_in == 0 ? IN_SIZE : 0;
	return z->in;
}

void imap_compress_in_added(ImapCompress *z, gsize n)
{
	z->inflater.next_in = z->in;
	z->inflater.avail_in = (uInt)n;
}

/* One inflate() into @out: FALSE with @error if the data is damaged. */
static gboolean inflate_into(ImapCompress *z, guint8 *out, gsize len,
			     GError **error)
{
	int ret;

	z->inflater.next_out = out;
	z->inflater.avail_out = (uInt)len;
	ret = inflate(&z->inflater, Z_SYNC_FLUSH);
	/* The end of the stream: a server may end it at LOGOUT. */
	if (ret == Z_OK || ret == Z_BUF_ERROR || ret == Z_STREAM_END)
		return TRUE;
	g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_CONNECTION_LOST,
		    "the server's compressed data is damaged (%s)",
		    z->inflater.msg ? z->inflater.msg : "zlib error");
	return FALSE;
}

gssize imap_compress_inflate(ImapCompress *z, void *buf, gsize len,
			     GError **error)
{
	guint8 *out = buf;
	gsize done = 0;

	len = MIN(len, G_MAXUINT32);
	if (len == 0)
		return 0;
	if (z->peeked) {
		out[done++] = z->peek;
		z->peeked = FALSE;
	}
	if (!inflate_into(z, out + done, len - done, error))
		return -1;
	done = len - z->inflater.avail_out;
	/* A full buffer may leave more to come without new bytes: one byte
	 * more says whether it does, so that has_input() is exact. */
	if (done == len) {
		if (!inflate_into(z, &z->peek, 1, error))
			return -1;
		z->peeked = z->inflater.avail_out == 0;
	}
	return (gssize)done;
}

gboolean imap_compress_has_input(const ImapCompress *z)
{
	return z->peeked;
}

void imap_compress_deflate(ImapCompress *z, const void *data, gsize len)
{
	guint8 chunk[16 * 1024];

	g_return_if_fail(len <= G_MAXUINT32);
	z->deflater.next_in = (Bytef *)data;
	z->deflater.avail_in = (uInt)len;
	do {
		z->deflater.next_out = chunk;
		z->deflater.avail_out = sizeof(chunk);
		deflate(&z->deflater, Z_SYNC_FLUSH);
		g_byte_array_append(z->out, chunk,
				    sizeof(chunk) - z->deflater.avail_out);
	} while (z->deflater.avail_out == 0);
}

const guint8 *imap_compress_out(const ImapCompress *z, gsize *out_len)
{
	*out_len = z->out->len - z->out_pos;
	return z->out->data + z->out_pos;
}

void imap_compress_consume(ImapCompress *z, gsize n)
{
	z->out_pos += n;
	if (z->out_pos == z->out->len) {
		/* What a big write grew is not kept. */
		if (z->out->len > 64 * 1024) {
			g_byte_array_unref(z->out);
			z->out = g_byte_array_new();
		} else {
			g_byte_array_set_size(z->out, 0);
		}
		z->out_pos = 0;
	}
}

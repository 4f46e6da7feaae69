/* Unit tests for imap/compress.c: what one side deflates the other
 * inflates byte for byte, whatever the buffer sizes; has_input() says
 * exactly whether more is there without new bytes; damaged data is an
 * error, never a crash. */
#include <string.h>

#include "imap/compress.h"
#include "imap/error.h"

/* Bytes that compress some (text) and some not (noise). */
static guint8 *make_bytes(gsize len, guint32 seed)
{
	guint8 *p = g_malloc(len);
	GRand *r = g_rand_new_with_seed(seed);

	for (gsize i = 0; i < len; i++)
		p[i] = (i / 4096) % 2 ? (guint8)g_rand_int(r)
				      : (guint8)("Subject: hello\r\n"[i % 16]);
	g_rand_free(r);
	return p;
}

/* What @z deflated, taken as a sender would, 1000 bytes at a time. */
static GByteArray *take_out(ImapCompress *z)
{
	GByteArray *wire = g_byte_array_new();
	gsize len;
	const guint8 *p;

	while ((p = imap_compress_out(z, &len)), len > 0) {
		gsize n = MIN(len, 1000);

		g_byte_array_append(wire, p, n);
		imap_compress_consume(z, n);
	}
	return wire;
}

/* Inflates @wire through @z in raw pieces of @piece, into reads of
 * @chunk bytes; returns what came out. */
static GByteArray *inflate_all(ImapCompress *z, const GByteArray *wire,
			       gsize piece, gsize chunk)
{
	GByteArray *got = g_byte_array_new();
	guint8 *buf = g_malloc(chunk);
	gsize fed = 0;

	for (;;) {
		GError *error = NULL;
		gssize n = imap_compress_inflate(z, buf, chunk, &error);

		g_assert_no_error(error);
		g_assert_cmpint(n, >=, 0);
		if (n > 0) {
			g_byte_array_append(got, buf, n);
			continue;
		}
		g_assert_false(imap_compress_has_input(z));
		if (fed == wire->len)
			break;
		{
			gsize room, take;
			guint8 *space = imap_compress_in_space(z, &room);

			g_assert_cmpuint(room, >, 0);
			take = MIN(MIN(piece, room), wire->len - fed);
			memcpy(space, wire->data + fed, take);
			imap_compress_in_added(z, take);
			fed += take;
		}
	}
	g_free(buf);
	return got;
}

static void test_round_trip(void)
{
	const gsize sizes[] = {1, 100, 16384, 70000, 300000};
	const gsize pieces[] = {1, 7, 1460, 65536};
	const gsize chunks[] = {1, 13, 4096, 16384, 262144};

	for (guint s = 0; s < G_N_ELEMENTS(sizes); s++) {
		g_autofree guint8 *data = make_bytes(sizes[s], s + 1);
		ImapCompress *tx = imap_compress_new();
		g_autoptr(GByteArray) wire = NULL;

		/* Two writes, each flushed, as a command and its literal. */
		imap_compress_deflate(tx, data, sizes[s] / 2);
		imap_compress_deflate(tx, data + sizes[s] / 2,
				      sizes[s] - sizes[s] / 2);
		wire = take_out(tx);
		if (sizes[s] >= 16384)
			g_assert_cmpuint(wire->len, <, sizes[s]);
		for (guint p = 0; p < G_N_ELEMENTS(pieces); p++)
			for (guint c = 0; c < G_N_ELEMENTS(chunks); c++) {
				ImapCompress *rx = imap_compress_new();
				g_autoptr(GByteArray) got = inflate_all(
					rx, wire, pieces[p], chunks[c]);

				g_assert_cmpmem(got->data, got->len, data,
						sizes[s]);
				imap_compress_free(rx);
			}
		imap_compress_free(tx);
	}
}

/* A flushed write read into a buffer of exactly its size leaves nothing
 * behind; one byte smaller leaves one byte, and has_input() says so. */
static void test_has_input_is_exact(void)
{
	g_autofree guint8 *data = make_bytes(16384, 9);
	guint8 buf[16384];
	ImapCompress *tx = imap_compress_new();
	g_autoptr(GByteArray) wire = NULL;
	GError *error = NULL;

	imap_compress_deflate(tx, data, sizeof(buf));
	wire = take_out(tx);
	for (gsize want = sizeof(buf) - 1; want <= sizeof(buf); want++) {
		ImapCompress *rx = imap_compress_new();
		gsize room;
		guint8 *space = imap_compress_in_space(rx, &room);

		g_assert_cmpuint(wire->len, <=, room);
		memcpy(space, wire->data, wire->len);
		imap_compress_in_added(rx, wire->len);
		g_assert_cmpint(imap_compress_inflate(rx, buf, want, &error),
				==, want);
		g_assert_no_error(error);
		g_assert_cmpmem(buf, want, data, want);
		g_assert_cmpint(imap_compress_has_input(rx), ==,
				want < sizeof(buf));
		if (want < sizeof(buf)) {
			g_assert_cmpint(imap_compress_inflate(rx, buf, 10,
							      &error),
					==, 1);
			g_assert_cmpint(buf[0], ==, data[want]);
			g_assert_false(imap_compress_has_input(rx));
		}
		g_assert_cmpint(imap_compress_inflate(rx, buf, 10, &error),
				==, 0);
		imap_compress_free(rx);
	}
	imap_compress_free(tx);
}

static void test_damaged_is_an_error(void)
{
	const guint8 junk[] = {0xff, 0xff, 0xff, 0xff, 0x12, 0x34};
	ImapCompress *rx = imap_compress_new();
	g_autoptr(GError) error = NULL;
	guint8 buf[64];
	gsize room;
	guint8 *space = imap_compress_in_space(rx, &room);

	memcpy(space, junk, sizeof(junk));
	imap_compress_in_added(rx, sizeof(junk));
	g_assert_cmpint(imap_compress_inflate(rx, buf, sizeof(buf), &error),
			==, -1);
	g_assert_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_CONNECTION_LOST);
	imap_compress_free(rx);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/imap-compress/round-trip", test_round_trip);
	g_test_add_func("/imap-compress/has-input-is-exact",
			test_has_input_is_exact);
	g_test_add_func("/imap-compress/damaged", test_damaged_is_an_error);
	return g_test_run();
}

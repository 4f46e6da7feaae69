/* tests/unit/test-imap-utf7.c — modified UTF-7 (imap/utf7.c).
 *
 * A table of {UTF-8, modified UTF-7} pairs that must convert both ways, a
 * table of strings that must not decode (NULL), invalid UTF-8 that must
 * not encode, and round trips over the whole BMP and random text.
 */
#include <string.h>

#include <glib.h>

#include "imap/utf7.h"

typedef struct {
	const char *utf8;
	const char *mutf7;
} Utf7Pair;

static const Utf7Pair valid_pairs[] = {
	{"", ""},
	{"INBOX", "INBOX"},
	{"Sent Items", "Sent Items"},
	{"&", "&-"},
	{"&&", "&-&-"},
	{"a&b", "a&-b"},
	{"Entwürfe", "Entw&APw-rfe"},
	{"Drafts/Entwürfe", "Drafts/Entw&APw-rfe"},
	{"日本語", "&ZeVnLIqe-"},
	/* RFC 3501 §5.1.3 */
	{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
	/* one, two and three UTF-16 units: 2, 4 and 0 padding bits */
	{"ü", "&APw-"},
	{"üü", "&APwA,A-"},
	{"üüü", "&APwA,AD8-"},
	/* outside the BMP: a surrogate pair */
	{"😀", "&2D3eAA-"},
	{"a😀b", "a&2D3eAA-b"},
	{"😀日", "&2D3eAGXl-"},
	/* '-' right after a run, '&' right after a run */
	{"é-", "&AOk--"},
	{"ü&", "&APw-&-"},
	{"&ü", "&-&APw-"},
	/* controls are not printable, so they are encoded */
	{"a\tb", "a&AAk-b"},
	{"\r\n", "&AA0ACg-"},
	{"\x7f", "&AH8-"},
	{"~!\"#$%'()*+,-./:;<=>?@[\\]^_`{|}",
	 "~!\"#$%'()*+,-./:;<=>?@[\\]^_`{|}"},
	{"€uro", "&IKw-uro"},
	{"\xef\xbf\xbd", "&,,0-"}, /* U+FFFD: uses ',' (63) */
};

static const char *const invalid_mutf7[] = {
	"&",		   /* unterminated */
	"a&",		   /* unterminated */
	"&APw",		   /* unterminated run */
	"&2D3eAA",	   /* unterminated run */
	"&A-",		   /* 6 bits: no character */
	"&,-",		   /* 6 bits: no character */
	"&AP-",		   /* 12 bits: no character */
	"&APx-",	   /* non-zero padding bits */
	"&APwA-",	   /* a base64 character too many */
	"&APwAAA-",	   /* a base64 character too many after two units */
	"&AP/-",	   /* '/' is not modified base64 */
	"&AP+-x",	   /* U+00FF, padding bits not zero */
	"&APw=-",	   /* no '=' padding */
	"&AP w-",	   /* space inside a run */
	"&Jjo!-",	   /* bad character */
	"&AGE-",	   /* 'a' must be direct */
	"&ACY-",	   /* '&' must be "&-" */
	"&ACA-",	   /* ' ' must be direct */
	"&AH4-",	   /* '~' must be direct */
	"&AOQAYQ-",	   /* ä then an encoded 'a' */
	"&AAA-",	   /* U+0000 */
	"&2D0-",	   /* lone high surrogate */
	"&2D3YPQ-",	   /* high surrogate, then another high */
	"&3gA-",	   /* lone low surrogate */
	"&3gDYPQ-",	   /* low before high */
	"&2D0AYQ-",	   /* high surrogate, then 'a' */
	"&2D0-&3gA-",	   /* a pair split across two runs */
	"&APw-&APw-",	   /* null shift "-&" */
	"&AGE-&AGE-",	   /* null shift, encoded ASCII too */
	"Entw\xc3\xbcrfe", /* raw 8-bit (UTF-8) */
	"a\x80",
	"\xff",
	"a\tb", /* raw control */
	"a\rb",
	"a\nb",
	"\x7f",
	"&-&", /* "&-" fine, then an unterminated "&" */
};

static const char *const invalid_utf8[] = {
	"\xff",
	"a\xc3",	    /* truncated sequence */
	"\xc3\x28",	    /* bad continuation */
	"\xc0\xaf",	    /* overlong '/' */
	"\xe0\x80\xaf",	    /* overlong '/' */
	"\xed\xa0\x80",	    /* UTF-8 encoded surrogate */
	"\xf4\x90\x80\x80", /* beyond U+10FFFF */
	"\x80",
	"Entw\xfcrfe", /* Latin-1 */
};

static void test_valid_pairs(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(valid_pairs); i++) {
		const Utf7Pair *t = &valid_pairs[i];
		g_autofree char *enc = imap_utf7_encode(t->utf8);
		g_autofree char *dec = imap_utf7_decode(t->mutf7);

		g_test_message("pair %" G_GSIZE_FORMAT ": %s", i, t->mutf7);
		g_assert_cmpstr(enc, ==, t->mutf7);
		g_assert_cmpstr(dec, ==, t->utf8);
	}
}

static void test_invalid_mutf7(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(invalid_mutf7); i++) {
		g_autofree char *dec = imap_utf7_decode(invalid_mutf7[i]);

		if (dec)
			g_test_message("accepted %" G_GSIZE_FORMAT ": %s", i,
				       invalid_mutf7[i]);
		g_assert_null(dec);
	}
}

static void test_invalid_utf8(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(invalid_utf8); i++) {
		g_autofree char *enc = imap_utf7_encode(invalid_utf8[i]);

		g_assert_null(enc);
	}
}

static void assert_printable(const char *s)
{
	for (const char *p = s; *p; p++)
		g_assert_true(*p >= 0x20 && *p <= 0x7e);
}

/* Every BMP character that is not a surrogate, alone and between ASCII. */
static void test_bmp_round_trip(void)
{
	for (gunichar c = 1; c < 0x10000; c++) {
		char buf[16];
		int n;

		if (c >= 0xd800 && c <= 0xdfff)
			continue;
		buf[0] = 'x';
		n = g_unichar_to_utf8(c, buf + 1);
		buf[1 + n] = 'y';
		buf[2 + n] = '\0';

		g_autofree char *enc = imap_utf7_encode(buf);
		g_assert_nonnull(enc);
		assert_printable(enc);
		g_autofree char *dec = imap_utf7_decode(enc);
		g_assert_cmpstr(dec, ==, buf);
	}
}

/* Random strings mixing ASCII, '&', '-', BMP and astral characters. */
static void test_random_round_trip(void)
{
	static const gunichar pool[] = {
		'a',  '&',    '-',    ' ',    '/',     0x7f,	 '\t',
		0xe4, 0x20ac, 0xfffd, 0x65e5, 0x1f600, 0x10ffff, 0x10000};

	for (int round = 0; round < 20000; round++) {
		g_autoptr(GString) s = g_string_new(NULL);
		int len = g_test_rand_int_range(0, 12);

		for (int i = 0; i < len; i++)
			g_string_append_unichar(
				s, pool[g_test_rand_int_range(
					   0, G_N_ELEMENTS(pool))]);

		g_autofree char *enc = imap_utf7_encode(s->str);
		g_assert_nonnull(enc);
		assert_printable(enc);
		g_autofree char *dec = imap_utf7_decode(enc);
		g_assert_cmpstr(dec, ==, s->str);
	}
}

/* Strict decoding means one encoding per name: whatever decodes must
 * encode back to the same bytes. Try many short strings over the
 * characters that matter. */
static void test_decode_is_canonical(void)
{
	static const char alphabet[] = "&-AZaz09+,/=P w";
	const int n = sizeof(alphabet) - 1;
	char buf[8];

	for (int round = 0; round < 200000; round++) {
		int len = g_test_rand_int_range(1, 8);

		buf[0] = '&';
		for (int i = 1; i < len; i++)
			buf[i] = alphabet[g_test_rand_int_range(0, n)];
		buf[len] = '\0';

		g_autofree char *dec = imap_utf7_decode(buf);
		if (!dec)
			continue;
		g_autofree char *enc = imap_utf7_encode(dec);
		g_assert_cmpstr(enc, ==, buf);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/imap/utf7/valid-pairs", test_valid_pairs);
	g_test_add_func("/imap/utf7/invalid-mutf7", test_invalid_mutf7);
	g_test_add_func("/imap/utf7/invalid-utf8", test_invalid_utf8);
	g_test_add_func("/imap/utf7/bmp-round-trip", test_bmp_round_trip);
	g_test_add_func("/imap/utf7/random-round-trip", test_random_round_trip);
	g_test_add_func("/imap/utf7/decode-is-canonical",
			test_decode_is_canonical);
	return g_test_run();
}

/* imap/utf7.c — modified UTF-7 for mailbox names (RFC 3501 §5.1.3).
 *
 * On the wire a mailbox name is 7-bit: printable US-ASCII (0x20-0x7e)
 * stands for itself, "&" is written "&-", and every other character is
 * UTF-16BE in base64 (',' instead of '/', no '=' padding) between "&" and
 * "-". Consecutive non-ASCII characters share one run, because the RFC
 * forbids null shifts ("-&" inside a name).
 *
 * Decoding is strict: each name has exactly one valid encoding, so a name
 * read from LIST and encoded again gives back the same bytes. Rejected:
 * raw 8-bit or control bytes, an unterminated run, a run that encodes a
 * character that could have been sent directly (or U+0000), a base64
 * character more than needed or non-zero padding bits, a lone or reversed
 * surrogate, and a run that starts right where another ended.
 *
 * Pure functions without state; safe from any thread.
 */
#include "imap/utf7.h"

#include <string.h>

static const char utf7_b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int utf7_b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

/* Characters that must be sent as themselves, never encoded. */
static gboolean utf7_is_direct(gunichar c)
{
	return c >= 0x20 && c <= 0x7e;
}

static gboolean utf7_is_high(gunichar u)
{
	return u >= 0xd800 && u <= 0xdbff;
}

static gboolean utf7_is_low(gunichar u)
{
	return u >= 0xdc00 && u <= 0xdfff;
}

/* Appends one UTF-16 unit to a base64 run; *bits keeps the *nbits (< 6)
 * bits not written yet. */
static void utf7_put_unit(GString *out, guint32 unit, guint32 *bits, int *nbits)
{
	*bits = (*bits << 16) | unit;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		g_string_append_c(out, utf7_b64[(*bits >> *nbits) & 0x3f]);
	}
	*bits &= (1u << *nbits) - 1;
}

char *imap_utf7_encode(const char *in)
{
	g_return_val_if_fail(in != NULL, NULL);

	if (!g_utf8_validate(in, -1, NULL))
		return NULL;

	GString *out = g_string_sized_new(strlen(in) + 8);
	const char *p = in;

	while (*p) {
		gunichar c = g_utf8_get_char(p);

		if (utf7_is_direct(c)) {
			g_string_append_c(out, (char)c);
			if (c == '&')
				g_string_append_c(out, '-');
			p = g_utf8_next_char(p);
			continue;
		}

		guint32 bits = 0;
		int nbits = 0;

		g_string_append_c(out, '&');
		while (*p && !utf7_is_direct(c = g_utf8_get_char(p))) {
			if (c >= 0x10000) {
				c -= 0x10000;
				utf7_put_unit(out, 0xd800 + (c >> 10), &bits,
					      &nbits);
				utf7_put_unit(out, 0xdc00 + (c & 0x3ff), &bits,
					      &nbits);
			} else {
				utf7_put_unit(out, c, &bits, &nbits);
			}
			p = g_utf8_next_char(p);
		}
		if (nbits > 0)
			g_string_append_c(out, utf7_b64[bits << (6 - nbits)]);
		g_string_append_c(out, '-');
	}
	return g_string_free(out, FALSE);
}

/* Decodes the base64 run at *pp (just after "&", not "&-") up to and
 * including its "-", appending UTF-8 to @out. FALSE if it is not the
 * canonical encoding of at least one non-direct character. */
static gboolean utf7_decode_run(const char **pp, GString *out)
{
	const char *p = *pp;
	guint32 bits = 0;
	int nbits = 0;
	gunichar high = 0;

	while (*p != '-') {
		int v = utf7_b64_value(*p);

		if (v < 0)
			return FALSE; /* bad character, or unterminated */
		bits = (bits << 6) | (guint32)v;
		nbits += 6;
		p++;
		if (nbits < 16)
			continue;

		nbits -= 16;
		gunichar u = (bits >> nbits) & 0xffff;

		bits &= (1u << nbits) - 1;
		if (high) {
			if (!utf7_is_low(u))
				return FALSE;
			u = 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00);
			high = 0;
		} else if (utf7_is_high(u)) {
			high = u;
			continue;
		} else if (utf7_is_low(u) || u == 0 || utf7_is_direct(u)) {
			return FALSE;
		}
		g_string_append_unichar(out, u);
	}
	/* A pending high surrogate, a whole extra base64 character, or
	 * padding bits that are not zero: not what an encoder writes. */
	if (high || nbits >= 6 || bits != 0)
		return FALSE;
	*pp = p + 1;
	return TRUE;
}

char *imap_utf7_decode(const char *in)
{
	g_return_val_if_fail(in != NULL, NULL);

	g_autoptr(GString) out = g_string_sized_new(strlen(in));
	const char *p = in;
	gboolean after_run = FALSE;

	while (*p) {
		if (*p != '&') {
			if (!utf7_is_direct((guchar)*p))
				return NULL;
			g_string_append_c(out, *p);
			p++;
			after_run = FALSE;
			continue;
		}
		p++;
		if (*p == '-') {
			g_string_append_c(out, '&');
			p++;
			after_run = FALSE;
			continue;
		}
		/* "-&" is a null shift, not permitted (RFC 3501 §5.1.3). */
		if (after_run)
			return NULL;
		if (!utf7_decode_run(&p, out))
			return NULL;
		after_run = TRUE;
	}
	return g_string_free(g_steal_pointer(&out), FALSE);
}

/* cache/text.c — decoding header text with GMime.
 *
 * g_mime_utils_header_decode_text() handles RFC 2047 encoded words and
 * guesses the charset of raw 8-bit text; we then guarantee valid UTF-8 and
 * a single line, since the result ends up in file names and xattrs.
 */
#include "cache/text.h"

#include <gmime/gmime.h>
#include <string.h>

/* Undeclared 8-bit header text is taken as UTF-8 where it is valid, else
 * as Windows-1252 (Outlook's quotes and euro sign), not ISO-8859-1, whose
 * C1 controls those bytes would be. Read-only once made. */
static GMimeParserOptions *options;

void cache_text_init(void)
{
	static gsize once;

	if (g_once_init_enter(&once)) {
		static const char *fallback[] = {"utf-8", "windows-1252",
						 NULL};

		g_mime_init();
		options = g_mime_parser_options_new();
		g_mime_parser_options_set_fallback_charsets(options, fallback);
		g_once_init_leave(&once, 1);
	}
}

char *cache_text_one_line(const char *text)
{
	g_autofree char *valid = NULL;
	GString *out;
	char *result;
	gboolean space = FALSE;

	if (!text)
		return NULL;
	valid = g_utf8_make_valid(text, -1);
	out = g_string_sized_new(MIN(strlen(valid), CACHE_TEXT_MAX));
	for (const char *p = valid; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);

		if (c == '\r' || c == '\n' || c == '\t' || c == ' ') {
			space = TRUE;
			continue;
		}
		/* Other controls (ESC and the like) would reach a terminal
		 * that shows the xattr. */
		if (g_unichar_iscntrl(c))
			c = 0xFFFD;
		if (out->len + (space && out->len) + 4 > CACHE_TEXT_MAX)
			break;
		if (space && out->len > 0)
			g_string_append_c(out, ' ');
		space = FALSE;
		g_string_append_unichar(out, c);
	}
	/* Kept as long as the message is listed: its size, not the
	 * GString's power of two (about 250 bytes a message). */
	result = g_strndup(out->str, out->len);
	g_string_free(out, TRUE);
	return result;
}

/* The value of base64 digit @c, or -1. */
static int base64_value(char c)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				     "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *at = c ? strchr(digits, c) : NULL;

	return at ? (int)(at - digits) : -1;
}

/* The bytes of the B-encoded text [@p, @end), Q-encoded onto @out. Other
 * characters than digits are skipped, and padding ends a group wherever it
 * stands: a word that lacks its padding, or two words run together, still
 * give all their bytes. */
static void base64_as_q(GString *out, const char *p, const char *end)
{
	guint32 bits = 0;
	int n = 0;

	for (;; p++) {
		int v = p < end ? base64_value(*p) : -1;

		if (v >= 0) {
			bits = bits << 6 | (guint32)v;
			if (++n < 4)
				continue;
		} else if (p < end && *p != '=') {
			continue;
		}
		/* A group of 4 digits (3 bytes), or fewer before padding or
		 * the end: 2 digits are 1 byte, 3 are 2. */
		if (n > 1) {
			bits <<= 6 * (4 - n);
			for (int i = 0; i < n - 1; i++) {
				guint8 byte = bits >> (16 - 8 * i) & 0xff;

				if (g_ascii_isalnum(byte))
					g_string_append_c(out, (char)byte);
				else
					g_string_append_printf(out, "=%02X",
							       byte);
			}
		}
		bits = 0;
		n = 0;
		if (p >= end)
			return;
	}
}

/* @raw with each B-encoded word ("=?charset?B?text?=") Q-encoded instead,
 * the same bytes in the same charset; NULL when it has none. GMime 3.2.13
 * (Debian 12's) loses the rest of a field after a B word that ends in
 * padding when another word of that charset follows: Thunderbird's way of
 * splitting a long Subject ("=?UTF-8?B?YWI=?= =?UTF-8?B?Y2Q=?=" read as
 * "ab"), and it reads a word without its padding as nothing (GMime issue
 * 133). Its Q decoding has neither fault, and still joins a character
 * that a sender split across two words. */
static char *b_words_as_q(const char *raw)
{
	GString *out = NULL;
	const char *copied = raw;

	for (const char *p = strstr(raw, "=?"); p; p = strstr(p, "=?")) {
		const char *charset = p + 2;
		const char *mark = charset + strcspn(charset, "?\r\n");
		const char *text, *end;

		if (*mark != '?' || mark == charset ||
		    g_ascii_toupper(mark[1]) != 'B' || mark[2] != '?') {
			p += 2;
			continue;
		}
		text = mark + 3;
		end = strchr(text, '?');
		if (!end || end[1] != '=') {
			p += 2;
			continue;
		}
		if (!out)
			out = g_string_sized_new(strlen(raw) * 2);
		g_string_append_len(out, copied, charset - copied);
		g_string_append_len(out, charset, mark - charset);
		g_string_append(out, "?Q?");
		base64_as_q(out, text, end);
		g_string_append(out, "?=");
		copied = p = end + 2;
	}
	if (!out)
		return NULL;
	g_string_append(out, copied);
	return g_string_free(out, FALSE);
}

char *cache_text_decode_header(const char *raw)
{
	g_autofree char *decoded = NULL;
	g_autofree char *q = NULL;

	if (!raw)
		return NULL;
	q = b_words_as_q(raw);
	decoded = g_mime_utils_header_decode_text(options, q ? q : raw);
	return cache_text_one_line(decoded ? decoded : raw);
}

static gboolean blank(const char *s, const char *end)
{
	for (; s < end && *s; s++) {
		if (!g_ascii_isspace(*s))
			return FALSE;
	}
	return TRUE;
}

char *cache_text_header_field(const char *block, gsize len, const char *name)
{
	const char *end = block + len;
	gsize n = strlen(name);
	char *empty = NULL;

	for (const char *line = block; line < end;) {
		const char *eol = memchr(line, '\n', end - line);
		const char *next = eol ? eol + 1 : end;
		const char *p = line + n;

		/* "Name", optional blanks (obsolete syntax), ":" */
		if ((gsize)(end - line) > n &&
		    g_ascii_strncasecmp(line, name, n) == 0) {
			while (p < next && (*p == ' ' || *p == '\t'))
				p++;
			if (p < next && *p == ':') {
				/* The value goes on over lines that start
				 * with a blank. */
				while (next < end &&
				       (*next == ' ' || *next == '\t')) {
					eol = memchr(next, '\n', end - next);
					next = eol ? eol + 1 : end;
				}
				/* An empty one gives way to a later one with
				 * text, as mail readers do. */
				if (!blank(p + 1, next)) {
					g_free(empty);
					return g_strndup(p + 1, next - (p + 1));
				}
				if (!empty)
					empty = g_strndup(p + 1,
							  next - (p + 1));
			}
		}
		line = next;
	}
	return empty;
}

/* The first mailbox of @list, looking into groups too. (transfer none) */
static InternetAddressMailbox *first_mailbox(InternetAddressList *list)
{
	for (int i = 0; list && i < internet_address_list_length(list); i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		InternetAddressMailbox *mb = NULL;

		if (INTERNET_ADDRESS_IS_MAILBOX(ia))
			mb = INTERNET_ADDRESS_MAILBOX(ia);
		else if (INTERNET_ADDRESS_IS_GROUP(ia))
			mb = first_mailbox(internet_address_group_get_members(
				INTERNET_ADDRESS_GROUP(ia)));
		/* A bare word is no address unless it has a name with it. */
		if (mb && internet_address_mailbox_get_addr(mb) &&
		    (strchr(internet_address_mailbox_get_addr(mb), '@') ||
		     (internet_address_get_name(INTERNET_ADDRESS(mb)) &&
		      *internet_address_get_name(INTERNET_ADDRESS(mb)))))
			return mb;
	}
	return NULL;
}

char *cache_text_decode_address(const char *raw)
{
	InternetAddressList *list;
	InternetAddressMailbox *mb;
	g_autofree char *q = NULL;
	char *out;

	if (!raw)
		return NULL;
	q = b_words_as_q(raw);
	list = internet_address_list_parse(options, q ? q : raw);
	mb = first_mailbox(list);
	if (!mb) {
		out = cache_text_decode_header(raw);
	} else {
		const char *name =
			internet_address_get_name(INTERNET_ADDRESS(mb));
		/* A domain written in punycode stays so: decoded, a
		 * look-alike letter from another script passes for the
		 * real one (pаypal.com). */
		const char *addr =
			g_str_is_ascii(raw)
				? internet_address_mailbox_get_idn_addr(mb)
				: internet_address_mailbox_get_addr(mb);
		g_autofree char *both =
			name && *name ? g_strdup_printf("%s <%s>", name, addr)
				      : g_strdup(addr);

		out = cache_text_one_line(both);
	}
	if (list)
		g_object_unref(list);
	if (out && !*out)
		g_clear_pointer(&out, g_free); /* an empty From: none */
	return out;
}

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

/* The embeddings, overrides and isolates that reorder a run of text. The
 * marks (LRM, RLM, ALM), which Outlook puts in Hebrew and Arabic text,
 * cannot turn "fdp.exe" round and stay. */
static gboolean bidi_control(gunichar c)
{
	return (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
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
		 * that shows the xattr, and bidirectional overrides would
		 * show "invoice<RLO>fdp.exe" as "invoiceexe.pdf". */
		if (g_unichar_iscntrl(c) || bidi_control(c))
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

/* Charset labels of encoded words as browsers and mail readers take them
 * (the WHATWG Encoding Standard), where GMime or iconv would not: labels
 * iconv does not know (JavaMail's windows-31j, ksc5601), and labels that
 * senders put on their vendor's superset (Outlook's iso-8859-1 text with
 * curly quotes and the euro sign is Windows-1252; ks_c_5601-1987 is
 * Windows-949). */
static const struct {
	const char *label;
	const char *iconv_name;
} charset_labels[] = {
	{"us-ascii", "WINDOWS-1252"},	 {"ascii", "WINDOWS-1252"},
	{"iso-8859-1", "WINDOWS-1252"},	 {"iso8859-1", "WINDOWS-1252"},
	{"iso_8859-1", "WINDOWS-1252"},	 {"latin1", "WINDOWS-1252"},
	{"l1", "WINDOWS-1252"},		 {"x-cp1252", "WINDOWS-1252"},
	{"iso-8859-9", "WINDOWS-1254"},	 {"latin5", "WINDOWS-1254"},
	{"iso-8859-11", "WINDOWS-874"},	 {"tis-620", "WINDOWS-874"},
	{"x-cp1250", "WINDOWS-1250"},	 {"x-cp1251", "WINDOWS-1251"},
	{"l9", "ISO-8859-15"},		 {"latin9", "ISO-8859-15"},
	{"logical", "ISO-8859-8"},	 {"visual", "ISO-8859-8"},
	{"iso-8859-8-i", "ISO-8859-8"},	 {"koi", "KOI8-R"},
	{"koi8", "KOI8-R"},		 {"x-mac-roman", "MACINTOSH"},
	{"mac", "MACINTOSH"},		 {"x-mac-cyrillic", "MAC-CYRILLIC"},
	{"shift_jis", "CP932"},		 {"shift-jis", "CP932"},
	{"sjis", "CP932"},		 {"x-sjis", "CP932"},
	{"windows-31j", "CP932"},	 {"ms_kanji", "CP932"},
	{"euc-jp", "EUC-JP-MS"},	 {"x-euc-jp", "EUC-JP-MS"},
	{"euc-kr", "CP949"},		 {"ks_c_5601-1987", "CP949"},
	{"ks_c_5601-1989", "CP949"},	 {"ksc5601", "CP949"},
	{"ksc_5601", "CP949"},		 {"korean", "CP949"},
	{"csksc56011987", "CP949"},	 {"iso-ir-149", "CP949"},
	{"gb2312", "GB18030"},		 {"gbk", "GB18030"},
	{"x-gbk", "GB18030"},		 {"chinese", "GB18030"},
	{"gb_2312-80", "GB18030"},	 {"x-euc-cn", "GB18030"},
	{"csiso58gb231280", "GB18030"},	 {"iso-ir-58", "GB18030"},
	{"eucgb2312_cn", "GB18030"},	 {"big5", "BIG5-HKSCS"},
	{"x-x-big5", "BIG5-HKSCS"},	 {"csbig5", "BIG5-HKSCS"},
	{"big5_tw", "BIG5-HKSCS"},	 {"cn-big5", "BIG5-HKSCS"},
	{"iso-2022-jp", "ISO-2022-JP-3"}, /* half-width katakana */
};

/* The charset to decode [@label, @end) with: from the table, else as
 * written. An RFC 2231 language ("utf-8*en") is kept. */
static void append_charset(GString *out, const char *label, const char *end)
{
	const char *star = memchr(label, '*', end - label);
	gsize n = (star ? star : end) - label;

	for (gsize i = 0; i < G_N_ELEMENTS(charset_labels); i++) {
		if (strlen(charset_labels[i].label) == n &&
		    g_ascii_strncasecmp(label, charset_labels[i].label, n) ==
			    0) {
			g_string_append(out, charset_labels[i].iconv_name);
			g_string_append_len(out, label + n, end - label - n);
			return;
		}
	}
	g_string_append_len(out, label, end - label);
}

/* Whether an encoded word may start at @p in @raw, or end before @p: at
 * the ends, by a blank, a quote or a parenthesis, or by another encoded
 * word; not inside an address or other text. */
static gboolean word_may_start(const char *raw, const char *p,
			       const char *last_end)
{
	return p == raw || p == last_end || strchr(" \t\r\n\"(,:;", p[-1]);
}

static gboolean word_may_end(const char *p)
{
	return !*p || strchr(" \t\r\n\")<,:;", *p) ||
	       g_str_has_prefix(p, "=?");
}

/* @raw with its encoded words ("=?charset?B|Q?text?=") made ready for
 * GMime, or NULL where nothing needs to change:
 * - the charset label as the table above reads it;
 * - a B word as the same bytes Q-encoded. GMime 3.2.13 (Debian 12's)
 *   loses the rest of a field after a B word that ends in padding when
 *   another word of that charset follows: Thunderbird's way of splitting
 *   a long Subject ("=?UTF-8?B?YWI=?= =?UTF-8?B?Y2Q=?=" read as "ab"),
 *   and it reads a word without its padding as nothing (GMime issue
 *   133). Its Q decoding has neither fault, and still joins a character
 *   that a sender split across two words.
 * Only words that stand as words are touched; one inside an address or
 * other text is left as written, as GMime leaves it. */
static char *encoded_words_for_gmime(const char *raw)
{
	GString *out = NULL;
	const char *copied = raw, *last_end = NULL;

	for (const char *p = strstr(raw, "=?"); p; p = strstr(p, "=?")) {
		const char *charset = p + 2;
		const char *mark = charset + strcspn(charset, "?\r\n");
		const char *text, *end;
		char encoding;

		if (*mark != '?' || mark == charset || !mark[1] ||
		    mark[2] != '?') {
			p += 2;
			continue;
		}
		encoding = g_ascii_toupper(mark[1]);
		text = mark + 3;
		end = strchr(text, '?');
		if ((encoding != 'B' && encoding != 'Q') || !end ||
		    end[1] != '=' || !word_may_start(raw, p, last_end) ||
		    !word_may_end(end + 2)) {
			p += 2;
			continue;
		}
		if (!out)
			out = g_string_sized_new(strlen(raw) * 2);
		g_string_append_len(out, copied, charset - copied);
		append_charset(out, charset, mark);
		if (encoding == 'B') {
			g_string_append(out, "?Q?");
			base64_as_q(out, text, end);
		} else {
			g_string_append_len(out, mark, end - mark);
		}
		g_string_append(out, "?=");
		copied = p = last_end = end + 2;
	}
	if (!out)
		return NULL;
	g_string_append(out, copied);
	return g_string_free(out, FALSE);
}

/* @raw in UTF-8 where it is undeclared ISO-2022-JP (7-bit text with JIS
 * escape sequences, as older Japanese mailers and lists send a Subject),
 * else NULL. Its encoded words, ASCII, come through as they were. */
static char *undeclared_iso2022jp(const char *raw)
{
	if ((!strstr(raw, "\x1b$B") && !strstr(raw, "\x1b$@")) ||
	    !g_str_is_ascii(raw))
		return NULL;
	return g_convert(raw, -1, "UTF-8", "ISO-2022-JP-3", NULL, NULL, NULL);
}

/* @raw as GMime is given it: undeclared ISO-2022-JP in UTF-8, encoded
 * words as encoded_words_for_gmime() makes them. (transfer full) */
static char *ready_for_gmime(const char *raw)
{
	g_autofree char *jis = undeclared_iso2022jp(raw);
	const char *text = jis ? jis : raw;
	char *words = encoded_words_for_gmime(text);

	return words ? words : g_strdup(text);
}

/* The text of @ready (from ready_for_gmime()) decoded, on one line. */
static char *decode_ready(const char *ready)
{
	g_autofree char *decoded =
		g_mime_utils_header_decode_text(options, ready);

	return cache_text_one_line(decoded ? decoded : ready);
}

char *cache_text_decode_header(const char *raw)
{
	g_autofree char *ready = NULL;

	if (!raw)
		return NULL;
	ready = ready_for_gmime(raw);
	return decode_ready(ready);
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
	g_autofree char *ready = NULL;
	char *out;

	if (!raw)
		return NULL;
	ready = ready_for_gmime(raw);
	list = internet_address_list_parse(options, ready);
	mb = first_mailbox(list);
	if (!mb) {
		out = decode_ready(ready);
	} else {
		const char *name =
			internet_address_get_name(INTERNET_ADDRESS(mb));
		/* A domain written in punycode stays so: decoded, a
		 * look-alike letter from another script passes for the
		 * real one (pаypal.com). GMime gives it decoded; the
		 * decoded form is shown only where the punycode form is
		 * nowhere in the field (an address in UTF-8, RFC 6532). */
		const char *addr = internet_address_mailbox_get_idn_addr(mb);

		if (!strcasestr(raw, addr))
			addr = internet_address_mailbox_get_addr(mb);
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

/* Unit tests for cache/text.c: header fields picked out of the lines a
 * listing's BODY.PEEK[HEADER.FIELDS (...)] returns, and From and Subject
 * decoded to one line of UTF-8, with the shapes real and hostile mail
 * takes: folds, any case, several of a field, NUL bytes, no final line
 * end, groups, quoted names, encoded words, 8-bit bytes.
 */
#include <string.h>

#include <glib.h>

#include "cache/text.h"

/* The field @name of @block, decoded as a name or xattr would show it. */
static char *field(const char *block, const char *name)
{
	g_autofree char *raw =
		cache_text_header_field(block, strlen(block), name);

	return cache_text_decode_header(raw);
}

static void test_field_plain(void)
{
	static const char block[] = "From: A <a@b.org>\r\n"
				    "Subject: Quarterly report\r\n"
				    "Message-ID: <x1@b.org>\r\n\r\n";
	g_autofree char *subject = field(block, "Subject");
	g_autofree char *from = field(block, "From");
	g_autofree char *id = field(block, "Message-ID");
	g_autofree char *raw =
		cache_text_header_field(block, strlen(block), "Subject");

	g_assert_cmpstr(subject, ==, "Quarterly report");
	g_assert_cmpstr(from, ==, "A <a@b.org>");
	g_assert_cmpstr(id, ==, "<x1@b.org>");
	g_assert_cmpstr(raw, ==, " Quarterly report\r\n");
	g_assert_null(cache_text_header_field(block, strlen(block), "To"));
}

static void test_field_shapes(void)
{
	/* any case, folds with spaces and tabs, the first of two */
	static const char folded[] = "subject: one\r\n two\r\n\tthree\r\n"
				     "SUBJECT: second\r\n";
	/* obsolete blanks before the colon; bare LF; no final line end */
	static const char odd[] = "Subject-Extra: no\nSubjectx: no\n"
				  "Subject \t: yes\nFrom: last";
	g_autofree char *a = field(folded, "Subject");
	g_autofree char *b = field(odd, "Subject");
	g_autofree char *c = field(odd, "From");

	g_assert_cmpstr(a, ==, "one two three");
	g_assert_cmpstr(b, ==, "yes");
	g_assert_cmpstr(c, ==, "last");
}

static void test_field_hostile(void)
{
	static const char nul[] = "Subject: a\0b\r\nFrom: x@y.org\r\n";
	g_autofree char *cut = NULL;
	g_autofree char *after = NULL;
	g_autofree char *empty = NULL;
	g_autofree char *bare = NULL;

	/* a NUL ends the value there; the fields after it still count */
	cut = cache_text_header_field(nul, sizeof(nul) - 1, "Subject");
	g_assert_cmpstr(cut, ==, " a");
	after = cache_text_header_field(nul, sizeof(nul) - 1, "From");
	g_assert_cmpstr(after, ==, " x@y.org\r\n");
	/* only @len bytes are read */
	g_assert_null(cache_text_header_field("Subject: x", 7, "Subject"));
	empty = cache_text_header_field("Subject:", 8, "Subject");
	g_assert_cmpstr(empty, ==, "");
	g_assert_null(cache_text_header_field("", 0, "Subject"));
	g_assert_null(cache_text_header_field("\r\n\r\n", 4, "Subject"));
	/* a continuation line alone is no field */
	g_assert_null(cache_text_header_field(" Subject: x\r\n", 13,
					      "Subject"));
	/* a name with no colon at all */
	g_assert_null(cache_text_header_field("Subject\r\nx", 10, "Subject"));
	/* a fold that runs to the end */
	bare = field("Subject: a\r\n \r\n \r\n", "Subject");
	g_assert_cmpstr(bare, ==, "a");
}

/* An empty field gives way to a later one with text (as mutt does); one
 * that is only empty is empty. */
static void test_field_empty_first(void)
{
	static const char block[] = "Subject:\r\nSubject:  \r\n"
				    "Subject: real\r\nFrom: \r\n";
	g_autofree char *subject = field(block, "Subject");
	g_autofree char *from =
		cache_text_header_field(block, strlen(block), "From");

	g_assert_cmpstr(subject, ==, "real");
	g_assert_cmpstr(from, ==, " \r\n");
}

/* What ends up in an xattr: no control character reaches a terminal, and
 * the length is bounded, cut on a character. */
static void test_one_line(void)
{
	g_autofree char *esc = cache_text_one_line("red\x1b[31m\x07"
						   "bell\x7f");
	g_autofree char *bidi = cache_text_one_line(
		"invoice\xe2\x80\xae" "fdp.exe \xf0\x9f\x91\xa8\xe2\x80\x8d"
		"\xf0\x9f\x91\xa9 \xd7\xa9\xe2\x80\x8f");
	g_autofree char *c1 = cache_text_decode_header("a\x81z");
	g_autofree char *cp1252 =
		cache_text_decode_header("\x93quoted\x94 \x80" "5");
	g_autofree char *utf8 = cache_text_decode_header("Gr\xc3\xbc\xc3\x9f"
								"e");
	g_autofree char *id = cache_text_one_line(" <=?utf-8?q?x?=@y>\r\n");
	g_autoptr(GString) long_text = g_string_new(NULL);
	g_autofree char *cut = NULL;

	g_assert_cmpstr(esc, ==, "red\xef\xbf\xbd[31m\xef\xbf\xbd"
				 "bell\xef\xbf\xbd");
	/* a right-to-left override turns "fdp.exe" around on a terminal;
	 * a zero width joiner (emoji sequences) stays, and so does a
	 * right-to-left mark (Outlook's Hebrew and Arabic) */
	g_assert_cmpstr(bidi, ==, "invoice\xef\xbf\xbd" "fdp.exe \xf0\x9f\x91"
				  "\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9 "
				  "\xd7\xa9\xe2\x80\x8f");
	g_assert_null(strchr(c1, '\xc2')); /* no U+0080 */
	/* undeclared 8-bit text: UTF-8 where valid, else Windows-1252 */
	g_assert_cmpstr(cp1252, ==, "\xe2\x80\x9cquoted\xe2\x80\x9d "
				    "\xe2\x82\xac" "5");
	g_assert_cmpstr(utf8, ==, "Gr\xc3\xbc\xc3\x9f" "e");
	g_assert_cmpstr(id, ==, "<=?utf-8?q?x?=@y>");
	for (guint i = 0; i < 3000; i++)
		g_string_append(long_text, "\xc3\xa9"); /* 6000 bytes */
	cut = cache_text_one_line(long_text->str);
	g_assert_cmpuint(strlen(cut), <=, CACHE_TEXT_MAX);
	g_assert_cmpuint(strlen(cut), >, CACHE_TEXT_MAX - 8);
	g_assert_true(g_utf8_validate(cut, -1, NULL));
	g_assert_null(cache_text_one_line(NULL));
}

/* Encoded words as senders write them. A long Subject split into several
 * B words, each padded (Thunderbird's way), lost all but its first word
 * with GMime 3.2.13's decoder alone. */
static void test_encoded_words(void)
{
	static const struct {
		const char *raw;
		const char *want;
	} cases[] = {
		/* "ab" + "cd", each padded */
		{"=?UTF-8?B?YWI=?= =?UTF-8?B?Y2Q=?=", "abcd"},
		/* folded, three words, lower-case b */
		{"=?utf-8?b?SGVs?=\r\n =?utf-8?b?bG8g?=\r\n\t"
		 "=?utf-8?b?d29ybGQ=?=",
		 "Hello world"},
		/* "Grüße" in ISO-8859-1, then " aus Köln" in UTF-8 */
		{"=?ISO-8859-1?B?R3L83/w=?= =?UTF-8?B?IGF1cyBLw7Zsbg==?=",
		 "Gr\xc3\xbc\xc3\x9f\xc3\xbc aus K\xc3\xb6ln"},
		/* text around the words, which are kept apart by it */
		{"Re: =?UTF-8?B?YWI=?= x =?UTF-8?B?Y2Q=?= [list]",
		 "Re: ab x cd [list]"},
		/* a character split across two words (not allowed, but
		 * sent): "日本" as E6 97 A5 E6 | 9C AC */
		{"=?UTF-8?B?5pel5g==?= =?UTF-8?B?nKw=?=",
		 "\xe6\x97\xa5\xe6\x9c\xac"},
		/* padding left out; two words run together; blanks inside */
		{"=?UTF-8?B?YWI?=", "ab"},
		{"=?UTF-8?B?YWI=?==?UTF-8?B?Y2Q=?=", "abcd"},
		{"=?UTF-8?B?Y W I=?=", "ab"},
		/* Q words and an underscore in the bytes */
		{"=?UTF-8?Q?a_b?= =?UTF-8?B?X2M=?=", "a b_c"},
		/* not encoded words: left as they are */
		{"=?UTF-8?B?", "=?UTF-8?B?"},
		{"=?UTF-8?B?YWI= ?", "=?UTF-8?B?YWI= ?"},
		{"=?\?B?YWI=?=", "=?\?B?YWI=?="},
		{"=?=?=?B?=?", "=?=?=?B?=?"},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *got = cache_text_decode_header(cases[i].raw);

		g_assert_cmpstr(got, ==, cases[i].want);
	}
}

/* Charset labels as mail readers take them: names iconv does not know,
 * and the vendor supersets that senders label with the base name. */
static void test_charset_labels(void)
{
	static const struct {
		const char *raw;
		const char *want;
	} cases[] = {
		/* JavaMail's name for Windows Shift_JIS: "①髙" */
		{"=?windows-31j?B?h0Du4A==?=", "\xe2\x91\xa0\xe9\xab\x99"},
		/* Shift_JIS holding NEC and IBM extensions: "①②③" */
		{"=?shift_jis?B?h0CHQYdC?=", "\xe2\x91\xa0\xe2\x91\xa1"
					     "\xe2\x91\xa2"},
		{"=?euc-jp?B?raE=?=", "\xe2\x91\xa0"},
		/* Outlook's Korean label holding Windows-949: "햏" */
		{"=?ks_c_5601-1987?B?wWQ=?=", "\xed\x96\x8f"},
		{"=?korean?B?x9GxuQ==?=", "\xed\x95\x9c\xea\xb5\xad"},
		{"=?x-gbk?B?6Ua7+Q==?=", "\xe9\x95\x95\xe5\x9f\xba"},
		/* Outlook's iso-8859-1 holding Windows-1252 quotes and dashes */
		{"=?iso-8859-1?Q?Meeting_=96_=93Q3=94_=85?=",
		 "Meeting \xe2\x80\x93 \xe2\x80\x9cQ3\xe2\x80\x9d "
		 "\xe2\x80\xa6"},
		{"=?us-ascii?Q?it=92s?=", "it\xe2\x80\x99s"},
		{"=?x-mac-roman?B?Q2Fmjg==?=", "Caf\xc3\xa9"},
		{"=?l9?B?pA==?=", "\xe2\x82\xac"},
		/* an RFC 2231 language after the label */
		{"=?latin1*de?Q?=80?=", "\xe2\x82\xac"},
		/* ISO-2022-JP with half-width katakana: "テストｶﾀｶﾅ" */
		{"=?iso-2022-jp?B?GyRCJUYlOSVIGyhJNkA2RRsoQg==?=",
		 "\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88\xef\xbd\xb6\xef\xbe"
		 "\x80\xef\xbd\xb6\xef\xbe\x85"},
		/* ... split across words, the shift state carried over */
		{"=?ISO-2022-JP?B?GyRCMnE1RBsoQg==?= =?ISO-2022-JP?B?GyRCJE4bKEI=?=",
		 "\xe4\xbc\x9a\xe8\xad\xb0\xe3\x81\xae"},
		/* undeclared, as older Japanese lists send it: "会議の" */
		{"[ml:1] \x1b$B2q5D$N\x1b(B =?UTF-8?Q?x?=",
		 "[ml:1] \xe4\xbc\x9a\xe8\xad\xb0\xe3\x81\xae x"},
		/* a label nobody knows: GMime's own fallback, valid text */
		{"=?x-nothing?Q?abc?=", "abc"},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *got = cache_text_decode_header(cases[i].raw);

		g_assert_cmpstr(got, ==, cases[i].want);
	}
}

/* Words that do not stand as words (inside an address, or glued to other
 * text) reach GMime as written: what it shows is the sender's text, not
 * a rewritten form of it. */
static void test_encoded_words_not_words(void)
{
	g_autofree char *addr =
		cache_text_decode_address(" =?utf-8?B?YWI=?=@example.com");
	g_autofree char *angle = cache_text_decode_address(
		" Name <=?utf-8?B?YWI=?=@example.com>");
	g_autofree char *glued = cache_text_decode_header("=?=?utf-8?B?YWI=?=");

	g_assert_cmpstr(addr, ==, "=?utf-8?B?YWI=?=@example.com");
	g_assert_cmpstr(angle, ==, "Name <=?utf-8?B?YWI=?=@example.com>");
	g_assert_null(strstr(glued, "?Q?"));
}

/* Hostile B words: whatever the bytes, one line of valid UTF-8. */
static void test_encoded_words_hostile(void)
{
	static const char *const inputs[] = {
		/* CR LF NUL ESC encoded; bytes invalid in UTF-8 */
		"=?UTF-8?B?YQ0KYgBjG1sySg==?=", "=?UTF-8?B?//79/A==?=",
		/* a charset nobody knows; an empty word; only padding */
		"=?x-unknown?B?YWI=?=", "=?UTF-8?B?\?=", "=?UTF-8?B?====?=",
		/* one digit alone makes no byte */
		"=?UTF-8?B?Y?= =?UTF-8?B?W?=",
	};

	for (gsize i = 0; i < G_N_ELEMENTS(inputs); i++) {
		g_autofree char *got = cache_text_decode_header(inputs[i]);

		g_assert_nonnull(got);
		g_assert_true(g_utf8_validate(got, -1, NULL));
		g_assert_null(strpbrk(got, "\r\n\t\x1b"));
	}
}

static void test_address(void)
{
	static const struct {
		const char *raw;
		const char *want;
	} cases[] = {
		{" Terry Gray <gray@cac.washington.edu>\r\n",
		 "Terry Gray <gray@cac.washington.edu>"},
		{" =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>",
		 "Andr\xc3\xa9 Pirard <PIRARD@vm1.ulg.ac.be>"},
		{" \"Doe, John\" <j@x.org>", "Doe, John <j@x.org>"},
		{" plain@x.org", "plain@x.org"},
		{" a@x.org, B <b@y.org>", "a@x.org"},
		{" team: a@b.org, c@d.org;", "a@b.org"},
		{" Name\r\n <a@b.org>\r\n", "Name <a@b.org>"},
		/* no address in it: the text itself */
		{" undisclosed-recipients:;", "undisclosed-recipients:;"},
		{" =?utf-8?Q?J=C3=B6rg_Only?=", "J\xc3\xb6rg Only"},
		/* punycode as written: decoded, a Cyrillic a passes for
		 * the Latin one */
		{" PayPal <service@xn--pypal-4ve.com>",
		 "PayPal <service@xn--pypal-4ve.com>"},
		{" Evil\x1b[2J <e@x.org>", "Evil\xef\xbf\xbd[2J <e@x.org>"},
		/* punycode as written, whatever else the field holds: a
		 * name in UTF-8, a comment, a name in a comment */
		{" J\xc3\xb6rg <j@xn--pypal-4ve.com>",
		 "J\xc3\xb6rg <j@xn--pypal-4ve.com>"},
		{" PayPal <s@xn--pypal-4ve.com>\r\n (Zahlungsbest\xc3\xa4tigung)",
		 "PayPal <s@xn--pypal-4ve.com>"},
		{" s@xn--pypal-4ve.com (J\xc3\xb6rg)",
		 "J\xc3\xb6rg <s@xn--pypal-4ve.com>"},
		/* a name in undeclared ISO-2022-JP: "山田 太郎" */
		{" \x1b$B;3ED\x1b(B \x1b$BB@O:\x1b(B <t@x.jp>",
		 "\xe5\xb1\xb1\xe7\x94\xb0 \xe5\xa4\xaa\xe9\x83\x8e <t@x.jp>"},
		/* the look-alike written as the name, or in a comment, does
		 * not make the punycode address show decoded */
		{" \"service@p\xd0\xb0ypal.com\" <service@xn--pypal-4ve.com>",
		 "service@p\xd0\xb0ypal.com <service@xn--pypal-4ve.com>"},
		{" service@xn--pypal-4ve.com (service@p\xd0\xb0ypal.com)",
		 "service@p\xd0\xb0ypal.com <service@xn--pypal-4ve.com>"},
		/* a domain written in UTF-8 (RFC 6532) is shown so */
		{" J\xc3\xb6rg <j@b\xc3\xbc" "cher.de>",
		 "J\xc3\xb6rg <j@b\xc3\xbc" "cher.de>"},
		/* a name in two padded B words (Thunderbird) */
		{" =?UTF-8?B?U3NzxZsgTGHFgmFsYQ==?= =?UTF-8?B?bGFsYQ==?= "
		 "<s@x.org>",
		 "Sss\xc5\x9b La\xc5\x82" "alalala <s@x.org>"},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *got = cache_text_decode_address(cases[i].raw);

		g_assert_cmpstr(got, ==, cases[i].want);
	}
	g_assert_null(cache_text_decode_address(NULL));
	g_assert_null(cache_text_decode_address(" \r\n"));
}

static gboolean blank(const char *s)
{
	return strspn(s, " \t\r\n") == strlen(s);
}

/* Whatever comes, the result is one line of valid UTF-8, or NULL where
 * there is no text at all. */
static void test_address_hostile(void)
{
	static const char *const inputs[] = {
		"", " ", "<<<>>>", "\"unterminated <a@b", "@", "a@", "<@>",
		" \xe9t\xe9 <e@x.org>", "=?utf-8?q?=0D=0A?= <a@b.org>",
		"(comment) <a@b.org> (more", ";;;:::,,,", "a@b.org\r\nBcc: x",
	};

	for (gsize i = 0; i < G_N_ELEMENTS(inputs); i++) {
		g_autofree char *got = cache_text_decode_address(inputs[i]);

		if (!got) {
			g_assert_true(blank(inputs[i]));
			continue;
		}
		g_assert_true(g_utf8_validate(got, -1, NULL));
		g_assert_null(strpbrk(got, "\r\n\t"));
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	cache_text_init();
	g_test_add_func("/cache/text/field/plain", test_field_plain);
	g_test_add_func("/cache/text/field/shapes", test_field_shapes);
	g_test_add_func("/cache/text/field/hostile", test_field_hostile);
	g_test_add_func("/cache/text/field/empty-first", test_field_empty_first);
	g_test_add_func("/cache/text/one-line", test_one_line);
	g_test_add_func("/cache/text/encoded-words", test_encoded_words);
	g_test_add_func("/cache/text/encoded-words/hostile",
			test_encoded_words_hostile);
	g_test_add_func("/cache/text/encoded-words/charset-labels",
			test_charset_labels);
	g_test_add_func("/cache/text/encoded-words/not-words",
			test_encoded_words_not_words);
	g_test_add_func("/cache/text/address", test_address);
	g_test_add_func("/cache/text/address/hostile", test_address_hostile);
	return g_test_run();
}

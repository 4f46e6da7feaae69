/* tests/unit/test-fs-names.c — fs/names.c: message names, the message-name
 * shape, and the reversible mailbox <-> directory mapping. */
#include <string.h>

#include <glib.h>

#include "fs/names.h"

typedef struct {
	guint32 uid;
	const char *subject; /* nullable */
	const char *expected;
} MessageCase;

static const MessageCase message_cases[] = {
	{12, "Hello", "0000000012-Hello.eml"},
	{1, "Re: Meeting / notes?", "0000000001-Re_Meeting_notes.eml"},
	{7, "  leading and trailing  ", "0000000007-leading_and_trailing.eml"},
	{7, "...dots everywhere...", "0000000007-dots_everywhere.eml"},
	{7, "._. _x_ ._.", "0000000007-x.eml"},
	{7, "keep -_.,+=@()&! these", "0000000007-keep_-_.,+=@()&!_these.eml"},
	{7, "a\"b'c*d<e>f|g\\h:i", "0000000007-a_b_c_d_e_f_g_h_i.eml"},
	{7, "tab\there\r\nnewline\x01\177end",
	 "0000000007-tab_here_newline_end.eml"},
	{7, "?!", "0000000007-!.eml"},
	{8, "?? // ::", "0000000008.eml"},
	{8, "", "0000000008.eml"},
	{8, "   ", "0000000008.eml"},
	{8, "._.", "0000000008.eml"},
	{8, NULL, "0000000008.eml"},
	{4294967295u, "max", "4294967295-max.eml"},
	{42, "Grüße aus Köln", "0000000042-Grüße_aus_Köln.eml"},
	{42, "日本語の件名", "0000000042-日本語の件名.eml"},
	{42, "e\xcc\x81t\xc3\xa9", "0000000042-\xc3\xa9t\xc3\xa9.eml"},
	{42, "bad\xff\376bytes", "0000000042-bad_bytes.eml"},
	{42, "\xc3", "0000000042.eml"},
	{42, "x\xc3(y", "0000000042-x_(y.eml"},
	{42, "RTL\342\200\256evil", "0000000042-RTL_evil.eml"},
	{42, "ends with .eml", "0000000042-ends_with_.eml.eml"},
	/* combining marks stay on their letters; alone, they do not */
	{42, "สวัสดีครับ", "0000000042-สวัสดีครับ.eml"},
	{42, "नमस्ते दुनिया", "0000000042-नमस्ते_दुनिया.eml"},
	{42, "\xcc\x81x \xcc\x81", "0000000042-x.eml"},
};

static void test_message_table(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(message_cases); i++) {
		const MessageCase *c = &message_cases[i];
		g_autofree char *name = fs_names_message(c->uid, c->subject);
		guint32 uid = 0;

		g_test_message("case %" G_GSIZE_FORMAT, i);
		g_assert_cmpstr(name, ==, c->expected);
		g_assert_true(g_utf8_validate(name, -1, NULL));
		g_assert_true(fs_names_parse_message(name, &uid));
		g_assert_cmpuint(uid, ==, c->uid);
	}
}

static void test_message_cut_ascii(void)
{
	g_autofree char *subject = g_strnfill(200, 'a');
	g_autofree char *sixty = g_strnfill(60, 'a');
	g_autofree char *expected = g_strdup_printf("0000000003-%s.eml", sixty);
	g_autofree char *name = fs_names_message(3, subject);

	g_assert_cmpstr(name, ==, expected);
}

/* The cut comes first, then the trim: a '.' or '_' that ends up last after
 * the cut is removed. */
static void test_message_cut_then_trim(void)
{
	g_autofree char *a59 = g_strnfill(59, 'a');
	g_autofree char *subject = g_strconcat(a59, ". tail", NULL);
	g_autofree char *expected = g_strdup_printf("0000000003-%s.eml", a59);
	g_autofree char *name = fs_names_message(3, subject);

	g_assert_cmpstr(name, ==, expected);
}

static void test_message_cut_multibyte(void)
{
	GString *subject = g_string_new(NULL);
	GString *expected = g_string_new("0000000005-");
	g_autofree char *name = NULL;
	const char *body;
	glong chars;

	for (int i = 0; i < 100; i++)
		g_string_append(subject, i % 2 ? "é" : "日");
	for (int i = 0; i < 60; i++)
		g_string_append(expected, i % 2 ? "é" : "日");
	g_string_append(expected, ".eml");

	name = fs_names_message(5, subject->str);
	g_assert_cmpstr(name, ==, expected->str);
	g_assert_true(g_utf8_validate(name, -1, NULL));
	body = name + 11;
	chars = g_utf8_strlen(body, strlen(body) - 4);
	g_assert_cmpint(chars, ==, 60);
	g_assert_cmpuint(strlen(name), <=, 255);
	g_string_free(subject, TRUE);
	g_string_free(expected, TRUE);
}

/* The worst case for length: 60 four-byte characters still fit NAME_MAX. */
static void test_message_name_max(void)
{
	GString *subject = g_string_new(NULL);
	g_autofree char *name = NULL;

	for (int i = 0; i < 300; i++)
		g_string_append(subject, "\xf0\x9d\x90\x80"); /* U+1D400 */
	name = fs_names_message(G_MAXUINT32, subject->str);
	g_assert_cmpuint(strlen(name), ==, 10 + 1 + 60 * 4 + 4);
	g_assert_cmpuint(strlen(name), <=, 255);
	g_string_free(subject, TRUE);
}

typedef struct {
	const char *name;
	gboolean ok;
	guint32 uid;
} ParseCase;

static const ParseCase parse_cases[] = {
	{"0000000012.eml", TRUE, 12},
	{"0000000012-Hello.eml", TRUE, 12},
	{"0000000012-x.eml", TRUE, 12},
	{"0000000012-.eml.eml", TRUE, 12},
	{"4294967295.eml", TRUE, 4294967295u},
	{"0000000001-a-b-c.eml", TRUE, 1},
	{"123.eml", FALSE, 0},
	{"00000000012.eml", FALSE, 0}, /* 11 digits */
	{"00000000012-x.eml", FALSE, 0},
	{"0000000000.eml", FALSE, 0}, /* uid 0 */
	{"0000000000-x.eml", FALSE, 0},
	{"4294967296.eml", FALSE, 0}, /* overflow */
	{"9999999999-x.eml", FALSE, 0},
	{"0000000012-.eml", FALSE, 0},
	{"0000000012", FALSE, 0},
	{"0000000012-Hello", FALSE, 0},
	{"0000000012.EML", FALSE, 0},
	{"0000000012.emlx", FALSE, 0},
	{"0000000012_x.eml", FALSE, 0},
	{"000000001a.eml", FALSE, 0},
	{" 000000012.eml", FALSE, 0},
	{"+000000012.eml", FALSE, 0},
	{"%30000000012.eml", FALSE, 0},
	{".eml", FALSE, 0},
	{"", FALSE, 0},
	{"INBOX", FALSE, 0},
};

static void test_parse_table(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(parse_cases); i++) {
		const ParseCase *c = &parse_cases[i];
		guint32 uid = 77;

		g_autofree char *label = g_strescape(c->name, NULL);

		g_test_message("case %s", label);
		g_assert_cmpint(fs_names_parse_message(c->name, &uid), ==,
				c->ok);
		g_assert_cmpuint(uid, ==, c->uid);
		g_assert_cmpint(fs_names_parse_message(c->name, NULL), ==,
				c->ok);
	}
}

typedef struct {
	const char *component;
	const char *dirname;
} MailboxCase;

static const MailboxCase mailbox_cases[] = {
	{"INBOX", "INBOX"},
	{"Sent Items", "Sent Items"},
	{"a/b", "a%2Fb"},
	{"100%", "100%25"},
	{"%2F", "%252F"},
	{".", "%2E"},
	{"..", "%2E%2E"},
	{"...", "..."},
	{".hidden", ".hidden"},
	{"tab\there", "tab%09here"},
	{"nl\n", "nl%0A"},
	{"del\x7f", "del%7F"},
	{"Entwürfe", "Entwürfe"},
	{"日本", "日本"},
	{"0000000012.eml", "%30000000012.eml"},
	{"4294967295-x.eml", "%34294967295-x.eml"},
	{"0000000000.eml", "0000000000.eml"}, /* uid 0: no message */
	{"0000000012-.eml", "0000000012-.eml"},
	{"0000000012", "0000000012"},
	{"00000000012.eml", "00000000012.eml"},
	{"bad\xff", "bad%FF"},
	{"\xc3", "%C3"},
	{"\xc3(", "%C3("},
};

static void test_mailbox_table(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(mailbox_cases); i++) {
		const MailboxCase *c = &mailbox_cases[i];
		g_autofree char *dir = fs_names_from_mailbox(c->component);
		g_autofree char *back = NULL;

		g_test_message("case %s", c->dirname);
		g_assert_cmpstr(dir, ==, c->dirname);
		g_assert_false(fs_names_parse_message(dir, NULL));
		back = fs_names_to_mailbox(dir, '\0');
		if (g_utf8_validate(c->component, -1, NULL))
			g_assert_cmpstr(back, ==, c->component);
		else
			g_assert_null(back); /* invalid UTF-8 stays out */
	}
}

static void test_mailbox_empty(void)
{
	g_autofree char *dir = fs_names_from_mailbox("");

	g_assert_cmpstr(dir, ==, "");
	g_assert_null(fs_names_to_mailbox("", '\0'));
	g_assert_null(fs_names_to_mailbox("", '/'));
}

typedef struct {
	const char *name;
	char delimiter;
	const char *expected; /* NULL: must be rejected */
} ToMailboxCase;

static const ToMailboxCase to_mailbox_cases[] = {
	{"%", '\0', NULL},
	{"%4", '\0', NULL},
	{"a%4", '\0', NULL},
	{"%zz", '\0', NULL},
	{"%4z", '\0', NULL},
	{"%z4", '\0', NULL},
	{"%00", '\0', NULL},
	{"a%00b", '\0', NULL},
	{"%%", '\0', NULL},
	{"a%2Fb", '/', NULL},
	{"a%2fb", '/', NULL},
	{"a%2Fb", '.', "a/b"},
	{"a%2Fb", '\0', "a/b"},
	{"a.b", '.', NULL},
	{"a%2Eb", '.', NULL},
	{"%2E", '\0', "."},
	{"%2e", '\0', "."},
	{"%2E%2E", '/', ".."},
	{"%41", '\0', "A"},
	{"%25", '\0', "%"},
	{"%2525", '\0', "%25"},
	{"%FF", '\0', NULL}, /* invalid UTF-8 after decoding */
	{"%C3", '\0', NULL},
	{"%C3%28", '\0', NULL},
	{"%C3%A9", '\0', "é"},
	{"%c3%a9", '\0', "é"},
	{"\xff", '\0', NULL},
	{"%ED%A0%80", '\0', NULL}, /* a UTF-16 surrogate */
	{"%30000000012.eml", '\0', "0000000012.eml"},
	{"INBOX", '/', "INBOX"},
};

static void test_to_mailbox_hostile(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(to_mailbox_cases); i++) {
		const ToMailboxCase *c = &to_mailbox_cases[i];
		g_autofree char *got = NULL;
		g_autofree char *label = g_strescape(c->name, NULL);

		g_test_message("case %s (delimiter 0x%02x)", label,
			       (guchar)c->delimiter);
		got = fs_names_to_mailbox(c->name, c->delimiter);
		g_assert_cmpstr(got, ==, c->expected);
	}
}

/* Code points that stress the escaping: '/', '%', '.', digits, controls,
 * DEL, the letters of ".eml", and some non-ASCII. */
static gunichar random_char(void)
{
	static const gunichar special[] = {
		'/',  '%',  '.',  '-',	  '0',	  '1',	   '9',	     'e',  'm',
		'l',  ' ',  0x01, 0x09,	  0x0a,	  0x1f,	   0x7f,     0x80, 0x9f,
		0xa0, 0xe9, 0x2f, 0x2215, 0xfeff, 0x1f600, 0x10ffff,
	};

	for (;;) {
		gunichar c;

		switch (g_test_rand_int_range(0, 4)) {
		case 0:
			c = special[g_test_rand_int_range(
				0, G_N_ELEMENTS(special))];
			break;
		case 1:
			c = (gunichar)g_test_rand_int_range(1, 0x80);
			break;
		case 2:
			c = (gunichar)g_test_rand_int_range(0x80, 0x800);
			break;
		default:
			c = (gunichar)g_test_rand_int_range(0x800, 0x110000);
			break;
		}
		if (g_unichar_validate(c))
			return c;
	}
}

static char *random_component(void)
{
	GString *s = g_string_new(NULL);
	int len;

	/* Sometimes a message-looking name, to reach the %3X rule. */
	if (g_test_rand_int_range(0, 8) == 0) {
		g_string_printf(s, "%010u",
				(guint)g_test_rand_int_range(1, G_MAXINT32));
		if (g_test_rand_bit())
			g_string_append(s, "-x");
		g_string_append(s, ".eml");
		return g_string_free(s, FALSE);
	}
	len = g_test_rand_int_range(1, 24);
	for (int i = 0; i < len; i++)
		g_string_append_unichar(s, random_char());
	return g_string_free(s, FALSE);
}

static void check_dirname_shape(const char *dir)
{
	g_assert_true(g_utf8_validate(dir, -1, NULL));
	g_assert_cmpuint(strlen(dir), >, 0);
	g_assert_null(strchr(dir, '/'));
	for (const char *p = dir; *p; p++) {
		g_assert_cmpint((guchar)*p, >=, 0x20);
		g_assert_cmpint((guchar)*p, !=, 0x7f);
		if (*p == '%') {
			g_assert_true(g_ascii_isxdigit(p[1]));
			g_assert_true(g_ascii_isxdigit(p[2]));
			g_assert_false(g_ascii_islower(p[1]));
			g_assert_false(g_ascii_islower(p[2]));
		}
	}
	g_assert_cmpstr(dir, !=, ".");
	g_assert_cmpstr(dir, !=, "..");
	g_assert_false(fs_names_parse_message(dir, NULL));
}

static void test_mailbox_random_round_trip(void)
{
	for (int i = 0; i < 20000; i++) {
		g_autofree char *component = random_component();
		g_autofree char *dir = fs_names_from_mailbox(component);
		g_autofree char *back = fs_names_to_mailbox(dir, '\0');
		g_autofree char *back_delim = NULL;

		check_dirname_shape(dir);
		g_assert_cmpstr(back, ==, component);
		/* With a delimiter the component does not hold, too. */
		if (!strchr(component, '\\')) {
			back_delim = fs_names_to_mailbox(dir, '\\');
			g_assert_cmpstr(back_delim, ==, component);
		}
	}
}

/* Random bytes (not UTF-8): from_mailbox must still give a safe name, and
 * to_mailbox must give the bytes back exactly when they were UTF-8. */
static void test_mailbox_random_bytes(void)
{
	for (int i = 0; i < 20000; i++) {
		char buf[16];
		int len = g_test_rand_int_range(1, sizeof(buf));
		g_autofree char *dir = NULL;
		g_autofree char *back = NULL;

		for (int j = 0; j < len; j++)
			buf[j] = (char)g_test_rand_int_range(1, 256);
		buf[len] = '\0';
		dir = fs_names_from_mailbox(buf);
		check_dirname_shape(dir);
		back = fs_names_to_mailbox(dir, '\0');
		if (g_utf8_validate(buf, -1, NULL))
			g_assert_cmpstr(back, ==, buf);
		else
			g_assert_null(back);
	}
}

/* Random subjects never give a name that breaks the shape. */
static void test_message_random(void)
{
	for (int i = 0; i < 5000; i++) {
		g_autofree char *subject = random_component();
		guint32 uid = (guint32)g_test_rand_int_range(1, G_MAXINT32);
		g_autofree char *name = fs_names_message(uid, subject);
		guint32 got = 0;

		g_assert_true(g_utf8_validate(name, -1, NULL));
		g_assert_null(strchr(name, '/'));
		g_assert_cmpuint(strlen(name), <=, 255);
		g_assert_true(fs_names_parse_message(name, &got));
		g_assert_cmpuint(got, ==, uid);
		for (const char *p = name; *p; p++)
			g_assert_cmpint((guchar)*p, >, 0x20);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/fs/names/message/table", test_message_table);
	g_test_add_func("/fs/names/message/cut-ascii", test_message_cut_ascii);
	g_test_add_func("/fs/names/message/cut-then-trim",
			test_message_cut_then_trim);
	g_test_add_func("/fs/names/message/cut-multibyte",
			test_message_cut_multibyte);
	g_test_add_func("/fs/names/message/name-max", test_message_name_max);
	g_test_add_func("/fs/names/message/random", test_message_random);
	g_test_add_func("/fs/names/parse/table", test_parse_table);
	g_test_add_func("/fs/names/mailbox/table", test_mailbox_table);
	g_test_add_func("/fs/names/mailbox/empty", test_mailbox_empty);
	g_test_add_func("/fs/names/mailbox/to-hostile",
			test_to_mailbox_hostile);
	g_test_add_func("/fs/names/mailbox/random-round-trip",
			test_mailbox_random_round_trip);
	g_test_add_func("/fs/names/mailbox/random-bytes",
			test_mailbox_random_bytes);
	return g_test_run();
}

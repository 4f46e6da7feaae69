/* tests/unit/test-imap-command.c — the command builder (imap/command.c).
 *
 * For each directive the exact wire parts; quoting and literal choice;
 * hostile values that try to end the line early; rejected arguments and
 * their error messages; names and trace lines. Every command built here
 * is checked for CR, LF and 8-bit bytes in part text, which would let an
 * argument smuggle a second command.
 */
#include <string.h>

#include <glib.h>

#include "imap/command.h"
#include "imap/error.h"
#include "imap/utf7.h"

typedef struct {
	const char *text;
	const char *literal; /* NULL: none */
} WantPart;

/* Part text must be printable 7-bit: no CR, LF, NUL, controls or 8-bit. */
static void assert_clean(const ImapCommand *cmd)
{
	for (guint i = 0; i < imap_command_n_parts(cmd); i++) {
		const ImapCommandPart *part = imap_command_part(cmd, i);

		g_assert_cmpuint(strlen(part->text), ==, part->text_len);
		for (gsize j = 0; j < part->text_len; j++) {
			guchar c = (guchar)part->text[j];

			g_assert_cmpint(c, >=, 0x20);
			g_assert_cmpint(c, <=, 0x7e);
		}
	}
}

static void assert_parts(const ImapCommand *cmd, const WantPart *want, guint n)
{
	g_assert_nonnull(cmd);
	assert_clean(cmd);
	g_assert_cmpuint(imap_command_n_parts(cmd), ==, n);
	for (guint i = 0; i < n; i++) {
		const ImapCommandPart *part = imap_command_part(cmd, i);

		g_assert_cmpstr(part->text, ==, want[i].text);
		if (!want[i].literal) {
			g_assert_null(part->literal);
			continue;
		}
		g_assert_nonnull(part->literal);

		gsize len;
		const char *data = g_bytes_get_data(part->literal, &len);

		g_assert_cmpmem(data, len, want[i].literal,
				strlen(want[i].literal));
	}
}

/* A command of one part without literal whose text is @text. */
static void assert_line(ImapCommand *cmd, const char *text)
{
	const WantPart want[] = {{text, NULL}};

	assert_parts(cmd, want, 1);
	imap_command_free(cmd);
}

/* Takes @error by address: the call that sets it is an argument too, and
 * argument evaluation order is unspecified. */
static void assert_invalid(ImapCommand *cmd, GError **error)
{
	g_assert_null(cmd);
	g_assert_error(*error, IMAPFS_IMAP_ERROR, IMAP_ERROR_INVALID);
	g_clear_error(error);
}

static void test_number(void)
{
	GError *error = NULL;

	assert_line(imap_command_new(&error, 0, "UID FETCH %u (FLAGS)", 0u),
		    "UID FETCH 0 (FLAGS)");
	assert_line(imap_command_new(&error, 0, "X %u:%u", 7u, G_MAXUINT32),
		    "X 7:4294967295");
	g_assert_no_error(error);
}

static void test_sequence_set(void)
{
	static const char *const good[] = {
		"1",   "*",   "1:5,7,9:*", "4294967295",
		"5:1", "*:1", "1,2,3",	   "10:20,30",
	};
	static const char *const bad[] = {
		"",	"0",	 "01",	     "1:",	    ":5",
		"1,,2", "1:2:3", "a",	     "1 2",	    "1,",
		",1",	"1:0",	 "$",	     "4294967296",  "1\r\n",
		"-1",	"1:*)",	 "1 LOGOUT", "99999999999",
	};

	for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
		GError *error = NULL;
		g_autofree char *want =
			g_strdup_printf("UID FETCH %s UID", good[i]);

		assert_line(imap_command_new(&error, 0, "UID FETCH %U UID",
					     good[i]),
			    want);
		g_assert_no_error(error);
	}
	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		GError *error = NULL;

		g_test_message("bad set: %s", bad[i]);
		assert_invalid(
			imap_command_new(&error, 0, "UID FETCH %U UID", bad[i]),
			&error);
	}
}

static void test_atom(void)
{
	static const char *const good[] = {
		"INBOX",      "FLAGS", "RFC822.SIZE",
		"BODY.PEEK[", "$Work", "a&b-c~",
	};
	static const char *const bad[] = {
		"",	  "foo bar", "a(b",  "a)b",  "a{3}",
		"a%",	  "a*",	     "a\"b", "a\\b", "a]",
		"\r\n",	  "a\r\nb",  "a\tb", "\x7f", "Entw\xc3\xbcrfe",
		"\\Seen",
	};

	for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
		GError *error = NULL;
		g_autofree char *want = g_strdup_printf("X %s", good[i]);

		g_assert_true(imap_is_atom(good[i]));
		assert_line(imap_command_new(&error, 0, "X %a", good[i]), want);
		g_assert_no_error(error);
	}
	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		GError *error = NULL;

		g_assert_false(imap_is_atom(bad[i]));
		assert_invalid(imap_command_new(&error, 0, "X %a", bad[i]),
			       &error);
	}
	g_assert_false(imap_is_atom(NULL));
}

typedef struct {
	const char *value;
	const char *wire; /* text after "X "; NULL: sent as a literal */
} AstringCase;

static void test_astring(void)
{
	g_autofree char *spaces1000 = g_strnfill(1000, ' ');
	g_autofree char *spaces1001 = g_strnfill(1001, ' ');
	g_autofree char *quoted1000 = g_strdup_printf("\"%s\"", spaces1000);
	g_autofree char *atom2000 = g_strnfill(2000, 'a');
	const AstringCase cases[] = {
		{"INBOX", "INBOX"},
		{"", "\"\""},
		{"a b", "\"a b\""},
		{"a\"b\\c", "\"a\\\"b\\\\c\""},
		{"\"", "\"\\\"\""},
		{"\\", "\"\\\\\""},
		{"a]b", "\"a]b\""},
		{"*", "\"*\""},
		{"%", "\"%\""},
		{"(x)", "\"(x)\""},
		{"{5}", "\"{5}\""},
		{"NIL", "NIL"},
		{spaces1000, quoted1000},
		{atom2000, atom2000},
		{spaces1001, NULL},
		{"x\r\na2 LOGOUT", NULL},
		{"\r", NULL},
		{"\n", NULL},
		{"a\tb", NULL},
		{"\x7f", NULL},
		{"Entw\xc3\xbcrfe", NULL},
		{"\xff\xfe", NULL},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		GError *error = NULL;
		ImapCommand *cmd =
			imap_command_new(&error, 0, "X %q Y", cases[i].value);

		g_assert_no_error(error);
		if (cases[i].wire) {
			g_autofree char *want =
				g_strdup_printf("X %s Y", cases[i].wire);

			assert_line(cmd, want);
		} else {
			const WantPart want[] = {{"X ", cases[i].value},
						 {" Y", NULL}};

			assert_parts(cmd, want, 2);
			imap_command_free(cmd);
		}
	}
}

static void test_mailbox(void)
{
	static const AstringCase cases[] = {
		{"INBOX", "INBOX"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"a&b", "a&-b"},
		{"My Folder", "\"My Folder\""},
		{"", "\"\""},
		{"a\"b", "\"a\\\"b\""},
		{"back\\slash", "\"back\\\\slash\""},
		{"*", "\"*\""},
		{"%", "\"%\""},
		{"x]", "\"x]\""},
		/* CR and LF are not printable, so they are encoded */
		{"x\r\na2 LOGOUT", "\"x&AA0ACg-a2 LOGOUT\""},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		GError *error = NULL;
		g_autofree char *want =
			g_strdup_printf("SELECT %s", cases[i].wire);

		assert_line(imap_command_new(&error, 0, "SELECT %m",
					     cases[i].value),
			    want);
		g_assert_no_error(error);
	}

	/* 8-bit names are encoded; only length makes a literal. */
	g_autoptr(GString) longname = g_string_new(NULL);
	for (int i = 0; i < 200; i++)
		g_string_append(longname, "ü ");
	g_autofree char *enc = imap_utf7_encode(longname->str);
	GError *error = NULL;
	ImapCommand *cmd =
		imap_command_new(&error, 0, "CREATE %m", longname->str);
	const WantPart want[] = {{"CREATE ", enc}};

	g_assert_no_error(error);
	g_assert_cmpuint(strlen(enc), >, 1000);
	assert_parts(cmd, want, 1);
	imap_command_free(cmd);

	assert_invalid(imap_command_new(&error, 0, "SELECT %m", "Entw\xfc"),
		       &error);
	error = NULL;
	assert_invalid(imap_command_new(&error, 0, "SELECT %m", "\xed\xa0\x80"),
		       &error);
}

static void test_flags(void)
{
	static const AstringCase good[] = {
		{"", "()"},
		{"\\Seen", "(\\Seen)"},
		{"\\Seen $Work", "(\\Seen $Work)"},
		{"\\Answered \\Flagged \\Deleted \\Draft NonJunk",
		 "(\\Answered \\Flagged \\Deleted \\Draft NonJunk)"},
	};
	static const char *const bad[] = {
		"\\Seen)", "x  y",     " x",  "x ",	 " ",
		"\\",	   "\\*",      "a(b", "\"x y\"", "\\Seen\r\n",
		"x\ty",	   "\\\\Seen", "a]",  "%",	 "{3}",
		"ü",	   "(\\Seen)",
	};

	for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
		GError *error = NULL;
		g_autofree char *want =
			g_strdup_printf("UID STORE 1 FLAGS %s", good[i].wire);

		assert_line(imap_command_new(&error, 0, "UID STORE %U FLAGS %F",
					     "1", good[i].value),
			    want);
		g_assert_no_error(error);
	}
	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		GError *error = NULL;

		g_test_message("bad flags: %s", bad[i]);
		assert_invalid(imap_command_new(&error, 0,
						"UID STORE %U FLAGS %F", "1",
						bad[i]),
			       &error);
	}
	g_assert_true(imap_is_flag("\\Seen"));
	g_assert_true(imap_is_flag("$Junk"));
	g_assert_false(imap_is_flag("\\"));
	g_assert_false(imap_is_flag("\\*"));
	g_assert_false(imap_is_flag(""));
	g_assert_false(imap_is_flag(NULL));
}

static void test_percent(void)
{
	GError *error = NULL;

	assert_line(imap_command_new(&error, 0, "LIST \"\" %%"), "LIST \"\" %");
	assert_line(imap_command_new(&error, 0, "LIST %q %%/%%", ""),
		    "LIST \"\" %/%");
	g_assert_no_error(error);
}

/* Several literals, and the command ending in one. */
static void test_literals(void)
{
	GError *error = NULL;
	ImapCommand *cmd = imap_command_new(&error, 0, "LOGIN %q %q",
					    "us\xc3\xa9r", "p\r\nw");
	const WantPart want[] = {{"LOGIN ", "us\xc3\xa9r"}, {" ", "p\r\nw"}};

	g_assert_no_error(error);
	assert_parts(cmd, want, 2);
	g_assert_cmpstr(imap_command_name(cmd), ==, "LOGIN");

	g_autofree char *line = imap_command_describe(cmd);
	g_assert_cmpstr(line, ==, "LOGIN {5 bytes} {4 bytes}");
	imap_command_free(cmd);
}

static void test_describe(void)
{
	GError *error = NULL;
	g_autoptr(ImapCommand) plain =
		imap_command_new(&error, IMAP_COMMAND_RETRIABLE,
				 "UID FETCH %U (UID BODY.PEEK[])", "1:*");
	g_autoptr(ImapCommand) mixed =
		imap_command_new(&error, 0, "APPEND %m %F %q", "Entwürfe",
				 "\\Seen", "From: a\r\n\r\nbody\r\n");
	g_autoptr(ImapCommand) secret = imap_command_new(
		&error, IMAP_COMMAND_SECRET, "LOGIN %q %q", "user", "hunter2");
	g_autoptr(ImapCommand) secret_lit =
		imap_command_new(&error, IMAP_COMMAND_SECRET, "LOGIN %q %q",
				 "user", "p\xc3\xa4ss");

	g_assert_no_error(error);
	g_autofree char *d1 = imap_command_describe(plain);
	g_autofree char *d2 = imap_command_describe(mixed);
	g_autofree char *d3 = imap_command_describe(secret);
	g_autofree char *d4 = imap_command_describe(secret_lit);

	g_assert_cmpstr(d1, ==, "UID FETCH 1:* (UID BODY.PEEK[])");
	g_assert_cmpstr(d2, ==, "APPEND Entw&APw-rfe (\\Seen) {17 bytes}");
	g_assert_cmpstr(d3, ==, "LOGIN <hidden>");
	g_assert_cmpstr(d4, ==, "LOGIN <hidden>");
	g_assert_null(strstr(d3, "hunter2"));

	g_assert_cmpint(imap_command_flags(plain), ==, IMAP_COMMAND_RETRIABLE);
	g_assert_cmpint(imap_command_flags(secret), ==, IMAP_COMMAND_SECRET);
	/* SECRET hides the trace, not the wire. */
	assert_line(g_steal_pointer(&secret), "LOGIN user hunter2");
}

static void test_name(void)
{
	static const struct {
		const char *format;
		const char *name;
	} cases[] = {
		{"NOOP", "NOOP"},
		{"SELECT INBOX", "SELECT"},
		{"UID FETCH 1:* (FLAGS)", "UID FETCH"},
		{"uid store 1 +FLAGS (\\Seen)", "uid store"},
		{"UID EXPUNGE", "UID EXPUNGE"},
		{"UIDS X", "UIDS"},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		GError *error = NULL;
		g_autoptr(ImapCommand) cmd =
			imap_command_new(&error, 0, cases[i].format);

		g_assert_no_error(error);
		g_assert_cmpstr(imap_command_name(cmd), ==, cases[i].name);
	}
}

static void test_bad_format(void)
{
	static const char *const formats[] = {
		"X %s",	  "X %", "X %d", "",
		"X\r\nY", "X\n", "X\tY", "X \xc3\xa9",
	};

	for (gsize i = 0; i < G_N_ELEMENTS(formats); i++) {
		GError *error = NULL;

		assert_invalid(imap_command_new(&error, 0, formats[i], "a"),
			       &error);
	}
}

static void test_null_argument(void)
{
	GError *error = NULL;

	assert_invalid(imap_command_new(&error, 0, "X %q", NULL), &error);
	error = NULL;
	assert_invalid(imap_command_new(&error, 0, "X %m", NULL), &error);
}

/* Messages name the format, the argument and its value, escaped. */
static void test_error_messages(void)
{
	GError *error = NULL;

	g_assert_null(imap_command_new(&error, 0, "UID STORE %U FLAGS %F", "1",
				       "\\Seen\r\nA LOGOUT"));
	g_assert_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_INVALID);
	g_assert_nonnull(strstr(error->message, "UID STORE %U FLAGS %F"));
	g_assert_nonnull(strstr(error->message, "argument 2 (%F)"));
	g_assert_nonnull(
		strstr(error->message, "\"\\\\Seen\\x0d\\x0aA LOGOUT\""));
	g_assert_null(strchr(error->message, '\r'));
	g_assert_null(strchr(error->message, '\n'));
	g_clear_error(&error);

	g_assert_null(imap_command_new(&error, 0, "X %a", "\xff"));
	g_assert_nonnull(strstr(error->message, "(%a)"));
	g_assert_nonnull(strstr(error->message, "\"\\xff\""));
	g_clear_error(&error);

	g_autofree char *longbad = g_strnfill(5000, '(');
	g_assert_null(imap_command_new(&error, 0, "X %a", longbad));
	g_assert_cmpuint(strlen(error->message), <, 200);
	g_assert_nonnull(strstr(error->message, "..."));
	g_clear_error(&error);

	g_assert_null(imap_command_new(&error, 0, "X %s", "a"));
	g_assert_nonnull(strstr(error->message, "%s"));
	g_clear_error(&error);

	g_assert_null(imap_command_new(&error, IMAP_COMMAND_SECRET, "AUTH %a",
				       "sec ret"));
	g_assert_null(strstr(error->message, "sec ret"));
	g_assert_nonnull(strstr(error->message, "<hidden>"));
	g_clear_error(&error);
}

/* Reads the astring at the start of @s (atom or quoted, nothing after
 * it). (transfer full) NULL if it is neither. */
static char *parse_astring(const char *s)
{
	if (imap_is_atom(s))
		return g_strdup(s);

	gsize len = strlen(s);
	GString *out;

	if (len < 2 || s[0] != '"' || s[len - 1] != '"')
		return NULL;
	out = g_string_new(NULL);
	for (gsize i = 1; i < len - 1; i++) {
		if (s[i] == '"') {
			g_string_free(out, TRUE);
			return NULL;
		}
		if (s[i] == '\\') {
			i++;
			if (i == len - 1 || (s[i] != '"' && s[i] != '\\')) {
				g_string_free(out, TRUE);
				return NULL;
			}
		}
		g_string_append_c(out, s[i]);
	}
	return g_string_free(out, FALSE);
}

/* What a server would read back as the argument of "X %q". */
static char *wire_argument(const ImapCommand *cmd)
{
	const ImapCommandPart *p0 = imap_command_part(cmd, 0);

	g_assert_true(g_str_has_prefix(p0->text, "X "));
	if (p0->literal) {
		g_assert_cmpstr(p0->text, ==, "X ");
		g_assert_cmpuint(imap_command_n_parts(cmd), ==, 1);
		return g_strndup(g_bytes_get_data(p0->literal, NULL),
				 g_bytes_get_size(p0->literal));
	}
	g_assert_cmpuint(imap_command_n_parts(cmd), ==, 1);
	return parse_astring(p0->text + 2);
}

/* Random hostile values: whatever is built must be clean and must read
 * back as exactly the value given. */
static void test_hostile_round_trip(void)
{
	static const char alphabet[] = "aZ09 \r\n\"\\*%()[]{}&-~+,/\t\x01"
				       "\x7f\x80\xc3\xa9\xff";
	const int n = sizeof(alphabet) - 1;
	char buf[64];

	for (int round = 0; round < 20000; round++) {
		int len = g_test_rand_int_range(0, sizeof(buf) - 1);
		GError *error = NULL;

		for (int i = 0; i < len; i++)
			buf[i] = alphabet[g_test_rand_int_range(0, n)];
		buf[len] = '\0';

		ImapCommand *cmd = imap_command_new(&error, 0, "X %q", buf);
		g_assert_no_error(error);
		assert_clean(cmd);
		g_autofree char *arg = wire_argument(cmd);
		g_assert_cmpstr(arg, ==, buf);
		imap_command_free(cmd);

		cmd = imap_command_new(&error, 0, "X %m", buf);
		if (!g_utf8_validate(buf, -1, NULL)) {
			assert_invalid(cmd, &error);
			continue;
		}
		g_assert_no_error(error);
		assert_clean(cmd);
		g_autofree char *marg = wire_argument(cmd);
		g_autofree char *name = imap_utf7_decode(marg);
		g_assert_cmpstr(name, ==, buf);
		imap_command_free(cmd);
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/imap/command/number", test_number);
	g_test_add_func("/imap/command/sequence-set", test_sequence_set);
	g_test_add_func("/imap/command/atom", test_atom);
	g_test_add_func("/imap/command/astring", test_astring);
	g_test_add_func("/imap/command/mailbox", test_mailbox);
	g_test_add_func("/imap/command/flags", test_flags);
	g_test_add_func("/imap/command/percent", test_percent);
	g_test_add_func("/imap/command/literals", test_literals);
	g_test_add_func("/imap/command/describe", test_describe);
	g_test_add_func("/imap/command/name", test_name);
	g_test_add_func("/imap/command/bad-format", test_bad_format);
	g_test_add_func("/imap/command/null-argument", test_null_argument);
	g_test_add_func("/imap/command/error-messages", test_error_messages);
	g_test_add_func("/imap/command/hostile-round-trip",
			test_hostile_round_trip);
	return g_test_run();
}

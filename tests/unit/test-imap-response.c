/* tests/unit/test-imap-response.c — typed accessors over parsed responses.
 *
 * Responses are produced by the real parser from wire text, then decoded:
 * FETCH (items in any order, body origins, spooled bodies, malformed ones),
 * LIST, INTERNALDATE, SELECT data, capabilities and error codes.
 */
#include "imap/response.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "imap/caps.h"
#include "imap/error.h"
#include "imap/parser.h"

static ImapResponse *parse_with(const char *wire, gsize len, int dirfd)
{
	ImapParserLimits limits = imap_parser_default_limits;
	g_autoptr(ImapParser) p = NULL;
	ImapResponse *r = NULL;
	gsize used = 0;

	limits.inline_max = 32;
	p = imap_parser_new(&limits, dirfd);
	g_assert_cmpint(
		imap_parser_feed(p, (const guint8 *)wire, len, &used, &r), ==,
		IMAP_PARSE_RESPONSE);
	g_assert_cmpuint(used, ==, len);
	return r;
}

/* A string without NUL bytes; parse_lit() for literals that hold some. */
static ImapResponse *parse(const char *wire)
{
	return parse_with(wire, strlen(wire), -1);
}

#define parse_lit(wire) parse_with(wire, sizeof(wire) - 1, -1)

/* ---- value accessors ------------------------------------------------------
 */

static void test_value_accessors(void)
{
	g_autoptr(ImapResponse) r =
		parse("* X 18446744073709551615 18446744073709551616 "
		      "000000000000000000001 12a \"7\" NIL (a) Abc\r\n");
	guint64 n = 42;

	g_assert_cmpuint(imap_value_n_items(r->args), ==, 8);
	g_assert_true(imap_value_get_number(imap_value_item(r->args, 0), &n));
	g_assert_cmpuint(n, ==, G_MAXUINT64);
	g_assert_false(imap_value_get_number(imap_value_item(r->args, 1), &n));
	g_assert_false(imap_value_get_number(imap_value_item(r->args, 2), &n));
	g_assert_false(imap_value_get_number(imap_value_item(r->args, 3), &n));
	g_assert_false(imap_value_get_number(imap_value_item(r->args, 4), &n));
	g_assert_cmpuint(n, ==, G_MAXUINT64);
	g_assert_cmpstr(imap_value_get_string(imap_value_item(r->args, 4)), ==,
			"7");
	g_assert_null(imap_value_get_string(imap_value_item(r->args, 5)));
	g_assert_null(imap_value_get_string(imap_value_item(r->args, 6)));
	g_assert_cmpuint(imap_value_n_items(imap_value_item(r->args, 6)), ==,
			 1);
	g_assert_cmpuint(imap_value_n_items(imap_value_item(r->args, 7)), ==,
			 0);
	g_assert_true(imap_value_is_atom(imap_value_item(r->args, 7), "ABC"));
	g_assert_false(imap_value_is_atom(imap_value_item(r->args, 4), "7"));
	g_assert_null(imap_value_item(r->args, 8));
	g_assert_null(imap_value_item(imap_value_item(r->args, 7), 0));
	g_assert_null(imap_value_item(NULL, 0));
}

static void test_code_number(void)
{
	g_autoptr(ImapResponse) a = parse("* OK [UIDNEXT 4392] Predicted\r\n");
	g_autoptr(ImapResponse) b = parse("* OK [ALERT] hi\r\n");
	g_autoptr(ImapResponse) c = parse("* OK [UIDNEXT x1] hi\r\n");
	guint64 n = 0;

	g_assert_true(imap_response_code_number(a, "UIDNEXT", &n));
	g_assert_cmpuint(n, ==, 4392);
	g_assert_true(imap_response_code_number(a, "uidnext", NULL));
	g_assert_false(imap_response_code_number(a, "UIDVALIDITY", &n));
	g_assert_true(imap_response_code_number(b, "ALERT", NULL));
	g_assert_false(imap_response_code_number(b, "ALERT", &n));
	g_assert_true(imap_response_code_number(c, "UIDNEXT", NULL));
	g_assert_false(imap_response_code_number(c, "UIDNEXT", &n));
}

/* ---- FETCH ------------------------------------------------------------------
 */

static void check_full_fetch(const char *wire, gsize len)
{
	g_autoptr(ImapResponse) r = parse_with(wire, len, -1);
	g_autoptr(GError) error = NULL;
	ImapFetch f;

	g_assert_true(imap_response_get_fetch(r, &f, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(f.seq, ==, 12);
	g_assert_cmpuint(f.uid, ==, 4827);
	g_assert_nonnull(f.flags);
	g_assert_cmpuint(g_strv_length(f.flags), ==, 2);
	g_assert_cmpstr(f.flags[0], ==, "\\Seen");
	g_assert_cmpstr(f.flags[1], ==, "$Junk");
	g_assert_true(f.has_size);
	g_assert_cmpuint(f.size, ==, 2345);
	g_assert_true(f.has_internaldate);
	g_assert_cmpint(f.internaldate, ==, 837596665);
	g_assert_true(f.has_modseq);
	g_assert_cmpuint(f.modseq, ==, 12121231000);
	g_assert_nonnull(f.body);
	g_assert_cmpint(f.body->type, ==, IMAP_VALUE_STRING);
	g_assert_cmpmem(f.body->str, f.body->len, "he\0lo", 5);
	g_assert_cmpstr(f.body_section, ==, "");
	g_assert_true(f.has_origin);
	g_assert_cmpuint(f.origin, ==, 1024);
	imap_fetch_clear(&f);
	g_assert_null(f.flags);
	g_assert_null(f.body_section);
}

static void test_fetch_any_order(void)
{
	static const char a[] =
		"* 12 FETCH (FLAGS (\\Seen $Junk) UID 4827 "
		"RFC822.SIZE 2345 INTERNALDATE \"17-Jul-1996 02:44:25 "
		"-0700\" MODSEQ (12121231000) X-GM-LABELS (\\Inbox) "
		"ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) "
		"BODY[]<1024> {5}\r\nhe\0lo)\r\n";
	static const char b[] =
		"* 12 fetch (body[]<1024> ~{5}\r\nhe\0lo "
		"BODYSTRUCTURE (\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" "
		"5 1) envelope (NIL NIL NIL NIL NIL NIL NIL NIL NIL "
		"NIL) modseq (12121231000) internaldate {26}\r\n"
		"17-Jul-1996 02:44:25 -0700 rfc822.size 2345 "
		"flags (\\Seen $Junk) uid 4827)\r\n";

	check_full_fetch(a, sizeof(a) - 1);
	check_full_fetch(b, sizeof(b) - 1);
}

static void test_fetch_minimal(void)
{
	g_autoptr(ImapResponse) r = parse("* 3 FETCH ()\r\n");
	g_autoptr(ImapResponse) r2 = parse("* 4 FETCH (UID 9 FLAGS ())\r\n");
	ImapFetch f;

	g_assert_true(imap_response_get_fetch(r, &f, NULL));
	g_assert_cmpuint(f.seq, ==, 3);
	g_assert_cmpuint(f.uid, ==, 0);
	g_assert_null(f.flags);
	g_assert_false(f.has_size);
	g_assert_false(f.has_internaldate);
	g_assert_false(f.has_modseq);
	g_assert_null(f.body);
	g_assert_null(f.body_section);
	imap_fetch_clear(&f);

	g_assert_true(imap_response_get_fetch(r2, &f, NULL));
	g_assert_cmpuint(f.uid, ==, 9);
	g_assert_nonnull(f.flags);
	g_assert_null(f.flags[0]);
	imap_fetch_clear(&f);
}

static void test_fetch_sections(void)
{
	static const struct {
		const char *wire;
		const char *section;
		gboolean has_origin;
		guint64 origin;
		ImapValueType type;
	} cases[] = {
		{"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)] {2}\r\nab)\r\n",
		 "HEADER.FIELDS (SUBJECT FROM)", FALSE, 0, IMAP_VALUE_STRING},
		{"* 1 FETCH (BODY[TEXT]<0> NIL)\r\n", "TEXT", TRUE, 0,
		 IMAP_VALUE_NIL},
		{"* 1 FETCH (BINARY[1.2]<18446744073709551615> \"x\")\r\n",
		 "1.2", TRUE, G_MAXUINT64, IMAP_VALUE_STRING},
		{"* 1 FETCH (RFC822.HEADER \"x\")\r\n", "HEADER", FALSE, 0,
		 IMAP_VALUE_STRING},
		{"* 1 FETCH (RFC822 \"x\")\r\n", "", FALSE, 0,
		 IMAP_VALUE_STRING},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(ImapResponse) r = parse(cases[i].wire);
		ImapFetch f;

		g_assert_true(imap_response_get_fetch(r, &f, NULL));
		g_assert_cmpstr(f.body_section, ==, cases[i].section);
		g_assert_cmpint(f.has_origin, ==, cases[i].has_origin);
		g_assert_cmpuint(f.origin, ==, cases[i].origin);
		g_assert_nonnull(f.body);
		g_assert_cmpint(f.body->type, ==, cases[i].type);
		imap_fetch_clear(&f);
	}
}

static void test_fetch_spooled(void)
{
	static const char wire[] =
		"* 9 FETCH (BODY[] {40}\r\n"
		"0123456789\r\n0123456789\0\r\n0123456789xxxxx"
		" UID 77)\r\n";
	g_autoptr(GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp("imapfs-resp-XXXXXX", &error);
	int dirfd;
	char buf[64];
	ImapFetch f;

	g_assert_no_error(error);
	dirfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	g_assert_cmpint(dirfd, >=, 0);
	{
		g_autoptr(ImapResponse) r =
			parse_with(wire, sizeof(wire) - 1, dirfd);

		g_assert_true(imap_response_get_fetch(r, &f, &error));
		g_assert_cmpuint(f.uid, ==, 77);
		g_assert_cmpint(f.body->type, ==, IMAP_VALUE_SPOOLED);
		g_assert_cmpuint(f.body->len, ==, 40);
		g_assert_cmpint(pread(f.body->fd, buf, sizeof(buf), 0), ==, 40);
		g_assert_cmpmem(buf, 40, wire + 24, 40);
		imap_fetch_clear(&f);
	}
	close(dirfd);
	g_assert_cmpint(rmdir(dir), ==, 0);
}

static void test_fetch_malformed(void)
{
	static const char *const bad[] = {
		"* 1 FETCH (UID)\r\n",
		"* 1 FETCH (UID x)\r\n",
		"* 1 FETCH (UID 0)\r\n",
		"* 1 FETCH (UID 4294967296)\r\n",
		"* 1 FETCH (UID \"5\")\r\n",
		"* 1 FETCH (FLAGS \\Seen)\r\n",
		"* 1 FETCH (FLAGS (\"\\Seen\"))\r\n",
		"* 1 FETCH (RFC822.SIZE -1)\r\n",
		"* 1 FETCH (INTERNALDATE \"yesterday\")\r\n",
		"* 1 FETCH (INTERNALDATE 5)\r\n",
		"* 1 FETCH (MODSEQ 5)\r\n",
		"* 1 FETCH (MODSEQ (5 6))\r\n",
		"* 1 FETCH (BODY[]<x> \"a\")\r\n",
		"* 1 FETCH (BODY[]<5 \"a\")\r\n",
		"* 1 FETCH (BODY[]junk \"a\")\r\n",
		"* 1 FETCH (BODY[] (a))\r\n",
		"* 1 FETCH (BODY[] abc)\r\n",
		"* 1 FETCH (BODY[] \"a\" BODY[] \"b\")\r\n",
		"* 1 FETCH (BODY[]<0> \"a\" BODY[HEADER] \"b\")\r\n",
		"* 1 FETCH (\"UID\" 5)\r\n",
		"* 1 FETCH UID 5\r\n",
		"* 1 FETCH (UID 5) (UID 6)\r\n",
		"* FETCH (UID 5)\r\n",
		"* 0 FETCH (UID 5)\r\n",
		"* 1 EXPUNGE\r\n",
		"a1 OK FETCH done\r\n",
	};

	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(ImapResponse) r = parse(bad[i]);
		g_autoptr(GError) error = NULL;
		ImapFetch f;

		g_test_message("%s", bad[i]);
		g_assert_false(imap_response_get_fetch(r, &f, &error));
		g_assert_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_PROTOCOL);
		/* nothing left to free */
		g_assert_null(f.flags);
		g_assert_null(f.body_section);
		g_assert_null(f.body);
	}
}

/* ---- INTERNALDATE
 * -------------------------------------------------------------- */

static void test_internaldate(void)
{
	static const struct {
		const char *text;
		gint64 time;
	} good[] = {
		{"17-Jul-1996 02:44:25 -0700", 837596665},
		{"01-Jan-1970 00:00:00 +0000", 0},
		{" 1-jan-1970 00:00:00 +0000", 0},
		{"31-Dec-1969 23:59:59 +0000", -1},
		{"29-Feb-2000 23:59:59 +0530", 951848999},
		{"19-JAN-2038 03:14:08 +0000", 2147483648LL},
		{"01-Mar-1900 00:00:00 +0000", -2203891200LL},
		{"01-Jan-1970 00:00:60 +0000", 60},
	};
	static const char *const bad[] = {
		"",
		"17-Jul-1996 02:44:25",
		"17-Jul-1996 02:44:25 -07000",
		"7-Jul-1996 02:44:25 -0700",
		"17-Jxl-1996 02:44:25 -0700",
		"00-Jul-1996 02:44:25 -0700",
		"32-Jul-1996 02:44:25 -0700",
		"31-Jun-1996 02:44:25 -0700",
		"29-Feb-1900 02:44:25 -0700",
		"29-Feb-2023 02:44:25 -0700",
		"17-Jul-1996 24:44:25 -0700",
		"17-Jul-1996 02:60:25 -0700",
		"17-Jul-1996 02:44:61 -0700",
		"17-Jul-1996 02:44:25 -0760",
		"17-Jul-1996 02:44:25 *0700",
		"17/Jul/1996 02:44:25 -0700",
		"17-Jul-19x6 02:44:25 -0700",
		"17-Jul-1996T02:44:25 -0700",
		"1a-Jul-1996 02:44:25 -0700",
		"\"7-Jul-1996 02:44:25 -0700",
	};
	gint64 t;

	for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
		t = 12345;
		g_test_message("%s", good[i].text);
		g_assert_true(imap_parse_internaldate(good[i].text, &t));
		g_assert_cmpint(t, ==, good[i].time);
	}
	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		t = 12345;
		g_test_message("%s", bad[i]);
		g_assert_false(imap_parse_internaldate(bad[i], &t));
		g_assert_cmpint(t, ==, 12345);
	}
	g_assert_false(imap_parse_internaldate(NULL, &t));
}

/* ---- LIST
 * ------------------------------------------------------------------------ */

static void test_list(void)
{
	static const struct {
		const char *wire;
		const char *name;
		char delim;
		guint attrs;
	} good[] = {
		{"* LIST (\\HasNoChildren) \"/\" \"INBOX/Sub Folder\"\r\n",
		 "INBOX/Sub Folder", '/', IMAP_MBOX_HASNOCHILDREN},
		{"* LIST () \".\" INBOX\r\n", "INBOX", '.', 0},
		{"* LIST (\\Noselect \\HasChildren) \"/\" {8}\r\nfoo\"(bar\r\n",
		 "foo\"(bar", '/', IMAP_MBOX_NOSELECT | IMAP_MBOX_HASCHILDREN},
		{"* LIST (\\NoInferiors) NIL \"Flat\"\r\n", "Flat", '\0',
		 IMAP_MBOX_NOINFERIORS},
		{"* list (\\trash \\HasNoChildren \\Marked) \"/\" Trash\r\n",
		 "Trash", '/', IMAP_MBOX_TRASH | IMAP_MBOX_HASNOCHILDREN},
		{"* LIST (\\Junk \\Sent \\Drafts \\Archive \\All \\Flagged) "
		 "\"\\\\\" \"&AOk-t&AOk-\"\r\n",
		 "&AOk-t&AOk-", '\\',
		 IMAP_MBOX_JUNK | IMAP_MBOX_SENT | IMAP_MBOX_DRAFTS |
			 IMAP_MBOX_ARCHIVE | IMAP_MBOX_ALL | IMAP_MBOX_FLAGGED},
		{"* LIST (\\NonExistent) \"/\" Gone (\"CHILDINFO\" "
		 "(\"SUBSCRIBED\"))\r\n",
		 "Gone", '/', IMAP_MBOX_NONEXISTENT | IMAP_MBOX_NOSELECT},
		{"* LSUB () \"/\" Sub\r\n", "Sub", '/', 0},
	};
	static const char *const bad[] = {
		"* LIST \\Noselect \"/\" x\r\n",
		"* LIST (\"x\") \"/\" x\r\n",
		"* LIST () \"//\" x\r\n",
		"* LIST () \"\" x\r\n",
		"* LIST () / x\r\n",
		"* LIST () \"/\"\r\n",
		"* LIST () \"/\" NIL\r\n",
		"* LIST () \"/\" \"\"\r\n",
		"* LIST () \"/\" (x)\r\n",
		"* STATUS x (MESSAGES 1)\r\n",
		"a1 OK LIST done\r\n",
	};

	for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
		g_autoptr(ImapResponse) r = parse(good[i].wire);
		g_autoptr(GError) error = NULL;
		ImapListItem item;

		g_test_message("%s", good[i].wire);
		g_assert_true(imap_response_get_list(r, &item, &error));
		g_assert_no_error(error);
		g_assert_cmpstr(item.name, ==, good[i].name);
		g_assert_cmpint(item.delimiter, ==, good[i].delim);
		g_assert_cmphex(item.attrs, ==, good[i].attrs);
		imap_list_item_clear(&item);
		g_assert_null(item.name);
	}
	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(ImapResponse) r = parse(bad[i]);
		g_autoptr(GError) error = NULL;
		ImapListItem item;

		g_test_message("%s", bad[i]);
		g_assert_false(imap_response_get_list(r, &item, &error));
		g_assert_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_PROTOCOL);
		g_assert_null(item.name);
	}
	{
		g_autoptr(ImapResponse) r =
			parse_lit("* LIST () \"/\" {3}\r\na\0b\r\n");
		g_autoptr(GError) error = NULL;
		ImapListItem item;

		g_assert_false(imap_response_get_list(r, &item, &error));
		g_assert_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_PROTOCOL);
	}
}

/* ---- SELECT
 * ------------------------------------------------------------------------- */

static void test_mailbox_info(void)
{
	static const char *const wire[] = {
		"* 172 EXISTS\r\n",
		"* 1 RECENT\r\n",
		"* OK [UNSEEN 12] Message 12 is first unseen\r\n",
		"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n",
		"* OK [UIDNEXT 4392] Predicted next UID\r\n",
		"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
		"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n",
		"* OK [HIGHESTMODSEQ 715194045007] Highest\r\n",
		"* NO [UIDNEXT 1] ignored: not OK\r\n",
		"* OK [UIDVALIDITY 4294967296] ignored: too big\r\n",
		"* LIST () \"/\" INBOX\r\n",
		"A142 OK [READ-ONLY] EXAMINE completed\r\n",
	};
	ImapMailboxInfo info = {0};

	for (gsize i = 0; i < G_N_ELEMENTS(wire); i++) {
		g_autoptr(ImapResponse) r = parse(wire[i]);

		imap_mailbox_info_update(&info, r);
	}
	g_assert_cmpuint(info.exists, ==, 172);
	g_assert_cmpuint(info.uidvalidity, ==, 3857529045u);
	g_assert_cmpuint(info.uidnext, ==, 4392);
	g_assert_cmpuint(info.highestmodseq, ==, 715194045007);
	g_assert_true(info.readonly);
	g_assert_nonnull(info.flags);
	g_assert_cmpuint(g_strv_length(info.flags), ==, 5);
	g_assert_cmpstr(info.flags[4], ==, "\\Draft");
	g_assert_nonnull(info.permanentflags);
	g_assert_cmpuint(g_strv_length(info.permanentflags), ==, 3);
	g_assert_cmpstr(info.permanentflags[0], ==, "\\Deleted");
	g_assert_cmpstr(info.permanentflags[2], ==, "\\*");

	{
		g_autoptr(ImapResponse) a = parse("* OK [NOMODSEQ] none\r\n");
		g_autoptr(ImapResponse) b =
			parse("a2 OK [READ-WRITE] SELECT completed\r\n");
		g_autoptr(ImapResponse) c = parse("* 3 EXISTS\r\n");
		g_autoptr(ImapResponse) d = parse("* FLAGS ()\r\n");

		imap_mailbox_info_update(&info, a);
		imap_mailbox_info_update(&info, b);
		imap_mailbox_info_update(&info, c);
		imap_mailbox_info_update(&info, d);
		g_assert_cmpuint(info.highestmodseq, ==, 0);
		g_assert_false(info.readonly);
		g_assert_cmpuint(info.exists, ==, 3);
		g_assert_nonnull(info.flags);
		g_assert_null(info.flags[0]);
	}
	imap_mailbox_info_clear(&info);
	g_assert_null(info.flags);
	g_assert_null(info.permanentflags);
	g_assert_cmpuint(info.uidvalidity, ==, 0);
}

/* ---- capabilities and error codes
 * ----------------------------------------------------- */

static void test_caps(void)
{
	static const char *const words[] = {
		"IMAP4rev1", "auth=plain", "AUTH=LOGIN", "LITERAL+",
		"Literal-",  "SASL-IR",	   "X-UNKNOWN",	 NULL};
	g_autoptr(ImapResponse) data = parse(
		"* CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS LOGINDISABLED "
		"UIDPLUS "
		"MOVE CONDSTORE QRESYNC ENABLE IDLE SPECIAL-USE LIST-EXTENDED "
		"LIST-STATUS UTF8=ACCEPT ESEARCH BINARY NAMESPACE ID "
		"notify QUOTA QUOTA=RES-STORAGE\r\n");
	g_autoptr(ImapResponse) code = parse(
		"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN UTF8=ONLY] "
		"Dovecot ready.\r\n");
	g_autoptr(ImapResponse) empty = parse("a1 OK [CAPABILITY] x\r\n");
	g_autoptr(ImapResponse) none = parse("* OK [ALERT] x\r\n");
	g_autoptr(ImapResponse) other = parse("* ENABLED CONDSTORE\r\n");
	guint caps = 0;

	g_assert_cmphex(imap_caps_from_words(words), ==,
			IMAP_CAP_IMAP4REV1 | IMAP_CAP_AUTH_PLAIN |
				IMAP_CAP_LITERALPLUS | IMAP_CAP_LITERALMINUS |
				IMAP_CAP_SASL_IR);
	g_assert_cmphex(imap_caps_from_words(NULL), ==, 0);

	g_assert_true(imap_caps_from_response(data, &caps));
	g_assert_cmphex(
		caps, ==,
		IMAP_CAP_IMAP4REV1 | IMAP_CAP_IMAP4REV2 | IMAP_CAP_STARTTLS |
			IMAP_CAP_LOGINDISABLED | IMAP_CAP_UIDPLUS |
			IMAP_CAP_MOVE | IMAP_CAP_CONDSTORE | IMAP_CAP_QRESYNC |
			IMAP_CAP_ENABLE | IMAP_CAP_IDLE | IMAP_CAP_SPECIAL_USE |
			IMAP_CAP_LIST_EXTENDED | IMAP_CAP_LIST_STATUS |
			IMAP_CAP_UTF8_ACCEPT | IMAP_CAP_ESEARCH |
			IMAP_CAP_BINARY | IMAP_CAP_NAMESPACE | IMAP_CAP_ID |
			IMAP_CAP_NOTIFY | IMAP_CAP_QUOTA);
	g_assert_true(imap_caps_from_response(code, &caps));
	g_assert_cmphex(caps, ==,
			IMAP_CAP_IMAP4REV1 | IMAP_CAP_SASL_IR |
				IMAP_CAP_AUTH_PLAIN | IMAP_CAP_UTF8_ACCEPT);
	caps = 99;
	g_assert_true(imap_caps_from_response(empty, &caps));
	g_assert_cmphex(caps, ==, 0);
	caps = 99;
	g_assert_false(imap_caps_from_response(none, &caps));
	g_assert_false(imap_caps_from_response(other, &caps));
	g_assert_cmphex(caps, ==, 99);
}

static void test_error_codes(void)
{
	static const struct {
		const char *code;
		gboolean bad;
		ImapErrorCode expect;
	} cases[] = {
		{"NONEXISTENT", FALSE, IMAP_ERROR_NONEXISTENT},
		{"TRYCREATE", FALSE, IMAP_ERROR_NONEXISTENT},
		{"trycreate", FALSE, IMAP_ERROR_NONEXISTENT},
		{"ALREADYEXISTS", FALSE, IMAP_ERROR_ALREADYEXISTS},
		{"OVERQUOTA", FALSE, IMAP_ERROR_OVERQUOTA},
		{"NOPERM", FALSE, IMAP_ERROR_NOPERM},
		{"TOOBIG", FALSE, IMAP_ERROR_TOOBIG},
		{"LIMIT", FALSE, IMAP_ERROR_TOOBIG},
		{"AUTHENTICATIONFAILED", FALSE, IMAP_ERROR_AUTH},
		{"AUTHORIZATIONFAILED", FALSE, IMAP_ERROR_AUTH},
		{"EXPUNGEISSUED", FALSE, IMAP_ERROR_EXPUNGED},
		{"SERVERBUG", FALSE, IMAP_ERROR_FAILED},
		{NULL, FALSE, IMAP_ERROR_FAILED},
		{NULL, TRUE, IMAP_ERROR_BAD},
		{"CLIENTBUG", TRUE, IMAP_ERROR_BAD},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++)
		g_assert_cmpint(imap_error_code_from_response(cases[i].code,
							      cases[i].bad),
				==, cases[i].expect);
	g_assert_cmpstr(g_quark_to_string(IMAPFS_IMAP_ERROR), ==,
			"imapfs-imap-error-quark");
}

static void test_uid_set(void)
{
	static const struct {
		const char *in;
		const char *out; /* "first-last;..." or NULL: refused */
	} rows[] = {
		{"1", "1-1;"},	 {"1:3,5", "1-3;5-5;"},
		{"9:7", "7-9;"}, {"4294967295", "4294967295-4294967295;"},
		{"", NULL},	 {"0", NULL},
		{"1:*", NULL},	 {"1,,2", NULL},
		{"1:2:3", NULL}, {"4294967296", NULL},
		{"a", NULL},	 {"1:", NULL},
	};

	for (guint i = 0; i < G_N_ELEMENTS(rows); i++) {
		g_autoptr(GArray) out =
			g_array_new(FALSE, FALSE, sizeof(ImapUidRange));
		g_autoptr(GString) got = g_string_new(NULL);
		gboolean ok = imap_parse_uid_set(rows[i].in, out);

		g_assert_cmpint(ok, ==, rows[i].out != NULL);
		if (!ok)
			continue;
		for (guint k = 0; k < out->len; k++) {
			ImapUidRange *r = &g_array_index(out, ImapUidRange, k);

			g_string_append_printf(got, "%u-%u;", r->first,
					       r->last);
		}
		g_assert_cmpstr(got->str, ==, rows[i].out);
	}
}

/* QUOTA responses (RFC 9208 §7.1) as servers send them, and broken ones. */
static void test_quota(void)
{
	static const struct {
		const char *line;
		gboolean ok;
		gint64 storage_used, storage_limit;
		gint64 messages_used, messages_limit;
	} cases[] = {
		{"* QUOTA \"User quota\" (STORAGE 49 10240)\r\n", TRUE, 49,
		 10240, -1, -1},
		{"* QUOTA \"\" (STORAGE 1 2 MESSAGE 3 100)\r\n", TRUE, 1, 2,
		 3, 100},
		/* resources in any case and order; unknown ones skipped */
		{"* QUOTA root (message 0 5 MAILBOX 1 9 storage 7 8)\r\n",
		 TRUE, 7, 8, 0, 5},
		/* a root with no resource */
		{"* QUOTA root ()\r\n", TRUE, -1, -1, -1, -1},
		/* usage over the limit is kept as the server says */
		{"* QUOTA r (STORAGE 20 10)\r\n", TRUE, 20, 10, -1, -1},
		{"* QUOTA r (STORAGE 18446744073709551615 1)\r\n", FALSE, 0, 0, 0, 0},
		{"* QUOTA r (STORAGE 1)\r\n", FALSE, 0, 0, 0, 0},
		{"* QUOTA r (STORAGE x 1)\r\n", FALSE, 0, 0, 0, 0},
		{"* QUOTA r (STORAGE -1 1)\r\n", FALSE, 0, 0, 0, 0},
		{"* QUOTA r STORAGE 1 2\r\n", FALSE, 0, 0, 0, 0},
		{"* QUOTA r\r\n", FALSE, 0, 0, 0, 0},
		{"* QUOTA\r\n", FALSE, 0, 0, 0, 0},
		{"* QUOTAROOT INBOX r\r\n", FALSE, 0, 0, 0, 0},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(ImapResponse) resp = parse(cases[i].line);
		ImapQuota q;

		g_assert_nonnull(resp);
		g_assert_cmpint(imap_response_get_quota(resp, &q), ==,
				cases[i].ok);
		if (!cases[i].ok)
			continue;
		g_assert_cmpint(q.storage_used, ==, cases[i].storage_used);
		g_assert_cmpint(q.storage_limit, ==, cases[i].storage_limit);
		g_assert_cmpint(q.messages_used, ==, cases[i].messages_used);
		g_assert_cmpint(q.messages_limit, ==,
				cases[i].messages_limit);
	}
}

static void test_search_results(void)
{
	static const struct {
		const char *line;
		gboolean ok;
		guint n_ranges;
	} rows[] = {
		{"* SEARCH 2 4 9\r\n", TRUE, 3},
		{"* SEARCH\r\n", TRUE, 0},
		{"* SEARCH 2 4 (MODSEQ 917162500)\r\n", TRUE, 2},
		{"* ESEARCH (TAG \"A5\") UID ALL 1:3,5\r\n", TRUE, 2},
		{"* ESEARCH (TAG \"A5\") UID\r\n", TRUE, 0},
		{"* ESEARCH (TAG \"A5\") UID ALL 1:*\r\n", FALSE, 0},
		{"* SEARCH 2 x\r\n", FALSE, 0},
		{"* 3 EXISTS\r\n", FALSE, 0},
	};

	for (guint i = 0; i < G_N_ELEMENTS(rows); i++) {
		g_autoptr(ImapParser) p = imap_parser_new(NULL, -1);
		g_autoptr(ImapResponse) resp = NULL;
		g_autoptr(GArray) out =
			g_array_new(FALSE, FALSE, sizeof(ImapUidRange));
		gsize used;

		g_assert_cmpint(
			imap_parser_feed(p, (const guint8 *)rows[i].line,
					 strlen(rows[i].line), &used, &resp),
			==, IMAP_PARSE_RESPONSE);
		g_assert_cmpint(imap_response_get_search(resp, out), ==,
				rows[i].ok);
		if (rows[i].ok)
			g_assert_cmpuint(out->len, ==, rows[i].n_ranges);
	}
}

static void test_format_internaldate(void)
{
	static const gint64 times[] = {0, 1, 951782400 /* 2000-02-29 */,
				       1795317812, 4102444799};

	for (guint i = 0; i < G_N_ELEMENTS(times); i++) {
		g_autofree char *text = imap_format_internaldate(times[i]);
		gint64 back = -1;

		g_assert_nonnull(text);
		g_assert_cmpuint(strlen(text), ==, 26);
		g_assert_true(imap_parse_internaldate(text, &back));
		g_assert_cmpint(back, ==, times[i]);
	}
	{
		g_autofree char *text = imap_format_internaldate(951782400);

		g_assert_cmpstr(text, ==, "29-Feb-2000 00:00:00 +0000");
	}
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/imap/response/value-accessors", test_value_accessors);
	g_test_add_func("/imap/response/code-number", test_code_number);
	g_test_add_func("/imap/response/internaldate/format",
			test_format_internaldate);
	g_test_add_func("/imap/response/search/uid-set", test_uid_set);
	g_test_add_func("/imap/response/search/results", test_search_results);
	g_test_add_func("/imap/response/quota", test_quota);
	g_test_add_func("/imap/response/fetch/any-order", test_fetch_any_order);
	g_test_add_func("/imap/response/fetch/minimal", test_fetch_minimal);
	g_test_add_func("/imap/response/fetch/sections", test_fetch_sections);
	g_test_add_func("/imap/response/fetch/spooled", test_fetch_spooled);
	g_test_add_func("/imap/response/fetch/malformed", test_fetch_malformed);
	g_test_add_func("/imap/response/internaldate", test_internaldate);
	g_test_add_func("/imap/response/list", test_list);
	g_test_add_func("/imap/response/mailbox-info", test_mailbox_info);
	g_test_add_func("/imap/response/caps", test_caps);
	g_test_add_func("/imap/response/error-codes", test_error_codes);
	return g_test_run();
}

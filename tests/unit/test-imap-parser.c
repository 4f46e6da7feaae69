/* tests/unit/test-imap-parser.c — the streaming response parser.
 *
 * Every input is fed whole, split in two at every byte, and one byte at a
 * time; each way must give the same trees, rendered to text by dump_*() and
 * compared with the expected rendering. Spooled literals are rendered from
 * their fd with pread, so the split tests cover spooling too. A hostile table
 * checks each error (or NEED_MORE) and its message, also byte by byte.
 */
#include "imap/parser.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static const ImapParserLimits small_limits = {
	.max_line = 64,
	.max_depth = 4,
	.inline_max = 16,
	.literal_max = 1024 * 1024,
};

/* ---- rendering ---------------------------------------------------------- */

static void dump_bytes(GString *out, const char *s, gsize len)
{
	for (gsize i = 0; i < len; i++) {
		guint8 c = s[i];

		if (c == '"' || c == '\\')
			g_string_append_printf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			g_string_append_printf(out, "\\x%02x", c);
		else
			g_string_append_c(out, c);
	}
}

static void dump_value(GString *out, const ImapValue *v)
{
	switch (v->type) {
	case IMAP_VALUE_ATOM:
		g_assert_cmpuint(strlen(v->str), ==, v->len);
		g_string_append_len(out, v->str, v->len);
		break;
	case IMAP_VALUE_NIL:
		g_assert_null(v->str);
		g_string_append(out, "NIL");
		break;
	case IMAP_VALUE_STRING:
		g_assert_nonnull(v->str);
		g_assert_cmpint(v->str[v->len], ==, '\0');
		g_string_append_c(out, '"');
		dump_bytes(out, v->str, v->len);
		g_string_append_c(out, '"');
		break;
	case IMAP_VALUE_SPOOLED: {
		g_autofree char *buf = g_malloc(v->len + 1);

		g_assert_cmpint(v->fd, >=, 0);
		g_assert_null(v->str);
		g_assert_cmpint(pread(v->fd, buf, v->len + 1, 0), ==, v->len);
		g_string_append(out, "F\"");
		dump_bytes(out, buf, v->len);
		g_string_append_c(out, '"');
		break;
	}
	case IMAP_VALUE_LIST:
		g_string_append_c(out, '(');
		for (guint i = 0; i < v->items->len; i++) {
			if (i)
				g_string_append_c(out, ' ');
			dump_value(out, g_ptr_array_index(v->items, i));
		}
		g_string_append_c(out, ')');
		break;
	}
}

/* One line per response:
 *   "+ text"  /  "<tag|*> STATUS [CODE|arg] text"  /  "* [n] NAME (args)" */
static void dump_response(GString *out, const ImapResponse *r)
{
	static const char *const st[] = {"NONE", "OK",	"NO",
					 "BAD",	 "BYE", "PREAUTH"};

	g_assert_nonnull(r);
	if (r->kind == IMAP_RESPONSE_CONTINUATION) {
		g_assert_null(r->args);
		g_string_append_printf(out, "+ %s\n", r->text);
		return;
	}
	g_string_append(out, r->kind == IMAP_RESPONSE_TAGGED ? r->tag : "*");
	if (r->kind == IMAP_RESPONSE_TAGGED)
		g_assert_cmpint(r->status, !=, IMAP_STATUS_NONE);
	else
		g_assert_null(r->tag);
	if (r->status != IMAP_STATUS_NONE) {
		g_assert_null(r->args);
		g_assert_null(r->name);
		g_assert_nonnull(r->text);
		g_string_append_printf(out, " %s", st[r->status]);
		if (r->code || r->code_arg)
			g_string_append_printf(out, " [%s|%s]",
					       r->code ? r->code : "-",
					       r->code_arg ? r->code_arg : "-");
		g_string_append_printf(out, " %s\n", r->text);
		return;
	}
	if (r->has_number)
		g_string_append_printf(out, " %u", r->number);
	g_assert_nonnull(r->args);
	g_string_append_printf(out, " %s ", r->name);
	dump_value(out, r->args);
	g_string_append_c(out, '\n');
}

/* Feeds @input in chunks of the given sizes (the last repeats); returns
 * the rendering of all responses, then "ERROR: why" or "NEED_MORE". */
static char *feed_chunks(const ImapParserLimits *limits, int dirfd,
			 const char *input, gsize len, gsize first, gsize rest)
{
	g_autoptr(ImapParser) p = imap_parser_new(limits, dirfd);
	GString *out = g_string_new(NULL);
	gsize pos = 0;
	gboolean need_more = FALSE;

	while (pos < len) {
		gsize chunk = MIN(pos == 0 ? first : rest, len - pos);
		gsize off = 0;

		while (off < chunk) {
			ImapResponse *r = NULL;
			gsize used = 99999;
			ImapParseStatus s = imap_parser_feed(
				p, (const guint8 *)input + pos + off,
				chunk - off, &used, &r);

			g_assert_cmpuint(used, <=, chunk - off);
			off += used;
			if (s == IMAP_PARSE_ERROR) {
				g_assert_null(r);
				g_string_append_printf(out, "ERROR: %s",
						       imap_parser_error(p));
				/* dead from now on */
				s = imap_parser_feed(p,
						     (const guint8 *)"* OK\r\n",
						     6, &used, &r);
				g_assert_cmpint(s, ==, IMAP_PARSE_ERROR);
				g_assert_cmpuint(used, ==, 0);
				g_assert_null(r);
				return g_string_free(out, FALSE);
			}
			if (s == IMAP_PARSE_RESPONSE) {
				dump_response(out, r);
				imap_response_free(r);
				need_more = FALSE;
			} else {
				g_assert_null(r);
				g_assert_cmpuint(off, ==, chunk);
				need_more = TRUE;
			}
		}
		pos += chunk;
	}
	if (need_more)
		g_string_append(out, "NEED_MORE");
	return g_string_free(out, FALSE);
}

/* Parses @input whole, at every split and byte by byte; all must render
 * the same. Returns the rendering. */
static char *parse_everywhere(const ImapParserLimits *limits, int dirfd,
			      const char *input, gsize len)
{
	char *whole = feed_chunks(limits, dirfd, input, len, len, len);

	for (gsize cut = 1; cut < len; cut++) {
		g_autofree char *split =
			feed_chunks(limits, dirfd, input, len, cut, len);

		if (g_strcmp0(split, whole) != 0)
			g_error("split at %" G_GSIZE_FORMAT " differs:\n%s\n"
				"vs whole:\n%s",
				cut, split, whole);
	}
	{
		g_autofree char *bytes =
			feed_chunks(limits, dirfd, input, len, 1, 1);
		g_assert_cmpstr(bytes, ==, whole);
	}
	return whole;
}

/* ---- well-formed input --------------------------------------------------- */

typedef struct {
	const char *input;
	gsize len;
	const char *expect;
	gboolean big; /* longer than small_limits.max_line */
} GoodCase;

#define GOOD(in, out)                                                          \
	{                                                                      \
		in, sizeof(in) - 1, out, FALSE                                 \
	}
#define GOOD_BIG(in, out)                                                      \
	{                                                                      \
		in, sizeof(in) - 1, out, TRUE                                  \
	}

static const GoodCase good_cases[] = {
	GOOD("+ go ahead\r\n", "+ go ahead\n"),
	GOOD("+\r\n", "+ \n"),
	GOOD("+ \r\n", "+ \n"),
	GOOD("+ [not a code] x\r\n", "+ [not a code] x\n"),
	GOOD("* OK [UIDVALIDITY 3857529045] UIDs valid\r\n",
	     "* OK [UIDVALIDITY|3857529045] UIDs valid\n"),
	GOOD("* ok [alert]   mind (this\"\r\n",
	     "* OK [ALERT|-] mind (this\"\n"),
	GOOD("a001 OK [READ-WRITE] SELECT completed\r\n",
	     "a001 OK [READ-WRITE|-] SELECT completed\n"),
	GOOD("A2 No [trycreate  ] no such\r\n",
	     "A2 NO [TRYCREATE|-] no such\n"),
	GOOD("* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n",
	     "* OK [PERMANENTFLAGS|(\\Deleted \\Seen \\*)] Limited\n"),
	GOOD("* OK [CAPABILITY IMAP4rev1  SASL-IR ]\r\n",
	     "* OK [CAPABILITY|IMAP4rev1  SASL-IR] \n"),
	GOOD("* OK [unclosed code\r\n", "* OK [unclosed code\n"),
	GOOD("t3 BAD\r\n", "t3 BAD \n"),
	GOOD("* BYE server going down\r\n", "* BYE server going down\n"),
	GOOD("* PREAUTH \xc3\xa9t\xc3\xa9\r\n",
	     "* PREAUTH \xc3\xa9t\xc3\xa9\n"),
	GOOD("* 3 EXISTS\r\n", "* 3 EXISTS ()\n"),
	GOOD("* 4294967295 expunge\r\n", "* 4294967295 EXPUNGE ()\n"),
	GOOD("* SEARCH\r\n", "* SEARCH ()\n"),
	GOOD("* SEARCH 2 3 \r\n", "* SEARCH (2 3)\n"),
	GOOD("* CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN\r\n",
	     "* CAPABILITY (IMAP4rev1 LITERAL+ AUTH=PLAIN)\n"),
	GOOD("* FLAGS (\\Answered \\Seen $Junk)\r\n",
	     "* FLAGS ((\\Answered \\Seen $Junk))\n"),
	GOOD("* 12 FETCH (UID 7 FLAGS (\\Seen \\*) BODY[] {5}\r\nhello)\r\n",
	     "* 12 FETCH ((UID 7 FLAGS (\\Seen \\*) BODY[] \"hello\"))\n"),
	GOOD("* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)]<0> {3}\r\nabc "
	     "UID 9)\r\n",
	     "* 1 FETCH ((BODY[HEADER.FIELDS (SUBJECT FROM)]<0> \"abc\" UID "
	     "9))\n"),
	GOOD("* 1 FETCH (BODY[1.2.MIME] NIL binary[1]<10> ~{3}\r\na\0b)\r\n",
	     "* 1 FETCH ((BODY[1.2.MIME] NIL binary[1]<10> \"a\\x00b\"))\n"),
	GOOD("* 2 FETCH (BODY[] {12+}\r\nA\r\nB\0C\r\n)) ()\r\n",
	     "* 2 FETCH ((BODY[] \"A\\x0d\\x0aB\\x00C\\x0d\\x0a)) (\"))\n"),
	GOOD("* 3 FETCH (BODY[TEXT] {0}\r\n UID 1)\r\n",
	     "* 3 FETCH ((BODY[TEXT] \"\" UID 1))\n"),
	GOOD_BIG("* 4 FETCH (ENVELOPE (\"Wed, 1 Jan 2020 00:00:00 +0000\" "
		 "\"=?utf-8?q?h=C3=A9?=\" ((\"A \\\"B\\\"\" NIL \"a\" "
		 "\"x.org\")) "
		 "NIL NIL NIL NIL NIL NIL \"<id@x>\"))\r\n",
		 "* 4 FETCH ((ENVELOPE (\"Wed, 1 Jan 2020 00:00:00 +0000\" "
		 "\"=?utf-8?q?h=C3=A9?=\" ((\"A \\\"B\\\"\" NIL \"a\" "
		 "\"x.org\")) "
		 "NIL NIL NIL NIL NIL NIL \"<id@x>\")))\n"),
	GOOD("* 5 FETCH (X \"\\a\\\\\xff\")\r\n",
	     "* 5 FETCH ((X \"a\\\\\\xff\"))\n"),
	GOOD("* LIST (\\HasNoChildren) \"/\" {5}\r\nIN(BO\r\n",
	     "* LIST ((\\HasNoChildren) \"/\" \"IN(BO\")\n"),
	GOOD("* LIST (\\Noselect) NIL \"\"\r\n",
	     "* LIST ((\\Noselect) NIL \"\")\n"),
	GOOD("* LIST () \".\" ~x\r\n", "* LIST (() \".\" ~x)\n"),
	GOOD("* X ((((a))))\r\n", "* X (((((a)))))\n"),
	GOOD("* X ({1}\r\n({1}\r\n))\r\n", "* X ((\"(\" \")\"))\n"),
	GOOD("* X nil Nil NILS \"NIL\"\r\n", "* X (NIL NIL NILS \"NIL\")\n"),
	/* several responses in one buffer */
	GOOD("* 1 EXISTS\r\n+ x\r\na1 OK done\r\n",
	     "* 1 EXISTS ()\n+ x\na1 OK done\n"),
	/* exactly max_line (64) bytes */
	GOOD("* OK "
	     "012345678901234567890123456789012345678901234567890123456\r\n",
	     "* OK "
	     "012345678901234567890123456789012345678901234567890123456\n"),
	/* a literal is not counted against max_line */
	GOOD("* 1 FETCH (BODY[] {16}\r\n0123456789abcdef UID 1 FLAGS () X "
	     "yyyyyyy)\r\n",
	     "* 1 FETCH ((BODY[] \"0123456789abcdef\" UID 1 FLAGS () X "
	     "yyyyyyy))\n"),
};

static void test_good_split_everywhere(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(good_cases); i++) {
		const GoodCase *c = &good_cases[i];
		g_autofree char *got = parse_everywhere(
			c->big ? NULL : &small_limits, -1, c->input, c->len);

		g_test_message("case %" G_GSIZE_FORMAT, i);
		g_assert_cmpstr(got, ==, c->expect);
	}
}

/* Responses come back one at a time with *out_used short of the input. */
static void test_used_stops_at_response(void)
{
	static const char in[] = "* 1 EXISTS\r\n* 2 RECENT\r\n";
	g_autoptr(ImapParser) p = imap_parser_new(NULL, -1);
	g_autoptr(ImapResponse) r1 = NULL;
	g_autoptr(ImapResponse) r2 = NULL;
	gsize used;

	g_assert_cmpint(imap_parser_feed(p, (const guint8 *)in, sizeof(in) - 1,
					 &used, &r1),
			==, IMAP_PARSE_RESPONSE);
	g_assert_cmpuint(used, ==, 12);
	g_assert_cmpstr(r1->name, ==, "EXISTS");
	g_assert_cmpint(imap_parser_feed(p, (const guint8 *)in + 12,
					 sizeof(in) - 13, &used, &r2),
			==, IMAP_PARSE_RESPONSE);
	g_assert_cmpuint(used, ==, sizeof(in) - 13);
	g_assert_cmpstr(r2->name, ==, "RECENT");
	g_assert_cmpuint(r2->number, ==, 2);
	{
		ImapResponse *none = NULL;

		g_assert_cmpint(imap_parser_feed(p, NULL, 0, &used, &none), ==,
				IMAP_PARSE_NEED_MORE);
		g_assert_null(none);
	}
}

static void test_default_limits(void)
{
	g_assert_cmpuint(imap_parser_default_limits.max_line, ==, 1 << 20);
	g_assert_cmpuint(imap_parser_default_limits.max_depth, ==, 64);
	g_assert_cmpuint(imap_parser_default_limits.inline_max, ==, 64 << 10);
	g_assert_cmpuint(imap_parser_default_limits.literal_max, ==, 1 << 30);
}

/* 64 nested lists are fine with the default limits, 65 are not. */
static void test_default_depth(void)
{
	for (guint depth = 64; depth <= 65; depth++) {
		GString *in = g_string_new("* X ");
		g_autofree char *got = NULL;

		for (guint i = 0; i < depth; i++)
			g_string_append_c(in, '(');
		for (guint i = 0; i < depth; i++)
			g_string_append_c(in, ')');
		g_string_append(in, "\r\n");
		got = feed_chunks(NULL, -1, in->str, in->len, 1, 1);
		if (depth == 64)
			g_assert_true(g_str_has_prefix(got, "* X ((((("));
		else
			g_assert_cmpstr(got, ==,
					"ERROR: lists nested too deep");
		g_string_free(in, TRUE);
	}
}

/* ---- spooled literals ---------------------------------------------------- */

typedef struct {
	char *path;
	int fd;
} SpoolDir;

static void spool_dir_open(SpoolDir *d)
{
	g_autoptr(GError) error = NULL;

	d->path = g_dir_make_tmp("imapfs-parser-XXXXXX", &error);
	g_assert_no_error(error);
	d->fd = open(d->path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	g_assert_cmpint(d->fd, >=, 0);
}

static void spool_dir_close(SpoolDir *d)
{
	g_autoptr(GDir) dir = g_dir_open(d->path, 0, NULL);

	/* the spool files are unnamed: nothing may be left behind */
	g_assert_nonnull(dir);
	g_assert_null(g_dir_read_name(dir));
	close(d->fd);
	g_assert_cmpint(rmdir(d->path), ==, 0);
	g_free(d->path);
}

static void test_spooled_literal(void)
{
	static const char in[] =
		"* 7 FETCH (UID 42 BODY[]<0> {40}\r\n"
		"Subject: x\r\n\r\nbody\0with NUL)\r\n(end....\r\n"
		" FLAGS (\\Seen))\r\n";
	static const char body[] = "Subject: x\r\n\r\nbody\0with NUL)\r\n"
				   "(end....\r\n";
	SpoolDir d;
	g_autofree char *got = NULL;

	G_STATIC_ASSERT(sizeof(body) - 1 == 40);
	spool_dir_open(&d);
	got = parse_everywhere(&small_limits, d.fd, in, sizeof(in) - 1);
	g_assert_cmpstr(
		got, ==,
		"* 7 FETCH ((UID 42 BODY[]<0> F\"Subject: x\\x0d\\x0a"
		"\\x0d\\x0abody\\x00with NUL)\\x0d\\x0a(end....\\x0d\\x0a\" "
		"FLAGS (\\Seen)))\n");

	/* and the tree itself: type, size, fd readable from 0 */
	{
		g_autoptr(ImapParser) p = imap_parser_new(&small_limits, d.fd);
		g_autoptr(ImapResponse) r = NULL;
		const ImapValue *v;
		char buf[64];
		gsize used;

		g_assert_cmpint(imap_parser_feed(p, (const guint8 *)in,
						 sizeof(in) - 1, &used, &r),
				==, IMAP_PARSE_RESPONSE);
		v = imap_value_item(imap_value_item(r->args, 0), 3);
		g_assert_nonnull(v);
		g_assert_cmpint(v->type, ==, IMAP_VALUE_SPOOLED);
		g_assert_cmpuint(v->len, ==, 40);
		g_assert_cmpint(pread(v->fd, buf, sizeof(buf), 0), ==, 40);
		g_assert_cmpmem(buf, 40, body, 40);
	}
	/* a literal of exactly inline_max stays in memory */
	{
		static const char in2[] = "* 1 FETCH (BODY[] {16}\r\n"
					  "0123456789abcdef)\r\n";
		g_autofree char *got2 =
			feed_chunks(&small_limits, d.fd, in2, sizeof(in2) - 1,
				    sizeof(in2), 1);

		g_assert_cmpstr(got2, ==,
				"* 1 FETCH ((BODY[] \"0123456789abcdef\"))\n");
	}
	spool_dir_close(&d);
}

/* More than max(max_line, inline_max) bytes of in-memory literals in one
 * response: the rest is spooled, or an error without a spool. */
static void test_literal_budget(void)
{
	GString *in = g_string_new("* 1 FETCH (");
	SpoolDir d;
	g_autofree char *got = NULL;
	g_autofree char *err = NULL;

	for (guint i = 0; i < 5; i++)
		g_string_append(in, "{16}\r\n0123456789abcdef ");
	g_string_append(in, ")\r\n");

	spool_dir_open(&d);
	got = parse_everywhere(&small_limits, d.fd, in->str, in->len);
	g_assert_cmpstr(got, ==,
			"* 1 FETCH ((\"0123456789abcdef\" \"0123456789abcdef\" "
			"\"0123456789abcdef\" \"0123456789abcdef\" "
			"F\"0123456789abcdef\"))\n");
	spool_dir_close(&d);

	err = feed_chunks(&small_limits, -1, in->str, in->len, in->len,
			  in->len);
	g_assert_cmpstr(err, ==,
			"ERROR: too much literal data in one response");
	g_string_free(in, TRUE);
}

/* ---- hostile input ---------------------------------------------------------
 */

typedef struct {
	const char *input;
	gsize len;
	ImapParseStatus status;
	const char *error; /* substring of imap_parser_error() */
} HostileCase;

#define HOSTILE(in, st, err)                                                   \
	{                                                                      \
		in, sizeof(in) - 1, st, err                                    \
	}
#define LINE65                                                                 \
	"* OK 0123456789012345678901234567890123456789012345678901234567\r\n"

static const HostileCase hostile_cases[] = {
	HOSTILE("* 1 FETCH (BODY[] {99999999999999999999999}\r\n",
		IMAP_PARSE_ERROR, "overflow"),
	HOSTILE("* 1 FETCH (BODY[] {18446744073709551616}\r\n",
		IMAP_PARSE_ERROR, "overflow"),
	HOSTILE("* 1 FETCH (BODY[] {4294967296}\r\n", IMAP_PARSE_ERROR,
		"literal_max"),
	HOSTILE("* 1 FETCH (BODY[] ~{1048577+}\r\n", IMAP_PARSE_ERROR,
		"literal_max"),
	HOSTILE("* 1 FETCH (BODY[] {17}\r\n01234567890123456)\r\n",
		IMAP_PARSE_ERROR, "no spool"),
	HOSTILE("* X (((((a)))))\r\n", IMAP_PARSE_ERROR, "nested too deep"),
	HOSTILE("* X \"a\0b\"\r\n", IMAP_PARSE_ERROR, "NUL in quoted"),
	HOSTILE("* X \"a\rb\"\r\n", IMAP_PARSE_ERROR, "CR or LF in quoted"),
	HOSTILE("* X \"a\\\nb\"\r\n", IMAP_PARSE_ERROR, "CR or LF in quoted"),
	HOSTILE("* OK hi\rx\n", IMAP_PARSE_ERROR, "CR not followed by LF"),
	HOSTILE("* 3 EXISTS\r\r\n", IMAP_PARSE_ERROR, "CR not followed"),
	HOSTILE("* OK hi\n", IMAP_PARSE_ERROR, "LF without CR"),
	HOSTILE("* 3 EXISTS\n", IMAP_PARSE_ERROR, "LF without CR"),
	HOSTILE("* X a\n", IMAP_PARSE_ERROR, "LF without CR"),
	HOSTILE(LINE65, IMAP_PARSE_ERROR, "too long"),
	HOSTILE("* X \"abc", IMAP_PARSE_NEED_MORE, NULL),
	HOSTILE("* X \"abc\\", IMAP_PARSE_NEED_MORE, NULL),
	HOSTILE("* 1 FETCH (BODY[] {5}\r\nab", IMAP_PARSE_NEED_MORE, NULL),
	HOSTILE("* 1 FETCH (BODY[] {5", IMAP_PARSE_NEED_MORE, NULL),
	HOSTILE("* 1 FETCH (BODY[HEADER.FIELDS (A", IMAP_PARSE_NEED_MORE, NULL),
	HOSTILE("* X {3}x\r\nabc\r\n", IMAP_PARSE_ERROR,
		"garbage after literal header"),
	HOSTILE("* X {3} \r\nabc\r\n", IMAP_PARSE_ERROR,
		"garbage after literal header"),
	HOSTILE("* X {3}\rabc\r\n", IMAP_PARSE_ERROR, "CR not followed"),
	HOSTILE("* X {3x}\r\nabc\r\n", IMAP_PARSE_ERROR, "malformed literal"),
	HOSTILE("* X {}\r\n\r\n", IMAP_PARSE_ERROR, "malformed literal"),
	HOSTILE("* X {+}\r\n\r\n", IMAP_PARSE_ERROR, "malformed literal"),
	HOSTILE("* X {-1}\r\n\r\n", IMAP_PARSE_ERROR, "malformed literal"),
	HOSTILE("* X {3+x\r\nabc\r\n", IMAP_PARSE_ERROR, "malformed literal"),
	HOSTILE("* X (a b\r\n", IMAP_PARSE_ERROR, "not closed"),
	HOSTILE("* X (a {1}\r\n)\r\n", IMAP_PARSE_ERROR, "not closed"),
	HOSTILE("* X a)\r\n", IMAP_PARSE_ERROR, "')' without '('"),
	HOSTILE("* X (a))\r\n", IMAP_PARSE_ERROR, "')' without '('"),
	HOSTILE("* 1 FETCH (BODY[TEXT\r\n", IMAP_PARSE_ERROR, "'[' not closed"),
	HOSTILE("\r\n", IMAP_PARSE_ERROR, "empty tag"),
	HOSTILE(" OK\r\n", IMAP_PARSE_ERROR, "empty tag"),
	HOSTILE("a1\r\n", IMAP_PARSE_ERROR, "tag without status"),
	HOSTILE("a1 \r\n", IMAP_PARSE_ERROR, "empty response keyword"),
	HOSTILE("*\r\n", IMAP_PARSE_ERROR, "tag without status"),
	HOSTILE("* \r\n", IMAP_PARSE_ERROR, "empty response keyword"),
	HOSTILE("*  OK\r\n", IMAP_PARSE_ERROR, "empty response keyword"),
	HOSTILE("* 3\r\n", IMAP_PARSE_ERROR, "number without keyword"),
	HOSTILE("* 3 \r\n", IMAP_PARSE_ERROR, "empty response keyword"),
	HOSTILE("* 4294967296 EXISTS\r\n", IMAP_PARSE_ERROR,
		"number too large"),
	HOSTILE("a1 FETCH x\r\n", IMAP_PARSE_ERROR, "without status"),
	HOSTILE("a+1 OK\r\n", IMAP_PARSE_ERROR, "invalid tag"),
	HOSTILE("+x\r\n", IMAP_PARSE_ERROR, "invalid tag"),
	HOSTILE("a\x01 OK\r\n", IMAP_PARSE_ERROR, "invalid character"),
	HOSTILE("\0\r\n", IMAP_PARSE_ERROR, "invalid character"),
	HOSTILE("* OK a\0b\r\n", IMAP_PARSE_ERROR, "NUL in response text"),
	HOSTILE("* X a\0b\r\n", IMAP_PARSE_ERROR, "control character"),
	HOSTILE("* X \x01\r\n", IMAP_PARSE_ERROR, "control character"),
	/* nothing is accepted after an error, even a good response */
	HOSTILE("* X a)\r\n* OK fine\r\n", IMAP_PARSE_ERROR, "')' without"),
};

static void test_hostile_table(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(hostile_cases); i++) {
		const HostileCase *c = &hostile_cases[i];
		g_autofree char *whole = NULL;
		g_autofree char *bytes = NULL;

		g_test_message("hostile case %" G_GSIZE_FORMAT, i);
		whole = feed_chunks(&small_limits, -1, c->input, c->len, c->len,
				    c->len);
		bytes = feed_chunks(&small_limits, -1, c->input, c->len, 1, 1);
		g_assert_cmpstr(bytes, ==, whole);
		if (c->status == IMAP_PARSE_NEED_MORE) {
			g_assert_cmpstr(whole, ==, "NEED_MORE");
		} else {
			g_assert_true(g_str_has_prefix(whole, "ERROR: "));
			if (!strstr(whole, c->error))
				g_error("case %" G_GSIZE_FORMAT ": \"%s\" "
					"lacks \"%s\"",
					i, whole, c->error);
		}
	}
}

/* The same with every split, and feeding stops at the bad byte. */
static void test_hostile_split(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(hostile_cases); i++) {
		const HostileCase *c = &hostile_cases[i];
		g_autofree char *got =
			parse_everywhere(&small_limits, -1, c->input, c->len);

		(void)got;
	}
}

/* An error reports where it stopped: *out_used covers the bad byte only. */
static void test_error_used(void)
{
	static const char in[] = "* X a)\r\n* OK\r\n";
	g_autoptr(ImapParser) p = imap_parser_new(NULL, -1);
	ImapResponse *r = NULL;
	gsize used;

	g_assert_cmpint(imap_parser_feed(p, (const guint8 *)in, sizeof(in) - 1,
					 &used, &r),
			==, IMAP_PARSE_ERROR);
	g_assert_cmpuint(used, ==, 6);
	g_assert_null(r);
	g_assert_cmpstr(imap_parser_error(p), ==, "')' without '('");
}

/* The spool directory's disk fills up while a literal is being written, or
 * is full from the start: the literal goes on in memory, every byte right,
 * and nothing is left in the directory. A small tmpfs stands for the disk,
 * in a mount namespace of this process's own (root only). */
static void test_spool_disk_full(gconstpointer data)
{
	gboolean full_at_start = GPOINTER_TO_INT(data);
	enum { LEN = 200000, STEP = 4096 };
	g_autoptr(GString) in = g_string_new("* 3 FETCH (UID 9 BODY[] ");
	g_autoptr(ImapParser) p = NULL;
	g_autoptr(ImapResponse) r = NULL;
	g_autofree char *body = g_malloc(LEN);
	g_autofree char *back = g_malloc(LEN);
	const ImapValue *v;
	ImapParseStatus st = IMAP_PARSE_NEED_MORE;
	g_autofree char *filler = NULL;
	SpoolDir d;
	gsize off = 0;

	if (unshare(CLONE_NEWNS) < 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0) {
		g_test_skip("a full disk is a small tmpfs: needs root");
		return;
	}
	for (gsize i = 0; i < LEN; i++)
		body[i] = "0123456789abcdef\r\n"[i * 7 % 18];
	g_string_append_printf(in, "{%u}\r\n", LEN);
	g_string_append_len(in, body, LEN);
	g_string_append(in, ")\r\n");
	spool_dir_open(&d);
	g_assert_cmpint(mount("tmpfs", d.path, "tmpfs", 0, "size=64k"), ==, 0);
	close(d.fd);
	d.fd = open(d.path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	g_assert_cmpint(d.fd, >=, 0);
	filler = g_build_filename(d.path, "filler", NULL);
	if (full_at_start) {
		int fd = open(filler, O_WRONLY | O_CREAT, 0600);
		char zero[4096] = {0};

		g_assert_cmpint(fd, >=, 0);
		while (write(fd, zero, sizeof(zero)) == sizeof(zero))
			;
		g_assert_cmpint(errno, ==, ENOSPC);
		close(fd);
	}
	p = imap_parser_new(&small_limits, d.fd);
	while (off < in->len && st == IMAP_PARSE_NEED_MORE) {
		gsize used = 0;

		st = imap_parser_feed(p, (const guint8 *)in->str + off,
				      MIN(STEP, in->len - off), &used, &r);
		off += used;
	}
	g_assert_cmpstr(imap_parser_error(p), ==, "no error");
	g_assert_cmpint(st, ==, IMAP_PARSE_RESPONSE);
	v = imap_value_item(imap_value_item(r->args, 0), 3);
	g_assert_nonnull(v);
	g_assert_cmpint(v->type, ==, IMAP_VALUE_SPOOLED);
	g_assert_cmpuint(v->len, ==, LEN);
	g_assert_cmpint(pread(v->fd, back, LEN, 0), ==, LEN);
	g_assert_cmpmem(back, LEN, body, LEN);
	g_clear_pointer(&r, imap_response_free);
	g_clear_pointer(&p, imap_parser_free);
	unlink(filler);
	g_assert_cmpint(umount2(d.path, MNT_DETACH), ==, 0);
	spool_dir_close(&d);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/imap/parser/good/split-everywhere",
			test_good_split_everywhere);
	g_test_add_func("/imap/parser/used-stops-at-response",
			test_used_stops_at_response);
	g_test_add_func("/imap/parser/default-limits", test_default_limits);
	g_test_add_func("/imap/parser/default-depth", test_default_depth);
	g_test_add_func("/imap/parser/spool/literal", test_spooled_literal);
	g_test_add_func("/imap/parser/spool/budget", test_literal_budget);
	g_test_add_data_func("/imap/parser/spool/disk-fills",
			     GINT_TO_POINTER(FALSE), test_spool_disk_full);
	g_test_add_data_func("/imap/parser/spool/disk-full",
			     GINT_TO_POINTER(TRUE), test_spool_disk_full);
	g_test_add_func("/imap/parser/hostile/table", test_hostile_table);
	g_test_add_func("/imap/parser/hostile/split", test_hostile_split);
	g_test_add_func("/imap/parser/hostile/used", test_error_used);
	return g_test_run();
}

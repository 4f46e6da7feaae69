/* tests/fuzz/fuzz-parser.c — libFuzzer target for the IMAP response parser.
 *
 * The whole input is one server byte stream. It is fed to imap_parser_feed
 * in pieces whose sizes come from a small generator seeded by the first
 * bytes of the input (whole, byte by byte, short or long random chunks), so
 * the fuzzer explores splits while the seeds stay plain IMAP. Limits are
 * small so that line, depth and literal limits are reachable. Every
 * response is checked for the tree invariants response.h promises and then
 * run through every decoder; SELECT data is folded over the whole stream.
 * A leaked file descriptor (spool files) aborts, as LeakSanitizer cannot
 * see those; memory leaks are left to LeakSanitizer.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"
#include "imap/caps.h"
#include "imap/parser.h"
#include "imap/response.h"

static const ImapParserLimits fuzz_limits = {
	.max_line = 4096,
	.max_depth = 8,
	.inline_max = 64,
	.literal_max = 1024 * 1024,
};

static const char *const fuzz_codes[] = {
	"UIDVALIDITY", "UIDNEXT",   "HIGHESTMODSEQ", "APPENDUID", "COPYUID",
	"CAPABILITY",  "READ-ONLY", "TRYCREATE",     "NOMODSEQ",  "UNSEEN",
};

/* The spool directory, created once per process: the one piece of state a
 * libFuzzer harness cannot avoid. */
static int fuzz_spool_fd = -1;
static char *fuzz_spool_path;

static void fuzz_log(const char *domain, GLogLevelFlags level,
		     const char *message, gpointer user_data)
{
	/* Hostile input may warn; a critical is a broken precondition and
	 * aborts (set fatal below) after being shown. */
	if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR))
		fprintf(stderr, "%s: %s\n", domain ? domain : "?", message);
}

static void fuzz_cleanup(void)
{
	if (fuzz_spool_fd >= 0)
		close(fuzz_spool_fd);
	if (fuzz_spool_path)
		rmdir(fuzz_spool_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	g_autoptr(GError) error = NULL;

	g_log_set_default_handler(fuzz_log, NULL);
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
	fuzz_spool_path = g_dir_make_tmp("imapfs-fuzz-XXXXXX", &error);
	if (!fuzz_spool_path) {
		fprintf(stderr, "spool dir: %s\n", error->message);
		abort();
	}
	fuzz_spool_fd = open(fuzz_spool_path, O_RDONLY | O_DIRECTORY);
	FUZZ_CHECK(fuzz_spool_fd >= 0);
	atexit(fuzz_cleanup);
	return 0;
}

/* The lowest free descriptor number. */
static int fuzz_lowest_free_fd(void)
{
	int fd = open("/dev/null", O_RDONLY);

	FUZZ_CHECK(fd >= 0);
	close(fd);
	return fd;
}

static void fuzz_check_value(const ImapValue *v, guint depth)
{
	struct stat st;

	FUZZ_CHECK(v != NULL);
	FUZZ_CHECK(depth <= fuzz_limits.max_depth + 1);
	switch (v->type) {
	case IMAP_VALUE_ATOM:
		FUZZ_CHECK(v->str != NULL && v->str[v->len] == '\0');
		FUZZ_CHECK(v->len > 0 && v->len <= fuzz_limits.max_line);
		FUZZ_CHECK(strlen(v->str) == v->len);
		FUZZ_CHECK(v->fd == -1 && v->items == NULL);
		break;
	case IMAP_VALUE_STRING:
		FUZZ_CHECK(v->str != NULL && v->str[v->len] == '\0');
		FUZZ_CHECK(v->len <= fuzz_limits.max_line);
		FUZZ_CHECK(v->fd == -1 && v->items == NULL);
		break;
	case IMAP_VALUE_NIL:
		FUZZ_CHECK(v->str == NULL && v->items == NULL);
		break;
	case IMAP_VALUE_SPOOLED:
		FUZZ_CHECK(v->str == NULL && v->items == NULL);
		FUZZ_CHECK(v->fd >= 0);
		FUZZ_CHECK(v->len <= fuzz_limits.literal_max);
		FUZZ_CHECK(fstat(v->fd, &st) == 0);
		FUZZ_CHECK((guint64)st.st_size == v->len);
		break;
	case IMAP_VALUE_LIST:
		FUZZ_CHECK(v->str == NULL && v->items != NULL);
		for (guint i = 0; i < v->items->len; i++)
			fuzz_check_value(g_ptr_array_index(v->items, i),
					 depth + 1);
		break;
	default:
		FUZZ_CHECK(!"unknown value type");
	}
	/* The typed accessors must agree with the tree. */
	FUZZ_CHECK(imap_value_n_items(v) ==
		   (v->type == IMAP_VALUE_LIST ? v->items->len : 0));
	FUZZ_CHECK(imap_value_item(v, imap_value_n_items(v)) == NULL);
	if (imap_value_get_string(v))
		FUZZ_CHECK(v->type == IMAP_VALUE_ATOM ||
			   v->type == IMAP_VALUE_STRING);
}

static void fuzz_check_response(const ImapResponse *r)
{
	FUZZ_CHECK(r != NULL);
	switch (r->kind) {
	case IMAP_RESPONSE_TAGGED:
		FUZZ_CHECK(r->tag != NULL && r->tag[0] != '\0');
		FUZZ_CHECK(r->status != IMAP_STATUS_NONE);
		FUZZ_CHECK(r->text != NULL && r->args == NULL);
		break;
	case IMAP_RESPONSE_CONTINUATION:
		FUZZ_CHECK(r->tag == NULL && r->text != NULL);
		FUZZ_CHECK(r->args == NULL);
		break;
	case IMAP_RESPONSE_UNTAGGED:
		FUZZ_CHECK(r->tag == NULL);
		if (r->status == IMAP_STATUS_NONE) {
			FUZZ_CHECK(r->name != NULL && r->name[0] != '\0');
			FUZZ_CHECK(r->args != NULL);
			FUZZ_CHECK(r->args->type == IMAP_VALUE_LIST);
			fuzz_check_value(r->args, 0);
		} else {
			FUZZ_CHECK(r->text != NULL && r->args == NULL);
		}
		break;
	default:
		FUZZ_CHECK(!"unknown response kind");
	}
}

static void fuzz_decode(const ImapResponse *r, ImapMailboxInfo *info)
{
	ImapFetch fetch = {0};
	ImapListItem item = {0};
	g_autoptr(GArray) uids =
		g_array_new(FALSE, FALSE, sizeof(ImapUidRange));
	g_autoptr(GError) error = NULL;
	guint caps = 0;
	guint64 number;

	if (imap_response_get_fetch(r, &fetch, &error)) {
		if (fetch.body)
			FUZZ_CHECK(fetch.body->type == IMAP_VALUE_STRING ||
				   fetch.body->type == IMAP_VALUE_SPOOLED ||
				   fetch.body->type == IMAP_VALUE_NIL);
	} else {
		FUZZ_CHECK(error != NULL);
	}
	imap_fetch_clear(&fetch);
	g_clear_error(&error);

	if (imap_response_get_list(r, &item, &error))
		FUZZ_CHECK(item.name != NULL);
	else
		FUZZ_CHECK(error != NULL);
	imap_list_item_clear(&item);
	g_clear_error(&error);

	if (imap_response_get_search(r, uids)) {
		for (guint i = 0; i < uids->len; i++) {
			ImapUidRange *u = &g_array_index(uids, ImapUidRange, i);

			FUZZ_CHECK(u->first <= u->last);
		}
	}
	if (r->code_arg) {
		g_array_set_size(uids, 0);
		imap_parse_uid_set(r->code_arg, uids);
	}

	imap_mailbox_info_update(info, r);
	imap_caps_from_response(r, &caps);
	for (gsize i = 0; i < G_N_ELEMENTS(fuzz_codes); i++) {
		imap_response_code_number(r, fuzz_codes[i], &number);
		imap_response_code_number(r, fuzz_codes[i], NULL);
	}
	if (r->code)
		FUZZ_CHECK(imap_response_code_number(r, r->code, NULL));
}

/* Split generator: state seeded from the first bytes of the input. */
typedef struct {
	guint32 state;
	guint mode;
	gsize total;
} FuzzSplit;

static void fuzz_split_init(FuzzSplit *s, const guint8 *data, gsize size)
{
	s->state = 2166136261u;
	for (gsize i = 0; i < size && i < 4; i++)
		s->state = (s->state ^ data[i]) * 16777619u;
	s->mode = s->state % 5;
	s->total = size;
}

static gsize fuzz_split_next(FuzzSplit *s)
{
	s->state = s->state * 1103515245u + 12345u;
	switch (s->mode) {
	case 0:
		return s->total;
	case 1:
		return 1;
	case 2:
		return 1 + (s->state >> 16) % 4;
	case 3:
		return 1 + (s->state >> 16) % 64;
	default:
		return 1 + (s->state >> 8) % (s->total + 1);
	}
}

int LLVMFuzzerTestOneInput(const guint8 *data, size_t size)
{
	int free_fd = fuzz_lowest_free_fd();
	ImapParser *parser = imap_parser_new(&fuzz_limits, fuzz_spool_fd);
	ImapMailboxInfo info = {0};
	FuzzSplit split;
	gsize pos = 0;
	gboolean dead = FALSE;

	fuzz_split_init(&split, data, size);
	while (pos < size && !dead) {
		/* Not inside MIN(), which evaluates its arguments twice. */
		gsize step = fuzz_split_next(&split);
		gsize end = MIN(size, pos + step);

		while (pos < end) {
			ImapResponse *resp = NULL;
			gsize used = 0;
			ImapParseStatus st;

			st = imap_parser_feed(parser, data + pos, end - pos,
					      &used, &resp);
			FUZZ_CHECK(used <= end - pos);
			pos += used;
			if (st == IMAP_PARSE_ERROR) {
				FUZZ_CHECK(resp == NULL);
				FUZZ_CHECK(imap_parser_error(parser) != NULL);
				dead = TRUE;
				break;
			}
			if (st == IMAP_PARSE_NEED_MORE) {
				FUZZ_CHECK(resp == NULL);
				FUZZ_CHECK(pos == end);
				break;
			}
			FUZZ_CHECK(st == IMAP_PARSE_RESPONSE);
			/* A response ends with its LF, so it consumes
			 * something: no endless stream of responses. */
			FUZZ_CHECK(used > 0);
			fuzz_check_response(resp);
			fuzz_decode(resp, &info);
			imap_response_free(resp);
		}
	}
	if (dead) {
		/* A dead parser stays dead. */
		ImapResponse *resp = NULL;
		gsize used = 1;

		FUZZ_CHECK(imap_parser_feed(parser, (const guint8 *)"\r\n", 2,
					    &used, &resp) == IMAP_PARSE_ERROR);
		FUZZ_CHECK(resp == NULL && used == 0);
	}
	imap_mailbox_info_clear(&info);
	imap_parser_free(parser);
	FUZZ_CHECK(fuzz_lowest_free_fd() == free_fd);
	return 0;
}

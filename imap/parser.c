/* imap/parser.c — streaming IMAP response parser.
 *
 * A byte-at-a-time state machine: every state is resumable, so the caller
 * may split its input anywhere (mid-tag, mid-atom, mid-quoted string, inside
 * a literal header or body, at any list depth). The only buffered text is
 * the current token (bounded by max_line) and the tree being built; literal
 * bodies are copied straight from the caller's buffer into the tree or, above
 * inline_max, written to an unlinked spool file (to a memfd while the spool's
 * disk is full: one literal is still better in memory than not at all).
 *
 * The first words of a response are read raw ("+", "*", the tag, an optional
 * number and the status or data keyword). Status responses and continuations
 * then take the rest of the line as text, which is only split into the
 * "[CODE arg]" part once the CR arrives: text is free-form and may hold
 * parentheses or quotes that are not values. Data responses are tokenised
 * into values below an args LIST; meaning is left to response.c.
 *
 * Any error is final (RFC 9051 offers no way to resynchronise): the parser
 * keeps a static message and refuses further input. Runs on whichever
 * thread owns the connection; holds no locks and no globals.
 */
#include "imap/parser.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <unistd.h>

const ImapParserLimits imap_parser_default_limits = {
	.max_line = 1024 * 1024,
	.max_depth = 64,
	.inline_max = 64 * 1024,
	.literal_max = 1024 * 1024 * 1024,
};

typedef enum {
	S_HEAD_WORD, /* tag, "*", "+", number or keyword */
	S_TEXT,	     /* status or continuation text up to CR */
	S_VALUE,     /* between values of a data response */
	S_ATOM,
	S_TILDE, /* '~' seen: literal8 or an atom */
	S_QUOTED,
	S_QUOTED_ESC,
	S_LIT_NUM,   /* inside "{123" */
	S_LIT_CLOSE, /* "{123+" seen, want '}' */
	S_LIT_CR,    /* "{123}" seen, want CR */
	S_LIT_LF,
	S_LIT_BODY,
	S_LF, /* CR seen, want LF: end of response */
} ParserState;

typedef enum {
	HEAD_TAG,   /* first word */
	HEAD_WORD1, /* after "*" or a tag */
	HEAD_NAME,  /* after "* <number>" */
} ParserHead;

typedef enum {
	BYTE_OK,
	BYTE_DONE,
	BYTE_ERROR,
} ByteResult;

struct ImapParser {
	ImapParserLimits limits;
	int spool_dirfd;   /* borrowed */
	const char *error; /* static; non-NULL: parser is dead */
	gboolean local;	   /* the error is this machine's, not the server's */

	ImapResponse *resp; /* being built; NULL between responses */
	GPtrArray *stack;   /* open lists, borrowed; [0] = args */
	GString *tok;	    /* current token or text */
	ParserState state;
	ParserHead head;
	gsize line_bytes; /* non-literal bytes of this response */
	guint bracket;	  /* '[' depth inside an atom */

	guint64 lit_size; /* literal header being read */
	gboolean lit_digits;
	ImapValue *lit; /* literal being filled, in the tree */
	guint64 lit_pos;
	guint64 inline_total; /* in-memory literal bytes so far */
};

ImapParser *imap_parser_new(const ImapParserLimits *limits, int spool_dirfd)
{
	ImapParser *p = g_new0(ImapParser, 1);

	p->limits = limits ? *limits : imap_parser_default_limits;
	p->spool_dirfd = spool_dirfd;
	p->stack = g_ptr_array_new();
	p->tok = g_string_new(NULL);
	return p;
}

void imap_parser_free(ImapParser *parser)
{
	if (!parser)
		return;
	imap_response_free(parser->resp);
	g_ptr_array_free(parser->stack, TRUE);
	g_string_free(parser->tok, TRUE);
	g_free(parser);
}

gboolean imap_parser_error_is_local(const ImapParser *parser)
{
	return parser->local;
}

const char *imap_parser_error(const ImapParser *parser)
{
	g_return_val_if_fail(parser != NULL, NULL);
	return parser->error ? parser->error : "no error";
}

static ByteResult parser_fail(ImapParser *p, const char *why)
{
	p->error = why;
	return BYTE_ERROR;
}

/* A spool file could not be made or written (errno says why): the local
 * disk's fault, said so, with what to do. */
static ByteResult parser_fail_spool(ImapParser *p)
{
	int err = errno;

	p->local = TRUE;
	if (err == ENOSPC || err == EDQUOT)
		return parser_fail(p, "no space left in the cache directory "
				      "for a message being fetched (over "
				      "32 MiB: too big to hold in memory); "
				      "free some space there");
	if (err == EROFS)
		return parser_fail(p, "the cache directory is read-only, so a "
				      "message being fetched cannot be kept");
	return parser_fail(p, "cannot write a message being fetched to the "
			      "cache directory's spool");
}

static void parser_reset(ImapParser *p)
{
	g_clear_pointer(&p->resp, imap_response_free);
	g_ptr_array_set_size(p->stack, 0);
	g_string_truncate(p->tok, 0);
	p->lit = NULL;
	p->line_bytes = 0;
	p->inline_total = 0;
	p->bracket = 0;
}

static void parser_begin(ImapParser *p)
{
	parser_reset(p);
	p->resp = imap_response_new();
	p->state = S_HEAD_WORD;
	p->head = HEAD_TAG;
}

static ImapValue *parser_top(ImapParser *p)
{
	return g_ptr_array_index(p->stack, p->stack->len - 1);
}

static void parser_add(ImapParser *p, ImapValue *v)
{
	g_ptr_array_add(parser_top(p)->items, v);
}

static gboolean parser_is_digits(const char *s, gsize len)
{
	if (len == 0)
		return FALSE;
	for (gsize i = 0; i < len; i++)
		if (!g_ascii_isdigit(s[i]))
			return FALSE;
	return TRUE;
}

/* tag = 1*<any ASTRING-CHAR except "+"> (RFC 9051 §9) */
static gboolean parser_is_tag(const char *s, gsize len)
{
	if (len == 0)
		return FALSE;
	for (gsize i = 0; i < len; i++)
		if (strchr("(){%*\"\\+", s[i]))
			return FALSE;
	return TRUE;
}

static ImapStatus parser_status_word(const char *w)
{
	static const struct {
		const char *word;
		ImapStatus status;
	} words[] = {
		{"OK", IMAP_STATUS_OK},		  {"NO", IMAP_STATUS_NO},
		{"BAD", IMAP_STATUS_BAD},	  {"BYE", IMAP_STATUS_BYE},
		{"PREAUTH", IMAP_STATUS_PREAUTH},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(words); i++)
		if (g_ascii_strcasecmp(w, words[i].word) == 0)
			return words[i].status;
	return IMAP_STATUS_NONE;
}

/* After the head word that ended with @c (SP or CR). */
static ByteResult parser_after_head(ImapParser *p, guint8 c, ParserState next)
{
	p->state = c == '\r' ? S_LF : next;
	if (c == '\r' && next == S_TEXT)
		p->resp->text = g_strdup("");
	return BYTE_OK;
}

static ByteResult parser_start_data(ImapParser *p, guint8 c)
{
	ImapResponse *r = p->resp;

	if (p->tok->len == 0)
		return parser_fail(p, "empty response keyword");
	r->name = g_ascii_strup(p->tok->str, p->tok->len);
	r->args = imap_value_new(IMAP_VALUE_LIST);
	g_ptr_array_add(p->stack, r->args);
	return parser_after_head(p, c, S_VALUE);
}

static ByteResult parser_head_word_done(ImapParser *p, guint8 c)
{
	ImapResponse *r = p->resp;
	const char *w = p->tok->str;
	gsize len = p->tok->len;
	ImapStatus st;

	switch (p->head) {
	case HEAD_TAG:
		if (len == 0)
			return parser_fail(p, "empty tag");
		if (strcmp(w, "+") == 0) {
			r->kind = IMAP_RESPONSE_CONTINUATION;
			g_string_truncate(p->tok, 0);
			return parser_after_head(p, c, S_TEXT);
		}
		if (strcmp(w, "*") == 0) {
			r->kind = IMAP_RESPONSE_UNTAGGED;
		} else {
			if (!parser_is_tag(w, len))
				return parser_fail(p, "invalid tag");
			r->kind = IMAP_RESPONSE_TAGGED;
			r->tag = g_strndup(w, len);
		}
		if (c == '\r')
			return parser_fail(p, "tag without status or data");
		p->head = HEAD_WORD1;
		g_string_truncate(p->tok, 0);
		return BYTE_OK;
	case HEAD_WORD1:
		if (len == 0)
			return parser_fail(p, "empty response keyword");
		st = parser_status_word(w);
		if (st != IMAP_STATUS_NONE) {
			r->status = st;
			g_string_truncate(p->tok, 0);
			return parser_after_head(p, c, S_TEXT);
		}
		if (r->kind == IMAP_RESPONSE_TAGGED)
			return parser_fail(p, "tagged response without status");
		if (parser_is_digits(w, len)) {
			guint64 n;

			if (len > 10 ||
			    (n = g_ascii_strtoull(w, NULL, 10)) > G_MAXUINT32)
				return parser_fail(p,
						   "response number too large");
			if (c == '\r')
				return parser_fail(p, "number without keyword");
			r->has_number = TRUE;
			r->number = (guint32)n;
			p->head = HEAD_NAME;
			g_string_truncate(p->tok, 0);
			return BYTE_OK;
		}
		return parser_start_data(p, c);
	case HEAD_NAME:
		return parser_start_data(p, c);
	}
	g_assert_not_reached();
}

/* Splits "[CODE arg] text" of a status response (RFC 9051 §7.1). */
static void parser_set_status_text(ImapResponse *r, const char *s, gsize len)
{
	const char *end = s + len;
	const char *close;

	if (r->status != IMAP_STATUS_NONE && len > 0 && s[0] == '[' &&
	    (close = memchr(s, ']', len)) != NULL) {
		const char *in = s + 1;
		gsize in_len = close - in;
		const char *sp = memchr(in, ' ', in_len);
		gsize code_len = sp ? (gsize)(sp - in) : in_len;

		if (code_len > 0)
			r->code = g_ascii_strup(in, code_len);
		if (sp) {
			char *arg = g_strndup(sp + 1, close - (sp + 1));

			g_strstrip(arg);
			if (*arg)
				r->code_arg = arg;
			else
				g_free(arg);
		}
		s = close + 1;
		while (s < end && *s == ' ')
			s++;
		len = end - s;
	}
	r->text = g_strndup(s, len);
}

static ByteResult parser_end_atom(ImapParser *p)
{
	ImapValue *v;

	if (g_ascii_strcasecmp(p->tok->str, "NIL") == 0) {
		v = imap_value_new(IMAP_VALUE_NIL);
	} else {
		v = imap_value_new(IMAP_VALUE_ATOM);
		v->str = g_strndup(p->tok->str, p->tok->len);
		v->len = p->tok->len;
	}
	parser_add(p, v);
	p->state = S_VALUE;
	return BYTE_OK;
}

static int parser_spool_open(int dirfd)
{
	int fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR &&
			errno != EINVAL && errno != ENOENT))
		return fd;
	/* Some filesystems (older overlayfs) lack O_TMPFILE: a named file,
	 * unlinked at once, gives the same unnamed fd. */
	for (int attempt = 0; attempt < 16; attempt++) {
		char name[48];

		g_snprintf(name, sizeof(name), ".imapfs-spool-%08x%08x",
			   g_random_int(), g_random_int());
		fd = openat(dirfd, name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC,
			    0600);
		if (fd >= 0) {
			unlinkat(dirfd, name, 0);
			return fd;
		}
		if (errno != EEXIST)
			return -1;
	}
	return -1;
}

/* A literal up to this size goes on in memory when the spool's disk is
 * full; a larger one fails as the disk did. */
#define SPOOL_MEMORY_MAX (32 * 1024 * 1024)

/* The spool's disk is full, or its directory was removed while in use
 * (errno), and a literal of @literal_size bytes may be held in memory
 * instead. */
static gboolean spool_to_memory(guint64 literal_size)
{
	return (errno == ENOSPC || errno == EDQUOT || errno == ENOENT) &&
	       literal_size <= SPOOL_MEMORY_MAX;
}

/* The spool cannot take the literal (see spool_to_memory()): it goes to
 * memory instead, after the @written bytes the spool file @fd already
 * holds (-1: none). The memfd, or -1 with errno set. */
static int parser_spool_memory(int fd, gsize written)
{
	int mem = memfd_create("imapfs-spool", MFD_CLOEXEC);
	off_t off = 0;

	while (mem >= 0 && (gsize)off < written) {
		ssize_t n = sendfile(mem, fd, &off, written - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? errno : EIO;

			close(mem);
			errno = err;
			return -1;
		}
	}
	return mem;
}

static gboolean parser_write_all(int fd, const guint8 *buf, gsize len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return FALSE;
		buf += n;
		len -= n;
	}
	return TRUE;
}

static void parser_end_literal(ImapParser *p)
{
	if (p->lit->type == IMAP_VALUE_STRING)
		p->lit->str[p->lit->len] = '\0';
	p->lit = NULL;
	p->state = S_VALUE;
}

/* The header "{n}" CRLF is complete: put the value in the tree. Literals
 * stay in memory up to inline_max each and max(max_line, inline_max) per
 * response, so many small literals cannot exhaust memory either. */
static ByteResult parser_start_literal(ImapParser *p)
{
	guint64 n = p->lit_size;
	guint64 budget = MAX(p->limits.max_line, p->limits.inline_max);
	ImapValue *v;

	if (n <= p->limits.inline_max && p->inline_total + n <= budget) {
		v = imap_value_new(IMAP_VALUE_STRING);
		v->str = g_malloc(n + 1);
		v->len = n;
		p->inline_total += n;
	} else {
		int fd;

		if (p->spool_dirfd < 0)
			return parser_fail(p, n > p->limits.inline_max
						      ? "literal too large "
							"for memory and no "
							"spool directory"
						      : "too much literal data "
							"in one response");
		fd = parser_spool_open(p->spool_dirfd);
		if (fd < 0 && spool_to_memory(n))
			fd = parser_spool_memory(-1, 0);
		if (fd < 0)
			return parser_fail_spool(p);
		v = imap_value_new(IMAP_VALUE_SPOOLED);
		v->fd = fd;
		v->len = n;
	}
	parser_add(p, v);
	p->lit = v;
	p->lit_pos = 0;
	if (n == 0)
		parser_end_literal(p);
	else
		p->state = S_LIT_BODY;
	return BYTE_OK;
}

static ByteResult parser_literal_chunk(ImapParser *p, const guint8 *data,
				       gsize len)
{
	ImapValue *v = p->lit;

	if (v->type == IMAP_VALUE_STRING) {
		memcpy(v->str + p->lit_pos, data, len);
	} else if (!parser_write_all(v->fd, data, len)) {
		/* Every earlier chunk was written whole: carry those over and
		 * write this one again. */
		int mem = spool_to_memory(v->len)
				  ? parser_spool_memory(v->fd, p->lit_pos)
				  : -1;

		if (mem < 0)
			return parser_fail_spool(p);
		close(v->fd);
		v->fd = mem;
		if (!parser_write_all(v->fd, data, len))
			return parser_fail_spool(p);
	}
	p->lit_pos += len;
	if (p->lit_pos == v->len)
		parser_end_literal(p);
	return BYTE_OK;
}

static ByteResult parser_finish(ImapParser *p)
{
	if (p->stack->len > 1)
		return parser_fail(p, "'(' not closed at end of response");
	return BYTE_DONE;
}

static ByteResult parser_byte(ImapParser *p, guint8 c)
{
again:
	switch (p->state) {
	case S_HEAD_WORD:
		if (c == ' ' || c == '\r')
			return parser_head_word_done(p, c);
		if (c == '\n')
			return parser_fail(p, "LF without CR");
		if (c <= 0x20 || c >= 0x7f || strchr("()\"{", c))
			return parser_fail(p, "invalid character in tag or "
					      "keyword");
		g_string_append_c(p->tok, c);
		return BYTE_OK;
	case S_TEXT:
		if (c == '\r') {
			ImapResponse *r = p->resp;

			if (r->kind == IMAP_RESPONSE_CONTINUATION)
				r->text = g_strndup(p->tok->str, p->tok->len);
			else
				parser_set_status_text(r, p->tok->str,
						       p->tok->len);
			p->state = S_LF;
			return BYTE_OK;
		}
		if (c == '\n')
			return parser_fail(p, "LF without CR");
		if (c == '\0')
			return parser_fail(p, "NUL in response text");
		g_string_append_c(p->tok, c);
		return BYTE_OK;
	case S_VALUE:
		switch (c) {
		case ' ':
			return BYTE_OK;
		case '(': {
			ImapValue *v;

			if (p->stack->len > p->limits.max_depth)
				return parser_fail(p, "lists nested too deep");
			v = imap_value_new(IMAP_VALUE_LIST);
			parser_add(p, v);
			g_ptr_array_add(p->stack, v);
			return BYTE_OK;
		}
		case ')':
			if (p->stack->len <= 1)
				return parser_fail(p, "')' without '('");
			g_ptr_array_set_size(p->stack, p->stack->len - 1);
			return BYTE_OK;
		case '"':
			g_string_truncate(p->tok, 0);
			p->state = S_QUOTED;
			return BYTE_OK;
		case '{':
			p->lit_size = 0;
			p->lit_digits = FALSE;
			p->state = S_LIT_NUM;
			return BYTE_OK;
		case '~':
			p->state = S_TILDE;
			return BYTE_OK;
		case '\r':
			p->state = S_LF;
			return BYTE_OK;
		case '\n':
			return parser_fail(p, "LF without CR");
		}
		if (c < 0x20 || c == 0x7f)
			return parser_fail(p, "control character in response");
		g_string_truncate(p->tok, 0);
		p->bracket = 0;
		p->state = S_ATOM;
		goto again;
	case S_TILDE:
		if (c == '{') {
			p->lit_size = 0;
			p->lit_digits = FALSE;
			p->state = S_LIT_NUM;
			return BYTE_OK;
		}
		g_string_assign(p->tok, "~");
		p->bracket = 0;
		p->state = S_ATOM;
		goto again;
	case S_ATOM:
		if (p->bracket == 0 &&
		    (c == ' ' || c == '(' || c == ')' || c == '\r')) {
			parser_end_atom(p);
			goto again;
		}
		if (c == '\n')
			return parser_fail(p, "LF without CR");
		if (c == '\r')
			return parser_fail(p, "'[' not closed in atom");
		if (c < 0x20 || c == 0x7f)
			return parser_fail(p, "control character in atom");
		/* Section atoms: BODY[HEADER.FIELDS (A B)]<0> is one atom. */
		if (c == '[')
			p->bracket++;
		else if (c == ']' && p->bracket > 0)
			p->bracket--;
		g_string_append_c(p->tok, c);
		return BYTE_OK;
	case S_QUOTED:
	case S_QUOTED_ESC:
		if (c == '\0')
			return parser_fail(p, "NUL in quoted string");
		if (c == '\r' || c == '\n')
			return parser_fail(p, "CR or LF in quoted string");
		if (p->state == S_QUOTED && c == '\\') {
			p->state = S_QUOTED_ESC;
			return BYTE_OK;
		}
		if (p->state == S_QUOTED && c == '"') {
			ImapValue *v = imap_value_new(IMAP_VALUE_STRING);

			v->str = g_strndup(p->tok->str, p->tok->len);
			v->len = p->tok->len;
			parser_add(p, v);
			p->state = S_VALUE;
			return BYTE_OK;
		}
		/* RFC 9051 allows only \" and \\; any other escaped
		 * character is taken as itself. */
		g_string_append_c(p->tok, c);
		p->state = S_QUOTED;
		return BYTE_OK;
	case S_LIT_NUM:
		if (g_ascii_isdigit(c)) {
			guint d = c - '0';

			if (p->lit_size > (G_MAXUINT64 - d) / 10)
				return parser_fail(p, "literal size overflows");
			p->lit_size = p->lit_size * 10 + d;
			p->lit_digits = TRUE;
			return BYTE_OK;
		}
		if (!p->lit_digits || (c != '+' && c != '}'))
			return parser_fail(p, "malformed literal header");
		if (p->lit_size > p->limits.literal_max)
			return parser_fail(p,
					   "literal larger than literal_max");
		p->state = c == '+' ? S_LIT_CLOSE : S_LIT_CR;
		return BYTE_OK;
	case S_LIT_CLOSE:
		if (c != '}')
			return parser_fail(p, "malformed literal header");
		p->state = S_LIT_CR;
		return BYTE_OK;
	case S_LIT_CR:
		if (c != '\r')
			return parser_fail(p, "garbage after literal header");
		p->state = S_LIT_LF;
		return BYTE_OK;
	case S_LIT_LF:
		if (c != '\n')
			return parser_fail(p, "CR not followed by LF");
		return parser_start_literal(p);
	case S_LF:
		if (c != '\n')
			return parser_fail(p, "CR not followed by LF");
		return parser_finish(p);
	case S_LIT_BODY:
		break;
	}
	g_assert_not_reached();
}

ImapParseStatus imap_parser_feed(ImapParser *parser, const guint8 *data,
				 gsize len, gsize *out_used,
				 ImapResponse **out_resp)
{
	ImapParser *p = parser;
	gsize i = 0;

	g_return_val_if_fail(parser != NULL, IMAP_PARSE_ERROR);
	g_return_val_if_fail(data != NULL || len == 0, IMAP_PARSE_ERROR);
	g_return_val_if_fail(out_used != NULL, IMAP_PARSE_ERROR);
	g_return_val_if_fail(out_resp != NULL, IMAP_PARSE_ERROR);

	*out_used = 0;
	*out_resp = NULL;
	if (p->error)
		return IMAP_PARSE_ERROR;

	while (i < len) {
		ByteResult res;

		if (!p->resp)
			parser_begin(p);
		if (p->state == S_LIT_BODY) {
			gsize n = MIN(len - i, p->lit->len - p->lit_pos);

			res = parser_literal_chunk(p, data + i, n);
			i += n;
		} else if (++p->line_bytes > p->limits.max_line) {
			res = parser_fail(p, "response line too long");
		} else {
			res = parser_byte(p, data[i++]);
		}
		if (res == BYTE_ERROR) {
			parser_reset(p);
			*out_used = i;
			return IMAP_PARSE_ERROR;
		}
		if (res == BYTE_DONE) {
			*out_resp = g_steal_pointer(&p->resp);
			parser_reset(p);
			*out_used = i;
			return IMAP_PARSE_RESPONSE;
		}
	}
	*out_used = i;
	return IMAP_PARSE_NEED_MORE;
}

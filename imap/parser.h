/* imap/parser.h — streaming IMAP response parser.
 *
 * Turns the bytes of one connection into ImapResponse trees. Does no I/O and
 * keeps no global state: feed it whatever arrived, split anywhere. Memory is
 * bounded by ImapParserLimits; literals above inline_max go to an unlinked
 * file in the spool directory instead of memory (into a memfd when that
 * directory's disk is full). Not thread-safe: one parser
 * per connection, used by one thread at a time.
 *
 * Grammar handled (RFC 9051 §9 / RFC 3501 §9, the response side):
 *   "+ " text CRLF                            continuation
 *   "* " / tag SP status [SP "[" code [SP arg] "]"] [SP text] CRLF
 *   "* " [number SP] name *(SP value) CRLF    data
 * where value is an atom (numbers, NIL and section atoms such as
 * BODY[HEADER.FIELDS (SUBJECT)]<0> are read as one atom), a quoted string,
 * a literal {n} or literal8 ~{n} (also {n+}), or a parenthesised list.
 * Status words and data names are matched case-insensitively.
 */
#ifndef IMAPFS_IMAP_PARSER_H
#define IMAPFS_IMAP_PARSER_H

#include <glib.h>
#include "imap/response.h"

typedef struct {
	gsize max_line;	     /* non-literal bytes in one response (1 MiB) */
	guint max_depth;     /* parenthesis nesting (64) */
	gsize inline_max;    /* literals up to this stay in memory (64 KiB) */
	guint64 literal_max; /* largest literal accepted at all (1 GiB) */
} ImapParserLimits;

extern const ImapParserLimits imap_parser_default_limits;

typedef struct ImapParser ImapParser;

typedef enum {
	IMAP_PARSE_NEED_MORE, /* all input used; no complete response yet */
	IMAP_PARSE_RESPONSE,  /* *out_resp holds one response */
	IMAP_PARSE_ERROR,     /* drop the connection; see imap_parser_error() */
} ImapParseStatus;

/* @spool_dirfd: a directory for O_TMPFILE spool files (borrowed, must stay
 * open while the parser lives), or -1: then a literal over inline_max is a
 * parse error. @limits is copied; NULL means the defaults. */
ImapParser *imap_parser_new(const ImapParserLimits *limits, int spool_dirfd);
void imap_parser_free(ImapParser *parser); /* NULL-safe */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImapParser, imap_parser_free)

/* Consumes up to @len bytes and sets *out_used. On IMAP_PARSE_RESPONSE,
 * *out_resp is (transfer full) and *out_used may be < @len: feed the rest
 * next. After IMAP_PARSE_ERROR the parser is dead: every later call returns
 * IMAP_PARSE_ERROR again. */
ImapParseStatus imap_parser_feed(ImapParser *parser, const guint8 *data,
				 gsize len, gsize *out_used,
				 ImapResponse **out_resp);

/* Why the last IMAP_PARSE_ERROR happened. (transfer none), static text. */
const char *imap_parser_error(const ImapParser *parser);
/* TRUE if that error is this machine's (the spool), not the server's. */
gboolean imap_parser_error_is_local(const ImapParser *parser);

#endif

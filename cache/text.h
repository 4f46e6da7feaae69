/* cache/text.h — header text as people read it.
 *
 * Subject, From and Message-ID arrive as raw header lines (a listing's
 * BODY.PEEK[HEADER.FIELDS (...)]): folded, with RFC 2047 encoded words or
 * 8-bit bytes in some charset. GMime decodes them; this file picks the
 * fields out and turns each into one clean line of valid UTF-8. Any thread
 * after cache_text_init().
 */
#ifndef IMAPFS_CACHE_TEXT_H
#define IMAPFS_CACHE_TEXT_H

#include <glib.h>

/* Initialises GMime once. Main thread, before other threads run. */
void cache_text_init(void);

/* Longest text kept of a field: an xattr stays readable, an index small. */
#define CACHE_TEXT_MAX 4096

/* @text as one line of valid UTF-8: runs of blanks, CR and LF made one
 * space, other control characters U+FFFD, the ends trimmed, at most
 * CACHE_TEXT_MAX bytes. NULL for NULL. (transfer full) */
char *cache_text_one_line(const char *text);

/* RFC 2047 decoded, then as cache_text_one_line(). NULL for NULL input.
 * (transfer full) */
char *cache_text_decode_header(const char *raw);

/* The value of the first field called @name (any case) among the header
 * lines @block of @len bytes that has any text, folds and all; else of the
 * first one, blank; or NULL. (transfer full) */
char *cache_text_header_field(const char *block, gsize len, const char *name);

/* The first mailbox of an address field such as From, as "Name <addr>" or
 * "addr", decoded, on one line (a punycode domain in an ASCII field stays
 * punycode); where it holds no address, its decoded text. NULL for NULL or
 * empty. (transfer full) */
char *cache_text_decode_address(const char *raw);

#endif

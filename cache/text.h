/* cache/text.h — header text as people read it.
 *
 * Subjects and addresses arrive in ENVELOPE as raw header text: RFC 2047
 * encoded words, or 8-bit bytes in some charset. GMime decodes them; this
 * file turns the result into one clean line of valid UTF-8. Any thread
 * after cache_text_init().
 */
#ifndef IMAPFS_CACHE_TEXT_H
#define IMAPFS_CACHE_TEXT_H

#include <glib.h>

/* Initialises GMime once. Main thread, before other threads run. */
void cache_text_init(void);

/* Decoded, valid UTF-8, with CR, LF and tabs folded to single spaces and
 * the ends trimmed. NULL for NULL input. (transfer full) */
char *cache_text_decode_header(const char *raw);

#endif

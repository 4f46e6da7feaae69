/* imap/utf7.h — modified UTF-7 for mailbox names (RFC 3501 §5.1.3).
 * Pure functions, any thread. */
#ifndef IMAPFS_IMAP_UTF7_H
#define IMAPFS_IMAP_UTF7_H

#include <glib.h>

/* Modified UTF-7 -> UTF-8. NULL if @in is not valid modified UTF-7
 * (bad base64, unterminated shift, an encoded printable ASCII char,
 * a lone surrogate, "&" not followed by "-" or base64). (transfer full) */
char *imap_utf7_decode(const char *in);

/* UTF-8 -> modified UTF-7. NULL if @in is not valid UTF-8. (transfer full) */
char *imap_utf7_encode(const char *in);

#endif

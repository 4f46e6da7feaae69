/* imap/caps.h — server capabilities as bits. Pure functions. */
#ifndef IMAPFS_IMAP_CAPS_H
#define IMAPFS_IMAP_CAPS_H

#include <glib.h>
#include "imap/response.h"

typedef enum {
	IMAP_CAP_IMAP4REV1 = 1 << 0,
	IMAP_CAP_IMAP4REV2 = 1 << 1,
	IMAP_CAP_STARTTLS = 1 << 2,
	IMAP_CAP_LOGINDISABLED = 1 << 3,
	IMAP_CAP_AUTH_PLAIN = 1 << 4,
	IMAP_CAP_SASL_IR = 1 << 5,
	IMAP_CAP_LITERALPLUS = 1 << 6,
	IMAP_CAP_LITERALMINUS = 1 << 7,
	IMAP_CAP_UIDPLUS = 1 << 8,
	IMAP_CAP_MOVE = 1 << 9,
	IMAP_CAP_CONDSTORE = 1 << 10,
	IMAP_CAP_QRESYNC = 1 << 11,
	IMAP_CAP_ENABLE = 1 << 12,
	IMAP_CAP_IDLE = 1 << 13,
	IMAP_CAP_SPECIAL_USE = 1 << 14,
	IMAP_CAP_LIST_EXTENDED = 1 << 15,
	IMAP_CAP_LIST_STATUS = 1 << 16,
	IMAP_CAP_UTF8_ACCEPT = 1 << 17,
	IMAP_CAP_ESEARCH = 1 << 18,
	IMAP_CAP_BINARY = 1 << 19,
	IMAP_CAP_NAMESPACE = 1 << 20,
	IMAP_CAP_ID = 1 << 21,
	IMAP_CAP_NOTIFY = 1 << 22,
	IMAP_CAP_QUOTA = 1 << 23, /* RFC 9208 (2087) */
	IMAP_CAP_AUTH_OAUTHBEARER = 1 << 24, /* RFC 7628 */
	IMAP_CAP_AUTH_XOAUTH2 = 1 << 25,     /* Google, Microsoft */
	IMAP_CAP_COMPRESS_DEFLATE = 1 << 26, /* RFC 4978 */
} ImapCaps;

/* Bits for the capability words in @words (the args of "* CAPABILITY", or
 * a CAPABILITY response code's argument split on spaces). Unknown words
 * are ignored; matching ignores ASCII case. */
guint imap_caps_from_words(const char *const *words);
/* From a "* CAPABILITY ..." data response or a status response carrying
 * a [CAPABILITY ...] code. FALSE if @resp carries no capability list. */
gboolean imap_caps_from_response(const ImapResponse *resp, guint *out_caps);

#endif

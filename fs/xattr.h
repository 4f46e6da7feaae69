/* fs/xattr.h — the user.imap.* extended attributes.
 *
 * Messages: user.imap.flags (listed, so rsync -X and getfattr -d carry it)
 * and, unlisted and read-only, user.imap.uid, .uidvalidity, .internaldate,
 * .modseq, .subject, .from, .message-id. Directories: unlisted
 * user.imap.name, .uidvalidity, .uidnext, .messages, .highestmodseq,
 * .delimiter, .special-use. Values come from the index: no round trip.
 */
#ifndef IMAPFS_FS_XATTR_H
#define IMAPFS_FS_XATTR_H

#include <glib.h>
#include "cache/account.h"

#define FS_XATTR_PREFIX "user.imap."

/* The value of attribute @name of a message, or NULL if it has none
 * (ENODATA). @mailbox gives uidvalidity. (transfer full) */
char *fs_xattr_message(const CacheMailbox *mailbox, const CacheMessage *msg,
		       const char *name);
/* The same for a directory. */
char *fs_xattr_mailbox(const CacheMailbox *mailbox, const char *name);

/* The listed names of a message, NUL-separated, and their total length. */
const char *fs_xattr_message_list(gsize *out_len);

#endif

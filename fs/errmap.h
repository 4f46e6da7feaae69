/* fs/errmap.h — the one table from GError to errno.
 *
 * IMAPFS_IMAP_ERROR, IMAPFS_CACHE_ERROR and G_IO_ERROR codes map to the
 * errno promised in README.md: NONEXISTENT/TRYCREATE/NOT_FOUND -> ENOENT,
 * ALREADYEXISTS/EXISTS -> EEXIST, OVERQUOTA -> EDQUOT, NOPERM -> EACCES,
 * TOOBIG -> EFBIG, READONLY -> EROFS, NOT_PERMITTED -> EPERM, INVALID ->
 * EINVAL, NOT_EMPTY -> ENOTEMPTY, UNSUPPORTED -> ENOTSUP, cancelled ->
 * EINTR, lost connection/timeout/protocol/anything else -> EIO. */
#ifndef IMAPFS_FS_ERRMAP_H
#define IMAPFS_FS_ERRMAP_H

#include <glib.h>

/* Positive errno for @error (NULL gives EIO). */
int fs_errno_from_error(const GError *error);

/* As above, and logs @error's message once at warning level, prefixed by
 * @what (e.g. "read /INBOX/0000000012-Hi.eml"). ENOENT is logged at debug
 * level only: lookups of absent names are normal. */
int fs_errno_log(const GError *error, const char *what);

#endif

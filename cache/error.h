/* cache/error.h — the IMAPFS_CACHE_ERROR domain: failures cache/ itself
 * decides on (as opposed to the server's, which stay IMAPFS_IMAP_ERROR). */
#ifndef IMAPFS_CACHE_ERROR_H
#define IMAPFS_CACHE_ERROR_H

#include <glib.h>

#define IMAPFS_CACHE_ERROR (imapfs_cache_error_quark())
GQuark imapfs_cache_error_quark(void);

typedef enum {
	CACHE_ERROR_NOT_FOUND,	   /* no such mailbox or message (any more) */
	CACHE_ERROR_INVALID,	   /* bad input: a name, a flag list */
	CACHE_ERROR_NOT_PERMITTED, /* an operation the design forbids */
	CACHE_ERROR_READONLY,	   /* the mount or mailbox is read-only */
	CACHE_ERROR_EXISTS,	   /* the target already exists */
	CACHE_ERROR_NOT_EMPTY,	   /* a mailbox that still holds something */
	CACHE_ERROR_UNSUPPORTED,   /* the server cannot do it */
	CACHE_ERROR_IO,		   /* the disk cache failed */
	CACHE_ERROR_TIMEOUT,	   /* the server did not answer in time */
} CacheErrorCode;

/* g_io_error_from_errno(), with EDQUOT a full disk (G_IO_ERROR_NO_SPACE)
 * as ENOSPC is; GLib has no code of its own for it. */
gint cache_io_error_from_errno(int err);

#endif

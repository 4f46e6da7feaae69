/* fs/errmap.c — the one table from GError to errno.
 *
 * Every FUSE reply that carries an error goes through here, so the errno a
 * user sees for a server answer is decided in one place (and tested in
 * tests/unit/test-fs-errmap.c). A code this table does not know, from any
 * domain, is EIO: the honest answer for "something failed".
 *
 * Logging happens here too, once per failed request, so that the user
 * sees the server's own words. Absent names (ENOENT) and interrupted
 * requests (EINTR) are routine and stay at debug level. Any thread.
 */
#include "fs/errmap.h"

#include <errno.h>
#include <gio/gio.h>
#include <string.h>

#include "cache/error.h"
#include "imap/error.h"

static int fs_errmap_imap(int code)
{
	switch ((ImapErrorCode)code) {
	case IMAP_ERROR_NONEXISTENT:
	case IMAP_ERROR_UIDVALIDITY:
	case IMAP_ERROR_EXPUNGED:
		return ENOENT;
	case IMAP_ERROR_ALREADYEXISTS:
		return EEXIST;
	case IMAP_ERROR_OVERQUOTA:
		return EDQUOT;
	case IMAP_ERROR_NOPERM:
		return EACCES;
	case IMAP_ERROR_TOOBIG:
		return EFBIG;
	case IMAP_ERROR_READONLY:
		return EROFS;
	case IMAP_ERROR_UNSUPPORTED:
		return ENOTSUP;
	case IMAP_ERROR_INVALID:
		return EINVAL;
	case IMAP_ERROR_FAILED:
	case IMAP_ERROR_BAD:
	case IMAP_ERROR_AUTH:
	case IMAP_ERROR_UNAVAILABLE:
	case IMAP_ERROR_TLS:
	case IMAP_ERROR_CONNECT:
	case IMAP_ERROR_CONNECTION_LOST:
	case IMAP_ERROR_TIMEOUT:
	case IMAP_ERROR_PROTOCOL:
	case IMAP_ERROR_SHUTDOWN:
		break;
	}
	return EIO;
}

static int fs_errmap_cache(int code)
{
	switch ((CacheErrorCode)code) {
	case CACHE_ERROR_NOT_FOUND:
		return ENOENT;
	case CACHE_ERROR_INVALID:
		return EINVAL;
	case CACHE_ERROR_NOT_PERMITTED:
		return EPERM;
	case CACHE_ERROR_READONLY:
		return EROFS;
	case CACHE_ERROR_EXISTS:
		return EEXIST;
	case CACHE_ERROR_NOT_EMPTY:
		return ENOTEMPTY;
	case CACHE_ERROR_UNSUPPORTED:
		return ENOTSUP;
	case CACHE_ERROR_IO:
	case CACHE_ERROR_TIMEOUT:
		break;
	}
	return EIO;
}

static int fs_errmap_io(int code)
{
	switch (code) {
	case G_IO_ERROR_CANCELLED:
		return EINTR;
	case G_IO_ERROR_NOT_FOUND:
		return ENOENT;
	case G_IO_ERROR_EXISTS:
		return EEXIST;
	case G_IO_ERROR_IS_DIRECTORY:
		return EISDIR;
	case G_IO_ERROR_NOT_DIRECTORY:
		return ENOTDIR;
	case G_IO_ERROR_NOT_EMPTY:
		return ENOTEMPTY;
	case G_IO_ERROR_FILENAME_TOO_LONG:
		return ENAMETOOLONG;
	case G_IO_ERROR_NO_SPACE:
		return ENOSPC;
	case G_IO_ERROR_INVALID_ARGUMENT:
		return EINVAL;
	case G_IO_ERROR_PERMISSION_DENIED:
		return EACCES;
	case G_IO_ERROR_NOT_SUPPORTED:
		return ENOTSUP;
	case G_IO_ERROR_READ_ONLY:
		return EROFS;
	case G_IO_ERROR_TOO_MANY_OPEN_FILES:
		return EMFILE;
	default:
		return EIO;
	}
}

/* G_FILE_ERROR codes mirror errno values one to one; the few that mean
 * nothing to a FUSE caller (EFAULT, EBADF, EPIPE, ...) become EIO. */
static int fs_errmap_file(int code)
{
	switch (code) {
	case G_FILE_ERROR_EXIST:
		return EEXIST;
	case G_FILE_ERROR_ISDIR:
		return EISDIR;
	case G_FILE_ERROR_ACCES:
		return EACCES;
	case G_FILE_ERROR_NAMETOOLONG:
		return ENAMETOOLONG;
	case G_FILE_ERROR_NOENT:
		return ENOENT;
	case G_FILE_ERROR_NOTDIR:
		return ENOTDIR;
	case G_FILE_ERROR_ROFS:
		return EROFS;
	case G_FILE_ERROR_LOOP:
		return ELOOP;
	case G_FILE_ERROR_NOSPC:
		return ENOSPC;
	case G_FILE_ERROR_NOMEM:
		return ENOMEM;
	case G_FILE_ERROR_MFILE:
		return EMFILE;
	case G_FILE_ERROR_NFILE:
		return ENFILE;
	case G_FILE_ERROR_INVAL:
		return EINVAL;
	case G_FILE_ERROR_AGAIN:
		return EAGAIN;
	case G_FILE_ERROR_INTR:
		return EINTR;
	case G_FILE_ERROR_PERM:
		return EPERM;
	case G_FILE_ERROR_NOSYS:
		return ENOSYS;
	default:
		return EIO;
	}
}

int fs_errno_from_error(const GError *error)
{
	if (!error)
		return EIO;
	if (error->domain == IMAPFS_IMAP_ERROR)
		return fs_errmap_imap(error->code);
	if (error->domain == IMAPFS_CACHE_ERROR)
		return fs_errmap_cache(error->code);
	if (error->domain == G_IO_ERROR)
		return fs_errmap_io(error->code);
	if (error->domain == G_FILE_ERROR)
		return fs_errmap_file(error->code);
	return EIO;
}

/* Says @line, unless it is the line said last, less than 2 s ago (a
 * program retrying a read that cannot succeed, the kernel's readahead):
 * those are counted, and the count said with the next line said. */
static void warn_line(const char *line)
{
	static GMutex lock;
	static char *last;
	static gint64 last_at;
	static guint repeats;
	gint64 now = g_get_monotonic_time();
	guint said_repeats = 0;

	g_mutex_lock(&lock);
	if (last && strcmp(last, line) == 0 &&
	    now - last_at < 2 * G_TIME_SPAN_SECOND) {
		repeats++;
		g_mutex_unlock(&lock);
		return;
	}
	said_repeats = repeats;
	repeats = 0;
	g_free(last);
	last = g_strdup(line);
	last_at = now;
	g_mutex_unlock(&lock);
	if (said_repeats)
		g_warning("(the line before this came %u more times)",
			  said_repeats);
	g_warning("%s", line);
}

int fs_errno_log(const GError *error, const char *what)
{
	int err = fs_errno_from_error(error);
	const char *message =
		error ? error->message : "failed without an error";
	g_autofree char *line = NULL;

	if (!what)
		what = "request";
	if (err == ENOENT || err == EINTR) {
		g_debug("%s: %s", what, message);
		return err;
	}
	line = g_strdup_printf("%s: %s", what, message);
	warn_line(line);
	return err;
}

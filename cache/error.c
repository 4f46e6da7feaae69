/* cache/error.c — the IMAPFS_CACHE_ERROR quark; errno as a G_IO_ERROR. */
#include "cache/error.h"

#include <errno.h>
#include <gio/gio.h>

/* clang-format off */
G_DEFINE_QUARK(imapfs-cache-error-quark, imapfs_cache_error)
/* clang-format on */

gint cache_io_error_from_errno(int err)
{
	return err == EDQUOT ? G_IO_ERROR_NO_SPACE : g_io_error_from_errno(err);
}

/* cache/error.c — the IMAPFS_CACHE_ERROR quark. */
#include "cache/error.h"

/* clang-format off */
G_DEFINE_QUARK(imapfs-cache-error-quark, imapfs_cache_error)
/* clang-format on */

/* fs/passthrough.h — reads of cached messages served by the kernel from
 * the cache file itself (FUSE passthrough, Linux 6.9 and later), with
 * libfuse 3.14, which does not know of it: the session's replies go
 * through fs_passthrough's writer, which asks for it in the reply to INIT
 * and names the cache file in the reply to an OPEN. */
#ifndef IMAPFS_FS_PASSTHROUGH_H
#define IMAPFS_FS_PASSTHROUGH_H

#include <fuse_lowlevel.h>
#include <glib.h>

#include "fs/mount.h"

/* Takes over @se's reads and writes of its device (after
 * fuse_session_mount; the session's userdata is the FsMount whose
 * passthrough this becomes), for cache files under @cache_dir; NULL
 * where passthrough cannot be had. */
FsPassthrough *fs_passthrough_attach(struct fuse_session *se,
				     const char *cache_dir);
/* The account whose cache files are read; before the session loop. */
void fs_passthrough_bind(FsPassthrough *pt, CacheAccount *acct);
/* After fuse_session_destroy(). */
void fs_passthrough_free(FsPassthrough *pt);

/* @file, message inode @ino, is being opened by @req. Returns TRUE if
 * the reply to this OPEN, sent next from this thread with
 * fuse_reply_open(), will have the kernel read the message's cache file
 * itself: if the message is whole in the cache (one fetched whole is
 * fetched now, unless @req is interrupted) and the inode has not been read through imapfs in this
 * mount (the kernel allows no mix of the two while both kinds are open,
 * and has its pages of one read that way). The file stays registered
 * with the kernel after the last close, within bounds, so that opening
 * it again costs about what finding its pages in the kernel's cache
 * does. Each call is matched by fs_passthrough_close(), with what it
 * returned, at RELEASE or when the reply could not be sent. */
gboolean fs_passthrough_open(FsPassthrough *pt, fuse_req_t req,
			     fuse_ino_t ino, CacheFile *file);
void fs_passthrough_close(FsPassthrough *pt, fuse_ino_t ino,
			  gboolean passthrough);

#endif

/* cache/index-file.h — saving the index to disk and loading it back.
 *
 * The index persists across mounts, so that a remount of a known account
 * lists its mailboxes without fetching every message's metadata again.
 * The file is a versioned GVariant with a checksum; it is written
 * crash-safe (temp file, fsync, rename) and read back either whole or not
 * at all. No state, no threads of its own: the caller serialises under the
 * account lock and may write the bytes after dropping it.
 */
#ifndef IMAPFS_CACHE_INDEX_FILE_H
#define IMAPFS_CACHE_INDEX_FILE_H

#include <gio/gio.h>
#include <glib.h>
#include "cache/index.h"

/* 3: version 2's payload. Subjects and senders are decoded better since
 * (encoded words split Thunderbird's way, charset labels): a version 2
 * file is not read, and the mailboxes are listed afresh. */
#define CACHE_INDEX_FILE_VERSION 3

/* Serialises every mailbox that is not gone, except parents the server
 * never listed (wire_name NULL: loading makes them up again), with its
 * fields and, when synced, its messages. Call with the account lock held;
 * @index is only read. (transfer full) */
GBytes *cache_index_serialize(CacheIndex *index);

/* Writes @data to @path crash-safe: a temp file in the same directory,
 * fsync, rename over @path, fsync of the directory; mode 0600. After a
 * crash @path holds the old or the new content, never a mix. FALSE with a
 * G_IO_ERROR on failure, leaving no temp file behind. Any thread. */
gboolean cache_index_write_file(const char *path, GBytes *data, GError **error);

/* Reads @path and rebuilds an index from it. Mailboxes are re-added in the
 * saved order through cache_index_list_begin/list_add/list_end (so ids and
 * parents are made the normal way; ids may differ from the saved index's)
 * and their fields restored; messages with cache_index_put_message. A
 * mailbox saved as synced is synced again with synced_at = 0, i.e. stale.
 *
 * list_end marks the list as listed just now: a caller that wants the
 * first listing to refresh from the server must treat the list as stale
 * itself.
 *
 * Errors (G_IO_ERROR): NOT_FOUND when @path does not exist, NOT_SUPPORTED
 * for a file of another version, INVALID_DATA for one that is truncated or
 * corrupt, others from reading. Nothing is half loaded: NULL, or a whole
 * index. Any thread. (transfer full) */
CacheIndex *cache_index_read_file(const char *path, GError **error);

#endif

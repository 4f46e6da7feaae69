/* cache/index-file.h — saving the index to disk and loading it back.
 *
 * The index persists across mounts, so that a remount of a known account
 * lists its mailboxes without fetching every message's metadata again.
 * The file is versioned and checksummed binary; it is written crash-safe
 * (temp file, fsync, rename) and read back either whole or not at all. No
 * state, no threads of its own: the caller writes the temp file under the
 * account lock and commits it after dropping it.
 */
#ifndef IMAPFS_CACHE_INDEX_FILE_H
#define IMAPFS_CACHE_INDEX_FILE_H

#include <gio/gio.h>
#include <glib.h>
#include "cache/index.h"

#define CACHE_INDEX_FILE_VERSION 2

/* Serialises every mailbox that is not gone, except parents the server
 * never listed (wire_name NULL: loading makes them up again), with its
 * fields and, when synced, its messages. Call with the account lock held;
 * @index is only read. (transfer full) */
GBytes *cache_index_serialize(CacheIndex *index);

/* Saving, in two steps so that the lock is not held while the disk
 * syncs. First the same bytes as cache_index_serialize() into a new temp
 * file beside @path (mode 0600), written a chunk at a time: call with the
 * account lock held. Returns the temp file's name (transfer full), or
 * NULL with a G_IO_ERROR, leaving no file behind. */
char *cache_index_write_temp(CacheIndex *index, const char *path,
			     GError **error);
/* Then, any thread: fsync of @tmp, rename over @path, fsync of the
 * directory. After a crash @path holds the old or the new content, never
 * a mix. FALSE with a G_IO_ERROR, leaving no temp file behind. */
gboolean cache_index_commit(const char *tmp, const char *path, GError **error);

/* Writes @data to @path the same crash-safe way. Any thread. */
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

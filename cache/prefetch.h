/* cache/prefetch.h — whole-message fetches, one or many per command, and
 * the sequential-scan detector that starts them ahead of the reader.
 *
 * grep -r, rsync and find -exec read a mailbox's files in name order, which
 * is UID order. Fetching one message per round trip would make them as slow
 * as the server is far; once the third message in a row is read in order,
 * the messages after it are fetched in pipelined batches of many UIDs per
 * command, within a byte budget, and the reader finds them on disk. A read
 * that needs a message that is already on its way waits for that message
 * only, not for its whole batch. Called from FUSE threads; never blocks
 * except in cache_prefetch_whole().
 */
#ifndef IMAPFS_CACHE_PREFETCH_H
#define IMAPFS_CACHE_PREFETCH_H

#include "cache/account-private.h"

/* Fetches message @ref of @mailbox (wire name) whole, or joins the fetch
 * already under way (hurrying it if it was fetched ahead), and waits until
 * it is in the store. With @note_read, for a read from offset 0, the
 * detector is told of the read once the fetch is asked for, so that what
 * it fetches ahead goes after it. */
gboolean cache_prefetch_whole(CacheAccount *acct, CacheMsgRef ref,
			      const char *mailbox, guint32 uidvalidity,
			      gboolean note_read, GCancellable *cancel,
			      GError **error);

/* Tells the detector that a read of @ref started at offset 0. */
void cache_prefetch_note_read(CacheAccount *acct, CacheMsgRef ref);

/* Starts fetching the first messages of mailbox @mailbox_id, which is
 * synced, as a read of its first message would, unless it was read in the
 * last minute.
 * FALSE if it has no messages. Any thread, the imap-io thread included. */
gboolean cache_prefetch_begin(CacheAccount *acct, guint32 mailbox_id);

/* Whether a message of @mailbox_id was read (or fetched ahead from its
 * start) in the last minute. Under the account lock. */
gboolean cache_prefetch_seen_locked(CacheAccount *acct, guint32 mailbox_id);

/* The wait of a whole fetch of @ref under way, or NULL, for a caller about
 * to wait for it: a batch fetched ahead that has it is hurried. (transfer
 * full) */
CacheWait *cache_prefetch_pending(CacheAccount *acct, CacheMsgRef ref);

#endif

/* cache/sync.h — keeping the index fresh from the server.
 *
 * Mailboxes come from LIST; a mailbox's message table from one pipelined
 * metadata FETCH the first time and, after that, a flags scan plus the
 * metadata of new UIDs. Results are applied on the imap-io thread, under the
 * account lock, in one place. Concurrent requests for the same refresh
 * share one command. Called from FUSE threads; blocks in cache/wait.c.
 */
#ifndef IMAPFS_CACHE_SYNC_H
#define IMAPFS_CACHE_SYNC_H

#include "cache/account-private.h"

/* Lists the mailboxes (LIST "" "*") and updates the index. Waits for the
 * server @wait_s seconds at most (0: the account's timeout); given up, the
 * job goes on and its answer still reaches the index. */
gboolean cache_sync_mailboxes(CacheAccount *acct, guint wait_s, GError **error);

/* Refreshes the message table of mailbox @id; @wait_s likewise. */
gboolean cache_sync_messages(CacheAccount *acct, guint32 id, guint wait_s,
			     GError **error);

/* Runs once a refresh of mailbox @id succeeded. */
typedef void (*CacheSyncedFunc)(CacheAccount *acct, guint32 id,
				gpointer user_data);

/* Starts one pass of that refresh without waiting for it, or joins the
 * one under way; @synced (nullable) runs once it succeeded, on the thread
 * that completes it (or at once if it already has). */
void cache_sync_messages_start(CacheAccount *acct, guint32 id,
			       CacheSyncedFunc synced, gpointer user_data);

/* The IDLE watcher's hook: mailbox @mailbox (wire name) changed on the
 * server, so its table is no longer confirmed and the kernel is told to
 * drop what it holds of the directory. With IMAP_IDLE_MAILBOXES or
 * IMAP_IDLE_ANY (@mailbox NULL) the mailbox list is no longer confirmed
 * either, and with ANY no table is. With IMAP_IDLE_BEGUN, what was
 * listed before may be stale (INBOX's, unless @info shows it unchanged).
 * Watcher thread, or the imap-io thread (a fetch found listed messages
 * gone); never blocks. */
void cache_sync_on_change(const char *mailbox, ImapIdleChange change,
			  const ImapMailboxInfo *info, gpointer user_data);

/* The pool's SELECT hook: records UIDVALIDITY/UIDNEXT/HIGHESTMODSEQ and
 * drops a mailbox's table when UIDVALIDITY changed. imap-io thread. */
void cache_sync_on_select(const char *mailbox, const ImapMailboxInfo *info,
			  gpointer user_data);

#endif

/* cache/lookahead.h — the next mailbox of a tree walk, started early.
 *
 * grep -r, rsync and find go through the tree one mailbox at a time, and
 * at each one the walker waits twice: a round trip to list it, then one
 * for its first message, before prefetch takes over. Once a scan has
 * brought in a mailbox's last message (its connection is then free), this
 * lists the mailbox a walk visits next and fetches its first messages, so
 * both are there when the walker is.
 */
#ifndef IMAPFS_CACHE_LOOKAHEAD_H
#define IMAPFS_CACHE_LOOKAHEAD_H

#include "cache/account-private.h"

/* Starts on the mailboxes that follow @mailbox_id in a walk. Never
 * blocks; any thread, the imap-io thread included. */
void cache_lookahead_after(CacheAccount *acct, guint32 mailbox_id);

/* Mailbox @mailbox_id is being listed (readdir). If the mailbox listed
 * before it comes right before it in a walk, the walk only lists (find,
 * du, or rsync building its file list ahead): the next few mailboxes in
 * that order are listed now too, without waiting. Never blocks. */
void cache_lookahead_listing(CacheAccount *acct, guint32 mailbox_id);

#endif

/* imap/idle.h — hearing of changes as they happen (IDLE, NOTIFY).
 *
 * An ImapIdle keeps a connection of its own (outside the pool: an IDLE
 * holds its connection for as long as it lasts) with one mailbox EXAMINEd
 * and an IDLE command running (RFC 2177), and reports each change the
 * server announces: new messages, expunges, flag changes. Where the server
 * offers NOTIFY (RFC 5465), it also asks to hear of every other mailbox of
 * the account on the same connection: their changes, and mailboxes made,
 * deleted or renamed. It renews the IDLE before servers end it (RFC 2177:
 * at least every 29 minutes), reconnects after a loss with a growing
 * pause, and gives up with a log line on a server without IDLE. Runs on a
 * thread of its own.
 */
#ifndef IMAPFS_IMAP_IDLE_H
#define IMAPFS_IMAP_IDLE_H

#include <glib.h>

#include "imap/config.h"
#include "imap/response.h"

typedef struct ImapIdle ImapIdle;

/* What changed. */
typedef enum {
	IMAP_IDLE_MESSAGES,  /* in @mailbox, messages came or went */
	IMAP_IDLE_FLAGS,     /* in @mailbox, only flags changed */
	IMAP_IDLE_MAILBOXES, /* mailboxes were made, deleted or renamed;
			      * @mailbox is NULL */
	IMAP_IDLE_ANY,	     /* anything, anywhere (changes may have been
			      * missed while the connection was down, with
			      * NOTIFY); @mailbox is NULL */
	IMAP_IDLE_BEGUN,     /* the watch has just begun: what changed
			      * before went unseen, in the mailbox watched
			      * (@info says how it is now) and, with NOTIFY
			      * (@mailbox NULL), anywhere */
} ImapIdleChange;

/* Runs on the watcher's thread; @mailbox is a wire name; @info is NULL but
 * with IMAP_IDLE_BEGUN. When the watch begins it runs with
 * IMAP_IDLE_BEGUN, and after each reconnection with IMAP_IDLE_MESSAGES for
 * the mailbox watched (IMAP_IDLE_ANY with NOTIFY), since changes
 * meanwhile went unseen. */
typedef void (*ImapIdleFunc)(const char *mailbox, ImapIdleChange change,
			     const ImapMailboxInfo *info, gpointer user_data);

/* Starts watching @mailbox (wire name) on a connection made from @cfg.
 * @conn_no numbers its trace lines (IMAP_IDLE_CONN_NO: "[conn 0]"). */
#define IMAP_IDLE_CONN_NO 0
ImapIdle *imap_idle_new(const ImapConfig *cfg, guint conn_no,
			const char *mailbox, ImapIdleFunc changed,
			gpointer user_data);

/* Ends the IDLE (DONE, LOGOUT) and joins the thread; after it returns,
 * @changed is not called again. NULL-safe. */
/* The server answers other connections again: a watcher pausing after
 * failed attempts (up to IDLE_PAUSE_MAX) tries again now. Any thread;
 * cheap when it is connected. */
void imap_idle_nudge(ImapIdle *idle);
void imap_idle_free(ImapIdle *idle);

#endif

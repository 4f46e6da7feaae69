/* imap/pool.h — the connection pool: the public, asynchronous API of imap/.
 *
 * One pool per mount: up to max_conns logged-in connections, opened lazily
 * by connector threads and then owned by the pool's imap-io thread, which
 * runs every socket, parser and queue. imap_pool_submit() may be called
 * from any thread and never blocks; callbacks run on the imap-io thread and
 * must not block.
 *
 * Routing: a command for a mailbox goes to a connection that has it
 * selected, else to an idle one (which SELECTs it first, after its pipeline
 * drains), else it waits at pool level. Commands are pipelined on a
 * connection. A server shows a session the messages that came into its
 * selected mailbox by other sessions only at the end of a command, so a
 * command goes behind a NOOP (pipelined) where messages may have come
 * since the connection's view was last brought up to date. After a drop, the
 * pool reconnects (with backoff) and resends the commands flagged
 * IMAP_COMMAND_RETRIABLE; the others complete with IMAP_ERROR_CONNECTION_LOST,
 * since their outcome must be worked out by looking, never by resending.
 * Commands flagged IMAP_COMMAND_BACKGROUND (prefetch) go after the others
 * and on other connections: nothing the user waits for queues behind
 * them (see pool.c).
 */
#ifndef IMAPFS_IMAP_POOL_H
#define IMAPFS_IMAP_POOL_H

#include <glib.h>
#include "imap/command.h"
#include "imap/config.h"
#include "imap/connect.h"
#include "imap/response.h"

typedef struct ImapPool ImapPool;

typedef struct {
	ImapStatus status;   /* OK, NO or BAD */
	char *code;	     /* response code of the tagged reply; nullable */
	char *code_arg;	     /* nullable */
	char *text;	     /* never NULL */
	GPtrArray *untagged; /* ImapResponse *: untagged responses that
			      * arrived while this command was the oldest
			      * in flight and were not given to a data
			      * func; never NULL */
	guint32 uidvalidity; /* of the mailbox the command ran in, or 0 */
} ImapReply;

void imap_reply_free(ImapReply *reply); /* NULL-safe */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImapReply, imap_reply_free)

/* Runs exactly once per submitted command, on the imap-io thread, also on
 * failure and shutdown. @reply (transfer full, nullable): the server's
 * answer, NULL if none came. @error (transfer full, nullable): set when the
 * command did not succeed; a NO or BAD gives both a reply and an error
 * (IMAPFS_IMAP_ERROR, code from the response code, message with the
 * server's words and the command's name). */
typedef void (*ImapDoneFunc)(ImapReply *reply, GError *error,
			     gpointer user_data);

/* Runs on the imap-io thread for each untagged response that arrives while
 * the command is the oldest in flight on its connection (FETCH data, for
 * example), instead of collecting it in the reply. @resp is borrowed;
 * @uidvalidity is that of the selected mailbox (0 if none). May be called
 * again for the same command after a retry. */
typedef void (*ImapDataFunc)(const ImapResponse *resp, guint32 uidvalidity,
			     gpointer user_data);

/* Runs on the imap-io thread after every successful SELECT, so the cache can
 * check UIDVALIDITY. @mailbox is the wire name as submitted. */
typedef void (*ImapSelectFunc)(const char *mailbox, const ImapMailboxInfo *info,
			       gpointer user_data);

/* Creates the pool and starts its imap-io thread. @first (transfer full,
 * nullable) is an already logged-in stream to use as connection 1, such as
 * the probe login. @cfg is copied. */
ImapPool *imap_pool_new(const ImapConfig *cfg, ImapStream *first);

/* Stops the thread, closes connections; commands not yet done complete with
 * IMAP_ERROR_SHUTDOWN before this returns. NULL-safe. Not from the imap-io
 * thread. */
void imap_pool_free(ImapPool *pool);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImapPool, imap_pool_free)

/* Set once, before the first submit. */
void imap_pool_set_select_func(ImapPool *pool, ImapSelectFunc func,
			       gpointer user_data);
/* Runs on the imap-io thread when a connection logs in while none was
 * (after a drop, or attempts that failed): the server can be reached
 * again. Set once, likewise. */
void imap_pool_set_reconnected_func(ImapPool *pool, void (*func)(gpointer),
				    gpointer user_data);

/* Capabilities of the logged-in server (ImapCaps bits); 0 until a
 * connection has logged in. Any thread. */
guint imap_pool_caps(ImapPool *pool);

/* The configuration connections are made from (borrowed; lives as long as
 * the pool). Any thread. */
const ImapConfig *imap_pool_config(ImapPool *pool);

/* Queues @cmd (transfer full; NULL completes at once with
 * IMAP_ERROR_INVALID) to run with @mailbox (wire name, nullable: needs no
 * selected state) selected. @data (nullable) gets the untagged
 * responses; @done runs exactly once. Any thread; never blocks. */
void imap_pool_submit(ImapPool *pool, const char *mailbox, ImapCommand *cmd,
		      ImapDataFunc data, ImapDoneFunc done, gpointer user_data);

/* As imap_pool_submit(), for a command that names messages by UID, which
 * mean those messages only under @uidvalidity (RFC 9051 §2.3.1.1). It is
 * sent only where @mailbox is selected and the SELECT's answer gave that
 * UIDVALIDITY (never pipelined behind the SELECT); else it completes
 * unsent with IMAP_ERROR_UIDVALIDITY. @uidvalidity 0: any. */
void imap_pool_submit_uids(ImapPool *pool, const char *mailbox,
			   guint32 uidvalidity, ImapCommand *cmd,
			   ImapDataFunc data, ImapDoneFunc done,
			   gpointer user_data);

/* Someone now waits for the command submitted with @user_data: if it is
 * still queued as IMAP_COMMAND_BACKGROUND, it goes as any other. Only
 * compared, never used: a pointer whose command has completed matches
 * nothing (or a command reusing it, which then merely goes sooner). Any
 * thread. */
void imap_pool_hurry(ImapPool *pool, gconstpointer user_data);

/* Why the last attempt to open a connection failed, or NULL if the last
 * one succeeded (transfer full). Any thread. */
char *imap_pool_connect_problem(ImapPool *pool);

/* As imap_pool_connect_problem(), but NULL while some connection is
 * logged in: why the server cannot be reached now. Any thread. */
char *imap_pool_unreachable(ImapPool *pool);

/* Says that messages may have come to @mailbox (wire name; NULL: to some
 * mailbox, which is not known): after an APPEND, COPY or MOVE to it, or
 * the watcher's news. A connection that has it selected then brings its
 * view up to date (a NOOP, answered) before its next command on it, which
 * may name the newcomers. (The pool notes on its own only an APPEND, COPY
 * or MOVE whose answer was lost.) Any thread. */
void imap_pool_note_change(ImapPool *pool, const char *mailbox);

#endif

/* cache/account.h — everything fs/ may ask of what we know.
 *
 * One CacheAccount per mount. It owns the pool (imap/), the index of
 * mailboxes and messages (cache/index.h) and the message store on disk
 * (cache/store.h), and keeps them fresh (cache/sync.h).
 *
 * Every call may be made from any FUSE worker thread at once. Calls that may
 * need the server block the calling thread in cache/wait.c only, for at
 * most the configured timeout; FALSE means @error is set (IMAPFS_CACHE_ERROR,
 * IMAPFS_IMAP_ERROR or G_IO_ERROR; fs/errmap.c turns it into an errno).
 *
 * Identity: a mailbox has an id (>= 1) that is stable for the life of the
 * account object; id 0 is the root of the tree. A message is named by
 * (mailbox id, UID); (mailbox, UIDVALIDITY, UID) names one byte sequence
 * forever, which is what makes the disk cache safe.
 */
#ifndef IMAPFS_CACHE_ACCOUNT_H
#define IMAPFS_CACHE_ACCOUNT_H

#include <gio/gio.h>
#include <glib.h>
#include "cache/error.h"

typedef struct CacheAccount CacheAccount;
typedef struct ImapPool ImapPool;

#define CACHE_ROOT_ID 0

typedef enum {
	CACHE_MAILBOX_NOSELECT = 1 << 0, /* holds only children */
	CACHE_MAILBOX_TRASH = 1 << 1,	 /* RFC 6154 \Trash */
	CACHE_MAILBOX_JUNK = 1 << 2,
	CACHE_MAILBOX_SENT = 1 << 3,
	CACHE_MAILBOX_DRAFTS = 1 << 4,
	CACHE_MAILBOX_ARCHIVE = 1 << 5,
} CacheMailboxFlags;

typedef struct {
	guint32 id;
	guint32 parent_id; /* CACHE_ROOT_ID for top level */
	char *component;   /* last part of the name, UTF-8 */
	char *full_name;   /* whole name, UTF-8, server's delimiter */
	char delimiter;	   /* '\0': the server has no hierarchy */
	guint flags;	   /* CacheMailboxFlags */
	guint n_children;  /* child mailboxes */
	/* Known after the mailbox was first listed, else 0: */
	guint32 uidvalidity;
	guint32 uidnext;
	guint32 n_messages;
	guint64 highestmodseq;
} CacheMailbox;

void cache_mailbox_clear(CacheMailbox *mbox);

typedef struct {
	guint32 uid;
	guint64 size;	     /* exact byte count a read returns */
	gint64 internaldate; /* seconds since the epoch */
	guint64 modseq;	     /* 0 if unknown */
	char *flags;	     /* "\Seen \Flagged", never NULL */
	char *subject;	     /* decoded UTF-8; nullable */
	char *from;	     /* decoded UTF-8; nullable */
	char *message_id;    /* nullable */
	char *alias;	     /* the file name it was added under through
			      * this filesystem, kept so that a restore
			      * by rsync finds it again; nullable */
} CacheMessage;

void cache_message_clear(CacheMessage *msg);

/* @internaldate as IMAP writes it: "dd-Mon-yyyy hh:mm:ss +0000".
 * (transfer full), NULL if out of range. */
char *cache_format_internaldate(gint64 internaldate);

typedef struct {
	guint32 mailbox_id;
	guint32 uid;
} CacheMsgRef;

typedef struct {
	char *cache_dir;    /* per-account directory, created 0700 */
	guint timeout_s;    /* longest a call waits for the server */
	guint list_ttl_s;   /* re-list a mailbox after this long */
	guint64 cache_size; /* bytes of message cache; 0: no limit */
} CacheOptions;

/* The disk under the cache directory is full and @bytes more are needed
 * there outside the message store (a new file being written): drops least
 * recently used cached messages. TRUE if any went (worth trying again).
 * Any thread. */
gboolean cache_account_make_room(CacheAccount *acct, guint64 bytes);

/* Makes @dir (which exists) the cache of @account ("user@host:port"):
 * what it holds for another account, or for none it names, is removed
 * first, since the same UIDVALIDITY and UID there name other bytes. A disk
 * too full to name the account leaves it unnamed (cleared next time), with
 * a warning. Starts no thread: call it before mounting. */
gboolean cache_account_claim_dir(const char *dir, const char *account,
				 GError **error);

/* Takes @pool (transfer full, freed on failure too). Creates
 * @opts->cache_dir if needed. Call on the main thread, once, after the pool
 * exists. */
CacheAccount *cache_account_new(ImapPool *pool, const CacheOptions *opts,
				GError **error);
void cache_account_free(CacheAccount *acct); /* NULL-safe; frees the pool */
/* The mount is ending: reads and listings waiting on the server give up
 * now (G_IO_ERROR_CANCELLED), and later ones at once. Changes (APPEND,
 * MOVE, STORE, ...) still run to their end. Any thread. */
void cache_account_end(CacheAccount *acct);

/* Called (from any thread, with no cache lock held) when what the kernel
 * may have cached about a message is wrong, e.g. a size the server got
 * wrong. fs/ forwards it to the kernel from its own thread. */
typedef void (*CacheInvalidateFunc)(CacheMsgRef ref, gpointer user_data);
/* Called likewise when the name of mailbox @component (UTF-8) under
 * @parent_id and every name below it may stand for other messages than the
 * kernel holds: the mailbox was made anew on the server. */
typedef void (*CacheInvalidateEntryFunc)(guint32 parent_id,
					 const char *component,
					 gpointer user_data);
/* Called likewise when mailbox @old_id, made anew on the server, goes on
 * as @new_id (see cache_account_current_dir), for what fs/ keeps by
 * mailbox id. */
typedef void (*CacheRenewedFunc)(guint32 old_id, guint32 new_id,
				 gpointer user_data);
void cache_account_set_invalidate_func(CacheAccount *acct,
				       CacheInvalidateFunc func,
				       CacheInvalidateEntryFunc entry_func,
				       CacheRenewedFunc renewed_func,
				       gpointer user_data);

/* Why the last attempt to connect to the server failed, or NULL if it
 * succeeded (transfer full). Any thread. */
char *cache_account_connect_problem(CacheAccount *acct);

/* Watches INBOX with IDLE from now on, if the server offers it (else a
 * log line says so), and every other mailbox too where it offers NOTIFY:
 * what other clients change there is seen at once instead of after
 * list_ttl. Call after the invalidate func is set. */
void cache_account_watch(CacheAccount *acct);

/* ---- Mailboxes ---------------------------------------------------------- */

/* Copies mailbox @id into @out (clear it with cache_mailbox_clear). Lists
 * the mailboxes from the server first if that has never been done. For
 * CACHE_ROOT_ID: a NOSELECT pseudo-mailbox with an empty name. */
gboolean cache_account_get_mailbox(CacheAccount *acct, guint32 id,
				   CacheMailbox *out, GError **error);
/* The same from what the index holds now, never asking the server; FALSE
 * if it holds no such mailbox. */
gboolean cache_account_peek_mailbox(CacheAccount *acct, guint32 id,
				    CacheMailbox *out);

/* The child mailboxes of @parent_id, as CacheMailbox in a GArray with a
 * clear func set (transfer full). Re-lists from the server when the list is
 * older than list_ttl_s. */
GArray *cache_account_list_children(CacheAccount *acct, guint32 parent_id,
				    GError **error);

/* The mailbox a directory looked up as @id stands for now: @id, or the one
 * made anew in its place after the server changed its UIDVALIDITY. (The
 * old id keeps naming the old messages, which are gone.) */
guint32 cache_account_current_dir(CacheAccount *acct, guint32 id);
/* Syncs mailbox @id as cache_account_foreach_message() would (@refresh: also
 * when stale) and returns the mailbox whose messages the directory shows:
 * @id, or the one made anew in its place, which this then syncs in turn
 * (a sync's SELECT may be what finds the change). 0 with @error. */
guint32 cache_account_settle_dir(CacheAccount *acct, guint32 id,
				 gboolean refresh, GError **error);

/* The id of @parent_id's child named @component (UTF-8), or 0. No server
 * round trip unless nothing was listed yet. */
guint32 cache_account_find_child(CacheAccount *acct, guint32 parent_id,
				 const char *component);

/* ---- Messages ----------------------------------------------------------- */

/* Runs on each message of a mailbox, in UID order, with the account lock
 * held: it must be quick, keep nothing it was given, and not call into the
 * account. */
typedef void (*CacheMessageFunc)(const CacheMessage *msg, gpointer user_data);

/* Calls @func for each message of @mailbox_id in UID order, after fetching
 * or refreshing the mailbox's index when it is older than list_ttl_s. No
 * copy of the table is made, so listing 100,000 messages costs only what
 * @func keeps. */
gboolean cache_account_foreach_message(CacheAccount *acct, guint32 mailbox_id,
				       CacheMessageFunc func,
				       gpointer user_data, GError **error);

/* Copies one message's facts into @out (nullable: only check it exists).
 * Served from the index; lists the mailbox first only if it never was.
 * CACHE_ERROR_NOT_FOUND if the UID is not (or no longer) there. */
gboolean cache_account_get_message(CacheAccount *acct, CacheMsgRef ref,
				   CacheMessage *out, GError **error);
/* The same from what the index holds now, never asking the server. */
gboolean cache_account_peek_message(CacheAccount *acct, CacheMsgRef ref,
				    CacheMessage *out);

/* The UID of the message that was added under file name @alias in mailbox
 * @mailbox_id (see CacheMessage.alias), or 0. No round trip. */
guint32 cache_account_find_alias(CacheAccount *acct, guint32 mailbox_id,
				 const char *alias);

/* ---- Reading ------------------------------------------------------------ */

/* An open message: what is needed to find its bytes even after the message
 * has left the index (moved or deleted while open). */
typedef struct {
	CacheMsgRef ref;
	char *mailbox; /* wire name at open time */
	guint32 uidvalidity;
	guint64 size;
	int fd;		 /* the whole message on disk, once it is;
			  * else -1. Set once, atomically. */
	guint64 fd_size; /* its size */
} CacheFile;

/* Fills @out for message @ref and keeps its cached bytes from eviction
 * until cache_account_close(). */
gboolean cache_account_open(CacheAccount *acct, CacheMsgRef ref, CacheFile *out,
			    GError **error);
void cache_account_close(CacheAccount *acct, CacheFile *file);

/* Fetches the whole message into the store now, so that reads through an
 * open CacheFile go on working after the message is moved or deleted. */
gboolean cache_account_keep(CacheAccount *acct, CacheMsgRef ref,
			    GError **error);

typedef struct {
	int fd;		   /* valid until released */
	gboolean borrowed; /* fd belongs to a CacheFile: release keeps it */
	goffset pos;	   /* where the requested offset lives in that file */
	gsize len; /* may be short at the end of the message; 0 at EOF */
} CacheSpan;

/* Makes sure bytes [off, off+len) of an open message are on disk, fetching
 * what is missing with BODY.PEEK (never sets \Seen), and returns where they
 * are. Never returns bytes that are not the message's: a read that cannot
 * be served fails (EIO); when the message is no longer in the index (moved
 * or deleted while open), what the store holds of it is still served.
 * @cancel (nullable) aborts the wait with G_IO_ERROR_CANCELLED; the fetch
 * still completes into the cache. */
gboolean cache_account_read_file(CacheAccount *acct, CacheFile *file,
				 goffset off, gsize len, CacheSpan *out_span,
				 GCancellable *cancel, GError **error);
void cache_span_release(CacheSpan *span); /* NULL-safe, idempotent */
/* For a reader that reads the store's file itself rather than through
 * cache_account_read_file(), at open: the message's file, whole, kept in
 * @file (closed with it). A message not whole in the store yet is
 * fetched first, as its first read would be, if it is one fetched whole
 * (up to 1 MiB); else, or if that fails (@error), -1. Counts as a read
 * from the start, for the prefetch. */
int cache_account_file_whole(CacheAccount *acct, CacheFile *file,
			     GCancellable *cancel, GError **error);
/* @tag (not 0) is told to @func (set once, before the account is used
 * by other threads) when the store drops @file's message (to make room),
 * from the thread that dropped it: a holder of the cache file lets go of
 * it too, so that its blocks come free. */
typedef void (*CacheFileGoneFunc)(guint64 tag, gpointer data);
void cache_account_set_file_gone_func(CacheAccount *acct,
				      CacheFileGoneFunc func, gpointer data);
void cache_account_tag_file(CacheAccount *acct, const CacheFile *file,
			    guint64 tag);

/* ---- Changes: the mutation table of DESIGN.md (cache/mutate.c) ----------
 *
 * Each call changes the server first and then the index, in one place, so
 * a listing right after shows the result. None sends a bare EXPUNGE. A
 * non-idempotent command whose connection dropped is never resent: the
 * outcome is worked out by looking at the server again. */

/* Checks a flag list as a user wrote it and returns it in canonical form
 * (see cache/flags.h), or NULL with CACHE_ERROR_INVALID. */
char *cache_account_check_flags(const char *flags, GError **error);

/* Replaces the message's flags with @flags (as a user wrote them; see
 * cache/flags.h). CACHE_ERROR_INVALID for a bad list, _UNSUPPORTED for a
 * keyword the mailbox cannot store, _READONLY for a read-only mailbox. */
gboolean cache_account_set_flags(CacheAccount *acct, CacheMsgRef ref,
				 const char *flags, GError **error);

/* Moves a message to mailbox @to_id: UID MOVE, else UID COPY + STORE
 * \Deleted + UID EXPUNGE of that UID (UIDPLUS), else COPY + STORE \Deleted
 * only. *out_uid (nullable) gets its UID there, 0 if the server did not
 * say (no COPYUID). */
gboolean cache_account_move(CacheAccount *acct, CacheMsgRef ref, guint32 to_id,
			    guint32 *out_uid, GError **error);

/* *out_same: whether the message in @fd (read as cache_account_append()
 * would send it) is byte for byte message @ref, fetched if need be. */
gboolean cache_account_same_message(CacheAccount *acct, CacheMsgRef ref, int fd,
				    gboolean *out_same, GError **error);

/* rm: moves the message to the \Trash mailbox (else one named Trash) if
 * there is one and this is not it, else (or with @expunge) STORE \Deleted
 * + UID EXPUNGE of that UID only. */
gboolean cache_account_delete(CacheAccount *acct, CacheMsgRef ref,
			      gboolean expunge, GError **error);

/* APPENDs the message in @fd (its whole content; bare LF line ends become
 * CRLF) to mailbox @mailbox_id with @flags (nullable) and @internaldate
 * (0: now). @alias (nullable) is kept as the message's file name. *out_uid
 * (nullable) gets the new UID (APPENDUID, else found by looking). */
gboolean cache_account_append(CacheAccount *acct, guint32 mailbox_id, int fd,
			      const char *flags, gint64 internaldate,
			      const char *alias, guint32 *out_uid,
			      GError **error);

/* CREATE @component (UTF-8, without the delimiter) under @parent_id. */
gboolean cache_account_create_mailbox(CacheAccount *acct, guint32 parent_id,
				      const char *component, GError **error);

/* DELETE a mailbox that holds no messages and no children (else
 * CACHE_ERROR_NOT_EMPTY); INBOX: CACHE_ERROR_NOT_PERMITTED. */
gboolean cache_account_delete_mailbox(CacheAccount *acct, guint32 id,
				      GError **error);

/* RENAME mailbox @id to @component under @parent_id; its id and its
 * children's stay. INBOX: CACHE_ERROR_NOT_PERMITTED. */
gboolean cache_account_rename_mailbox(CacheAccount *acct, guint32 id,
				      guint32 parent_id, const char *component,
				      GError **error);

/* The hierarchy delimiter of the account's names ('\0': flat), as LIST
 * reported it. */
char cache_account_delimiter(CacheAccount *acct);

typedef struct {
	gboolean has_storage;	/* the server names a storage limit */
	guint64 storage_used;	/* bytes */
	guint64 storage_limit;	/* bytes */
	gboolean has_messages;	/* the server names a message limit */
	guint64 messages_used;
	guint64 messages_limit;
} CacheQuota;

/* How full the account is: INBOX's quota (RFC 9208), the root with the
 * least room left where there are several; nothing where the server has
 * no QUOTA or names no limit. Answers from the last answer while it is
 * younger than the list TTL, asking again behind it; waits for the server
 * only the first time, and not while it cannot be reached. Any thread. */
void cache_account_quota(CacheAccount *acct, CacheQuota *out);

#endif

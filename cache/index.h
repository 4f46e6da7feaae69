/* cache/index.h — mailboxes and their message tables, in memory.
 *
 * Plain data structures with no lock of their own: the account's index lock
 * (cache/account-private.h) guards every call. Mailbox ids start at 1 and
 * are never reused while the index lives; messages are CacheMessage records
 * keyed by UID and kept in UID order.
 */
#ifndef IMAPFS_CACHE_INDEX_H
#define IMAPFS_CACHE_INDEX_H

#include <glib.h>
#include "cache/account.h"

typedef struct {
	guint32 id;
	guint32 parent_id;
	char *wire_name; /* as the server spells it; NULL for a parent
			  * the server did not list */
	char *full_name; /* UTF-8 */
	char *component; /* UTF-8, last part of full_name */
	char delimiter;
	guint flags;	    /* CacheMailboxFlags */
	gboolean gone;	    /* no longer on the server */
	guint32 renewed_as; /* gone: the mailbox made anew in its place */
	gboolean listed;    /* seen in the latest LIST */
	/* Message table: valid once synced. */
	gboolean synced;
	gint64 synced_at; /* monotonic time of the last sync */
	guint changes;	  /* changes the server announced (IDLE); a sync
			   * begun before the latest does not confirm */
	guint32 uidvalidity;
	guint32 uidnext;
	guint64 highestmodseq;
	gboolean readonly;     /* SELECT said [READ-ONLY] */
	char **permanentflags; /* from SELECT; NULL: not known yet */
	gboolean missing;      /* the last sync saw fewer than EXISTS */
	guint64 synced_modseq; /* highest MODSEQ a sync has seen */
	gboolean flags_unsure; /* a change came that could not be placed */
	gboolean gone_unsure;  /* an expunge came by sequence number only */
	guint64 generation;    /* bumped by every change of the table */
	GHashTable *by_uid;    /* uid -> CacheMessage * (owned) */
	GHashTable *by_alias;  /* alias -> CacheMessage * (borrowed) */
	GPtrArray *sorted;     /* CacheMessage * in UID order, or NULL */
	GHashTable *by_message_id; /* Message-ID -> GPtrArray of
				    * CacheMessage * (borrowed); made at
				    * first use, or NULL */
	GArray *gaps; /* guint32: UIDs a refresh saw below the highest it
		       * lists, and not listed (they came between UIDs
		       * COPYUID gave): the next refresh lists them */
} CacheIndexMailbox;

typedef struct CacheIndex CacheIndex;

CacheIndex *cache_index_new(void);
void cache_index_free(CacheIndex *index); /* NULL-safe */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CacheIndex, cache_index_free)

/* NULL if @id is unknown or gone. (transfer none) */
CacheIndexMailbox *cache_index_mailbox(CacheIndex *index, guint32 id);
/* The highest id given out: ids run from 1 to it. */
guint32 cache_index_max_id(CacheIndex *index);
/* By UTF-8 full name. (transfer none) */
CacheIndexMailbox *cache_index_mailbox_by_name(CacheIndex *index,
					       const char *full_name);
/* The children of @parent_id, CacheIndexMailbox * (transfer container). */
GPtrArray *cache_index_children(CacheIndex *index, guint32 parent_id);
guint cache_index_n_children(CacheIndex *index, guint32 parent_id);

/* A LIST refresh: begin, add every listed mailbox, end. Mailboxes not
 * listed become gone (unless they are parents of listed ones, which stay
 * as NOSELECT). @full_name is UTF-8; missing parents are made up. */
void cache_index_list_begin(CacheIndex *index);
CacheIndexMailbox *cache_index_list_add(CacheIndex *index,
					const char *wire_name,
					const char *full_name, char delimiter,
					guint flags);
void cache_index_list_end(CacheIndex *index);
gboolean cache_index_ever_listed(CacheIndex *index);
gint64 cache_index_listed_at(CacheIndex *index);
/* Changes whenever anything in the index changes (for "save if dirty"). */
guint64 cache_index_generation(CacheIndex *index);
/* Makes the mailbox list count as listed at @when (0: long ago). */
void cache_index_set_listed_at(CacheIndex *index, gint64 when);

/* Gives @mbox and every mailbox below it the new name @full_name (UTF-8)
 * and @wire_name, under @parent_id, keeping their ids. */
void cache_index_rename(CacheIndex *index, CacheIndexMailbox *mbox,
			guint32 parent_id, const char *full_name,
			const char *wire_name);

/* The mailbox with the \Trash special use, else a top-level mailbox
 * named "Trash" (any case), else NULL. */
CacheIndexMailbox *cache_index_find_trash(CacheIndex *index);
/* The delimiter of the first mailbox that has one, else '\0'. */
char cache_index_delimiter(CacheIndex *index);

/* Message table. */
CacheMessage *cache_index_message(CacheIndexMailbox *mbox, guint32 uid);
/* Takes @msg (transfer full); replaces an entry with the same UID. */
void cache_index_put_message(CacheIndexMailbox *mbox, CacheMessage *msg);
void cache_index_remove_message(CacheIndexMailbox *mbox, guint32 uid);
/* Drops every message (UIDVALIDITY changed); their UIDs are appended to
 * @out_uids (guint32; nullable). */
void cache_index_clear_messages(CacheIndexMailbox *mbox, GArray *out_uids);
/* Makes @old (a mailbox made anew on the server: another UIDVALIDITY) gone
 * with its messages, and returns the mailbox that takes its name, place,
 * flags and children under a new id: what was known by the old id (and
 * inode) names nothing now. */
CacheIndexMailbox *cache_index_renew(CacheIndex *index, CacheIndexMailbox *old);
/* @id, or the mailbox made anew in its place (see cache_index_renew), for
 * what stands for the directory rather than for its messages. */
guint32 cache_index_current(CacheIndex *index, guint32 id);
/* CacheMessage * in UID order. (transfer none, valid under the lock) */
GPtrArray *cache_index_sorted(CacheIndexMailbox *mbox);
guint32 cache_index_max_uid(CacheIndexMailbox *mbox);
/* The messages whose Message-ID is @message_id, or NULL. (transfer none,
 * valid under the lock until the table changes) */
GPtrArray *cache_index_by_message_id(CacheIndexMailbox *mbox,
				     const char *message_id);
/* The message added under file name @alias, or NULL. */
CacheMessage *cache_index_message_by_alias(CacheIndexMailbox *mbox,
					   const char *alias);
/* Lists @msg (a message of @mbox) under file name @alias (nullable: its
 * canonical name again). */
void cache_index_set_alias(CacheIndexMailbox *mbox, CacheMessage *msg,
			   const char *alias);

CacheMessage *cache_message_copy(const CacheMessage *msg);
void cache_message_free(CacheMessage *msg);
void cache_message_copy_to(const CacheMessage *msg, CacheMessage *out);

#endif

/* cache/store.h — message bytes on disk.
 *
 * Keyed by (mailbox, UIDVALIDITY, UID), which names one byte sequence
 * forever, so a cached byte never goes stale; a new UIDVALIDITY simply
 * lands in a new directory. A message is either complete ("<uid>", only
 * ever created whole, by rename) or partial ("<uid>.part", a sparse file
 * whose present CACHE_STORE_CHUNK-aligned chunks are tracked in memory for
 * the life of the store; partial files left by an earlier run are ignored
 * and overwritten).
 *
 * The store keeps within a byte budget: when what it holds passes it, the
 * least recently used messages go first, down to 90 % of the budget, but
 * never one that is pinned (an open file may need it after the message
 * left the server). When the disk is full it makes room the same way, and
 * failing that holds messages in memory, within CACHE_STORE_MEMORY bytes;
 * they are read through an fd all the same. Thread-safe: one internal leaf
 * lock.
 */
#ifndef IMAPFS_CACHE_STORE_H
#define IMAPFS_CACHE_STORE_H

#include <glib.h>

#define CACHE_STORE_CHUNK  (256 * 1024)
#define CACHE_STORE_MEMORY (32 * 1024 * 1024)

typedef struct CacheStore CacheStore;

typedef struct {
	const char *mailbox; /* wire name */
	guint32 uidvalidity;
	guint32 uid;
} CacheKey;

/* Uses (and creates, 0700) @dir, keeping what it holds under @budget
 * bytes (0: no limit). What an earlier run left is counted; its partial and
 * temporary files are removed. */
CacheStore *cache_store_new(const char *dir, guint64 budget, GError **error);

/* Bytes held on disk now. */
guint64 cache_store_usage(CacheStore *store);
/* The bytes it can hold: the budget (0: no limit), or what the disk holds
 * (what is stored and its free space) if that is less, or
 * CACHE_STORE_MEMORY while the disk is full. */
guint64 cache_store_budget(CacheStore *store);

/* While pinned (counted), the message is never evicted. */
void cache_store_pin(CacheStore *store, const CacheKey *key);
void cache_store_unpin(CacheStore *store, const CacheKey *key);
void cache_store_free(CacheStore *store); /* NULL-safe */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CacheStore, cache_store_free)

/* A message's entry may carry tags (not 0); when the entry goes (evicted,
 * forgotten), @func is called with each, from the thread that removed it,
 * after the store's lock is let go and before that call returns: a
 * holder of the file learns it should let go of it too, so that its
 * blocks come free. Set before other threads use the store. */
typedef void (*CacheStoreGoneFunc)(guint64 tag, gpointer data);
void cache_store_set_gone_func(CacheStore *store, CacheStoreGoneFunc func,
			       gpointer data);
void cache_store_tag(CacheStore *store, const CacheKey *key, guint64 tag);

/* A read-only fd of the complete message, or -1. (transfer full) An
 * earlier run's file that is not @size bytes (the message's size) is
 * dropped: one the machine's going down left short. */
int cache_store_open_complete(CacheStore *store, const CacheKey *key,
			      guint64 size);

/* A read-only fd of the partial file if every chunk touching
 * [off, off+len) of a message of @size bytes is present, else -1. */
int cache_store_open_range(CacheStore *store, const CacheKey *key, guint64 size,
			   goffset off, gsize len);

/* Stores the whole message: @len bytes from @data, or from @src_fd (read
 * with pread from offset 0) when @data is NULL. Drops any partial state. */
gboolean cache_store_put_whole(CacheStore *store, const CacheKey *key,
			       const void *data, int src_fd, gsize len,
			       GError **error);

/* Stores bytes [off, off+len) of a message of @size bytes: @off must be
 * chunk-aligned and @len a multiple of the chunk or reaching @size. From
 * @data, or @src_fd from offset 0. When that completes the message, the
 * file becomes complete. A different @size than before drops what was
 * stored for the key first. */
gboolean cache_store_put_range(CacheStore *store, const CacheKey *key,
			       guint64 size, goffset off, const void *data,
			       int src_fd, gsize len, GError **error);

/* The disk is full and @bytes are needed beside the store (a new file, the
 * index): drops least recently used, unpinned messages, as it does for
 * its own writes. TRUE if any went (worth trying again). */
gboolean cache_store_make_room(CacheStore *store, guint64 bytes);

/* What is stored whole on disk for @from becomes @to's (a message moved
 * on the server keeps its bytes): a rename, or a link while @from is
 * pinned (an open file reads by that name until it lets go). Nothing but
 * a whole file on disk is moved. */
void cache_store_move(CacheStore *store, const CacheKey *from,
		      const CacheKey *to);

/* A mailbox renamed on the server, keeping its UIDVALIDITY and UIDs. */
typedef struct {
	const char *from; /* wire names */
	const char *to;
	guint32 uidvalidity;
} CacheStoreRename;
/* cache_store_move() for every message stored for each of the @n
 * @renames, to its new name. */
void cache_store_move_mailboxes(CacheStore *store,
				const CacheStoreRename *renames, guint n);

/* Forgets everything stored for @key. */
void cache_store_forget(CacheStore *store, const CacheKey *key);

#endif

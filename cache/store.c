/* cache/store.c — the message store.
 *
 * Layout: DIR/<hash of the mailbox name>/<uidvalidity>/<uid>[.part]. The
 * mailbox is hashed (SHA-256, 16 hex digits) so any server name is a safe
 * file name. A complete file appears only by linkat() or rename(), so if
 * imapfs dies it leaves either nothing or the whole message (nothing is
 * fsync'd: a cache is not worth that, but a power loss may leave files
 * short, so an earlier run's file is held against the message's size at
 * its first open). Partial files are sparse; which chunks are real is
 * known only in memory, so after a restart a partial file is started again
 * from scratch (the first write truncates it).
 *
 * Whole messages are written to an unnamed file (O_TMPFILE) and linked
 * into place, one directory change per message. Those that arrived spooled
 * (an O_TMPFILE from the parser) are linked without copying when the spool
 * shares the filesystem; otherwise copied with copy_file_range().
 *
 * A full disk (ENOSPC, EDQUOT) first makes room: least recently used,
 * unpinned messages go until the bytes being written fit, and the write is
 * tried again. When that does not help (the disk is full of other files),
 * the message is held in memory instead, in a memfd that reads are served
 * from as from a file, within CACHE_STORE_MEMORY bytes (least recently used
 * first, pinned ones never; a larger message is not held, and its read
 * fails with ENOSPC as before); the disk is tried again at every write.
 * cache_store_budget() tells prefetch how far ahead it may fetch: the
 * budget, or what the disk holds if that is less (its free space, asked
 * each time), or the memory's budget while the disk is full.
 */
#include "cache/store.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cache/error.h"

typedef struct {
	guint64 size;
	guint n_chunks;
	guint n_present;
	guint8 *present; /* one byte per chunk */
} Partial;

/* What the budget knows of one message. */
typedef struct {
	guint64 bytes; /* complete, or written (partial) */
	guint64 used;  /* tick of the last use */
	guint pins;
	int mem_fd;	/* the bytes are in this memfd, not on disk; or -1 */
	gboolean unchecked; /* an earlier run's file, its size not yet
			     * held against the message's */
	gboolean moved_away; /* the file is another key's now, its path kept
			      * for open files until the last lets go */
	GArray *tags;	/* guint64: cache_store_tag()'s; NULL: none */
} Entry;

struct CacheStore {
	char *dir;
	guint64 budget;
	GMutex lock;	      /* guards all below; a leaf lock */
	GHashTable *partials; /* path of the .part file -> Partial * */
	GHashTable *entries;  /* path without ".part" -> Entry * */
	guint64 usage;	      /* bytes on disk */
	guint64 mem_usage;    /* bytes in memory */
	gboolean disk_full;   /* the last write to disk found no room */
	gint64 full_said_at;  /* when that was last logged; 0: never */
	gboolean full_said;   /* and no "room again" since */
	gboolean room_said;   /* making room was logged */
	guint64 tick;
	GHashTable *dirs; /* directories known to exist */
	/* Tags of entries gone, to report once the lock is let go. */
	GArray *gone;
	CacheStoreGoneFunc gone_func; /* set before any other thread runs */
	gpointer gone_data;
};

static void partial_free(Partial *p)
{
	g_free(p->present);
	g_free(p);
}

static Entry *entry_new(void)
{
	Entry *e = g_new0(Entry, 1);

	e->mem_fd = -1;
	return e;
}

static void entry_free(Entry *e)
{
	if (e->mem_fd >= 0)
		close(e->mem_fd);
	if (e->tags)
		g_array_unref(e->tags);
	g_free(e);
}

/* Counts what an earlier run left, and removes its partial and temporary
 * files: which of their chunks are real was known only to that run. */
static void scan_dir(CacheStore *store, const char *path, guint depth)
{
	g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
	const char *name;

	while (dir && (name = g_dir_read_name(dir))) {
		g_autofree char *child = g_build_filename(path, name, NULL);
		struct stat st;

		if (lstat(child, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth < 2) {
			scan_dir(store, child, depth + 1);
		} else if (S_ISREG(st.st_mode) && depth == 2 &&
			   strspn(name, "0123456789") == strlen(name)) {
			Entry *e = entry_new();

			e->bytes = st.st_size;
			e->used = st.st_atime; /* older runs' order, roughly */
			e->unchecked = TRUE;
			store->usage += e->bytes;
			g_hash_table_insert(store->entries, g_strdup(child), e);
		} else if (S_ISREG(st.st_mode)) {
			g_unlink(child);
		}
	}
}

CacheStore *cache_store_new(const char *dir, guint64 budget, GError **error)
{
	CacheStore *store;

	/* A full disk is no reason to fail: messages are held in memory
	 * until it has room, and the directory is made then. */
	if (g_mkdir_with_parents(dir, 0700) < 0 && errno != ENOSPC &&
	    errno != EDQUOT) {
		int err = errno;

		g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err),
			    "cannot create cache directory %s: %s", dir,
			    g_strerror(err));
		return NULL;
	}
	store = g_new0(CacheStore, 1);
	store->dir = g_strdup(dir);
	store->budget = budget;
	g_mutex_init(&store->lock);
	store->partials = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
						(GDestroyNotify)partial_free);
	store->gone = g_array_new(FALSE, FALSE, sizeof(guint64));
	store->entries = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					       (GDestroyNotify)entry_free);
	store->dirs =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	scan_dir(store, dir, 0);
	/* Ticks continue from the newest file found. */
	{
		GHashTableIter iter;
		gpointer value;

		g_hash_table_iter_init(&iter, store->entries);
		while (g_hash_table_iter_next(&iter, NULL, &value))
			store->tick = MAX(store->tick, ((Entry *)value)->used);
	}
	return store;
}

guint64 cache_store_usage(CacheStore *store)
{
	guint64 usage;

	g_mutex_lock(&store->lock);
	usage = store->usage;
	g_mutex_unlock(&store->lock);
	return usage;
}

guint64 cache_store_budget(CacheStore *store)
{
	struct statvfs fs;
	guint64 budget, usage;
	gboolean full;

	g_mutex_lock(&store->lock);
	budget = store->budget;
	usage = store->usage;
	full = store->disk_full;
	g_mutex_unlock(&store->lock);
	if (full)
		return CACHE_STORE_MEMORY;
	/* A cache_size larger than the disk holds: what it holds. */
	if (statvfs(store->dir, &fs) == 0) {
		guint64 room = usage + (guint64)fs.f_bavail * fs.f_frsize;

		room = MAX(room, 1); /* 0 would mean no limit */
		budget = budget ? MIN(budget, room) : room;
	}
	return budget;
}

static Entry *entry_locked(CacheStore *store, const char *path)
{
	Entry *e = g_hash_table_lookup(store->entries, path);

	if (!e) {
		e = entry_new();
		g_hash_table_insert(store->entries, g_strdup(path), e);
	}
	e->used = ++store->tick;
	return e;
}

/* Removes @path's entry; its tags are reported by unlock_reporting(). */
static void remove_entry_locked(CacheStore *store, const char *path)
{
	Entry *e = g_hash_table_lookup(store->entries, path);

	if (e && e->tags)
		g_array_append_vals(store->gone, e->tags->data, e->tags->len);
	g_hash_table_remove(store->entries, path);
}

/* Lets go of the lock, then tells of the tagged entries that went. Only
 * where entries may go, so that no caller of a function that drops none
 * is called back. */
static void unlock_reporting(CacheStore *store)
{
	g_autoptr(GArray) gone = NULL;

	if (store->gone->len) {
		gone = store->gone;
		store->gone = g_array_new(FALSE, FALSE, sizeof(guint64));
	}
	g_mutex_unlock(&store->lock);
	for (guint i = 0; gone && store->gone_func && i < gone->len; i++)
		store->gone_func(g_array_index(gone, guint64, i),
				 store->gone_data);
}

/* Where a message's bytes are and how many: on disk (@mem_fd -1) or in
 * @mem_fd (taken); a memfd held before and not kept is closed. */
static void place_locked(CacheStore *store, Entry *e, int mem_fd,
			 guint64 bytes)
{
	if (e->mem_fd >= 0)
		store->mem_usage -= e->bytes;
	else
		store->usage -= e->bytes;
	if (e->mem_fd >= 0 && e->mem_fd != mem_fd)
		close(e->mem_fd);
	e->mem_fd = mem_fd;
	e->bytes = bytes;
	e->unchecked = FALSE;
	e->moved_away = FALSE;
	if (mem_fd >= 0)
		store->mem_usage += bytes;
	else
		store->usage += bytes;
}

typedef struct {
	const char *path; /* borrowed from the entries table */
	const Entry *entry;
} Victim;

static gint compare_used(gconstpointer a, gconstpointer b)
{
	const Entry *ea = ((const Victim *)a)->entry;
	const Entry *eb = ((const Victim *)b)->entry;

	return ea->used < eb->used ? -1 : ea->used > eb->used;
}

/* Drops least recently used, unpinned messages held on disk (@in_memory
 * FALSE) or in memory, never @keep (a path, or NULL), until what is held
 * there is at most @target bytes. Returns the bytes dropped. */
static guint64 drop_until_locked(CacheStore *store, gboolean in_memory,
				 guint64 target, const char *keep)
{
	g_autoptr(GArray) all = g_array_new(FALSE, FALSE, sizeof(Victim));
	guint64 *usage = in_memory ? &store->mem_usage : &store->usage;
	guint64 before = *usage;
	GHashTableIter iter;
	gpointer key, value;

	g_hash_table_iter_init(&iter, store->entries);
	while (g_hash_table_iter_next(&iter, &key, &value)) {
		Victim v = {key, value};

		if (!v.entry->pins && (v.entry->mem_fd >= 0) == in_memory &&
		    g_strcmp0(key, keep) != 0)
			g_array_append_val(all, v);
	}
	g_array_sort(all, compare_used);
	for (guint i = 0; i < all->len && *usage > target; i++) {
		Victim *v = &g_array_index(all, Victim, i);
		g_autofree char *path = g_strdup(v->path);
		g_autofree char *part = g_strconcat(path, ".part", NULL);

		if (!in_memory) {
			g_unlink(path);
			g_unlink(part);
		}
		g_hash_table_remove(store->partials, part);
		*usage -= v->entry->bytes;
		remove_entry_locked(store, path);
	}
	return before - *usage;
}

/* Keeps the disk within 90 % of the budget once it is passed, and memory
 * within CACHE_STORE_MEMORY; @keep (nullable) was just written. */
static void evict_locked(CacheStore *store, const char *keep)
{
	if (store->budget && store->usage > store->budget)
		drop_until_locked(store, FALSE, store->budget / 10 * 9, NULL);
	if (store->mem_usage > CACHE_STORE_MEMORY)
		drop_until_locked(store, TRUE, CACHE_STORE_MEMORY, keep);
}

void cache_store_free(CacheStore *store)
{
	GHashTableIter iter;
	gpointer path, e;

	if (!store)
		return;
	/* Old names kept for files still open (a lazy unmount) go too. */
	g_hash_table_iter_init(&iter, store->entries);
	while (g_hash_table_iter_next(&iter, &path, &e))
		if (((Entry *)e)->moved_away)
			g_unlink(path);
	g_hash_table_unref(store->partials);
	g_hash_table_unref(store->entries);
	g_hash_table_unref(store->dirs);
	g_array_unref(store->gone);
	g_mutex_clear(&store->lock);
	g_free(store->dir);
	g_free(store);
}

static char *key_dir(CacheStore *store, const CacheKey *key)
{
	g_autofree char *hash = g_compute_checksum_for_string(G_CHECKSUM_SHA256,
							      key->mailbox, -1);
	char vdir[16];

	hash[16] = '\0';
	g_snprintf(vdir, sizeof(vdir), "%u", key->uidvalidity);
	return g_build_filename(store->dir, hash, vdir, NULL);
}

static char *key_path(CacheStore *store, const CacheKey *key,
		      const char *suffix)
{
	g_autofree char *dir = key_dir(store, key);
	char name[32];

	g_snprintf(name, sizeof(name), "%u%s", key->uid, suffix);
	return g_build_filename(dir, name, NULL);
}

static gboolean set_errno_error(GError **error, const char *what,
				const char *path)
{
	int err = errno;

	g_set_error(error, G_IO_ERROR, cache_io_error_from_errno(err),
		    "cache: %s %s: %s%s", what, path, g_strerror(err),
		    err == ENOSPC || err == EDQUOT
			    ? " (free space on the cache directory's disk)"
			    : "");
	return FALSE;
}

static gboolean no_space(const GError *error)
{
	return g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
}

/* A read-only fd of what @e holds in memory. */
static int reopen_memory(const Entry *e)
{
	char proc[64];
	int fd;

	/* Its own file offset, unlike a dup(): readers may use read(). */
	g_snprintf(proc, sizeof(proc), "/proc/self/fd/%d", e->mem_fd);
	fd = open(proc, O_RDONLY | O_CLOEXEC);
	return fd >= 0 ? fd : fcntl(e->mem_fd, F_DUPFD_CLOEXEC, 0);
}

/* An earlier run's file of @has bytes, not @size, was cut short (the
 * machine went down before the kernel wrote it all) or is not the
 * message's: it goes, and FALSE. */
static gboolean check_size_locked(CacheStore *store, const CacheKey *key,
				  const char *path, Entry *e, guint64 has,
				  guint64 size)
{
	if (!e->unchecked)
		return TRUE;
	if (has == size) {
		e->unchecked = FALSE;
		return TRUE;
	}
	g_message("the cached copy of UID %u in %s has %" G_GUINT64_FORMAT
		  " bytes, not %" G_GUINT64_FORMAT " (left short by an "
		  "earlier run): fetching it again",
		  key->uid, key->mailbox, has, size);
	g_unlink(path);
	place_locked(store, e, -1, 0);
	if (!e->pins)
		remove_entry_locked(store, path);
	return FALSE;
}

int cache_store_open_complete(CacheStore *store, const CacheKey *key,
			      guint64 size)
{
	g_autofree char *path = key_path(store, key, "");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int err = errno;
	struct stat st;
	Entry *e;

	if (fd < 0 && err != ENOENT)
		return -1;
	g_mutex_lock(&store->lock);
	/* Another thread dropped the file between our open() and the lock
	 * (found short, or evicted): a miss, not a fresh entry. */
	if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_nlink == 0)) {
		close(fd);
		fd = -1;
	}
	e = fd >= 0 ? entry_locked(store, path)
		    : g_hash_table_lookup(store->entries, path);
	if (fd >= 0 &&
	    !check_size_locked(store, key, path, e, st.st_size, size)) {
		close(fd);
		fd = -1;
		e = NULL; /* it may be gone */
	}
	if (fd < 0 && e && e->mem_fd >= 0) {
		g_autofree char *part = g_strconcat(path, ".part", NULL);

		if (!g_hash_table_contains(store->partials, part)) {
			fd = reopen_memory(e);
			e->used = ++store->tick;
		}
	}
	unlock_reporting(store);
	return fd;
}

void cache_store_pin(CacheStore *store, const CacheKey *key)
{
	g_autofree char *path = key_path(store, key, "");

	g_mutex_lock(&store->lock);
	entry_locked(store, path)->pins++;
	g_mutex_unlock(&store->lock);
}

void cache_store_set_gone_func(CacheStore *store, CacheStoreGoneFunc func,
			       gpointer data)
{
	store->gone_func = func;
	store->gone_data = data;
}

void cache_store_tag(CacheStore *store, const CacheKey *key, guint64 tag)
{
	g_autofree char *path = key_path(store, key, "");
	Entry *e;

	g_mutex_lock(&store->lock);
	e = g_hash_table_lookup(store->entries, path);
	for (guint i = 0; e && e->tags && i < e->tags->len; i++)
		if (g_array_index(e->tags, guint64, i) == tag)
			e = NULL;
	if (e && !e->tags)
		e->tags = g_array_new(FALSE, FALSE, sizeof(guint64));
	if (e)
		g_array_append_val(e->tags, tag);
	g_mutex_unlock(&store->lock);
}

void cache_store_unpin(CacheStore *store, const CacheKey *key)
{
	g_autofree char *path = key_path(store, key, "");
	Entry *e;

	g_mutex_lock(&store->lock);
	e = g_hash_table_lookup(store->entries, path);
	if (e && e->pins > 0)
		e->pins--;
	if (e && !e->pins && e->moved_away)
		g_unlink(path);
	if (e && !e->pins && !e->bytes)
		remove_entry_locked(store, path);
	else if (e && !e->pins && e->mem_fd >= 0)
		evict_locked(store, NULL);
	unlock_reporting(store);
}

static gboolean range_present(const Partial *p, goffset off, gsize len)
{
	guint64 end = MIN((guint64)off + len, p->size);

	for (guint64 c = off / CACHE_STORE_CHUNK;
	     c * CACHE_STORE_CHUNK < end && c < p->n_chunks; c++) {
		if (!p->present[c])
			return FALSE;
	}
	return TRUE;
}

int cache_store_open_range(CacheStore *store, const CacheKey *key, guint64 size,
			   goffset off, gsize len)
{
	g_autofree char *path = key_path(store, key, ".part");
	Partial *p;
	int fd = -1;

	g_mutex_lock(&store->lock);
	p = g_hash_table_lookup(store->partials, path);
	if (p && p->size == size && range_present(p, off, len)) {
		g_autofree char *whole = key_path(store, key, "");
		Entry *e = entry_locked(store, whole);

		fd = e->mem_fd >= 0 ? reopen_memory(e)
				    : open(path, O_RDONLY | O_CLOEXEC);
	}
	g_mutex_unlock(&store->lock);
	return fd;
}

/* Copies @len bytes to @dst_fd at @dst_off from @data or from @src_fd at
 * @src_off. */
static gboolean copy_in(int dst_fd, goffset dst_off, const void *data,
			int src_fd, goffset src_off, gsize len,
			const char *path, GError **error)
{
	gsize done = 0;

	while (done < len) {
		ssize_t n;

		if (data) {
			n = pwrite(dst_fd, (const char *)data + done,
				   len - done, dst_off + done);
		} else {
			loff_t in = src_off + done, out = dst_off + done;

			n = copy_file_range(src_fd, &in, dst_fd, &out,
					    len - done, 0);
			if (n < 0 && (errno == EXDEV || errno == ENOSYS ||
				      errno == EINVAL)) {
				char buf[65536];

				n = pread(src_fd, buf,
					  MIN(sizeof(buf), len - done),
					  src_off + done);
				if (n > 0)
					n = pwrite(dst_fd, buf, n,
						   dst_off + done);
			}
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return set_errno_error(error, "write", path);
		if (n == 0) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
				    "cache: short copy into %s", path);
			return FALSE;
		}
		done += n;
	}
	return TRUE;
}

static gboolean ensure_dir(CacheStore *store, const CacheKey *key,
			   GError **error)
{
	char *dir = key_dir(store, key);
	gboolean known;

	g_mutex_lock(&store->lock);
	known = g_hash_table_contains(store->dirs, dir);
	g_mutex_unlock(&store->lock);
	if (known) {
		g_free(dir);
		return TRUE;
	}
	if (g_mkdir_with_parents(dir, 0700) < 0) {
		set_errno_error(error, "mkdir", dir);
		g_free(dir);
		return FALSE;
	}
	g_mutex_lock(&store->lock);
	g_hash_table_add(store->dirs, dir);
	g_mutex_unlock(&store->lock);
	return TRUE;
}

/* The directory of @key's messages was removed behind the store's back (a
 * user freeing space): makes it again. */
static gboolean remake_dir_locked(CacheStore *store, const CacheKey *key)
{
	char *dir = key_dir(store, key);

	g_hash_table_remove(store->dirs, dir);
	if (g_mkdir_with_parents(dir, 0700) < 0) {
		g_free(dir);
		return FALSE;
	}
	g_hash_table_add(store->dirs, dir);
	return TRUE;
}

/* Forgets the partial state of a message: its .part file, or the memory
 * that held its chunks. */
static void drop_partial_locked(CacheStore *store, const char *path,
				const char *part_path)
{
	Entry *e = g_hash_table_lookup(store->entries, path);

	if (!g_hash_table_remove(store->partials, part_path))
		return;
	g_unlink(part_path);
	if (e && e->mem_fd >= 0)
		place_locked(store, e, -1, 0);
}

/* Gives the unnamed file @fd the name @path in one step, so the message
 * appears whole or not at all; replaces a file already there (two fetches
 * of one message that raced) by a rename. Sets errno on failure. */
static gboolean link_unnamed(int fd, const char *path)
{
	g_autofree char *tmp = NULL;
	char proc[64];
	int err;

	g_snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
		return TRUE;
	if (errno != EEXIST)
		return FALSE;
	tmp = g_strdup_printf("%s.tmp%08x", path, g_random_int());
	if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) < 0)
		return FALSE;
	if (rename(tmp, path) == 0)
		return TRUE;
	err = errno;
	unlink(tmp);
	errno = err;
	return FALSE;
}

/* Writes @len bytes from @data or @src_fd to a file of its own and names it
 * @path: an unnamed file linked in place, or where the filesystem lacks
 * O_TMPFILE or there is no /proc to link through (a chroot), a temporary
 * name renamed. */
static gboolean write_whole(CacheStore *store, const CacheKey *key,
			    const char *path, const void *data, int src_fd,
			    gsize len, GError **error)
{
	g_autofree char *dir = key_dir(store, key);
	g_autofree char *tmp = NULL;
	int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);

	if (fd >= 0) {
		gboolean ok =
			copy_in(fd, 0, data, src_fd, 0, len, path, error);
		gboolean linked = ok && link_unnamed(fd, path);

		close(fd);
		if (linked || !ok)
			return ok;
	} else if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
		return set_errno_error(error, "create in", dir);
	}
	tmp = g_strdup_printf("%s.tmp%08x", path, g_random_int());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return set_errno_error(error, "create", tmp);
	if (!copy_in(fd, 0, data, src_fd, 0, len, tmp, error)) {
		close(fd);
		g_unlink(tmp);
		return FALSE;
	}
	close(fd);
	if (g_rename(tmp, path) < 0) {
		set_errno_error(error, "rename", tmp);
		g_unlink(tmp);
		return FALSE;
	}
	return TRUE;
}

/* The disk took a message (@on_disk) or had no room for it: the change is
 * said at most once a minute, and room again only after no room was. */
static void note_disk_locked(CacheStore *store, gboolean on_disk)
{
	gint64 now = g_get_monotonic_time();

	if (on_disk != store->disk_full)
		return;
	store->disk_full = !on_disk;
	if (store->disk_full &&
	    (!store->full_said_at ||
	     now - store->full_said_at > 60 * G_TIME_SPAN_SECOND)) {
		store->full_said_at = now;
		store->full_said = TRUE;
		g_warning("cache: no space left in %s, even after dropping "
			  "older messages; messages being read are held in "
			  "memory (up to %u MiB, and those open files read) "
			  "until there is: free space on that disk",
			  store->dir, CACHE_STORE_MEMORY >> 20);
	} else if (!store->disk_full && store->full_said) {
		store->full_said = FALSE;
		g_message("cache: %s has room again", store->dir);
	}
}

/* The disk is full: drops least recently used messages on it (never
 * @keep) so that @len bytes and a tenth of what it holds come free. TRUE if
 * anything went. */
static gboolean make_room_locked(CacheStore *store, guint64 len,
				 const char *keep)
{
	guint64 need = len + store->usage / 10;
	guint64 dropped = drop_until_locked(
		store, FALSE, store->usage > need ? store->usage - need : 0,
		keep);

	if (dropped && !store->room_said) {
		store->room_said = TRUE;
		g_message("cache: %s is full; making room by dropping the "
			  "least recently used messages (a -o cache_size "
			  "below the free space avoids this)",
			  store->dir);
	}
	return dropped > 0;
}

static gboolean make_room(CacheStore *store, guint64 len, const char *keep)
{
	gboolean made;

	g_mutex_lock(&store->lock);
	made = make_room_locked(store, len, keep);
	unlock_reporting(store);
	return made;
}

gboolean cache_store_make_room(CacheStore *store, guint64 bytes)
{
	return make_room(store, bytes, NULL);
}

/* A memfd of @len bytes from @data or @src_fd, or -1 with @error set. A
 * spool file in memory already (a memfd: it answers F_GET_SEALS) that
 * holds exactly the message is taken as it is; one on the full disk is
 * copied, so that its blocks go. */
static int hold_in_memory(const void *data, int src_fd, gsize len,
			  const char *path, GError **error)
{
	struct stat st;
	int fd;

	if (!data && fcntl(src_fd, F_GET_SEALS) >= 0 &&
	    fstat(src_fd, &st) == 0 && (gsize)st.st_size == len) {
		fd = fcntl(src_fd, F_DUPFD_CLOEXEC, 0);
		if (fd >= 0)
			return fd;
	}
	fd = memfd_create("imapfs-message", MFD_CLOEXEC);
	if (fd < 0) {
		set_errno_error(error, "hold in memory", path);
		return -1;
	}
	if (!copy_in(fd, 0, data, src_fd, 0, len, path, error)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Writes the whole message to disk under @path. */
static gboolean whole_to_disk(CacheStore *store, const CacheKey *key,
			      const char *path, const void *data, int src_fd,
			      gsize len, GError **error)
{
	g_autoptr(GError) local = NULL;
	gboolean again;
	struct stat st;

	if (!ensure_dir(store, key, error))
		return FALSE;
	/* A spool file that holds exactly the message is named without a
	 * copy when it shares the filesystem. */
	if (!data && fstat(src_fd, &st) == 0 && (gsize)st.st_size == len &&
	    link_unnamed(src_fd, path))
		return TRUE;
	if (write_whole(store, key, path, data, src_fd, len, &local))
		return TRUE;
	/* Its directory was removed while mounted: made again, once. */
	if (g_error_matches(local, G_IO_ERROR, G_IO_ERROR_NOT_FOUND)) {
		g_mutex_lock(&store->lock);
		again = remake_dir_locked(store, key);
		g_mutex_unlock(&store->lock);
		if (again) {
			g_clear_error(&local);
			return write_whole(store, key, path, data, src_fd, len,
					   error);
		}
	}
	g_propagate_error(error, g_steal_pointer(&local));
	return FALSE;
}

gboolean cache_store_put_whole(CacheStore *store, const CacheKey *key,
			       const void *data, int src_fd, gsize len,
			       GError **error)
{
	g_autofree char *path = key_path(store, key, "");
	g_autofree char *part = key_path(store, key, ".part");
	g_autoptr(GError) local = NULL;
	gboolean ok;
	int mem_fd = -1;

	ok = whole_to_disk(store, key, path, data, src_fd, len, &local);
	if (!ok && no_space(local) && make_room(store, len, path)) {
		g_clear_error(&local);
		ok = whole_to_disk(store, key, path, data, src_fd, len, &local);
	}
	if (!ok && no_space(local) && len <= CACHE_STORE_MEMORY) {
		g_clear_error(&local);
		mem_fd = hold_in_memory(data, src_fd, len, path, &local);
		ok = mem_fd >= 0;
	}
	if (!ok) {
		g_propagate_error(error, g_steal_pointer(&local));
		return FALSE;
	}
	g_mutex_lock(&store->lock);
	/* Another fetch of it reached the disk meanwhile: that copy serves. */
	if (mem_fd >= 0 && g_file_test(path, G_FILE_TEST_EXISTS)) {
		close(mem_fd);
		mem_fd = -1;
	}
	drop_partial_locked(store, path, part);
	place_locked(store, entry_locked(store, path), mem_fd, len);
	note_disk_locked(store, mem_fd < 0);
	evict_locked(store, path);
	unlock_reporting(store);
	return TRUE;
}

/* The .part file of @p, open for writing. One removed behind the store's
 * back (a user freeing space) took its chunks with it: none is present any
 * more, lest a hole read as zeros; a removed directory is made again. */
static int open_part_locked(CacheStore *store, const CacheKey *key,
			    Partial *p, const char *part)
{
	int fd = open(part, O_WRONLY | O_CLOEXEC);

	if (fd >= 0 || errno != ENOENT)
		return fd;
	memset(p->present, 0, MAX(p->n_chunks, 1));
	p->n_present = 0;
	fd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT && remake_dir_locked(store, key))
		fd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	return fd;
}

/* Writes bytes [off, off+len) of a partial message where its chunks are
 * kept: @e's memory, or its .part file. */
static gboolean write_range_locked(CacheStore *store, const CacheKey *key,
				   Partial *p, const Entry *e,
				   const char *part, goffset off,
				   const void *data, int src_fd, gsize len,
				   GError **error)
{
	gboolean ok;
	int fd;

	if (e->mem_fd >= 0)
		return copy_in(e->mem_fd, off, data, src_fd, 0, len, part,
			       error);
	fd = open_part_locked(store, key, p, part);
	if (fd < 0)
		return set_errno_error(error, "open", part);
	ok = copy_in(fd, off, data, src_fd, 0, len, part, error);
	close(fd);
	return ok;
}

/* Moves the chunks of a partial message from its .part file to memory. */
static gboolean partial_to_memory_locked(CacheStore *store, const Partial *p,
					 Entry *e, const char *part,
					 GError **error)
{
	int fd = memfd_create("imapfs-message", MFD_CLOEXEC);
	int src = p->n_present ? open(part, O_RDONLY | O_CLOEXEC) : -1;
	gboolean ok = fd >= 0 || set_errno_error(error, "hold in memory", part);

	/* The chunks it has must come along, or they would read as zeros. */
	if (ok && p->n_present && src < 0)
		ok = set_errno_error(error, "open", part);
	for (guint c = 0; ok && src >= 0 && c < p->n_chunks; c++) {
		guint64 at = (guint64)c * CACHE_STORE_CHUNK;

		if (p->present[c])
			ok = copy_in(fd, at, NULL, src, at,
				     MIN(CACHE_STORE_CHUNK, p->size - at), part,
				     error);
	}
	if (src >= 0)
		close(src);
	if (!ok) {
		if (fd >= 0)
			close(fd);
		return FALSE;
	}
	g_unlink(part);
	place_locked(store, e, fd, e->bytes);
	return TRUE;
}

gboolean cache_store_put_range(CacheStore *store, const CacheKey *key,
			       guint64 size, goffset off, const void *data,
			       int src_fd, gsize len, GError **error)
{
	g_autofree char *part = key_path(store, key, ".part");
	g_autofree char *whole = key_path(store, key, "");
	g_autoptr(GError) local = NULL;
	gboolean complete = TRUE, ok, no_dir, tried_disk, room_made = FALSE;
	Partial *p;
	Entry *e;

	g_return_val_if_fail(off % CACHE_STORE_CHUNK == 0, FALSE);
	g_return_val_if_fail(len % CACHE_STORE_CHUNK == 0 || off + len == size,
			     FALSE);
	/* The size comes from the server: keep the chunk count in range,
	 * and never store bytes past the end. */
	if (off < 0 || size > (guint64)G_MAXUINT32 * CACHE_STORE_CHUNK ||
	    (guint64)off + len > size) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "cache: range %" G_GINT64_FORMAT "+%" G_GSIZE_FORMAT
			    " does not fit a message of %" G_GUINT64_FORMAT
			    " bytes",
			    (gint64)off, len, size);
		return FALSE;
	}
	/* Without its directory (no room to make it) the chunks go to
	 * memory below; @local keeps why. */
	no_dir = !ensure_dir(store, key, &local);
	if (no_dir && !no_space(local)) {
		g_propagate_error(error, g_steal_pointer(&local));
		return FALSE;
	}

again:
	g_mutex_lock(&store->lock);
	p = g_hash_table_lookup(store->partials, part);
	e = g_hash_table_lookup(store->entries, whole);
	/* A late range of a message that is complete already. */
	if (!p && ((e && e->mem_fd >= 0) ||
		   g_file_test(whole, G_FILE_TEST_EXISTS))) {
		g_mutex_unlock(&store->lock);
		return TRUE;
	}
	if (p && p->size != size) {
		drop_partial_locked(store, whole, part);
		p = NULL;
	}
	if (!p) {
		p = g_new0(Partial, 1);
		p->size = size;
		p->n_chunks =
			(size + CACHE_STORE_CHUNK - 1) / CACHE_STORE_CHUNK;
		p->present = g_malloc0(MAX(p->n_chunks, 1));
		/* Anything on disk from an earlier run is unknown: start over.
		 */
		g_unlink(part);
		g_hash_table_insert(store->partials, g_strdup(part), p);
	}
	e = entry_locked(store, whole);
	tried_disk = e->mem_fd < 0;
	/* Written under the lock so a concurrent size change cannot race. */
	ok = FALSE;
	if (!no_dir || !tried_disk) {
		g_clear_error(&local);
		ok = write_range_locked(store, key, p, e, part, off, data,
					src_fd, len, &local);
	}
	if (!ok && no_space(local) && tried_disk && !no_dir && !room_made &&
	    make_room_locked(store, len, whole)) {
		/* A dropped file frees its blocks once those told of it
		 * (after the lock is let go) let go of it too. */
		room_made = TRUE;
		g_clear_error(&local);
		unlock_reporting(store);
		goto again;
	}
	if (!ok && no_space(local) && tried_disk &&
	    size <= CACHE_STORE_MEMORY) {
		g_clear_error(&local);
		ok = partial_to_memory_locked(store, p, e, part, &local) &&
		     write_range_locked(store, key, p, e, part, off, data,
					src_fd, len, &local);
	}
	if (!ok) {
		unlock_reporting(store);
		g_propagate_error(error, g_steal_pointer(&local));
		return FALSE;
	}
	for (guint64 c = off / CACHE_STORE_CHUNK;
	     c * CACHE_STORE_CHUNK < (guint64)off + len && c < p->n_chunks;
	     c++) {
		if (!p->present[c]) {
			p->present[c] = 1;
			p->n_present++;
		}
	}
	place_locked(store, e, e->mem_fd,
		     MIN((guint64)p->n_present * CACHE_STORE_CHUNK, size));
	if (tried_disk)
		note_disk_locked(store, e->mem_fd < 0);
	if (p->n_present == p->n_chunks) {
		/* In memory, the partial's memfd is now the whole message. */
		if (e->mem_fd < 0)
			complete = g_rename(part, whole) == 0;
		g_hash_table_remove(store->partials, part);
	}
	evict_locked(store, whole);
	unlock_reporting(store);
	if (!complete)
		g_warning("cache: cannot complete %s: %s", whole,
			  g_strerror(errno));
	return TRUE;
}

void cache_store_move(CacheStore *store, const CacheKey *from,
		      const CacheKey *to)
{
	g_autofree char *src = key_path(store, from, "");
	g_autofree char *src_part = key_path(store, from, ".part");
	g_autofree char *dst = key_path(store, to, "");
	g_autofree char *dst_part = key_path(store, to, ".part");
	Entry *e, *moved;
	gboolean unchecked;

	if (strcmp(src, dst) == 0 || !ensure_dir(store, to, NULL))
		return;
	g_mutex_lock(&store->lock);
	e = g_hash_table_lookup(store->entries, src);
	/* An open file reads by the old name: that stays, as a link. */
	if (!e || e->mem_fd >= 0 || !e->bytes ||
	    g_hash_table_contains(store->partials, src_part) ||
	    (e->pins ? link(src, dst) : rename(src, dst)) < 0) {
		g_mutex_unlock(&store->lock);
		return;
	}
	unchecked = e->unchecked;
	drop_partial_locked(store, dst, dst_part);
	moved = entry_locked(store, dst);
	place_locked(store, moved, -1, e->bytes);
	moved->unchecked = unchecked;
	place_locked(store, e, -1, 0);
	if (e->pins) {
		e->moved_away = TRUE;
		/* An open file may still open it by that name: its size is
		 * still to be checked there too. */
		e->unchecked = unchecked;
	} else {
		remove_entry_locked(store, src);
	}
	unlock_reporting(store);
}

typedef struct {
	guint which; /* index in the renames */
	guint32 uid;
} Moving;

void cache_store_move_mailboxes(CacheStore *store,
				const CacheStoreRename *renames, guint n)
{
	g_autoptr(GHashTable) dirs =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_autoptr(GArray) moving = g_array_new(FALSE, FALSE, sizeof(Moving));
	g_autoptr(GString) dir = g_string_new(NULL);
	GHashTableIter iter;
	gpointer key;

	for (guint i = 0; i < n; i++) {
		const CacheKey dir_key = {renames[i].from,
					  renames[i].uidvalidity, 0};

		if (strcmp(renames[i].from, renames[i].to) != 0)
			g_hash_table_insert(dirs, key_dir(store, &dir_key),
					    GUINT_TO_POINTER(i + 1));
	}
	g_mutex_lock(&store->lock);
	g_hash_table_iter_init(&iter, store->entries);
	while (g_hash_table_iter_next(&iter, &key, NULL)) {
		const char *path = key;
		const char *name = strrchr(path, G_DIR_SEPARATOR);
		guint which = 0;
		guint64 uid;

		if (name) {
			g_string_truncate(dir, 0);
			g_string_append_len(dir, path, name - path);
			which = GPOINTER_TO_UINT(
				g_hash_table_lookup(dirs, dir->str));
		}
		if (which && g_ascii_string_to_unsigned(name + 1, 10, 1,
							G_MAXUINT32, &uid,
							NULL))
			g_array_append_val(moving,
					   ((Moving){which - 1, uid}));
	}
	g_mutex_unlock(&store->lock);
	for (guint i = 0; i < moving->len; i++) {
		const Moving *m = &g_array_index(moving, Moving, i);
		const CacheStoreRename *r = &renames[m->which];

		cache_store_move(store,
				 &(CacheKey){r->from, r->uidvalidity, m->uid},
				 &(CacheKey){r->to, r->uidvalidity, m->uid});
	}
}

void cache_store_forget(CacheStore *store, const CacheKey *key)
{
	g_autofree char *part = key_path(store, key, ".part");
	g_autofree char *path = key_path(store, key, "");
	Entry *e;

	g_mutex_lock(&store->lock);
	drop_partial_locked(store, path, part);
	g_unlink(path);
	e = g_hash_table_lookup(store->entries, path);
	if (e) {
		place_locked(store, e, -1, 0);
		if (!e->pins)
			remove_entry_locked(store, path);
	}
	unlock_reporting(store);
}

/* cache/store.c — the message store.
 *
 * Layout: DIR/<hash of the mailbox name>/<uidvalidity>/<uid>[.part]. The
 * mailbox is hashed (SHA-256, 16 hex digits) so any server name is a safe
 * file name. A complete file appears only by linkat() or rename(), so if
 * imapfs dies it leaves either nothing or the whole message (nothing is
 * fsync'd: a cache is not worth that, but a power loss may leave files
 * short). Partial files are sparse; which chunks are real is known only in
 * memory, so after a restart a partial file is started again from scratch
 * (the first write truncates it).
 *
 * Whole messages are written to an unnamed file (O_TMPFILE) and linked
 * into place, one directory change per message. Those that arrived spooled
 * (an O_TMPFILE from the parser) are linked without copying when the spool
 * shares the filesystem; otherwise copied with copy_file_range().
 */
#include "cache/store.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
	guint64 size;
	guint n_chunks;
	guint n_present;
	guint8 *present; /* one byte per chunk */
} Partial;

/* What the budget knows of one message file. */
typedef struct {
	guint64 bytes; /* on disk (complete) or written (partial) */
	guint64 used;  /* tick of the last use */
	guint pins;
} Entry;

struct CacheStore {
	char *dir;
	guint64 budget;
	GMutex lock;	      /* guards all below; a leaf lock */
	GHashTable *partials; /* path of the .part file -> Partial * */
	GHashTable *entries;  /* path without ".part" -> Entry * */
	guint64 usage;
	guint64 tick;
	GHashTable *dirs; /* directories known to exist */
};

static void partial_free(Partial *p)
{
	g_free(p->present);
	g_free(p);
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
			Entry *e = g_new0(Entry, 1);

			e->bytes = st.st_size;
			e->used = st.st_atime; /* older runs' order, roughly */
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

	if (g_mkdir_with_parents(dir, 0700) < 0) {
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
	store->entries =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
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

static Entry *entry_locked(CacheStore *store, const char *path)
{
	Entry *e = g_hash_table_lookup(store->entries, path);

	if (!e) {
		e = g_new0(Entry, 1);
		g_hash_table_insert(store->entries, g_strdup(path), e);
	}
	e->used = ++store->tick;
	return e;
}

static void account_locked(CacheStore *store, const char *path, guint64 bytes)
{
	Entry *e = entry_locked(store, path);

	store->usage += bytes - e->bytes;
	e->bytes = bytes;
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

/* Drops least recently used, unpinned messages until usage is at most 90 %
 * of the budget. */
static void evict_locked(CacheStore *store)
{
	g_autoptr(GArray) all = NULL;
	guint64 target;
	GHashTableIter iter;
	gpointer key, value;

	if (!store->budget || store->usage <= store->budget)
		return;
	target = store->budget / 10 * 9;
	all = g_array_new(FALSE, FALSE, sizeof(Victim));
	g_hash_table_iter_init(&iter, store->entries);
	while (g_hash_table_iter_next(&iter, &key, &value)) {
		Victim v = {key, value};

		if (!v.entry->pins)
			g_array_append_val(all, v);
	}
	g_array_sort(all, compare_used);
	for (guint i = 0; i < all->len && store->usage > target; i++) {
		Victim *v = &g_array_index(all, Victim, i);
		g_autofree char *path = g_strdup(v->path);
		g_autofree char *part = g_strconcat(path, ".part", NULL);

		g_unlink(path);
		g_unlink(part);
		g_hash_table_remove(store->partials, part);
		store->usage -= v->entry->bytes;
		g_hash_table_remove(store->entries, path);
	}
}

void cache_store_free(CacheStore *store)
{
	if (!store)
		return;
	g_hash_table_unref(store->partials);
	g_hash_table_unref(store->entries);
	g_hash_table_unref(store->dirs);
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

	g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err),
		    "cache: %s %s: %s%s", what, path, g_strerror(err),
		    err == ENOSPC || err == EDQUOT
			    ? " (free space in the cache directory, or lower "
			      "-o cache_size)"
			    : "");
	return FALSE;
}

int cache_store_open_complete(CacheStore *store, const CacheKey *key)
{
	g_autofree char *path = key_path(store, key, "");
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		g_mutex_lock(&store->lock);
		entry_locked(store, path);
		g_mutex_unlock(&store->lock);
	}
	return fd;
}

void cache_store_pin(CacheStore *store, const CacheKey *key)
{
	g_autofree char *path = key_path(store, key, "");

	g_mutex_lock(&store->lock);
	entry_locked(store, path)->pins++;
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
	if (e && !e->pins && !e->bytes)
		g_hash_table_remove(store->entries, path);
	g_mutex_unlock(&store->lock);
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

		fd = open(path, O_RDONLY | O_CLOEXEC);
		entry_locked(store, whole);
	}
	g_mutex_unlock(&store->lock);
	return fd;
}

/* Copies @len bytes to @dst_fd at @dst_off from @data or @src_fd. */
static gboolean copy_in(int dst_fd, goffset dst_off, const void *data,
			int src_fd, gsize len, const char *path, GError **error)
{
	gsize done = 0;

	while (done < len) {
		ssize_t n;

		if (data) {
			n = pwrite(dst_fd, (const char *)data + done,
				   len - done, dst_off + done);
		} else {
			loff_t in = done, out = dst_off + done;

			n = copy_file_range(src_fd, &in, dst_fd, &out,
					    len - done, 0);
			if (n < 0 && (errno == EXDEV || errno == ENOSYS ||
				      errno == EINVAL)) {
				char buf[65536];

				n = pread(src_fd, buf,
					  MIN(sizeof(buf), len - done), done);
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

static void drop_partial_locked(CacheStore *store, const char *part_path)
{
	if (g_hash_table_remove(store->partials, part_path))
		g_unlink(part_path);
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
		gboolean ok = copy_in(fd, 0, data, src_fd, len, path, error);
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
	if (!copy_in(fd, 0, data, src_fd, len, tmp, error)) {
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

gboolean cache_store_put_whole(CacheStore *store, const CacheKey *key,
			       const void *data, int src_fd, gsize len,
			       GError **error)
{
	g_autofree char *path = key_path(store, key, "");
	g_autofree char *part = key_path(store, key, ".part");
	struct stat st;
	gboolean linked;

	if (!ensure_dir(store, key, error))
		return FALSE;
	/* A spool file that holds exactly the message is named without a
	 * copy when it shares the filesystem. */
	linked = !data && fstat(src_fd, &st) == 0 && (gsize)st.st_size == len &&
		 link_unnamed(src_fd, path);
	if (!linked && !write_whole(store, key, path, data, src_fd, len, error))
		return FALSE;
	g_mutex_lock(&store->lock);
	drop_partial_locked(store, part);
	account_locked(store, path, len);
	evict_locked(store);
	g_mutex_unlock(&store->lock);
	return TRUE;
}

gboolean cache_store_put_range(CacheStore *store, const CacheKey *key,
			       guint64 size, goffset off, const void *data,
			       int src_fd, gsize len, GError **error)
{
	g_autofree char *part = key_path(store, key, ".part");
	g_autofree char *whole = key_path(store, key, "");
	g_autofree char *path = NULL;
	gboolean complete = FALSE;
	Partial *p;
	int fd;

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
	if (!ensure_dir(store, key, error))
		return FALSE;

	g_mutex_lock(&store->lock);
	p = g_hash_table_lookup(store->partials, part);
	if (!p) {
		/* A late range of a message that is complete already. */
		path = key_path(store, key, "");
		if (g_file_test(path, G_FILE_TEST_EXISTS)) {
			g_mutex_unlock(&store->lock);
			return TRUE;
		}
		g_clear_pointer(&path, g_free);
	}
	if (p && p->size != size) {
		drop_partial_locked(store, part);
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
	fd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		g_mutex_unlock(&store->lock);
		return set_errno_error(error, "open", part);
	}
	/* Written under the lock so a concurrent size change cannot race. */
	if (!copy_in(fd, off, data, src_fd, len, part, error)) {
		close(fd);
		g_mutex_unlock(&store->lock);
		return FALSE;
	}
	close(fd);
	for (guint64 c = off / CACHE_STORE_CHUNK;
	     c * CACHE_STORE_CHUNK < (guint64)off + len && c < p->n_chunks;
	     c++) {
		if (!p->present[c]) {
			p->present[c] = 1;
			p->n_present++;
		}
	}
	account_locked(store, whole,
		       MIN((guint64)p->n_present * CACHE_STORE_CHUNK, size));
	if (p->n_present == p->n_chunks) {
		path = key_path(store, key, "");
		complete = g_rename(part, path) == 0;
		g_hash_table_remove(store->partials, part);
	}
	evict_locked(store);
	g_mutex_unlock(&store->lock);
	if (path && !complete)
		g_warning("cache: cannot complete %s: %s", path,
			  g_strerror(errno));
	return TRUE;
}

void cache_store_forget(CacheStore *store, const CacheKey *key)
{
	g_autofree char *part = key_path(store, key, ".part");
	g_autofree char *path = key_path(store, key, "");

	Entry *e;

	g_mutex_lock(&store->lock);
	drop_partial_locked(store, part);
	g_unlink(path);
	e = g_hash_table_lookup(store->entries, path);
	if (e) {
		store->usage -= e->bytes;
		e->bytes = 0;
		if (!e->pins)
			g_hash_table_remove(store->entries, path);
	}
	g_mutex_unlock(&store->lock);
}

/* cache/store.c — the message store.
 *
 * Layout: DIR/<hash of the mailbox name>/<uidvalidity>/<uid>[.part]. The
 * mailbox is hashed (SHA-256, 16 hex digits) so any server name is a safe
 * file name. A complete file appears only by rename(), so a crash leaves
 * either nothing or the whole message. Partial files are sparse; which
 * chunks are real is known only in memory, so after a restart a partial
 * file is started again from scratch (the first write truncates it).
 *
 * Whole messages that arrived spooled (an O_TMPFILE from the parser) are
 * linked into place without copying when the spool shares the filesystem;
 * otherwise copied with copy_file_range().
 */
#include "cache/store.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
	guint64 size;
	guint n_chunks;
	guint n_present;
	guint8 *present; /* one byte per chunk */
} Partial;

struct CacheStore {
	char *dir;
	GMutex lock;		/* guards partials; a leaf lock */
	GHashTable *partials;	/* path of the .part file -> Partial * */
};

static void partial_free(Partial *p)
{
	g_free(p->present);
	g_free(p);
}

CacheStore *cache_store_new(const char *dir, GError **error)
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
	g_mutex_init(&store->lock);
	store->partials = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
						(GDestroyNotify)partial_free);
	return store;
}

void cache_store_free(CacheStore *store)
{
	if (!store)
		return;
	g_hash_table_unref(store->partials);
	g_mutex_clear(&store->lock);
	g_free(store->dir);
	g_free(store);
}

static char *key_dir(CacheStore *store, const CacheKey *key)
{
	g_autofree char *hash = g_compute_checksum_for_string(
		G_CHECKSUM_SHA256, key->mailbox, -1);
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
		    "cache: %s %s: %s", what, path, g_strerror(err));
	return FALSE;
}

int cache_store_open_complete(CacheStore *store, const CacheKey *key)
{
	g_autofree char *path = key_path(store, key, "");

	return open(path, O_RDONLY | O_CLOEXEC);
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

int cache_store_open_range(CacheStore *store, const CacheKey *key,
			   guint64 size, goffset off, gsize len)
{
	g_autofree char *path = key_path(store, key, ".part");
	Partial *p;
	int fd = -1;

	g_mutex_lock(&store->lock);
	p = g_hash_table_lookup(store->partials, path);
	if (p && p->size == size && range_present(p, off, len))
		fd = open(path, O_RDONLY | O_CLOEXEC);
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
	g_autofree char *dir = key_dir(store, key);

	if (g_mkdir_with_parents(dir, 0700) < 0)
		return set_errno_error(error, "mkdir", dir);
	return TRUE;
}

static void drop_partial_locked(CacheStore *store, const char *part_path)
{
	if (g_hash_table_remove(store->partials, part_path))
		g_unlink(part_path);
}

gboolean cache_store_put_whole(CacheStore *store, const CacheKey *key,
			       const void *data, int src_fd, gsize len,
			       GError **error)
{
	g_autofree char *path = key_path(store, key, "");
	g_autofree char *part = key_path(store, key, ".part");
	g_autofree char *tmp = NULL;
	gboolean linked = FALSE;
	int fd;

	if (!ensure_dir(store, key, error))
		return FALSE;
	tmp = g_strdup_printf("%s.tmp%08x", path, g_random_int());
	if (!data) {
		/* The spool file is unlinked; give it a name without copying. */
		char proc[64];

		g_snprintf(proc, sizeof(proc), "/proc/self/fd/%d", src_fd);
		linked = linkat(AT_FDCWD, proc, AT_FDCWD, tmp,
				AT_SYMLINK_FOLLOW) == 0;
	}
	if (!linked) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return set_errno_error(error, "create", tmp);
		if (!copy_in(fd, 0, data, src_fd, len, tmp, error)) {
			close(fd);
			g_unlink(tmp);
			return FALSE;
		}
		close(fd);
	}
	if (g_rename(tmp, path) < 0) {
		set_errno_error(error, "rename", tmp);
		g_unlink(tmp);
		return FALSE;
	}
	g_mutex_lock(&store->lock);
	drop_partial_locked(store, part);
	g_mutex_unlock(&store->lock);
	return TRUE;
}

gboolean cache_store_put_range(CacheStore *store, const CacheKey *key,
			       guint64 size, goffset off, const void *data,
			       int src_fd, gsize len, GError **error)
{
	g_autofree char *part = key_path(store, key, ".part");
	g_autofree char *path = NULL;
	gboolean complete = FALSE;
	Partial *p;
	int fd;

	g_return_val_if_fail(off % CACHE_STORE_CHUNK == 0, FALSE);
	g_return_val_if_fail(len % CACHE_STORE_CHUNK == 0 ||
				     off + len == size, FALSE);
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
		p->n_chunks = (size + CACHE_STORE_CHUNK - 1) / CACHE_STORE_CHUNK;
		p->present = g_malloc0(MAX(p->n_chunks, 1));
		/* Anything on disk from an earlier run is unknown: start over. */
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
	if (p->n_present == p->n_chunks) {
		path = key_path(store, key, "");
		complete = g_rename(part, path) == 0;
		g_hash_table_remove(store->partials, part);
	}
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

	g_mutex_lock(&store->lock);
	drop_partial_locked(store, part);
	g_unlink(path);
	g_mutex_unlock(&store->lock);
}

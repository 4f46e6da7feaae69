/* Unit tests for cache/store.c: whole and ranged puts, keys that must not
 * meet, the byte budget (LRU, pins), what a restart finds, a full disk, and
 * sizes and offsets a careless caller or a hostile server could hand in.
 *
 * Each test works in a fresh directory from g_dir_make_tmp() and removes
 * it at the end; the store itself lives in "store" inside it, so a file
 * escaping the store shows up as a second entry beside "store".
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "cache/store.h"

#define CHUNK CACHE_STORE_CHUNK
#define KB100 (100 * 1024)

typedef struct {
	char *top; /* from g_dir_make_tmp() */
	char *dir; /* top/store */
} Tmp;

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

static void tmp_init(Tmp *t)
{
	g_autoptr(GError) error = NULL;

	t->top = g_dir_make_tmp("imapfs-store-XXXXXX", &error);
	g_assert_no_error(error);
	t->dir = g_build_filename(t->top, "store", NULL);
}

static void tmp_clear(Tmp *t)
{
	g_assert_cmpint(nftw(t->top, rm_one, 16, FTW_DEPTH | FTW_PHYS), ==, 0);
	g_free(t->dir);
	g_free(t->top);
}

static CacheStore *store_new(const Tmp *t, guint64 budget)
{
	g_autoptr(GError) error = NULL;
	CacheStore *store = cache_store_new(t->dir, budget, &error);

	g_assert_no_error(error);
	g_assert_nonnull(store);
	return store;
}

/* Bytes that differ with @seed and with the position, so a chunk in the
 * wrong place or of the wrong message is noticed. */
static guint8 *make_bytes(gsize len, guint32 seed)
{
	guint8 *b = g_malloc(MAX(len, 1));
	guint32 x = seed * 2654435761u + 12345;

	for (gsize i = 0; i < len; i++) {
		x = x * 1103515245u + 12345;
		b[i] = x >> 16;
	}
	return b;
}

/* Everything @fd holds from offset 0; closes @fd. */
static GByteArray *read_all(int fd)
{
	GByteArray *out = g_byte_array_new();
	guint8 buf[65536];

	g_assert_cmpint(fd, >=, 0);
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), out->len);

		if (n < 0 && errno == EINTR)
			continue;
		g_assert_cmpint(n, >=, 0);
		if (n == 0)
			break;
		g_byte_array_append(out, buf, n);
	}
	close(fd);
	return out;
}

static void assert_complete(CacheStore *store, const CacheKey *key,
			    const guint8 *data, gsize len)
{
	int fd = cache_store_open_complete(store, key, len);
	g_autoptr(GByteArray) got = NULL;

	g_assert_cmpint(fd, >=, 0);
	got = read_all(fd);
	g_assert_cmpmem(got->data, got->len, data, len);
}

static void assert_absent(CacheStore *store, const CacheKey *key)
{
	int fd = cache_store_open_complete(store, key, 0);

	if (fd >= 0)
		close(fd);
	g_assert_cmpint(fd, <, 0);
}

/* Whether open_range gives an fd for the range; if so, that the bytes
 * there are @data's. */
static gboolean range_ok(CacheStore *store, const CacheKey *key, guint64 size,
			 goffset off, gsize len, const guint8 *data)
{
	int fd = cache_store_open_range(store, key, size, off, len);
	g_autofree guint8 *buf = NULL;
	gsize want;
	gsize got = 0;

	if (fd < 0)
		return FALSE;
	want = MIN(len, size - off);
	buf = g_malloc(MAX(want, 1));
	while (got < want) {
		ssize_t n = pread(fd, buf + got, want - got, off + got);

		if (n < 0 && errno == EINTR)
			continue;
		g_assert_cmpint(n, >, 0);
		got += n;
	}
	close(fd);
	g_assert_cmpmem(buf, want, data + off, want);
	return TRUE;
}

static void put_whole(CacheStore *store, const CacheKey *key,
		      const guint8 *data, gsize len)
{
	g_autoptr(GError) error = NULL;

	g_assert_true(cache_store_put_whole(store, key, data, -1, len, &error));
	g_assert_no_error(error);
}

/* Puts chunk @c (or, if @n_chunks > 1, that many) of @data. */
static void put_chunks(CacheStore *store, const CacheKey *key,
		       const guint8 *data, guint64 size, guint c,
		       guint n_chunks)
{
	g_autoptr(GError) error = NULL;
	guint64 off = (guint64)c * CHUNK;
	gsize len = MIN((guint64)n_chunks * CHUNK, size - off);

	g_assert_true(cache_store_put_range(store, key, size, off, data + off,
					    -1, len, &error));
	g_assert_no_error(error);
}

typedef struct {
	guint files;
	guint parts;	 /* names ending ".part" */
	guint tmps;	 /* names containing ".tmp" */
	guint bad_depth; /* files not at store/<hash>/<uidvalidity>/<name> */
} Census;

static void census_walk(Census *c, const char *path, guint level)
{
	g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
	const char *name;

	g_assert_nonnull(dir);
	while ((name = g_dir_read_name(dir))) {
		g_autofree char *child = g_build_filename(path, name, NULL);
		struct stat st;

		g_assert_cmpint(lstat(child, &st), ==, 0);
		if (S_ISDIR(st.st_mode)) {
			census_walk(c, child, level + 1);
			continue;
		}
		c->files++;
		if (g_str_has_suffix(name, ".part"))
			c->parts++;
		if (strstr(name, ".tmp"))
			c->tmps++;
		if (level != 2 || !S_ISREG(st.st_mode))
			c->bad_depth++;
	}
}

/* What files the store directory holds. */
static Census census(const Tmp *t)
{
	Census c = {0};

	census_walk(&c, t->dir, 0);
	return c;
}

/* The path of the only regular file under the store whose name is @name. */
static char *find_file(const Tmp *t, const char *name)
{
	g_autoptr(GDir) d1 = g_dir_open(t->dir, 0, NULL);
	char *found = NULL;
	const char *n1;

	while (d1 && (n1 = g_dir_read_name(d1))) {
		g_autofree char *p1 = g_build_filename(t->dir, n1, NULL);
		g_autoptr(GDir) d2 = g_dir_open(p1, 0, NULL);
		const char *n2;

		while (d2 && (n2 = g_dir_read_name(d2))) {
			g_autofree char *p3 =
				g_build_filename(p1, n2, name, NULL);

			if (g_file_test(p3, G_FILE_TEST_IS_REGULAR)) {
				g_assert_null(found);
				found = g_steal_pointer(&p3);
			}
		}
	}
	return found;
}

/* ---- whole messages ---------------------------------------------------- */

static void test_whole_memory(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey key = {"INBOX", 1000, 7};
	CacheKey other = {"INBOX", 1000, 8};
	g_autofree guint8 *data = make_bytes(300000, 1);
	g_autofree guint8 *again = make_bytes(1000, 2);
	struct stat st;

	tmp_init(&t);
	store = store_new(&t, 0);
	g_assert_cmpint(stat(t.dir, &st), ==, 0);
	g_assert_cmpint(st.st_mode & 0777, ==, 0700);
	g_assert_cmpuint(cache_store_usage(store), ==, 0);
	assert_absent(store, &key);

	put_whole(store, &key, data, 300000);
	assert_complete(store, &key, data, 300000);
	assert_absent(store, &other);
	g_assert_cmpuint(cache_store_usage(store), ==, 300000);

	/* Storing again replaces the bytes and is counted once. */
	put_whole(store, &key, again, 1000);
	assert_complete(store, &key, again, 1000);
	g_assert_cmpuint(cache_store_usage(store), ==, 1000);

	/* An empty message is a message. */
	put_whole(store, &other, (const guint8 *)"", 0);
	assert_complete(store, &other, (const guint8 *)"", 0);
	g_assert_cmpuint(cache_store_usage(store), ==, 1000);

	g_assert_cmpuint(census(&t).files, ==, 2);
	g_assert_cmpuint(census(&t).tmps, ==, 0);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* An fd whose file holds @data and is positioned at its end (so a store
 * that read() instead of pread() from 0 would get nothing). @how: 0 an
 * O_TMPFILE beside the store (same filesystem: the store may link it),
 * 1 a named file unlinked at once. */
static int spool_fd(const Tmp *t, int how, const guint8 *data, gsize len)
{
	int fd;
	gsize done = 0;

	if (how == 0) {
		fd = open(t->top, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR))
			return -1;
	} else {
		g_autofree char *name = g_build_filename(t->top, "spool", NULL);

		fd = open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
		g_assert_cmpint(unlink(name), ==, 0);
	}
	g_assert_cmpint(fd, >=, 0);
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);

		g_assert_cmpint(n, >, 0);
		done += n;
	}
	return fd;
}

static void test_whole_fd(void)
{
	for (int how = 0; how < 2; how++) {
		Tmp t;
		g_autoptr(CacheStore) store = NULL;
		g_autoptr(GError) error = NULL;
		CacheKey key = {"INBOX", 1, 42};
		gsize len = 3 * CHUNK + 17;
		g_autofree guint8 *data = make_bytes(len, 3 + how);
		int fd;

		tmp_init(&t);
		store = store_new(&t, 0);
		fd = spool_fd(&t, how, data, len);
		if (fd < 0) {
			g_test_message("no O_TMPFILE here; skipped");
			g_clear_pointer(&store, cache_store_free);
			tmp_clear(&t);
			continue;
		}
		g_assert_true(cache_store_put_whole(store, &key, NULL, fd, len,
						    &error));
		g_assert_no_error(error);
		close(fd);
		assert_complete(store, &key, data, len);
		g_assert_cmpuint(cache_store_usage(store), ==, len);
		g_assert_cmpuint(census(&t).files, ==, 1);
		g_assert_cmpuint(census(&t).bad_depth, ==, 0);
		g_clear_pointer(&store, cache_store_free);
		tmp_clear(&t);
	}
}

/* "@len bytes from @src_fd": a spool file that holds more than @len (say a
 * FETCH that said less than it sent) must not end up whole in the store,
 * and later writes to the caller's fd must not reach the stored copy. */
static void test_whole_fd_exact_len(void)
{
	for (int how = 0; how < 2; how++) {
		Tmp t;
		g_autoptr(CacheStore) store = NULL;
		g_autoptr(GError) error = NULL;
		CacheKey key = {"INBOX", 1, 43};
		gsize len = 5000;
		g_autofree guint8 *data = make_bytes(len + 999, 5);
		g_autofree guint8 *junk = make_bytes(len, 6);
		int fd;

		tmp_init(&t);
		store = store_new(&t, 0);
		fd = spool_fd(&t, how, data, len + 999);
		if (fd < 0) {
			g_clear_pointer(&store, cache_store_free);
			tmp_clear(&t);
			continue;
		}
		g_assert_true(cache_store_put_whole(store, &key, NULL, fd, len,
						    &error));
		g_assert_no_error(error);
		g_assert_cmpint(pwrite(fd, junk, len, 0), ==, (ssize_t)len);
		close(fd);
		assert_complete(store, &key, data, len);
		g_assert_cmpuint(cache_store_usage(store), ==, len);
		g_clear_pointer(&store, cache_store_free);
		tmp_clear(&t);
	}
}

/* A spool fd with fewer bytes than @len must fail, not store a short
 * message under a full-size count. */
static void test_whole_fd_short(void)
{
	for (int how = 0; how < 2; how++) {
		Tmp t;
		g_autoptr(CacheStore) store = NULL;
		g_autoptr(GError) error = NULL;
		CacheKey key = {"INBOX", 1, 44};
		g_autofree guint8 *data = make_bytes(1000, 7);
		int fd;

		tmp_init(&t);
		store = store_new(&t, 0);
		fd = spool_fd(&t, how, data, 1000);
		if (fd < 0) {
			g_clear_pointer(&store, cache_store_free);
			tmp_clear(&t);
			continue;
		}
		g_assert_false(cache_store_put_whole(store, &key, NULL, fd,
						     2000, &error));
		g_assert_nonnull(error);
		close(fd);
		assert_absent(store, &key);
		g_assert_cmpuint(cache_store_usage(store), ==, 0);
		g_assert_cmpuint(census(&t).files, ==, 0);
		g_clear_pointer(&store, cache_store_free);
		tmp_clear(&t);
	}
}

/* ---- keys -------------------------------------------------------------- */

static void test_keys_no_crosstalk(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	const CacheKey keys[] = {
		{"INBOX", 100, 5},
		{"INBOX", 101, 5},
		{"Archive", 100, 5},
		{"inbox", 100, 5},
		{"INBOX", 100, 6},
		{"INBOX.Sub", 100, 5},
		{"INBOX", 0, 5},
		{"INBOX", G_MAXUINT32, 5},
		{"INBOX", 100, G_MAXUINT32},
	};
	guint8 *data[G_N_ELEMENTS(keys)];
	guint64 sum = 0;

	tmp_init(&t);
	store = store_new(&t, 0);
	for (guint i = 0; i < G_N_ELEMENTS(keys); i++) {
		data[i] = make_bytes(1000 + i, 10 + i);
		put_whole(store, &keys[i], data[i], 1000 + i);
		sum += 1000 + i;
	}
	for (guint i = 0; i < G_N_ELEMENTS(keys); i++)
		assert_complete(store, &keys[i], data[i], 1000 + i);
	g_assert_cmpuint(cache_store_usage(store), ==, sum);
	g_assert_cmpuint(census(&t).files, ==, G_N_ELEMENTS(keys));

	/* Forgetting one (a new UIDVALIDITY, an expunge) leaves the rest. */
	cache_store_forget(store, &keys[0]);
	assert_absent(store, &keys[0]);
	for (guint i = 1; i < G_N_ELEMENTS(keys); i++)
		assert_complete(store, &keys[i], data[i], 1000 + i);
	g_assert_cmpuint(cache_store_usage(store), ==, sum - 1000);

	/* A range of one key is not visible under another. */
	{
		CacheKey a = {"X", 9, 1}, b = {"X", 10, 1};
		g_autofree guint8 *d = make_bytes(2 * CHUNK, 30);

		put_chunks(store, &a, d, 2 * CHUNK, 0, 1);
		g_assert_true(range_ok(store, &a, 2 * CHUNK, 0, 10, d));
		g_assert_false(range_ok(store, &b, 2 * CHUNK, 0, 10, d));
	}
	for (guint i = 0; i < G_N_ELEMENTS(keys); i++)
		g_free(data[i]);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

static void test_keys_odd_mailbox_names(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	g_autofree char *longname = g_strnfill(5000, 'a');
	const char *names[] = {
		"",
		"/",
		"..",
		".",
		"../..",
		"../../../../tmp/x",
		"/etc/passwd",
		"a/b/../c",
		"a/b",
		"a\\b",
		"~",
		"*?[",
		"\xff\xfe\x01\x7f",
		"\t\n\r ",
		"%2F..%2F",
		"INBOX/../..",
		longname,
	};
	guint8 *data[G_N_ELEMENTS(names)];
	g_autoptr(GDir) top = NULL;
	const char *entry;
	guint n_top = 0;
	Census c;

	tmp_init(&t);
	store = store_new(&t, 0);
	for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
		CacheKey key = {names[i], 1, 1};

		data[i] = make_bytes(100 + i, 40 + i);
		put_whole(store, &key, data[i], 100 + i);
	}
	for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
		CacheKey key = {names[i], 1, 1};

		assert_complete(store, &key, data[i], 100 + i);
	}
	/* Nothing beside the store directory, every file three levels
	 * down in it, one per name. */
	top = g_dir_open(t.top, 0, NULL);
	g_assert_nonnull(top);
	while ((entry = g_dir_read_name(top))) {
		g_assert_cmpstr(entry, ==, "store");
		n_top++;
	}
	g_assert_cmpuint(n_top, ==, 1);
	c = census(&t);
	g_assert_cmpuint(c.files, ==, G_N_ELEMENTS(names));
	g_assert_cmpuint(c.bad_depth, ==, 0);
	for (guint i = 0; i < G_N_ELEMENTS(names); i++)
		g_free(data[i]);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* ---- ranges ------------------------------------------------------------ */

static void test_range_any_order(void)
{
	/* Chunk orders to try over a 4-chunk message whose last chunk is
	 * short. */
	static const guint orders[][4] = {
		{0, 1, 2, 3},
		{3, 2, 1, 0},
		{2, 0, 3, 1},
		{1, 3, 0, 2},
	};

	for (guint o = 0; o < G_N_ELEMENTS(orders); o++) {
		Tmp t;
		g_autoptr(CacheStore) store = NULL;
		CacheKey key = {"INBOX", 77, 1234};
		guint64 size = 3 * CHUNK + 1000;
		g_autofree guint8 *data = make_bytes(size, 50 + o);
		gboolean have[4] = {FALSE};

		tmp_init(&t);
		store = store_new(&t, 0);
		g_assert_false(range_ok(store, &key, size, 0, 1, data));
		for (guint i = 0; i < 4; i++) {
			guint c = orders[o][i];

			assert_absent(store, &key);
			put_chunks(store, &key, data, size, c, 1);
			have[c] = TRUE;
			/* One range per chunk, and ranges over two. */
			for (guint k = 0; k < 4; k++) {
				guint64 off = (guint64)k * CHUNK + 10;

				if (i == 3)
					break; /* no partial any more */
				g_assert_cmpint(range_ok(store, &key, size, off,
							 100, data),
						==, have[k]);
				if (k == 3)
					continue;
				g_assert_cmpint(range_ok(store, &key, size,
							 off + CHUNK - 20, 20,
							 data),
						==, have[k] && have[k + 1]);
			}
			if (i < 3) {
				/* The range of a message of another size
				 * is not this one. */
				g_assert_false(range_ok(store, &key, size + 1,
							0, 1, data));
				g_assert_cmpuint(census(&t).parts, ==, 1);
			}
		}
		/* The last chunk made it whole. */
		assert_complete(store, &key, data, size);
		g_assert_cmpuint(census(&t).parts, ==, 0);
		g_assert_cmpuint(census(&t).files, ==, 1);
		g_assert_cmpuint(cache_store_usage(store), ==, size);
		g_clear_pointer(&store, cache_store_free);
		tmp_clear(&t);
	}
}

/* Several chunks in one put; ranges that end exactly on a boundary; a
 * range reaching past the end of the message. */
static void test_range_multi_chunk(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey key = {"INBOX", 77, 99};
	guint64 size = 5 * CHUNK;
	g_autofree guint8 *data = make_bytes(size, 60);

	tmp_init(&t);
	store = store_new(&t, 0);
	put_chunks(store, &key, data, size, 1, 2);
	g_assert_true(range_ok(store, &key, size, CHUNK, 2 * CHUNK, data));
	g_assert_false(range_ok(store, &key, size, CHUNK, 2 * CHUNK + 1, data));
	g_assert_false(range_ok(store, &key, size, CHUNK - 1, 2, data));
	g_assert_false(range_ok(store, &key, size, 0, 1, data));
	put_chunks(store, &key, data, size, 3, 2);
	g_assert_true(range_ok(store, &key, size, CHUNK, 4 * CHUNK, data));
	g_assert_true(range_ok(store, &key, size, 4 * CHUNK, 10 * CHUNK, data));
	assert_absent(store, &key);
	g_assert_cmpuint(cache_store_usage(store), ==, 4 * CHUNK);
	put_chunks(store, &key, data, size, 0, 1);
	assert_complete(store, &key, data, size);
	g_assert_cmpuint(cache_store_usage(store), ==, size);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* Messages of one chunk or less: one put completes them. */
static void test_range_small(void)
{
	static const gsize sizes[] = {0, 1, 1000, CHUNK - 1, CHUNK, CHUNK + 1};
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	guint64 sum = 0;

	tmp_init(&t);
	store = store_new(&t, 0);
	for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
		CacheKey key = {"Small", 3, i + 1};
		g_autofree guint8 *data = make_bytes(sizes[i], 70 + i);

		put_chunks(store, &key, data, sizes[i], 0, 1);
		if (sizes[i] > CHUNK) {
			assert_absent(store, &key);
			put_chunks(store, &key, data, sizes[i], 1, 1);
		}
		assert_complete(store, &key, data, sizes[i]);
		sum += sizes[i];
	}
	g_assert_cmpuint(census(&t).parts, ==, 0);
	g_assert_cmpuint(cache_store_usage(store), ==, sum);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* A different size means the message is not what we thought: what was
 * stored goes. */
static void test_range_size_change(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey key = {"INBOX", 5, 5};
	guint64 size_a = 3 * CHUNK, size_b = CHUNK + 5;
	g_autofree guint8 *a = make_bytes(size_a, 80);
	g_autofree guint8 *b = make_bytes(size_b, 81);

	tmp_init(&t);
	store = store_new(&t, 0);
	put_chunks(store, &key, a, size_a, 0, 1);
	put_chunks(store, &key, a, size_a, 2, 1);
	g_assert_true(range_ok(store, &key, size_a, 0, 10, a));
	g_assert_cmpuint(cache_store_usage(store), ==, 2 * CHUNK);

	put_chunks(store, &key, b, size_b, 1, 1);
	g_assert_false(range_ok(store, &key, size_a, 0, 10, a));
	g_assert_false(range_ok(store, &key, size_b, 0, 10, b));
	g_assert_true(range_ok(store, &key, size_b, CHUNK, 5, b));
	assert_absent(store, &key);
	/* The old chunks are no longer counted. (Exactly 5 would be right;
	 * a present short last chunk may be counted as a whole one.) */
	g_assert_cmpuint(cache_store_usage(store), >=, 5);
	g_assert_cmpuint(cache_store_usage(store), <=, CHUNK);

	/* Chunk 0 of the new size completes it, with none of the old
	 * bytes and none past its end. */
	put_chunks(store, &key, b, size_b, 0, 1);
	assert_complete(store, &key, b, size_b);
	g_assert_cmpuint(cache_store_usage(store), ==, size_b);
	g_assert_cmpuint(census(&t).files, ==, 1);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* A range arriving after the message became complete (a slow fetch that
 * lost the race against a whole one) changes nothing. */
static void test_range_late(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey key = {"INBOX", 6, 6};
	CacheKey key2 = {"INBOX", 6, 7};
	guint64 size = 2 * CHUNK + 3;
	g_autofree guint8 *data = make_bytes(size, 90);
	g_autofree guint8 *other = make_bytes(3 * CHUNK, 91);
	g_autoptr(GError) error = NULL;

	tmp_init(&t);
	store = store_new(&t, 0);
	put_chunks(store, &key, data, size, 0, 1);
	put_chunks(store, &key, data, size, 1, 1);
	put_chunks(store, &key, data, size, 2, 1);
	assert_complete(store, &key, data, size);
	put_whole(store, &key2, data, size);

	for (guint i = 0; i < 2; i++) {
		const CacheKey *k = i ? &key2 : &key;

		g_assert_true(cache_store_put_range(store, k, size, 0, other,
						    -1, CHUNK, &error));
		g_assert_no_error(error);
		g_assert_true(cache_store_put_range(store, k, 3 * CHUNK, 0,
						    other, -1, CHUNK, &error));
		g_assert_no_error(error);
		assert_complete(store, k, data, size);
	}
	g_assert_cmpuint(census(&t).parts, ==, 0);
	g_assert_cmpuint(census(&t).files, ==, 2);
	g_assert_cmpuint(cache_store_usage(store), ==, 2 * size);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* put_whole over a partial message drops the partial state. */
static void test_range_then_whole(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey key = {"INBOX", 8, 8};
	guint64 size = 2 * CHUNK;
	g_autofree guint8 *data = make_bytes(size, 95);

	tmp_init(&t);
	store = store_new(&t, 0);
	put_chunks(store, &key, data, size, 1, 1);
	g_assert_cmpuint(census(&t).parts, ==, 1);
	put_whole(store, &key, data, size);
	assert_complete(store, &key, data, size);
	g_assert_cmpuint(census(&t).parts, ==, 0);
	g_assert_false(range_ok(store, &key, size, CHUNK, 1, data));
	g_assert_cmpuint(cache_store_usage(store), ==, size);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* put_range from an fd reads it from offset 0, whatever its position. */
static void test_range_fd(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	g_autoptr(GError) error = NULL;
	CacheKey key = {"INBOX", 9, 9};
	guint64 size = 2 * CHUNK + 100;
	g_autofree guint8 *data = make_bytes(size, 96);
	int fd;

	tmp_init(&t);
	store = store_new(&t, 0);
	fd = spool_fd(&t, 1, data + CHUNK, CHUNK + 100);
	g_assert_true(cache_store_put_range(store, &key, size, CHUNK, NULL, fd,
					    CHUNK + 100, &error));
	g_assert_no_error(error);
	close(fd);
	g_assert_true(range_ok(store, &key, size, CHUNK, CHUNK + 100, data));
	put_chunks(store, &key, data, size, 0, 1);
	assert_complete(store, &key, data, size);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* ---- forget and usage -------------------------------------------------- */

static void test_forget(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey whole = {"INBOX", 1, 1};
	CacheKey part = {"INBOX", 1, 2};
	CacheKey never = {"Nowhere", 1, 3};
	g_autofree guint8 *data = make_bytes(2 * CHUNK, 100);

	tmp_init(&t);
	store = store_new(&t, 0);
	put_whole(store, &whole, data, 5000);
	put_chunks(store, &part, data, 2 * CHUNK, 0, 1);
	g_assert_cmpuint(cache_store_usage(store), ==, 5000 + CHUNK);
	g_assert_cmpuint(census(&t).files, ==, 2);

	cache_store_forget(store, &never);
	g_assert_cmpuint(cache_store_usage(store), ==, 5000 + CHUNK);

	cache_store_forget(store, &part);
	g_assert_false(range_ok(store, &part, 2 * CHUNK, 0, 1, data));
	g_assert_cmpuint(census(&t).parts, ==, 0);
	g_assert_cmpuint(cache_store_usage(store), ==, 5000);
	/* What comes after a forget starts from nothing. */
	put_chunks(store, &part, data, 2 * CHUNK, 1, 1);
	g_assert_false(range_ok(store, &part, 2 * CHUNK, 0, 1, data));
	assert_absent(store, &part);
	cache_store_forget(store, &part);

	cache_store_forget(store, &whole);
	assert_absent(store, &whole);
	g_assert_cmpuint(cache_store_usage(store), ==, 0);
	g_assert_cmpuint(census(&t).files, ==, 0);
	cache_store_forget(store, &whole);
	g_assert_cmpuint(cache_store_usage(store), ==, 0);

	/* A pinned message that is forgotten is gone all the same. */
	cache_store_pin(store, &whole);
	put_whole(store, &whole, data, 700);
	cache_store_forget(store, &whole);
	assert_absent(store, &whole);
	g_assert_cmpuint(cache_store_usage(store), ==, 0);
	cache_store_unpin(store, &whole);
	g_assert_cmpuint(cache_store_usage(store), ==, 0);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

static void test_usage(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	guint64 sum = 0;

	tmp_init(&t);
	store = store_new(&t, 0);
	for (guint i = 0; i < 20; i++) {
		CacheKey key = {i % 2 ? "A" : "B", 1, i};
		gsize len = 1 + i * 7919;
		g_autofree guint8 *data = make_bytes(len, i);

		put_whole(store, &key, data, len);
		sum += len;
		g_assert_cmpuint(cache_store_usage(store), ==, sum);
	}
	for (guint i = 0; i < 20; i += 3) {
		CacheKey key = {i % 2 ? "A" : "B", 1, i};

		cache_store_forget(store, &key);
		sum -= 1 + i * 7919;
		g_assert_cmpuint(cache_store_usage(store), ==, sum);
	}
	/* Pins and opens of nothing cost nothing. */
	{
		CacheKey key = {"C", 1, 1};

		cache_store_pin(store, &key);
		assert_absent(store, &key);
		cache_store_unpin(store, &key);
		cache_store_unpin(store, &key);
	}
	g_assert_cmpuint(cache_store_usage(store), ==, sum);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* ---- budget ------------------------------------------------------------ */

/* Room for three 100 KB messages even after trimming to 90 %, not four. */
#define BUDGET 350000

static void test_evict_lru(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey k[5];
	guint8 *data[5];

	tmp_init(&t);
	store = store_new(&t, BUDGET);
	for (guint i = 0; i < 5; i++) {
		k[i] = (CacheKey){"INBOX", 1, i + 1};
		data[i] = make_bytes(KB100, 110 + i);
	}
	put_whole(store, &k[0], data[0], KB100);
	put_whole(store, &k[1], data[1], KB100);
	put_whole(store, &k[2], data[2], KB100);
	g_assert_cmpuint(cache_store_usage(store), ==, 3 * KB100);

	/* The fourth pushes out the first, the one least recently put. */
	put_whole(store, &k[3], data[3], KB100);
	g_assert_cmpuint(cache_store_usage(store), <=, BUDGET);
	g_assert_cmpuint(cache_store_usage(store), ==, 3 * KB100);
	assert_absent(store, &k[0]);
	g_assert_cmpuint(census(&t).files, ==, 3);

	/* Reading k[1] keeps it: k[2] is now the least recently used. */
	assert_complete(store, &k[1], data[1], KB100);
	put_whole(store, &k[4], data[4], KB100);
	g_assert_cmpuint(cache_store_usage(store), <=, BUDGET);
	assert_absent(store, &k[2]);
	assert_complete(store, &k[1], data[1], KB100);
	assert_complete(store, &k[3], data[3], KB100);
	assert_complete(store, &k[4], data[4], KB100);
	g_assert_cmpuint(census(&t).files, ==, 3);
	g_assert_cmpuint(cache_store_usage(store), ==, 3 * KB100);

	for (guint i = 0; i < 5; i++)
		g_free(data[i]);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* A budget of exactly three: the fourth must bring usage to at most the
 * budget, whatever it evicts, and the newest survives. Partial messages
 * count and are evicted too. */
static void test_evict_exact_budget(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	g_autofree guint8 *data = make_bytes(2 * CHUNK, 120);
	CacheKey newest = {"INBOX", 2, 100};

	tmp_init(&t);
	store = store_new(&t, 3 * KB100);
	for (guint i = 0; i < 3; i++) {
		CacheKey key = {"INBOX", 2, i + 1};

		put_whole(store, &key, data, KB100);
	}
	put_whole(store, &newest, data, KB100);
	g_assert_cmpuint(cache_store_usage(store), <=, 3 * KB100);
	assert_complete(store, &newest, data, KB100);
	g_assert_cmpuint(census(&t).files * KB100, ==,
			 cache_store_usage(store));
	g_clear_pointer(&store, cache_store_free);

	/* Partials: a budget of 2.5 chunks, chunks of three messages. */
	store = store_new(&t, 5 * CHUNK / 2);
	for (guint i = 0; i < 3; i++) {
		CacheKey key = {"Parts", 2, i + 1};

		put_chunks(store, &key, data, 2 * CHUNK, 0, 1);
		g_assert_cmpuint(cache_store_usage(store), <=, 5 * CHUNK / 2);
	}
	{
		CacheKey first = {"Parts", 2, 1}, last = {"Parts", 2, 3};

		g_assert_false(range_ok(store, &first, 2 * CHUNK, 0, 1, data));
		g_assert_true(range_ok(store, &last, 2 * CHUNK, 0, 1, data));
	}
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

static void test_evict_pin(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey k[5];
	guint8 *data[5];

	tmp_init(&t);
	store = store_new(&t, BUDGET);
	for (guint i = 0; i < 5; i++) {
		k[i] = (CacheKey){"INBOX", 1, i + 1};
		data[i] = make_bytes(KB100, 130 + i);
	}
	put_whole(store, &k[0], data[0], KB100);
	put_whole(store, &k[1], data[1], KB100);
	put_whole(store, &k[2], data[2], KB100);
	cache_store_pin(store, &k[0]);
	cache_store_pin(store, &k[0]); /* pins count */
	/* Make k[0] the least recently used by far. */
	assert_complete(store, &k[2], data[2], KB100);
	assert_complete(store, &k[1], data[1], KB100);

	put_whole(store, &k[3], data[3], KB100);
	assert_complete(store, &k[0], data[0], KB100);
	assert_absent(store, &k[2]);
	g_assert_cmpuint(cache_store_usage(store), <=, BUDGET);

	/* One unpin of two: still pinned. Make it oldest again. */
	cache_store_unpin(store, &k[0]);
	assert_complete(store, &k[1], data[1], KB100);
	assert_complete(store, &k[3], data[3], KB100);
	put_whole(store, &k[2], data[2], KB100);
	assert_complete(store, &k[0], data[0], KB100);
	assert_absent(store, &k[1]);

	/* Unpinned, it is evictable like any other. */
	cache_store_unpin(store, &k[0]);
	assert_complete(store, &k[3], data[3], KB100);
	assert_complete(store, &k[2], data[2], KB100);
	put_whole(store, &k[4], data[4], KB100);
	assert_absent(store, &k[0]);
	assert_complete(store, &k[2], data[2], KB100);
	assert_complete(store, &k[3], data[3], KB100);
	assert_complete(store, &k[4], data[4], KB100);
	g_assert_cmpuint(cache_store_usage(store), ==, 3 * KB100);

	for (guint i = 0; i < 5; i++)
		g_free(data[i]);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* What the gone callback saw: the tags, and that the store's lock was
 * free (it calls back into the store, which would deadlock otherwise). */
typedef struct {
	CacheStore *store;
	GArray *tags;
} Gone;

static void on_gone(guint64 tag, gpointer data)
{
	Gone *gone = data;

	g_assert_cmpuint(cache_store_usage(gone->store), >, 0);
	g_array_append_val(gone->tags, tag);
}

/* A tagged message that is evicted, or forgotten, is told of once, with
 * its tag; untagged ones and those still held are not. */
static void test_evict_tells_tag(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	g_autofree guint8 *data = make_bytes(KB100, 140);
	Gone gone = {NULL, g_array_new(FALSE, FALSE, sizeof(guint64))};
	CacheKey k[5];

	tmp_init(&t);
	store = store_new(&t, BUDGET);
	gone.store = store;
	cache_store_set_gone_func(store, on_gone, &gone);
	for (guint i = 0; i < 5; i++)
		k[i] = (CacheKey){"INBOX", 1, i + 1};
	put_whole(store, &k[0], data, KB100);
	put_whole(store, &k[1], data, KB100);
	put_whole(store, &k[2], data, KB100);
	cache_store_tag(store, &k[0], 7);
	cache_store_tag(store, &k[2], 9);
	cache_store_pin(store, &k[2]);

	/* k[0], least recently used, goes, and says so. */
	put_whole(store, &k[3], data, KB100);
	assert_absent(store, &k[0]);
	g_assert_cmpuint(gone.tags->len, ==, 1);
	g_assert_cmpuint(g_array_index(gone.tags, guint64, 0), ==, 7);
	/* k[1] (untagged) goes next, in silence; k[2] is pinned. */
	put_whole(store, &k[4], data, KB100);
	assert_absent(store, &k[1]);
	g_assert_cmpuint(gone.tags->len, ==, 1);
	/* Once let go and forgotten (expunged), k[2] says so too. */
	cache_store_unpin(store, &k[2]);
	cache_store_forget(store, &k[2]);
	g_assert_cmpuint(gone.tags->len, ==, 2);
	g_assert_cmpuint(g_array_index(gone.tags, guint64, 1), ==, 9);

	g_array_unref(gone.tags);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* A message pinned before it arrives (an open file) survives even when it
 * alone is over the budget, and so do its partial chunks. */
static void test_evict_pin_over_budget(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey big = {"INBOX", 1, 1};
	CacheKey part = {"INBOX", 1, 2};
	g_autofree guint8 *data = make_bytes(3 * CHUNK, 140);

	tmp_init(&t);
	store = store_new(&t, CHUNK);
	cache_store_pin(store, &big);
	cache_store_pin(store, &part);
	put_whole(store, &big, data, 2 * CHUNK);
	assert_complete(store, &big, data, 2 * CHUNK);
	put_chunks(store, &part, data, 3 * CHUNK, 0, 1);
	put_chunks(store, &part, data, 3 * CHUNK, 2, 1);
	g_assert_true(range_ok(store, &part, 3 * CHUNK, 0, 1, data));
	g_assert_true(range_ok(store, &part, 3 * CHUNK, 2 * CHUNK, 1, data));
	put_chunks(store, &part, data, 3 * CHUNK, 1, 1);
	assert_complete(store, &part, data, 3 * CHUNK);
	assert_complete(store, &big, data, 2 * CHUNK);
	g_assert_cmpuint(cache_store_usage(store), ==, 5 * CHUNK);

	/* Unpinned, the next put trims both. */
	cache_store_unpin(store, &big);
	cache_store_unpin(store, &part);
	{
		CacheKey small = {"INBOX", 1, 3};

		put_whole(store, &small, data, 1000);
		assert_complete(store, &small, data, 1000);
	}
	assert_absent(store, &big);
	assert_absent(store, &part);
	g_assert_cmpuint(cache_store_usage(store), ==, 1000);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* ---- restart ----------------------------------------------------------- */

static void write_file(const char *path, gsize len)
{
	g_autoptr(GError) error = NULL;
	g_autofree guint8 *data = make_bytes(len, 150);

	g_assert_true(
		g_file_set_contents(path, (const char *)data, len, &error));
	g_assert_no_error(error);
}

static void test_restart(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey a = {"INBOX", 1, 1};
	CacheKey b = {"Other", 2, 2};
	CacheKey part = {"INBOX", 1, 3};
	guint64 psize = 2 * CHUNK;
	g_autofree guint8 *da = make_bytes(12345, 160);
	g_autofree guint8 *db = make_bytes(CHUNK + 1, 161);
	g_autofree guint8 *dp = make_bytes(psize, 162);
	g_autofree char *pa = NULL;
	g_autofree char *dir = NULL;
	g_autofree char *tmp1 = NULL;
	g_autofree char *tmp2 = NULL;
	Census c;

	tmp_init(&t);
	store = store_new(&t, 0);
	put_whole(store, &a, da, 12345);
	put_chunks(store, &b, db, CHUNK + 1, 0, 1);
	put_chunks(store, &b, db, CHUNK + 1, 1, 1);
	put_chunks(store, &part, dp, psize, 1, 1);
	g_clear_pointer(&store, cache_store_free);

	/* What a crash could leave: temporaries of an interrupted put. */
	pa = find_file(&t, "1");
	g_assert_nonnull(pa);
	dir = g_path_get_dirname(pa);
	tmp1 = g_build_filename(dir, "1.tmp0badf00d", NULL);
	tmp2 = g_build_filename(dir, "5.tmpdeadbeef", NULL);
	write_file(tmp1, 5000);
	write_file(tmp2, 7000);
	c = census(&t);
	g_assert_cmpuint(c.parts, ==, 1);
	g_assert_cmpuint(c.tmps, ==, 2);

	store = store_new(&t, 0);
	g_assert_cmpuint(cache_store_usage(store), ==, 12345 + CHUNK + 1);
	c = census(&t);
	g_assert_cmpuint(c.parts, ==, 0);
	g_assert_cmpuint(c.tmps, ==, 0);
	g_assert_cmpuint(c.files, ==, 2);
	assert_complete(store, &a, da, 12345);
	assert_complete(store, &b, db, CHUNK + 1);

	/* The partial message starts over: its old chunk is not known. */
	g_assert_false(range_ok(store, &part, psize, CHUNK, 1, dp));
	put_chunks(store, &part, dp, psize, 0, 1);
	assert_absent(store, &part);
	g_assert_false(range_ok(store, &part, psize, CHUNK, 1, dp));
	put_chunks(store, &part, dp, psize, 1, 1);
	assert_complete(store, &part, dp, psize);

	/* Forgetting what the earlier run stored is counted. */
	cache_store_forget(store, &a);
	g_assert_cmpuint(cache_store_usage(store), ==, CHUNK + 1 + psize);
	g_clear_pointer(&store, cache_store_free);

	/* A smaller budget on restart: the next put trims to it. */
	store = store_new(&t, CHUNK);
	{
		CacheKey n = {"INBOX", 1, 9};

		put_whole(store, &n, da, 100);
		g_assert_cmpuint(cache_store_usage(store), <=, CHUNK);
		assert_complete(store, &n, da, 100);
	}
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* ---- hostile sizes and offsets ----------------------------------------- */

static void test_hostile_unaligned(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	g_autoptr(GError) error = NULL;
	CacheKey key = {"INBOX", 1, 1};
	guint64 size = 3 * CHUNK;
	g_autofree guint8 *data = make_bytes(size, 170);

	tmp_init(&t);
	store = store_new(&t, 0);

	/* An offset off the chunk grid. */
	g_test_expect_message("imapfs-cache", G_LOG_LEVEL_CRITICAL,
			      "*assertion*failed*");
	g_assert_false(cache_store_put_range(store, &key, size, 100, data, -1,
					     CHUNK, &error));
	g_test_assert_expected_messages();
	/* A short length that does not reach the end. */
	g_test_expect_message("imapfs-cache", G_LOG_LEVEL_CRITICAL,
			      "*assertion*failed*");
	g_assert_false(cache_store_put_range(store, &key, size, 0, data, -1,
					     CHUNK - 1, &error));
	g_test_assert_expected_messages();
	/* The end of a message that is not on the grid. */
	g_test_expect_message("imapfs-cache", G_LOG_LEVEL_CRITICAL,
			      "*assertion*failed*");
	g_assert_false(cache_store_put_range(store, &key, size - 7, size - 7,
					     data, -1, 0, &error));
	g_test_assert_expected_messages();

	g_assert_no_error(error);
	g_assert_false(range_ok(store, &key, size, 0, 1, data));
	g_assert_false(range_ok(store, &key, size, 0, 1, data));
	assert_absent(store, &key);
	g_assert_cmpuint(cache_store_usage(store), ==, 0);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* The same refusal, seen from outside: the subprocess dies of its
 * CRITICAL under G_DEBUG=fatal-warnings. */
static void test_hostile_unaligned_trap(void)
{
	if (g_test_subprocess()) {
		Tmp t;
		CacheStore *store;
		CacheKey key = {"INBOX", 1, 1};
		guint8 data[16] = {0};

		g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL |
				       G_LOG_LEVEL_WARNING);
		tmp_init(&t);
		store = store_new(&t, 0);
		/* Clean up first: the call below does not return. */
		tmp_clear(&t);
		cache_store_put_range(store, &key, 100, 1, data, -1, 16, NULL);
		return;
	}
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_failed();
	g_test_trap_assert_stderr("*CRITICAL*cache_store_put_range*");
}

/* Criticals are the store's way to refuse some of the calls below; either
 * that or a FALSE return is fine, so they must not abort the test. */
static gboolean not_fatal(const gchar *domain, GLogLevelFlags level,
			  const gchar *message, gpointer user_data)
{
	guint *n = user_data;

	if (g_strcmp0(domain, "imapfs-cache") != 0)
		return TRUE;
	(*n)++;
	return FALSE;
}

/* A length of 0, even at the end of the message, marks no chunk. */
static void test_hostile_len_zero(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey key = {"INBOX", 1, 1};
	CacheKey key2 = {"INBOX", 1, 2};
	guint64 size = 2 * CHUNK;
	guint64 size2 = CHUNK + 10;
	g_autofree guint8 *data = make_bytes(size, 180);
	g_autoptr(GError) error = NULL;

	tmp_init(&t);
	store = store_new(&t, 0);
	g_assert_true(cache_store_put_range(store, &key, size, size, data, -1,
					    0, &error));
	g_assert_no_error(error);
	g_assert_true(cache_store_put_range(store, &key2, size2, CHUNK, data,
					    -1, 0, &error));
	g_assert_no_error(error);
	g_assert_true(cache_store_put_range(store, &key, size, CHUNK, data, -1,
					    0, &error));
	g_assert_no_error(error);
	put_chunks(store, &key, data, size, 0, 1);
	put_chunks(store, &key2, data, size2, 0, 1);
	assert_absent(store, &key);
	assert_absent(store, &key2);
	g_assert_false(range_ok(store, &key, size, CHUNK, 1, data));
	g_assert_false(range_ok(store, &key2, size2, CHUNK, 1, data));
	g_assert_cmpuint(cache_store_usage(store), ==, 2 * CHUNK);
	put_chunks(store, &key, data, size, 1, 1);
	assert_complete(store, &key, data, size);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* Bytes past @size (a range starting beyond the end, or a whole chunk
 * where the message ends sooner) must not end up in the message. */
static void test_hostile_past_end(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey key = {"INBOX", 1, 1};
	CacheKey key2 = {"INBOX", 1, 2};
	guint64 size = CHUNK + 10;
	g_autofree guint8 *data = make_bytes(4 * CHUNK, 190);
	guint criticals = 0;
	struct stat st;
	int fd;

	tmp_init(&t);
	store = store_new(&t, 0);
	g_test_log_set_fatal_handler(not_fatal, &criticals);

	/* A range beginning past the end. */
	(void)cache_store_put_range(store, &key, size, 2 * CHUNK, data, -1,
				    CHUNK, NULL);
	put_chunks(store, &key, data, size, 0, 1);
	put_chunks(store, &key, data, size, 1, 1);
	fd = cache_store_open_complete(store, &key, size);
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(fstat(fd, &st), ==, 0);
	close(fd);
	g_assert_cmpint(st.st_size, ==, size);
	assert_complete(store, &key, data, size);

	/* A full chunk where only 10 bytes are left. */
	(void)cache_store_put_range(store, &key2, size, CHUNK, data + CHUNK, -1,
				    CHUNK, NULL);
	put_chunks(store, &key2, data, size, 0, 1);
	fd = cache_store_open_complete(store, &key2, size);
	if (fd < 0) {
		/* Refused: the real last chunk completes it. */
		put_chunks(store, &key2, data, size, 1, 1);
		fd = cache_store_open_complete(store, &key2, size);
	}
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(fstat(fd, &st), ==, 0);
	close(fd);
	g_assert_cmpint(st.st_size, ==, size);
	assert_complete(store, &key2, data, size);
	g_assert_cmpuint(cache_store_usage(store), ==, 2 * size);

	g_test_log_set_fatal_handler(NULL, NULL);
	g_test_message("%u criticals", criticals);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* RFC822.SIZE is a server's word. A size whose chunk count does not fit
 * (or whose rounding overflows) must not make one chunk a whole message. */
static void test_hostile_huge_size(void)
{
	static const guint64 sizes[] = {
		G_MAXUINT64,
		G_MAXUINT64 - CHUNK + 2,
		(G_GUINT64_CONSTANT(1) << 50) + CHUNK, /* 2^32 + 1 chunks */
		G_GUINT64_CONSTANT(1) << 50,	       /* 2^32 chunks */
		(guint64)G_MAXUINT32 + 1,
		(guint64)G_MAXUINT32,
	};
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	g_autofree guint8 *data = make_bytes(CHUNK, 200);
	guint criticals = 0;

	tmp_init(&t);
	store = store_new(&t, 0);
	g_test_log_set_fatal_handler(not_fatal, &criticals);
	for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
		CacheKey key = {"INBOX", 1, i + 1};
		g_autoptr(GError) error = NULL;

		(void)cache_store_put_range(store, &key, sizes[i], 0, data, -1,
					    CHUNK, &error);
		assert_absent(store, &key);
		g_assert_cmpuint(census(&t).files, <=, i + 1);
		cache_store_forget(store, &key);
	}
	g_assert_cmpuint(cache_store_usage(store), ==, 0);
	g_test_log_set_fatal_handler(NULL, NULL);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* A negative offset is chunk-aligned arithmetic-wise but no place in a
 * file: refused, nothing stored. */
static void test_hostile_negative_off(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey key = {"INBOX", 1, 1};
	g_autofree guint8 *data = make_bytes(CHUNK, 210);
	guint criticals = 0;
	gboolean ok;

	tmp_init(&t);
	store = store_new(&t, 0);
	g_test_log_set_fatal_handler(not_fatal, &criticals);
	ok = cache_store_put_range(store, &key, 2 * CHUNK, -(goffset)CHUNK,
				   data, -1, CHUNK, NULL);
	g_test_log_set_fatal_handler(NULL, NULL);
	g_assert_false(ok);
	put_chunks(store, &key, data, CHUNK, 0, 1);
	assert_complete(store, &key, data, CHUNK);
	g_assert_cmpuint(cache_store_usage(store), ==, CHUNK);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* ---- threads ----------------------------------------------------------- */

#define N_THREADS 4
#define N_CHUNKS  16

typedef struct {
	CacheStore *store;
	const guint8 *data;
	guint first;
} Worker;

static gpointer worker_run(gpointer user_data)
{
	Worker *w = user_data;
	guint64 size = N_CHUNKS * CHUNK - 3;

	for (guint c = w->first; c < N_CHUNKS; c += N_THREADS) {
		CacheKey key = {"Shared", 1, 1};
		CacheKey own = {"Own", 1, 100 + c};
		g_autoptr(GError) error = NULL;
		guint64 off = (guint64)c * CHUNK;
		int fd;

		g_assert_true(cache_store_put_range(
			w->store, &key, size, off, w->data + off, -1,
			MIN(CHUNK, size - off), &error));
		g_assert_no_error(error);
		g_assert_true(cache_store_put_whole(w->store, &own, w->data, -1,
						    1000 + c, &error));
		g_assert_no_error(error);
		cache_store_pin(w->store, &own);
		fd = cache_store_open_complete(w->store, &own, 1000 + c);
		if (fd >= 0)
			close(fd);
		cache_store_unpin(w->store, &own);
		fd = cache_store_open_range(w->store, &key, size, 0, size);
		if (fd >= 0)
			close(fd);
	}
	return NULL;
}

static void test_threads(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	guint64 size = N_CHUNKS * CHUNK - 3;
	g_autofree guint8 *data = make_bytes(size, 220);
	GThread *threads[N_THREADS];
	Worker w[N_THREADS];
	CacheKey key = {"Shared", 1, 1};
	guint64 sum = size;

	tmp_init(&t);
	store = store_new(&t, 0);
	for (guint i = 0; i < N_THREADS; i++) {
		w[i] = (Worker){store, data, i};
		threads[i] = g_thread_new("store", worker_run, &w[i]);
	}
	for (guint i = 0; i < N_THREADS; i++)
		g_thread_join(threads[i]);
	assert_complete(store, &key, data, size);
	for (guint c = 0; c < N_CHUNKS; c++)
		sum += 1000 + c;
	g_assert_cmpuint(cache_store_usage(store), ==, sum);
	g_assert_cmpuint(census(&t).parts, ==, 0);
	g_assert_cmpuint(census(&t).files, ==, N_CHUNKS + 1);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* ---- a full disk ------------------------------------------------------- */

/* TRUE once this process has a mount namespace of its own, where a small
 * tmpfs can stand for a full disk (root only). */
static gboolean own_mounts;

/* A Tmp whose top is a tmpfs of @kib KiB and @inodes inodes (0: the
 * default); FALSE (test skipped) without root. */
static gboolean tmp_init_small_inodes(Tmp *t, guint kib, guint inodes)
{
	g_autofree char *opts =
		inodes ? g_strdup_printf("size=%uk,nr_inodes=%u", kib, inodes)
		       : g_strdup_printf("size=%uk", kib);

	if (!own_mounts) {
		g_test_skip("a full disk is a small tmpfs: needs root");
		return FALSE;
	}
	tmp_init(t);
	g_assert_cmpint(mount("tmpfs", t->top, "tmpfs", 0, opts), ==, 0);
	return TRUE;
}

static gboolean tmp_init_small(Tmp *t, guint kib)
{
	return tmp_init_small_inodes(t, kib, 0);
}

static void tmp_clear_small(Tmp *t)
{
	g_assert_cmpint(umount2(t->top, MNT_DETACH), ==, 0);
	tmp_clear(t);
}

/* Fills what is left of the tmpfs with a file beside the store, leaving
 * @spare bytes free; returns its path. */
static char *fill_disk(const Tmp *t, gsize spare)
{
	char *path = g_build_filename(t->top, "filler", NULL);
	g_autofree guint8 *zero = g_malloc0(4096);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);

	g_assert_cmpint(fd, >=, 0);
	while (write(fd, zero, 4096) == 4096)
		;
	g_assert_cmpint(errno, ==, ENOSPC);
	if (spare) {
		struct stat st;

		g_assert_cmpint(fstat(fd, &st), ==, 0);
		g_assert_cmpint(ftruncate(fd, st.st_size - spare), ==, 0);
	}
	close(fd);
	return path;
}

/* Whether the store directory holds a complete file named @name. */
static gboolean on_disk(const Tmp *t, const char *name)
{
	g_autofree char *path = find_file(t, name);

	return path != NULL;
}

/* What the store logs, and warnings made not fatal while it is caught. */
typedef struct {
	GString *text;
	GLogLevelFlags fatal_before;
	GLogFunc handler_before;
	gpointer data_before;
} LogCatch;

static void catch_one(const char *domain, GLogLevelFlags level,
		      const char *message, gpointer data)
{
	g_string_append_printf(data, "%s\n", message);
}

static void log_catch_start(LogCatch *c)
{
	c->text = g_string_new(NULL);
	c->fatal_before =
		g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
	c->handler_before =
		g_log_set_default_handler(catch_one, c->text);
}

/* What was caught since the start; stops catching. (transfer full) */
static char *log_catch_end(LogCatch *c)
{
	g_log_set_default_handler(c->handler_before, NULL);
	g_log_set_always_fatal(c->fatal_before);
	return g_string_free(c->text, FALSE);
}

/* The disk fills with the store's own messages: older ones make room, and
 * nothing is held in memory. */
static void test_full_makes_room(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	g_autofree char *log = NULL;
	CacheKey k[8];
	guint8 *data[8];
	LogCatch c;

	if (!tmp_init_small(&t, 1024))
		return;
	store = store_new(&t, 0); /* no budget: only the disk limits it */
	log_catch_start(&c);
	for (guint i = 0; i < 8; i++) {
		k[i] = (CacheKey){"INBOX", 1, i + 1};
		data[i] = make_bytes(300000, 400 + i);
		put_whole(store, &k[i], data[i], 300000);
		assert_complete(store, &k[i], data[i], 300000);
	}
	log = log_catch_end(&c);
	g_assert_nonnull(strstr(log, "is full; making room"));
	g_assert_null(strstr(log, "memory"));
	/* What the disk holds is the budget prefetch keeps within. */
	g_assert_cmpuint(cache_store_budget(store), >=, 600000);
	g_assert_cmpuint(cache_store_budget(store), <=, 1024 * 1024);
	/* The newest are on disk; the oldest made room for them. */
	g_assert_true(on_disk(&t, "8"));
	assert_absent(store, &k[0]);
	g_assert_cmpuint(cache_store_usage(store), <=, 1024 * 1024);
	g_assert_cmpuint(census(&t).tmps, ==, 0);
	for (guint i = 0; i < 8; i++)
		g_free(data[i]);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear_small(&t);
}

/* Files that are held open elsewhere (the kernel reading a cache file)
 * free their blocks only once their holder, told the store dropped them,
 * lets go: a range written on a full disk is written again after that,
 * and lands on disk, not in memory. */
typedef struct {
	int fds[3];
} Holder;

static void on_gone_let_go(guint64 tag, gpointer data)
{
	Holder *h = data;

	g_assert_cmpuint(tag, >=, 1);
	g_assert_cmpuint(tag, <=, 3);
	close(h->fds[tag - 1]);
	h->fds[tag - 1] = -1;
}

static void test_full_range_after_holders_let_go(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	g_autofree char *log = NULL;
	g_autofree guint8 *data = make_bytes(300000, 600);
	Holder h;
	CacheKey k[4];
	LogCatch c;

	if (!tmp_init_small(&t, 1024))
		return;
	store = store_new(&t, 0);
	cache_store_set_gone_func(store, on_gone_let_go, &h);
	for (guint i = 0; i < 4; i++)
		k[i] = (CacheKey){"INBOX", 1, i + 1};
	for (guint i = 0; i < 3; i++) {
		put_whole(store, &k[i], data, 300000);
		h.fds[i] = cache_store_open_complete(store, &k[i], 300000);
		g_assert_cmpint(h.fds[i], >=, 0);
		cache_store_tag(store, &k[i], i + 1);
	}
	log_catch_start(&c);
	put_chunks(store, &k[3], data, 300000, 0, 2);
	log = log_catch_end(&c);
	g_assert_nonnull(strstr(log, "is full; making room"));
	g_assert_null(strstr(log, "memory"));
	g_assert_true(on_disk(&t, "4"));
	assert_complete(store, &k[3], data, 300000);
	g_assert_cmpint(h.fds[0], ==, -1);
	for (guint i = 0; i < 3; i++)
		if (h.fds[i] >= 0)
			close(h.fds[i]);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear_small(&t);
}

/* The disk is full of other files: messages are held in memory and read
 * back whole, and go to disk again once there is room. */
static void test_full_memory(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	g_autofree char *filler = NULL;
	g_autofree char *log = NULL;
	g_autoptr(GError) error = NULL;
	CacheKey key = {"INBOX", 1, 1};
	CacheKey spooled = {"INBOX", 1, 2};
	CacheKey later = {"INBOX", 1, 3};
	g_autofree guint8 *data = make_bytes(300000, 500);
	g_autofree guint8 *data2 = make_bytes(200000, 501);
	g_autofree guint8 *data3 = make_bytes(100000, 502);
	int src;
	LogCatch c;

	if (!tmp_init_small(&t, 1024))
		return;
	store = store_new(&t, 1 << 30);
	filler = fill_disk(&t, 0);
	log_catch_start(&c);
	put_whole(store, &key, data, 300000);
	assert_complete(store, &key, data, 300000);
	g_assert_cmpuint(cache_store_budget(store), ==, CACHE_STORE_MEMORY);
	/* From a spool fd, as the parser hands big literals over. */
	src = memfd_create("spool", MFD_CLOEXEC);
	g_assert_cmpint(write(src, data2, 200000), ==, 200000);
	g_assert_true(cache_store_put_whole(store, &spooled, NULL, src,
					    200000, &error));
	g_assert_no_error(error);
	close(src);
	assert_complete(store, &spooled, data2, 200000);
	g_assert_cmpuint(census(&t).files, ==, 0);
	g_assert_cmpuint(cache_store_usage(store), ==, 0);
	/* Room again: the next message goes to disk. */
	g_assert_cmpint(g_unlink(filler), ==, 0);
	put_whole(store, &later, data3, 100000);
	log = log_catch_end(&c);
	g_assert_nonnull(strstr(log, "held in memory"));
	g_assert_nonnull(strstr(log, "has room again"));
	g_assert_true(on_disk(&t, "3"));
	/* Not the memory's budget any more: the disk's, below cache_size. */
	g_assert_cmpuint(cache_store_budget(store), >, CACHE_STORE_MEMORY / 64);
	g_assert_cmpuint(cache_store_budget(store), <=, 1024 * 1024);
	assert_complete(store, &key, data, 300000);
	assert_complete(store, &later, data3, 100000);
	/* Forgotten, a message in memory is gone like one on disk. */
	cache_store_forget(store, &key);
	assert_absent(store, &key);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear_small(&t);
}

/* A message read in ranges when the disk fills up midway: the chunks it
 * had on disk move to memory with it, and it completes there. */
static void test_full_range_to_memory(void)
{
	const guint64 size = 4 * CHUNK - 1000;
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	g_autofree char *log = NULL;
	g_autofree guint8 *data = make_bytes(size, 600);
	LogCatch c;

	if (!tmp_init_small(&t, 1024))
		return;
	store = store_new(&t, 0);
	put_chunks(store, &(CacheKey){"INBOX", 1, 9}, data, size, 0, 2);
	g_assert_cmpuint(census(&t).parts, ==, 1);
	g_free(fill_disk(&t, 0));
	log_catch_start(&c);
	put_chunks(store, &(CacheKey){"INBOX", 1, 9}, data, size, 2, 1);
	log = log_catch_end(&c);
	g_assert_nonnull(strstr(log, "held in memory"));
	g_assert_cmpuint(census(&t).parts, ==, 0);
	g_assert_true(range_ok(store, &(CacheKey){"INBOX", 1, 9}, size, 0,
			       3 * CHUNK, data));
	g_assert_false(range_ok(store, &(CacheKey){"INBOX", 1, 9}, size,
				3 * CHUNK, 1, data));
	assert_absent(store, &(CacheKey){"INBOX", 1, 9});
	log_catch_start(&c);
	put_chunks(store, &(CacheKey){"INBOX", 1, 9}, data, size, 3, 1);
	g_free(log_catch_end(&c));
	assert_complete(store, &(CacheKey){"INBOX", 1, 9}, data, size);
	g_assert_cmpuint(census(&t).files, ==, 0);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear_small(&t);
}

/* Memory holds at most CACHE_STORE_MEMORY: least recently used first, a
 * pinned message never. */
static void test_full_memory_budget(void)
{
	enum { N = 7 };
	const gsize len = CACHE_STORE_MEMORY / 4;
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey k[N];
	guint8 *data[N];
	LogCatch c;

	if (!tmp_init_small(&t, 256))
		return;
	store = store_new(&t, 0);
	g_free(fill_disk(&t, 0));
	log_catch_start(&c);
	for (guint i = 0; i < N; i++)
		data[i] = make_bytes(len, 700 + i);
	for (guint i = 0; i < N - 1; i++) {
		k[i] = (CacheKey){"INBOX", 1, i + 1};
		put_whole(store, &k[i], data[i], len);
		if (i == 0)
			cache_store_pin(store, &k[0]);
	}
	assert_complete(store, &k[0], data[0], len); /* pinned */
	assert_absent(store, &k[1]);
	assert_absent(store, &k[2]);
	for (guint i = 3; i < N - 1; i++)
		assert_complete(store, &k[i], data[i], len);
	/* Unpinned, it is the least recently used, and goes next. */
	cache_store_unpin(store, &k[0]);
	k[N - 1] = (CacheKey){"INBOX", 1, N};
	put_whole(store, &k[N - 1], data[N - 1], len);
	g_free(log_catch_end(&c));
	assert_absent(store, &k[0]);
	for (guint i = 3; i < N; i++)
		assert_complete(store, &k[i], data[i], len);
	for (guint i = 0; i < N; i++)
		g_free(data[i]);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear_small(&t);
}

/* No room even for the directory of a message's mailbox (inodes used up):
 * its ranges are held in memory all the same. */
static void test_full_no_directory(void)
{
	const guint64 size = 3 * CHUNK;
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	g_autofree guint8 *data = make_bytes(size, 800);
	CacheKey key = {"Elsewhere", 1, 5};
	LogCatch c;
	guint n = 0;

	if (!tmp_init_small_inodes(&t, 4096, 64))
		return;
	store = store_new(&t, 0);
	for (;; n++) {
		g_autofree char *f = g_strdup_printf("%s/f%u", t.top, n);
		int fd = open(f, O_WRONLY | O_CREAT, 0600);

		if (fd < 0) {
			g_assert_cmpint(errno, ==, ENOSPC);
			break;
		}
		close(fd);
	}
	log_catch_start(&c);
	put_chunks(store, &key, data, size, 0, 1);
	put_chunks(store, &key, data, size, 1, 2);
	g_free(log_catch_end(&c));
	assert_complete(store, &key, data, size);
	g_assert_cmpuint(census(&t).files, ==, 0);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear_small(&t);
}

/* A message larger than memory may hold is not held there: the full
 * disk's error stands, whole or in ranges. */
static void test_full_too_big_for_memory(void)
{
	const gsize len = CACHE_STORE_MEMORY + CHUNK;
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree guint8 *data = make_bytes(len, 900);
	CacheKey key = {"INBOX", 1, 1};
	LogCatch c;

	if (!tmp_init_small(&t, 256))
		return;
	store = store_new(&t, 0);
	g_free(fill_disk(&t, 0));
	log_catch_start(&c);
	g_assert_false(
		cache_store_put_whole(store, &key, data, -1, len, &error));
	g_assert_error(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
	g_clear_error(&error);
	g_assert_false(cache_store_put_range(store, &key, len, 0, data, -1,
					     CHUNK, &error));
	g_assert_error(error, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
	g_free(log_catch_end(&c));
	assert_absent(store, &key);
	g_assert_false(range_ok(store, &key, len, 0, 1, data));
	g_clear_pointer(&store, cache_store_free);
	tmp_clear_small(&t);
}

/* A file an earlier run left short (a power loss before the kernel wrote
 * it all) is dropped at its first open, not served; one of the size the
 * message has is served; this run's files are served whatever the size
 * asked (a server's size corrected by the body arrives after the body). */
static void test_restart_short_file(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey a = {"INBOX", 1, 1};
	CacheKey b = {"INBOX", 1, 2};
	CacheKey c = {"INBOX", 1, 3};
	g_autofree guint8 *da = make_bytes(12345, 163);
	g_autofree guint8 *db = make_bytes(777, 164);
	g_autofree char *pa = NULL;
	g_autofree char *log = NULL;
	LogCatch lc;
	int fd;

	tmp_init(&t);
	store = store_new(&t, 0);
	put_whole(store, &a, da, 12345);
	put_whole(store, &b, db, 777);
	g_clear_pointer(&store, cache_store_free);
	pa = find_file(&t, "1");
	g_assert_nonnull(pa);
	g_assert_cmpint(truncate(pa, 4096), ==, 0);

	store = store_new(&t, 0);
	g_assert_cmpuint(cache_store_usage(store), ==, 4096 + 777);
	log_catch_start(&lc);
	g_assert_cmpint(cache_store_open_complete(store, &a, 12345), <, 0);
	log = log_catch_end(&lc);
	g_assert_nonnull(strstr(log, "UID 1 in INBOX has 4096 bytes, "
				     "not 12345"));
	g_assert_false(g_file_test(pa, G_FILE_TEST_EXISTS));
	g_assert_cmpuint(cache_store_usage(store), ==, 777);
	assert_complete(store, &b, db, 777);
	/* Checked once: later opens take it as it is. */
	fd = cache_store_open_complete(store, &b, 999);
	g_assert_cmpint(fd, >=, 0);
	close(fd);

	put_whole(store, &a, da, 12345);
	assert_complete(store, &a, da, 12345);
	put_whole(store, &c, db, 700);
	fd = cache_store_open_complete(store, &c, 777);
	g_assert_cmpint(fd, >=, 0);
	close(fd);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* A message moved on the server keeps its bytes: the store renames its
 * file to the new key. An open file of the old key still reads by the old
 * name until it lets go; a partial file is not moved. */
static void test_move(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey a = {"INBOX", 1, 1}, a2 = {"Archive/2026", 7, 40};
	CacheKey b = {"INBOX", 1, 2}, b2 = {"Trash", 9, 3};
	CacheKey p = {"INBOX", 1, 5}, p2 = {"Trash", 9, 4};
	guint64 psize = 2 * CHUNK;
	g_autofree guint8 *da = make_bytes(5000, 170);
	g_autofree guint8 *db = make_bytes(6000, 171);
	g_autofree guint8 *dp = make_bytes(psize, 172);
	g_autofree char *pb = NULL;

	tmp_init(&t);
	store = store_new(&t, 0);
	put_whole(store, &a, da, 5000);
	cache_store_move(store, &a, &a2);
	assert_absent(store, &a);
	assert_complete(store, &a2, da, 5000);
	g_assert_cmpuint(cache_store_usage(store), ==, 5000);

	put_whole(store, &b, db, 6000);
	pb = find_file(&t, "2");
	g_assert_nonnull(pb);
	cache_store_pin(store, &b);
	cache_store_move(store, &b, &b2);
	assert_complete(store, &b, db, 6000);
	assert_complete(store, &b2, db, 6000);
	g_assert_cmpuint(cache_store_usage(store), ==, 11000);
	cache_store_unpin(store, &b);
	g_assert_false(g_file_test(pb, G_FILE_TEST_EXISTS));
	assert_absent(store, &b);
	assert_complete(store, &b2, db, 6000);
	g_assert_cmpuint(cache_store_usage(store), ==, 11000);

	put_chunks(store, &p, dp, psize, 0, 1);
	cache_store_move(store, &p, &p2);
	g_assert_true(range_ok(store, &p, psize, 0, 1, dp));
	g_assert_false(range_ok(store, &p2, psize, 0, 1, dp));
	assert_absent(store, &p2);

	/* Nothing stored: nothing happens. */
	cache_store_move(store, &a, &b);
	assert_absent(store, &b);

	/* An old name still pinned when the store goes (a lazy unmount)
	 * goes with it. */
	put_whole(store, &b, db, 6000);
	cache_store_pin(store, &b);
	cache_store_move(store, &b, &p);
	g_assert_true(g_file_test(pb, G_FILE_TEST_EXISTS));
	g_clear_pointer(&store, cache_store_free);
	g_assert_false(g_file_test(pb, G_FILE_TEST_EXISTS));
	store = store_new(&t, 0);
	assert_complete(store, &p, db, 6000);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

/* Renamed mailboxes take their whole messages along, and only those of
 * their UIDVALIDITY (4, not 40, whose directory's name starts alike); a
 * partial one and a mailbox not renamed keep theirs; an earlier run's
 * files move too. A message open (pinned) when its mailbox is renamed
 * keeps its old name, and a file an earlier run left short is still
 * refused there. A rename onto the same name changes nothing. */
static void test_move_mailboxes(void)
{
	Tmp t;
	g_autoptr(CacheStore) store = NULL;
	CacheKey a1 = {"Old", 4, 1}, a2 = {"Old", 4, 20}, p = {"Old", 4, 3};
	CacheKey other_uv = {"Old", 40, 1}, kid = {"Old.Kid", 4, 1};
	CacheKey stay = {"Stay", 4, 1}, short_key = {"Old", 4, 7};
	CacheKey n1 = {"New", 4, 1}, n2 = {"New", 4, 20}, np = {"New", 4, 3};
	CacheKey nkid = {"New.Kid", 4, 1}, nshort = {"New", 4, 7};
	const CacheStoreRename renames[] = {
		{"Old", "New", 4}, {"Old.Kid", "New.Kid", 4}, {"Stay", "Stay", 4}};
	guint64 psize = 2 * CHUNK;
	g_autofree guint8 *d1 = make_bytes(3000, 180);
	g_autofree guint8 *d2 = make_bytes(4000, 181);
	g_autofree guint8 *d3 = make_bytes(5000, 182);
	g_autofree guint8 *d4 = make_bytes(6000, 183);
	g_autofree guint8 *d5 = make_bytes(12345, 185);
	g_autofree guint8 *dp = make_bytes(psize, 184);
	g_autofree char *short_path = NULL;
	LogCatch lc;

	tmp_init(&t);
	store = store_new(&t, 0);
	put_whole(store, &a1, d1, 3000);
	put_whole(store, &other_uv, d3, 5000);
	put_whole(store, &kid, d4, 6000);
	put_whole(store, &stay, d2, 4000);
	put_whole(store, &short_key, d5, 12345);
	put_chunks(store, &p, dp, psize, 0, 1);
	/* One from an earlier run, and one it left short. */
	g_clear_pointer(&store, cache_store_free);
	short_path = find_file(&t, "7");
	g_assert_nonnull(short_path);
	g_assert_cmpint(truncate(short_path, 4096), ==, 0);
	store = store_new(&t, 0);
	put_whole(store, &a2, d2, 4000);
	cache_store_pin(store, &short_key);

	cache_store_move_mailboxes(store, renames, G_N_ELEMENTS(renames));
	assert_absent(store, &a1);
	assert_absent(store, &a2);
	assert_complete(store, &n1, d1, 3000);
	assert_complete(store, &n2, d2, 4000);
	assert_complete(store, &nkid, d4, 6000);
	assert_complete(store, &other_uv, d3, 5000);
	assert_complete(store, &stay, d2, 4000);
	assert_absent(store, &np);
	g_assert_cmpuint(cache_store_usage(store), ==,
			 3000 + 4000 + 6000 + 5000 + 4000 + 4096);
	log_catch_start(&lc);
	g_assert_cmpint(cache_store_open_complete(store, &short_key, 12345),
			<, 0);
	g_assert_cmpint(cache_store_open_complete(store, &nshort, 12345), <,
			0);
	g_free(log_catch_end(&lc));
	cache_store_unpin(store, &short_key);

	/* Nothing stored under that name: nothing happens. */
	cache_store_move_mailboxes(store,
				   &(CacheStoreRename){"Gone", "New", 4}, 1);
	assert_complete(store, &n1, d1, 3000);
	g_clear_pointer(&store, cache_store_free);
	tmp_clear(&t);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	/* Small tmpfs mounts, seen by this process only. */
	own_mounts = unshare(CLONE_NEWNS) == 0 &&
		     mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == 0;

	g_test_add_func("/cache-store/whole/memory", test_whole_memory);
	g_test_add_func("/cache-store/whole/fd", test_whole_fd);
	g_test_add_func("/cache-store/whole/fd-exact-len",
			test_whole_fd_exact_len);
	g_test_add_func("/cache-store/whole/fd-short", test_whole_fd_short);
	g_test_add_func("/cache-store/keys/no-crosstalk",
			test_keys_no_crosstalk);
	g_test_add_func("/cache-store/keys/odd-mailbox-names",
			test_keys_odd_mailbox_names);
	g_test_add_func("/cache-store/range/any-order", test_range_any_order);
	g_test_add_func("/cache-store/range/multi-chunk",
			test_range_multi_chunk);
	g_test_add_func("/cache-store/range/small", test_range_small);
	g_test_add_func("/cache-store/range/size-change",
			test_range_size_change);
	g_test_add_func("/cache-store/range/late", test_range_late);
	g_test_add_func("/cache-store/range/then-whole", test_range_then_whole);
	g_test_add_func("/cache-store/range/fd", test_range_fd);
	g_test_add_func("/cache-store/forget", test_forget);
	g_test_add_func("/cache-store/usage", test_usage);
	g_test_add_func("/cache-store/evict/lru", test_evict_lru);
	g_test_add_func("/cache-store/evict/exact-budget",
			test_evict_exact_budget);
	g_test_add_func("/cache-store/evict/pin", test_evict_pin);
	g_test_add_func("/cache-store/evict/tells-tag", test_evict_tells_tag);
	g_test_add_func("/cache-store/evict/pin-over-budget",
			test_evict_pin_over_budget);
	g_test_add_func("/cache-store/restart", test_restart);
	g_test_add_func("/cache-store/move", test_move);
	g_test_add_func("/cache-store/move-mailboxes", test_move_mailboxes);
	g_test_add_func("/cache-store/restart/short-file",
			test_restart_short_file);
	g_test_add_func("/cache-store/hostile/unaligned",
			test_hostile_unaligned);
	g_test_add_func("/cache-store/hostile/unaligned-trap",
			test_hostile_unaligned_trap);
	g_test_add_func("/cache-store/hostile/len-zero", test_hostile_len_zero);
	g_test_add_func("/cache-store/hostile/past-end", test_hostile_past_end);
	g_test_add_func("/cache-store/hostile/huge-size",
			test_hostile_huge_size);
	g_test_add_func("/cache-store/hostile/negative-off",
			test_hostile_negative_off);
	g_test_add_func("/cache-store/threads", test_threads);
	g_test_add_func("/cache-store/full/makes-room", test_full_makes_room);
	g_test_add_func("/cache-store/full/range-after-holders-let-go",
			test_full_range_after_holders_let_go);
	g_test_add_func("/cache-store/full/memory", test_full_memory);
	g_test_add_func("/cache-store/full/range-to-memory",
			test_full_range_to_memory);
	g_test_add_func("/cache-store/full/memory-budget",
			test_full_memory_budget);
	g_test_add_func("/cache-store/full/no-directory",
			test_full_no_directory);
	g_test_add_func("/cache-store/full/too-big-for-memory",
			test_full_too_big_for_memory);
	return g_test_run();
}

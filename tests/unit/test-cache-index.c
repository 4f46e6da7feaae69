/* Unit tests for cache/index.c and cache/index-file.c: the in-memory index
 * and its round trip through a file, including files that must be refused.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "cache/index-file.h"
#include "cache/index.h"

/* The payload (versions 2 and 3) is written again here, independently, so that
 * the tests can forge files the writer would never produce. */
static void t_u32(GByteArray *b, guint32 v)
{
	guint32 le = GUINT32_TO_LE(v);

	g_byte_array_append(b, (const guint8 *)&le, 4);
}

static void t_u64(GByteArray *b, guint64 v)
{
	guint64 le = GUINT64_TO_LE(v);

	g_byte_array_append(b, (const guint8 *)&le, 8);
}

static void t_str(GByteArray *b, const char *s)
{
	if (!s) {
		t_u32(b, G_MAXUINT32);
		return;
	}
	t_u32(b, strlen(s));
	g_byte_array_append(b, (const guint8 *)s, strlen(s));
}

static CacheMessage *make_msg(guint32 uid, const char *flags,
			      const char *subject, const char *from,
			      const char *message_id, const char *alias)
{
	CacheMessage *m = g_new0(CacheMessage, 1);

	m->uid = uid;
	m->size = 1000 + (guint64)uid * 7;
	m->internaldate = 1700000000 + (gint64)uid * 60;
	m->modseq = 50000 + uid;
	m->flags = g_strdup(flags);
	m->subject = g_strdup(subject);
	m->from = g_strdup(from);
	m->message_id = g_strdup(message_id);
	m->alias = g_strdup(alias);
	return m;
}

/* INBOX (synced, 3 messages), Archive (made up) . 2023, Lists (NOSELECT,
 * listed) . glib (synced, @n_big messages), "Été" (not synced), Trash
 * (synced, empty, read-only), Odd\xff (not UTF-8). */
static CacheIndex *make_index(guint n_big)
{
	CacheIndex *index = cache_index_new();
	CacheIndexMailbox *m;

	cache_index_list_begin(index);
	m = cache_index_list_add(index, "INBOX", "INBOX", '.', 0);
	m->synced = TRUE;
	m->synced_at = g_get_monotonic_time();
	m->uidvalidity = 1234567;
	m->uidnext = 43;
	m->highestmodseq = G_GUINT64_CONSTANT(0x1122334455667788);
	m->permanentflags = g_strsplit("\\Seen \\Deleted \\*", " ", -1);
	cache_index_put_message(m,
				make_msg(7, "\\Seen \\Flagged", "Héllo wörld",
					 "Ann <a@x>", "<1@x>", NULL));
	cache_index_put_message(m, make_msg(9, "", NULL, NULL, NULL, NULL));
	cache_index_put_message(m, make_msg(42, "$Work", "added", "me", "<2@x>",
					    "my-note.eml"));
	/* Not UTF-8: a Latin-1 file name, raw header bytes. */
	cache_index_put_message(m, make_msg(43, "", "\xff\xfe", "\xe9",
					    "<\x80@x>", "caf\xe9.eml"));
	cache_index_list_add(index, "Archive.2023", "Archive.2023", '.', 0);
	cache_index_list_add(index, "Lists", "Lists", '.',
			     CACHE_MAILBOX_NOSELECT);
	m = cache_index_list_add(index, "Lists.glib", "Lists.glib", '.', 0);
	m->synced = TRUE;
	m->uidvalidity = 99;
	m->uidnext = n_big * 2 + 1;
	for (guint i = 1; i <= n_big; i++) {
		g_autofree char *subject = g_strdup_printf("message %u", i);

		cache_index_put_message(
			m, make_msg(i * 2, "\\Seen", subject, "list@x",
				    i % 3 ? "<id@x>" : NULL, NULL));
	}
	m = cache_index_list_add(index, "&AMk-t&AOk-", "\xc3\x89t\xc3\xa9", '.',
				 0);
	m->uidvalidity = 5;
	m->uidnext = 6;
	m = cache_index_list_add(index, "Trash", "Trash", '.',
				 CACHE_MAILBOX_TRASH);
	m->synced = TRUE;
	m->readonly = TRUE;
	m->permanentflags = g_new0(char *, 1);
	cache_index_list_add(index, "Odd\xff", "Odd\xff", '.', 0);
	cache_index_list_end(index);
	return index;
}

static void assert_msg_equal(const CacheMessage *a, const CacheMessage *b)
{
	g_assert_cmpuint(a->uid, ==, b->uid);
	g_assert_cmpuint(a->size, ==, b->size);
	g_assert_cmpint(a->internaldate, ==, b->internaldate);
	g_assert_cmpuint(a->modseq, ==, b->modseq);
	g_assert_cmpstr(a->flags, ==, b->flags);
	g_assert_cmpstr(a->subject, ==, b->subject);
	g_assert_cmpstr(a->from, ==, b->from);
	g_assert_cmpstr(a->message_id, ==, b->message_id);
	g_assert_cmpstr(a->alias, ==, b->alias);
}

/* Compares two mailboxes field by field, except id and parent_id. */
static void assert_mbox_equal(CacheIndexMailbox *a, CacheIndexMailbox *b)
{
	GPtrArray *sa, *sb;

	g_assert_cmpstr(a->wire_name, ==, b->wire_name);
	g_assert_cmpstr(a->full_name, ==, b->full_name);
	g_assert_cmpstr(a->component, ==, b->component);
	g_assert_cmpint(a->delimiter, ==, b->delimiter);
	g_assert_cmpuint(a->flags, ==, b->flags);
	g_assert_false(b->gone);
	g_assert_cmpint(a->synced, ==, b->synced);
	g_assert_cmpint(b->synced_at, ==, 0);
	g_assert_cmpuint(a->uidvalidity, ==, b->uidvalidity);
	g_assert_cmpuint(a->uidnext, ==, b->uidnext);
	g_assert_cmpuint(a->highestmodseq, ==, b->highestmodseq);
	g_assert_cmpint(a->readonly, ==, b->readonly);
	if (a->permanentflags) {
		g_assert_nonnull(b->permanentflags);
		g_assert_true(
			g_strv_equal((const char *const *)a->permanentflags,
				     (const char *const *)b->permanentflags));
	} else {
		g_assert_null(b->permanentflags);
	}
	sa = cache_index_sorted(a);
	sb = cache_index_sorted(b);
	g_assert_cmpuint(sa->len, ==, sb->len);
	for (guint i = 0; i < sa->len; i++)
		assert_msg_equal(sa->pdata[i], sb->pdata[i]);
}

static char *save(CacheIndex *index, const char *dir)
{
	g_autoptr(GBytes) bytes = cache_index_serialize(index);
	g_autoptr(GError) error = NULL;
	char *path = g_build_filename(dir, "index", NULL);

	g_assert_true(cache_index_write_file(path, bytes, &error));
	g_assert_no_error(error);
	return path;
}

static void remove_dir(const char *dir)
{
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const char *name;

	while ((name = g_dir_read_name(d))) {
		g_autofree char *p = g_build_filename(dir, name, NULL);

		g_assert_cmpint(g_unlink(p), ==, 0);
	}
	g_assert_cmpint(g_rmdir(dir), ==, 0);
}

static char *make_tmp(void)
{
	g_autoptr(GError) error = NULL;
	char *dir = g_dir_make_tmp("test-cache-index-XXXXXX", &error);

	g_assert_no_error(error);
	return dir;
}

static void test_file_round_trip(void)
{
	g_autoptr(CacheIndex) orig = make_index(1000);
	g_autoptr(CacheIndex) loaded = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *dir = make_tmp();
	g_autofree char *path = save(orig, dir);
	CacheIndexMailbox *inbox, *glib;
	guint n = 0;

	loaded = cache_index_read_file(path, &error);
	g_assert_no_error(error);
	g_assert_nonnull(loaded);
	g_assert_true(cache_index_ever_listed(loaded));
	/* No mailbox went, so every id is the same; id 0 is the root. */
	for (guint32 id = 0; id <= 8; id++) {
		CacheIndexMailbox *a = cache_index_mailbox(orig, id);
		CacheIndexMailbox *b = cache_index_mailbox(loaded, id);
		g_autoptr(GPtrArray) ca = cache_index_children(orig, id);
		g_autoptr(GPtrArray) cb = cache_index_children(loaded, id);

		g_assert_cmpuint(ca->len, ==, cb->len);
		for (guint i = 0; i < ca->len; i++)
			g_assert_cmpuint(
				((CacheIndexMailbox *)ca->pdata[i])->id, ==,
				((CacheIndexMailbox *)cb->pdata[i])->id);
		g_assert_cmpuint(cache_index_n_children(orig, id), ==,
				 cache_index_n_children(loaded, id));
		if (!a) {
			g_assert_null(b);
			continue;
		}
		n++;
		g_assert_nonnull(b);
		g_assert_cmpuint(a->id, ==, b->id);
		g_assert_cmpuint(a->parent_id, ==, b->parent_id);
		assert_mbox_equal(a, b);
		g_assert_true(
			cache_index_mailbox_by_name(loaded, a->full_name) == b);
	}
	g_assert_cmpuint(n, ==, 8);
	/* Spot checks that do not go through the helpers. */
	g_assert_null(
		cache_index_mailbox_by_name(loaded, "Archive")->wire_name);
	g_assert_cmpuint(cache_index_mailbox_by_name(loaded, "Archive")->flags,
			 ==, CACHE_MAILBOX_NOSELECT);
	g_assert_nonnull(
		cache_index_mailbox_by_name(loaded, "\xc3\x89t\xc3\xa9"));
	inbox = cache_index_mailbox_by_name(loaded, "INBOX");
	g_assert_null(cache_index_message(inbox, 9)->subject);
	g_assert_cmpuint(
		cache_index_message_by_alias(inbox, "my-note.eml")->uid, ==,
		42);
	g_assert_cmpuint(
		cache_index_message_by_alias(inbox, "caf\xe9.eml")->uid, ==,
		43);
	g_assert_cmpstr(cache_index_message(inbox, 43)->subject, ==,
			"\xff\xfe");
	g_assert_cmpstr(cache_index_message(inbox, 7)->subject, ==,
			"Héllo wörld");
	glib = cache_index_mailbox_by_name(loaded, "Lists.glib");
	g_assert_cmpuint(g_hash_table_size(glib->by_uid), ==, 1000);
	g_assert_cmpuint(cache_index_max_uid(glib), ==, 2000);
	g_assert_true(cache_index_find_trash(loaded) ==
		      cache_index_mailbox_by_name(loaded, "Trash"));
	g_assert_cmpint(cache_index_delimiter(loaded), ==, '.');
	remove_dir(dir);
}

/* After mailboxes went and one moved under a later parent, ids change on
 * reload but names, parents and contents do not. */
static void test_file_gone_and_renamed(void)
{
	g_autoptr(CacheIndex) orig = make_index(10);
	g_autoptr(CacheIndex) loaded = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *dir = make_tmp();
	g_autofree char *path = NULL;
	guint32 gone_id;
	guint n = 0;

	gone_id = cache_index_mailbox_by_name(orig, "Archive.2023")->id;
	cache_index_list_begin(orig);
	cache_index_list_add(orig, "INBOX", "INBOX", '.', 0);
	cache_index_list_add(orig, "Lists", "Lists", '.',
			     CACHE_MAILBOX_NOSELECT);
	cache_index_list_add(orig, "Lists.glib", "Lists.glib", '.', 0);
	cache_index_list_add(orig, "Trash", "Trash", '.', CACHE_MAILBOX_TRASH);
	cache_index_list_end(orig);
	g_assert_null(cache_index_mailbox(orig, gone_id));
	/* INBOX gets a child; then Lists moves below the new INBOX.Sub. */
	cache_index_list_begin(orig);
	cache_index_list_add(orig, "INBOX", "INBOX", '.', 0);
	cache_index_list_add(orig, "Lists", "Lists", '.',
			     CACHE_MAILBOX_NOSELECT);
	cache_index_list_add(orig, "Lists.glib", "Lists.glib", '.', 0);
	cache_index_list_add(orig, "Trash", "Trash", '.', CACHE_MAILBOX_TRASH);
	cache_index_list_add(orig, "INBOX.Sub", "INBOX.Sub", '.', 0);
	cache_index_list_end(orig);
	cache_index_rename(orig, cache_index_mailbox_by_name(orig, "Lists"),
			   cache_index_mailbox_by_name(orig, "INBOX.Sub")->id,
			   "INBOX.Sub.Lists", "INBOX.Sub.Lists");
	path = save(orig, dir);
	loaded = cache_index_read_file(path, &error);
	g_assert_no_error(error);

	for (guint32 id = 1; id <= 12; id++) {
		CacheIndexMailbox *a = cache_index_mailbox(orig, id), *b, *pa;

		if (!a)
			continue;
		n++;
		b = cache_index_mailbox_by_name(loaded, a->full_name);
		g_assert_nonnull(b);
		assert_mbox_equal(a, b);
		if (a->parent_id == CACHE_ROOT_ID) {
			g_assert_cmpuint(b->parent_id, ==, CACHE_ROOT_ID);
		} else {
			pa = cache_index_mailbox(orig, a->parent_id);
			g_assert_cmpstr(
				cache_index_mailbox(loaded, b->parent_id)
					->full_name,
				==, pa->full_name);
		}
		g_assert_cmpuint(cache_index_n_children(orig, a->id), ==,
				 cache_index_n_children(loaded, b->id));
	}
	g_assert_cmpuint(n, ==, 5);
	/* The loaded index is dense: ids 1..5, nothing gone. */
	g_assert_nonnull(cache_index_mailbox(loaded, 5));
	g_assert_null(cache_index_mailbox(loaded, 6));
	g_assert_null(cache_index_mailbox_by_name(loaded, "Archive.2023"));
	g_assert_null(cache_index_mailbox_by_name(loaded, "Lists"));
	g_assert_cmpuint(cache_index_n_children(loaded, CACHE_ROOT_ID), ==, 2);
	remove_dir(dir);
}

static GBytes *read_bytes(const char *path)
{
	char *contents;
	gsize len;

	g_assert_true(g_file_get_contents(path, &contents, &len, NULL));
	return g_bytes_new_take(contents, len);
}

static void write_raw(const char *path, const void *data, gsize len)
{
	g_autoptr(GError) error = NULL;

	g_file_set_contents(path, data, len, &error);
	g_assert_no_error(error);
}

/* Reading @path must fail with G_IO_ERROR @code and no index. */
static void assert_refused(const char *path, int code)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(CacheIndex) index = cache_index_read_file(path, &error);

	g_assert_null(index);
	g_assert_error(error, G_IO_ERROR, code);
}

static void test_file_missing(void)
{
	g_autofree char *dir = make_tmp();
	g_autofree char *path = g_build_filename(dir, "index", NULL);

	assert_refused(path, G_IO_ERROR_NOT_FOUND);
	remove_dir(dir);
}

static void test_file_truncated(void)
{
	g_autoptr(CacheIndex) orig = make_index(100);
	g_autofree char *dir = make_tmp();
	g_autofree char *path = save(orig, dir);
	g_autoptr(GBytes) good = read_bytes(path);
	gsize len;
	const guint8 *data = g_bytes_get_data(good, &len);
	const gsize cuts[] = {0,       1,	 12,	  16,	  len / 3,
			      len / 2, len - 40, len - 2, len - 1};

	for (guint i = 0; i < G_N_ELEMENTS(cuts); i++) {
		write_raw(path, data, cuts[i]);
		assert_refused(path, G_IO_ERROR_INVALID_DATA);
	}
	/* Trailing junk is as wrong as a missing tail. */
	{
		g_autofree guint8 *longer = g_malloc0(len + 8);

		memcpy(longer, data, len);
		write_raw(path, longer, len + 8);
		assert_refused(path, G_IO_ERROR_INVALID_DATA);
	}
	remove_dir(dir);
}

/* Every single flipped byte is caught. The version word may read as
 * another version; anything else is INVALID_DATA. */
static void test_file_flipped_bytes(void)
{
	g_autoptr(CacheIndex) orig = make_index(4);
	g_autofree char *dir = make_tmp();
	g_autofree char *path = save(orig, dir);
	g_autoptr(GBytes) good = read_bytes(path);
	gsize len;
	const guint8 *data = g_bytes_get_data(good, &len);
	g_autofree guint8 *bad = g_memdup2(data, len);

	g_assert_cmpuint(len, >, 500);
	for (gsize off = 0; off < len; off++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(CacheIndex) index = NULL;

		bad[off] ^= 0x5a;
		write_raw(path, bad, len);
		index = cache_index_read_file(path, &error);
		if (index)
			g_error("flipped byte at %" G_GSIZE_FORMAT
				" of %" G_GSIZE_FORMAT " not caught",
				off, len);
		g_assert_nonnull(error);
		g_assert_true(g_error_matches(error, G_IO_ERROR,
					      G_IO_ERROR_INVALID_DATA) ||
			      g_error_matches(error, G_IO_ERROR,
					      G_IO_ERROR_NOT_SUPPORTED));
		bad[off] = data[off];
	}
	/* The undamaged bytes still load. */
	write_raw(path, data, len);
	{
		g_autoptr(GError) error = NULL;
		g_autoptr(CacheIndex) index =
			cache_index_read_file(path, &error);

		g_assert_no_error(error);
	}
	remove_dir(dir);
}

static void test_file_empty(void)
{
	g_autofree char *dir = make_tmp();
	g_autofree char *path = g_build_filename(dir, "index", NULL);

	write_raw(path, "", 0);
	assert_refused(path, G_IO_ERROR_INVALID_DATA);
	write_raw(path, "imapfs-index\n", 13);
	assert_refused(path, G_IO_ERROR_INVALID_DATA);
	remove_dir(dir);
}

/* Writes a file of @payload (transfer full) under a header with @magic
 * (13 bytes are used, NUL-padded), @version and a right checksum. */
static void write_envelope(const char *path, const char *magic, guint32 version,
			   GByteArray *payload)
{
	g_autoptr(GByteArray) p = payload;
	g_autoptr(GByteArray) file = g_byte_array_new();
	g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
	char head[13] = {0};
	guint8 digest[32];
	gsize digest_len = sizeof(digest);
	guint32 le = GUINT32_TO_LE(version);

	memcpy(head, magic, MIN(strlen(magic), sizeof(head)));
	g_byte_array_append(file, (const guint8 *)head, sizeof(head));
	g_byte_array_append(file, (const guint8 *)&le, 4);
	g_checksum_update(sum, p->data, p->len);
	g_checksum_get_digest(sum, digest, &digest_len);
	g_byte_array_append(file, digest, sizeof(digest));
	g_byte_array_append(file, p->data, p->len);
	write_raw(path, file->data, file->len);
}

static GByteArray *one_mailbox(const char *wire, const char *full, guint32 uid)
{
	GByteArray *b = g_byte_array_new();

	t_u32(b, 1); /* mailboxes */
	t_str(b, wire);
	t_str(b, full);
	g_byte_array_append(b, (const guint8 *)".", 1);
	t_u32(b, 0);					 /* flags */
	g_byte_array_append(b, (const guint8 *)"\1", 1); /* synced */
	t_u32(b, 1);					 /* uidvalidity */
	t_u32(b, 2);					 /* uidnext */
	t_u64(b, 0);					 /* highestmodseq */
	g_byte_array_append(b, (const guint8 *)"\0", 1); /* readonly */
	t_u32(b, G_MAXUINT32); /* permanentflags unknown */
	t_u32(b, 1);	       /* messages */
	t_u32(b, uid);
	t_u64(b, 10);
	t_u64(b, 1);
	t_u64(b, 0);
	t_str(b, "");
	for (int i = 0; i < 4; i++)
		t_str(b, NULL);
	return b;
}

static void test_file_forged(void)
{
	g_autofree char *dir = make_tmp();
	g_autofree char *path = g_build_filename(dir, "index", NULL);
	g_autoptr(CacheIndex) index = NULL;
	g_autoptr(GError) error = NULL;

	/* The forger works: a well-made file loads. */
	write_envelope(path, "imapfs-index\n", CACHE_INDEX_FILE_VERSION,
		       one_mailbox("A", "A", 5));
	index = cache_index_read_file(path, &error);
	g_assert_no_error(error);
	g_assert_nonnull(cache_index_message(cache_index_mailbox(index, 1), 5));

	for (guint32 v = 1; v <= CACHE_INDEX_FILE_VERSION + 1; v++) {
		if (v == CACHE_INDEX_FILE_VERSION)
			continue;
		write_envelope(path, "imapfs-index\n", v,
			       one_mailbox("A", "A", 5));
		assert_refused(path, G_IO_ERROR_NOT_SUPPORTED);
	}
	write_envelope(path, "other-index\n", CACHE_INDEX_FILE_VERSION,
		       one_mailbox("A", "A", 5));
	assert_refused(path, G_IO_ERROR_INVALID_DATA);
	write_envelope(path, "imapfs-index\n", CACHE_INDEX_FILE_VERSION,
		       one_mailbox("A", "A", 0));
	assert_refused(path, G_IO_ERROR_INVALID_DATA);
	write_envelope(path, "imapfs-index\n", CACHE_INDEX_FILE_VERSION,
		       one_mailbox("", "A", 5));
	assert_refused(path, G_IO_ERROR_INVALID_DATA);
	write_envelope(path, "imapfs-index\n", CACHE_INDEX_FILE_VERSION,
		       one_mailbox("A", "", 5));
	assert_refused(path, G_IO_ERROR_INVALID_DATA);
	/* Payloads of another shape under this version: short, a count that
	 * lies, a string with a NUL, bytes left over. */
	{
		GByteArray *b = g_byte_array_new();

		t_u32(b, 3);
		write_envelope(path, "imapfs-index\n", CACHE_INDEX_FILE_VERSION,
			       b);
		assert_refused(path, G_IO_ERROR_INVALID_DATA);
	}
	{
		GByteArray *b = one_mailbox("A", "A", 5);

		b->data[0] = 2;
		write_envelope(path, "imapfs-index\n", CACHE_INDEX_FILE_VERSION,
			       b);
		assert_refused(path, G_IO_ERROR_INVALID_DATA);
	}
	{
		GByteArray *b = one_mailbox("AxA", "A", 5);

		b->data[9] = 0; /* the 'x' of the wire name */
		write_envelope(path, "imapfs-index\n", CACHE_INDEX_FILE_VERSION,
			       b);
		assert_refused(path, G_IO_ERROR_INVALID_DATA);
	}
	{
		GByteArray *b = one_mailbox("A", "A", 5);

		g_byte_array_append(b, (const guint8 *)"z", 1);
		write_envelope(path, "imapfs-index\n", CACHE_INDEX_FILE_VERSION,
			       b);
		assert_refused(path, G_IO_ERROR_INVALID_DATA);
	}
	remove_dir(dir);
}

static void test_write_file(void)
{
	g_autofree char *dir = make_tmp();
	g_autofree char *path = g_build_filename(dir, "index", NULL);
	g_autofree char *missing = g_build_filename(dir, "no", "index", NULL);
	g_autoptr(GBytes) one = g_bytes_new_static("first", 5);
	g_autoptr(GBytes) two = g_bytes_new_static("second", 6);
	g_autoptr(GBytes) back = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GDir) d = NULL;
	struct stat st;
	mode_t old_mask = umask(0);

	g_assert_true(cache_index_write_file(path, one, &error));
	g_assert_no_error(error);
	g_assert_true(cache_index_write_file(path, two, &error));
	g_assert_no_error(error);
	umask(old_mask);
	back = read_bytes(path);
	g_assert_true(g_bytes_equal(back, two));
	g_assert_cmpint(g_stat(path, &st), ==, 0);
	g_assert_cmpuint(st.st_mode & 07777, ==, 0600);
	/* Nothing but the file itself is left in the directory. */
	d = g_dir_open(dir, 0, NULL);
	g_assert_cmpstr(g_dir_read_name(d), ==, "index");
	g_assert_null(g_dir_read_name(d));

	g_assert_false(cache_index_write_file(missing, one, &error));
	g_assert_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
	remove_dir(dir);
}

/* ---- index.c behaviours the file relies on ----------------------------- */

static void test_index_list_refresh(void)
{
	g_autoptr(CacheIndex) index = cache_index_new();
	g_autoptr(GPtrArray) top = NULL;
	CacheIndexMailbox *a, *ab, *c, *c2;
	guint32 c_id;

	g_assert_false(cache_index_ever_listed(index));
	cache_index_list_begin(index);
	ab = cache_index_list_add(index, "A.B", "A.B", '.', 0);
	c = cache_index_list_add(index, "C", "C", '.', 0);
	cache_index_list_end(index);
	g_assert_true(cache_index_ever_listed(index));
	g_assert_cmpint(cache_index_listed_at(index), >, 0);
	a = cache_index_mailbox_by_name(index, "A");
	g_assert_nonnull(a);
	g_assert_null(a->wire_name);
	g_assert_cmpuint(a->flags, ==, CACHE_MAILBOX_NOSELECT);
	g_assert_cmpuint(a->id, ==, 1);
	g_assert_cmpuint(ab->id, ==, 2);
	g_assert_cmpuint(ab->parent_id, ==, a->id);
	g_assert_cmpstr(ab->component, ==, "B");
	c_id = c->id;
	cache_index_put_message(c, make_msg(1, "", NULL, NULL, NULL, NULL));
	c->synced = TRUE;

	/* C is no longer listed: gone, emptied, its id not reused. */
	cache_index_list_begin(index);
	cache_index_list_add(index, "A.B", "A.B", '.', 0);
	cache_index_list_end(index);
	g_assert_null(cache_index_mailbox(index, c_id));
	g_assert_null(cache_index_mailbox_by_name(index, "C"));
	g_assert_cmpuint(g_hash_table_size(c->by_uid), ==, 0);
	g_assert_false(c->synced);
	g_assert_nonnull(cache_index_mailbox(index, a->id));
	top = cache_index_children(index, CACHE_ROOT_ID);
	g_assert_cmpuint(top->len, ==, 1);
	g_assert_true(top->pdata[0] == a);

	cache_index_list_begin(index);
	cache_index_list_add(index, "A.B", "A.B", '.', 0);
	c2 = cache_index_list_add(index, "C", "C", '.', 0);
	cache_index_list_end(index);
	g_assert_cmpuint(c2->id, ==, 4);
	g_assert_true(cache_index_mailbox_by_name(index, "C") == c2);
}

static void test_index_messages(void)
{
	g_autoptr(CacheIndex) index = cache_index_new();
	CacheIndexMailbox *m;
	GPtrArray *sorted;
	guint64 gen;

	cache_index_list_begin(index);
	m = cache_index_list_add(index, "X", "X", '/', 0);
	cache_index_list_end(index);
	g_assert_cmpuint(cache_index_max_uid(m), ==, 0);
	cache_index_put_message(m, make_msg(5, "", "five", NULL, NULL, NULL));
	cache_index_put_message(m, make_msg(1, "", "one", NULL, NULL, "a"));
	cache_index_put_message(m, make_msg(3, "", "three", NULL, NULL, NULL));
	sorted = cache_index_sorted(m);
	g_assert_cmpuint(sorted->len, ==, 3);
	g_assert_cmpuint(((CacheMessage *)sorted->pdata[0])->uid, ==, 1);
	g_assert_cmpuint(((CacheMessage *)sorted->pdata[1])->uid, ==, 3);
	g_assert_cmpuint(((CacheMessage *)sorted->pdata[2])->uid, ==, 5);
	g_assert_cmpuint(cache_index_max_uid(m), ==, 5);

	gen = m->generation;
	cache_index_put_message(m,
				make_msg(3, "\\Seen", "new", NULL, NULL, NULL));
	g_assert_cmpuint(m->generation, >, gen);
	g_assert_cmpuint(cache_index_sorted(m)->len, ==, 3);
	g_assert_cmpstr(cache_index_message(m, 3)->subject, ==, "new");
	cache_index_remove_message(m, 5);
	g_assert_cmpuint(cache_index_max_uid(m), ==, 3);
	gen = m->generation;
	cache_index_remove_message(m, 77);
	g_assert_cmpuint(m->generation, ==, gen);
	g_assert_cmpuint(cache_index_message_by_alias(m, "a")->uid, ==, 1);
	g_assert_null(cache_index_message_by_alias(m, "b"));
	{
		g_autoptr(GArray) dropped =
			g_array_new(FALSE, FALSE, sizeof(guint32));

		cache_index_clear_messages(m, dropped);
		g_assert_cmpuint(dropped->len, ==, 2);
		g_assert_cmpuint(g_array_index(dropped, guint32, 0), ==, 1);
		g_assert_cmpuint(g_array_index(dropped, guint32, 1), ==, 3);
	}
	g_assert_cmpuint(cache_index_sorted(m)->len, ==, 0);
	g_assert_false(m->synced);
}

/* A mailbox made anew takes the name, place and children under a new id;
 * the old id is gone but leads to the new one for the directory. */
static void test_index_renew(void)
{
	g_autoptr(CacheIndex) index = cache_index_new();
	CacheIndexMailbox *a, *ab, *b2;
	guint32 old_id;

	cache_index_list_begin(index);
	a = cache_index_list_add(index, "A", "A", '.', 0);
	ab = cache_index_list_add(index, "A.B", "A.B", '.', 0);
	cache_index_list_end(index);
	cache_index_put_message(a, make_msg(4, "", "four", NULL, NULL, NULL));
	a->synced = TRUE;
	old_id = a->id;
	g_assert_cmpuint(cache_index_current(index, old_id), ==, old_id);

	b2 = cache_index_renew(index, a);
	g_assert_cmpuint(b2->id, !=, old_id);
	g_assert_null(cache_index_mailbox(index, old_id));
	g_assert_true(cache_index_mailbox(index, b2->id) == b2);
	g_assert_true(cache_index_mailbox_by_name(index, "A") == b2);
	g_assert_cmpstr(b2->wire_name, ==, "A");
	g_assert_cmpstr(b2->component, ==, "A");
	g_assert_false(b2->synced);
	g_assert_cmpuint(cache_index_sorted(b2)->len, ==, 0);
	g_assert_cmpuint(cache_index_sorted(a)->len, ==, 0);
	g_assert_null(cache_index_message(a, 4));
	g_assert_cmpuint(ab->parent_id, ==, b2->id);
	g_assert_cmpuint(cache_index_current(index, old_id), ==, b2->id);
	g_assert_cmpuint(cache_index_current(index, b2->id), ==, b2->id);
	g_assert_cmpuint(cache_index_current(index, 999), ==, 999);
	/* A later listing keeps the new id. */
	cache_index_list_begin(index);
	g_assert_true(cache_index_list_add(index, "A", "A", '.', 0) == b2);
	cache_index_list_add(index, "A.B", "A.B", '.', 0);
	cache_index_list_end(index);
	g_assert_true(cache_index_mailbox_by_name(index, "A") == b2);
}

static void test_index_rename(void)
{
	g_autoptr(CacheIndex) index = cache_index_new();
	CacheIndexMailbox *a, *abc, *z;

	cache_index_list_begin(index);
	a = cache_index_list_add(index, "A", "A", '.', 0);
	abc = cache_index_list_add(index, "A.B.C", "A.B.C", '.', 0);
	z = cache_index_list_add(index, "Z", "Z", '.', 0);
	cache_index_list_add(index, "AB", "AB", '.', 0);
	cache_index_list_end(index);

	cache_index_rename(index, a, z->id, "Z.N", "Z.N");
	g_assert_cmpstr(a->full_name, ==, "Z.N");
	g_assert_cmpstr(a->component, ==, "N");
	g_assert_cmpuint(a->parent_id, ==, z->id);
	g_assert_cmpstr(abc->full_name, ==, "Z.N.B.C");
	g_assert_cmpstr(abc->wire_name, ==, "Z.N.B.C");
	g_assert_cmpstr(abc->component, ==, "C");
	g_assert_true(cache_index_mailbox_by_name(index, "Z.N.B.C") == abc);
	g_assert_null(cache_index_mailbox_by_name(index, "A.B.C"));
	g_assert_null(cache_index_mailbox_by_name(index, "A"));
	/* "AB" only shares a prefix: untouched. */
	g_assert_nonnull(cache_index_mailbox_by_name(index, "AB"));
	g_assert_cmpuint(cache_index_n_children(index, z->id), ==, 1);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/cache/index/list-refresh", test_index_list_refresh);
	g_test_add_func("/cache/index/messages", test_index_messages);
	g_test_add_func("/cache/index/renew", test_index_renew);
	g_test_add_func("/cache/index/rename", test_index_rename);
	g_test_add_func("/cache/index-file/round-trip", test_file_round_trip);
	g_test_add_func("/cache/index-file/gone-and-renamed",
			test_file_gone_and_renamed);
	g_test_add_func("/cache/index-file/missing", test_file_missing);
	g_test_add_func("/cache/index-file/truncated", test_file_truncated);
	g_test_add_func("/cache/index-file/flipped-bytes",
			test_file_flipped_bytes);
	g_test_add_func("/cache/index-file/empty", test_file_empty);
	g_test_add_func("/cache/index-file/forged", test_file_forged);
	g_test_add_func("/cache/index-file/write", test_write_file);
	return g_test_run();
}

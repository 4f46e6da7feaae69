/* cache/index-file.c — the index on disk.
 *
 * The file is a header that never changes shape, then the payload:
 *
 *   "imapfs-index\n", u32 version, SHA-256 of the payload (32 bytes)
 *
 * so that a reader of any version can tell a file of another version from
 * a corrupt one. The checksum is there because a flipped bit inside a
 * string still reads as a string, and a wrong subject or UID must not be
 * believed.
 *
 * The payload (versions 2 and 3) is plain little-endian binary, built in
 * the same one buffer as the header (a GVariant tree of 100,000 messages
 * would cost ten objects each, far more memory than the index itself;
 * version 1 was that). Integers are fixed-width; a string is a u32 length
 * and its bytes (no NUL inside), NONE_LEN for NULL:
 *
 *   u32 mailboxes, then each:
 *     str wire_name, str full_name, u8 delimiter, u32 flags, u8 synced,
 *     u32 uidvalidity, u32 uidnext, u64 highestmodseq, u8 readonly,
 *     u32 n_permanentflags (NONE_LEN: none known) + str each,
 *     u32 messages, then each:
 *       u32 uid, u64 size, i64 internaldate, u64 modseq, str flags,
 *       str subject, str from, str message_id, str alias
 *
 * Names, message ids and aliases come from the server or the user and
 * need not be UTF-8; they come back byte for byte.
 *
 * Loading goes through the index's own LIST path (list_begin/add/end), so
 * ids, parents and made-up parents are built exactly as a live listing
 * builds them; only mailboxes the server listed (wire_name set) are saved.
 * The new index is private until the whole file has been read, so a bad
 * file never leaves half of itself behind.
 */
#include "cache/index-file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/error.h"

#define INDEX_MAGIC "imapfs-index\n"
#define MAGIC_LEN   13
#define SUM_LEN	    32 /* SHA-256 */
#define HEADER_LEN  (MAGIC_LEN + 4 + SUM_LEN)
#define NONE_LEN    G_MAXUINT32

/* ---- Writing ------------------------------------------------------------ */

static void put_u8(GByteArray *out, guint8 v)
{
	g_byte_array_append(out, &v, 1);
}

static void put_u32(GByteArray *out, guint32 v)
{
	guint32 le = GUINT32_TO_LE(v);

	g_byte_array_append(out, (const guint8 *)&le, 4);
}

static void put_u64(GByteArray *out, guint64 v)
{
	guint64 le = GUINT64_TO_LE(v);

	g_byte_array_append(out, (const guint8 *)&le, 8);
}

static void put_str(GByteArray *out, const char *str)
{
	if (!str) {
		put_u32(out, NONE_LEN);
		return;
	}
	put_u32(out, strlen(str));
	g_byte_array_append(out, (const guint8 *)str, strlen(str));
}

static void put_mailbox(GByteArray *out, CacheIndexMailbox *mbox)
{
	GPtrArray *msgs = mbox->synced ? cache_index_sorted(mbox) : NULL;

	put_str(out, mbox->wire_name);
	put_str(out, mbox->full_name);
	put_u8(out, (guint8)mbox->delimiter);
	put_u32(out, mbox->flags);
	put_u8(out, mbox->synced);
	put_u32(out, mbox->uidvalidity);
	put_u32(out, mbox->uidnext);
	put_u64(out, mbox->highestmodseq);
	put_u8(out, mbox->readonly);
	if (mbox->permanentflags) {
		put_u32(out, g_strv_length(mbox->permanentflags));
		for (guint i = 0; mbox->permanentflags[i]; i++)
			put_str(out, mbox->permanentflags[i]);
	} else {
		put_u32(out, NONE_LEN);
	}
	put_u32(out, msgs ? msgs->len : 0);
	for (guint i = 0; msgs && i < msgs->len; i++) {
		CacheMessage *m = msgs->pdata[i];

		put_u32(out, m->uid);
		put_u64(out, m->size);
		put_u64(out, (guint64)m->internaldate);
		put_u64(out, m->modseq);
		put_str(out, m->flags ? m->flags : "");
		put_str(out, m->subject);
		put_str(out, m->from);
		put_str(out, m->message_id);
		put_str(out, m->alias);
	}
}

static guint32 max_live_id(CacheIndex *index)
{
	g_autoptr(GArray) todo = g_array_new(FALSE, FALSE, sizeof(guint32));
	guint32 max = 0, root = CACHE_ROOT_ID;

	g_array_append_val(todo, root);
	for (guint i = 0; i < todo->len; i++) {
		g_autoptr(GPtrArray) children = cache_index_children(
			index, g_array_index(todo, guint32, i));

		for (guint j = 0; j < children->len; j++) {
			CacheIndexMailbox *child = children->pdata[j];

			g_array_append_val(todo, child->id);
			max = MAX(max, child->id);
		}
	}
	return max;
}

GBytes *cache_index_serialize(CacheIndex *index)
{
	GByteArray *out = g_byte_array_sized_new(64 * 1024);
	g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
	guint32 last = max_live_id(index), n = 0;
	CacheIndexMailbox *mbox;
	gsize sum_len = SUM_LEN;

	g_byte_array_set_size(out, HEADER_LEN);
	put_u32(out, 0); /* the count, filled in below */
	/* In id order, so that a reload gives the same ids when no mailbox
	 * went in between; cache_index_mailbox skips the gone ones. */
	for (guint32 id = 1; id <= last; id++) {
		mbox = cache_index_mailbox(index, id);
		if (mbox && mbox->wire_name) {
			put_mailbox(out, mbox);
			n++;
		}
	}
	n = GUINT32_TO_LE(n);
	memcpy(out->data + HEADER_LEN, &n, 4);
	memcpy(out->data, INDEX_MAGIC, MAGIC_LEN);
	n = GUINT32_TO_LE(CACHE_INDEX_FILE_VERSION);
	memcpy(out->data + MAGIC_LEN, &n, 4);
	g_checksum_update(sum, out->data + HEADER_LEN, out->len - HEADER_LEN);
	g_checksum_get_digest(sum, out->data + MAGIC_LEN + 4, &sum_len);
	return g_byte_array_free_to_bytes(out);
}

static gboolean set_errno_error(GError **error, int errsv, const char *what,
				const char *path)
{
	g_set_error(error, G_IO_ERROR, cache_io_error_from_errno(errsv),
		    "%s %s: %s", what, path, g_strerror(errsv));
	return FALSE;
}

static gboolean write_all(int fd, const guint8 *buf, gsize len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return FALSE;
		buf += n;
		len -= n;
	}
	return TRUE;
}

gboolean cache_index_write_file(const char *path, GBytes *data, GError **error)
{
	g_autofree char *tmp = g_strconcat(path, ".XXXXXX", NULL);
	g_autofree char *dir = g_path_get_dirname(path);
	gsize len;
	const guint8 *buf = g_bytes_get_data(data, &len);
	int fd, dirfd, errsv;

	fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return set_errno_error(error, errno, "cannot create", tmp);
	/* fchmod: the umask must not change what the file promises. */
	if (fchmod(fd, 0600) < 0 || !write_all(fd, buf, len) || fsync(fd) < 0) {
		errsv = errno;
		close(fd);
		unlink(tmp);
		return set_errno_error(error, errsv, "cannot write", tmp);
	}
	if (close(fd) < 0) {
		errsv = errno;
		unlink(tmp);
		return set_errno_error(error, errsv, "cannot write", tmp);
	}
	if (rename(tmp, path) < 0) {
		errsv = errno;
		unlink(tmp);
		return set_errno_error(error, errsv, "cannot rename to", path);
	}
	/* The rename itself is durable only once the directory is synced. */
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return set_errno_error(error, errno, "cannot open", dir);
	if (fsync(dirfd) < 0 && errno != EINVAL) {
		errsv = errno;
		close(dirfd);
		return set_errno_error(error, errsv, "cannot sync", dir);
	}
	close(dirfd);
	return TRUE;
}

/* ---- Reading ------------------------------------------------------------ */

typedef struct {
	const guint8 *p;
	const guint8 *end;
	gboolean bad; /* ran past the end, or a string held a NUL */
} Reader;

static gboolean take(Reader *r, void *out, gsize n)
{
	if (r->bad || (gsize)(r->end - r->p) < n) {
		r->bad = TRUE;
		memset(out, 0, n);
		return FALSE;
	}
	memcpy(out, r->p, n);
	r->p += n;
	return TRUE;
}

static guint8 get_u8(Reader *r)
{
	guint8 v;

	take(r, &v, 1);
	return v;
}

static guint32 get_u32(Reader *r)
{
	guint32 v;

	take(r, &v, 4);
	return GUINT32_FROM_LE(v);
}

static guint64 get_u64(Reader *r)
{
	guint64 v;

	take(r, &v, 8);
	return GUINT64_FROM_LE(v);
}

/* (transfer full), NULL for a saved NULL or on error (then r->bad). */
static char *get_str(Reader *r)
{
	guint32 len = get_u32(r);
	char *str;

	if (r->bad || len == NONE_LEN)
		return NULL;
	if ((gsize)(r->end - r->p) < len || memchr(r->p, '\0', len)) {
		r->bad = TRUE;
		return NULL;
	}
	str = g_strndup((const char *)r->p, len);
	r->p += len;
	return str;
}

static gboolean corrupt(GError **error, const char *path, const char *why)
{
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
		    "index file %s: %s", path, why);
	return FALSE;
}

/* Adds one saved mailbox to @index, which is inside list_begin/end. */
static gboolean add_mailbox(CacheIndex *index, Reader *r, const char *path,
			    GError **error)
{
	g_autofree char *wire_name = get_str(r);
	g_autofree char *full_name = get_str(r);
	guint8 delimiter = get_u8(r);
	guint32 flags = get_u32(r), n_pflags, n_msgs;
	CacheIndexMailbox *mbox;
	gboolean synced;

	if (r->bad)
		return corrupt(error, path, "truncated");
	if (!wire_name || !*wire_name || !full_name || !*full_name)
		return corrupt(error, path, "a mailbox without a name");
	mbox = cache_index_list_add(index, wire_name, full_name,
				    (char)delimiter, flags);
	synced = get_u8(r) != 0;
	mbox->uidvalidity = get_u32(r);
	mbox->uidnext = get_u32(r);
	mbox->highestmodseq = get_u64(r);
	mbox->readonly = get_u8(r) != 0;
	n_pflags = get_u32(r);
	g_strfreev(mbox->permanentflags);
	mbox->permanentflags = NULL;
	if (n_pflags != NONE_LEN) {
		if (n_pflags > (guint32)(r->end - r->p) / 4)
			return corrupt(error, path, "too many flags");
		mbox->permanentflags = g_new0(char *, n_pflags + 1);
		for (guint32 i = 0; i < n_pflags && !r->bad; i++)
			mbox->permanentflags[i] = get_str(r);
	}
	n_msgs = get_u32(r);
	/* A message takes at least 48 bytes (uid, size, date, modseq, empty
	 * flags, four absent strings): a count past that is a lie. */
	if (r->bad || n_msgs > (guint32)((r->end - r->p) / 48))
		return corrupt(error, path, "truncated");
	for (guint32 i = 0; i < n_msgs; i++) {
		CacheMessage *m = g_new0(CacheMessage, 1);

		m->uid = get_u32(r);
		m->size = get_u64(r);
		m->internaldate = (gint64)get_u64(r);
		m->modseq = get_u64(r);
		m->flags = get_str(r);
		m->subject = get_str(r);
		m->from = get_str(r);
		m->message_id = get_str(r);
		m->alias = get_str(r);
		if (r->bad || m->uid == 0 || !m->flags) {
			cache_message_free(m);
			return corrupt(
				error, path,
				r->bad ? "truncated"
				       : "a message without UID or flags");
		}
		cache_index_put_message(mbox, m);
	}
	/* Stale on purpose: the first look at it asks the server again. */
	mbox->synced = synced;
	mbox->synced_at = 0;
	return TRUE;
}

static CacheIndex *index_from_payload(GBytes *payload, const char *path,
				      GError **error)
{
	g_autoptr(CacheIndex) index = cache_index_new();
	gsize len;
	Reader r;
	guint32 n;

	r.p = g_bytes_get_data(payload, &len);
	r.end = r.p + len;
	r.bad = FALSE;
	n = get_u32(&r);
	if (r.bad) {
		corrupt(error, path, "truncated");
		return NULL;
	}
	cache_index_list_begin(index);
	for (guint32 i = 0; i < n; i++)
		if (!add_mailbox(index, &r, path, error))
			return NULL;
	if (r.p != r.end) {
		corrupt(error, path, "bytes after the end");
		return NULL;
	}
	cache_index_list_end(index);
	return g_steal_pointer(&index);
}

CacheIndex *cache_index_read_file(const char *path, GError **error)
{
	g_autoptr(GFile) file = g_file_new_for_path(path);
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(GBytes) payload = NULL;
	g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
	guint8 digest[SUM_LEN];
	gsize digest_len = SUM_LEN;
	const guint8 *data;
	char *contents;
	guint32 version;
	gsize len;

	if (!g_file_load_contents(file, NULL, &contents, &len, NULL, error))
		return NULL;
	bytes = g_bytes_new_take(contents, len);
	data = g_bytes_get_data(bytes, &len);
	if (len < HEADER_LEN + 4) {
		corrupt(error, path, "truncated");
		return NULL;
	}
	if (memcmp(data, INDEX_MAGIC, MAGIC_LEN) != 0) {
		corrupt(error, path, "not an imapfs index");
		return NULL;
	}
	memcpy(&version, data + MAGIC_LEN, 4);
	version = GUINT32_FROM_LE(version);
	if (version != CACHE_INDEX_FILE_VERSION) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
			    "index file %s: version %u, not %u", path, version,
			    CACHE_INDEX_FILE_VERSION);
		return NULL;
	}
	g_checksum_update(sum, data + HEADER_LEN, len - HEADER_LEN);
	g_checksum_get_digest(sum, digest, &digest_len);
	if (memcmp(digest, data + MAGIC_LEN + 4, SUM_LEN) != 0) {
		corrupt(error, path, "checksum mismatch");
		return NULL;
	}
	payload = g_bytes_new_from_bytes(bytes, HEADER_LEN, len - HEADER_LEN);
	return index_from_payload(payload, path, error);
}

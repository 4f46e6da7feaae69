/* cache/index-file.c — the index on disk.
 *
 * The file is one GVariant, an envelope that never changes shape:
 *
 *   ("imapfs-index", version, SHA-256 of the payload in hex, payload ay)
 *
 * so that a reader of any version can tell a file of another version from
 * a corrupt one. The version 1 payload is a(PAYLOAD_MAILBOX) below, one
 * entry per mailbox in id order. GVariant is safe with untrusted bytes;
 * the checksum is there because a flipped bit inside a string still makes
 * a well-formed variant, and a wrong subject or UID must not be believed.
 * Every string is a bytestring (ay, may for nullable ones): names, message
 * ids and aliases come from the server or the user and need not be UTF-8,
 * and they must come back byte for byte.
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

#define INDEX_MAGIC   "imapfs-index"
#define ENVELOPE_TYPE "(susay)"
/* uid, size, internaldate, modseq, flags, subject, from, message-id, alias */
#define PAYLOAD_MESSAGE "(utxtaymaymaymaymay)"
/* wire_name, full_name, delimiter, flags, synced, uidvalidity, uidnext,
 * highestmodseq, readonly, permanentflags, messages */
#define PAYLOAD_MAILBOX "(ayayyubuutbmaaya" PAYLOAD_MESSAGE ")"
#define PAYLOAD_TYPE	"a" PAYLOAD_MAILBOX

static GVariant *maybe_bytestring(const char *str)
{
	return g_variant_new_maybe(G_VARIANT_TYPE_BYTESTRING,
				   str ? g_variant_new_bytestring(str) : NULL);
}

/* Takes @maybe (transfer full); NULL for Nothing. */
static char *dup_maybe_bytestring(GVariant *maybe)
{
	g_autoptr(GVariant) inner = g_variant_get_maybe(maybe);

	g_variant_unref(maybe);
	return inner ? g_variant_dup_bytestring(inner, NULL) : NULL;
}

static GVariant *mailbox_to_variant(CacheIndexMailbox *mbox)
{
	GVariantBuilder msgs;
	GVariant *pflags = NULL;

	g_variant_builder_init(&msgs, G_VARIANT_TYPE("a" PAYLOAD_MESSAGE));
	if (mbox->synced) {
		GHashTableIter iter;
		gpointer value;

		g_hash_table_iter_init(&iter, mbox->by_uid);
		while (g_hash_table_iter_next(&iter, NULL, &value)) {
			const CacheMessage *m = value;

			g_variant_builder_add(
				&msgs, "(utxt^ay@may@may@may@may)", m->uid,
				m->size, m->internaldate, m->modseq,
				m->flags ? m->flags : "",
				maybe_bytestring(m->subject),
				maybe_bytestring(m->from),
				maybe_bytestring(m->message_id),
				maybe_bytestring(m->alias));
		}
	}
	if (mbox->permanentflags)
		pflags = g_variant_new_bytestring_array(
			(const char *const *)mbox->permanentflags, -1);
	return g_variant_new(
		"(^ay^ayyubuutb@maay@a" PAYLOAD_MESSAGE ")", mbox->wire_name,
		mbox->full_name, (guchar)mbox->delimiter, mbox->flags,
		mbox->synced, mbox->uidvalidity, mbox->uidnext,
		mbox->highestmodseq, mbox->readonly,
		g_variant_new_maybe(G_VARIANT_TYPE_BYTESTRING_ARRAY, pflags),
		g_variant_builder_end(&msgs));
}

/* The highest id of a mailbox that is not gone. index.h offers no count,
 * so walk the tree: every live mailbox hangs below live parents. */
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
	GVariantBuilder boxes;
	g_autoptr(GVariant) payload = NULL;
	g_autoptr(GVariant) envelope = NULL;
	g_autofree char *sum = NULL;
	guint32 last = max_live_id(index);
	CacheIndexMailbox *mbox;

	g_variant_builder_init(&boxes, G_VARIANT_TYPE(PAYLOAD_TYPE));
	/* In id order, so that a reload gives the same ids when no mailbox
	 * went in between; cache_index_mailbox skips the gone ones. */
	for (guint32 id = 1; id <= last; id++) {
		mbox = cache_index_mailbox(index, id);
		if (mbox && mbox->wire_name)
			g_variant_builder_add_value(&boxes,
						    mailbox_to_variant(mbox));
	}
	payload = g_variant_ref_sink(g_variant_builder_end(&boxes));
	sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256,
					  g_variant_get_data(payload),
					  g_variant_get_size(payload));
	envelope = g_variant_ref_sink(g_variant_new(
		"(sus@ay)", INDEX_MAGIC, CACHE_INDEX_FILE_VERSION, sum,
		g_variant_new_fixed_array(G_VARIANT_TYPE_BYTE,
					  g_variant_get_data(payload),
					  g_variant_get_size(payload), 1)));
	return g_variant_get_data_as_bytes(envelope);
}

static gboolean set_errno_error(GError **error, int errsv, const char *what,
				const char *path)
{
	g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errsv),
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

static gboolean corrupt(GError **error, const char *path, const char *why)
{
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
		    "index file %s: %s", path, why);
	return FALSE;
}

static CacheMessage *message_from_variant(GVariant *v)
{
	CacheMessage *m = g_new0(CacheMessage, 1);
	GVariant *subject, *from, *message_id, *alias;

	g_variant_get(v, "(utxt^ay@may@may@may@may)", &m->uid, &m->size,
		      &m->internaldate, &m->modseq, &m->flags, &subject, &from,
		      &message_id, &alias);
	m->subject = dup_maybe_bytestring(subject);
	m->from = dup_maybe_bytestring(from);
	m->message_id = dup_maybe_bytestring(message_id);
	m->alias = dup_maybe_bytestring(alias);
	return m;
}

/* Adds one saved mailbox to @index, which is inside list_begin/end. */
static gboolean add_mailbox(CacheIndex *index, GVariant *v, const char *path,
			    GError **error)
{
	g_autoptr(GVariant) pflags = NULL;
	g_autoptr(GVariant) msgs = NULL;
	const char *wire_name, *full_name;
	CacheIndexMailbox *mbox;
	guchar delimiter;
	gboolean synced;
	guint flags;
	GVariantIter iter;
	GVariant *child;

	g_variant_get_child(v, 0, "^&ay", &wire_name);
	g_variant_get_child(v, 1, "^&ay", &full_name);
	g_variant_get_child(v, 2, "y", &delimiter);
	g_variant_get_child(v, 3, "u", &flags);
	if (!*wire_name || !*full_name)
		return corrupt(error, path, "a mailbox without a name");
	mbox = cache_index_list_add(index, wire_name, full_name,
				    (char)delimiter, flags);
	g_variant_get_child(v, 4, "b", &synced);
	g_variant_get_child(v, 5, "u", &mbox->uidvalidity);
	g_variant_get_child(v, 6, "u", &mbox->uidnext);
	g_variant_get_child(v, 7, "t", &mbox->highestmodseq);
	g_variant_get_child(v, 8, "b", &mbox->readonly);
	g_variant_get_child(v, 9, "@maay", &pflags);
	g_variant_get_child(v, 10, "@a" PAYLOAD_MESSAGE, &msgs);
	g_strfreev(mbox->permanentflags);
	mbox->permanentflags = NULL;
	if (g_variant_n_children(pflags) > 0) {
		g_autoptr(GVariant) strv = g_variant_get_child_value(pflags, 0);

		mbox->permanentflags =
			g_variant_dup_bytestring_array(strv, NULL);
	}
	g_variant_iter_init(&iter, msgs);
	while ((child = g_variant_iter_next_value(&iter))) {
		CacheMessage *m = message_from_variant(child);

		g_variant_unref(child);
		if (m->uid == 0) {
			cache_message_free(m);
			return corrupt(error, path, "a message with UID 0");
		}
		cache_index_put_message(mbox, m);
	}
	/* Stale on purpose: the first look at it asks the server again. */
	mbox->synced = synced;
	mbox->synced_at = 0;
	return TRUE;
}

static CacheIndex *index_from_payload(GVariant *payload, const char *path,
				      GError **error)
{
	g_autoptr(CacheIndex) index = cache_index_new();
	GVariantIter iter;
	GVariant *child;

	cache_index_list_begin(index);
	g_variant_iter_init(&iter, payload);
	while ((child = g_variant_iter_next_value(&iter))) {
		gboolean ok = add_mailbox(index, child, path, error);

		g_variant_unref(child);
		if (!ok)
			return NULL;
	}
	cache_index_list_end(index);
	return g_steal_pointer(&index);
}

CacheIndex *cache_index_read_file(const char *path, GError **error)
{
	g_autoptr(GFile) file = g_file_new_for_path(path);
	g_autoptr(GBytes) bytes = NULL;
	g_autoptr(GBytes) inner = NULL;
	g_autoptr(GVariant) envelope = NULL;
	g_autoptr(GVariant) body = NULL;
	g_autoptr(GVariant) payload = NULL;
	g_autofree char *sum = NULL;
	const char *magic, *saved_sum;
	char *contents;
	gsize len;
	guint32 version;

	if (!g_file_load_contents(file, NULL, &contents, &len, NULL, error))
		return NULL;
	bytes = g_bytes_new_take(contents, len);
	envelope = g_variant_ref_sink(g_variant_new_from_bytes(
		G_VARIANT_TYPE(ENVELOPE_TYPE), bytes, FALSE));
	if (!g_variant_is_normal_form(envelope)) {
		corrupt(error, path, "truncated or corrupt");
		return NULL;
	}
	g_variant_get(envelope, "(&su&s@ay)", &magic, &version, &saved_sum,
		      &body);
	if (strcmp(magic, INDEX_MAGIC) != 0) {
		corrupt(error, path, "not an imapfs index");
		return NULL;
	}
	if (version != CACHE_INDEX_FILE_VERSION) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
			    "index file %s: version %u, not %u", path, version,
			    CACHE_INDEX_FILE_VERSION);
		return NULL;
	}
	inner = g_variant_get_data_as_bytes(body);
	sum = g_compute_checksum_for_bytes(G_CHECKSUM_SHA256, inner);
	if (strcmp(sum, saved_sum) != 0) {
		corrupt(error, path, "checksum mismatch");
		return NULL;
	}
	/* new_from_bytes copies @inner if it is not aligned for the type. */
	payload = g_variant_ref_sink(g_variant_new_from_bytes(
		G_VARIANT_TYPE(PAYLOAD_TYPE), inner, FALSE));
	if (!g_variant_is_normal_form(payload)) {
		corrupt(error, path, "malformed payload");
		return NULL;
	}
	return index_from_payload(payload, path, error);
}

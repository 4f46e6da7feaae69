/* cache/index.c — the in-memory index.
 *
 * Mailboxes live in an array indexed by id - 1 (ids are never reused, so a
 * gone mailbox keeps its slot) and in a table by UTF-8 full name. A
 * mailbox's messages are a hash table by UID plus a lazily sorted array for
 * listings in UID order. The caller holds the account's index lock.
 */
#include "cache/index.h"

#include <string.h>

struct CacheIndex {
	GPtrArray *mailboxes; /* CacheIndexMailbox *, slot id - 1 */
	GHashTable *by_name;  /* full_name -> CacheIndexMailbox * */
	gboolean ever_listed;
	gint64 listed_at;
	guint64 generation; /* bumped by LIST refreshes and renames */
};

void cache_message_free(CacheMessage *msg)
{
	if (!msg)
		return;
	cache_message_clear(msg);
	g_free(msg);
}

void cache_message_copy_to(const CacheMessage *msg, CacheMessage *out)
{
	*out = *msg;
	out->flags = g_strdup(msg->flags ? msg->flags : "");
	out->subject = g_strdup(msg->subject);
	out->from = g_strdup(msg->from);
	out->message_id = g_strdup(msg->message_id);
	out->alias = g_strdup(msg->alias);
}

CacheMessage *cache_message_copy(const CacheMessage *msg)
{
	CacheMessage *copy = g_new(CacheMessage, 1);

	cache_message_copy_to(msg, copy);
	return copy;
}

static void mailbox_free(CacheIndexMailbox *mbox)
{
	if (!mbox)
		return;
	g_free(mbox->wire_name);
	g_free(mbox->full_name);
	g_free(mbox->component);
	g_strfreev(mbox->permanentflags);
	g_clear_pointer(&mbox->sorted, g_ptr_array_unref);
	g_clear_pointer(&mbox->by_message_id, g_hash_table_unref);
	g_clear_pointer(&mbox->gaps, g_array_unref);
	g_hash_table_unref(mbox->by_alias);
	g_hash_table_unref(mbox->by_uid);
	g_free(mbox);
}

CacheIndex *cache_index_new(void)
{
	CacheIndex *index = g_new0(CacheIndex, 1);

	index->mailboxes =
		g_ptr_array_new_with_free_func((GDestroyNotify)mailbox_free);
	index->by_name = g_hash_table_new(g_str_hash, g_str_equal);
	return index;
}

void cache_index_free(CacheIndex *index)
{
	if (!index)
		return;
	g_hash_table_unref(index->by_name);
	g_ptr_array_unref(index->mailboxes);
	g_free(index);
}

CacheIndexMailbox *cache_index_mailbox(CacheIndex *index, guint32 id)
{
	CacheIndexMailbox *mbox;

	if (id == 0 || id > index->mailboxes->len)
		return NULL;
	mbox = g_ptr_array_index(index->mailboxes, id - 1);
	return mbox->gone ? NULL : mbox;
}

guint32 cache_index_max_id(CacheIndex *index)
{
	return index->mailboxes->len;
}

CacheIndexMailbox *cache_index_mailbox_by_name(CacheIndex *index,
					       const char *full_name)
{
	return g_hash_table_lookup(index->by_name, full_name);
}

GPtrArray *cache_index_children(CacheIndex *index, guint32 parent_id)
{
	GPtrArray *out = g_ptr_array_new();

	for (guint i = 0; i < index->mailboxes->len; i++) {
		CacheIndexMailbox *mbox =
			g_ptr_array_index(index->mailboxes, i);

		if (!mbox->gone && mbox->parent_id == parent_id)
			g_ptr_array_add(out, mbox);
	}
	return out;
}

guint cache_index_n_children(CacheIndex *index, guint32 parent_id)
{
	g_autoptr(GPtrArray) children = cache_index_children(index, parent_id);

	return children->len;
}

static CacheIndexMailbox *mailbox_new(CacheIndex *index, const char *full_name,
				      const char *component, guint32 parent_id,
				      char delimiter)
{
	CacheIndexMailbox *mbox = g_new0(CacheIndexMailbox, 1);

	mbox->id = index->mailboxes->len + 1;
	mbox->parent_id = parent_id;
	mbox->full_name = g_strdup(full_name);
	mbox->component = g_strdup(component);
	mbox->delimiter = delimiter;
	mbox->flags = CACHE_MAILBOX_NOSELECT;
	mbox->by_uid =
		g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
				      (GDestroyNotify)cache_message_free);
	mbox->by_alias = g_hash_table_new(g_str_hash, g_str_equal);
	g_ptr_array_add(index->mailboxes, mbox);
	g_hash_table_insert(index->by_name, mbox->full_name, mbox);
	return mbox;
}

void cache_index_list_begin(CacheIndex *index)
{
	for (guint i = 0; i < index->mailboxes->len; i++) {
		CacheIndexMailbox *mbox =
			g_ptr_array_index(index->mailboxes, i);

		mbox->listed = FALSE;
	}
}

/* Finds or makes the mailbox for @full_name and every parent on its way. */
static CacheIndexMailbox *ensure_path(CacheIndex *index, const char *full_name,
				      char delimiter)
{
	CacheIndexMailbox *mbox = NULL;
	guint32 parent_id = CACHE_ROOT_ID;
	g_auto(GStrv) parts = NULL;
	GString *prefix = g_string_new(NULL);

	if (delimiter) {
		char sep[2] = {delimiter, 0};

		parts = g_strsplit(full_name, sep, -1);
	} else {
		parts = g_new0(char *, 2);
		parts[0] = g_strdup(full_name);
	}
	for (guint i = 0; parts[i]; i++) {
		if (i > 0)
			g_string_append_c(prefix, delimiter);
		g_string_append(prefix, parts[i]);
		mbox = g_hash_table_lookup(index->by_name, prefix->str);
		if (!mbox || mbox->gone) {
			if (mbox) /* a gone one: give the name a fresh id */
				g_hash_table_remove(index->by_name,
						    prefix->str);
			mbox = mailbox_new(index, prefix->str, parts[i],
					   parent_id, delimiter);
		}
		mbox->listed = TRUE;
		parent_id = mbox->id;
	}
	g_string_free(prefix, TRUE);
	return mbox;
}

CacheIndexMailbox *cache_index_list_add(CacheIndex *index,
					const char *wire_name,
					const char *full_name, char delimiter,
					guint flags)
{
	CacheIndexMailbox *mbox = ensure_path(index, full_name, delimiter);

	if (!mbox)
		return NULL;
	g_free(mbox->wire_name);
	mbox->wire_name = g_strdup(wire_name);
	mbox->flags = flags;
	return mbox;
}

void cache_index_list_end(CacheIndex *index)
{
	for (guint i = 0; i < index->mailboxes->len; i++) {
		CacheIndexMailbox *mbox =
			g_ptr_array_index(index->mailboxes, i);

		if (!mbox->listed && !mbox->gone) {
			mbox->gone = TRUE;
			g_hash_table_remove(index->by_name, mbox->full_name);
			cache_index_clear_messages(mbox, NULL);
		}
	}
	index->ever_listed = TRUE;
	index->listed_at = g_get_monotonic_time();
	index->generation++;
}

gboolean cache_index_ever_listed(CacheIndex *index)
{
	return index->ever_listed;
}

guint64 cache_index_generation(CacheIndex *index)
{
	guint64 sum = index->generation;

	for (guint i = 0; i < index->mailboxes->len; i++)
		sum += ((CacheIndexMailbox *)g_ptr_array_index(index->mailboxes,
							       i))
			       ->generation;
	return sum;
}

void cache_index_set_listed_at(CacheIndex *index, gint64 when)
{
	index->listed_at = when;
}

gint64 cache_index_listed_at(CacheIndex *index)
{
	return index->listed_at;
}

CacheMessage *cache_index_message(CacheIndexMailbox *mbox, guint32 uid)
{
	return g_hash_table_lookup(mbox->by_uid, GUINT_TO_POINTER(uid));
}

/* Takes @uid's alias, if any, out of by_alias. */
static void forget_alias(CacheIndexMailbox *mbox, guint32 uid)
{
	CacheMessage *old = cache_index_message(mbox, uid);

	if (old && old->alias &&
	    g_hash_table_lookup(mbox->by_alias, old->alias) == old)
		g_hash_table_remove(mbox->by_alias, old->alias);
}

/* Adds @msg to by_message_id, if made, or (@add FALSE) takes it out. */
static void list_message_id(CacheIndexMailbox *mbox, CacheMessage *msg,
			    gboolean add)
{
	GPtrArray *same;

	if (!mbox->by_message_id || !msg || !msg->message_id)
		return;
	same = g_hash_table_lookup(mbox->by_message_id, msg->message_id);
	if (add && !same) {
		same = g_ptr_array_new();
		g_hash_table_insert(mbox->by_message_id,
				    g_strdup(msg->message_id), same);
	}
	if (add)
		g_ptr_array_add(same, msg);
	else if (same && g_ptr_array_remove_fast(same, msg) && !same->len)
		g_hash_table_remove(mbox->by_message_id, msg->message_id);
}

GPtrArray *cache_index_by_message_id(CacheIndexMailbox *mbox,
				     const char *message_id)
{
	if (!mbox->by_message_id) {
		GHashTableIter iter;
		gpointer value;

		mbox->by_message_id = g_hash_table_new_full(
			g_str_hash, g_str_equal, g_free,
			(GDestroyNotify)g_ptr_array_unref);
		g_hash_table_iter_init(&iter, mbox->by_uid);
		while (g_hash_table_iter_next(&iter, NULL, &value))
			list_message_id(mbox, value, TRUE);
	}
	return g_hash_table_lookup(mbox->by_message_id, message_id);
}

void cache_index_put_message(CacheIndexMailbox *mbox, CacheMessage *msg)
{
	forget_alias(mbox, msg->uid);
	list_message_id(mbox, cache_index_message(mbox, msg->uid), FALSE);
	g_hash_table_replace(mbox->by_uid, GUINT_TO_POINTER(msg->uid), msg);
	list_message_id(mbox, msg, TRUE);
	if (msg->alias)
		g_hash_table_replace(mbox->by_alias, msg->alias, msg);
	g_clear_pointer(&mbox->sorted, g_ptr_array_unref);
	mbox->generation++;
}

void cache_index_remove_message(CacheIndexMailbox *mbox, guint32 uid)
{
	forget_alias(mbox, uid);
	list_message_id(mbox, cache_index_message(mbox, uid), FALSE);
	if (g_hash_table_remove(mbox->by_uid, GUINT_TO_POINTER(uid))) {
		g_clear_pointer(&mbox->sorted, g_ptr_array_unref);
		mbox->generation++;
	}
}

void cache_index_clear_messages(CacheIndexMailbox *mbox, GArray *out_uids)
{
	if (out_uids) {
		GPtrArray *sorted = cache_index_sorted(mbox);

		for (guint i = 0; i < sorted->len; i++)
			g_array_append_val(
				out_uids,
				((CacheMessage *)sorted->pdata[i])->uid);
	}
	g_clear_pointer(&mbox->sorted, g_ptr_array_unref);
	g_clear_pointer(&mbox->by_message_id, g_hash_table_unref);
	g_clear_pointer(&mbox->gaps, g_array_unref);
	g_hash_table_remove_all(mbox->by_alias);
	g_hash_table_remove_all(mbox->by_uid);
	mbox->synced = FALSE;
	mbox->generation++;
}

CacheIndexMailbox *cache_index_renew(CacheIndex *index, CacheIndexMailbox *old)
{
	CacheIndexMailbox *mbox;

	cache_index_clear_messages(old, NULL);
	old->gone = TRUE;
	g_hash_table_remove(index->by_name, old->full_name);
	mbox = mailbox_new(index, old->full_name, old->component,
			   old->parent_id, old->delimiter);
	mbox->wire_name = g_strdup(old->wire_name);
	mbox->flags = old->flags;
	mbox->listed = old->listed;
	old->renewed_as = mbox->id;
	for (guint i = 0; i < index->mailboxes->len; i++) {
		CacheIndexMailbox *child =
			g_ptr_array_index(index->mailboxes, i);

		if (child->parent_id == old->id)
			child->parent_id = mbox->id;
	}
	index->generation++;
	return mbox;
}

guint32 cache_index_current(CacheIndex *index, guint32 id)
{
	while (id > 0 && id <= index->mailboxes->len) {
		CacheIndexMailbox *mbox =
			g_ptr_array_index(index->mailboxes, id - 1);

		if (!mbox->gone || !mbox->renewed_as)
			break;
		id = mbox->renewed_as;
	}
	return id;
}

static gint compare_uid(gconstpointer a, gconstpointer b)
{
	const CacheMessage *ma = *(const CacheMessage *const *)a;
	const CacheMessage *mb = *(const CacheMessage *const *)b;

	return ma->uid < mb->uid ? -1 : ma->uid > mb->uid;
}

GPtrArray *cache_index_sorted(CacheIndexMailbox *mbox)
{
	if (!mbox->sorted) {
		GHashTableIter iter;
		gpointer value;

		mbox->sorted =
			g_ptr_array_sized_new(g_hash_table_size(mbox->by_uid));
		g_hash_table_iter_init(&iter, mbox->by_uid);
		while (g_hash_table_iter_next(&iter, NULL, &value))
			g_ptr_array_add(mbox->sorted, value);
		g_ptr_array_sort(mbox->sorted, compare_uid);
	}
	return mbox->sorted;
}

guint32 cache_index_max_uid(CacheIndexMailbox *mbox)
{
	GPtrArray *sorted = cache_index_sorted(mbox);
	const CacheMessage *last;

	if (sorted->len == 0)
		return 0;
	last = g_ptr_array_index(sorted, sorted->len - 1);
	return last->uid;
}

CacheMessage *cache_index_message_by_alias(CacheIndexMailbox *mbox,
					   const char *alias)
{
	return g_hash_table_lookup(mbox->by_alias, alias);
}

void cache_index_set_alias(CacheIndexMailbox *mbox, CacheMessage *msg,
			   const char *alias)
{
	char *copy = g_strdup(alias);

	forget_alias(mbox, msg->uid);
	g_free(msg->alias);
	msg->alias = copy;
	if (msg->alias)
		g_hash_table_replace(mbox->by_alias, msg->alias, msg);
	mbox->generation++;
}

void cache_index_rename(CacheIndex *index, CacheIndexMailbox *mbox,
			guint32 parent_id, const char *full_name,
			const char *wire_name)
{
	g_autofree char *old_full = g_strdup(mbox->full_name);
	g_autofree char *old_wire = g_strdup(mbox->wire_name);
	gsize old_len = strlen(old_full);
	const char *last;

	for (guint i = 0; i < index->mailboxes->len; i++) {
		CacheIndexMailbox *m = g_ptr_array_index(index->mailboxes, i);
		gboolean below =
			m != mbox && !m->gone && m->delimiter &&
			strncmp(m->full_name, old_full, old_len) == 0 &&
			m->full_name[old_len] == m->delimiter;
		char *name;

		if (m != mbox && !below)
			continue;
		g_hash_table_remove(index->by_name, m->full_name);
		name = g_strconcat(full_name, m->full_name + old_len, NULL);
		g_free(m->full_name);
		m->full_name = name;
		if (m->wire_name && old_wire &&
		    g_str_has_prefix(m->wire_name, old_wire)) {
			char *wire = g_strconcat(
				wire_name, m->wire_name + strlen(old_wire),
				NULL);

			g_free(m->wire_name);
			m->wire_name = wire;
		}
		g_hash_table_insert(index->by_name, m->full_name, m);
	}
	index->generation++;
	mbox->parent_id = parent_id;
	last = mbox->delimiter ? strrchr(full_name, mbox->delimiter) : NULL;
	g_free(mbox->component);
	mbox->component = g_strdup(last ? last + 1 : full_name);
}

CacheIndexMailbox *cache_index_find_trash(CacheIndex *index)
{
	CacheIndexMailbox *named = NULL;

	for (guint i = 0; i < index->mailboxes->len; i++) {
		CacheIndexMailbox *mbox =
			g_ptr_array_index(index->mailboxes, i);

		if (mbox->gone || !mbox->wire_name ||
		    (mbox->flags & CACHE_MAILBOX_NOSELECT))
			continue;
		if (mbox->flags & CACHE_MAILBOX_TRASH)
			return mbox;
		if (!named && mbox->parent_id == CACHE_ROOT_ID &&
		    g_ascii_strcasecmp(mbox->full_name, "Trash") == 0)
			named = mbox;
	}
	return named;
}

char cache_index_delimiter(CacheIndex *index)
{
	for (guint i = 0; i < index->mailboxes->len; i++) {
		CacheIndexMailbox *mbox =
			g_ptr_array_index(index->mailboxes, i);

		if (!mbox->gone && mbox->delimiter)
			return mbox->delimiter;
	}
	return '\0';
}

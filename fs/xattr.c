/* fs/xattr.c — building xattr values from what the index knows.
 *
 * Only user.imap.flags is listed: rsync -X restores every listed attribute,
 * and the others are facts the server decides, which cannot be set. The
 * internaldate is given in IMAP's own date-time form, in UTC.
 */
#include "fs/xattr.h"

#include <string.h>

static const char listed[] = FS_XATTR_PREFIX "flags";

const char *fs_xattr_message_list(gsize *out_len)
{
	*out_len = sizeof(listed); /* with its NUL */
	return listed;
}

char *fs_xattr_message(const CacheMailbox *mailbox, const CacheMessage *msg,
		       const char *name)
{
	if (!g_str_has_prefix(name, FS_XATTR_PREFIX))
		return NULL;
	name += strlen(FS_XATTR_PREFIX);
	if (strcmp(name, "flags") == 0)
		return g_strdup(msg->flags);
	if (strcmp(name, "uid") == 0)
		return g_strdup_printf("%u", msg->uid);
	if (strcmp(name, "uidvalidity") == 0)
		return g_strdup_printf("%u", mailbox->uidvalidity);
	if (strcmp(name, "internaldate") == 0)
		return cache_format_internaldate(msg->internaldate);
	if (strcmp(name, "modseq") == 0)
		return msg->modseq ? g_strdup_printf("%" G_GUINT64_FORMAT,
						     msg->modseq)
				   : NULL;
	if (strcmp(name, "subject") == 0)
		return g_strdup(msg->subject);
	if (strcmp(name, "from") == 0)
		return g_strdup(msg->from);
	if (strcmp(name, "message-id") == 0)
		return g_strdup(msg->message_id);
	return NULL;
}

static char *special_use(guint flags)
{
	static const struct {
		guint flag;
		const char *name;
	} uses[] = {
		{CACHE_MAILBOX_TRASH, "\\Trash"},
		{CACHE_MAILBOX_JUNK, "\\Junk"},
		{CACHE_MAILBOX_SENT, "\\Sent"},
		{CACHE_MAILBOX_DRAFTS, "\\Drafts"},
		{CACHE_MAILBOX_ARCHIVE, "\\Archive"},
	};
	GString *out = g_string_new(NULL);

	for (guint i = 0; i < G_N_ELEMENTS(uses); i++) {
		if (!(flags & uses[i].flag))
			continue;
		if (out->len)
			g_string_append_c(out, ' ');
		g_string_append(out, uses[i].name);
	}
	if (out->len == 0) {
		g_string_free(out, TRUE);
		return NULL;
	}
	return g_string_free(out, FALSE);
}

char *fs_xattr_mailbox(const CacheMailbox *mailbox, const char *name)
{
	gboolean selectable = !(mailbox->flags & CACHE_MAILBOX_NOSELECT);

	if (!g_str_has_prefix(name, FS_XATTR_PREFIX) || mailbox->id == 0)
		return NULL;
	name += strlen(FS_XATTR_PREFIX);
	if (strcmp(name, "name") == 0)
		return g_strdup(mailbox->full_name);
	if (strcmp(name, "delimiter") == 0)
		return mailbox->delimiter
			       ? g_strdup_printf("%c", mailbox->delimiter)
			       : NULL;
	if (strcmp(name, "special-use") == 0)
		return special_use(mailbox->flags);
	if (!selectable || !mailbox->uidvalidity)
		return NULL;
	if (strcmp(name, "uidvalidity") == 0)
		return g_strdup_printf("%u", mailbox->uidvalidity);
	if (strcmp(name, "uidnext") == 0)
		return mailbox->uidnext
			       ? g_strdup_printf("%u", mailbox->uidnext)
			       : NULL;
	if (strcmp(name, "messages") == 0)
		return g_strdup_printf("%u", mailbox->n_messages);
	if (strcmp(name, "highestmodseq") == 0)
		return mailbox->highestmodseq
			       ? g_strdup_printf("%" G_GUINT64_FORMAT,
						 mailbox->highestmodseq)
			       : NULL;
	return NULL;
}

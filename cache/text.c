/* cache/text.c — decoding header text with GMime.
 *
 * g_mime_utils_header_decode_text() handles RFC 2047 encoded words and
 * guesses the charset of raw 8-bit text; we then guarantee valid UTF-8 and
 * a single line, since the result ends up in file names and xattrs.
 */
#include "cache/text.h"

#include <gmime/gmime.h>
#include <string.h>

void cache_text_init(void)
{
	static gsize once;

	if (g_once_init_enter(&once)) {
		g_mime_init();
		g_once_init_leave(&once, 1);
	}
}

/* @text as valid UTF-8 on one line: runs of white space, CR and LF made
 * one space, the ends trimmed. (transfer full) */
static char *one_line(const char *text)
{
	g_autofree char *valid = g_utf8_make_valid(text, -1);
	GString *out;
	char *result;
	gboolean space = FALSE;

	out = g_string_sized_new(strlen(valid));
	for (const char *p = valid; *p; p++) {
		if (*p == '\r' || *p == '\n' || *p == '\t' || *p == ' ') {
			space = TRUE;
			continue;
		}
		if (space && out->len > 0)
			g_string_append_c(out, ' ');
		space = FALSE;
		g_string_append_c(out, *p);
	}
	/* Kept as long as the message is listed: its size, not the
	 * GString's power of two (about 250 bytes a message). */
	result = g_strndup(out->str, out->len);
	g_string_free(out, TRUE);
	return result;
}

char *cache_text_decode_header(const char *raw)
{
	g_autofree char *decoded = NULL;

	if (!raw)
		return NULL;
	decoded = g_mime_utils_header_decode_text(NULL, raw);
	return one_line(decoded ? decoded : raw);
}

char *cache_text_header_field(const char *block, gsize len, const char *name)
{
	const char *end = block + len;
	gsize n = strlen(name);

	for (const char *line = block; line < end;) {
		const char *eol = memchr(line, '\n', end - line);
		const char *next = eol ? eol + 1 : end;
		const char *p = line + n;

		/* "Name", optional blanks (obsolete syntax), ":" */
		if ((gsize)(end - line) > n &&
		    g_ascii_strncasecmp(line, name, n) == 0) {
			while (p < next && (*p == ' ' || *p == '\t'))
				p++;
			if (p < next && *p == ':') {
				/* The value goes on over lines that start
				 * with a blank. */
				while (next < end &&
				       (*next == ' ' || *next == '\t')) {
					eol = memchr(next, '\n', end - next);
					next = eol ? eol + 1 : end;
				}
				return g_strndup(p + 1, next - (p + 1));
			}
		}
		line = next;
	}
	return NULL;
}

/* The first mailbox of @list, looking into groups too. (transfer none) */
static InternetAddressMailbox *first_mailbox(InternetAddressList *list)
{
	for (int i = 0; list && i < internet_address_list_length(list); i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		InternetAddressMailbox *mb = NULL;

		if (INTERNET_ADDRESS_IS_MAILBOX(ia))
			mb = INTERNET_ADDRESS_MAILBOX(ia);
		else if (INTERNET_ADDRESS_IS_GROUP(ia))
			mb = first_mailbox(internet_address_group_get_members(
				INTERNET_ADDRESS_GROUP(ia)));
		if (mb && internet_address_mailbox_get_addr(mb) &&
		    *internet_address_mailbox_get_addr(mb))
			return mb;
	}
	return NULL;
}

char *cache_text_decode_address(const char *raw)
{
	InternetAddressList *list;
	InternetAddressMailbox *mb;
	char *out;

	if (!raw)
		return NULL;
	list = internet_address_list_parse(NULL, raw);
	mb = first_mailbox(list);
	if (!mb) {
		out = cache_text_decode_header(raw);
	} else {
		const char *name =
			internet_address_get_name(INTERNET_ADDRESS(mb));
		const char *addr = internet_address_mailbox_get_addr(mb);
		g_autofree char *both =
			name && *name ? g_strdup_printf("%s <%s>", name, addr)
				      : g_strdup(addr);

		out = one_line(both);
	}
	if (list)
		g_object_unref(list);
	return out;
}

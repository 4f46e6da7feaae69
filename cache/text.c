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

char *cache_text_decode_header(const char *raw)
{
	g_autofree char *decoded = NULL;
	g_autofree char *valid = NULL;
	GString *out;
	char *result;
	gboolean space = FALSE;

	if (!raw)
		return NULL;
	decoded = g_mime_utils_header_decode_text(NULL, raw);
	valid = g_utf8_make_valid(decoded ? decoded : raw, -1);
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

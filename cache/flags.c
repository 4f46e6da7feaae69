/* cache/flags.c — flag lists as users write them.
 *
 * A flag is "\" + atom (a system flag) or an atom (a keyword), RFC 9051
 * §2.3.2. Of the system flags only \Seen \Answered \Flagged \Deleted and
 * \Draft can be stored; \Recent is the server's, \* is only a PERMANENTFLAGS
 * marker. The encoder in imap/command.c checks again before sending.
 */
#include "cache/flags.h"

#include <string.h>

#include "cache/error.h"
#include "imap/command.h"

static const char *const system_flags[] = {
	"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft",
};

char *cache_flags_normalize(const char *text, GError **error)
{
	g_auto(GStrv) tokens = g_strsplit(text ? text : "", " ", -1);
	GPtrArray *out = g_ptr_array_new();
	char *joined;

	for (guint i = 0; tokens[i]; i++) {
		const char *flag = tokens[i];
		gboolean dup = FALSE;

		if (!*flag)
			continue;
		if (!imap_is_flag(flag)) {
			g_set_error(error, IMAPFS_CACHE_ERROR,
				    CACHE_ERROR_INVALID,
				    "\"%s\" is not an IMAP flag", flag);
			goto fail;
		}
		if (flag[0] == '\\') {
			const char *known = NULL;

			for (guint k = 0; k < G_N_ELEMENTS(system_flags); k++)
				if (g_ascii_strcasecmp(flag, system_flags[k]) ==
				    0)
					known = system_flags[k];
			if (!known) {
				g_set_error(error, IMAPFS_CACHE_ERROR,
					    CACHE_ERROR_INVALID,
					    "%s cannot be set (settable: "
					    "\\Seen \\Answered \\Flagged "
					    "\\Deleted \\Draft and keywords)",
					    flag);
				goto fail;
			}
			flag = known;
		}
		for (guint k = 0; k < out->len && !dup; k++)
			dup = g_ascii_strcasecmp(out->pdata[k], flag) == 0;
		if (!dup)
			g_ptr_array_add(out, (gpointer)flag);
	}
	g_ptr_array_add(out, NULL);
	joined = g_strjoinv(" ", (char **)out->pdata);
	g_ptr_array_unref(out);
	return joined;
fail:
	g_ptr_array_unref(out);
	return NULL;
}

/* Whether every flag of @a is in @b. */
static gboolean flags_within(char **a, char **b)
{
	for (guint i = 0; a[i]; i++) {
		gboolean in = !*a[i];

		for (guint k = 0; b[k] && !in; k++)
			in = g_ascii_strcasecmp(a[i], b[k]) == 0;
		if (!in)
			return FALSE;
	}
	return TRUE;
}

gboolean cache_flags_equal(const char *a, const char *b)
{
	g_auto(GStrv) as = g_strsplit(a ? a : "", " ", -1);
	g_auto(GStrv) bs = g_strsplit(b ? b : "", " ", -1);

	return flags_within(as, bs) && flags_within(bs, as);
}

gboolean cache_flags_keywords_allowed(const char *flags,
				      char *const *permanentflags)
{
	g_auto(GStrv) tokens = NULL;

	if (!permanentflags)
		return TRUE;
	for (guint i = 0; permanentflags[i]; i++)
		if (strcmp(permanentflags[i], "\\*") == 0)
			return TRUE;
	tokens = g_strsplit(flags, " ", -1);
	for (guint i = 0; tokens[i]; i++) {
		gboolean listed = FALSE;

		if (!*tokens[i] || tokens[i][0] == '\\')
			continue;
		for (guint k = 0; permanentflags[k] && !listed; k++)
			listed = g_ascii_strcasecmp(permanentflags[k],
						    tokens[i]) == 0;
		if (!listed)
			return FALSE;
	}
	return TRUE;
}

/* cache/flags.h — the user.imap.flags value: checking and normalising.
 * Pure functions, any thread. */
#ifndef IMAPFS_CACHE_FLAGS_H
#define IMAPFS_CACHE_FLAGS_H

#include <glib.h>

/* Turns what a user wrote ("\seen  $Work \Flagged") into the canonical
 * space-separated set ("\Seen $Work \Flagged"): split on spaces (any other
 * white space is an error, like any byte that cannot be in a flag),
 * system flags spelled as RFC 9051 does, duplicates dropped, order kept.
 * CACHE_ERROR_INVALID for a token that is not a flag, for \Recent and \*
 * (which cannot be set), and for an unknown system flag. (transfer full) */
char *cache_flags_normalize(const char *text, GError **error);

/* TRUE if the server lets us store every keyword in @flags: its
 * PERMANENTFLAGS (nullable: unknown, assume yes) holds \* or each of them. */
gboolean cache_flags_keywords_allowed(const char *flags,
				      char *const *permanentflags);

/* TRUE if space-separated flag lists @a and @b (nullable: none) hold the
 * same flags, in any order and case (flags are case-insensitive). */
gboolean cache_flags_equal(const char *a, const char *b);

#endif

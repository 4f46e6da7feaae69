/* fs/names.h — names in the tree: mailbox <-> directory, message -> file.
 *
 * Mailbox names arrive as UTF-8 components (the server's hierarchy split on
 * its delimiter). A component becomes a directory entry name by escaping
 * what cannot stand in one: '/', NUL and control characters (< 0x20, 0x7f)
 * as %XX (upper-case hex), '%' as %25, the names "." and ".." as %2E and
 * %2E%2E, and a leading character that would make the name look like a
 * message file (see below) as %3X. The mapping is reversible.
 *
 * A message file is named "<uid>-<subject>.eml" with the UID zero-padded to
 * ten digits (so lexical order is UID order for every 32-bit UID, and the
 * name never changes) and the decoded Subject cleaned: letters, digits and
 * "-_.,+=@()&!" kept, any other run of characters (spaces, '/', ':',
 * quotes, controls, invalid UTF-8 bytes) becomes one '_', leading/trailing
 * '_' and '.' trimmed, cut at 60 characters (on a character boundary; valid
 * UTF-8 is NFC-normalised first). No usable subject gives "<uid>.eml".
 * Pure functions, any thread.
 */
#ifndef IMAPFS_FS_NAMES_H
#define IMAPFS_FS_NAMES_H

#include <glib.h>

#define FS_NAMES_UID_DIGITS 10

/* Directory entry name for mailbox component @component (UTF-8, or bytes
 * from a server that sent invalid UTF-8: then non-UTF-8 bytes are escaped
 * as %XX too). An empty @component (no server should send one) gives "",
 * which is no usable entry name: callers skip such a mailbox.
 * (transfer full) */
char *fs_names_from_mailbox(const char *component);

/* The mailbox component for directory entry @name, or NULL if @name is not
 * a valid directory name for a mailbox: a bad %XX escape, an empty result,
 * invalid UTF-8, or a result that contains @delimiter ('\0': none).
 * Hex digits of either case are accepted, so several names can decode to
 * one mailbox: where that matters (lookup, mkdir), accept @name only if
 * fs_names_from_mailbox() of the result gives @name back. (transfer full) */
char *fs_names_to_mailbox(const char *name, char delimiter);

/* File name for message @uid with decoded subject @subject (nullable).
 * (transfer full) */
char *fs_names_message(guint32 uid, const char *subject);

/* TRUE if @name has the shape of a message file name ("<10 digits>.eml"
 * or "<10 digits>-....eml"), with the UID in *out_uid (non-zero). Whether
 * it is the canonical name must be checked against fs_names_message(). */
gboolean fs_names_parse_message(const char *name, guint32 *out_uid);

#endif

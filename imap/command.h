/* imap/command.h — the only way to build an IMAP command.
 *
 * A command is built from a format with typed directives, so user text is
 * never pasted into the wire form:
 *   %u  unsigned int (guint32), as digits
 *   %U  const char *: a UID or sequence set ("1:5,7,9:*"); checked
 *   %a  const char *: an atom; checked (ATOM-CHAR only, not empty)
 *   %q  const char *: an astring (UTF-8 allowed); sent as an atom when it is
 *       one, else quoted, else (CR, LF, NUL, 8-bit, or over 1000 bytes) as a
 *       literal
 *   %m  const char *: a mailbox name in UTF-8; encoded to modified UTF-7
 *       (RFC 3501 §5.1.3), then as %q
 *   %F  const char *: a space-separated list of flags ("\Seen $Work");
 *       each checked as a flag; emitted as "(\Seen $Work)"
 *   %L  GBytes *: always sent as a literal (a message for APPEND); the
 *       command takes its own reference
 *   %%  a literal '%'
 * Anything else in the format is copied as is, so formats must be string
 * constants. The tag and the final CRLF are added by the connection.
 * A command is immutable once built; which connection sends it and whether
 * a literal is synchronising is decided at send time.
 */
#ifndef IMAPFS_IMAP_COMMAND_H
#define IMAPFS_IMAP_COMMAND_H

#include <glib.h>

typedef struct ImapCommand ImapCommand;

typedef enum {
	IMAP_COMMAND_RETRIABLE = 1 << 0, /* safe to resend after a drop */
	IMAP_COMMAND_SECRET = 1 << 1,	 /* hide arguments in traces */
	/* Work no one waits for yet (prefetch): the pool sends it after
	 * the others, and never where they would queue behind it. */
	IMAP_COMMAND_BACKGROUND = 1 << 2,
} ImapCommandFlags;

/* One piece of the wire form: @text (never contains a literal), then,
 * if @literal is non-NULL, one literal whose "{n}" header the connection
 * writes after @text. */
typedef struct {
	const char *text;
	gsize text_len;
	GBytes *literal; /* nullable */
} ImapCommandPart;

/* Builds a command. On a bad argument (a non-atom for %a, a flag with a
 * space, invalid UTF-8 for %m, an unknown directive) returns NULL and sets
 * IMAP_ERROR_INVALID with a message naming the argument. */
ImapCommand *imap_command_new(GError **error, ImapCommandFlags flags,
			      const char *format, ...);
ImapCommand *imap_command_newv(GError **error, ImapCommandFlags flags,
			       const char *format, va_list args);
void imap_command_free(ImapCommand *cmd); /* NULL-safe */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImapCommand, imap_command_free)

ImapCommandFlags imap_command_flags(const ImapCommand *cmd);
/* The command's first word(s), for logs: "UID FETCH", "SELECT". */
const char *imap_command_name(const ImapCommand *cmd);
/* The whole command as a log line; literals as "{N bytes}", SECRET
 * commands as "LOGIN <hidden>". (transfer full) */
char *imap_command_describe(const ImapCommand *cmd);

guint imap_command_n_parts(const ImapCommand *cmd);
const ImapCommandPart *imap_command_part(const ImapCommand *cmd, guint i);

/* TRUE if @s can be sent as an atom (RFC 3501 ATOM-CHAR, not empty). */
gboolean imap_is_atom(const char *s);
/* TRUE if @s is a valid flag: "\" atom or an atom (keyword). */
gboolean imap_is_flag(const char *s);

#endif

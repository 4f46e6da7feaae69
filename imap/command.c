/* imap/command.c — building IMAP commands from typed directives.
 *
 * A command is a list of parts: some text, then optionally one literal.
 * The connection writes, for each part, the text, then "{n}" or "{n+}",
 * CRLF and the literal's bytes; it adds the tag in front and the final
 * CRLF. Built once, never changed, so any thread may read it.
 *
 * The one property that matters: no argument can end the line early and
 * smuggle in a second command. Part text is made only of the format
 * (checked: printable 7-bit), digits, checked atoms, checked sequence sets
 * and flag lists, and quoted strings whose bytes are all printable 7-bit.
 * Everything else (8-bit, CR, LF, other controls, over QUOTED_MAX bytes)
 * goes into a literal, whose length the server reads instead of scanning
 * for CRLF (RFC 3501 §4.3, §9 "astring").
 *
 * Errors name the format, the argument and its value with non-printable
 * bytes escaped; for SECRET commands the value is never shown.
 */
#include "imap/command.h"

#include <string.h>

#include "imap/error.h"
#include "imap/utf7.h"

/* Longest string sent quoted; longer ones go as literals. Servers cap
 * line length (Dovecot: 64 KiB), literals are exempt. */
#define QUOTED_MAX 1000
/* How much of a bad value an error message shows. */
#define SHOW_MAX 64

struct ImapCommand {
	ImapCommandFlags flags;
	char *name;
	GArray *parts; /* ImapCommandPart; text and literal owned */
};

static void command_part_clear(gpointer data)
{
	ImapCommandPart *part = data;

	g_free((char *)part->text);
	g_clear_pointer(&part->literal, g_bytes_unref);
}

void imap_command_free(ImapCommand *cmd)
{
	if (!cmd)
		return;
	g_free(cmd->name);
	g_array_unref(cmd->parts);
	g_free(cmd);
}

/* ATOM-CHAR: any CHAR except atom-specials: "(" ")" "{" SP CTL "%" "*"
 * DQUOTE "\" "]" (RFC 3501 §9). */
static gboolean command_is_atom_char(guchar c)
{
	if (c <= 0x20 || c >= 0x7f)
		return FALSE;
	return strchr("(){%*\"\\]", c) == NULL;
}

gboolean imap_is_atom(const char *s)
{
	if (!s || !*s)
		return FALSE;
	for (; *s; s++) {
		if (!command_is_atom_char((guchar)*s))
			return FALSE;
	}
	return TRUE;
}

gboolean imap_is_flag(const char *s)
{
	if (!s)
		return FALSE;
	if (*s == '\\')
		s++;
	return imap_is_atom(s);
}

static gboolean command_is_printable(const char *s, gsize len)
{
	for (gsize i = 0; i < len; i++) {
		if ((guchar)s[i] < 0x20 || (guchar)s[i] > 0x7e)
			return FALSE;
	}
	return TRUE;
}

/* nz-number (fitting in 32 bits) or "*"; advances *pp past it. */
static gboolean command_take_seq_number(const char **pp)
{
	const char *p = *pp;
	guint64 v = 0;

	if (*p == '*') {
		*pp = p + 1;
		return TRUE;
	}
	if (*p < '1' || *p > '9')
		return FALSE;
	for (; g_ascii_isdigit(*p); p++) {
		v = v * 10 + (guint64)(*p - '0');
		if (v > G_MAXUINT32)
			return FALSE;
	}
	*pp = p;
	return TRUE;
}

/* sequence-set (RFC 3501 §9), without RFC 5182's "$". */
static gboolean command_is_sequence_set(const char *s)
{
	const char *p = s;

	for (;;) {
		if (!command_take_seq_number(&p))
			return FALSE;
		if (*p == ':') {
			p++;
			if (!command_take_seq_number(&p))
				return FALSE;
		}
		if (*p == '\0')
			return TRUE;
		if (*p != ',')
			return FALSE;
		p++;
	}
}

/* "" or flags separated by single spaces. */
static gboolean command_is_flag_list(const char *s)
{
	if (!*s)
		return TRUE;

	g_auto(GStrv) flags = g_strsplit(s, " ", -1);

	for (guint i = 0; flags[i]; i++) {
		if (!imap_is_flag(flags[i]))
			return FALSE;
	}
	return TRUE;
}

/* @s for an error message: quoted, non-printables as \xNN, cut at @max
 * bytes (0: no limit). (transfer full) */
static char *command_show(const char *s, gsize max)
{
	if (!s)
		return g_strdup("NULL");

	GString *out = g_string_new("\"");
	gsize i;

	for (i = 0; s[i] && (max == 0 || i < max); i++) {
		guchar c = (guchar)s[i];

		if (c < 0x20 || c > 0x7e)
			g_string_append_printf(out, "\\x%02x", c);
		else if (c == '"' || c == '\\')
			g_string_append_printf(out, "\\%c", c);
		else
			g_string_append_c(out, (char)c);
	}
	g_string_append_c(out, '"');
	if (s[i])
		g_string_append(out, "...");
	return g_string_free(out, FALSE);
}

typedef struct {
	ImapCommandFlags flags;
	const char *format;
	GArray *parts;
	GString *text; /* of the part being built */
	guint argno;
} CommandBuilder;

static void command_set_error(CommandBuilder *b, GError **error, char directive,
			      const char *what, const char *value)
{
	g_autofree char *fmt = command_show(b->format, 0);
	g_autofree char *shown = (b->flags & IMAP_COMMAND_SECRET)
					 ? g_strdup("<hidden>")
					 : command_show(value, SHOW_MAX);

	g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_INVALID,
		    "command %s: argument %u (%%%c) %s: %s", fmt, b->argno,
		    directive, what, shown);
}

/* Ends the current part with @literal (transfer full, nullable). */
static void command_push_part(CommandBuilder *b, GBytes *literal)
{
	ImapCommandPart part;

	part.text_len = b->text->len;
	part.text = g_string_free(b->text, FALSE);
	part.literal = literal;
	g_array_append_val(b->parts, part);
	b->text = g_string_new(NULL);
}

static void command_append_astring(CommandBuilder *b, const char *s)
{
	gsize len = strlen(s);

	/* ']' is an ASTRING-CHAR but not an ATOM-CHAR: such strings go
	 * quoted, which every server accepts. */
	if (imap_is_atom(s)) {
		g_string_append_len(b->text, s, len);
		return;
	}
	if (len <= QUOTED_MAX && command_is_printable(s, len)) {
		g_string_append_c(b->text, '"');
		for (gsize i = 0; i < len; i++) {
			if (s[i] == '"' || s[i] == '\\')
				g_string_append_c(b->text, '\\');
			g_string_append_c(b->text, s[i]);
		}
		g_string_append_c(b->text, '"');
		return;
	}
	command_push_part(b, g_bytes_new(s, len));
}

/* Handles the directive @d; FALSE with @error set if its argument is bad
 * or @d is unknown. */
static gboolean command_directive(CommandBuilder *b, char d, va_list *args,
				  GError **error)
{
	const char *s;

	if (d == '%') {
		g_string_append_c(b->text, '%');
		return TRUE;
	}
	b->argno++;
	if (d == 'u') {
		g_string_append_printf(b->text, "%u", va_arg(*args, guint));
		return TRUE;
	}
	if (d == 'L') {
		GBytes *bytes = va_arg(*args, GBytes *);

		if (!bytes) {
			command_set_error(b, error, d, "is NULL", NULL);
			return FALSE;
		}
		command_push_part(b, g_bytes_ref(bytes));
		return TRUE;
	}
	if (!strchr("UaqmF", d) || d == '\0') {
		g_autofree char *fmt = command_show(b->format, 0);

		g_set_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_INVALID,
			    "command %s: unknown directive %%%c", fmt,
			    g_ascii_isprint(d) ? d : '?');
		return FALSE;
	}
	s = va_arg(*args, const char *);
	if (!s) {
		command_set_error(b, error, d, "is NULL", s);
		return FALSE;
	}
	switch (d) {
	case 'U':
		if (!command_is_sequence_set(s)) {
			command_set_error(b, error, d, "is not a sequence set",
					  s);
			return FALSE;
		}
		g_string_append(b->text, s);
		return TRUE;
	case 'a':
		if (!imap_is_atom(s)) {
			command_set_error(b, error, d, "is not an atom", s);
			return FALSE;
		}
		g_string_append(b->text, s);
		return TRUE;
	case 'q':
		command_append_astring(b, s);
		return TRUE;
	case 'm': {
		g_autofree char *mutf7 = imap_utf7_encode(s);

		if (!mutf7) {
			command_set_error(b, error, d, "is not valid UTF-8", s);
			return FALSE;
		}
		command_append_astring(b, mutf7);
		return TRUE;
	}
	default: /* 'F' */
		if (!command_is_flag_list(s)) {
			command_set_error(b, error, d, "is not a flag list", s);
			return FALSE;
		}
		g_string_append_c(b->text, '(');
		g_string_append(b->text, s);
		g_string_append_c(b->text, ')');
		return TRUE;
	}
}

/* "UID FETCH" or "SELECT": the first word of the first part, two if the
 * first is UID. */
static char *command_make_name(const ImapCommandPart *first)
{
	const char *t = first->text;
	const char *end = t + first->text_len;
	const char *sp = memchr(t, ' ', first->text_len);

	if (sp && sp - t == 3 && g_ascii_strncasecmp(t, "UID", 3) == 0) {
		const char *sp2 = memchr(sp + 1, ' ', end - (sp + 1));

		sp = sp2;
	}
	return g_strchomp(g_strndup(t, sp ? (gsize)(sp - t) : first->text_len));
}

ImapCommand *imap_command_newv(GError **error, ImapCommandFlags flags,
			       const char *format, va_list args)
{
	g_return_val_if_fail(format != NULL, NULL);
	g_return_val_if_fail(error == NULL || *error == NULL, NULL);

	CommandBuilder b = {
		.flags = flags,
		.format = format,
		.parts = g_array_new(FALSE, FALSE, sizeof(ImapCommandPart)),
		.text = g_string_new(NULL),
	};
	va_list ap;
	gboolean ok = TRUE;

	g_array_set_clear_func(b.parts, command_part_clear);
	va_copy(ap, args);
	if (!*format) {
		g_set_error_literal(error, IMAPFS_IMAP_ERROR,
				    IMAP_ERROR_INVALID, "empty command format");
		ok = FALSE;
	}
	for (const char *f = format; ok && *f; f++) {
		if (*f == '%') {
			f++;
			ok = command_directive(&b, *f, &ap, error);
			if (!*f)
				break;
		} else if ((guchar)*f >= 0x20 && (guchar)*f <= 0x7e) {
			g_string_append_c(b.text, *f);
		} else {
			g_autofree char *fmt = command_show(format, 0);

			g_set_error(error, IMAPFS_IMAP_ERROR,
				    IMAP_ERROR_INVALID,
				    "command %s: format has a byte 0x%02x", fmt,
				    (guchar)*f);
			ok = FALSE;
		}
	}
	va_end(ap);

	if (!ok) {
		g_string_free(b.text, TRUE);
		g_array_unref(b.parts);
		return NULL;
	}
	/* A command ending in a literal needs no empty part after it. */
	if (b.text->len > 0 || b.parts->len == 0)
		command_push_part(&b, NULL);
	g_string_free(b.text, TRUE);

	ImapCommand *cmd = g_new0(ImapCommand, 1);

	cmd->flags = flags;
	cmd->parts = b.parts;
	cmd->name =
		command_make_name(&g_array_index(b.parts, ImapCommandPart, 0));
	return cmd;
}

ImapCommand *imap_command_new(GError **error, ImapCommandFlags flags,
			      const char *format, ...)
{
	ImapCommand *cmd;
	va_list args;

	va_start(args, format);
	cmd = imap_command_newv(error, flags, format, args);
	va_end(args);
	return cmd;
}

ImapCommandFlags imap_command_flags(const ImapCommand *cmd)
{
	g_return_val_if_fail(cmd != NULL, 0);
	return cmd->flags;
}

const char *imap_command_name(const ImapCommand *cmd)
{
	g_return_val_if_fail(cmd != NULL, NULL);
	return cmd->name;
}

char *imap_command_describe(const ImapCommand *cmd)
{
	g_return_val_if_fail(cmd != NULL, NULL);

	if (cmd->flags & IMAP_COMMAND_SECRET)
		return g_strdup_printf("%s <hidden>", cmd->name);

	GString *out = g_string_new(NULL);

	for (guint i = 0; i < cmd->parts->len; i++) {
		const ImapCommandPart *part =
			&g_array_index(cmd->parts, ImapCommandPart, i);

		g_string_append_len(out, part->text, part->text_len);
		if (part->literal)
			g_string_append_printf(out,
					       "{%" G_GSIZE_FORMAT " bytes}",
					       g_bytes_get_size(part->literal));
	}
	return g_string_free(out, FALSE);
}

guint imap_command_n_parts(const ImapCommand *cmd)
{
	g_return_val_if_fail(cmd != NULL, 0);
	return cmd->parts->len;
}

const ImapCommandPart *imap_command_part(const ImapCommand *cmd, guint i)
{
	g_return_val_if_fail(cmd != NULL, NULL);
	g_return_val_if_fail(i < cmd->parts->len, NULL);
	return &g_array_index(cmd->parts, ImapCommandPart, i);
}

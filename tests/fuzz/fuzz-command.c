/* tests/fuzz/fuzz-command.c — libFuzzer target for the command builder.
 *
 * The input (up to its first NUL) is passed to each argument directive.
 * Whatever the builder accepts must be safe on the wire: no part's text
 * holds CR, LF or NUL, so an argument can never end the command and start
 * another. Beyond that, the wire form is decoded here by an independent
 * reading of RFC 3501's astring (atom, quoted string or literal) and must
 * give the argument back, and each directive must accept exactly what its
 * contract says.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "imap/command.h"
#include "imap/utf7.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
	return 0;
}

/* The invariant: no text part can terminate the command line. */
static void fuzz_check_wire(const ImapCommand *cmd)
{
	guint n = imap_command_n_parts(cmd);
	g_autofree char *desc = imap_command_describe(cmd);

	FUZZ_CHECK(n > 0);
	for (guint i = 0; i < n; i++) {
		const ImapCommandPart *part = imap_command_part(cmd, i);

		FUZZ_CHECK(part != NULL && part->text != NULL);
		FUZZ_CHECK(memchr(part->text, '\r', part->text_len) == NULL);
		FUZZ_CHECK(memchr(part->text, '\n', part->text_len) == NULL);
		FUZZ_CHECK(strlen(part->text) == part->text_len);
	}
	/* The log line cannot forge log lines either. */
	FUZZ_CHECK(desc != NULL);
	FUZZ_CHECK(strchr(desc, '\r') == NULL && strchr(desc, '\n') == NULL);
	FUZZ_CHECK(imap_command_name(cmd) != NULL);
}

/* Reads through the wire form of a command: the current part and the
 * position in its text. */
typedef struct {
	const ImapCommand *cmd;
	guint part;
	gsize pos;
} FuzzReader;

static const ImapCommandPart *fuzz_cur(FuzzReader *r)
{
	if (r->part >= imap_command_n_parts(r->cmd))
		return NULL;
	return imap_command_part(r->cmd, r->part);
}

static gboolean fuzz_expect(FuzzReader *r, const char *s)
{
	const ImapCommandPart *p = fuzz_cur(r);
	gsize len = strlen(s);

	if (!p || p->text_len - r->pos < len ||
	    memcmp(p->text + r->pos, s, len) != 0)
		return FALSE;
	r->pos += len;
	return TRUE;
}

/* RFC 3501 ATOM-CHAR. */
static gboolean fuzz_is_atom_char(guchar c)
{
	return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\]", c);
}

/* One astring at the reader; (transfer full) into *out, or FALSE. */
static gboolean fuzz_read_astring(FuzzReader *r, GString *out)
{
	const ImapCommandPart *p = fuzz_cur(r);
	const char *t;
	gsize end;

	if (!p)
		return FALSE;
	t = p->text;
	end = p->text_len;
	if (r->pos == end) {
		/* Nothing left of the text: the argument is the literal. */
		if (!p->literal)
			return FALSE;
		gsize n;
		const char *b = g_bytes_get_data(p->literal, &n);

		g_string_append_len(out, b, n);
		r->part++;
		r->pos = 0;
		return TRUE;
	}
	if (t[r->pos] == '"') {
		for (r->pos++; r->pos < end; r->pos++) {
			guchar c = (guchar)t[r->pos];

			if (c == '"') {
				r->pos++;
				return TRUE;
			}
			if (c < 0x20 || c > 0x7e)
				return FALSE;
			if (c == '\\') {
				if (++r->pos == end ||
				    !strchr("\"\\", t[r->pos]))
					return FALSE;
				c = (guchar)t[r->pos];
			}
			g_string_append_c(out, (char)c);
		}
		return FALSE;
	}
	while (r->pos < end && fuzz_is_atom_char((guchar)t[r->pos]))
		g_string_append_c(out, t[r->pos++]);
	return out->len > 0;
}

/* TRUE if the reader is at the very end of the command. */
static gboolean fuzz_at_end(FuzzReader *r)
{
	const ImapCommandPart *p;

	/* Empty trailing parts are allowed; nothing else. */
	while ((p = fuzz_cur(r)) != NULL) {
		if (r->pos != p->text_len || p->literal)
			return FALSE;
		r->part++;
		r->pos = 0;
	}
	return TRUE;
}

static char *fuzz_build_one(const char *format, const char *arg,
			    gboolean *out_ok)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(ImapCommand) cmd = imap_command_new(&error, 0, format, arg);
	FuzzReader r = {.cmd = NULL};
	g_autoptr(GString) got = g_string_new(NULL);

	*out_ok = cmd != NULL;
	if (!cmd) {
		FUZZ_CHECK(error != NULL);
		return NULL;
	}
	FUZZ_CHECK(error == NULL);
	fuzz_check_wire(cmd);
	r.cmd = cmd;
	FUZZ_CHECK(fuzz_expect(&r, "X "));
	if (strcmp(format, "X %F") == 0) {
		FUZZ_CHECK(fuzz_expect(&r, "("));
		FUZZ_CHECK(fuzz_expect(&r, arg));
		FUZZ_CHECK(fuzz_expect(&r, ")"));
	} else if (strcmp(format, "X %a") == 0 || strcmp(format, "X %U") == 0) {
		FUZZ_CHECK(fuzz_expect(&r, arg));
	} else {
		FUZZ_CHECK(fuzz_read_astring(&r, got));
	}
	FUZZ_CHECK(fuzz_at_end(&r));
	return g_strndup(got->str, got->len);
}

static gboolean fuzz_is_seq_char_only(const char *s)
{
	if (!*s)
		return FALSE;
	for (; *s; s++) {
		if (!g_ascii_isdigit(*s) && !strchr(":,*", *s))
			return FALSE;
	}
	return TRUE;
}

int LLVMFuzzerTestOneInput(const guint8 *data, size_t size)
{
	g_autofree char *in = g_strndup((const char *)data, size);
	gboolean utf8 = g_utf8_validate(in, -1, NULL);
	gboolean ok;

	{
		g_autofree char *got = fuzz_build_one("X %q", in, &ok);

		/* %q takes any C string. */
		FUZZ_CHECK(ok);
		FUZZ_CHECK(strcmp(got, in) == 0);
	}
	{
		g_autofree char *got = fuzz_build_one("X %m", in, &ok);

		FUZZ_CHECK(ok == utf8);
		if (ok) {
			g_autofree char *back = imap_utf7_decode(got);

			FUZZ_CHECK(back != NULL && strcmp(back, in) == 0);
		}
	}
	{
		g_free(fuzz_build_one("X %a", in, &ok));
		FUZZ_CHECK(ok == imap_is_atom(in));
		if (ok) {
			for (const char *p = in; *p; p++)
				FUZZ_CHECK(fuzz_is_atom_char((guchar)*p) ||
					   *p == ']');
		}
	}
	{
		g_free(fuzz_build_one("X %F", in, &ok));
		if (ok) {
			g_auto(GStrv) flags = g_strsplit(in, " ", -1);

			for (guint i = 0; in[0] && flags[i]; i++)
				FUZZ_CHECK(imap_is_flag(flags[i]));
		}
	}
	{
		g_free(fuzz_build_one("X %U", in, &ok));
		if (ok)
			FUZZ_CHECK(fuzz_is_seq_char_only(in));
	}
	{
		/* Two arguments: parts and literals must still line up. */
		g_autoptr(GError) error = NULL;
		g_autoptr(ImapCommand) cmd = imap_command_new(
			&error, IMAP_COMMAND_SECRET, "LOGIN %q %q", in, in);
		FuzzReader r = {.cmd = NULL};
		g_autoptr(GString) a = g_string_new(NULL);
		g_autoptr(GString) b = g_string_new(NULL);

		FUZZ_CHECK(cmd != NULL);
		fuzz_check_wire(cmd);
		r.cmd = cmd;
		FUZZ_CHECK(fuzz_expect(&r, "LOGIN "));
		FUZZ_CHECK(fuzz_read_astring(&r, a));
		FUZZ_CHECK(fuzz_expect(&r, " "));
		FUZZ_CHECK(fuzz_read_astring(&r, b));
		FUZZ_CHECK(fuzz_at_end(&r));
		FUZZ_CHECK(strcmp(a->str, in) == 0 && strcmp(b->str, in) == 0);
		FUZZ_CHECK(a->len == strlen(in) && b->len == strlen(in));
	}
	return 0;
}

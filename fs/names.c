/* fs/names.c — names in the tree: mailbox <-> directory, message -> file.
 *
 * Pure string functions, no state, any thread.
 *
 * Directory names: a mailbox component is escaped byte by byte, so that
 * decoding %XX back is the exact inverse. The escaped result is checked
 * against the message-file shape last: if it looks like "<10 digits>.eml"
 * its first digit becomes %3X, and no directory can ever be taken for a
 * message file. The decoder accepts either case of hex, but only the
 * encoder's output is canonical: callers that must not give one mailbox
 * two names compare against fs_names_from_mailbox() (see names.h).
 *
 * Message names: the subject is NFC-normalised first when it is valid
 * UTF-8 (so "e" + U+0301 stays a letter instead of becoming "e_"), and a
 * combining mark that NFC leaves on a kept character is kept. Every
 * invalid byte counts as one "other" character. The 60-character cut counts
 * characters, not bytes: 10 + 1 + 60 * 4 + 4 bytes stays within NAME_MAX.
 */
#include "fs/names.h"

#include <string.h>

#define FS_NAMES_SUBJECT_MAX 60

static const char fs_names_subject_keep[] = "-_.,+=@()&!";

static gboolean fs_names_is_trim_char(char c)
{
	return c == '_' || c == '.';
}

/* Cleans @subject into @out (empty if nothing usable is left). */
static void fs_names_clean_subject(const char *subject, GString *out)
{
	g_autofree char *nfc = NULL;
	const char *p;
	const char *end;
	gboolean in_run = FALSE;

	if (g_utf8_validate(subject, -1, NULL))
		nfc = g_utf8_normalize(subject, -1, G_NORMALIZE_NFC);
	p = nfc ? nfc : subject;
	end = p + strlen(p);

	while (p < end) {
		gunichar c = g_utf8_get_char_validated(p, end - p);
		gboolean keep;
		const char *next;

		if (c == (gunichar)-1 || c == (gunichar)-2) {
			/* Invalid byte: one "other" character. */
			keep = FALSE;
			next = p + 1;
		} else {
			next = g_utf8_next_char(p);
			/* A combining mark on a kept letter is part of the
			 * word: Thai vowels, Devanagari viramas, Arabic
			 * harakat, which NFC does not fold in. */
			keep = g_unichar_isalnum(c) ||
			       (g_unichar_ismark(c) && out->len > 0 &&
				!in_run) ||
			       (c < 0x80 && c != 0 &&
				strchr(fs_names_subject_keep, (int)c));
		}
		if (keep) {
			g_string_append_len(out, p, next - p);
			in_run = FALSE;
		} else if (!in_run) {
			g_string_append_c(out, '_');
			in_run = TRUE;
		}
		p = next;
	}
}

/* Trims '_' and '.' at both ends of @s, in place. */
static void fs_names_trim(GString *s)
{
	gsize start = 0;

	while (s->len > 0 && fs_names_is_trim_char(s->str[s->len - 1]))
		g_string_truncate(s, s->len - 1);
	while (start < s->len && fs_names_is_trim_char(s->str[start]))
		start++;
	g_string_erase(s, 0, start);
}

char *fs_names_message(guint32 uid, const char *subject)
{
	g_autoptr(GString) clean = g_string_new(NULL);

	if (subject) {
		fs_names_clean_subject(subject, clean);
		fs_names_trim(clean);
		/* The cleaned text is valid UTF-8: every byte that was not
		 * part of a valid character became '_'. */
		if (g_utf8_strlen(clean->str, clean->len) >
		    FS_NAMES_SUBJECT_MAX) {
			const char *cut = g_utf8_offset_to_pointer(
				clean->str, FS_NAMES_SUBJECT_MAX);

			g_string_truncate(clean, cut - clean->str);
			fs_names_trim(clean);
		}
	}
	if (clean->len == 0)
		return g_strdup_printf("%0*u.eml", FS_NAMES_UID_DIGITS, uid);
	return g_strdup_printf("%0*u-%s.eml", FS_NAMES_UID_DIGITS, uid,
			       clean->str);
}

gboolean fs_names_parse_message(const char *name, guint32 *out_uid)
{
	static const char suffix[] = ".eml";
	const gsize suffix_len = sizeof(suffix) - 1;
	guint64 uid = 0;
	gsize len;

	if (out_uid)
		*out_uid = 0;
	g_return_val_if_fail(name != NULL, FALSE);

	len = strlen(name);
	if (len < FS_NAMES_UID_DIGITS + suffix_len)
		return FALSE;
	for (gsize i = 0; i < FS_NAMES_UID_DIGITS; i++) {
		if (!g_ascii_isdigit(name[i]))
			return FALSE;
		uid = uid * 10 + (guint64)(name[i] - '0');
	}
	if (uid == 0 || uid > G_MAXUINT32)
		return FALSE;
	if (strcmp(name + len - suffix_len, suffix) != 0)
		return FALSE;
	/* Either exactly "<digits>.eml" or "<digits>-<1 or more>.eml". */
	if (len != FS_NAMES_UID_DIGITS + suffix_len &&
	    (name[FS_NAMES_UID_DIGITS] != '-' ||
	     len < FS_NAMES_UID_DIGITS + 1 + 1 + suffix_len))
		return FALSE;
	if (out_uid)
		*out_uid = (guint32)uid;
	return TRUE;
}

static void fs_names_append_escape(GString *out, guchar byte)
{
	g_string_append_printf(out, "%%%02X", byte);
}

char *fs_names_from_mailbox(const char *component)
{
	GString *out;
	const char *p;
	const char *end;

	g_return_val_if_fail(component != NULL, NULL);

	if (strcmp(component, ".") == 0)
		return g_strdup("%2E");
	if (strcmp(component, "..") == 0)
		return g_strdup("%2E%2E");

	out = g_string_sized_new(strlen(component) + 8);
	p = component;
	end = component + strlen(component);
	while (p < end) {
		guchar b = (guchar)*p;
		gunichar c;

		if (b < 0x20 || b == 0x7f || b == '%' || b == '/') {
			fs_names_append_escape(out, b);
			p++;
			continue;
		}
		if (b < 0x80) {
			g_string_append_c(out, (char)b);
			p++;
			continue;
		}
		c = g_utf8_get_char_validated(p, end - p);
		if (c == (gunichar)-1 || c == (gunichar)-2) {
			fs_names_append_escape(out, b);
			p++;
			continue;
		}
		g_string_append_len(out, p, g_utf8_next_char(p) - p);
		p = g_utf8_next_char(p);
	}

	/* A leading digit is plain ASCII, so escaping it keeps the rest. */
	if (fs_names_parse_message(out->str, NULL)) {
		guchar first = (guchar)out->str[0];

		g_string_erase(out, 0, 1);
		g_string_insert(out, 0, "%3");
		g_string_insert_c(out, 2, (char)first);
	}
	return g_string_free(out, FALSE);
}

char *fs_names_to_mailbox(const char *name, char delimiter)
{
	g_autoptr(GString) out = NULL;

	g_return_val_if_fail(name != NULL, NULL);

	out = g_string_sized_new(strlen(name));
	for (const char *p = name; *p; p++) {
		int hi;
		int lo;

		if (*p != '%') {
			g_string_append_c(out, *p);
			continue;
		}
		hi = g_ascii_xdigit_value(p[1]);
		lo = hi < 0 ? -1 : g_ascii_xdigit_value(p[2]);
		if (hi < 0 || lo < 0)
			return NULL;
		/* A NUL cannot be part of a mailbox name or a C string. */
		if (hi == 0 && lo == 0)
			return NULL;
		g_string_append_c(out, (char)(hi * 16 + lo));
		p += 2;
	}
	if (out->len == 0)
		return NULL;
	if (!g_utf8_validate(out->str, out->len, NULL))
		return NULL;
	if (delimiter != '\0' && memchr(out->str, delimiter, out->len))
		return NULL;
	return g_string_free(g_steal_pointer(&out), FALSE);
}

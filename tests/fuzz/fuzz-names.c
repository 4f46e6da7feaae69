/* tests/fuzz/fuzz-names.c — libFuzzer target for fs/names.
 *
 * Mailbox components: for valid UTF-8 without the delimiter the directory
 * name must be a usable entry name (no '/', not "." or "..", never taken
 * for a message file) that decodes back to the component; for other bytes
 * the name is still safe and is refused on the way back. Any name given to
 * fs_names_to_mailbox() either is refused or decodes to a component that
 * encodes and decodes to itself.
 * Message names: the first four bytes are the UID (0 becomes 1: IMAP UIDs
 * are non-zero), the rest (up to a NUL) the subject; the name must parse
 * back to the UID and fit in NAME_MAX.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "fs/names.h"

#define FUZZ_NAME_MAX 255

static const char fuzz_delimiters[] = {'\0', '/', '.'};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
	return 0;
}

static gboolean fuzz_has_delimiter(const char *s, char delimiter)
{
	return delimiter != '\0' && strchr(s, delimiter) != NULL;
}

static void fuzz_mailbox(const char *component)
{
	g_autofree char *name = fs_names_from_mailbox(component);
	gboolean utf8 = g_utf8_validate(component, -1, NULL);

	FUZZ_CHECK(name != NULL);
	FUZZ_CHECK(strchr(name, '/') == NULL);
	FUZZ_CHECK(g_utf8_validate(name, -1, NULL));
	if (component[0] == '\0') {
		FUZZ_CHECK(name[0] == '\0');
		return;
	}
	FUZZ_CHECK(name[0] != '\0');
	FUZZ_CHECK(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
	FUZZ_CHECK(!fs_names_parse_message(name, NULL));
	for (const char *p = name; *p; p++)
		FUZZ_CHECK((guchar)*p >= 0x20 && (guchar)*p != 0x7f);

	for (gsize i = 0; i < G_N_ELEMENTS(fuzz_delimiters); i++) {
		char delim = fuzz_delimiters[i];
		g_autofree char *back = fs_names_to_mailbox(name, delim);

		if (!utf8 || fuzz_has_delimiter(component, delim)) {
			FUZZ_CHECK(back == NULL);
			continue;
		}
		FUZZ_CHECK(back != NULL);
		FUZZ_CHECK(strcmp(back, component) == 0);
	}
}

static void fuzz_dirname(const char *name)
{
	for (gsize i = 0; i < G_N_ELEMENTS(fuzz_delimiters); i++) {
		char delim = fuzz_delimiters[i];
		g_autofree char *comp = fs_names_to_mailbox(name, delim);
		g_autofree char *canon = NULL;
		g_autofree char *again = NULL;

		if (!comp)
			continue;
		FUZZ_CHECK(comp[0] != '\0');
		FUZZ_CHECK(g_utf8_validate(comp, -1, NULL));
		FUZZ_CHECK(!fuzz_has_delimiter(comp, delim));
		canon = fs_names_from_mailbox(comp);
		again = fs_names_to_mailbox(canon, delim);
		FUZZ_CHECK(again != NULL && strcmp(again, comp) == 0);
	}
}

static void fuzz_message(guint32 uid, const char *subject)
{
	g_autofree char *name = fs_names_message(uid, subject);
	g_autofree char *same = fs_names_message(uid, subject);
	guint32 parsed = 0;
	gsize len;

	FUZZ_CHECK(name != NULL && same != NULL);
	FUZZ_CHECK(strcmp(name, same) == 0);
	len = strlen(name);
	FUZZ_CHECK(len > 0 && len <= FUZZ_NAME_MAX);
	FUZZ_CHECK(strchr(name, '/') == NULL);
	FUZZ_CHECK(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
	FUZZ_CHECK(g_utf8_validate(name, -1, NULL));
	for (const char *p = name; *p; p++)
		FUZZ_CHECK((guchar)*p >= 0x20 && (guchar)*p != 0x7f);
	FUZZ_CHECK(fs_names_parse_message(name, &parsed));
	FUZZ_CHECK(parsed == uid);
	FUZZ_CHECK(g_str_has_suffix(name, ".eml"));
}

int LLVMFuzzerTestOneInput(const guint8 *data, size_t size)
{
	/* The C string the input holds: up to its first NUL. */
	g_autofree char *text = g_strndup((const char *)data, size);
	guint32 uid = 0;

	fuzz_mailbox(text);
	fuzz_dirname(text);

	if (size >= 4) {
		g_autofree char *subject =
			g_strndup((const char *)data + 4, size - 4);

		memcpy(&uid, data, 4);
		uid = GUINT32_FROM_LE(uid);
		if (uid == 0)
			uid = 1;
		fuzz_message(uid, size > 4 ? subject : NULL);
	}
	/* Subjects also arrive whole, with a UID that uses every digit. */
	fuzz_message(G_MAXUINT32, text);
	return 0;
}

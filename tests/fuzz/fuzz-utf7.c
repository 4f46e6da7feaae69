/* tests/fuzz/fuzz-utf7.c — libFuzzer target for modified UTF-7.
 *
 * The input (up to its first NUL) is tried both ways. Decoding accepts only
 * canonical modified UTF-7, so whatever decodes must be valid UTF-8 that
 * encodes back to exactly the input. Encoding must succeed exactly for
 * valid UTF-8, give printable ASCII, and decode back to the input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "imap/utf7.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
	return 0;
}

static gboolean fuzz_is_printable_ascii(const char *s)
{
	for (; *s; s++) {
		if ((guchar)*s < 0x20 || (guchar)*s > 0x7e)
			return FALSE;
	}
	return TRUE;
}

int LLVMFuzzerTestOneInput(const guint8 *data, size_t size)
{
	g_autofree char *in = g_strndup((const char *)data, size);
	g_autofree char *dec = imap_utf7_decode(in);
	g_autofree char *enc = imap_utf7_encode(in);

	if (dec) {
		g_autofree char *again = NULL;

		FUZZ_CHECK(g_utf8_validate(dec, -1, NULL));
		FUZZ_CHECK(fuzz_is_printable_ascii(in));
		again = imap_utf7_encode(dec);
		FUZZ_CHECK(again != NULL);
		FUZZ_CHECK(strcmp(again, in) == 0);
	}

	if (g_utf8_validate(in, -1, NULL)) {
		g_autofree char *back = NULL;

		FUZZ_CHECK(enc != NULL);
		FUZZ_CHECK(fuzz_is_printable_ascii(enc));
		back = imap_utf7_decode(enc);
		FUZZ_CHECK(back != NULL);
		FUZZ_CHECK(strcmp(back, in) == 0);
	} else {
		FUZZ_CHECK(enc == NULL);
	}
	return 0;
}

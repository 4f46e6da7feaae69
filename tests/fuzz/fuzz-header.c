/* tests/fuzz/fuzz-header.c — libFuzzer target for cache/text.
 *
 * The input is the block of header lines a listing's BODY.PEEK[HEADER.
 * FIELDS (SUBJECT FROM MESSAGE-ID)] returns, as a hostile server may send
 * it. Each field picked out must lie within the input, and each decoded
 * value (Subject and Message-ID as text, From as an address) must be one
 * line of valid UTF-8: it ends up in a file name or an xattr.
 */
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "cache/text.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
	cache_text_init();
	return 0;
}

static void fuzz_one_line(const char *s)
{
	if (!s)
		return;
	FUZZ_CHECK(g_utf8_validate(s, -1, NULL));
	FUZZ_CHECK(strpbrk(s, "\r\n\t") == NULL);
	FUZZ_CHECK(s[0] != ' ' && (s[0] == '\0' || s[strlen(s) - 1] != ' '));
}

int LLVMFuzzerTestOneInput(const guint8 *data, size_t size)
{
	static const char *const names[] = {"Subject", "From", "Message-ID"};
	const char *block = (const char *)data;

	for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
		g_autofree char *raw =
			cache_text_header_field(block, size, names[i]);
		g_autofree char *text = NULL;
		g_autofree char *addr = NULL;

		if (!raw)
			continue;
		FUZZ_CHECK(strlen(raw) <= size);
		text = cache_text_decode_header(raw);
		addr = cache_text_decode_address(raw);
		FUZZ_CHECK(text != NULL);
		fuzz_one_line(text);
		fuzz_one_line(addr);
	}
	return 0;
}

/* tests/fuzz/fuzz.h — what every libFuzzer target here shares: the entry
 * points' prototypes and a check that aborts (so libFuzzer keeps the input
 * as a crash) with the file, line and condition. */
#ifndef IMAPFS_TESTS_FUZZ_H
#define IMAPFS_TESTS_FUZZ_H

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const guint8 *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

#endif

/* Unit tests for cache/flags.c: what setfattr user.imap.flags accepts. */
#include <glib.h>

#include "cache/error.h"
#include "cache/flags.h"

static void test_equal(void)
{
	g_assert_true(cache_flags_equal("", NULL));
	g_assert_true(cache_flags_equal(NULL, NULL));
	g_assert_true(cache_flags_equal("\\Seen $Work", "$work \\seen"));
	g_assert_true(cache_flags_equal("\\Seen  $Work", "$Work \\Seen"));
	g_assert_true(cache_flags_equal("a a", "a"));
	g_assert_false(cache_flags_equal("\\Seen", ""));
	g_assert_false(cache_flags_equal(NULL, "\\Seen"));
	g_assert_false(cache_flags_equal("\\Seen $Work", "\\Seen"));
	g_assert_false(cache_flags_equal("\\Seen", "\\Seen $Work"));
	g_assert_false(cache_flags_equal("$Work", "$Worker"));
}

static void test_normalize_table(void)
{
	static const struct {
		const char *in;
		const char *out; /* NULL: must be refused */
	} rows[] = {
		{"", ""},
		{"   ", ""},
		{"\\Seen", "\\Seen"},
		{"\\seen \\FLAGGED", "\\Seen \\Flagged"},
		{"\\Seen  $Work \\Flagged ", "\\Seen $Work \\Flagged"},
		{"\\Seen\n\\Flagged", NULL},
		{"\\Seen\t$Work", NULL},
		{"\\Seen\r\n", NULL},
		{"$Work $work \\Seen \\seen", "$Work \\Seen"},
		{"\\Answered \\Deleted \\Draft",
		 "\\Answered \\Deleted \\Draft"},
		{"NonJunk $Label1", "NonJunk $Label1"},
		{"\\Recent", NULL},
		{"\\recent \\Seen", NULL},
		{"\\*", NULL},
		{"\\Important", NULL},
		{"\\", NULL},
		{"a(b", NULL},
		{"a)b", NULL},
		{"\"quoted\"", NULL},
		{"x{3}", NULL},
		{"50%", NULL},
		{"star*", NULL},
		{"br]acket", NULL},
		{"\\Seen\\Flagged", NULL},
		{"caf\xc3\xa9", NULL},
		{"a\x01"
		 "b",
		 NULL},
	};

	for (guint i = 0; i < G_N_ELEMENTS(rows); i++) {
		g_autoptr(GError) error = NULL;
		g_autofree char *out =
			cache_flags_normalize(rows[i].in, &error);

		if (rows[i].out) {
			g_assert_no_error(error);
			g_assert_cmpstr(out, ==, rows[i].out);
		} else {
			g_assert_null(out);
			g_assert_error(error, IMAPFS_CACHE_ERROR,
				       CACHE_ERROR_INVALID);
		}
	}
}

static void test_keywords(void)
{
	char *all[] = {"\\Seen", "\\*", NULL};
	char *some[] = {"\\Seen", "$Work", NULL};
	char *none[] = {"\\Seen", "\\Flagged", NULL};

	g_assert_true(cache_flags_keywords_allowed("$X", NULL));
	g_assert_true(cache_flags_keywords_allowed("$X \\Seen", all));
	g_assert_true(cache_flags_keywords_allowed("$work \\Seen", some));
	g_assert_false(cache_flags_keywords_allowed("$Other", some));
	g_assert_false(cache_flags_keywords_allowed("$X", none));
	g_assert_true(cache_flags_keywords_allowed("\\Flagged", none));
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/cache/flags/normalize", test_normalize_table);
	g_test_add_func("/cache/flags/keywords", test_keywords);
	g_test_add_func("/cache/flags/equal", test_equal);
	return g_test_run();
}

/* tests/unit/test-fs-errmap.c — fs/errmap.c: every code of every domain
 * maps to the errno we promise, and fs_errno_log() logs at the level we
 * promise. */
#include <errno.h>

#include <gio/gio.h>
#include <glib.h>

#include "cache/error.h"
#include "fs/errmap.h"
#include "imap/error.h"

typedef struct {
	int code;
	int expected;
} CodeCase;

static const CodeCase imap_cases[] = {
	{IMAP_ERROR_FAILED, EIO},
	{IMAP_ERROR_BAD, EIO},
	{IMAP_ERROR_NONEXISTENT, ENOENT},
	{IMAP_ERROR_ALREADYEXISTS, EEXIST},
	{IMAP_ERROR_OVERQUOTA, EDQUOT},
	{IMAP_ERROR_NOPERM, EACCES},
	{IMAP_ERROR_TOOBIG, EFBIG},
	{IMAP_ERROR_READONLY, EROFS},
	{IMAP_ERROR_AUTH, EIO},
	{IMAP_ERROR_UNAVAILABLE, EIO},
	{IMAP_ERROR_TLS, EIO},
	{IMAP_ERROR_CONNECT, EIO},
	{IMAP_ERROR_CONNECTION_LOST, EIO},
	{IMAP_ERROR_TIMEOUT, EIO},
	{IMAP_ERROR_PROTOCOL, EIO},
	{IMAP_ERROR_UNSUPPORTED, ENOTSUP},
	{IMAP_ERROR_SHUTDOWN, EIO},
	{IMAP_ERROR_INVALID, EINVAL},
	{IMAP_ERROR_UIDVALIDITY, ENOENT},
	{IMAP_ERROR_EXPUNGED, ENOENT},
	{IMAP_ERROR_EXPUNGED + 1, EIO}, /* unknown code */
	{-1, EIO},
	{1000, EIO},
};

static const CodeCase cache_cases[] = {
	{CACHE_ERROR_NOT_FOUND, ENOENT},
	{CACHE_ERROR_INVALID, EINVAL},
	{CACHE_ERROR_NOT_PERMITTED, EPERM},
	{CACHE_ERROR_READONLY, EROFS},
	{CACHE_ERROR_EXISTS, EEXIST},
	{CACHE_ERROR_NOT_EMPTY, ENOTEMPTY},
	{CACHE_ERROR_UNSUPPORTED, ENOTSUP},
	{CACHE_ERROR_IO, EIO},
	{CACHE_ERROR_TIMEOUT, EIO},
	{CACHE_ERROR_TIMEOUT + 1, EIO},
	{-1, EIO},
};

/* G_IO_ERROR codes not listed here map to EIO; the loop below walks every
 * code up to the last one this GLib knows. */
static const CodeCase io_cases[] = {
	{G_IO_ERROR_CANCELLED, EINTR},
	{G_IO_ERROR_NOT_FOUND, ENOENT},
	{G_IO_ERROR_EXISTS, EEXIST},
	{G_IO_ERROR_IS_DIRECTORY, EISDIR},
	{G_IO_ERROR_NOT_DIRECTORY, ENOTDIR},
	{G_IO_ERROR_NOT_EMPTY, ENOTEMPTY},
	{G_IO_ERROR_FILENAME_TOO_LONG, ENAMETOOLONG},
	{G_IO_ERROR_NO_SPACE, ENOSPC},
	{G_IO_ERROR_INVALID_ARGUMENT, EINVAL},
	{G_IO_ERROR_PERMISSION_DENIED, EACCES},
	{G_IO_ERROR_NOT_SUPPORTED, ENOTSUP},
	{G_IO_ERROR_READ_ONLY, EROFS},
	{G_IO_ERROR_TOO_MANY_OPEN_FILES, EMFILE},
};

static const CodeCase file_cases[] = {
	{G_FILE_ERROR_EXIST, EEXIST}, {G_FILE_ERROR_ISDIR, EISDIR},
	{G_FILE_ERROR_ACCES, EACCES}, {G_FILE_ERROR_NAMETOOLONG, ENAMETOOLONG},
	{G_FILE_ERROR_NOENT, ENOENT}, {G_FILE_ERROR_NOTDIR, ENOTDIR},
	{G_FILE_ERROR_NXIO, EIO},     {G_FILE_ERROR_NODEV, EIO},
	{G_FILE_ERROR_ROFS, EROFS},   {G_FILE_ERROR_TXTBSY, EIO},
	{G_FILE_ERROR_FAULT, EIO},    {G_FILE_ERROR_LOOP, ELOOP},
	{G_FILE_ERROR_NOSPC, ENOSPC}, {G_FILE_ERROR_NOMEM, ENOMEM},
	{G_FILE_ERROR_MFILE, EMFILE}, {G_FILE_ERROR_NFILE, ENFILE},
	{G_FILE_ERROR_BADF, EIO},     {G_FILE_ERROR_INVAL, EINVAL},
	{G_FILE_ERROR_PIPE, EIO},     {G_FILE_ERROR_AGAIN, EAGAIN},
	{G_FILE_ERROR_INTR, EINTR},   {G_FILE_ERROR_IO, EIO},
	{G_FILE_ERROR_PERM, EPERM},   {G_FILE_ERROR_NOSYS, ENOSYS},
	{G_FILE_ERROR_FAILED, EIO},   {G_FILE_ERROR_FAILED + 1, EIO},
};

static int errno_for(GQuark domain, int code)
{
	g_autoptr(GError) error = g_error_new(domain, code, "test");

	return fs_errno_from_error(error);
}

static void check_cases(GQuark domain, const CodeCase *cases, gsize n)
{
	for (gsize i = 0; i < n; i++) {
		g_test_message("%s code %d", g_quark_to_string(domain),
			       cases[i].code);
		g_assert_cmpint(errno_for(domain, cases[i].code), ==,
				cases[i].expected);
	}
}

static void test_imap(void)
{
	check_cases(IMAPFS_IMAP_ERROR, imap_cases, G_N_ELEMENTS(imap_cases));
}

static void test_cache(void)
{
	check_cases(IMAPFS_CACHE_ERROR, cache_cases, G_N_ELEMENTS(cache_cases));
}

static void test_io(void)
{
	/* G_IO_ERROR_NO_SUCH_DEVICE is the last code of GLib 2.74. */
	for (int code = G_IO_ERROR_FAILED;
	     code <= G_IO_ERROR_NO_SUCH_DEVICE + 4; code++) {
		int expected = EIO;

		for (gsize i = 0; i < G_N_ELEMENTS(io_cases); i++)
			if (io_cases[i].code == code)
				expected = io_cases[i].expected;
		g_test_message("G_IO_ERROR code %d", code);
		g_assert_cmpint(errno_for(G_IO_ERROR, code), ==, expected);
	}
}

static void test_file(void)
{
	check_cases(G_FILE_ERROR, file_cases, G_N_ELEMENTS(file_cases));
}

static void test_other(void)
{
	g_assert_cmpint(fs_errno_from_error(NULL), ==, EIO);
	g_assert_cmpint(errno_for(G_IO_ERROR, -1), ==, EIO);
	g_assert_cmpint(errno_for(G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_NOT_FOUND),
			==, EIO);
	g_assert_cmpint(errno_for(g_quark_from_static_string("elsewhere"), 0),
			==, EIO);
	/* The two project domains are distinct quarks. */
	g_assert_cmpuint(IMAPFS_IMAP_ERROR, !=, IMAPFS_CACHE_ERROR);
	g_assert_cmpstr(g_quark_to_string(IMAPFS_CACHE_ERROR), ==,
			"imapfs-cache-error-quark");
}

static void test_log_warning(void)
{
	g_autoptr(GError) error = g_error_new(
		IMAPFS_IMAP_ERROR, IMAP_ERROR_OVERQUOTA,
		"UID MOVE 812 \"Archive\": NO [OVERQUOTA] Quota exceeded");

	g_test_expect_message("imapfs-fs", G_LOG_LEVEL_WARNING,
			      "move /INBOX/x: UID MOVE 812 \"Archive\": NO "
			      "[OVERQUOTA] Quota exceeded");
	g_assert_cmpint(fs_errno_log(error, "move /INBOX/x"), ==, EDQUOT);
	g_test_assert_expected_messages();

	g_test_expect_message("imapfs-fs", G_LOG_LEVEL_WARNING, "read: *");
	g_assert_cmpint(fs_errno_log(NULL, "read"), ==, EIO);
	g_test_assert_expected_messages();
}

/* ENOENT and EINTR are routine: no warning may fire. Under
 * G_DEBUG=fatal-warnings a warning here would abort the test; check in a
 * subprocess so the failure is reported rather than a crash. */
static void test_log_quiet(void)
{
	if (g_test_subprocess()) {
		g_autoptr(GError) gone = g_error_new(
			IMAPFS_CACHE_ERROR, CACHE_ERROR_NOT_FOUND, "no such");
		g_autoptr(GError) cancelled = g_error_new(
			G_IO_ERROR, G_IO_ERROR_CANCELLED, "interrupted");

		g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_WARNING |
				       G_LOG_LEVEL_CRITICAL);
		g_assert_cmpint(fs_errno_log(gone, "lookup /x"), ==, ENOENT);
		g_assert_cmpint(fs_errno_log(cancelled, "read /y"), ==, EINTR);
		return;
	}
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed();
	g_test_trap_assert_stderr_unmatched("*WARNING*");
}

/* And a non-routine error does warn, seen from outside. */
static void test_log_warns_once(void)
{
	if (g_test_subprocess()) {
		g_autoptr(GError) error =
			g_error_new(IMAPFS_IMAP_ERROR,
				    IMAP_ERROR_CONNECTION_LOST, "dropped");

		g_log_set_always_fatal(G_LOG_FATAL_MASK);
		g_assert_cmpint(fs_errno_log(error, "read /z"), ==, EIO);
		return;
	}
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed();
	g_test_trap_assert_stderr("*WARNING*read /z: dropped*");
	g_test_trap_assert_stderr_unmatched("*read /z: dropped*read /z*");
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/fs/errmap/imap", test_imap);
	g_test_add_func("/fs/errmap/cache", test_cache);
	g_test_add_func("/fs/errmap/io", test_io);
	g_test_add_func("/fs/errmap/file", test_file);
	g_test_add_func("/fs/errmap/other", test_other);
	g_test_add_func("/fs/errmap/log/warning", test_log_warning);
	g_test_add_func("/fs/errmap/log/quiet", test_log_quiet);
	g_test_add_func("/fs/errmap/log/warns-once", test_log_warns_once);
	return g_test_run();
}

/* Unit tests for fs/password.c: where a password (or an OAuth 2.0 token,
 * asked for at every login, from the daemon) comes from, and a command
 * that gives none in time. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "fs/password.h"

static char *make_dir(void)
{
	g_autoptr(GError) error = NULL;
	char *dir = g_dir_make_tmp("imapfs-password-XXXXXX", &error);

	g_assert_no_error(error);
	return dir;
}

/* The command runs in the directory given, not the current one (the
 * daemon's "/"), and its first line is the password. */
static void test_command_workdir(void)
{
	g_autofree char *dir = make_dir();
	g_autofree char *file = g_build_filename(dir, "tok", NULL);
	g_autoptr(GError) error = NULL;
	g_autofree char *got = NULL;

	g_assert_true(g_file_set_contents(file, "t0k\nsecond\n", -1, NULL));
	got = fs_password_get("cat tok", NULL, "u", "h", dir, 5, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(got, ==, "t0k");
	g_unlink(file);
	g_rmdir(dir);
}

static void test_command_fails(void)
{
	g_autoptr(GError) error = NULL;
	char *got = fs_password_get("echo x; exit 3", NULL, "u", "h", NULL, 5,
				    &error);

	g_assert_null(got);
	g_assert_error(error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED);
	g_assert_nonnull(strstr(error->message, "exit status 3"));
}

/* A command that gives nothing in time is stopped, with what it started:
 * the sleep it runs is gone when the call returns. */
static void test_command_too_slow(void)
{
	g_autofree char *dir = make_dir();
	g_autofree char *pidfile = g_build_filename(dir, "pid", NULL);
	g_autofree char *cmd = g_strdup_printf(
		"sleep 600 & echo $! > %s; wait", pidfile);
	g_autoptr(GError) error = NULL;
	g_autofree char *text = NULL;
	char *got = fs_password_get(cmd, NULL, "u", "h", NULL, 1, &error);
	long pid;

	g_assert_null(got);
	g_assert_error(error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED);
	g_assert_nonnull(strstr(error->message, "printed nothing within 1 s"));
	g_assert_true(g_file_get_contents(pidfile, &text, NULL, NULL));
	pid = strtol(text, NULL, 10);
	g_assert_cmpint(pid, >, 1);
	/* killed and reaped by init, or a zombie at worst: not sleeping */
	for (int i = 0; i < 100 && kill(pid, 0) == 0; i++) {
		g_autofree char *stat_path =
			g_strdup_printf("/proc/%ld/stat", pid);
		g_autofree char *stat = NULL;

		if (g_file_get_contents(stat_path, &stat, NULL, NULL) &&
		    strstr(stat, ") Z "))
			break;
		g_usleep(50 * 1000);
	}
	if (kill(pid, 0) == 0) {
		g_autofree char *stat_path =
			g_strdup_printf("/proc/%ld/stat", pid);
		g_autofree char *stat = NULL;

		g_assert_true(g_file_get_contents(stat_path, &stat, NULL, NULL));
		g_assert_nonnull(strstr(stat, ") Z "));
	}
	g_unlink(pidfile);
	g_rmdir(dir);
}

/* A password file others can read is refused, with what to do. */
static void test_file_private(void)
{
	g_autofree char *dir = make_dir();
	g_autofree char *file = g_build_filename(dir, "pw", NULL);
	g_autoptr(GError) open_error = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *got = NULL;

	g_assert_true(g_file_set_contents(file, "secret\n", -1, NULL));
	g_chmod(file, 0644);
	g_assert_null(fs_password_get(NULL, file, "u", "h", NULL, 0,
				      &open_error));
	g_assert_nonnull(strstr(open_error->message, "chmod 600"));
	g_chmod(file, 0600);
	got = fs_password_get(NULL, file, "u", "h", NULL, 0, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(got, ==, "secret");
	g_unlink(file);
	g_rmdir(dir);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/fs/password/command/workdir", test_command_workdir);
	g_test_add_func("/fs/password/command/fails", test_command_fails);
	g_test_add_func("/fs/password/command/too-slow", test_command_too_slow);
	g_test_add_func("/fs/password/file/private", test_file_private);
	return g_test_run();
}

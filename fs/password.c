/* fs/password.c — getting the password without exposing it.
 *
 * The password comes back in one heap string that the caller wipes
 * (imap_config_free() does); every buffer it passed through here is wiped
 * with OPENSSL_cleanse() before it is freed. The prompt turns echo off.
 */
#include "fs/password.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* The first line of @text, without its line end. (transfer full) */
static char *first_line(const char *text, gsize len)
{
	gsize n = 0;

	while (n < len && text[n] != '\n' && text[n] != '\r')
		n++;
	return g_strndup(text, n);
}

/* Run in the child: its own process group, so that a command stopped for
 * taking too long is stopped with what it started. */
static void new_process_group(gpointer data)
{
	setpgid(0, 0);
}

static char *from_command(const char *cmd, const char *workdir,
			  guint timeout_s, GError **error)
{
	const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	gint64 deadline = timeout_s ? g_get_monotonic_time() +
					      timeout_s * G_TIME_SPAN_SECOND
				    : 0;
	GString *out;
	gboolean late = FALSE;
	char *password;
	int out_fd, status;
	GPid pid;

	if (!g_spawn_async_with_pipes(workdir, (char **)argv, NULL,
				      G_SPAWN_DO_NOT_REAP_CHILD,
				      new_process_group, NULL, &pid, NULL,
				      &out_fd, NULL, error)) {
		g_prefix_error(error, "passcmd: ");
		return NULL;
	}
	out = g_string_sized_new(4096);
	for (;;) {
		struct pollfd pfd = {.fd = out_fd, .events = POLLIN};
		gint64 left = deadline ? deadline - g_get_monotonic_time() : -1;
		char buf[4096];
		ssize_t n;

		if (deadline && left <= 0) {
			late = TRUE;
			break;
		}
		if (poll(&pfd, 1, deadline ? (int)(left / 1000) + 1 : -1) <=
		    0)
			continue; /* EINTR, or time to look at the clock */
		n = read(out_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		g_string_append_len(out, buf, n);
		OPENSSL_cleanse(buf, n);
	}
	close(out_fd);
	if (late)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	g_spawn_close_pid(pid);
	password = late || !g_spawn_check_wait_status(status, NULL)
			   ? NULL
			   : first_line(out->str, out->len);
	OPENSSL_cleanse(out->str, out->allocated_len);
	g_string_free(out, TRUE);
	if (late)
		g_set_error(error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
			    "passcmd \"%s\" printed nothing within %u s and "
			    "was stopped",
			    cmd, timeout_s);
	else if (!password)
		g_set_error(error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
			    "passcmd \"%s\" failed (exit status %d)", cmd,
			    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return password;
}

static char *from_file(const char *path, GError **error)
{
	g_autofree char *text = NULL;
	struct stat st;
	gsize len;
	char *password;

	if (stat(path, &st) < 0) {
		int err = errno;

		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
			    "passfile %s: %s", path, g_strerror(err));
		return NULL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_PERM,
			    "passfile %s can be read by others; make it "
			    "private with: chmod 600 %s",
			    path, path);
		return NULL;
	}
	if (!g_file_get_contents(path, &text, &len, error))
		return NULL;
	password = first_line(text, len);
	OPENSSL_cleanse(text, len);
	return password;
}

static char *from_prompt(const char *user, const char *host, GError **error)
{
	struct termios old, quiet;
	char buf[1024];
	char *password = NULL;

	if (!isatty(STDIN_FILENO)) {
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "no password: set IMAPFS_PASSWORD, or use "
				    "-o passcmd=CMD or -o passfile=FILE");
		return NULL;
	}
	fprintf(stderr, "Password for %s@%s: ", user, host);
	fflush(stderr);
	tcgetattr(STDIN_FILENO, &old);
	quiet = old;
	quiet.c_lflag &= ~ECHO;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	if (fgets(buf, sizeof(buf), stdin))
		password = first_line(buf, strlen(buf));
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fputc('\n', stderr);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!password)
		g_set_error_literal(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
				    "no password given");
	return password;
}

char *fs_password_get(const char *passcmd, const char *passfile,
		      const char *user, const char *host, const char *workdir,
		      guint timeout_s, GError **error)
{
	const char *env;

	if (passcmd)
		return from_command(passcmd, workdir, timeout_s, error);
	if (passfile)
		return from_file(passfile, error);
	env = g_getenv("IMAPFS_PASSWORD");
	if (env)
		return g_strdup(env);
	return from_prompt(user, host, error);
}

void fs_password_wipe_env(void)
{
	static const char name[] = "IMAPFS_PASSWORD=";

	for (char **e = environ; *e != NULL; e++)
		if (strncmp(*e, name, sizeof(name) - 1) == 0)
			OPENSSL_cleanse(*e + sizeof(name) - 1,
					strlen(*e + sizeof(name) - 1));
	g_unsetenv("IMAPFS_PASSWORD");
}

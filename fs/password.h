/* fs/password.h — where the password comes from. Never argv.
 *
 * In order: -o passcmd=CMD (first line of its output), -o passfile=FILE
 * (first line; refused unless only its owner can read it), $IMAPFS_PASSWORD,
 * else a prompt without echo when stdin is a terminal. Any thread (an
 * OAuth 2.0 token is asked for at every login); the prompt only on the
 * main thread, before the mount.
 */
#ifndef IMAPFS_FS_PASSWORD_H
#define IMAPFS_FS_PASSWORD_H

#include <glib.h>

/* The command runs in @workdir (nullable: the current directory), and is
 * stopped, with whatever it started, after @timeout_s (0: no limit).
 * (transfer full): the caller wipes it (imap_config_free() does). */
char *fs_password_get(const char *passcmd, const char *passfile,
		      const char *user, const char *host, const char *workdir,
		      guint timeout_s, GError **error);

/* Wipes $IMAPFS_PASSWORD where the process was given it, and unsets it:
 * once copied, it is not left readable in /proc/PID/environ, nor passed
 * on to commands imapfs runs. Main thread, before others start. */
void fs_password_wipe_env(void);

#endif

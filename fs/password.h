/* fs/password.h — where the password comes from. Never argv.
 *
 * In order: -o passcmd=CMD (first line of its output), -o passfile=FILE
 * (first line; refused unless only its owner can read it), $IMAPFS_PASSWORD,
 * else a prompt without echo when stdin is a terminal. Main thread, before
 * anything else runs.
 */
#ifndef IMAPFS_FS_PASSWORD_H
#define IMAPFS_FS_PASSWORD_H

#include <glib.h>

/* (transfer full): the caller wipes it (imap_config_free() does). */
char *fs_password_get(const char *passcmd, const char *passfile,
		      const char *user, const char *host, GError **error);

#endif

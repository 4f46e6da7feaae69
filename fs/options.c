/* fs/options.c — parsing the command line.
 *
 * fuse_opt does the -o splitting. The first non-option is the server URL
 * (consumed here); the second, the mount point, is left for
 * fuse_parse_cmdline(). Strings stay NULL unless given, and defaults are
 * applied in fs_options_check() afterwards.
 */
#include "fs/options.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

enum { KEY_HELP, KEY_VERSION, KEY_RO, KEY_RW };

#define FS_OPT(t, p)                                                           \
	{                                                                      \
		t, offsetof(FsOptions, p), 1                                   \
	}

static const struct fuse_opt fs_option_spec[] = {
	FS_OPT("passcmd=%s", passcmd),
	FS_OPT("passfile=%s", passfile),
	FS_OPT("cafile=%s", cafile),
	FS_OPT("tls=%s", tls),
	FS_OPT("cache_dir=%s", cache_dir),
	FS_OPT("rm=%s", rm),
	FS_OPT("cache_size=%s", cache_size_text),
	FS_OPT("spin=%s", spin_text),
	FS_OPT("auth=%s", auth),
	FS_OPT("allow_plaintext_auth", allow_plaintext_auth),
	FS_OPT("max_conns=%u", max_conns),
	FS_OPT("max_threads=%u", max_threads),
	FS_OPT("timeout=%u", timeout),
	FS_OPT("list_ttl=%u", list_ttl),
	FS_OPT("noidle", noidle),
	FS_OPT("nopassthrough", nopassthrough),
	FS_OPT("nocompress", nocompress),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("rw", KEY_RW),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END,
};

static int on_option(void *data, const char *arg, int key,
		     struct fuse_args *outargs)
{
	FsOptions *opts = data;

	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!opts->url) {
			opts->url = strdup(arg);
			return 0;
		}
		return 1; /* the mount point, for fuse_parse_cmdline() */
	case KEY_HELP:
		opts->show_help = 1;
		return 0;
	case KEY_VERSION:
		opts->show_version = 1;
		return 0;
	case KEY_RO:
	case KEY_RW: /* the last one given wins, as for mount(8) */
		opts->read_only = key == KEY_RO;
		return 1; /* for the kernel's mount too */
	default:
		return 1;
	}
}

gboolean fs_options_parse(struct fuse_args *args, FsOptions *opts,
			  GError **error)
{
	if (fuse_opt_parse(args, opts, fs_option_spec, on_option) < 0) {
		g_set_error_literal(error, G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE,
				    "cannot parse the options (see --help)");
		return FALSE;
	}
	return TRUE;
}

gboolean fs_options_parse_url(const char *url, FsOptions *opts, GError **error)
{
	const char *rest, *at, *host, *port = NULL;
	g_autofree char *user_enc = NULL;
	g_autofree char *hostport = NULL;

	if (g_str_has_prefix(url, "imaps://")) {
		opts->tls_mode = IMAP_TLS_IMPLICIT;
		rest = url + strlen("imaps://");
	} else if (g_str_has_prefix(url, "imap://")) {
		opts->tls_mode = IMAP_TLS_STARTTLS;
		rest = url + strlen("imap://");
	} else {
		g_set_error(
			error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			"\"%s\" is not a server URL: use "
			"imaps://USER@HOST[:PORT] or imap://USER@HOST[:PORT]",
			url);
		return FALSE;
	}
	/* The user may itself contain '@': the host follows the last one. */
	at = strrchr(rest, '@');
	if (!at || at == rest || !at[1]) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "\"%s\" names no user or no host: use "
			    "imaps://USER@HOST[:PORT]",
			    url);
		return FALSE;
	}
	user_enc = g_strndup(rest, at - rest);
	hostport = g_strdup(at + 1);
	if (hostport[strlen(hostport) - 1] == '/')
		hostport[strlen(hostport) - 1] = '\0';
	host = hostport;
	if (hostport[0] == '[') {
		char *close = strchr(hostport, ']');

		if (!close || (close[1] && close[1] != ':'))
			goto bad_host;
		*close = '\0';
		host = hostport + 1;
		if (close[1] == ':')
			port = close + 2;
	} else {
		char *colon = strchr(hostport, ':');

		if (colon) {
			*colon = '\0';
			port = colon + 1;
		}
	}
	if (!*host || strchr(host, '/'))
		goto bad_host;
	opts->host = g_strdup(host);
	opts->user = g_uri_unescape_string(user_enc, NULL);
	if (!opts->user || !*opts->user) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "bad user name in \"%s\"", url);
		return FALSE;
	}
	opts->port = opts->tls_mode == IMAP_TLS_IMPLICIT ? 993 : 143;
	if (port) {
		guint64 n;

		if (!g_ascii_string_to_unsigned(port, 10, 1, 65535, &n, NULL)) {
			g_set_error(error, G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE,
				    "bad port \"%s\" in \"%s\"", port, url);
			return FALSE;
		}
		opts->port = n;
	}
	return TRUE;

bad_host:
	g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		    "bad host in \"%s\"", url);
	return FALSE;
}

gboolean fs_options_parse_size(const char *text, guint64 *out_bytes)
{
	static const char units[] = "KMGT";
	guint64 n, scale = 1;
	char *end;

	if (!text || !g_ascii_isdigit(*text))
		return FALSE;
	n = g_ascii_strtoull(text, &end, 10);
	if (*end) {
		const char *unit = strchr(units, g_ascii_toupper(*end));

		if (!unit || end[1] != '\0')
			return FALSE;
		scale = (guint64)1 << (10 * (unit - units + 1));
	}
	if (n == 0 || n > G_MAXUINT64 / scale)
		return FALSE;
	*out_bytes = n * scale;
	return TRUE;
}

gboolean fs_options_check(FsOptions *opts, GError **error)
{
	if (!opts->url) {
		g_set_error_literal(error, G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE,
				    "no server given (see --help)");
		return FALSE;
	}
	if (!fs_options_parse_url(opts->url, opts, error))
		return FALSE;
	if (opts->tls) {
		if (strcmp(opts->tls, "none") == 0) {
			if (opts->tls_mode == IMAP_TLS_IMPLICIT) {
				g_set_error_literal(
					error, G_OPTION_ERROR,
					G_OPTION_ERROR_BAD_VALUE,
					"-o tls=none goes with imap://, not "
					"imaps://");
				return FALSE;
			}
			opts->tls_mode = IMAP_TLS_NONE;
		} else if (strcmp(opts->tls, "starttls") != 0 &&
			   strcmp(opts->tls, "implicit") != 0) {
			g_set_error(error, G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE,
				    "-o tls=%s: use tls=none (plaintext, "
				    "imap:// only); TLS is the default",
				    opts->tls);
			return FALSE;
		}
	}
	if (opts->allow_plaintext_auth && opts->tls_mode != IMAP_TLS_NONE)
		g_message("allow_plaintext_auth has no effect: the link is "
			  "encrypted");
	if (opts->rm) {
		if (strcmp(opts->rm, "expunge") == 0) {
			opts->rm_expunge = TRUE;
		} else if (strcmp(opts->rm, "trash") != 0) {
			g_set_error(error, G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE,
				    "-o rm=%s: use rm=trash (the default) or "
				    "rm=expunge",
				    opts->rm);
			return FALSE;
		}
	}
	if (opts->auth) {
		if (strcmp(opts->auth, "oauth2") == 0) {
			opts->oauth2 = TRUE;
		} else if (strcmp(opts->auth, "password") != 0) {
			g_set_error(error, G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE,
				    "-o auth=%s: use auth=password (the "
				    "default) or auth=oauth2",
				    opts->auth);
			return FALSE;
		}
	}
	opts->cache_size = (guint64)1 << 30;
	if (opts->cache_size_text &&
	    !fs_options_parse_size(opts->cache_size_text, &opts->cache_size)) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "-o cache_size=%s: give a size such as 512M or 2G",
			    opts->cache_size_text);
		return FALSE;
	}
	opts->spin_us = 200;
	if (opts->spin_text) {
		guint64 us;

		if (!g_ascii_string_to_unsigned(opts->spin_text, 10, 0, 100000,
						&us, NULL)) {
			g_set_error(error, G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE,
				    "-o spin=%s: give microseconds from 0 to "
				    "100000",
				    opts->spin_text);
			return FALSE;
		}
		opts->spin_us = us;
	}
	if (opts->max_conns == 0)
		opts->max_conns = 4;
	if (opts->max_threads == 0)
		opts->max_threads = 32;
	if (opts->max_threads > 1000) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "-o max_threads=%u: use 1000 or fewer",
			    opts->max_threads);
		return FALSE;
	}
	if (opts->max_conns > 16) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "-o max_conns=%u is more than servers tolerate; "
			    "use 16 or fewer",
			    opts->max_conns);
		return FALSE;
	}
	if (opts->timeout == 0)
		opts->timeout = 60;
	if (opts->list_ttl == 0)
		opts->list_ttl = 30;
	return TRUE;
}

void fs_options_clear(FsOptions *opts)
{
	/* Strings from fuse_opt are malloc'd. */
	free(opts->url);
	free(opts->passcmd);
	free(opts->passfile);
	free(opts->cafile);
	free(opts->tls);
	free(opts->cache_dir);
	free(opts->rm);
	free(opts->cache_size_text);
	free(opts->spin_text);
	free(opts->auth);
	g_free(opts->user);
	g_free(opts->host);
	g_free(opts->workdir);
	memset(opts, 0, sizeof(*opts));
}

void fs_options_print_usage(const char *prog)
{
	printf("usage: %s [options] imaps://USER@HOST[:PORT] MOUNTPOINT\n"
	       "       %s [options] imap://USER@HOST[:PORT] MOUNTPOINT "
	       "(STARTTLS)\n"
	       "unmount with: fusermount3 -u MOUNTPOINT\n"
	       "\n"
	       "imapfs options:\n"
	       "    -o passcmd=CMD         password: first line CMD prints\n"
	       "    -o passfile=FILE       password: first line of FILE "
	       "(mode 0600)\n"
	       "                           (else $IMAPFS_PASSWORD, else a "
	       "prompt)\n"
	       "    -o auth=oauth2         log in with an OAuth 2.0 access "
	       "token (OAUTHBEARER\n"
	       "                           or XOAUTH2) that passcmd prints, "
	       "run again at\n"
	       "                           each login\n"
	       "    -o cafile=FILE         also trust the CA certificates in "
	       "FILE\n"
	       "    -o tls=none            plaintext (imap:// only; needs "
	       "allow_plaintext_auth\n"
	       "                           to send a password)\n"
	       "    -o allow_plaintext_auth  allow LOGIN over plaintext\n"
	       "    -o max_conns=N         IMAP connections (default 4)\n"
	       "    -o max_threads=N       FUSE requests handled at once "
	       "(default 32)\n"
	       "    -o cache_dir=DIR       disk cache (default "
	       "$XDG_CACHE_HOME/imapfs/USER@HOST)\n"
	       "    -o cache_size=SIZE     disk cache for messages (default "
	       "1G)\n"
	       "    -o rm=trash|expunge    rm moves to Trash (default) or "
	       "expunges\n"
	       "    -o timeout=S           give up on the server after S "
	       "seconds (default 60)\n"
	       "    -o list_ttl=S          re-list a mailbox after S seconds "
	       "(default 30)\n"
	       "    -o noidle              do not watch mailboxes with IDLE "
	       "and NOTIFY (changes\n"
	       "                           made elsewhere then show after "
	       "list_ttl)\n"
	       "    -o nocompress          do not ask for COMPRESS=DEFLATE "
	       "where the server\n"
	       "                           offers it\n"
	       "    -o nopassthrough       serve every read of a cached message "
	       "through imapfs,\n"
	       "                           never by the kernel from the cache "
	       "file\n"
	       "    -o spin=US             after a request, look for the next "
	       "one for US\n"
	       "                           microseconds before sleeping "
	       "(default 200; 0 never)\n"
	       "    -o ro                  read-only: no writes, and no call "
	       "into imapfs per\n"
	       "                           file opened (faster grep -r)\n"
	       "    -d, -o debug           debug output and wire trace "
	       "(passwords hidden)\n"
	       "    -f                     stay in the foreground\n"
	       "    -V, --version          print the version\n"
	       "\n",
	       prog, prog);
}

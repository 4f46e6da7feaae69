/* fs/options.h — the command line: imapfs [options] URL MOUNTPOINT.
 *
 * sshfs-style: -o a=b,c; our own options are consumed here, the rest (and
 * -f, -d, -s) are left in the fuse_args for libfuse. Defaults are applied
 * after parsing so fuse_opt frees nothing of ours; fs_options_check()
 * rejects bad combinations with a message that says what to do.
 */
#ifndef IMAPFS_FS_OPTIONS_H
#define IMAPFS_FS_OPTIONS_H

#include <fuse_lowlevel.h>
#include <glib.h>
#include "imap/config.h"

typedef struct {
	/* As given (malloc'd by fuse_opt, or NULL). */
	char *url;
	char *passcmd;
	char *passfile;
	char *cafile;
	char *tls;
	char *cache_dir;
	char *rm;
	char *cache_size_text;
	char *spin_text;
	char *auth;
	int allow_plaintext_auth;
	int read_only;
	int noidle;
	int nopassthrough;
	int nocompress;
	unsigned max_conns;
	unsigned max_threads;
	unsigned timeout;
	unsigned list_ttl;
	int show_help;
	int show_version;
	/* From the URL. */
	char *user;
	char *host;
	guint16 port;
	ImapTlsMode tls_mode;
	gboolean rm_expunge;
	gboolean oauth2;    /* -o auth=oauth2: the "password" is a token */
	char *workdir;	    /* where imapfs was started */
	guint64 cache_size; /* bytes */
	unsigned spin_us;   /* see fs/loop.h */
} FsOptions;

/* "512M", "2G", "100000" (bytes), with K/M/G/T meaning powers of 1024.
 * FALSE if malformed or zero. */
gboolean fs_options_parse_size(const char *text, guint64 *out_bytes);

/* Parses @args (modified: our options removed). FALSE with a message in
 * @error on bad input. */
gboolean fs_options_parse(struct fuse_args *args, FsOptions *opts,
			  GError **error);

/* Splits imap[s]://USER@HOST[:PORT] (USER may contain '@' or be
 * %-encoded; HOST may be a [bracketed] IPv6 literal) into @opts. */
gboolean fs_options_parse_url(const char *url, FsOptions *opts, GError **error);

/* Applies defaults and checks combinations. */
gboolean fs_options_check(FsOptions *opts, GError **error);

void fs_options_clear(FsOptions *opts);

void fs_options_print_usage(const char *prog);

#endif

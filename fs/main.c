/* fs/main.c — the imapfs program.
 *
 * Order matters (STYLE.md, threading model):
 *   parse options -> password -> probe login on this thread, so a wrong
 *   host, port, password or certificate is reported on the terminal and
 *   nothing is mounted -> mount -> fuse_daemonize (fork keeps only this
 *   thread, so no thread may exist before it) -> pool (its imap-io thread
 *   adopts the probe connection), account, notify thread -> the
 *   multi-threaded FUSE loop (fs/loop.c, or libfuse's with -o spin=0)
 *   -> teardown in reverse.
 */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <syslog.h>
#include <unistd.h>

#include "cache/account.h"
#include "fs/inode.h"
#include "fs/loop.h"
#include "fs/mount.h"
#include "fs/names.h"
#include "fs/newfile.h"
#include "fs/notify.h"
#include "fs/options.h"
#include "fs/passthrough.h"
#include "fs/password.h"
#include "imap/connect.h"
#include "imap/error.h"
#include "imap/pool.h"

static GLogWriterOutput log_to_syslog(GLogLevelFlags level,
				      const GLogField *fields, gsize n_fields,
				      gpointer user_data)
{
	const char *message = NULL, *domain = NULL;
	int priority;

	for (gsize i = 0; i < n_fields; i++) {
		if (strcmp(fields[i].key, "MESSAGE") == 0)
			message = fields[i].value;
		else if (strcmp(fields[i].key, "GLIB_DOMAIN") == 0)
			domain = fields[i].value;
	}
	if (!message)
		return G_LOG_WRITER_UNHANDLED;
	if (g_log_writer_default_would_drop(level, domain))
		return G_LOG_WRITER_HANDLED;
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
		priority = LOG_ERR;
	else if (level & G_LOG_LEVEL_WARNING)
		priority = LOG_WARNING;
	else if (level & (G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO))
		priority = LOG_INFO;
	else
		priority = LOG_DEBUG;
	syslog(priority, "%s: %s", domain ? domain : "imapfs", message);
	return G_LOG_WRITER_HANDLED;
}

static char *default_cache_dir(const FsOptions *opts)
{
	g_autofree char *account = NULL;

	if (opts->port == (opts->tls_mode == IMAP_TLS_IMPLICIT ? 993 : 143))
		account = g_strdup_printf("%s@%s", opts->user, opts->host);
	else
		account = g_strdup_printf("%s@%s:%u", opts->user, opts->host,
					  opts->port);
	g_strdelimit(account, "/", '_');
	return g_build_filename(g_get_user_cache_dir(), "imapfs", account,
				NULL);
}

static gboolean make_private_dir(const char *path, GError **error)
{
	if (g_mkdir_with_parents(path, 0700) < 0) {
		int err = errno;

		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
			    "cannot create %s: %s%s", path, g_strerror(err),
			    err == ENOSPC || err == EDQUOT
				    ? " (free some space on that disk, or give "
				      "a cache directory elsewhere with -o "
				      "cache_dir)"
				    : "");
		return FALSE;
	}
	return TRUE;
}

/* Takes the cache directory for this process for its whole life (the lock
 * goes with the descriptor, across fuse_daemonize's fork): two processes
 * writing one cache would corrupt each other's partial files. */
static gboolean lock_cache_dir(const char *dir, GError **error)
{
	g_autofree char *path = g_build_filename(dir, "lock", NULL);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
		int err = errno;

		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err),
			    "cannot open %s: %s", path, g_strerror(err));
		return FALSE;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;

		close(fd);
		if (err == EWOULDBLOCK)
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_EXIST,
				    "the cache directory %s is in use by "
				    "another imapfs; give this mount its own "
				    "with -o cache_dir=DIR",
				    dir);
		else
			g_set_error(error, G_FILE_ERROR,
				    g_file_error_from_errno(err),
				    "cannot lock the cache directory %s: %s",
				    dir, g_strerror(err));
		return FALSE;
	}
	return TRUE; /* fd stays open until exit */
}

static void on_invalidate(CacheMsgRef ref, gpointer user_data)
{
	FsMount *mnt = user_data;

	fs_notify_inode(mnt->notify,
			ref.uid ? fs_inode_msg(ref.mailbox_id, ref.uid)
				: fs_inode_dir(ref.mailbox_id));
}

static void on_invalidate_entry(guint32 parent_id, const char *component,
				gpointer user_data)
{
	FsMount *mnt = user_data;
	g_autofree char *name = fs_names_from_mailbox(component);

	if (*name)
		fs_notify_entry(mnt->notify, fs_inode_dir(parent_id), name, 0);
}

static void on_renewed(guint32 old_id, guint32 new_id, gpointer user_data)
{
	FsMount *mnt = user_data;

	fs_newfiles_move_mailbox(mnt->newfiles, old_id, new_id);
}

/* An access token for each OAuth 2.0 login, from where a password would
 * come, asked again every time: tokens expire within hours, a mount lives
 * longer, and token helpers renew them. */
static char *oauth_token(gpointer user_data, GError **error)
{
	const FsOptions *opts = user_data;

	return fs_password_get(opts->passcmd, opts->passfile, opts->user,
			       opts->host, opts->workdir, opts->timeout,
			       error);
}

/* The mount's first login, which mount(8) waits for. One the server
 * cannot take now ([UNAVAILABLE]: it could not check the password;
 * [LIMIT]: no room for another connection) is tried again after 1, 2, 4
 * and 8 seconds before the mount gives up. */
static ImapStream *first_login(const ImapConfig *cfg, GError **error)
{
	for (guint wait_s = 1;; wait_s *= 2) {
		g_autoptr(GError) local = NULL;
		ImapStream *stream = imap_stream_connect(cfg, 1, &local);

		if (stream)
			return stream;
		if (wait_s > 8 || !g_error_matches(local, IMAPFS_IMAP_ERROR,
						   IMAP_ERROR_UNAVAILABLE)) {
			g_propagate_error(error, g_steal_pointer(&local));
			return NULL;
		}
		g_message("%s; trying again in %u s", local->message, wait_s);
		g_usleep(wait_s * G_USEC_PER_SEC);
	}
}

static int fail(const char *message)
{
	fprintf(stderr, "imapfs: %s\n", message);
	return 1;
}

/* The session ended: requests still waiting on the server give up. */
static void on_end(void *acct)
{
	cache_account_end(acct);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmdline = {0};
	struct fuse_loop_config *loop = NULL;
	struct fuse_session *se = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(ImapConfig) cfg = NULL;
	g_autofree char *cache_dir = NULL;
	g_autofree char *new_dir = NULL;
	g_autofree char *account = NULL;
	g_autofree char *fsname_opt = NULL;
	char *fsname_escaped = NULL;
	CacheOptions cache_opts = {0};
	ImapStream *probe = NULL;
	ImapLoginGate *login_gate = NULL; /* the connections' */
	FsOptions opts = {0};
	FsMount mnt = {0};
	int ret = 1;

	setlocale(LC_ALL, "");
	g_log_writer_default_set_use_stderr(TRUE);

	if (!fs_options_parse(&args, &opts, &error)) {
		ret = fail(error->message);
		goto out_args;
	}
	if (opts.show_version) {
		printf("imapfs %s\n", IMAPFS_VERSION);
		printf("FUSE library version %s\n", fuse_pkgversion());
		ret = 0;
		goto out_args;
	}
	if (opts.show_help) {
		fs_options_print_usage(argv[0]);
		printf("FUSE options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto out_args;
	}
	if (fuse_parse_cmdline(&args, &cmdline) != 0)
		goto out_args;
	if (!fs_options_check(&opts, &error)) {
		ret = fail(error->message);
		goto out_args;
	}
	if (!cmdline.mountpoint) {
		ret = fail("no mount point given (see --help)");
		goto out_args;
	}
	if (cmdline.debug)
		g_log_set_debug_enabled(TRUE);

	cfg = g_new0(ImapConfig, 1);
	cfg->host = g_strdup(opts.host);
	cfg->port = opts.port;
	cfg->tls = opts.tls_mode;
	/* Paths are made absolute now: the daemon works from "/" once
	 * mounted, and connects and writes its cache from there. */
	cfg->cafile =
		opts.cafile ? g_canonicalize_filename(opts.cafile, NULL) : NULL;
	cfg->user = g_strdup(opts.user);
	cfg->login_gate = login_gate = imap_login_gate_new();
	/* passcmd runs again at each OAuth 2.0 login, from the daemon,
	 * which works from "/": in the directory it was given in. */
	opts.workdir = g_get_current_dir();
	if (opts.passfile) { /* read again from "/" with auth=oauth2 */
		char *path = g_canonicalize_filename(opts.passfile, NULL);

		free(opts.passfile);
		opts.passfile = strdup(path);
		g_free(path);
	}
	cfg->allow_plaintext_auth = opts.allow_plaintext_auth;
	cfg->no_compress = opts.nocompress;
	cfg->max_conns = opts.max_conns;
	cfg->trace = cmdline.debug;
	cfg->timeout_s = opts.timeout;
	cache_dir = opts.cache_dir
			    ? g_canonicalize_filename(opts.cache_dir, NULL)
			    : default_cache_dir(&opts);
	cfg->spool_dir = g_build_filename(cache_dir, "spool", NULL);
	if (!make_private_dir(cache_dir, &error) ||
	    !lock_cache_dir(cache_dir, &error) ||
	    !make_private_dir(cfg->spool_dir, &error)) {
		ret = fail(error->message);
		goto out_args;
	}

	fsname_opt = g_strdup_printf("%s@%s", opts.user, opts.host);
	fuse_opt_add_opt_escaped(&fsname_escaped, fsname_opt);
	g_free(g_steal_pointer(&fsname_opt));
	fsname_opt =
		g_strdup_printf("subtype=imapfs,fsname=%s", fsname_escaped);
	free(fsname_escaped);
	fuse_opt_add_arg(&args, "-o");
	fuse_opt_add_arg(&args, fsname_opt);

	/* libfuse checks its options here (nothing is mounted yet): a typo
	 * is reported before the password is asked for. */
	se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &mnt);
	if (!se)
		goto out_args;

	account = g_strdup_printf("%s@%s:%u", opts.user, opts.host, opts.port);
	if (opts.oauth2) {
		if (!opts.passcmd && !opts.passfile &&
		    !g_getenv("IMAPFS_PASSWORD")) {
			ret = fail("-o auth=oauth2 takes the access token from "
				   "-o passcmd=CMD (run again at each login, "
				   "as tokens expire), -o passfile=FILE (read "
				   "again) or IMAPFS_PASSWORD");
			goto out_session;
		}
		cfg->token = oauth_token;
		cfg->token_data = &opts;
	} else {
		cfg->password = fs_password_get(opts.passcmd, opts.passfile,
						opts.user, opts.host, NULL, 0,
						&error);
		if (!cfg->password) {
			ret = fail(error->message);
			goto out_session;
		}
		fs_password_wipe_env();
	}
	probe = first_login(cfg, &error);
	if (!probe) {
		ret = fail(error->message);
		goto out_session;
	}
	/* Logged in: the cache is this account's from now on. */
	if (!cache_account_claim_dir(cache_dir, account, &error)) {
		ret = fail(error->message);
		goto out_session;
	}

	mnt.uid = getuid();
	mnt.gid = getgid();
	mnt.mount_time = time(NULL);
	mnt.timeout = opts.list_ttl;
	mnt.rm_expunge = opts.rm_expunge;
	mnt.read_only = opts.read_only;
	g_mutex_init(&mnt.lock);
	mnt.open_count = g_hash_table_new(g_direct_hash, g_direct_equal);
	mnt.moved = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
					  g_free);
	new_dir = g_build_filename(cache_dir, "new", NULL);
	mnt.newfiles = fs_newfiles_new(new_dir, &error);
	if (!mnt.newfiles) {
		ret = fail(error->message);
		goto out_session;
	}
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, cmdline.mountpoint) != 0)
		goto out_signals;
	/* A read-only mount opens files without asking (see fs_op_init):
	 * nothing to pass through. */
	if (!opts.nopassthrough && !opts.read_only)
		mnt.passthrough = fs_passthrough_attach(se, cache_dir);
	if (fuse_daemonize(cmdline.foreground) != 0)
		goto out_unmount;
	if (!cmdline.foreground) {
		openlog("imapfs", LOG_PID, LOG_DAEMON);
		g_log_set_writer_func(log_to_syslog, NULL, NULL);
	}

	/* Threads from here on. */
	cache_opts.cache_dir = cache_dir;
	cache_opts.timeout_s = opts.timeout;
	cache_opts.list_ttl_s = opts.list_ttl;
	cache_opts.cache_size = opts.cache_size;
	mnt.acct =
		cache_account_new(imap_pool_new(cfg, g_steal_pointer(&probe)),
				  &cache_opts, &error);
	if (!mnt.acct) {
		g_critical("%s", error->message);
		goto out_unmount;
	}
	mnt.notify = fs_notify_new(se);
	fs_passthrough_bind(mnt.passthrough, mnt.acct);
	cache_account_set_invalidate_func(
		mnt.acct, on_invalidate, on_invalidate_entry, on_renewed, &mnt);
	if (!opts.noidle)
		cache_account_watch(mnt.acct);
	g_message("mounted %s@%s on %s", opts.user, opts.host,
		  cmdline.mountpoint);

	if (cmdline.singlethread) {
		ret = fuse_session_loop(se);
	} else if (opts.spin_us > 0 && !cmdline.clone_fd) {
		ret = fs_loop_run(se, opts.max_threads, opts.spin_us, on_end,
				  mnt.acct);
	} else {
		loop = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(loop, cmdline.clone_fd);
		fuse_loop_cfg_set_max_threads(loop, opts.max_threads);
		ret = fuse_session_loop_mt(se, loop);
		fuse_loop_cfg_destroy(loop);
	}
	/* libfuse's loops give the signal that ended them: a clean end. So
	 * is ECONNABORTED: a read of the device that took a request (an
	 * asynchronous RELEASE) just as the unmount shut the connection
	 * down gets it (the kernel's fuse_dev_do_read), where the reads
	 * after it get ENODEV, which libfuse takes for the end. (An abort
	 * through /sys/fs/fuse/connections ends the mount the same way.) */
	ret = ret < 0 && ret != -ECONNABORTED ? 1 : 0;

	/* The account's last callbacks may still queue invalidations and
	 * move pending files. */
	cache_account_free(mnt.acct);
	fs_notify_free(mnt.notify);
	fs_newfiles_free(mnt.newfiles);
	mnt.newfiles = NULL;
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
	fs_passthrough_free(mnt.passthrough);
	fs_newfiles_free(mnt.newfiles);
	if (mnt.open_count)
		g_hash_table_unref(mnt.open_count);
	if (mnt.moved)
		g_hash_table_unref(mnt.moved);
	imap_stream_free(probe);
out_args:
	free(cmdline.mountpoint);
	fs_options_clear(&opts);
	fuse_opt_free_args(&args);
	imap_login_gate_free(login_gate);
	return ret;
}

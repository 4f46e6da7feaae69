/* tests/unit/test-imap-conn.c — the connection pool against a scripted
 * fake server.
 *
 * The fake server is a GThread on a loopback listener that plays a script
 * of steps: send a line, expect a line (prefix match), expect exact bytes,
 * expect silence, close, accept the next connection. A step that does not
 * match records a failure, which the test checks at the end. The client
 * side waits on the pool's callbacks the way cache/wait.c does: a mutex
 * and a condition variable with a deadline.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "imap/caps.h"
#include "imap/command.h"
#include "imap/connect.h"
#include "imap/error.h"
#include "imap/idle.h"
#include "imap/pool.h"

/* ---- fake server ----------------------------------------------------- */

typedef struct {
	const char *const *script;
	int listen_fd;
	int fd;
	guint16 port;
	GThread *thread;
	GString *in;
	char *failure; /* first mismatch, or NULL */
	guint accepts;
} FakeServer;

#define STEP_TIMEOUT_MS 8000

static gboolean fs_fill(FakeServer *fs, int timeout_ms)
{
	struct pollfd pfd = {.fd = fs->fd, .events = POLLIN};
	char buf[4096];
	ssize_t n;

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return FALSE;
	n = recv(fs->fd, buf, sizeof(buf), 0);
	if (n <= 0)
		return FALSE;
	g_string_append_len(fs->in, buf, n);
	return TRUE;
}

static char *fs_read_line(FakeServer *fs)
{
	for (;;) {
		char *nl = memchr(fs->in->str, '\n', fs->in->len);
		if (nl != NULL) {
			gsize len = (gsize)(nl - fs->in->str) + 1;
			char *line = g_strndup(fs->in->str, len);
			g_string_erase(fs->in, 0, (gssize)len);
			g_strchomp(line);
			return line;
		}
		if (!fs_fill(fs, STEP_TIMEOUT_MS))
			return NULL;
	}
}

static void fs_fail(FakeServer *fs, const char *step, const char *got)
{
	if (fs->failure == NULL)
		fs->failure = g_strdup_printf("step \"%s\": got \"%s\"", step,
					      got != NULL ? got : "(nothing)");
}

static void fs_send(FakeServer *fs, const char *text, gboolean crlf)
{
	g_autofree char *s = g_strconcat(text, crlf ? "\r\n" : "", NULL);
	gsize len = strlen(s);

	if (send(fs->fd, s, len, MSG_NOSIGNAL) != (ssize_t)len)
		fs_fail(fs, text, "send failed");
}

static void fs_close(FakeServer *fs)
{
	if (fs->fd >= 0)
		close(fs->fd);
	fs->fd = -1;
	g_string_truncate(fs->in, 0);
}

static gpointer fs_main(gpointer data)
{
	FakeServer *fs = data;

	for (const char *const *p = fs->script; *p != NULL; p++) {
		const char *step = *p;

		if (fs->failure != NULL)
			break;
		if (g_str_equal(step, "ACCEPT")) {
			struct pollfd pfd = {.fd = fs->listen_fd,
					     .events = POLLIN};
			fs_close(fs);
			if (poll(&pfd, 1, STEP_TIMEOUT_MS) <= 0) {
				fs_fail(fs, step, NULL);
				break;
			}
			fs->fd = accept(fs->listen_fd, NULL, NULL);
			fs->accepts++;
		} else if (g_str_has_prefix(step, "S:")) {
			fs_send(fs, step + 2, TRUE);
		} else if (g_str_has_prefix(step, "R:")) {
			fs_send(fs, step + 2, FALSE);
		} else if (g_str_has_prefix(step, "C:")) {
			g_autofree char *line = fs_read_line(fs);
			const char *want = step + 2, *have = line;
			/* "* rest": any tag */
			if (have != NULL && g_str_has_prefix(want, "* ")) {
				const char *sp = strchr(have, ' ');
				have = sp != NULL ? sp + 1 : "";
				want += 2;
			}
			if (have == NULL || !g_str_has_prefix(have, want))
				fs_fail(fs, step, line);
		} else if (g_str_has_prefix(step, "N:")) {
			gsize want = strlen(step + 2);
			while (fs->in->len < want &&
			       fs_fill(fs, STEP_TIMEOUT_MS))
				;
			if (fs->in->len < want ||
			    memcmp(fs->in->str, step + 2, want) != 0)
				fs_fail(fs, step, fs->in->str);
			else
				g_string_erase(fs->in, 0, (gssize)want);
		} else if (g_str_has_prefix(step, "QUIET:")) {
			int ms = atoi(step + 6);
			if (fs->in->len > 0 || fs_fill(fs, ms))
				fs_fail(fs, step, fs->in->str);
		} else if (g_str_has_prefix(step, "SLEEP:")) {
			g_usleep((gulong)atoi(step + 6) * 1000);
		} else if (g_str_equal(step, "CLOSE")) {
			fs_close(fs);
		} else if (g_str_equal(step, "WAITCLOSE")) {
			/* Until the client hangs up (it may send LOGOUT). */
			while (fs_fill(fs, STEP_TIMEOUT_MS))
				;
		} else {
			g_error("bad script step %s", step);
		}
	}
	fs_close(fs);
	return NULL;
}

static FakeServer *fake_server_start(const char *const *script)
{
	FakeServer *fs = g_new0(FakeServer, 1);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);

	fs->script = script;
	fs->fd = -1;
	fs->in = g_string_new(NULL);
	fs->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	g_assert_cmpint(fs->listen_fd, >=, 0);
	g_assert_cmpint(bind(fs->listen_fd, (struct sockaddr *)&sa, len), ==,
			0);
	g_assert_cmpint(listen(fs->listen_fd, 8), ==, 0);
	g_assert_cmpint(
		getsockname(fs->listen_fd, (struct sockaddr *)&sa, &len), ==,
		0);
	fs->port = ntohs(sa.sin_port);
	fs->thread = g_thread_new("fake-imap", fs_main, fs);
	return fs;
}

/* Joins the server and fails the test if the script did not match. */
static void fake_server_finish(FakeServer *fs, guint expect_accepts)
{
	g_thread_join(fs->thread);
	close(fs->listen_fd);
	if (fs->failure != NULL)
		g_test_message("fake server: %s", fs->failure);
	g_assert_null(fs->failure);
	g_assert_cmpuint(fs->accepts, ==, expect_accepts);
	g_string_free(fs->in, TRUE);
	g_free(fs);
}

/* ---- client side ----------------------------------------------------- */

typedef struct {
	GMutex lock;
	GCond cond;
	gboolean done;
	ImapReply *reply;
	GError *error;
	GPtrArray *data; /* "NAME number uidvalidity body" strings */
} Waiter;

static Waiter *waiter_new(void)
{
	Waiter *w = g_new0(Waiter, 1);

	g_mutex_init(&w->lock);
	g_cond_init(&w->cond);
	w->data = g_ptr_array_new_with_free_func(g_free);
	return w;
}

static void waiter_free(Waiter *w)
{
	imap_reply_free(w->reply);
	g_clear_error(&w->error);
	g_ptr_array_unref(w->data);
	g_mutex_clear(&w->lock);
	g_cond_clear(&w->cond);
	g_free(w);
}

static void on_data(const ImapResponse *resp, guint32 uidvalidity,
		    gpointer user_data)
{
	Waiter *w = user_data;
	g_autoptr(GString) s = g_string_new(resp->name);
	ImapFetch f;

	g_string_append_printf(s, " %u %u", resp->number, uidvalidity);
	if (g_strcmp0(resp->name, "FETCH") == 0 &&
	    imap_response_get_fetch(resp, &f, NULL)) {
		g_string_append_printf(s, " uid=%u", f.uid);
		if (f.body != NULL && f.body->type == IMAP_VALUE_STRING)
			g_string_append_printf(s, " body=%s", f.body->str);
		imap_fetch_clear(&f);
	}
	g_mutex_lock(&w->lock);
	g_ptr_array_add(w->data, g_string_free(g_steal_pointer(&s), FALSE));
	g_mutex_unlock(&w->lock);
}

static void on_done(ImapReply *reply, GError *error, gpointer user_data)
{
	Waiter *w = user_data;

	g_mutex_lock(&w->lock);
	g_assert_false(w->done); /* exactly once */
	w->done = TRUE;
	w->reply = reply;
	w->error = error;
	g_cond_signal(&w->cond);
	g_mutex_unlock(&w->lock);
}

static void waiter_wait(Waiter *w)
{
	gint64 deadline = g_get_monotonic_time() + 15 * G_TIME_SPAN_SECOND;

	g_mutex_lock(&w->lock);
	while (!w->done)
		if (!g_cond_wait_until(&w->cond, &w->lock, deadline))
			break;
	g_mutex_unlock(&w->lock);
	g_assert_true(w->done);
}

static ImapConfig test_config(guint16 port)
{
	ImapConfig cfg = {
		.host = (char *)"127.0.0.1",
		.port = port,
		.tls = IMAP_TLS_NONE,
		.user = (char *)"u",
		.password = (char *)"p",
		.allow_plaintext_auth = TRUE,
		.max_conns = 1,
		.trace = TRUE,
		.timeout_s = 5,
	};
	return cfg;
}

static ImapCommand *cmd(ImapCommandFlags flags, const char *text)
{
	g_autoptr(GError) error = NULL;
	ImapCommand *c = imap_command_new(&error, flags, text);

	g_assert_no_error(error);
	return c;
}

static Waiter *submit(ImapPool *pool, const char *mailbox, ImapCommand *c,
		      gboolean with_data)
{
	Waiter *w = waiter_new();

	imap_pool_submit(pool, mailbox, c, with_data ? on_data : NULL, on_done,
			 w);
	return w;
}

/* base64("\0u\0p") */
#define GREETING_PLAIN                                                         \
	"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR LITERAL+] ready",     \
		"C:A1 AUTHENTICATE PLAIN AHUAcA==",                            \
		"S:A1 OK [CAPABILITY IMAP4rev1 LITERAL+ MOVE] logged in"

/* ---- tests ----------------------------------------------------------- */

/* Greeting without capabilities -> CAPABILITY -> LOGIN (no SASL-IR);
 * three commands pipelined before any reply; replies out of order;
 * untagged data to the data func or into the reply. */
static void test_login_pipelining(void)
{
	static const char *const script[] = {
		"ACCEPT",
		"S:* OK hello",
		"C:A1 CAPABILITY",
		"S:* CAPABILITY IMAP4rev1 AUTH=PLAIN",
		"S:A1 OK done",
		"C:A2 LOGIN u p",
		"S:A2 OK [CAPABILITY IMAP4rev1 LITERAL+] welcome",
		"C:A3 LIST \"\" *",
		"C:A4 NOOP",
		"C:A5 STATUS INBOX (MESSAGES)",
		"S:* LIST (\\HasNoChildren) \"/\" INBOX",
		"S:* LIST (\\HasNoChildren) \"/\" Sent",
		"S:A3 OK listed",
		"S:A5 OK status",
		"S:A4 OK noop",
		"C:* LOGOUT",
		"WAITCLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	ImapPool *pool = imap_pool_new(&cfg, NULL);
	Waiter *w1 = submit(pool, NULL, cmd(0, "LIST \"\" *"), TRUE);
	Waiter *w2 = submit(pool, NULL, cmd(0, "NOOP"), FALSE);
	Waiter *w3 =
		submit(pool, NULL, cmd(0, "STATUS INBOX (MESSAGES)"), FALSE);

	waiter_wait(w1);
	waiter_wait(w2);
	waiter_wait(w3);
	g_assert_no_error(w1->error);
	g_assert_no_error(w2->error);
	g_assert_no_error(w3->error);
	g_assert_cmpuint(w1->data->len, ==, 2);
	g_assert_cmpstr(w1->data->pdata[0], ==, "LIST 0 0");
	g_assert_cmpuint(w1->reply->untagged->len, ==, 0);
	g_assert_cmpstr(w1->reply->text, ==, "listed");
	g_assert_cmpstr(w2->reply->text, ==, "noop");
	g_assert_cmpuint(imap_pool_caps(pool) & IMAP_CAP_LITERALPLUS, !=, 0);
	imap_pool_free(pool);
	fake_server_finish(fs, 1);
	waiter_free(w1);
	waiter_free(w2);
	waiter_free(w3);
}

typedef struct {
	guint32 uidvalidity;
	guint32 exists;
	guint calls;
} SelectSeen;

static void on_select(const char *mailbox, const ImapMailboxInfo *info,
		      gpointer user_data)
{
	SelectSeen *seen = user_data;

	g_assert_cmpstr(mailbox, ==, "INBOX");
	seen->uidvalidity = info->uidvalidity;
	seen->exists = info->exists;
	seen->calls++;
}

/* SELECT before a mailbox command; FETCH data with the UIDVALIDITY; a
 * tagged NO [NONEXISTENT]; commands pipelined behind a SELECT that
 * fails report its error, not the server's "no mailbox selected". */
static void test_select_fetch_no(void)
{
	static const char *const script[] = {
		"ACCEPT",
		GREETING_PLAIN,
		"C:A2 SELECT INBOX",
		"S:* 2 EXISTS",
		"S:* OK [UIDVALIDITY 42] UIDs valid",
		"S:* OK [UIDNEXT 10] next",
		"S:A2 OK [READ-WRITE] selected",
		"C:A3 UID FETCH 1:* (UID FLAGS)",
		"S:* 1 FETCH (UID 7 FLAGS (\\Seen))",
		"S:* 2 FETCH (UID 9 FLAGS ())",
		"S:A3 OK fetched",
		"C:A4 UID STORE 99 +FLAGS (\\Seen)",
		"S:A4 NO [NONEXISTENT] No such message",
		"C:A5 SELECT nope",
		/* Both commands follow the SELECT in the pipeline; it fails,
		 * so they run with no mailbox selected. */
		"C:A6 UID FETCH 1 (UID)",
		"C:A7 UID FETCH 2 (UID)",
		"S:A5 NO [NONEXISTENT] Mailbox doesn't exist: nope",
		"S:A6 BAD No mailbox selected",
		"S:A7 BAD No mailbox selected",
		"C:* LOGOUT",
		"WAITCLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	ImapPool *pool = imap_pool_new(&cfg, NULL);
	SelectSeen seen = {0};

	imap_pool_set_select_func(pool, on_select, &seen);
	Waiter *w1 = submit(
		pool, "INBOX",
		cmd(IMAP_COMMAND_RETRIABLE, "UID FETCH 1:* (UID FLAGS)"), TRUE);
	waiter_wait(w1);
	g_assert_no_error(w1->error);
	g_assert_cmpuint(seen.calls, ==, 1);
	g_assert_cmpuint(seen.uidvalidity, ==, 42);
	g_assert_cmpuint(seen.exists, ==, 2);
	g_assert_cmpuint(w1->reply->uidvalidity, ==, 42);
	g_assert_cmpuint(w1->data->len, ==, 2);
	g_assert_cmpstr(w1->data->pdata[0], ==, "FETCH 1 42 uid=7");
	g_assert_cmpstr(w1->data->pdata[1], ==, "FETCH 2 42 uid=9");

	Waiter *w2 = submit(pool, "INBOX",
			    cmd(0, "UID STORE 99 +FLAGS (\\Seen)"), FALSE);
	waiter_wait(w2);
	g_assert_error(w2->error, IMAPFS_IMAP_ERROR, IMAP_ERROR_NONEXISTENT);
	g_assert_cmpstr(w2->error->message, ==,
			"UID STORE: NO [NONEXISTENT] No such message");
	g_assert_nonnull(w2->reply);
	g_assert_cmpint(w2->reply->status, ==, IMAP_STATUS_NO);
	g_assert_cmpstr(w2->reply->code, ==, "NONEXISTENT");

	Waiter *w3 = submit(pool, "nope", cmd(0, "UID FETCH 1 (UID)"), FALSE);
	Waiter *w4 = submit(pool, "nope", cmd(0, "UID FETCH 2 (UID)"), FALSE);
	waiter_wait(w3);
	waiter_wait(w4);
	g_assert_error(w3->error, IMAPFS_IMAP_ERROR, IMAP_ERROR_NONEXISTENT);
	g_assert_error(w4->error, IMAPFS_IMAP_ERROR, IMAP_ERROR_NONEXISTENT);
	g_assert_nonnull(strstr(w3->error->message,
				"NO [NONEXISTENT] Mailbox doesn't exist"));
	imap_pool_free(pool);
	fake_server_finish(fs, 1);
	waiter_free(w1);
	waiter_free(w2);
	waiter_free(w3);
	waiter_free(w4);
}

/* A mailbox command waits for a NOOP's answer where messages may have
 * come to that mailbox since its connection selected it, as
 * imap_pool_note_change() says (Dovecot runs a command pipelined behind
 * the NOOP before it shows the newcomers): not for a change to another
 * mailbox, once for one change, and for a change whose mailbox is not
 * known. Commands that come meanwhile wait for the same NOOP; a change
 * noted while it is out holds back only the commands after it. */
static void test_catch_up_noop(void)
{
	static const char *const script[] = {
		"ACCEPT",
		GREETING_PLAIN,
		"C:A2 SELECT Box",
		"S:* OK [UIDVALIDITY 5] ok",
		"S:A2 OK [READ-WRITE] selected",
		"C:A3 UID FETCH 1:* (UID)",
		"S:A3 OK fetched",
		"C:A4 UID MOVE 1 Other",
		"S:A4 OK [COPYUID 9 1 7] moved",
		"C:A5 UID STORE 2 FLAGS (\\Seen)",
		"S:A5 OK stored",
		"C:A6 NOOP",
		"QUIET:300",
		"S:* 6 EXISTS",
		"S:A6 OK noop",
		"C:A7 UID STORE 3 FLAGS (\\Seen)",
		"C:A8 UID STORE 4 FLAGS (\\Seen)",
		"S:A7 OK stored",
		"S:A8 OK stored",
		"C:A9 UID STORE 5 FLAGS (\\Seen)",
		"S:A9 OK stored",
		"C:A10 NOOP",
		"QUIET:300",
		"S:A10 OK noop",
		"C:A11 UID STORE 6 FLAGS (\\Seen)",
		"S:A11 OK stored",
		"C:A12 NOOP",
		"QUIET:300",
		"S:A12 OK noop",
		"C:A13 UID STORE 7 FLAGS (\\Seen)",
		"S:A13 OK stored",
		"C:A14 NOOP",
		"S:A14 OK noop",
		"C:A15 UID STORE 8 FLAGS (\\Seen)",
		"S:A15 OK stored",
		"C:* LOGOUT",
		"WAITCLOSE",
		NULL,
	};
	/* {mailbox noted ("": any), command}; a NULL command waits for the
	 * ones before it, an empty one only notes, a moment later. */
	const char *const steps[][2] = {
		{NULL, "UID FETCH 1:* (UID)"},
		{NULL, NULL},
		{NULL, "UID MOVE 1 Other"},
		{NULL, NULL},
		{"Other", "UID STORE 2 FLAGS (\\Seen)"},
		{NULL, NULL},
		{"Box", "UID STORE 3 FLAGS (\\Seen)"},
		{NULL, "UID STORE 4 FLAGS (\\Seen)"},
		{NULL, NULL},
		{NULL, "UID STORE 5 FLAGS (\\Seen)"},
		{NULL, NULL},
		{"", "UID STORE 6 FLAGS (\\Seen)"},
		{NULL, NULL},
		{"Box", "UID STORE 7 FLAGS (\\Seen)"},
		{"Box", ""}, /* a note while the NOOP is out */
		{NULL, NULL},
		{NULL, "UID STORE 8 FLAGS (\\Seen)"},
		{NULL, NULL},
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	ImapPool *pool = imap_pool_new(&cfg, NULL);
	GPtrArray *sent = g_ptr_array_new();

	for (guint i = 0; i < G_N_ELEMENTS(steps); i++) {
		const char *noted = steps[i][0];

		if (steps[i][1] == NULL) {
			for (guint k = 0; k < sent->len; k++) {
				Waiter *w = sent->pdata[k];

				waiter_wait(w);
				g_assert_no_error(w->error);
				waiter_free(w);
			}
			g_ptr_array_set_size(sent, 0);
			continue;
		}
		if (!*steps[i][1]) {
			g_usleep(100 * 1000);
			imap_pool_note_change(pool, noted);
			continue;
		}
		if (noted != NULL)
			imap_pool_note_change(pool, *noted ? noted : NULL);
		g_ptr_array_add(sent, submit(pool, "Box",
					     cmd(0, steps[i][1]), FALSE));
	}
	g_ptr_array_unref(sent);
	imap_pool_free(pool);
	fake_server_finish(fs, 1);
}

/* A catch-up that ends otherwise than with OK lets its commands go: a
 * NOOP answered NO (the view is as up to date as the server makes it),
 * and one whose connection drops (the command goes to a new connection,
 * whose SELECT shows everything). */
static void test_catch_up_ends(void)
{
	static const char *const script[] = {
		"ACCEPT",
		GREETING_PLAIN,
		"C:A2 SELECT Box",
		"S:* OK [UIDVALIDITY 5] ok",
		"S:A2 OK [READ-WRITE] selected",
		"C:A3 UID FETCH 1:* (UID)",
		"S:A3 OK fetched",
		"C:A4 NOOP",
		"S:A4 NO not now",
		"C:A5 UID STORE 2 FLAGS (\\Seen)",
		"S:A5 OK stored",
		"C:A6 NOOP",
		"CLOSE",
		"ACCEPT",
		GREETING_PLAIN,
		"C:A2 SELECT Box",
		"S:* OK [UIDVALIDITY 5] ok",
		"C:A3 UID STORE 3 FLAGS (\\Seen)",
		"S:A2 OK [READ-WRITE] selected",
		"S:A3 OK stored",
		"C:* LOGOUT",
		"WAITCLOSE",
		NULL,
	};
	const char *const steps[] = {
		"UID FETCH 1:* (UID)",
		"UID STORE 2 FLAGS (\\Seen)",
		"UID STORE 3 FLAGS (\\Seen)",
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	ImapPool *pool = imap_pool_new(&cfg, NULL);

	for (guint i = 0; i < G_N_ELEMENTS(steps); i++) {
		Waiter *w;

		if (i > 0)
			imap_pool_note_change(pool, "Box");
		w = submit(pool, "Box", cmd(0, steps[i]), FALSE);
		waiter_wait(w);
		g_assert_no_error(w->error);
		waiter_free(w);
	}
	imap_pool_free(pool);
	fake_server_finish(fs, 2);
}

static Waiter *submit_uids(ImapPool *pool, const char *mailbox,
			   guint32 uidvalidity, const char *text)
{
	Waiter *w = waiter_new();

	imap_pool_submit_uids(pool, mailbox, uidvalidity, cmd(0, text), NULL,
			      on_done, w);
	return w;
}

/* A command whose UIDs hold under one UIDVALIDITY waits for its SELECT's
 * answer (no pipelining behind it), and is never sent where the mailbox
 * has another UIDVALIDITY. A connection that had the mailbox selected
 * before the command came SELECTs it again first (another client may
 * have made it anew since); only a SELECT answered after it counts. */
static void test_uidvalidity_guard(void)
{
	static const char *const script[] = {
		"ACCEPT",
		GREETING_PLAIN,
		"C:A2 SELECT INBOX",
		"QUIET:300",
		"S:* 2 EXISTS",
		"S:* OK [UIDVALIDITY 42] UIDs valid",
		"S:A2 OK [READ-WRITE] selected",
		"C:A3 UID MOVE 7 Archive",
		"S:A3 OK moved",
		/* UID MOVE 8 under 41: INBOX is selected again, and the
		 * answer still says 42, so it is not sent: NOOP comes next. */
		"C:A4 SELECT INBOX",
		"QUIET:300",
		"S:* OK [UIDVALIDITY 42] UIDs valid",
		"S:A4 OK [READ-WRITE] selected",
		"C:A5 NOOP",
		"S:A5 OK noop",
		"C:A6 SELECT Other",
		"QUIET:300",
		"S:* OK [UIDVALIDITY 50] UIDs valid",
		"S:A6 OK [READ-WRITE] selected",
		"C:A7 NOOP",
		"S:A7 OK noop",
		/* Made anew meanwhile: selected again, it says 51: sent. */
		"C:A8 SELECT Other",
		"S:* OK [UIDVALIDITY 51] UIDs valid",
		"S:A8 OK [READ-WRITE] selected",
		"C:A9 UID STORE 4 +FLAGS (\\Seen)",
		"S:A9 OK stored",
		"C:* LOGOUT",
		"WAITCLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	ImapPool *pool = imap_pool_new(&cfg, NULL);
	Waiter *w1 = submit_uids(pool, "INBOX", 42, "UID MOVE 7 Archive");
	Waiter *w2, *w3, *w4, *w5, *w6;

	waiter_wait(w1);
	g_assert_no_error(w1->error);
	g_assert_cmpuint(w1->reply->uidvalidity, ==, 42);

	w2 = submit_uids(pool, "INBOX", 41, "UID MOVE 8 Archive");
	waiter_wait(w2);
	g_assert_error(w2->error, IMAPFS_IMAP_ERROR, IMAP_ERROR_UIDVALIDITY);
	g_assert_null(w2->reply);
	w3 = submit(pool, NULL, cmd(0, "NOOP"), FALSE);
	waiter_wait(w3);
	g_assert_no_error(w3->error);

	w4 = submit_uids(pool, "Other", 42, "UID STORE 3 +FLAGS (\\Seen)");
	waiter_wait(w4);
	g_assert_error(w4->error, IMAPFS_IMAP_ERROR, IMAP_ERROR_UIDVALIDITY);
	g_assert_nonnull(strstr(w4->error->message, "UIDVALIDITY 50"));
	w5 = submit(pool, NULL, cmd(0, "NOOP"), FALSE);
	waiter_wait(w5);
	g_assert_no_error(w5->error);

	w6 = submit_uids(pool, "Other", 51, "UID STORE 4 +FLAGS (\\Seen)");
	waiter_wait(w6);
	g_assert_no_error(w6->error);
	g_assert_cmpuint(w6->reply->uidvalidity, ==, 51);
	imap_pool_free(pool);
	fake_server_finish(fs, 1);
	waiter_free(w1);
	waiter_free(w2);
	waiter_free(w3);
	waiter_free(w4);
	waiter_free(w5);
	waiter_free(w6);
}

/* Without LITERAL+ a literal waits for '+', and nothing else is sent
 * meanwhile, not even the next command. */
static void test_sync_literal(void)
{
	static const char *const script[] = {
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready",
		"C:A1 AUTHENTICATE PLAIN AHUAcA==",
		"S:A1 OK [CAPABILITY IMAP4rev1] logged in",
		"C:A2 APPEND INBOX {12}",
		"QUIET:300",
		"S:+ go ahead",
		"N:Subject: x\r\n",
		"C:",
		"C:A3 NOOP",
		"S:A2 OK [APPENDUID 1 5] appended",
		"S:A3 OK noop",
		"C:* LOGOUT",
		"WAITCLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	ImapPool *pool = imap_pool_new(&cfg, NULL);
	g_autoptr(GError) error = NULL;
	ImapCommand *append = imap_command_new(&error, 0, "APPEND INBOX %q",
					       "Subject: x\r\n");

	g_assert_no_error(error);
	Waiter *w1 = submit(pool, NULL, append, FALSE);
	Waiter *w2 = submit(pool, NULL, cmd(0, "NOOP"), FALSE);
	waiter_wait(w1);
	waiter_wait(w2);
	g_assert_no_error(w1->error);
	g_assert_no_error(w2->error);
	g_assert_cmpstr(w1->reply->code, ==, "APPENDUID");
	imap_pool_free(pool);
	fake_server_finish(fs, 1);
	waiter_free(w1);
	waiter_free(w2);
}

/* A drop in the middle of a literal: the RETRIABLE command is resent on a
 * new connection and succeeds; the other fails with CONNECTION_LOST. */
static void test_drop_mid_literal(void)
{
	static const char *const script[] = {
		"ACCEPT",
		GREETING_PLAIN,
		"C:A2 UID FETCH 5 (BODY.PEEK[])",
		"C:A3 UID MOVE 6 Archive",
		"R:* 1 FETCH (UID 5 BODY[] {100}\r\n0123456789",
		"SLEEP:100",
		"CLOSE",
		"ACCEPT",
		GREETING_PLAIN,
		"C:A2 UID FETCH 5 (BODY.PEEK[])",
		"S:* 1 FETCH (UID 5 BODY[] {5}\r\nhello)",
		"S:A2 OK done",
		"C:* LOGOUT",
		"WAITCLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	ImapPool *pool = imap_pool_new(&cfg, NULL);
	Waiter *w1 = submit(
		pool, NULL,
		cmd(IMAP_COMMAND_RETRIABLE, "UID FETCH 5 (BODY.PEEK[])"), TRUE);
	Waiter *w2 = submit(pool, NULL, cmd(0, "UID MOVE 6 Archive"), FALSE);

	waiter_wait(w2);
	g_assert_error(w2->error, IMAPFS_IMAP_ERROR,
		       IMAP_ERROR_CONNECTION_LOST);
	g_assert_null(w2->reply);
	g_assert_true(g_str_has_prefix(w2->error->message, "UID MOVE: "));
	waiter_wait(w1);
	g_assert_no_error(w1->error);
	g_assert_cmpuint(w1->data->len, ==, 1);
	g_assert_cmpstr(w1->data->pdata[0], ==, "FETCH 1 0 uid=5 body=hello");
	imap_pool_free(pool);
	fake_server_finish(fs, 2);
	waiter_free(w1);
	waiter_free(w2);
}

/* BYE in the middle of a command: it fails with the server's words. */
static void test_bye(void)
{
	static const char *const script[] = {
		"ACCEPT",
		GREETING_PLAIN,
		"C:A2 UID EXPUNGE 3",
		"S:* BYE Server shutting down",
		"CLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	ImapPool *pool = imap_pool_new(&cfg, NULL);
	Waiter *w = submit(pool, NULL, cmd(0, "UID EXPUNGE 3"), FALSE);

	waiter_wait(w);
	g_assert_error(w->error, IMAPFS_IMAP_ERROR, IMAP_ERROR_CONNECTION_LOST);
	g_assert_nonnull(strstr(w->error->message, "Server shutting down"));
	imap_pool_free(pool);
	fake_server_finish(fs, 1);
	waiter_free(w);
}

/* A tagged reply to a tag never sent is a protocol error: drop. */
static void test_unknown_tag(void)
{
	static const char *const script[] = {
		"ACCEPT",	GREETING_PLAIN, "C:A2 NOOP",
		"S:A7 OK what", "WAITCLOSE",	NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	ImapPool *pool = imap_pool_new(&cfg, NULL);
	Waiter *w = submit(pool, NULL, cmd(0, "NOOP"), FALSE);

	waiter_wait(w);
	g_assert_error(w->error, IMAPFS_IMAP_ERROR, IMAP_ERROR_CONNECTION_LOST);
	g_assert_nonnull(strstr(w->error->message, "protocol error"));
	g_assert_nonnull(strstr(w->error->message, "A7"));
	imap_pool_free(pool);
	fake_server_finish(fs, 1);
	waiter_free(w);
}

/* A server that accepts but never greets: a timeout, with a hint. */
static void test_greeting_timeout(void)
{
	static const char *const script[] = {"ACCEPT", "WAITCLOSE", NULL};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	g_autoptr(GError) error = NULL;
	gint64 start = g_get_monotonic_time();

	cfg.timeout_s = 1;
	g_autoptr(ImapStream) s = imap_stream_connect(&cfg, 1, &error);
	g_assert_null(s);
	g_assert_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_TIMEOUT);
	g_assert_nonnull(strstr(error->message, "no IMAP greeting"));
	g_assert_cmpint(g_get_monotonic_time() - start, <,
			5 * G_TIME_SPAN_SECOND);
	fake_server_finish(fs, 1);
}

/* The silence timeout on a pool connection: command outstanding, server
 * mute -> the connection drops and the command fails. */
static void test_silence_timeout(void)
{
	static const char *const script[] = {
		"ACCEPT", GREETING_PLAIN, "C:A2 NOOP", "WAITCLOSE", NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);

	cfg.timeout_s = 1;
	ImapPool *pool = imap_pool_new(&cfg, NULL);
	Waiter *w = submit(pool, NULL, cmd(0, "NOOP"), FALSE);

	waiter_wait(w);
	g_assert_error(w->error, IMAPFS_IMAP_ERROR, IMAP_ERROR_CONNECTION_LOST);
	g_assert_nonnull(strstr(w->error->message, "did not answer"));
	imap_pool_free(pool);
	fake_server_finish(fs, 1);
	waiter_free(w);
}

static guint16 closed_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, len), ==, 0);
	g_assert_cmpint(getsockname(fd, (struct sockaddr *)&sa, &len), ==, 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* Nothing listens: a clear error from connect, and from the pool after a
 * few attempts rather than a hang. */
static void test_connect_refused(void)
{
	ImapConfig cfg = test_config(closed_port());
	g_autoptr(GError) error = NULL;
	g_autoptr(ImapStream) s = imap_stream_connect(&cfg, 1, &error);
	g_autofree char *want = g_strdup_printf(
		"cannot connect to 127.0.0.1:%u: Connection refused", cfg.port);

	g_assert_null(s);
	g_assert_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_CONNECT);
	g_assert_cmpstr(error->message, ==, want);

	ImapPool *pool = imap_pool_new(&cfg, NULL);
	Waiter *w = submit(pool, "INBOX", cmd(IMAP_COMMAND_RETRIABLE, "NOOP"),
			   FALSE);
	waiter_wait(w);
	g_assert_error(w->error, IMAPFS_IMAP_ERROR, IMAP_ERROR_CONNECT);
	g_assert_nonnull(strstr(w->error->message, want));
	imap_pool_free(pool);
	waiter_free(w);
}

/* Plaintext without allow_plaintext_auth, and STARTTLS demanded from a
 * server without it: refused before any password is sent. */
static void test_refusals(void)
{
	static const char *const script[] = {
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready",
		"WAITCLOSE",
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready",
		"WAITCLOSE",
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready",
		"WAITCLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	GError *error = NULL;

	cfg.allow_plaintext_auth = FALSE;
	g_assert_null(imap_stream_connect(&cfg, 1, &error));
	g_assert_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH);
	g_assert_nonnull(strstr(error->message, "plaintext"));
	g_clear_error(&error);

	cfg.tls = IMAP_TLS_STARTTLS;
	g_assert_null(imap_stream_connect(&cfg, 1, &error));
	g_assert_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_UNSUPPORTED);
	g_assert_nonnull(strstr(error->message, "STARTTLS"));
	g_clear_error(&error);

	cfg.tls = IMAP_TLS_NONE;
	cfg.allow_plaintext_auth = TRUE;
	g_assert_null(imap_stream_connect(&cfg, 1, &error));
	g_assert_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH);
	g_assert_nonnull(strstr(error->message, "LOGINDISABLED"));
	g_clear_error(&error);
	fake_server_finish(fs, 3);
}

/* A login refused by the server names the user and keeps its words. */
static void test_login_refused(void)
{
	static const char *const script[] = {
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1] ready",
		"C:A1 LOGIN u p",
		"S:A1 NO [AUTHENTICATIONFAILED] Authentication failed.",
		"WAITCLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	g_autoptr(GError) error = NULL;

	g_assert_null(imap_stream_connect(&cfg, 1, &error));
	g_assert_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH);
	g_assert_cmpstr(error->message, ==,
			"login as u on 127.0.0.1 refused: "
			"[AUTHENTICATIONFAILED] Authentication failed. (check "
			"the user name and password)");
	fake_server_finish(fs, 1);
}

/* OAuth 2.0: a token from cfg.token at each login, counted here. */
static guint tokens_given;

/* "T0k", then "T1k", ...: a helper that renews the token when asked. */
static char *renewed_token(gpointer user_data, GError **error)
{
	return g_strdup_printf("T%uk", tokens_given++);
}

static char *test_token(gpointer user_data, GError **error)
{
	tokens_given++;
	if (!user_data)
		g_set_error_literal(error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED,
				    "passcmd failed");
	return g_strdup(user_data);
}

/* XOAUTH2 where the server offers no SASL-IR: the response goes after
 * the '+'; the capabilities are asked for after the login. */
static void test_oauth_xoauth2(void)
{
	static const char *const script[] = {
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2] hi",
		"C:A1 AUTHENTICATE XOAUTH2",
		"S:+ ",
		"C:dXNlcj11AWF1dGg9QmVhcmVyIFQwawEB",
		"S:A1 OK logged in",
		"C:A2 CAPABILITY",
		"S:* CAPABILITY IMAP4rev1 IDLE",
		"S:A2 OK done",
		"WAITCLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	g_autoptr(GError) error = NULL;
	ImapStream *stream;

	cfg.token = test_token;
	cfg.token_data = (gpointer) "T0k";
	tokens_given = 0;
	stream = imap_stream_connect(&cfg, 1, &error);
	g_assert_no_error(error);
	g_assert_cmpuint(imap_stream_caps(stream) & IMAP_CAP_IDLE, !=, 0);
	g_assert_cmpuint(tokens_given, ==, 1);
	imap_stream_free(stream);
	fake_server_finish(fs, 1);
}

/* OAUTHBEARER is preferred, with SASL-IR; the user name is escaped in its
 * GS2 header. A refusal comes as a challenge, which is answered with
 * %x01, and its reason reaches the message. */
static void test_oauth_bearer_refused(void)
{
	static const char *const script[] = {
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 "
		"AUTH=OAUTHBEARER] hi",
		/* "n,a=a=2Cb=3Dc,^Ahost=127.0.0.1^Apor" */
		"C:A1 AUTHENTICATE OAUTHBEARER bixhPWE9MkNiPTNEYywBaG9zdD0xMjcu"
		"MC4wLjEBcG9y",
		"S:+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=",
		"N:AQ==\r\n",
		"S:A1 NO [AUTHENTICATIONFAILED] Authentication failed.",
		"WAITCLOSE",
		/* once more with a token asked for again, another (the
		 * first may just have expired); XOAUTH2 answers a challenge
		 * with an empty line */
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi",
		"C:A1 AUTHENTICATE XOAUTH2 dXNlcj1hLGI9YwFhdXRoPUJlYXJlciBUMWsBAQ==",
		"S:+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=",
		"N:\r\n",
		"S:A1 NO [AUTHENTICATIONFAILED] Authentication failed.",
		"WAITCLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	g_autoptr(GError) error = NULL;

	cfg.user = (char *)"a,b=c";
	cfg.token = renewed_token;
	tokens_given = 0;
	g_assert_null(imap_stream_connect(&cfg, 1, &error));
	g_assert_cmpuint(tokens_given, ==, 2);
	g_assert_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH);
	g_assert_cmpstr(error->message, ==,
			"OAuth 2.0 login (XOAUTH2) as a,b=c on 127.0.0.1 "
			"refused: [AUTHENTICATIONFAILED] Authentication "
			"failed. {\"status\":\"401\",\"schemes\":\"bearer\"} "
			"(check that the password command prints a fresh "
			"access token for this account)");
	fake_server_finish(fs, 2);
}

/* After a refusal the gate holds logins back: the next attempt does not
 * even connect. One the server could not check ([UNAVAILABLE]), or had
 * no room for ([LIMIT]: too many connections), does not close it. */
static void test_login_gate(void)
{
	static const char *const script[] = {
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1] ready",
		"C:A1 LOGIN u p",
		"S:A1 NO [UNAVAILABLE] Temporary authentication failure.",
		"WAITCLOSE",
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1] ready",
		"C:A1 LOGIN u p",
		"S:A1 NO [LIMIT] Maximum number of connections from user+IP "
		"exceeded (mail_max_userip_connections=10)",
		"WAITCLOSE",
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1] ready",
		"C:A1 LOGIN u p",
		"S:A1 NO [AUTHENTICATIONFAILED] Authentication failed.",
		"WAITCLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	g_autoptr(GError) e1 = NULL;
	g_autoptr(GError) e2 = NULL;
	g_autoptr(GError) e3 = NULL;
	g_autoptr(GError) limit = NULL;

	cfg.login_gate = imap_login_gate_new();
	g_assert_null(imap_stream_connect(&cfg, 1, &e1));
	g_assert_error(e1, IMAPFS_IMAP_ERROR, IMAP_ERROR_UNAVAILABLE);
	g_assert_null(imap_stream_connect(&cfg, 1, &limit));
	g_assert_error(limit, IMAPFS_IMAP_ERROR, IMAP_ERROR_UNAVAILABLE);
	g_assert_nonnull(strstr(limit->message, "[LIMIT]"));
	g_assert_nonnull(strstr(limit->message, "-o max_conns=N"));
	g_assert_null(strstr(limit->message, "password"));
	g_test_expect_message("imapfs-imap", G_LOG_LEVEL_WARNING,
			      "*no new login for 2 minutes*");
	g_assert_null(imap_stream_connect(&cfg, 1, &e2));
	g_test_assert_expected_messages();
	g_assert_error(e2, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH);
	g_assert_nonnull(strstr(e2->message, "AUTHENTICATIONFAILED"));
	g_assert_null(imap_stream_connect(&cfg, 1, &e3));
	g_assert_error(e3, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH);
	g_assert_true(g_str_has_prefix(e3->message,
				       "no new login to 127.0.0.1 before "));
	g_assert_nonnull(strstr(e3->message, "(mount again to log in at "
					     "once)"));
	fake_server_finish(fs, 3);
	imap_login_gate_free(cfg.login_gate);
}

/* What cannot be sent is not: a server without OAuth, a token with a
 * space or control character in it, a command that gives none. */
static void test_oauth_refusals(void)
{
	static const char *const script[] = {
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] hi",
		"WAITCLOSE",
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] hi",
		"WAITCLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	g_autoptr(GError) e1 = NULL;
	g_autoptr(GError) e2 = NULL;
	g_autoptr(GError) e3 = NULL;

	cfg.token = test_token;
	cfg.token_data = (gpointer) "T0k";
	g_assert_null(imap_stream_connect(&cfg, 1, &e1));
	g_assert_error(e1, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH);
	g_assert_true(strstr(e1->message, "offers no OAuth 2.0 login"));
	cfg.token_data = (gpointer) "T0k\001auth=Bearer x";
	g_assert_null(imap_stream_connect(&cfg, 1, &e2));
	g_assert_error(e2, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH);
	g_assert_true(strstr(e2->message, "not one word of printable ASCII"));
	/* no token: not even a connection */
	cfg.token_data = NULL;
	g_assert_null(imap_stream_connect(&cfg, 1, &e3));
	g_assert_error(e3, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH);
	g_assert_true(strstr(e3->message, "no OAuth 2.0 token for u"));
	fake_server_finish(fs, 2);
}

/* Where ENABLE is offered before login, ENABLE QRESYNC goes right behind
 * the login, before its answer (one round trip for both). Refused there,
 * it is sent again once logged in. */
static void test_enable_behind_login(void)
{
	static const char *const script[] = {
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR ENABLE] hi",
		"C:A1 AUTHENTICATE PLAIN AHUAcA==",
		"C:A2 ENABLE QRESYNC",
		"S:A1 OK [CAPABILITY IMAP4rev1 ENABLE QRESYNC] logged in",
		"S:* ENABLED QRESYNC",
		"S:A2 OK enabled",
		"C:A3 NOOP",
		"S:A3 OK noop",
		"WAITCLOSE",
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR ENABLE] hi",
		"C:A1 AUTHENTICATE PLAIN AHUAcA==",
		"C:A2 ENABLE QRESYNC",
		"S:A2 BAD not logged in yet",
		"S:A1 OK [CAPABILITY IMAP4rev1 ENABLE QRESYNC] logged in",
		"C:A3 ENABLE QRESYNC",
		"S:* ENABLED QRESYNC",
		"S:A3 OK enabled",
		"WAITCLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	g_autoptr(GError) error = NULL;
	ImapStream *stream = imap_stream_connect(&cfg, 1, &error);

	g_assert_no_error(error);
	g_assert_cmpuint(imap_stream_caps(stream) & IMAP_CAP_QRESYNC, !=, 0);
	g_assert_true(imap_stream_run(stream, cmd(0, "NOOP"), NULL, &error));
	g_assert_no_error(error);
	imap_stream_free(stream);
	stream = imap_stream_connect(&cfg, 2, &error);
	g_assert_no_error(error);
	g_assert_nonnull(stream);
	imap_stream_free(stream);
	fake_server_finish(fs, 2);
}

/* A login refused while the ENABLE behind it is pending is reported as
 * refused, even if the server hangs up without answering the ENABLE. */
static void test_enable_behind_refused_login(void)
{
	static const char *const script[] = {
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR ENABLE] hi",
		"C:A1 AUTHENTICATE PLAIN AHUAcA==",
		"C:A2 ENABLE QRESYNC",
		"S:A1 NO [AUTHENTICATIONFAILED] Authentication failed.",
		"S:* BYE bye",
		"CLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	g_autoptr(GError) error = NULL;

	g_assert_null(imap_stream_connect(&cfg, 1, &error));
	g_assert_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_AUTH);
	fake_server_finish(fs, 1);
}

/* A server that never answers the ENABLE sent behind the login: that
 * connection times out, and imapfs connects again with ENABLE after the
 * login, as it does from then on. (It changes that for the process: the
 * tests that pipeline ENABLE come first.) */
static void test_enable_behind_login_unanswered(void)
{
	static const char *const script[] = {
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR ENABLE] hi",
		"C:A1 AUTHENTICATE PLAIN AHUAcA==",
		"C:A2 ENABLE QRESYNC",
		"S:A1 OK [CAPABILITY IMAP4rev1 ENABLE QRESYNC] logged in",
		"WAITCLOSE",
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR ENABLE] hi",
		"C:A1 AUTHENTICATE PLAIN AHUAcA==",
		"S:A1 OK [CAPABILITY IMAP4rev1 ENABLE QRESYNC] logged in",
		"C:A2 ENABLE QRESYNC",
		"S:* ENABLED QRESYNC",
		"S:A2 OK enabled",
		"WAITCLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	g_autoptr(GError) error = NULL;
	ImapStream *stream;

	cfg.timeout_s = 2;
	stream = imap_stream_connect(&cfg, 1, &error);
	g_assert_no_error(error);
	g_assert_nonnull(stream);
	imap_stream_free(stream);
	fake_server_finish(fs, 2);
}

typedef struct {
	GMutex lock;
	GHashTable *seen; /* wire name ("" for none) -> worst change */
	ImapMailboxInfo begun; /* what IMAP_IDLE_BEGUN said */
	guint n_begun;
} Changes;

static void on_idle_change(const char *mailbox, ImapIdleChange change,
			   const ImapMailboxInfo *info, gpointer user_data)
{
	Changes *c = user_data;
	gpointer old;
	const char *key = mailbox ? mailbox : "";

	g_mutex_lock(&c->lock);
	if (change == IMAP_IDLE_BEGUN) {
		c->n_begun++;
		c->begun.uidnext = info->uidnext;
		c->begun.exists = info->exists;
		c->begun.highestmodseq = info->highestmodseq;
	}
	if (!g_hash_table_lookup_extended(c->seen, key, NULL, &old) ||
	    (int)change < GPOINTER_TO_INT(old))
		g_hash_table_insert(c->seen, g_strdup(key),
				    GINT_TO_POINTER(change));
	g_mutex_unlock(&c->lock);
}

/* With NOTIFY offered, the watcher asks for every mailbox, and reports
 * each: STATUS names (atom, quoted UTF-8, literal) with MESSAGES or
 * UIDNEXT as messages, HIGHESTMODSEQ alone as flags; LIST as the mailbox
 * list; EXISTS in the EXAMINEd mailbox. The watch's start is reported
 * first, once, with what the EXAMINE said (everywhere: no mailbox). It
 * ends with DONE and LOGOUT. */
static void test_idle_notify(void)
{
	static const char *const script[] = {
		"ACCEPT",
		"S:* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hi",
		"C:A1 AUTHENTICATE PLAIN AHUAcA==",
		"S:A1 OK [CAPABILITY IMAP4rev1 IDLE NOTIFY] logged in",
		"C:A2 EXAMINE INBOX",
		"S:* 2 EXISTS",
		"S:* OK [UIDNEXT 7] next",
		"S:* OK [HIGHESTMODSEQ 12] modseq",
		"S:A2 OK [READ-ONLY] examined",
		"C:A3 NOTIFY SET (selected (MessageNew MessageExpunge "
		"FlagChange)) (personal (MessageNew MessageExpunge FlagChange "
		"MailboxName))",
		"S:A3 OK notifying",
		"C:A4 IDLE",
		"S:+ idling",
		"S:* STATUS \"Entw\xc3\xbcrfe\" (MESSAGES 2 UIDNEXT 5)",
		"S:* STATUS Other (HIGHESTMODSEQ 9)",
		"R:* STATUS {3}\r\nLit (UIDNEXT 4)\r\n",
		"S:* LIST () \".\" New",
		"S:* 1 FETCH (FLAGS (\\Seen))",
		"S:* 3 EXISTS",
		"C:DONE",
		"S:A4 OK done",
		"C:A5 LOGOUT",
		"S:* BYE bye",
		"S:A5 OK logged out",
		"WAITCLOSE",
		NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	Changes c = {.seen = g_hash_table_new_full(g_str_hash, g_str_equal,
						   g_free, NULL)};
	ImapIdle *idle;
	gint64 deadline = g_get_monotonic_time() + 5 * G_TIME_SPAN_SECOND;
	guint n = 0;

	g_mutex_init(&c.lock);
	idle = imap_idle_new(&cfg, IMAP_IDLE_CONN_NO, "INBOX", on_idle_change,
			     &c);
	while (n < 5 && g_get_monotonic_time() < deadline) {
		g_usleep(20 * 1000);
		g_mutex_lock(&c.lock);
		n = g_hash_table_size(c.seen);
		g_mutex_unlock(&c.lock);
	}
	imap_idle_free(idle);
	fake_server_finish(fs, 1);
	g_assert_cmpuint(c.n_begun, ==, 1);
	g_assert_cmpuint(c.begun.uidnext, ==, 7);
	g_assert_cmpuint(c.begun.exists, ==, 2);
	g_assert_cmpuint(c.begun.highestmodseq, ==, 12);
	g_assert_cmpuint(g_hash_table_size(c.seen), ==, 5);
	g_assert_cmpint(
		GPOINTER_TO_INT(g_hash_table_lookup(c.seen, "Entw\xc3\xbcrfe")),
		==, IMAP_IDLE_MESSAGES);
	g_assert_cmpint(GPOINTER_TO_INT(g_hash_table_lookup(c.seen, "Other")),
			==, IMAP_IDLE_FLAGS);
	g_assert_cmpint(GPOINTER_TO_INT(g_hash_table_lookup(c.seen, "Lit")), ==,
			IMAP_IDLE_MESSAGES);
	g_assert_cmpint(GPOINTER_TO_INT(g_hash_table_lookup(c.seen, "")), ==,
			IMAP_IDLE_MAILBOXES);
	g_assert_cmpint(GPOINTER_TO_INT(g_hash_table_lookup(c.seen, "INBOX")),
			==, IMAP_IDLE_MESSAGES);
	g_hash_table_unref(c.seen);
	g_mutex_clear(&c.lock);
}

/* Commands submitted and not finished when the pool is freed complete
 * with SHUTDOWN, before imap_pool_free returns. */
static void test_shutdown(void)
{
	static const char *const script[] = {
		"ACCEPT", GREETING_PLAIN, "C:A2 NOOP", "WAITCLOSE", NULL,
	};
	FakeServer *fs = fake_server_start(script);
	ImapConfig cfg = test_config(fs->port);
	ImapPool *pool = imap_pool_new(&cfg, NULL);
	Waiter *w = submit(pool, NULL, cmd(0, "NOOP"), FALSE);

	g_usleep(300 * 1000);
	imap_pool_free(pool);
	g_assert_true(w->done);
	g_assert_error(w->error, IMAPFS_IMAP_ERROR, IMAP_ERROR_SHUTDOWN);
	fake_server_finish(fs, 1);
	waiter_free(w);
}

typedef struct {
	ImapConnectAbort *abort;
	ImapConfig cfg;
	ImapStream *stream;
	GError *error;
} AbortJob;

static gpointer abort_job_main(gpointer data)
{
	AbortJob *job = data;

	job->stream = imap_stream_connect_abortable(&job->cfg, 1, job->abort,
						    &job->error);
	return NULL;
}

/* An attempt waiting for a greeting that never comes ends when its abort
 * fires (at unmount), not after the timeout (an hour here), nor when the
 * fake server gives up (STEP_TIMEOUT_MS); a later attempt fails before it
 * connects. */
static void test_connect_abort(void)
{
	static const char *const script[] = {"ACCEPT", "WAITCLOSE", NULL};
	FakeServer *fs = fake_server_start(script);
	AbortJob job = {.abort = imap_connect_abort_new(),
			.cfg = test_config(fs->port)};
	g_autoptr(GError) error = NULL;
	GThread *thread;
	gint64 fired;

	job.cfg.timeout_s = 3600;
	thread = g_thread_new("connect", abort_job_main, &job);
	for (int i = 0; i < 5000 && !g_atomic_int_get(&fs->accepts); i++)
		g_usleep(1000);
	g_usleep(50 * 1000); /* into the wait for the greeting */
	fired = g_get_monotonic_time();
	imap_connect_abort_fire(job.abort);
	g_thread_join(thread);
	g_assert_cmpint(g_get_monotonic_time() - fired, <,
			STEP_TIMEOUT_MS * 1000 / 2);
	g_assert_null(job.stream);
	g_assert_error(job.error, IMAPFS_IMAP_ERROR, IMAP_ERROR_SHUTDOWN);
	g_clear_error(&job.error);

	g_assert_null(
		imap_stream_connect_abortable(&job.cfg, 2, job.abort, &error));
	g_assert_error(error, IMAPFS_IMAP_ERROR, IMAP_ERROR_SHUTDOWN);
	fake_server_finish(fs, 1);
	imap_connect_abort_free(job.abort);
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/imap/conn/login-pipelining", test_login_pipelining);
	g_test_add_func("/imap/conn/select-fetch-no", test_select_fetch_no);
	g_test_add_func("/imap/conn/uidvalidity-guard", test_uidvalidity_guard);
	g_test_add_func("/imap/conn/catch-up-noop", test_catch_up_noop);
	g_test_add_func("/imap/conn/catch-up-ends", test_catch_up_ends);
	g_test_add_func("/imap/conn/sync-literal", test_sync_literal);
	g_test_add_func("/imap/conn/drop-mid-literal", test_drop_mid_literal);
	g_test_add_func("/imap/conn/bye", test_bye);
	g_test_add_func("/imap/conn/unknown-tag", test_unknown_tag);
	g_test_add_func("/imap/conn/greeting-timeout", test_greeting_timeout);
	g_test_add_func("/imap/conn/silence-timeout", test_silence_timeout);
	g_test_add_func("/imap/conn/connect-refused", test_connect_refused);
	g_test_add_func("/imap/conn/refusals", test_refusals);
	g_test_add_func("/imap/conn/login-refused", test_login_refused);
	g_test_add_func("/imap/conn/oauth/xoauth2", test_oauth_xoauth2);
	g_test_add_func("/imap/conn/oauth/bearer-refused",
			test_oauth_bearer_refused);
	g_test_add_func("/imap/conn/oauth/refusals", test_oauth_refusals);
	g_test_add_func("/imap/conn/login-gate", test_login_gate);
	g_test_add_func("/imap/conn/enable-behind-login",
			test_enable_behind_login);
	g_test_add_func("/imap/conn/idle-notify", test_idle_notify);
	g_test_add_func("/imap/conn/enable-behind-refused-login",
			test_enable_behind_refused_login);
	g_test_add_func("/imap/conn/enable-behind-login-unanswered",
			test_enable_behind_login_unanswered);
	g_test_add_func("/imap/conn/shutdown", test_shutdown);
	g_test_add_func("/imap/conn/connect-abort", test_connect_abort);
	return g_test_run();
}

/* imap/pool.c — the connection pool, the public API of imap/.
 *
 * Everything here runs on the pool's imap-io thread except the entry points
 * (imap_pool_new, _free, _submit, _caps, _set_select_func), which only post
 * closures to it or read an atomic, so the pool's state needs no lock.
 *
 * A submitted command becomes a PoolReq and waits in `waiting` until
 * pool_dispatch() finds it a connection, in this order: one with its
 * mailbox selected and room in its pipeline; an idle one, which SELECTs the
 * mailbox first (the command keeps waiting until that SELECT succeeds, so a
 * failed SELECT fails exactly the commands for that mailbox); a new
 * connection while fewer than max_conns exist; else it waits. When every
 * connection is busy elsewhere, one is marked `draining`: it takes no new
 * commands for its mailbox, so it goes idle and can switch.
 *
 * Background commands (prefetch: IMAP_COMMAND_BACKGROUND) may each carry
 * megabytes, and a command pipelined behind them waits for all of it: on
 * a 3 MB/s link a flag change in the mailbox being scanned waited for
 * 31 MB. So the others are dispatched first, and never onto a connection
 * with background work in flight (unless max_conns is 1): they take one
 * free of it, selecting their mailbox there if need be. Background work
 * stays on the connection already streaming its mailbox (a second stream
 * costs CPU: see the README), never goes onto the last connection free of
 * it, and while every connection carries some, the pool opens another.
 *
 * Connections are opened by short-lived connector threads running the
 * blocking imap_stream_connect(); the stream is handed back through an idle
 * source on the imap-io context (never g_main_context_invoke, which could
 * run the hand-off on the connector thread once the loop has stopped).
 * Connector threads are detached and hold a reference on the context; the
 * pool counts them, and freeing it waits until every one has left OpenSSL
 * (at worst the config's timeout for each step of a connect), since the
 * process may exit right after.
 *
 * After a drop, RETRIABLE commands go back to the head of `waiting` (at most
 * POOL_MAX_ATTEMPTS sends in all), the rest fail with CONNECTION_LOST, and
 * new connections are opened no sooner than a backoff delay. When connecting
 * keeps failing and no connection is alive, waiting commands fail with the
 * connect error instead of hanging.
 */
#include "imap/pool.h"

#include <string.h>

#include "imap/auth.h"
#include "imap/caps.h"
#include "imap/conn.h"
#include "imap/error.h"
#include "imap/io.h"

#define POOL_DEPTH		  32
#define POOL_MAX_ATTEMPTS	  3
#define POOL_MAX_CONNECT_FAILURES 3
#define POOL_BACKOFF_MIN_US	  (200 * 1000)
#define POOL_BACKOFF_MAX_US	  (10 * G_USEC_PER_SEC)
/* Once connecting has failed for good: how soon a command may try again. */
#define POOL_RETRY_DOWN_US	  G_USEC_PER_SEC
/* A connection that served this long is no sign of a server that keeps
 * dropping them: its loss starts the backoff afresh. */
#define POOL_SERVED_US		  (2 * G_USEC_PER_SEC)

typedef struct PoolConn PoolConn;

typedef enum {
	REQ_USER,
	REQ_SELECT,
	REQ_NOOP, /* brings a selected mailbox's view up to date */
} ReqKind;

typedef struct {
	ReqKind kind;
	char *mailbox; /* nullable */
	ImapCommand *cmd;
	ImapDataFunc data;
	ImapDoneFunc done;
	gpointer user_data;
	ImapPool *pool;		/* borrowed */
	guint attempts;		/* times sent */
	GError *error;		/* a submit that was refused */
	GPtrArray *untagged;	/* collected for the reply */
	gboolean behind_select; /* sent right after a SELECT, unanswered */
	guint32 uidvalidity;	/* its UIDs' (0: any); see submit_uids */
	guint64 since;		/* pool->selects when it was queued */
	guint changed;		/* its mailbox's last change then: a view
				 * older than that may lack its messages */
	gboolean background;	/* IMAP_COMMAND_BACKGROUND, until hurried */
} PoolReq;

typedef enum {
	PC_CONNECTING,
	PC_READY,
	PC_SELECTING,
	PC_CATCHING_UP, /* a NOOP shows its mailbox's newcomers */
} PcState;

struct PoolConn {
	ImapPool *pool; /* borrowed */
	guint no;
	PcState state;
	ImapConn *conn;	      /* NULL while connecting */
	char *selected;	      /* nullable */
	guint32 uidvalidity;  /* of selected */
	guint64 select_seq;   /* pool->selects when its SELECT was answered */
	guint seen_changes;   /* pool->changes when its view was last
			       * brought up to date (SELECT, NOOP) */
	char *selecting;      /* PC_SELECTING: the mailbox */
	ImapMailboxInfo info; /* collected during SELECT */
	GError *select_error; /* the last SELECT failed: why, for the
			       * commands that were sent behind it */
	gboolean draining;
	guint background; /* IMAP_COMMAND_BACKGROUND commands in flight */
	gint64 started_at; /* monotonic time it logged in */
};

struct ImapPool {
	ImapConfig *cfg;
	ImapIo *io;
	gint caps; /* atomic; any thread */
	/* Changes that may have added messages to a mailbox (see
	 * imap_pool_note_change()), numbered: a connection that brought
	 * its view up to date before its mailbox's last one may not see
	 * them yet. Any thread, under changes_lock. */
	GMutex changes_lock;
	guint changes;	       /* the last number given */
	guint all_changed;     /* the last change of a mailbox not named */
	GHashTable *changed;   /* mailbox -> its last change (guint) */
	/* Atomic: the last attempt to connect failed with no connection
	 * up, and none has succeeded since. */
	gint down;
	ImapSelectFunc select_func;
	gpointer select_data;
	void (*reconnected_func)(gpointer);
	gpointer reconnected_data;

	/* Connector threads still running; imap_pool_free() waits for them,
	 * so none is inside OpenSSL when the process exits. */
	GMutex connect_lock;
	GCond connect_done;
	guint connecting;
	ImapConnectAbort *abort; /* fired by imap_pool_free() */

	/* imap-io thread only from here on. */
	GPtrArray *conns; /* PoolConn *, connecting ones included */
	GQueue waiting;	  /* PoolReq *, oldest first */
	guint next_conn_no;
	gint64 backoff_us;
	gint64 not_before; /* monotonic us: no connect before */
	GSource *retry_timer;
	guint connect_failures; /* consecutive rounds */
	/* Connecting failed POOL_MAX_CONNECT_FAILURES rounds in a row with
	 * none up, and none has succeeded since: what comes before
	 * not_before fails at once with given_up_error, and one failed
	 * round fails what waits. */
	GError *given_up_error;
	/* Connections to count on: max_conns, or after an attempt failed
	 * while others were up (a server's limit per user), those up. */
	guint cap;
	/* Why the last connection attempt failed, until one succeeds;
	 * under connect_lock, for any thread. */
	char *connect_problem;
	guint64 selects; /* SELECTs answered so far */
	gboolean shutting_down;
};

typedef struct {
	ImapPool *pool; /* the connector thread only counts itself out */
	PoolConn *pc;	/* imap-io thread only */
	guint conn_no;
	ImapConfig *cfg;
	GMainContext *context; /* the connector's until it reports */
	ImapStream *stream;
	GError *error;
} ConnectJob;

static void pool_dispatch(ImapPool *pool);
static gboolean pool_alive(ImapPool *pool);

/* ---- requests -------------------------------------------------------- */

static void req_free(PoolReq *req)
{
	if (req == NULL)
		return;
	g_free(req->mailbox);
	imap_command_free(req->cmd);
	g_clear_error(&req->error);
	if (req->untagged != NULL)
		g_ptr_array_unref(req->untagged);
	g_free(req);
}

static gboolean req_background(const PoolReq *req)
{
	return req->kind == REQ_USER && req->background;
}

static ImapReply *reply_from(const ImapResponse *resp, GPtrArray *untagged,
			     guint32 uidvalidity)
{
	ImapReply *reply = g_new0(ImapReply, 1);

	reply->status = resp->status;
	reply->code = g_strdup(resp->code);
	reply->code_arg = g_strdup(resp->code_arg);
	reply->text = g_strdup(resp->text != NULL ? resp->text : "");
	reply->untagged = untagged != NULL
				  ? g_ptr_array_ref(untagged)
				  : g_ptr_array_new_with_free_func(
					    (GDestroyNotify)imap_response_free);
	reply->uidvalidity = uidvalidity;
	return reply;
}

void imap_reply_free(ImapReply *reply)
{
	if (reply == NULL)
		return;
	g_free(reply->code);
	g_free(reply->code_arg);
	g_free(reply->text);
	if (reply->untagged != NULL)
		g_ptr_array_unref(reply->untagged);
	g_free(reply);
}

/* Completes @req (freed) with @reply and @error (both transfer full). */
static void req_finish(PoolReq *req, ImapReply *reply, GError *error)
{
	if (req->kind == REQ_USER && req->done != NULL)
		req->done(reply, error, req->user_data);
	else {
		imap_reply_free(reply);
		g_clear_error(&error);
	}
	req_free(req);
}

/* Fails @req with a copy of @why prefixed by the command's name. */
static void req_fail(PoolReq *req, const GError *why)
{
	GError *error = g_error_new(why->domain, why->code, "%s: %s",
				    imap_command_name(req->cmd), why->message);
	req_finish(req, NULL, error);
}

static void fail_waiting(ImapPool *pool, const char *mailbox, const GError *why,
			 ImapReply *proto)
{
	GList *l = pool->waiting.head;

	while (l != NULL) {
		GList *next = l->next;
		PoolReq *req = l->data;

		if (mailbox == NULL || g_strcmp0(req->mailbox, mailbox) == 0) {
			g_queue_delete_link(&pool->waiting, l);
			if (proto != NULL) {
				ImapReply *r = g_new0(ImapReply, 1);
				GError *e = g_error_new(
					why->domain, why->code, "%s: %s",
					imap_command_name(req->cmd),
					why->message);
				r->status = proto->status;
				r->code = g_strdup(proto->code);
				r->code_arg = g_strdup(proto->code_arg);
				r->text = g_strdup(proto->text);
				r->untagged = g_ptr_array_new_with_free_func(
					(GDestroyNotify)imap_response_free);
				req_finish(req, r, e);
			} else {
				req_fail(req, why);
			}
		}
		l = next;
	}
}

/* ---- connections ----------------------------------------------------- */

static void pc_free(PoolConn *pc)
{
	if (pc == NULL)
		return;
	imap_conn_free(pc->conn);
	g_free(pc->selected);
	g_free(pc->selecting);
	g_clear_error(&pc->select_error);
	imap_mailbox_info_clear(&pc->info);
	g_free(pc);
}

static void pool_remove_conn(ImapPool *pool, PoolConn *pc)
{
	g_ptr_array_remove(pool->conns, pc);
}

/* A connection was lost or could not be made: none is opened before a
 * delay that doubles at each drop until one succeeds. Connections lost
 * together (a server restart drops them all) count as one drop; returns
 * whether this one counted. */
static gboolean pool_note_drop(ImapPool *pool)
{
	gint64 now = g_get_monotonic_time();
	gint64 delay = MAX(pool->backoff_us, POOL_BACKOFF_MIN_US);

	if (now < pool->not_before)
		return FALSE;
	pool->not_before = now + delay;
	pool->backoff_us = MIN(delay * 2, POOL_BACKOFF_MAX_US);
	return TRUE;
}

/* One untagged response on its way to the commands in flight. */
typedef struct {
	const ImapResponse *resp;
	guint32 uidvalidity;
	PoolReq *keeper; /* the oldest command without a data func */
} UntaggedDelivery;

static void pool_deliver_untagged(gpointer cmd_data, gpointer user_data)
{
	PoolReq *req = cmd_data;
	UntaggedDelivery *ctx = user_data;

	if (req == NULL || req->kind != REQ_USER)
		return;
	if (req->data != NULL)
		req->data(ctx->resp, ctx->uidvalidity, req->user_data);
	else if (ctx->keeper == NULL)
		ctx->keeper = req;
}

static void on_conn_untagged(ImapConn *conn, gpointer cmd_data,
			     ImapResponse *resp, gpointer user_data)
{
	PoolConn *pc = user_data;
	PoolReq *req = cmd_data;

	if (req == NULL) {
		/* Unsolicited (EXISTS while idle, alerts): nobody asked. */
		imap_response_free(resp);
		return;
	}
	if (req->kind == REQ_SELECT) {
		imap_mailbox_info_update(&pc->info, resp);
		imap_response_free(resp);
		return;
	}
	/* Dovecot runs pipelined commands at the same time, so untagged
	 * data may answer any command in flight, not only the oldest: every
	 * data func sees it (each picks what it asked for by UID, section and
	 * origin), and the oldest command without one keeps it in its reply
	 * (whose readers match response codes by UID, e.g. COPYUID). */
	{
		UntaggedDelivery ctx = {resp, pc->uidvalidity, NULL};

		imap_conn_foreach_in_flight(conn, pool_deliver_untagged, &ctx);
		if (ctx.keeper)
			g_ptr_array_add(ctx.keeper->untagged, resp);
		else
			imap_response_free(resp);
	}
}

static void select_done(PoolConn *pc, PoolReq *req, ImapResponse *resp)
{
	ImapPool *pool = pc->pool;

	imap_mailbox_info_update(&pc->info, resp);
	g_clear_pointer(&pc->selecting, g_free);
	pc->state = PC_READY;
	if (resp->status == IMAP_STATUS_OK) {
		pc->selected = g_strdup(req->mailbox);
		pc->uidvalidity = pc->info.uidvalidity;
		pc->select_seq = ++pool->selects;
		if (pool->select_func != NULL)
			pool->select_func(req->mailbox, &pc->info,
					  pool->select_data);
	} else {
		/* RFC 9051 §6.3.2: a failed SELECT leaves no mailbox
		 * selected. */
		g_autoptr(GError) error = NULL;
		g_autofree char *text = imap_wire_status_text(resp);
		ImapReply proto = {.status = resp->status,
				   .code = resp->code,
				   .code_arg = resp->code_arg,
				   .text = resp->text};

		error = g_error_new(
			IMAPFS_IMAP_ERROR,
			imap_error_code_from_response(
				resp->code, resp->status == IMAP_STATUS_BAD),
			"SELECT \"%s\": %s", req->mailbox, text);
		g_free(pc->selected);
		pc->selected = NULL;
		pc->uidvalidity = 0;
		g_clear_error(&pc->select_error);
		pc->select_error = g_error_copy(error);
		fail_waiting(pool, req->mailbox, error, &proto);
	}
	imap_mailbox_info_clear(&pc->info);
	memset(&pc->info, 0, sizeof(pc->info));
}

/* TRUE for a command that may add messages to a mailbox, which
 * connections that have it selected see only from their next command on
 * (Dovecot, for one, answers a UID command on a message its session has
 * not seen yet with OK, doing nothing). */
static gboolean adds_messages(const ImapCommand *cmd)
{
	static const char *const names[] = {"APPEND", "COPY", "MOVE",
					    "UID COPY", "UID MOVE"};
	const char *name = imap_command_name(cmd);

	for (guint i = 0; i < G_N_ELEMENTS(names); i++)
		if (g_ascii_strcasecmp(name, names[i]) == 0)
			return TRUE;
	return FALSE;
}

static void on_conn_tagged(ImapConn *conn, gpointer cmd_data,
			   ImapResponse *resp, gpointer user_data)
{
	PoolConn *pc = user_data;
	PoolReq *req = cmd_data;

	if (req->kind == REQ_SELECT) {
		select_done(pc, req, resp);
		req_free(req);
	} else if (req->kind == REQ_NOOP) {
		pc->state = PC_READY;
		req_free(req);
	} else {
		guint32 uidv = req->mailbox != NULL ? pc->uidvalidity : 0;
		ImapReply *reply = reply_from(resp, req->untagged, uidv);
		GError *error = NULL;

		if (req_background(req))
			pc->background--;
		if (resp->status != IMAP_STATUS_OK && req->behind_select &&
		    pc->select_error != NULL)
			/* Its SELECT failed, so it ran with no mailbox
			 * selected: the SELECT's error is the real one. */
			error = g_error_new(pc->select_error->domain,
					    pc->select_error->code, "%s: %s",
					    imap_command_name(req->cmd),
					    pc->select_error->message);
		else if (resp->status != IMAP_STATUS_OK)
			error = imap_wire_status_error(
				imap_command_name(req->cmd), resp);
		req_finish(req, reply, error);
	}
	imap_response_free(resp);
	pool_dispatch(pc->pool);
}

static void on_conn_lost(ImapConn *conn, const GError *why, GQueue *unfinished,
			 gpointer user_data)
{
	PoolConn *pc = user_data;
	ImapPool *pool = pc->pool;
	GQueue retry = G_QUEUE_INIT;
	PoolReq *req;
	/* @why belongs to the connection, which goes now. Whatever the
	 * cause (timeout, protocol error), the command's outcome is unknown:
	 * CONNECTION_LOST. */
	g_autoptr(GError) error = g_error_new_literal(
		IMAPFS_IMAP_ERROR, IMAP_ERROR_CONNECTION_LOST, why->message);

	g_debug("connection %u lost: %s", pc->no, error->message);
	/* A server shutting down ends its sessions one by one, over some
	 * seconds: counted as drops that double the backoff each, they held
	 * the first command after for 6 s and more, where the server was
	 * back (or said it was down) within one. */
	if (g_get_monotonic_time() - pc->started_at >= POOL_SERVED_US)
		pool->backoff_us = 0;
	pool_remove_conn(pool, pc); /* frees pc and conn */
	/* An APPEND, COPY or MOVE whose answer is lost may have happened
	 * (to which mailbox, the pool does not know): other connections
	 * catch up before their next command. */
	for (GList *l = unfinished->head; l != NULL; l = l->next) {
		PoolReq *lost = l->data;

		if (lost->kind == REQ_USER && adds_messages(lost->cmd)) {
			imap_pool_note_change(pool, NULL);
			break;
		}
	}
	while ((req = g_queue_pop_head(unfinished)) != NULL) {
		if (req->kind != REQ_USER)
			req_free(req);
		else if ((imap_command_flags(req->cmd) &
			  IMAP_COMMAND_RETRIABLE) &&
			 req->attempts < POOL_MAX_ATTEMPTS)
			g_queue_push_tail(&retry, req);
		else
			req_fail(req, error);
	}
	/* Back to the head of the queue, in their order. */
	while ((req = g_queue_pop_tail(&retry)) != NULL)
		g_queue_push_head(&pool->waiting, req);
	pool_note_drop(pool);
	pool_dispatch(pool);
}

static const ImapConnHandlers pool_conn_handlers = {
	.untagged = on_conn_untagged,
	.tagged = on_conn_tagged,
	.lost = on_conn_lost,
};

static void pc_start(PoolConn *pc, ImapStream *stream)
{
	ImapPool *pool = pc->pool;

	g_atomic_int_set(&pool->caps, (gint)imap_stream_caps(stream));
	pc->conn = imap_conn_new(stream, imap_io_context(pool->io), POOL_DEPTH,
				 &pool_conn_handlers, pc);
	pc->state = PC_READY;
	pc->started_at = g_get_monotonic_time();
}

static guint pool_logged_in(const ImapPool *pool)
{
	guint n = 0;

	for (guint i = 0; i < pool->conns->len; i++)
		if (((PoolConn *)pool->conns->pdata[i])->state != PC_CONNECTING)
			n++;
	return n;
}

static void connect_job_free(gpointer data)
{
	ConnectJob *job = data;

	imap_stream_free(job->stream);
	g_clear_error(&job->error);
	imap_config_free(job->cfg);
	g_free(job);
}

static gboolean on_connected(gpointer data)
{
	ConnectJob *job = data;
	ImapPool *pool = job->pool;
	PoolConn *pc = job->pc;

	if (pool->shutting_down)
		return G_SOURCE_REMOVE; /* pc is gone; the stream is freed */
	if (job->stream != NULL) {
		gboolean failed, was_down = !pool_alive(pool);

		pool->connect_failures = 0;
		pool->backoff_us = 0;
		g_clear_error(&pool->given_up_error);
		pool->cap = pool->cfg->max_conns;
		g_atomic_int_set(&pool->down, 0);
		g_mutex_lock(&pool->connect_lock);
		failed = pool->connect_problem != NULL;
		g_clear_pointer(&pool->connect_problem, g_free);
		g_mutex_unlock(&pool->connect_lock);
		/* The log said it could not connect: it says this too. */
		if (failed)
			g_message("connected to %s again", pool->cfg->host);
		if ((failed || was_down) && pool->reconnected_func)
			pool->reconnected_func(pool->reconnected_data);
		pc_start(pc, g_steal_pointer(&job->stream));
		pool_dispatch(pool);
		return G_SOURCE_REMOVE;
	}

	g_debug("connection %u failed: %s", pc->no, job->error->message);
	g_mutex_lock(&pool->connect_lock);
	g_free(pool->connect_problem);
	pool->connect_problem = g_strdup(job->error->message);
	g_mutex_unlock(&pool->connect_lock);
	pool_remove_conn(pool, pc);
	if (pool_note_drop(pool))
		pool->connect_failures++;
	gboolean alive = pool_alive(pool);
	if (alive)
		pool->cap = MAX(1, pool_logged_in(pool));
	else
		g_atomic_int_set(&pool->down, 1);
	gboolean hopeless = job->error->domain == IMAPFS_IMAP_ERROR &&
			    (job->error->code == IMAP_ERROR_AUTH ||
			     job->error->code == IMAP_ERROR_TLS ||
			     job->error->code == IMAP_ERROR_UNSUPPORTED);
	if (!alive && (hopeless || pool->given_up_error != NULL ||
		       pool->connect_failures >= POOL_MAX_CONNECT_FAILURES)) {
		pool->connect_failures = 0;
		g_clear_error(&pool->given_up_error);
		pool->given_up_error = g_error_copy(job->error);
		/* A server that refuses (or is down) is asked again at the
		 * next command a second on, so that it is back in use as
		 * soon as it is; one that refused the login is not. */
		if (!hopeless)
			pool->not_before =
				MIN(pool->not_before,
				    g_get_monotonic_time() + POOL_RETRY_DOWN_US);
		fail_waiting(pool, NULL, job->error, NULL);
	}
	pool_dispatch(pool);
	return G_SOURCE_REMOVE;
}

static gpointer connector_main(gpointer data)
{
	ConnectJob *job = data;
	ImapPool *pool = job->pool; /* alive until we say we are done */
	GMainContext *context = g_steal_pointer(&job->context);
	GSource *source;

	job->stream = imap_stream_connect_abortable(job->cfg, job->conn_no,
						    pool->abort, &job->error);
	source = g_idle_source_new();
	g_source_set_callback(source, on_connected, job, connect_job_free);
	g_source_attach(source, context);
	g_source_unref(source);
	/* Our reference goes now, not with the job: if the pool is gone,
	 * the context is freed here, and with it the job and its stream. */
	g_main_context_unref(context);
	g_mutex_lock(&pool->connect_lock);
	pool->connecting--;
	g_cond_signal(&pool->connect_done);
	g_mutex_unlock(&pool->connect_lock);
	return NULL;
}

static void pool_open_conn(ImapPool *pool)
{
	PoolConn *pc = g_new0(PoolConn, 1);
	ConnectJob *job = g_new0(ConnectJob, 1);

	pc->pool = pool;
	pc->no = ++pool->next_conn_no;
	pc->state = PC_CONNECTING;
	g_ptr_array_add(pool->conns, pc);

	job->pool = pool;
	job->pc = pc;
	job->conn_no = pc->no;
	job->cfg = imap_config_copy(pool->cfg);
	job->context = g_main_context_ref(imap_io_context(pool->io));
	g_mutex_lock(&pool->connect_lock);
	pool->connecting++;
	g_mutex_unlock(&pool->connect_lock);
	g_thread_unref(g_thread_new("imap-connect", connector_main, job));
}

/* ---- routing --------------------------------------------------------- */

static guint pool_changes_now(ImapPool *pool)
{
	guint now;

	g_mutex_lock(&pool->changes_lock);
	now = pool->changes;
	g_mutex_unlock(&pool->changes_lock);
	return now;
}

/* The number of the last change that may have added messages to
 * @mailbox. */
static guint pool_last_change(ImapPool *pool, const char *mailbox)
{
	guint last;

	g_mutex_lock(&pool->changes_lock);
	last = MAX(pool->all_changed,
		   GPOINTER_TO_UINT(g_hash_table_lookup(pool->changed, mailbox)));
	g_mutex_unlock(&pool->changes_lock);
	return last;
}

/* Sends NOOP on @pc, whose mailbox may have messages its view does not
 * show yet: the commands for that mailbox wait for its answer. (Sent
 * behind the NOOP, they would not see the newcomers: Dovecot runs
 * pipelined commands before it brings the view up to date, and a UID
 * command that names a message the view lacks does nothing and says
 * OK.) */
static void pc_catch_up(PoolConn *pc)
{
	PoolReq *noop = g_new0(PoolReq, 1);

	pc->seen_changes = pool_changes_now(pc->pool);
	pc->state = PC_CATCHING_UP;
	noop->kind = REQ_NOOP;
	noop->cmd = imap_command_new(NULL, IMAP_COMMAND_RETRIABLE, "NOOP");
	noop->attempts = 1;
	imap_conn_send(pc->conn, noop->cmd, noop);
}

static void pc_send(PoolConn *pc, PoolReq *req)
{
	if (req_background(req))
		pc->background++;
	req->attempts++;
	req->behind_select = pc->state == PC_SELECTING;
	if (req->kind == REQ_USER) {
		if (req->untagged != NULL)
			g_ptr_array_unref(req->untagged);
		req->untagged = g_ptr_array_new_with_free_func(
			(GDestroyNotify)imap_response_free);
	}
	imap_conn_send(pc->conn, req->cmd, req);
}

/* Sends SELECT @mailbox on the idle @pc. imap_pool_submit() has checked
 * that the command can be built. */
static void pc_select(PoolConn *pc, const char *mailbox)
{
	g_autoptr(GError) error = NULL;
	ImapCommand *cmd = imap_command_new(&error, IMAP_COMMAND_RETRIABLE,
					    "SELECT %q", mailbox);
	PoolReq *req;

	if (cmd == NULL) {
		g_critical("SELECT %s: %s", mailbox, error->message);
		return;
	}
	req = g_new0(PoolReq, 1);
	req->kind = REQ_SELECT;
	req->mailbox = g_strdup(mailbox);
	req->cmd = cmd;
	g_clear_pointer(&pc->selected, g_free);
	g_clear_error(&pc->select_error);
	pc->uidvalidity = 0;
	pc->seen_changes = pool_changes_now(pc->pool);
	pc->selecting = g_strdup(mailbox);
	pc->state = PC_SELECTING;
	pc->draining = FALSE;
	memset(&pc->info, 0, sizeof(pc->info));
	pc_send(pc, req);
}

static gboolean pc_usable(const PoolConn *pc)
{
	return pc->state != PC_CONNECTING && imap_conn_is_alive(pc->conn);
}

static guint pool_background_conns(const ImapPool *pool)
{
	guint n = 0;

	for (guint i = 0; i < pool->conns->len; i++)
		if (((PoolConn *)pool->conns->pdata[i])->background > 0)
			n++;
	return n;
}

/* Whether a background command may go to @pc as far as priority goes:
 * one connection stays free of background work. */
static gboolean pc_takes_background(const ImapPool *pool, const PoolConn *pc)
{
	return pc->background > 0 || pool->cap < 2 ||
	       pool_background_conns(pool) + 1 < pool->cap;
}

/* Whether @pc suits @req as far as priority goes; @avoid: a foreground
 * @req takes only a connection free of background work. */
static gboolean pc_fits(const ImapPool *pool, const PoolConn *pc,
			const PoolReq *req, gboolean avoid)
{
	if (req_background(req))
		return pc_takes_background(pool, pc);
	return !avoid || pc->background == 0;
}

/* pool_route() for a command that needs no mailbox selected. */
static PoolConn *route_any(ImapPool *pool, PoolReq *req, gboolean avoid)
{
	PoolConn *best = NULL;

	for (guint i = 0; i < pool->conns->len; i++) {
		PoolConn *pc = pool->conns->pdata[i];
		/* A draining connection that went idle may as well. */
		if (!pc_usable(pc) ||
		    (pc->draining && imap_conn_outstanding(pc->conn) > 0) ||
		    !imap_conn_has_room(pc->conn) ||
		    !pc_fits(pool, pc, req, avoid))
			continue;
		if (best == NULL || imap_conn_outstanding(pc->conn) <
					    imap_conn_outstanding(best->conn))
			best = pc;
	}
	return best;
}

/* pool_route() for a command that needs its mailbox selected: a
 * connection that has it, or is selecting it, or an idle one (which then
 * SELECTs it). *out_wait: none of these can take @req yet, but one is
 * selecting its mailbox for it. */
static PoolConn *route_mailbox(ImapPool *pool, PoolReq *req, gboolean avoid,
			       gboolean may_select, gboolean *out_wait)
{
	PoolConn *other = NULL;

	*out_wait = FALSE;
	for (guint i = 0; i < pool->conns->len; i++) {
		PoolConn *pc = pool->conns->pdata[i];
		if (pc_usable(pc) && pc->state == PC_READY && !pc->draining &&
		    g_strcmp0(pc->selected, req->mailbox) == 0 &&
		    imap_conn_has_room(pc->conn) &&
		    pc_fits(pool, pc, req, avoid)) {
			/* Its view may lack what came before the request
			 * did. (Background work, the prefetch's, asks for
			 * messages the view has: no stream waits.) */
			if (pc->seen_changes < req->changed &&
			    !req_background(req)) {
				pc_catch_up(pc);
				*out_wait = TRUE;
				return NULL;
			}
			/* Background work joins its stream. */
			if (!req_background(req) || pc->background > 0)
				return pc;
			if (other == NULL)
				other = pc;
		}
	}
	if (other != NULL)
		return other;
	/* One is catching up on this mailbox: its answer is a round trip
	 * away, no later than a SELECT's elsewhere. */
	for (guint i = 0; i < pool->conns->len; i++) {
		PoolConn *pc = pool->conns->pdata[i];

		if (pc_usable(pc) && pc->state == PC_CATCHING_UP &&
		    g_strcmp0(pc->selected, req->mailbox) == 0 &&
		    pc_fits(pool, pc, req, avoid)) {
			*out_wait = TRUE;
			return NULL;
		}
	}
	/* Commands may follow a SELECT of their mailbox in the pipeline
	 * (RFC 9051 §5.5: the server completes SELECT first): no round trip
	 * is spent waiting for it. If it fails, no mailbox is selected and
	 * they fail too, never acting on another mailbox (§6.3.2). */
	/* A command whose UIDs hold under one UIDVALIDITY waits for the
	 * SELECT's answer instead. */
	for (guint i = 0; i < pool->conns->len; i++) {
		PoolConn *pc = pool->conns->pdata[i];
		/* Background work joins only a SELECT made for it. */
		if (pc_usable(pc) && pc->state == PC_SELECTING &&
		    g_strcmp0(pc->selecting, req->mailbox) == 0 &&
		    pc_fits(pool, pc, req, avoid) &&
		    (!req_background(req) || pc->background > 0)) {
			/* A SELECT sent before the request's change may not
			 * show it: the request waits, and catches up. */
			if (imap_conn_has_room(pc->conn) && !req->uidvalidity &&
			    pc->seen_changes >= req->changed)
				return pc;
			*out_wait = TRUE;
			return NULL;
		}
	}
	for (guint i = 0; i < pool->conns->len && may_select; i++) {
		PoolConn *pc = pool->conns->pdata[i];
		if (pc_usable(pc) && pc->state == PC_READY &&
		    imap_conn_outstanding(pc->conn) == 0 &&
		    pc_fits(pool, pc, req, avoid)) {
			pc_select(pc, req->mailbox);
			if (pc->state == PC_SELECTING && !req->uidvalidity)
				return pc;
			*out_wait = TRUE;
			return NULL;
		}
	}
	return NULL;
}

static gboolean pool_connecting(const ImapPool *pool)
{
	return pool_logged_in(pool) < pool->conns->len;
}

/* Some connection is up and free of background work, or will be. */
static gboolean pool_has_spare(const ImapPool *pool)
{
	if (pool->conns->len < pool->cap || pool_connecting(pool))
		return TRUE;
	for (guint i = 0; i < pool->conns->len; i++) {
		PoolConn *pc = pool->conns->pdata[i];
		if (pc_usable(pc) && pc->background == 0)
			return TRUE;
	}
	return FALSE;
}

/* Where @req can go now, or NULL; *out_need: a new connection would
 * help. With @may_select, may start a SELECT. A foreground command takes
 * only a connection free of background work (which the pool keeps, or
 * opens), unless there is none to be had (max_conns 1, or a server that
 * allows fewer). */
static PoolConn *pool_route(ImapPool *pool, PoolReq *req, gboolean may_select,
			    gboolean *out_need)
{
	gboolean background = req_background(req);
	gboolean avoid = !background && pool_has_spare(pool);
	gboolean wait = FALSE;
	PoolConn *pc;

	*out_need = FALSE;
	if (req->mailbox == NULL) {
		pc = route_any(pool, req, avoid);
		*out_need = pc == NULL;
		return pc;
	}
	pc = route_mailbox(pool, req, avoid, may_select, &wait);
	if (pc != NULL || wait)
		return pc;
	/* A new connection helps background work only where it may take
	 * some. */
	*out_need = !background || pool->cap < 2 ||
		    pool_background_conns(pool) + 1 < pool->cap;
	return NULL;
}

/* Every connection carries background work: a command the user waits for
 * would have to wait for a connection to be opened. */
static gboolean pool_lacks_spare(const ImapPool *pool)
{
	guint n = pool_background_conns(pool);

	return n > 0 && n == pool->conns->len && pool->conns->len < pool->cap;
}

static gboolean on_retry_timer(gpointer data)
{
	ImapPool *pool = data;

	g_clear_pointer(&pool->retry_timer, g_source_unref);
	pool_dispatch(pool);
	return G_SOURCE_REMOVE;
}

static void pool_grow(ImapPool *pool, guint needed, gboolean mailbox_needed)
{
	guint connecting = pool->conns->len - pool_logged_in(pool);
	gint64 now = g_get_monotonic_time();

	if (needed > connecting && pool->conns->len < pool->cfg->max_conns) {
		if (now < pool->not_before) {
			if (pool->retry_timer == NULL) {
				guint ms =
					(guint)((pool->not_before - now + 999) /
						1000);
				pool->retry_timer = g_timeout_source_new(ms);
				g_source_set_callback(pool->retry_timer,
						      on_retry_timer, pool,
						      NULL);
				g_source_attach(pool->retry_timer,
						imap_io_context(pool->io));
			}
			return;
		}
		while (needed > connecting &&
		       pool->conns->len < pool->cfg->max_conns) {
			pool_open_conn(pool);
			connecting++;
		}
		return;
	}
	if (!mailbox_needed || connecting > 0 ||
	    pool->conns->len < pool->cfg->max_conns)
		return;
	/* Full and busy: let the least loaded connection drain so that it
	 * can switch mailbox; one with background work drains last. */
	PoolConn *best = NULL;
	for (guint i = 0; i < pool->conns->len; i++) {
		PoolConn *pc = pool->conns->pdata[i];
		if (!pc_usable(pc))
			continue;
		if (pc->draining || pc->state == PC_SELECTING)
			return;
		if (best == NULL || pc->background < best->background ||
		    (pc->background == best->background &&
		     imap_conn_outstanding(pc->conn) <
			     imap_conn_outstanding(best->conn)))
			best = pc;
	}
	if (best != NULL)
		best->draining = TRUE;
}

static void fail_uidvalidity(PoolReq *req, guint32 now)
{
	g_autoptr(GError) error = g_error_new(
		IMAPFS_IMAP_ERROR, IMAP_ERROR_UIDVALIDITY,
		"not sent: mailbox \"%s\" has UIDVALIDITY %u now, not %u, so "
		"its UIDs name other messages",
		req->mailbox, now, req->uidvalidity);

	req_fail(req, error);
}

/* Some connection is logged in (not still connecting). */
static gboolean pool_alive(ImapPool *pool)
{
	return pool_logged_in(pool) > 0;
}

static void pool_dispatch(ImapPool *pool)
{
	g_autoptr(GHashTable) need = g_hash_table_new(g_str_hash, g_str_equal);
	gboolean need_any = FALSE, need_switch = FALSE;

	if (pool->shutting_down)
		return;
	/* Foreground commands first, then background ones; each in the
	 * order they came, but those whose mailbox a connection has
	 * selected go before any makes it select another: an older command
	 * for another mailbox took an idle connection back, again and again,
	 * from one waiting for the SELECT it had just made. */
	for (int step = 0; step < 4; step++) {
		gboolean background = step >= 2, may_select = step % 2;

		for (GList *l = pool->waiting.head, *next; l != NULL;
		     l = next) {
			PoolReq *req = l->data;
			gboolean more;
			PoolConn *pc;

			next = l->next;
			if (req_background(req) != background)
				continue;
			pc = pool_route(pool, req, may_select, &more);

			/* Selected before the request came, a connection may
			 * show a mailbox that another client has made anew
			 * since: it SELECTs again rather than fail the request
			 * on old news. */
			while (pc != NULL && req->uidvalidity &&
			       pc->uidvalidity != req->uidvalidity &&
			       pc->select_seq <= req->since) {
				g_clear_pointer(&pc->selected, g_free);
				pc = pool_route(pool, req, may_select, &more);
			}
			if (pc != NULL) {
				g_queue_delete_link(&pool->waiting, l);
				if (req->uidvalidity &&
				    pc->uidvalidity != req->uidvalidity)
					fail_uidvalidity(req, pc->uidvalidity);
				else
					pc_send(pc, req);
			} else if (more && may_select) {
				if (req->mailbox != NULL)
					g_hash_table_add(need, req->mailbox);
				else
					need_any = TRUE;
				/* Background work waits rather than make a
				 * connection switch mailbox. */
				need_switch |=
					req->mailbox != NULL && !background;
			}
		}
	}
	/* Keep a connection ready for what the user asks while background
	 * work streams on the others. */
	need_any |= pool_lacks_spare(pool);
	if (g_hash_table_size(need) == 0 && !need_any)
		return;
	/* With no connection left and logins held back after a refusal,
	 * what waits would wait for nothing: it fails now, saying until
	 * when. */
	if (!pool_alive(pool)) {
		g_autoptr(GError) held = NULL;

		if (!imap_login_gate_check(pool->cfg, &held)) {
			fail_waiting(pool, NULL, held, NULL);
			return;
		}
		/* Connecting has failed for good, and it is too soon to try
		 * again: fail now rather than wait for the next try. */
		if (pool->given_up_error != NULL && !pool_connecting(pool) &&
		    g_get_monotonic_time() < pool->not_before) {
			fail_waiting(pool, NULL, pool->given_up_error, NULL);
			return;
		}
	}
	pool_grow(pool, g_hash_table_size(need) + (need_any ? 1 : 0),
		  need_switch);
}

/* ---- public API ------------------------------------------------------ */

typedef struct {
	ImapPool *pool;
	ImapStream *stream;
} FirstJob;

static gboolean on_first(gpointer data)
{
	FirstJob *job = data;
	ImapPool *pool = job->pool;
	PoolConn *pc = g_new0(PoolConn, 1);

	pc->pool = pool;
	pc->no = job->stream->conn_no;
	pc_start(pc, g_steal_pointer(&job->stream));
	g_ptr_array_add(pool->conns, pc);
	pool_dispatch(pool);
	return G_SOURCE_REMOVE;
}

static void first_job_free(gpointer data)
{
	FirstJob *job = data;

	imap_stream_free(job->stream);
	g_free(job);
}

ImapPool *imap_pool_new(const ImapConfig *cfg, ImapStream *first)
{
	ImapPool *pool;

	g_return_val_if_fail(cfg != NULL, NULL);

	pool = g_new0(ImapPool, 1);
	g_mutex_init(&pool->connect_lock);
	g_mutex_init(&pool->changes_lock);
	pool->changed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					      NULL);
	g_cond_init(&pool->connect_done);
	pool->abort = imap_connect_abort_new();
	pool->cfg = imap_config_copy(cfg);
	if (pool->cfg->max_conns == 0)
		pool->cfg->max_conns = 1;
	pool->cap = pool->cfg->max_conns;
	pool->conns = g_ptr_array_new_with_free_func((GDestroyNotify)pc_free);
	g_queue_init(&pool->waiting);
	pool->io = imap_io_new();
	if (first != NULL) {
		FirstJob *job = g_new0(FirstJob, 1);

		job->pool = pool;
		job->stream = first;
		pool->next_conn_no = first->conn_no > 0 ? first->conn_no : 1;
		g_atomic_int_set(&pool->caps, (gint)imap_stream_caps(first));
		imap_io_invoke(pool->io, on_first, job, first_job_free);
	}
	return pool;
}

static gboolean on_shutdown(gpointer data)
{
	ImapPool *pool = data;
	GError *error =
		g_error_new_literal(IMAPFS_IMAP_ERROR, IMAP_ERROR_SHUTDOWN,
				    "the connection pool was shut down");
	GQueue unfinished = G_QUEUE_INIT;
	PoolReq *req;

	pool->shutting_down = TRUE;
	if (pool->retry_timer != NULL) {
		g_source_destroy(pool->retry_timer);
		g_clear_pointer(&pool->retry_timer, g_source_unref);
	}
	for (guint i = 0; i < pool->conns->len; i++) {
		PoolConn *pc = pool->conns->pdata[i];
		imap_conn_close(g_steal_pointer(&pc->conn), TRUE, &unfinished);
	}
	g_ptr_array_set_size(pool->conns, 0);
	while ((req = g_queue_pop_head(&unfinished)) != NULL)
		req_fail(req, error);
	while ((req = g_queue_pop_head(&pool->waiting)) != NULL)
		req_fail(req, error);
	g_error_free(error);
	return G_SOURCE_REMOVE;
}

void imap_pool_free(ImapPool *pool)
{
	if (pool == NULL)
		return;
	g_return_if_fail(!imap_io_is_current(pool->io));

	imap_io_invoke(pool->io, on_shutdown, pool, NULL);
	/* Cleared only once the thread is joined: until then a completion
	 * may still submit (and be failed as shut down). */
	imap_io_free(pool->io);
	pool->io = NULL;
	/* Attempts under way end now, not after the timeout (a resolver
	 * that does not answer still takes its own). */
	imap_connect_abort_fire(pool->abort);
	g_mutex_lock(&pool->connect_lock);
	while (pool->connecting)
		g_cond_wait(&pool->connect_done, &pool->connect_lock);
	g_mutex_unlock(&pool->connect_lock);
	imap_connect_abort_free(pool->abort);
	g_mutex_clear(&pool->connect_lock);
	g_mutex_clear(&pool->changes_lock);
	g_hash_table_unref(pool->changed);
	g_cond_clear(&pool->connect_done);
	g_free(pool->connect_problem);
	g_clear_error(&pool->given_up_error);
	g_ptr_array_unref(pool->conns);
	imap_config_free(pool->cfg);
	g_free(pool);
}

void imap_pool_set_select_func(ImapPool *pool, ImapSelectFunc func,
			       gpointer user_data)
{
	g_return_if_fail(pool != NULL);
	pool->select_func = func;
	pool->select_data = user_data;
}

void imap_pool_set_reconnected_func(ImapPool *pool, void (*func)(gpointer),
				    gpointer user_data)
{
	g_return_if_fail(pool != NULL);
	pool->reconnected_func = func;
	pool->reconnected_data = user_data;
}

const ImapConfig *imap_pool_config(ImapPool *pool)
{
	return pool->cfg;
}

guint imap_pool_caps(ImapPool *pool)
{
	g_return_val_if_fail(pool != NULL, 0);
	return (guint)g_atomic_int_get(&pool->caps);
}

/* The submit closure's data: the request until on_submit takes it (it may
 * complete, and be freed, before the closure's destroy notify runs). */
typedef struct {
	PoolReq *req;
} Submit;

static gboolean on_submit(gpointer data)
{
	PoolReq *req = g_steal_pointer(&((Submit *)data)->req);
	ImapPool *pool = req->pool;

	if (pool->shutting_down) {
		GError *error = g_error_new_literal(
			IMAPFS_IMAP_ERROR, IMAP_ERROR_SHUTDOWN,
			"the connection pool was shut down");
		req_fail(req, error);
		g_error_free(error);
		return G_SOURCE_REMOVE;
	}
	req->since = pool->selects;
	g_queue_push_tail(&pool->waiting, req);
	pool_dispatch(pool);
	return G_SOURCE_REMOVE;
}

/* Runs when the submit closure is gone: after on_submit, or instead of it
 * when the loop stopped first (a submit racing imap_pool_free). */
static void on_submit_dropped(gpointer data)
{
	Submit *submit = data;

	if (submit->req) {
		GError *error = g_error_new_literal(
			IMAPFS_IMAP_ERROR, IMAP_ERROR_SHUTDOWN,
			"the connection pool was shut down");
		req_fail(submit->req, error);
		g_error_free(error);
	}
	g_free(submit);
}

static gboolean on_invalid(gpointer data)
{
	PoolReq *req = data;

	req_finish(req, NULL, g_steal_pointer(&req->error));
	return G_SOURCE_REMOVE;
}

void imap_pool_submit(ImapPool *pool, const char *mailbox, ImapCommand *cmd,
		      ImapDataFunc data, ImapDoneFunc done, gpointer user_data)
{
	imap_pool_submit_uids(pool, mailbox, 0, cmd, data, done, user_data);
}

void imap_pool_submit_uids(ImapPool *pool, const char *mailbox,
			   guint32 uidvalidity, ImapCommand *cmd,
			   ImapDataFunc data, ImapDoneFunc done,
			   gpointer user_data)
{
	PoolReq *req;
	Submit *submit;

	g_return_if_fail(pool != NULL);

	req = g_new0(PoolReq, 1);
	req->kind = REQ_USER;
	req->pool = pool;
	req->mailbox = g_strdup(mailbox);
	req->uidvalidity = mailbox ? uidvalidity : 0;
	req->cmd = cmd;
	req->data = data;
	req->done = done;
	req->user_data = user_data;
	req->background = cmd != NULL &&
			  (imap_command_flags(cmd) & IMAP_COMMAND_BACKGROUND);
	/* On the caller's thread, after any change it noted itself. */
	if (mailbox != NULL)
		req->changed = pool_last_change(pool, mailbox);
	/* A command that could not be built (NULL) still completes, once,
	 * with an error: callers count on done. */
	if (cmd == NULL) {
		g_set_error_literal(&req->error, IMAPFS_IMAP_ERROR,
				    IMAP_ERROR_INVALID,
				    "the command could not be built");
		imap_io_invoke(pool->io, on_invalid, req, NULL);
		return;
	}
	if (mailbox != NULL) {
		/* A name SELECT cannot carry fails now, not at routing. */
		g_autoptr(ImapCommand) probe =
			imap_command_new(&req->error, 0, "SELECT %q", mailbox);
		if (probe == NULL) {
			imap_io_invoke(pool->io, on_invalid, req, NULL);
			return;
		}
	}
	submit = g_new0(Submit, 1);
	submit->req = req;
	imap_io_invoke(pool->io, on_submit, submit, on_submit_dropped);
}

void imap_pool_note_change(ImapPool *pool, const char *mailbox)
{
	g_mutex_lock(&pool->changes_lock);
	pool->changes++;
	if (mailbox == NULL)
		pool->all_changed = pool->changes;
	else
		g_hash_table_insert(pool->changed, g_strdup(mailbox),
				    GUINT_TO_POINTER(pool->changes));
	g_mutex_unlock(&pool->changes_lock);
}

char *imap_pool_unreachable(ImapPool *pool)
{
	return g_atomic_int_get(&pool->down) ? imap_pool_connect_problem(pool)
					     : NULL;
}

typedef struct {
	ImapPool *pool;
	gconstpointer user_data;
} Hurry;

static gboolean on_hurry(gpointer data)
{
	Hurry *hurry = data;
	gboolean found = FALSE;

	for (GList *l = hurry->pool->waiting.head; l != NULL; l = l->next) {
		PoolReq *req = l->data;

		if (req->kind == REQ_USER && req->background &&
		    req->user_data == hurry->user_data) {
			req->background = FALSE;
			found = TRUE;
		}
	}
	if (found)
		pool_dispatch(hurry->pool);
	return G_SOURCE_REMOVE;
}

void imap_pool_hurry(ImapPool *pool, gconstpointer user_data)
{
	Hurry *hurry = g_new(Hurry, 1);

	hurry->pool = pool;
	hurry->user_data = user_data;
	imap_io_invoke(pool->io, on_hurry, hurry, g_free);
}

char *imap_pool_connect_problem(ImapPool *pool)
{
	char *problem;

	g_mutex_lock(&pool->connect_lock);
	problem = g_strdup(pool->connect_problem);
	g_mutex_unlock(&pool->connect_lock);
	return problem;
}

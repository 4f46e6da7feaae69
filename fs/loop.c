/* fs/loop.c — see loop.h.
 *
 * The reader handles what it reads itself, so a burst of quick requests
 * (OPEN, RELEASE, GETATTR of cached things) wakes no other thread. An
 * idle thread, the watcher, looks in every TICK_US while the reader is
 * awake: if the reader is still on the request it saw last time, it may
 * be waiting on the network, and the watcher takes over reading. While
 * the reader sleeps in poll() the watcher sleeps too, so an idle mount
 * wakes no one.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fs/loop.h"

#define TICK_US 2000

typedef struct {
	struct fuse_session *se;
	int fd;	     /* the session's, non-blocking from here on */
	int wake_fd; /* eventfd: written once, at the end */
	gint64 spin_us;
	unsigned max_threads;
	sem_t ended; /* posted by a worker that sees the session end */

	GMutex lock;
	GCond idle_cond;  /* idle threads (not the watcher) */
	GCond watch_cond; /* the watcher, while the reader sleeps */
	guint64 reader;	  /* 0 until a thread reads; changes when the
			   * reader's role changes hands */
	gboolean busy;	  /* the reader is handling a request */
	gboolean asleep;  /* the reader sleeps in poll() */
	guint64 handled;  /* requests the readers took */
	gboolean watched; /* an idle thread is the watcher */
	gboolean stopping;
	unsigned idle;
	GArray *threads; /* pthread_t, to be joined */
	int error;
} Loop;

static void *worker(void *data);

/* Under l->lock. */
static void start_worker_locked(Loop *l)
{
	sigset_t all, old;
	pthread_t thread;
	int err;

	if (l->threads->len >= l->max_threads || l->stopping)
		return;
	/* Signals go to the main thread, which ends the loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&thread, NULL, worker, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		g_warning("cannot start a FUSE thread: %s", g_strerror(err));
		return;
	}
	g_array_append_val(l->threads, thread);
}

/* Under l->lock: makes sure some idle thread will watch the reader. */
static void find_watcher_locked(Loop *l)
{
	if (l->watched)
		return;
	if (l->idle > 0)
		g_cond_signal(&l->idle_cond);
	else
		start_worker_locked(l);
}

/* The next request into @buf: > 0 its size, 0 the end, < 0 an errno. */
static int receive(Loop *l, struct fuse_buf *buf)
{
	gint64 spin_until = g_get_monotonic_time() + l->spin_us;

	for (;;) {
		/* Nothing is read once the session ends: it would go
		 * unanswered. */
		int res = fuse_session_exited(l->se)
				  ? 0
				  : fuse_session_receive_buf(l->se, buf);
		struct pollfd fds[2] = {{l->fd, POLLIN, 0},
					{l->wake_fd, POLLIN, 0}};

		if (res != -EAGAIN && res != -EINTR)
			return res;
		if (res == -EAGAIN && g_get_monotonic_time() < spin_until) {
			sched_yield(); /* to whatever else wants this CPU */
			continue;
		}
		g_mutex_lock(&l->lock);
		l->asleep = TRUE;
		g_mutex_unlock(&l->lock);
		res = poll(fds, 2, -1) < 0 ? errno : 0;
		g_mutex_lock(&l->lock);
		l->asleep = FALSE;
		if (l->watched)
			g_cond_signal(&l->watch_cond);
		g_mutex_unlock(&l->lock);
		if (res != 0 && res != EINTR)
			return -res;
		if (fds[1].revents)
			return 0;
	}
}

/* Under l->lock, as the watcher: TRUE once the reader has been on one
 * request for TICK_US to 2 * TICK_US and this thread should take over;
 * FALSE when the loop stops. */
static gboolean watch_locked(Loop *l)
{
	guint64 seen = l->handled;

	l->watched = TRUE;
	while (!l->stopping) {
		if (l->asleep) {
			g_cond_wait(&l->watch_cond, &l->lock);
		} else if (!g_cond_wait_until(&l->watch_cond, &l->lock,
					      g_get_monotonic_time() +
						      TICK_US) &&
			   l->busy && l->handled == seen) {
			l->watched = FALSE;
			return TRUE; /* stuck on one request: take over */
		}
		seen = l->handled;
	}
	l->watched = FALSE;
	return FALSE;
}

static void *worker(void *data)
{
	Loop *l = data;
	struct fuse_buf buf = {0};

	g_mutex_lock(&l->lock);
	while (!l->stopping) {
		guint64 me;

		if (l->reader > 0) { /* some thread holds the role */
			if (l->watched) {
				l->idle++;
				g_cond_wait(&l->idle_cond, &l->lock);
				l->idle--;
				continue;
			}
			if (!watch_locked(l))
				continue;
		}
		/* This thread reads now. */
		l->busy = FALSE;
		l->asleep = FALSE;
		me = ++l->reader;
		find_watcher_locked(l);
		while (l->reader == me && !l->stopping) {
			int res;

			g_mutex_unlock(&l->lock);
			res = receive(l, &buf);
			g_mutex_lock(&l->lock);
			if (res <= 0) {
				if (res < 0 && !l->error)
					l->error = res;
				fuse_session_exit(l->se);
				sem_post(&l->ended);
				l->stopping = TRUE;
				break;
			}
			l->busy = TRUE;
			l->handled++;
			g_mutex_unlock(&l->lock);
			fuse_session_process_buf(l->se, &buf);
			g_mutex_lock(&l->lock);
			if (l->reader == me)
				l->busy = FALSE;
		}
	}
	g_cond_broadcast(&l->idle_cond);
	g_cond_broadcast(&l->watch_cond);
	g_mutex_unlock(&l->lock);
	free(buf.mem);
	return NULL;
}

int fs_loop_run(struct fuse_session *se, unsigned max_threads, unsigned spin_us,
		void (*on_end)(void *data), void *data)
{
	Loop l = {.se = se,
		  .fd = fuse_session_fd(se),
		  .spin_us = spin_us,
		  .max_threads = MAX(max_threads, 2)};
	int flags = fcntl(l.fd, F_GETFL);
	gboolean started;

	l.wake_fd = eventfd(0, EFD_CLOEXEC);
	if (l.wake_fd < 0)
		return -errno;
	if (flags < 0 || fcntl(l.fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		close(l.wake_fd);
		return -errno;
	}
	sem_init(&l.ended, 0, 0);
	g_mutex_init(&l.lock);
	g_cond_init(&l.idle_cond);
	g_cond_init(&l.watch_cond);
	l.threads = g_array_new(FALSE, FALSE, sizeof(pthread_t));

	g_mutex_lock(&l.lock);
	start_worker_locked(&l);
	started = l.threads->len > 0;
	g_mutex_unlock(&l.lock);

	/* A signal (its handler ends the session) interrupts the wait. */
	while (started && !fuse_session_exited(se))
		sem_wait(&l.ended);
	if (on_end)
		on_end(data);

	g_mutex_lock(&l.lock);
	l.stopping = TRUE;
	g_cond_broadcast(&l.idle_cond);
	g_cond_broadcast(&l.watch_cond);
	if (eventfd_write(l.wake_fd, 1) < 0)
		g_warning("cannot wake the FUSE reader: %s", g_strerror(errno));
	while (l.threads->len > 0) {
		pthread_t thread = g_array_index(l.threads, pthread_t, 0);

		g_array_remove_index_fast(l.threads, 0);
		g_mutex_unlock(&l.lock);
		pthread_join(thread, NULL);
		g_mutex_lock(&l.lock);
	}
	g_mutex_unlock(&l.lock);

	g_array_free(l.threads, TRUE);
	g_cond_clear(&l.watch_cond);
	g_cond_clear(&l.idle_cond);
	g_mutex_clear(&l.lock);
	sem_destroy(&l.ended);
	close(l.wake_fd);
	fcntl(l.fd, F_SETFL, flags);
	return l.error ? l.error : started ? 0 : -EAGAIN;
}

/* fs/loop.c — see loop.h.
 *
 * A slot is a CPU with a thread holding it, pinned there. The holder
 * reads the device and handles what it reads itself. While requests come
 * it keeps polling, yielding its CPU between polls: when a process on
 * that CPU blocks on a request, the holder is what runs next, reads the
 * request and answers it there, and the process wakes on its own CPU
 * without an interrupt from another one. To let the right holder take
 * a request, a holder that has not been interrupted by anything else on
 * its CPU (it is "lazy": nothing there is asking) leaves a pending
 * request for LAZY_US to the others before taking it itself.
 *
 * A holder that has seen no request from its CPU for spin_us rests: on a
 * condition variable while another holder still polls, or in poll() on
 * the device if it is the last one. Resting holders are woken, at most
 * once a tick, when the one in poll() wakes or a lazy holder takes a
 * request (its asker's CPU may have a resting holder), and then poll for
 * WOKEN_US unless a request comes from their CPU. So an idle mount wakes
 * no one, and a busy one polls on the CPUs its requests come from.
 *
 * An idle thread, the watcher, looks in every TICK_US while no holder
 * sleeps in poll(): a holder still on the request it saw last time may
 * be waiting on the network, and the watcher takes its slot over,
 * starting more threads up to max_threads. (While one sleeps in poll(),
 * it reads whatever comes: nothing is held up.)
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fs/loop.h"

/* The watcher's period. */
#define TICK_US 2000
/* A pause this long in a holder's polling: something else ran on its CPU. */
#define GAP_US 5
/* A lazy holder leaves a request this long to the others; a holder busy
 * for less than this is about to be back. */
#define LAZY_US 20
/* How long a holder woken from rest polls for a request of its own. */
#define WOKEN_US  50
#define MAX_SLOTS 16

typedef struct {
	int cpu;	 /* -1: not pinned */
	guint64 holder;	 /* the holding thread's number; 0: none */
	gboolean busy;	 /* the holder is handling a request */
	guint64 handled; /* requests its holders took */
	guint64 seen;	 /* handled, as the watcher last saw it */
	/* Read by other holders without the lock: */
	gint polls;	/* the holder polls, or sleeps in poll() */
	gint64 busy_at; /* when it took its request, while busy */
} Slot;

typedef struct {
	struct fuse_session *se;
	int fd;	    /* the session's, non-blocking from here on */
	int end_fd; /* eventfd: written once the loop stops */
	gint64 spin_us;
	unsigned max_threads;
	cpu_set_t cpus; /* where the process may run */

	GMutex lock;
	GCond idle_cond;  /* idle threads (not the watcher) */
	GCond watch_cond; /* the watcher, while a holder sleeps in poll() */
	GCond rest_cond;  /* resting holders */
	Slot *slots;
	unsigned n_slots;
	guint64 threads_seen; /* numbers given to holders */
	unsigned asleep;      /* holders in poll() */
	guint64 wakes;	      /* times resting holders were woken */
	gint64 woken_at;
	gboolean watched;  /* an idle thread is the watcher */
	unsigned starting; /* threads started, not yet running */
	gint stopping;	   /* atomic reads */
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
	l->starting++;
}

/* Under l->lock: makes sure some idle thread will watch the holders. */
static void find_watcher_locked(Loop *l)
{
	if (l->watched || l->starting > 0)
		return;
	if (l->idle > 0)
		g_cond_signal(&l->idle_cond);
	else
		start_worker_locked(l);
}

/* Under l->lock: wakes resting holders, at most once a tick. */
static void wake_resting_locked(Loop *l, gint64 now)
{
	if (now - l->woken_at < TICK_US)
		return;
	l->woken_at = now;
	l->wakes++;
	g_cond_broadcast(&l->rest_cond);
}

/* Under l->lock, as the watcher: a slot whose holder has been on one
 * request for TICK_US to 2 * TICK_US, for this thread to take over; NULL
 * when the loop stops. */
static Slot *watch_locked(Loop *l)
{
	gint64 scan_at = 0; /* 0: what the slots handled is to be noted */

	l->watched = TRUE;
	while (!l->stopping) {
		if (l->asleep > 0) {
			g_cond_wait(&l->watch_cond, &l->lock);
			scan_at = 0;
			continue;
		}
		if (scan_at == 0) {
			for (unsigned i = 0; i < l->n_slots; i++)
				l->slots[i].seen = l->slots[i].handled;
			scan_at = g_get_monotonic_time() + TICK_US;
		}
		if (g_cond_wait_until(&l->watch_cond, &l->lock, scan_at))
			continue; /* woken early: the scan is still due */
		for (unsigned i = 0; i < l->n_slots; i++) {
			Slot *s = &l->slots[i];
			gboolean stuck = s->busy && s->handled == s->seen;

			s->seen = s->handled;
			if (stuck) {
				l->watched = FALSE;
				return s;
			}
		}
		scan_at = g_get_monotonic_time() + TICK_US;
	}
	l->watched = FALSE;
	return NULL;
}

/* Whether a holder other than @s's polls, or took its request less than
 * LAZY_US ago: one that may be about to take a request from its CPU. */
static gboolean others_near(Loop *l, Slot *s, gint64 now)
{
	for (unsigned i = 0; i < l->n_slots; i++) {
		Slot *o = &l->slots[i];
		gint64 at = __atomic_load_n(&o->busy_at, __ATOMIC_RELAXED);

		if (o != s && (g_atomic_int_get(&o->polls) ||
			       (at != 0 && now - at < LAZY_US)))
			return TRUE;
	}
	return FALSE;
}

/* Under l->lock: whether a holder other than @s's polls. */
static gboolean others_poll_locked(Loop *l, Slot *s)
{
	for (unsigned i = 0; i < l->n_slots; i++)
		if (&l->slots[i] != s && l->slots[i].polls)
			return TRUE;
	return FALSE;
}

/* Under l->lock, once the holder of @s has seen no request from its CPU
 * for spin_us: sleeps until there may be some. Sets *@woken if it slept
 * on rest_cond. FALSE once the loop stops. */
static gboolean rest_locked(Loop *l, Slot *s, gboolean *woken)
{
	*woken = FALSE;
	if (others_poll_locked(l, s)) {
		guint64 wakes = l->wakes;

		g_atomic_int_set(&s->polls, FALSE);
		while (l->wakes == wakes && !l->stopping)
			g_cond_wait(&l->rest_cond, &l->lock);
		g_atomic_int_set(&s->polls, TRUE);
		*woken = TRUE;
	} else { /* the last one polling: sleeps in poll(), still polling */
		struct pollfd fds[2] = {{l->fd, POLLIN, 0},
					{l->end_fd, POLLIN, 0}};
		int res;

		l->asleep++;
		g_mutex_unlock(&l->lock);
		res = poll(fds, 2, -1) < 0 ? errno : 0;
		g_mutex_lock(&l->lock);
		l->asleep--;
		if (res != 0 && res != EINTR && !l->error)
			l->error = -res;
		if (res != 0 && res != EINTR)
			g_atomic_int_set(&l->stopping, TRUE);
		/* The watcher and the resting holders are wanted again. */
		g_cond_signal(&l->watch_cond);
		wake_resting_locked(l, g_get_monotonic_time());
	}
	return !l->stopping;
}

/* Holds @s as thread @me: reads and handles requests until the loop stops
 * or another thread takes the slot over. Called and returns with l->lock
 * held. */
static void hold_locked(Loop *l, Slot *s, guint64 me, struct fuse_buf *buf)
{
	gint64 last = g_get_monotonic_time(), active = last, pending = 0;
	gboolean eager = TRUE; /* a request may come from this CPU */
	gboolean woken;

	g_atomic_int_set(&s->polls, TRUE);
	g_mutex_unlock(&l->lock);
	for (;;) {
		gint64 now = g_get_monotonic_time();
		gboolean alone = !others_near(l, s, now);
		int res;

		if (g_atomic_int_get(&l->stopping)) {
			g_mutex_lock(&l->lock);
			break;
		}
		if (now - last > GAP_US)
			eager = TRUE; /* something else ran here */
		last = now;
		if (now - active > l->spin_us) {
			g_mutex_lock(&l->lock);
			if (!rest_locked(l, s, &woken))
				break;
			g_mutex_unlock(&l->lock);
			last = active = g_get_monotonic_time();
			if (woken) /* for a request that may not be ours */
				active -=
					l->spin_us - MIN(l->spin_us, WOKEN_US);
			eager = TRUE;
			continue;
		}
		if (!eager && !alone) {
			struct pollfd fd = {l->fd, POLLIN, 0};

			if (poll(&fd, 1, 0) <= 0) {
				pending = 0;
				sched_yield();
				continue;
			}
			if (pending == 0)
				pending = now;
			if (now - pending < LAZY_US) {
				sched_yield();
				continue;
			}
		}
		pending = 0;
		/* Nothing is read once the session ends: it would go
		 * unanswered. */
		res = fuse_session_exited(l->se)
			      ? 0
			      : fuse_session_receive_buf(l->se, buf);
		if (res == -EAGAIN || res == -EINTR) {
			eager = FALSE; /* none left */
			sched_yield();
			continue;
		}
		g_mutex_lock(&l->lock);
		if (res <= 0) {
			if (res < 0 && !l->error)
				l->error = res;
			g_atomic_int_set(&l->stopping, TRUE);
			break;
		}
		if (!eager)
			wake_resting_locked(l, now);
		s->busy = TRUE;
		s->handled++;
		g_atomic_int_set(&s->polls, FALSE);
		__atomic_store_n(&s->busy_at, now, __ATOMIC_RELAXED);
		g_mutex_unlock(&l->lock);

		fuse_session_process_buf(l->se, buf);

		g_mutex_lock(&l->lock);
		if (s->holder != me || l->stopping)
			return;
		s->busy = FALSE;
		__atomic_store_n(&s->busy_at, 0, __ATOMIC_RELAXED);
		g_atomic_int_set(&s->polls, TRUE);
		find_watcher_locked(l); /* if starting one failed before */
		g_mutex_unlock(&l->lock);
		last = g_get_monotonic_time();
		if (eager || alone)
			active = last;
	}
	g_atomic_int_set(&s->polls, FALSE);
}

/* Pins this thread on @cpu, or lets it run on any of the process's CPUs
 * for -1 or if that fails (it still works: requests then often wake a
 * process on another CPU). */
static void pin(Loop *l, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	if (cpu >= 0)
		CPU_SET(cpu, &set);
	if (cpu < 0 ||
	    pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
		pthread_setaffinity_np(pthread_self(), sizeof(l->cpus),
				       &l->cpus);
}

static void *worker(void *data)
{
	Loop *l = data;
	struct fuse_buf buf = {0};
	int cpu = -2; /* not pinned yet */

	g_mutex_lock(&l->lock);
	l->starting--;
	while (!l->stopping) {
		Slot *s = NULL;

		for (unsigned i = 0; i < l->n_slots && !s; i++)
			if (l->slots[i].holder == 0)
				s = &l->slots[i];
		if (!s && l->watched) {
			l->idle++;
			g_cond_wait(&l->idle_cond, &l->lock);
			l->idle--;
			continue;
		}
		if (!s && !(s = watch_locked(l)))
			continue;
		/* This thread holds @s now. */
		s->holder = ++l->threads_seen;
		s->busy = FALSE;
		__atomic_store_n(&s->busy_at, 0, __ATOMIC_RELAXED);
		s->seen = s->handled;
		find_watcher_locked(l);
		if (s->cpu != cpu) {
			cpu = s->cpu;
			pin(l, cpu);
		}
		hold_locked(l, s, s->holder, &buf);
	}
	fuse_session_exit(l->se);
	if (eventfd_write(l->end_fd, 1) < 0)
		g_warning("cannot end the FUSE loop: %s", g_strerror(errno));
	g_cond_broadcast(&l->idle_cond);
	g_cond_broadcast(&l->watch_cond);
	g_cond_broadcast(&l->rest_cond);
	g_mutex_unlock(&l->lock);
	free(buf.mem);
	return NULL;
}

/* One slot per CPU this process may run on, up to @max (at least one,
 * not pinned when it is the only one). */
static unsigned make_slots(Loop *l, unsigned max)
{
	unsigned n = 0;

	l->slots = g_new0(Slot, MAX(max, 1));
	if (sched_getaffinity(0, sizeof(l->cpus), &l->cpus) != 0)
		CPU_ZERO(&l->cpus);
	for (int cpu = 0; cpu < CPU_SETSIZE && n < max && max > 1; cpu++)
		if (CPU_ISSET(cpu, &l->cpus))
			l->slots[n++].cpu = cpu;
	if (n <= 1) {
		n = 1;
		l->slots[0].cpu = -1;
	}
	return n;
}

int fs_loop_run(struct fuse_session *se, unsigned max_threads, unsigned spin_us,
		void (*on_end)(void *data), void *data)
{
	Loop l = {.se = se,
		  .fd = fuse_session_fd(se),
		  .spin_us = spin_us,
		  .max_threads = MAX(max_threads, 2)};
	int flags = fcntl(l.fd, F_GETFL);
	sigset_t ending, old;
	gboolean started;

	l.end_fd = eventfd(0, EFD_CLOEXEC);
	if (l.end_fd < 0)
		return -errno;
	if (flags < 0 || fcntl(l.fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		close(l.end_fd);
		return -errno;
	}
	/* A thread beside the holders watches them. */
	l.n_slots = make_slots(&l, MIN(l.max_threads - 1, MAX_SLOTS));
	g_mutex_init(&l.lock);
	g_cond_init(&l.idle_cond);
	g_cond_init(&l.watch_cond);
	g_cond_init(&l.rest_cond);
	l.threads = g_array_new(FALSE, FALSE, sizeof(pthread_t));

	/* Each thread takes a free slot and starts the next (find_watcher),
	 * until one finds none and watches. */
	g_mutex_lock(&l.lock);
	start_worker_locked(&l);
	started = l.threads->len > 0;
	g_mutex_unlock(&l.lock);

	/* A signal (its handler ends the session) interrupts the wait; it
	 * is let in only there, so none comes between the check and it. */
	sigemptyset(&ending);
	sigaddset(&ending, SIGHUP);
	sigaddset(&ending, SIGINT);
	sigaddset(&ending, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &ending, &old);
	while (started && !fuse_session_exited(se)) {
		struct pollfd end = {l.end_fd, POLLIN, 0};

		ppoll(&end, 1, NULL, &old);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (on_end)
		on_end(data);

	g_mutex_lock(&l.lock);
	g_atomic_int_set(&l.stopping, TRUE);
	g_cond_broadcast(&l.idle_cond);
	g_cond_broadcast(&l.watch_cond);
	g_cond_broadcast(&l.rest_cond);
	if (eventfd_write(l.end_fd, 1) < 0)
		g_warning("cannot end the FUSE loop: %s", g_strerror(errno));
	while (l.threads->len > 0) {
		pthread_t thread = g_array_index(l.threads, pthread_t, 0);

		g_array_remove_index_fast(l.threads, 0);
		g_mutex_unlock(&l.lock);
		pthread_join(thread, NULL);
		g_mutex_lock(&l.lock);
	}
	g_mutex_unlock(&l.lock);

	g_array_free(l.threads, TRUE);
	g_free(l.slots);
	g_cond_clear(&l.rest_cond);
	g_cond_clear(&l.watch_cond);
	g_cond_clear(&l.idle_cond);
	g_mutex_clear(&l.lock);
	close(l.end_fd);
	fcntl(l.fd, F_SETFL, flags);
	return l.error ? l.error : started ? 0 : -EAGAIN;
}

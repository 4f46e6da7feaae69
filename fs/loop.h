/* fs/loop.h — the FUSE request loop: one reader at a time that polls.
 *
 * libfuse's multi-threaded loop puts every idle thread to sleep in read()
 * on /dev/fuse, so each request costs a wake-up of a sleeping thread, on
 * another CPU more often than not. Where waking an idle CPU is dear (a VM
 * without guest halt-polling: tens of microseconds each), a tree walk
 * that opens thousands of cached files spends most of its time there.
 *
 * Here exactly one thread reads the device at a time, and handles what it
 * reads itself. After a request it keeps looking for the next one for
 * @spin_us without sleeping, so a process that opens file after file finds
 * it awake; then it sleeps in poll(). A request that waits (on the
 * network, on a lock) is noticed by an idle thread, which takes over
 * reading (loop.c), starting more threads up to @max_threads.
 */
#ifndef IMAPFS_FS_LOOP_H
#define IMAPFS_FS_LOOP_H

#include <fuse_lowlevel.h>

/* Runs until the session ends (unmount, or a signal handled by
 * fuse_set_signal_handlers()): 0, or a negative errno if reading the
 * device failed. @on_end (nullable) runs then, on this thread, before the
 * threads handling requests are joined: to make those that wait give up. */
int fs_loop_run(struct fuse_session *se, unsigned max_threads, unsigned spin_us,
		void (*on_end)(void *data), void *data);

#endif

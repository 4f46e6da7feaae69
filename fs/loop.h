/* fs/loop.h — the FUSE request loop: a polling reader on each CPU.
 *
 * libfuse's multi-threaded loop puts every idle thread to sleep in read()
 * on /dev/fuse, so each request costs a wake-up of a sleeping thread, on
 * another CPU more often than not, and so does the answer for the process
 * that asked. Where waking another CPU is dear (a VM without guest
 * halt-polling: tens of microseconds each), a tree walk that opens
 * thousands of cached files spends most of its time there.
 *
 * Here one thread per CPU (up to 16, and fewer than @max_threads) is
 * pinned there and reads the device, answering what it reads itself.
 * After a request from its CPU it keeps polling for @spin_us, yielding
 * the CPU between polls, so a process that blocks on a request is
 * answered on its own CPU by the next thread to run there (loop.c).
 * Then it sleeps. A request that waits (on the network, on a lock) is
 * noticed by an idle thread, which takes that thread's place, starting
 * more threads up to @max_threads.
 */
#ifndef IMAPFS_FS_LOOP_H
#define IMAPFS_FS_LOOP_H

#include <fuse_lowlevel.h>

/* Runs until the session ends (unmount, or a signal handled by
 * fuse_set_signal_handlers()): 0, or a negative errno if reading the
 * device or setting up failed (-EAGAIN: no thread started). @on_end (nullable) runs then, on this thread, before the
 * threads handling requests are joined: to make those that wait give up. */
int fs_loop_run(struct fuse_session *se, unsigned max_threads, unsigned spin_us,
		void (*on_end)(void *data), void *data);

#endif

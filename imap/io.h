/* imap/io.h — the imap-io thread (private to imap/).
 *
 * One GThread running a GMainLoop on its own GMainContext. Every socket,
 * SSL object, parser and queue of a pool is used only from this thread;
 * other threads reach it through imap_io_invoke().
 */
#ifndef IMAPFS_IMAP_IO_H
#define IMAPFS_IMAP_IO_H

#include <glib.h>

typedef struct ImapIo ImapIo;

/* Starts the thread. Never fails (GLib aborts if threads cannot start). */
ImapIo *imap_io_new(void);

/* Stops the loop after closures already posted have run, joins the thread
 * and drops the context. Sources still attached are destroyed (their
 * destroy notifies run on the calling thread). NULL-safe. Not from the
 * imap-io thread. */
void imap_io_free(ImapIo *io);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImapIo, imap_io_free)

/* (transfer none) The context that the thread iterates. */
GMainContext *imap_io_context(ImapIo *io);

/* TRUE when called on the imap-io thread. */
gboolean imap_io_is_current(ImapIo *io);

/* Posts @func(@data) to run once on the imap-io thread, in posting order.
 * Any thread, including the imap-io thread itself: the call is never run
 * inline, so a callback may post without re-entering the caller. @destroy
 * (nullable) runs after @func, or when the context goes away without
 * having run it. */
void imap_io_invoke(ImapIo *io, GSourceFunc func, gpointer data,
		    GDestroyNotify destroy);

#endif

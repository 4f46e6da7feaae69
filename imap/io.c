/* imap/io.c — the imap-io thread.
 *
 * A GThread iterating a private GMainContext. Closures are posted as idle
 * sources attached to that context rather than with
 * g_main_context_invoke(): invoke would run the closure inline when the
 * caller already owns the context (a done callback submitting a follow-up
 * command), re-entering code in the middle of a dispatch.
 */
#include "imap/io.h"

struct ImapIo {
	GMainContext *context;
	GMainLoop *loop;
	GThread *thread;
};

static gpointer io_thread_main(gpointer data)
{
	ImapIo *io = data;

	g_main_context_push_thread_default(io->context);
	g_main_loop_run(io->loop);
	g_main_context_pop_thread_default(io->context);
	return NULL;
}

ImapIo *imap_io_new(void)
{
	ImapIo *io = g_new0(ImapIo, 1);

	io->context = g_main_context_new();
	io->loop = g_main_loop_new(io->context, FALSE);
	io->thread = g_thread_new("imap-io", io_thread_main, io);
	return io;
}

GMainContext *imap_io_context(ImapIo *io)
{
	return io->context;
}

gboolean imap_io_is_current(ImapIo *io)
{
	return g_thread_self() == io->thread;
}

void imap_io_invoke(ImapIo *io, GSourceFunc func, gpointer data,
		    GDestroyNotify destroy)
{
	GSource *source = g_idle_source_new();

	g_source_set_priority(source, G_PRIORITY_DEFAULT);
	g_source_set_callback(source, func, data, destroy);
	g_source_set_static_name(source, "imap-io invoke");
	g_source_attach(source, io->context);
	g_source_unref(source);
}

static gboolean io_quit(gpointer data)
{
	ImapIo *io = data;

	g_main_loop_quit(io->loop);
	return G_SOURCE_REMOVE;
}

void imap_io_free(ImapIo *io)
{
	if (io == NULL)
		return;
	g_return_if_fail(!imap_io_is_current(io));

	imap_io_invoke(io, io_quit, io, NULL);
	g_thread_join(io->thread);
	g_main_loop_unref(io->loop);
	g_main_context_unref(io->context);
	g_free(io);
}

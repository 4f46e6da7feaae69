"""Helpers shared by the write tests (flags, move, unlink, mkdir, append,
restore, hostile names, fallbacks, two mounts).

The witness of conftest.py EXAMINEs a mailbox once and then reuses the
selection; after imapfs changed something the helpers here re-EXAMINE so
that what they report is the server's state now.
"""

import errno
import hashlib
import os
import re
import subprocess
import time

import imapfs_samplemail as sm
import imapfs_testserver as ts


def sha(b):
	return hashlib.sha256(b).hexdigest()


def fresh(w, mbox):
	"""Messages of MBOX as the server has them now."""
	w.selected = None
	return w.messages(mbox)


def uids(w, mbox):
	return [r["uid"] for r in fresh(w, mbox)]


def body(w, mbox, uid):
	w.selected = None
	return w.body(mbox, uid)


def names(w):
	"""Set of Unicode mailbox names the server lists."""
	return {name for flags, delim, name in w.list()}


def raw_list(w):
	"""The undecoded LIST "" "*" lines (bytes) of the server."""
	typ, data = w.c.list('""', "*")
	assert typ == "OK", data
	out = []
	for item in data:
		if isinstance(item, tuple):
			out.append(item[0] + item[1])
		else:
			out.append(item)
	return out


def dir_name(mbox, sep="."):
	"""Relative directory path imapfs shows for mailbox MBOX."""
	return "/".join(sm.mailbox_component_name(p) for p in mbox.split(sep))


def file_name(rec):
	return sm.message_file_name(rec["uid"], rec["subject"])


def errno_of(fn, *args, **kw):
	"""The errno FN raised, or 0."""
	try:
		fn(*args, **kw)
	except OSError as e:
		return e.errno
	return 0


def run(argv, timeout=20, **kw):
	return subprocess.run(argv, stdout=subprocess.PIPE,
			      stderr=subprocess.PIPE, timeout=timeout, **kw)


def wait_until(cond, timeout=5.0, step=0.05):
	"""Poll COND until it returns something true; returns its last value."""
	deadline = time.monotonic() + timeout
	while True:
		v = cond()
		if v or time.monotonic() > deadline:
			return v
		time.sleep(step)


def new_log(m, since):
	"""imapfs stderr written after offset SINCE."""
	return m.stderr()[since:]


def log_mark(m):
	return len(m.stderr())


COMMAND = re.compile(r"\[conn (\d+)\] C: \S+ (.*)")


def by_mailbox(log):
	"""{mailbox: [commands sent while it was selected]}, from the trace.
	The IDLE watcher's EXAMINE INBOX counts as a look at INBOX (mount
	with -o noidle where that matters)."""
	selected, out = {}, {}
	for m in COMMAND.finditer(log):
		conn, cmd = m.group(1), m.group(2)
		word = cmd.split(" ", 1)
		if word[0] in ("SELECT", "EXAMINE"):
			selected[conn] = word[1].strip('"')
		elif conn in selected:
			out.setdefault(selected[conn], []).append(cmd)
	return out


class Writer:
	"""A read-write imaplib session for setting up server state that
	imapfs must cope with (the witness only EXAMINEs)."""

	def __init__(self, server, user):
		self.c = ts.connect(server, user)

	def close(self):
		try:
			self.c.logout()
		except Exception:
			pass

	def select(self, mbox):
		typ, data = self.c.select(sm.quote_mailbox(mbox))
		assert typ == "OK", data

	def store(self, mbox, uid, op, flags):
		self.select(mbox)
		typ, data = self.c.uid("STORE", str(uid), op, flags)
		assert typ == "OK", data

	def expunge(self, mbox, uid):
		self.store(mbox, uid, "+FLAGS.SILENT", r"(\Deleted)")
		typ, data = self.c.uid("EXPUNGE", str(uid))
		assert typ == "OK", data

	def create(self, mbox):
		sm.create(self.c, mbox)

	def append(self, mbox, sample):
		return sm.append(self.c, mbox, sample)


def strerror(e):
	return "%s (%s)" % (errno.errorcode.get(e, e), os.strerror(e)) \
		if e else "success"


class CutAfterCommand:
	"""A plaintext TCP proxy that forwards the first command holding
	WORD to the server, holds back the answer, and cuts that
	connection: an answer lost after the server acted. With
	forward=False the command is dropped instead: lost before the
	server saw it."""

	def __init__(self, port, word, forward=True):
		import socket
		import threading

		self.upstream = ("127.0.0.1", port)
		self.word = word
		self.forward = forward
		self.sock = socket.socket()
		self.sock.bind(("127.0.0.1", 0))
		self.sock.listen(16)
		self.port = self.sock.getsockname()[1]
		self.cut = threading.Event()
		self.lock = threading.Lock()
		self.stopping = False
		threading.Thread(target=self._accept, daemon=True).start()

	def _accept(self):
		while not self.stopping:
			try:
				c, _ = self.sock.accept()
			except OSError:
				return
			if self._forwards(c):
				self._forward(c)

	def _forwards(self, c):
		return True

	def _forward(self, c):
		import socket
		import threading

		u = socket.create_connection(self.upstream)
		conn = {"pair": (c, u), "held": False}
		for a, b, up in ((c, u, True), (u, c, False)):
			threading.Thread(target=self._pump, args=(a, b, up, conn),
					 daemon=True).start()

	def _armed(self):
		return True

	def _holds(self, conn):
		return conn["held"]

	def _answer_goes_on(self):
		return False    # the answer is lost

	def _on_command(self, data, to_server, conn):
		"""The command was seen: TRUE to end this pump."""
		import socket
		import time

		if self.forward:
			to_server.sendall(data)
			time.sleep(1.0)   # the server acts
		for s in conn["pair"]:
			s.shutdown(socket.SHUT_RDWR)
		return True

	def _pump(self, a, b, up, conn):
		try:
			while True:
				data = a.recv(65536)
				if not data:
					break
				if not up and self._holds(conn) and \
				   not self._answer_goes_on():
					return
				with self.lock:
					seen = up and self.word in data and \
						self._armed() and \
						not self.cut.is_set()
					if seen:
						self.cut.set()
						conn["held"] = True
				if not seen:
					b.sendall(data)
				elif self._on_command(data, b, conn):
					return
		except OSError:
			pass
		for s in conn["pair"]:
			try:
				s.shutdown(2)
			except OSError:
				pass

	def mount(self, mounter, user, opts=(), debug=False, **kw):
		"""Mounts USER's account through the proxy (plaintext)."""
		kw.setdefault("max_conns", 2)
		return mounter.mount(user, debug=debug, **kw,
				     opts=["tls=none", "allow_plaintext_auth",
					   *opts],
				     url="imap://%s@127.0.0.1:%d" %
				     (user, self.port))

	def stop(self):
		self.stopping = True
		self.sock.close()


class Spoil:
	"""A plaintext proxy that spoils the first command holding WORD
	(with NEW in its place): a server that answers other than it
	should, or BAD (one that offers an extension but refuses it)."""

	def __new__(cls, port, word, new):
		class Proxy(CutAfterCommand):
			def _on_command(self, data, to_server, conn):
				to_server.sendall(data.replace(word, new))
				return False

			def _holds(self, conn):
				return False

		return Proxy(port, word)


class HoldAfterCommand(CutAfterCommand):
	"""Once armed, holds back the server's answers on the connection
	that sends the next command holding WORD (with every=True, on every
	connection), until released: a server that has gone quiet."""

	def __init__(self, port, word, every=False):
		import threading

		self.armed = threading.Event()
		self.released = threading.Event()
		self.every = every
		super().__init__(port, word)

	def _armed(self):
		return self.armed.is_set()

	def _holds(self, conn):
		return conn["held"] or (self.every and self.armed.is_set())

	def _answer_goes_on(self):
		self.released.wait()
		return True

	def _on_command(self, data, to_server, conn):
		to_server.sendall(data)
		return False

	def stop(self):
		self.released.set()
		super().stop()


class HoldCommand(CutAfterCommand):
	"""Holds the first command holding WORD back from the server until
	released, then passes it on and goes on as a plain proxy: a command
	the server sees late."""

	def __init__(self, port, word):
		import threading

		self.released = threading.Event()
		super().__init__(port, word)

	def _holds(self, conn):
		return False

	def _on_command(self, data, to_server, conn):
		self.released.wait()
		to_server.sendall(data)
		return False

	def stop(self):
		self.released.set()
		super().stop()


class RefuseLogins(CutAfterCommand):
	"""Answers the first N logins itself with NO [UNAVAILABLE], as
	Dovecot does when its password database does not answer, then
	forwards them: a server that cannot check logins for a while."""

	def __init__(self, port, n):
		self.left = n
		super().__init__(port, b" AUTHENTICATE ")

	def _armed(self):
		return self.left > 0

	def _holds(self, conn):
		return False

	def _on_command(self, data, to_server, conn):
		self.left -= 1
		self.cut.clear()
		tag = data.split(b" ", 1)[0]
		conn["pair"][0].sendall(tag + b" NO [UNAVAILABLE] Temporary "
					b"authentication failure.\r\n")
		return False


def listed_on_another_connection(proxy, path, top):
	"""Lists TOP (a mailbox's directory) while a read of PATH (through
	a HoldCommand(..., b"BODY.PEEK[]") PROXY) holds the connection that
	has PATH's mailbox selected: TOP's mailbox is then selected on
	another connection, which keeps it. Returns the listing."""
	import threading

	reader = threading.Thread(target=lambda: open(path, "rb").read())
	reader.start()
	try:
		assert wait_until(proxy.cut.is_set, timeout=10), "nothing held"
		return os.listdir(top)
	finally:
		proxy.released.set()
		reader.join(30)


class QuietAfterFirst(CutAfterCommand):
	"""Forwards the first connection (imapfs's login at mount, which its
	pool keeps); later ones are accepted and left silent: a server that
	stopped answering while imapfs connects again."""

	def __init__(self, port):
		self.quiet = []
		super().__init__(port, b"")

	def _forwards(self, c):
		if self.cut.is_set():
			self.quiet.append(c)
			return False
		self.cut.set()
		return True

	def _armed(self):
		return False    # nothing is cut on the forwarded connection

	def stop(self):
		super().stop()
		for c in self.quiet:
			c.close()

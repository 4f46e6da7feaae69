"""Helpers shared by the write tests (flags, move, unlink, mkdir, append,
restore, hostile names, fallbacks, two mounts).

The witness of conftest.py EXAMINEs a mailbox once and then reuses the
selection; after imapfs changed something the helpers here re-EXAMINE so
that what they report is the server's state now.
"""

import errno
import hashlib
import os
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

	def create(self, mbox):
		sm.create(self.c, mbox)

	def append(self, mbox, sample):
		return sm.append(self.c, mbox, sample)


def strerror(e):
	return "%s (%s)" % (errno.errorcode.get(e, e), os.strerror(e)) \
		if e else "success"

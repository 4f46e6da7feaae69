"""Two mounts of one account at once (separate caches): what one moves or
removes, the other reads.  No crash, and a read returns the right bytes
or fails (ENOENT, EIO, ESTALE), never wrong bytes."""

import errno
import os
import threading
import time

import pytest

from writehelpers import body, errno_of, fresh, sha, wait_until

OK_ERRORS = (errno.ENOENT, errno.EIO, errno.ESTALE)


@pytest.fixture
def two(account, mounter):
	a = mounter.mount(account["user"], max_conns=2)
	b = mounter.mount(account["user"], max_conns=2)
	assert a.cache_dir != b.cache_dir
	return a, b


def _expected(imap, mbox):
	"""{Message-ID: sha256 of the bytes} of MBOX."""
	return {r["message_id"]: sha(body(imap, mbox, r["uid"]))
		for r in fresh(imap, mbox)}


def _read(path):
	with open(path, "rb") as f:
		return f.read()


def _message_id(data):
	for line in data.split(b"\r\n"):
		if line.lower().startswith(b"message-id:"):
			return line.split(b":", 1)[1].strip().decode()
		if not line:
			break
	return None


def _check_read(path, by_sha, bad):
	"""Read PATH; record in BAD anything but known bytes or an allowed
	error."""
	try:
		data = _read(path)
	except OSError as e:
		if e.errno not in OK_ERRORS:
			bad.append("%s: %s" % (path, os.strerror(e.errno)))
		return None
	if sha(data) not in by_sha:
		bad.append("%s: %d wrong bytes (Message-ID %s)" %
			   (path, len(data), _message_id(data)))
	return data


def test_reads_while_other_mount_moves(two, imap):
	a, b = two
	exp = _expected(imap, "INBOX")
	good = set(exp.values())
	recs = fresh(imap, "INBOX")
	names = [r["name"] for r in recs]
	assert sorted(os.listdir(os.path.join(a.path, "INBOX"))) == \
		sorted(names)
	bad = []
	stop = threading.Event()

	def reader():
		while not stop.is_set():
			for n in names:
				_check_read(os.path.join(a.path, "INBOX", n),
					    good, bad)
	t = threading.Thread(target=reader)
	t.start()
	try:
		for n in names:
			os.rename(os.path.join(b.path, "INBOX", n),
				  os.path.join(b.path, "Other", n))
			time.sleep(0.02)
	finally:
		stop.set()
		t.join(15)
	assert not t.is_alive()
	assert not bad, bad
	assert fresh(imap, "INBOX") == []


def test_other_mount_sees_moved_messages_with_right_bytes(account, mounter,
							 imap):
	"""With list_ttl=1, mount A lists what mount B moved in within a few
	seconds, and reads it right."""
	a = mounter.mount(account["user"], max_conns=2, opts=["list_ttl=1"])
	b = mounter.mount(account["user"], max_conns=2)
	exp = _expected(imap, "INBOX")
	exp.update(_expected(imap, "Other"))
	os.listdir(os.path.join(a.path, "Other"))
	for r in fresh(imap, "INBOX")[:3]:
		os.rename(os.path.join(b.path, "INBOX", r["name"]),
			  os.path.join(b.path, "Other", r["name"]))
	want = {r["name"] for r in fresh(imap, "Other")}
	assert len(want) == 6
	got = wait_until(lambda: set(os.listdir(os.path.join(
		a.path, "Other"))) == want, timeout=15)
	assert got, "mount A lists %r, the server %r" % (
		sorted(os.listdir(os.path.join(a.path, "Other"))), sorted(want))
	for n in want:
		data = _read(os.path.join(a.path, "Other", n))
		assert exp[_message_id(data)] == sha(data), n


def test_open_file_while_other_mount_moves_it(two, imap):
	a, b = two
	rec = fresh(imap, "INBOX")[0]
	raw = body(imap, "INBOX", rec["uid"])
	with open(os.path.join(a.path, "INBOX", rec["name"]), "rb") as f:
		head = f.read(64)
		os.rename(os.path.join(b.path, "INBOX", rec["name"]),
			  os.path.join(b.path, "Other", rec["name"]))
		try:
			rest = f.read()
		except OSError as e:
			assert e.errno in OK_ERRORS, os.strerror(e.errno)
		else:
			assert head + rest == raw


def test_read_after_other_mount_removed_it(two, imap):
	a, b = two
	rec = fresh(imap, "Other")[1]
	path_a = os.path.join(a.path, "Other", rec["name"])
	assert os.path.exists(path_a)
	os.unlink(os.path.join(b.path, "Other", rec["name"]))
	raw_ids = {r["message_id"] for r in fresh(imap, "Trash")}
	assert rec["message_id"] in raw_ids
	bad = []
	# The message lives on in Trash, so its bytes are still right; a
	# read of the old name may also fail.
	_check_read(path_a, {sha(body(imap, "Trash",
				      fresh(imap, "Trash")[0]["uid"]))}, bad)
	assert not bad, bad


def test_both_mounts_move_same_message(two, imap):
	a, b = two
	rec = fresh(imap, "INBOX")[2]
	raw = body(imap, "INBOX", rec["uid"])
	for m in (a, b):
		assert os.path.exists(os.path.join(m.path, "INBOX",
						   rec["name"]))
	errs = [None, None]
	start = threading.Barrier(2)

	def mv(i, m, dest):
		start.wait()
		errs[i] = errno_of(os.rename,
				   os.path.join(m.path, "INBOX", rec["name"]),
				   os.path.join(m.path, dest, rec["name"]))
	ts = [threading.Thread(target=mv, args=(0, a, "Other")),
	      threading.Thread(target=mv, args=(1, b, "Empty"))]
	for t in ts:
		t.start()
	for t in ts:
		t.join(15)
	assert all(e in (0,) + OK_ERRORS for e in errs), errs
	assert 0 in errs, errs
	copies = [(mb, r) for mb in ("INBOX", "Other", "Empty")
		  for r in fresh(imap, mb)
		  if r["message_id"] == rec["message_id"]]
	# Never none, never left in INBOX, all byte-identical.  (Two
	# sessions' concurrent UID MOVE of one UID both succeed on Dovecot,
	# which copies before it expunges: two copies are the server's
	# doing, and imapfs cannot prevent them across mounts.)
	assert copies
	for mb, r in copies:
		assert mb != "INBOX"
		assert body(imap, mb, r["uid"]) == raw


def test_rm_all_in_one_mount_while_other_greps(two, imap):
	a, b = two
	exp = _expected(imap, "Other")
	good = set(exp.values())
	names = [r["name"] for r in fresh(imap, "Other")]
	bad = []
	stop = threading.Event()

	def reader():
		while not stop.is_set():
			for n in names:
				_check_read(os.path.join(a.path, "Other", n),
					    good, bad)
	t = threading.Thread(target=reader)
	t.start()
	try:
		for n in names:
			os.unlink(os.path.join(b.path, "Other", n))
	finally:
		stop.set()
		t.join(15)
	assert not bad, bad
	assert fresh(imap, "Other") == []
	assert len(fresh(imap, "Trash")) == 3

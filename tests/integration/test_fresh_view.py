"""A connection sees the messages that came into its selected mailbox
since it selected it: the server shows them to a session only at the end
of a command, and answers a UID command on one it has not shown yet with
OK, doing nothing. So rm, setfattr and reads of a message just moved in
must act on it, on the server."""

import os
import threading

import pytest

import conftest
from writehelpers import body, fresh, sha


@pytest.fixture
def user(server, new_user):
	u = new_user("view")
	conftest.seed_account(server, u, {"INBOX": 4, "Trash": 3, "Empty": 0},
			      seed=71)
	return u


def _trash(w):
	return [name for flags, delim, name in w.list()
		if "\\trash" in {f.lower() for f in flags}][0]


def _open_connections(m):
	"""Reads every message of INBOX and Trash at once, so that imapfs
	opens more than one connection."""
	def read_all(mbox):
		top = os.path.join(m.path, mbox)
		for name in os.listdir(top):
			with open(os.path.join(top, name), "rb") as f:
				f.read()

	threads = [threading.Thread(target=read_all, args=(mbox,))
		   for mbox in ("INBOX", "Trash", "INBOX")]
	for t in threads:
		t.start()
	for t in threads:
		t.join(30)


def _moved_into_listed_mailbox(m, w):
	"""ls INBOX; ls Empty; mv INBOX/F Empty/: one connection selected
	Empty while it was empty, and another moves F in. Returns (path of
	F in Empty, F's bytes)."""
	rec = fresh(w, "INBOX")[0]
	raw = body(w, "INBOX", rec["uid"])
	_open_connections(m)
	d = os.path.join(m.path, "Empty")
	assert rec["name"] in os.listdir(os.path.join(m.path, "INBOX"))
	assert os.listdir(d) == []
	os.rename(os.path.join(m.path, "INBOX", rec["name"]),
		  os.path.join(d, rec["name"]))
	names = os.listdir(d)
	assert len(names) == 1
	return os.path.join(d, names[0]), raw


def test_rm_right_after_mv_into_a_listed_mailbox(user, mounter, witness):
	m = mounter.mount(user)
	w = witness(user)
	path, raw = _moved_into_listed_mailbox(m, w)
	os.unlink(path)
	assert fresh(w, "Empty") == [], "rm said yes, but the message stayed"
	assert sha(raw) in [sha(body(w, _trash(w), r["uid"]))
			    for r in fresh(w, _trash(w))]
	assert os.listdir(os.path.join(m.path, "Empty")) == []


def test_setfattr_right_after_mv_into_a_listed_mailbox(user, mounter,
						     witness):
	m = mounter.mount(user)
	w = witness(user)
	path, raw = _moved_into_listed_mailbox(m, w)
	os.setxattr(path, "user.imap.flags", b"\\Flagged")
	recs = fresh(w, "Empty")
	assert len(recs) == 1
	assert recs[0]["flags"] == {"\\Flagged"}


def test_read_right_after_mv_into_a_listed_mailbox(user, mounter, witness):
	m = mounter.mount(user)
	w = witness(user)
	path, raw = _moved_into_listed_mailbox(m, w)
	with open(path, "rb") as f:
		assert f.read() == raw


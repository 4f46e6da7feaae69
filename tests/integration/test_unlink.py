"""rm: a message moves to the \\Trash special-use mailbox; rm inside
Trash (or anywhere with -o rm=expunge) expunges that UID only; an open
file stays readable until closed."""

import errno
import os

import pytest

from writehelpers import body, errno_of, fresh, HoldCommand, \
	listed_on_another_connection, run, sha, Writer


def _trash_name(imap):
	for flags, delim, name in imap.list():
		if "\\trash" in {f.lower() for f in flags}:
			return name
	pytest.fail("the server lists no \\Trash mailbox")


def test_rm_moves_to_trash(mnt, imap):
	trash = _trash_name(imap)
	rec = fresh(imap, "INBOX")[1]
	raw = body(imap, "INBOX", rec["uid"])
	n = len(fresh(imap, "INBOX"))
	p = run(["rm", os.path.join(mnt.path, "INBOX", rec["name"])])
	assert p.returncode == 0, p.stderr
	left = fresh(imap, "INBOX")
	assert rec["uid"] not in {r["uid"] for r in left}
	assert len(left) == n - 1
	t = fresh(imap, trash)
	assert len(t) == 1
	assert sha(body(imap, trash, t[0]["uid"])) == sha(raw)
	assert t[0]["flags"] == rec["flags"]


def test_rm_removes_name(mnt, imap):
	rec = fresh(imap, "INBOX")[0]
	path = os.path.join(mnt.path, "INBOX", rec["name"])
	os.unlink(path)
	assert not os.path.exists(path)
	assert rec["name"] not in os.listdir(os.path.join(mnt.path, "INBOX"))


def test_rm_shows_message_in_trash_dir(mnt, imap):
	trash = _trash_name(imap)
	rec = fresh(imap, "INBOX")[0]
	os.unlink(os.path.join(mnt.path, "INBOX", rec["name"]))
	t = fresh(imap, trash)
	assert len(t) == 1
	assert os.listdir(os.path.join(mnt.path, trash)) == [t[0]["name"]]


def test_rm_in_trash_expunges(mnt, imap):
	trash = _trash_name(imap)
	rec = fresh(imap, "INBOX")[0]
	os.unlink(os.path.join(mnt.path, "INBOX", rec["name"]))
	t = fresh(imap, trash)
	assert len(t) == 1
	assert t[0]["name"] in os.listdir(os.path.join(mnt.path, trash))
	p = run(["rm", os.path.join(mnt.path, trash, t[0]["name"])])
	assert p.returncode == 0, p.stderr
	assert fresh(imap, trash) == []
	# Gone everywhere: no mailbox holds its Message-ID.
	for flags, delim, name in imap.list():
		if {"\\noselect", "\\nonexistent"} & {f.lower() for f in flags}:
			continue
		ids = [r["message_id"] for r in fresh(imap, name)]
		assert rec["message_id"] not in ids, name


def test_rm_in_trash_of_a_message_just_moved_there(server, account, mounter,
						   imap):
	"""Trash is selected on a connection of imapfs's before a message
	comes to it (ls), and that connection must see the newcomer before
	it expunges it: else the server expunges nothing, says OK, and the
	message is back at the next refresh."""
	trash = _trash_name(imap)
	recs = fresh(imap, "INBOX")
	proxy = HoldCommand(server["imap_port"], b"BODY.PEEK[]")
	try:
		m = proxy.mount(mounter, account["user"], max_conns=4)
		inbox = os.path.join(m.path, "INBOX")
		assert listed_on_another_connection(
			proxy, os.path.join(inbox, recs[1]["name"]),
			os.path.join(m.path, trash)) == []
		os.unlink(os.path.join(inbox, recs[0]["name"]))
		p = run(["sh", "-c", 'rm "$1"/*', "rm",
			 os.path.join(m.path, trash)])
		assert p.returncode == 0, p.stderr
	finally:
		proxy.stop()
	assert fresh(imap, trash) == []


def test_rm_expunge_option_expunges(account, mounter, imap):
	trash = _trash_name(imap)
	m = mounter.mount(account["user"], max_conns=2,
			  opts=["rm=expunge"])
	rec = fresh(imap, "Other")[1]
	os.unlink(os.path.join(m.path, "Other", rec["name"]))
	assert rec["uid"] not in {r["uid"] for r in fresh(imap, "Other")}
	assert len(fresh(imap, "Other")) == 2
	assert fresh(imap, trash) == []


def test_rm_expunges_only_that_uid(account, server, mounter, imap):
	"""Another client's \\Deleted messages survive an rm (no bare
	EXPUNGE)."""
	w = Writer(server, account["user"])
	try:
		recs = fresh(imap, "Other")
		w.store("Other", recs[0]["uid"], "+FLAGS", "(\\Deleted)")
	finally:
		w.close()
	m = mounter.mount(account["user"], max_conns=2,
			  opts=["rm=expunge"])
	os.unlink(os.path.join(m.path, "Other", recs[1]["name"]))
	left = fresh(imap, "Other")
	assert [r["uid"] for r in left] == [recs[0]["uid"], recs[2]["uid"]]
	assert "\\Deleted" in left[0]["flags"]


def test_rm_to_trash_expunges_only_that_uid(account, server, mounter,
					    imap):
	w = Writer(server, account["user"])
	try:
		recs = fresh(imap, "Other")
		w.store("Other", recs[2]["uid"], "+FLAGS", "(\\Deleted)")
	finally:
		w.close()
	m = mounter.mount(account["user"], max_conns=2)
	os.unlink(os.path.join(m.path, "Other", recs[0]["name"]))
	left = fresh(imap, "Other")
	assert [r["uid"] for r in left] == [recs[1]["uid"], recs[2]["uid"]]
	assert "\\Deleted" in left[1]["flags"]


def test_open_file_stays_readable_after_rm(mnt, imap):
	rec = fresh(imap, "INBOX")[2]
	raw = body(imap, "INBOX", rec["uid"])
	path = os.path.join(mnt.path, "INBOX", rec["name"])
	with open(path, "rb") as f:
		os.unlink(path)
		assert not os.path.exists(path)
		assert sha(f.read()) == sha(raw)
		f.seek(len(raw) // 2)
		assert f.read() == raw[len(raw) // 2:]


def test_open_file_stays_readable_after_rm_expunge(account, mounter,
						   imap):
	m = mounter.mount(account["user"], max_conns=2,
			  opts=["rm=expunge"])
	rec = fresh(imap, "INBOX")[3]
	raw = body(imap, "INBOX", rec["uid"])
	path = os.path.join(m.path, "INBOX", rec["name"])
	with open(path, "rb") as f:
		os.unlink(path)
		assert rec["uid"] not in [r["uid"] for r in
					  fresh(imap, "INBOX")]
		assert sha(f.read()) == sha(raw)


def test_rm_missing_is_enoent(mnt, imap):
	n = len(fresh(imap, "INBOX"))
	e = errno_of(os.unlink, os.path.join(mnt.path, "INBOX",
					     "0000009999-none.eml"))
	assert e == errno.ENOENT, os.strerror(e) if e else "success"
	assert len(fresh(imap, "INBOX")) == n


def test_rm_r_of_mailbox_contents(mnt, imap):
	trash = _trash_name(imap)
	recs = fresh(imap, "Other")
	p = run(["sh", "-c", 'rm -f "$1"/*', "sh",
		 os.path.join(mnt.path, "Other")])
	assert p.returncode == 0, p.stderr
	assert fresh(imap, "Other") == []
	assert sorted(r["message_id"] for r in fresh(imap, trash)) == \
		sorted(r["message_id"] for r in recs)
	assert os.listdir(os.path.join(mnt.path, "Other")) == []

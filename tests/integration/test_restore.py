"""rsync backup and restore: rsync -aX from a mailbox directory to disk
and back into an empty mailbox appends each message exactly once, with
its flags and INTERNALDATE; a second run appends nothing."""

import os
import re
import shutil

import pytest

import imapfs_samplemail as sm
from writehelpers import body, fresh, run, sha, Writer


def _rsync(src, dst, *extra):
	p = run(["rsync", "-aX", "--stats"] + list(extra) +
		[src.rstrip("/") + "/", dst.rstrip("/") + "/"], timeout=60)
	assert p.returncode == 0, p.stderr.decode(errors="replace")
	return p.stdout.decode(errors="replace")


def _transferred(stats):
	m = re.search(r"Number of (?:regular )?files transferred: ([\d,]+)",
		      stats)
	assert m, stats
	return int(m.group(1).replace(",", ""))


def _summary(w, mbox):
	"""Sorted (sha256, flags, internaldate) of MBOX's messages."""
	return sorted((sha(body(w, mbox, r["uid"])), sorted(r["flags"]),
		       r["mtime"]) for r in fresh(w, mbox))


@pytest.fixture
def backup(account, mounter, imap, tmp_path):
	"""rsync -aX MNT/Other/ BACKUP/Other/ from a mount that is unmounted
	again; returns the backup directory."""
	m = mounter.mount(account["user"], max_conns=2)
	dst = str(tmp_path / "backup" / "Other")
	os.makedirs(dst)
	_rsync(os.path.join(m.path, "Other"), dst)
	assert mounter.unmount(m) == []
	return dst


def test_backup_has_messages_and_flags(backup, imap):
	recs = fresh(imap, "Other")
	assert sorted(os.listdir(backup)) == sorted(r["name"] for r in recs)
	for r in recs:
		p = os.path.join(backup, r["name"])
		with open(p, "rb") as f:
			data = f.read()
		assert sha(data) == sha(body(imap, "Other", r["uid"]))
		v = os.getxattr(p, "user.imap.flags").decode().split()
		assert set(v) - {"\\Recent"} == r["flags"]
		assert int(os.stat(p).st_mtime) == r["mtime"]


def test_restore_appends_each_once_with_flags_and_date(backup, account,
						       mounter, imap):
	m = mounter.mount(account["user"], max_conns=2)
	_rsync(backup, os.path.join(m.path, "Empty"))
	assert _summary(imap, "Empty") == _summary(imap, "Other")


def test_restore_keeps_backup_names(backup, account, mounter, imap):
	m = mounter.mount(account["user"], max_conns=2)
	_rsync(backup, os.path.join(m.path, "Empty"))
	assert sorted(os.listdir(os.path.join(m.path, "Empty"))) == \
		sorted(os.listdir(backup))


def test_restore_twice_appends_nothing(backup, account, mounter, imap):
	m = mounter.mount(account["user"], max_conns=2)
	_rsync(backup, os.path.join(m.path, "Empty"))
	n = len(fresh(imap, "Empty"))
	assert n == 3
	stats = _rsync(backup, os.path.join(m.path, "Empty"))
	assert len(fresh(imap, "Empty")) == n
	assert _transferred(stats) == 0, stats


def test_restore_twice_after_remount_appends_nothing(backup, account,
						     mounter, imap):
	m = mounter.mount(account["user"], max_conns=2)
	_rsync(backup, os.path.join(m.path, "Empty"))
	assert mounter.unmount(m) == []
	m = mounter.mount(account["user"], max_conns=2)
	stats = _rsync(backup, os.path.join(m.path, "Empty"))
	assert len(fresh(imap, "Empty")) == 3
	assert _transferred(stats) == 0, stats


def test_restore_again_from_a_mount_with_another_cache_appends_nothing(
		backup, account, server, mounter, imap, tmp_path):
	"""The restored messages get other UIDs than the backup's (Empty has
	used UID 1), so their names differ from the backup's; a mount with
	a cache of its own, which knows none of the backup's names, finds
	them by Message-ID, size and bytes: rsync again adds nothing, takes a
	flag changed in the backup, and a third run has nothing to send. A
	second copy of one message in the backup stays a second copy."""
	w = Writer(server, account["user"])
	try:
		w.append("Empty", sm.make_messages(7, 1)[0])
		w.select("Empty")
		w.c.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
		w.c.uid("EXPUNGE", "1")
	finally:
		w.close()
	m = mounter.mount(account["user"], max_conns=2)
	_rsync(backup, os.path.join(m.path, "Empty"))
	assert _summary(imap, "Empty") == _summary(imap, "Other")
	assert not set(r["name"] for r in fresh(imap, "Empty")) & \
		set(os.listdir(backup))
	assert mounter.unmount(m) == []

	first = sorted(os.listdir(backup))[0]
	os.setxattr(os.path.join(backup, first), "user.imap.flags",
		    b"\\Flagged $Again")
	shutil.copy2(os.path.join(backup, first),
		     os.path.join(backup, "0000000099-copy.eml"))
	m = mounter.mount(account["user"], max_conns=2,
			  cache_dir=str(tmp_path / "other-cache"))
	_rsync(backup, os.path.join(m.path, "Empty"))
	recs = fresh(imap, "Empty")
	assert len(recs) == 4
	with open(os.path.join(backup, first), "rb") as f:
		want = sha(f.read())
	assert [r["flags"] - {"\\Recent"} for r in recs
		if sha(body(imap, "Empty", r["uid"])) == want] == \
		[{"\\Flagged", "$Again"}] * 2
	assert _transferred(_rsync(backup, os.path.join(m.path, "Empty"))) == 0


def test_restore_into_other_account(backup, account, new_user, server,
				    mounter, witness, imap):
	import conftest
	user = new_user("restore")
	conftest.seed_account(server, user, {"INBOX": 1, "Restored": 0},
			      seed=9)
	w2 = witness(user)
	m = mounter.mount(user, max_conns=2)
	_rsync(backup, os.path.join(m.path, "Restored"))
	assert _summary(w2, "Restored") == _summary(imap, "Other")
	assert sorted(os.listdir(os.path.join(m.path, "Restored"))) == \
		sorted(os.listdir(backup))
	stats = _rsync(backup, os.path.join(m.path, "Restored"))
	assert len(fresh(w2, "Restored")) == 3
	assert _transferred(stats) == 0, stats


def test_restore_into_nonempty_mailbox_adds_only_missing(backup, account,
							mounter, imap):
	"""Into the source mailbox itself: the names there are the backup's
	names, so rsync sends nothing and nothing is duplicated."""
	m = mounter.mount(account["user"], max_conns=2)
	stats = _rsync(backup, os.path.join(m.path, "Other"))
	assert len(fresh(imap, "Other")) == 3
	assert _transferred(stats) == 0, stats


def test_restore_of_a_backup_with_bare_lfs_adds_nothing_twice(
		backup, account, mounter, imap):
	"""A backup whose files have LF line ends (converted by some tool):
	rsync sends them again, since they differ in size from the CRLF
	messages, but a message already there under that name is not added
	a second time; only the backup's flags are taken."""
	for name in os.listdir(backup):
		path = os.path.join(backup, name)
		with open(path, "rb") as f:
			data = f.read()
		with open(path, "wb") as f:
			f.write(data.replace(b"\r\n", b"\n"))
	first = sorted(os.listdir(backup))[0]
	os.setxattr(os.path.join(backup, first), "user.imap.flags",
		    b"\\Answered \\Flagged")
	before = _summary(imap, "Other")
	m = mounter.mount(account["user"], max_conns=2)
	for _ in range(2):
		stats = _rsync(backup, os.path.join(m.path, "Other"))
		assert _transferred(stats) == 3, stats
	recs = fresh(imap, "Other")
	assert len(recs) == 3
	assert sorted(r["name"] for r in recs) == sorted(os.listdir(backup))
	assert [r["flags"] for r in recs if r["name"] == first] == \
		[{"\\Answered", "\\Flagged"}]
	assert [s[0] for s in _summary(imap, "Other")] == \
		[s[0] for s in before]
	fds = "/proc/%d/fd" % m.proc.pid
	held = [os.readlink(os.path.join(fds, fd)) for fd in os.listdir(fds)]
	assert not [p for p in held if "/new/new-" in p], held

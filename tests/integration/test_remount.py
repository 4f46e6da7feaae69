"""The persistent index: CACHE_DIR/index is written at unmount, a remount
with the same cache_dir shows the same tree, picks up what changed on the
server while nothing was mounted, survives a damaged index file, and
refreshes a known mailbox instead of fetching its metadata again."""

import errno
import os
import re
import signal
import subprocess

import pytest

from conftest import fill_disk, seed_account, small_disk, sm, ts, walk_tree

# A full metadata fetch (with MODSEQ where the server has CONDSTORE), and a
# refresh of the flags (only the changed ones with CONDSTORE).
FULL_FETCH = re.compile(
	r"C: \S+ UID FETCH 1:\* \(UID FLAGS RFC822\.SIZE INTERNALDATE "
	r"BODY\.PEEK\[HEADER\.FIELDS \(SUBJECT FROM MESSAGE-ID\)\]( MODSEQ)?\)")
REFRESH = re.compile(
	r"C: \S+ UID FETCH 1:\* \(UID FLAGS\)( \(CHANGEDSINCE \d+\))?")


def snapshot(root):
	"""{relative path: facts} of everything under ROOT: directories by
	name, files with size, mtime and user.imap.flags."""
	dirs, files = walk_tree(root)
	out = {d: ("dir",) for d in dirs}
	for f in files:
		p = os.path.join(root, f)
		st = os.stat(p)
		flags = os.getxattr(p, "user.imap.flags").decode().split()
		out[f] = ("file", st.st_size, int(st.st_mtime),
			  frozenset(flags) - {"\\Recent"})
	return out


def expected_snapshot(w):
	"""The same shape, from the witness."""
	out = {d: ("dir",) for d in w.expected_dirs()}
	for rel, (mbox, rec) in w.expected_files().items():
		out[rel] = ("file", rec["size"], rec["mtime"],
			    frozenset(rec["flags"]))
	return out


def diff(got, want):
	lines = []
	for k in sorted(set(got) | set(want)):
		if got.get(k) != want.get(k):
			lines.append("%s: got %r, want %r" %
				     (k, got.get(k), want.get(k)))
	return "\n".join(lines[:40])


def mount_list_unmount(mounter, user, cache):
	"""Mounts, lists every mailbox, unmounts; returns the snapshot."""
	m = mounter.mount(user, cache_dir=cache)
	snap = snapshot(m.path)
	problems = mounter.unmount(m)
	assert not problems, "\n".join(problems)
	return snap


def writer(server, user, mbox):
	"""An imaplib connection with MBOX SELECTed read-write."""
	c = ts.connect(server, user)
	typ, data = c.select(sm.quote_mailbox(mbox))
	assert typ == "OK", data
	return c


def expunge(server, user, mbox, uid):
	"""STORE \\Deleted + UID EXPUNGE of UID only, on its own SELECT."""
	c = writer(server, user, mbox)
	try:
		typ, data = c.uid("STORE", str(uid), "+FLAGS.SILENT",
				  "(\\Deleted)")
		assert typ == "OK", data
		typ, data = c.uid("EXPUNGE", str(uid))
		assert typ == "OK", data
	finally:
		c.logout()


@pytest.fixture
def cache(tmp_path):
	d = str(tmp_path / "cache")
	os.makedirs(d)
	return d


def test_index_written_at_unmount(account, mounter, cache):
	m = mounter.mount(account["user"], cache_dir=cache)
	assert "Other" in os.listdir(m.path)
	assert os.listdir(os.path.join(m.path, "INBOX"))
	problems = mounter.unmount(m)
	assert not problems, "\n".join(problems)
	st = os.stat(os.path.join(cache, "index"))
	assert st.st_size > 0


def test_index_written_after_sync_while_mounted(account, mounter, cache):
	"""Listing a mailbox saves the index without waiting for the unmount
	(so a crash does not lose it)."""
	m = mounter.mount(account["user"], cache_dir=cache)
	path = os.path.join(cache, "index")
	assert not os.path.exists(path)
	assert len(os.listdir(os.path.join(m.path, "INBOX"))) == 6
	assert os.path.exists(path)
	assert os.stat(path).st_size > 0


def test_remount_after_kill_uses_saved_index(account, mounter, imap, cache):
	"""imapfs killed after a listing: the index it saved on the way is
	whole, and the next mount uses it (says nothing about not using
	it) and shows the right tree."""
	m = mounter.mount(account["user"], cache_dir=cache)
	snapshot(m.path)
	os.kill(m.proc.pid, signal.SIGKILL)
	m.proc.wait()
	mounter.mounts.remove(m)
	subprocess.run(["fusermount3", "-u", "-z", m.path])
	assert os.stat(os.path.join(cache, "index")).st_size > 0
	m = mounter.mount(account["user"], cache_dir=cache)
	got = snapshot(m.path)
	want = expected_snapshot(imap)
	assert got == want, diff(got, want)
	assert "saved index" not in m.stderr(), m.stderr()


def test_remount_shows_same_tree(account, mounter, imap, cache):
	before = mount_list_unmount(mounter, account["user"], cache)
	want = expected_snapshot(imap)
	assert before == want, diff(before, want)
	m = mounter.mount(account["user"], cache_dir=cache)
	after = snapshot(m.path)
	assert after == before, diff(after, before)


def test_remount_sees_message_appended_while_unmounted(
		account, mounter, imap, server, cache):
	user = account["user"]
	mount_list_unmount(mounter, user, cache)
	new = sm.make_messages(seed=77, count=1)[0]
	c = ts.connect(server, user)
	try:
		sm.append(c, "INBOX", new)
	finally:
		c.logout()
	recs = imap.messages("INBOX")
	newest = recs[-1]
	assert newest["subject"] == new.subject
	m = mounter.mount(user, cache_dir=cache)
	names = os.listdir(os.path.join(m.path, "INBOX"))
	assert newest["name"] in names
	assert sorted(names) == sorted(r["name"] for r in recs)
	st = os.stat(os.path.join(m.path, "INBOX", newest["name"]))
	assert st.st_size == newest["size"]
	assert int(st.st_mtime) == newest["mtime"]


def test_remount_drops_message_expunged_while_unmounted(
		account, mounter, imap, server, cache):
	user = account["user"]
	before = mount_list_unmount(mounter, user, cache)
	victim = imap.messages("INBOX")[2]
	assert "INBOX/" + victim["name"] in before
	expunge(server, user, "INBOX", victim["uid"])
	imap.selected = None
	recs = imap.messages("INBOX")
	assert victim["uid"] not in [r["uid"] for r in recs]
	m = mounter.mount(user, cache_dir=cache)
	names = os.listdir(os.path.join(m.path, "INBOX"))
	assert victim["name"] not in names
	assert sorted(names) == sorted(r["name"] for r in recs)
	assert not os.path.exists(os.path.join(m.path, "INBOX",
					       victim["name"]))


def change_flags_while_unmounted(account, mounter, imap, server, cache):
	"""Mounts and lists, unmounts, sets a message's flags in Other to
	WANT_FLAGS; returns that message's record."""
	user = account["user"]
	mount_list_unmount(mounter, user, cache)
	rec = imap.messages("Other")[1]
	assert rec["flags"] != WANT_FLAGS
	c = writer(server, user, "Other")
	try:
		typ, data = c.uid("STORE", str(rec["uid"]), "FLAGS.SILENT",
				  "(\\Answered $Label7)")
		assert typ == "OK", data
	finally:
		c.logout()
	imap.selected = None
	assert imap.flags("Other", rec["uid"]) == WANT_FLAGS
	return rec


WANT_FLAGS = {"\\Answered", "$Label7"}


def flags_of(path):
	return set(os.getxattr(path, "user.imap.flags").decode().split()) - \
		{"\\Recent"}


def test_remount_ls_then_getfattr_shows_flags_changed_while_unmounted(
		account, mounter, imap, server, cache):
	rec = change_flags_while_unmounted(account, mounter, imap, server,
					   cache)
	m = mounter.mount(account["user"], cache_dir=cache)
	assert rec["name"] in os.listdir(os.path.join(m.path, "Other"))
	assert flags_of(os.path.join(m.path, "Other", rec["name"])) == \
		WANT_FLAGS


def test_remount_getfattr_shows_flags_changed_while_unmounted(
		account, mounter, imap, server, cache):
	"""getfattr on the path straight after the remount, no ls first."""
	rec = change_flags_while_unmounted(account, mounter, imap, server,
					   cache)
	m = mounter.mount(account["user"], cache_dir=cache)
	assert flags_of(os.path.join(m.path, "Other", rec["name"])) == \
		WANT_FLAGS


def create_mailbox_while_unmounted(account, mounter, server, cache):
	user = account["user"]
	mount_list_unmount(mounter, user, cache)
	c = ts.connect(server, user)
	try:
		sm.create(c, NEW_MAILBOX)
		sm.append(c, NEW_MAILBOX, sm.make_messages(seed=5, count=1)[0])
	finally:
		c.logout()


NEW_MAILBOX = "Neu während"


def test_remount_ls_shows_mailbox_created_while_unmounted(
		account, mounter, imap, server, cache):
	create_mailbox_while_unmounted(account, mounter, server, cache)
	m = mounter.mount(account["user"], cache_dir=cache)
	assert NEW_MAILBOX in os.listdir(m.path)
	[rec] = imap.messages(NEW_MAILBOX)
	assert os.listdir(os.path.join(m.path, NEW_MAILBOX)) == [rec["name"]]


def test_remount_cd_into_mailbox_created_while_unmounted(
		account, mounter, imap, server, cache):
	"""The new directory's path works straight after the remount."""
	create_mailbox_while_unmounted(account, mounter, server, cache)
	m = mounter.mount(account["user"], cache_dir=cache)
	d = os.path.join(m.path, NEW_MAILBOX)
	assert os.path.isdir(d)
	[rec] = imap.messages(NEW_MAILBOX)
	assert os.listdir(d) == [rec["name"]]


def test_remount_stat_of_message_expunged_while_unmounted(
		account, mounter, imap, server, cache):
	"""A path kept from before (no ls first) is gone after the remount,
	and reading it never gives bytes."""
	user = account["user"]
	mount_list_unmount(mounter, user, cache)
	victim = imap.messages("Other")[0]
	expunge(server, user, "Other", victim["uid"])
	m = mounter.mount(user, cache_dir=cache)
	p = os.path.join(m.path, "Other", victim["name"])
	try:
		with open(p, "rb") as f:
			data = f.read()
	except OSError as e:
		assert e.errno in (errno.ENOENT, errno.EIO), e
	else:
		pytest.fail("read %d bytes of an expunged message" % len(data))
	assert not os.path.exists(p)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped",
				    "empty"])
def test_damaged_index_is_not_used(account, mounter, imap, cache, damage):
	user = account["user"]
	mount_list_unmount(mounter, user, cache)
	path = os.path.join(cache, "index")
	with open(path, "rb") as f:
		data = f.read()
	assert len(data) > 64
	if damage == "garbage":
		data = b"this is not an imapfs index\n" * 50
	elif damage == "truncated":
		data = data[:len(data) // 2]
	elif damage == "flipped":
		i = len(data) * 2 // 3
		data = data[:i] + bytes([data[i] ^ 0x20]) + data[i + 1:]
	else:
		data = b""
	with open(path, "wb") as f:
		f.write(data)
	m = mounter.mount(user, cache_dir=cache)
	got = snapshot(m.path)
	want = expected_snapshot(imap)
	assert got == want, diff(got, want)
	log = m.stderr()
	assert re.search(r"saved index[^\n]*\bnot\b|\bnot\b[^\n]*"
			 r"saved index", log, re.I), log[-3000:]


def test_remount_refreshes_instead_of_full_fetch(account, mounter, cache):
	user = account["user"]
	m = mounter.mount(user, cache_dir=cache, debug=True)
	assert len(os.listdir(os.path.join(m.path, "INBOX"))) == 6
	log = m.stderr()
	assert FULL_FETCH.search(log), \
		"the first mount fetched no metadata?\n" + log[-3000:]
	problems = mounter.unmount(m)
	assert not problems, "\n".join(problems)

	m = mounter.mount(user, cache_dir=cache, debug=True)
	names = os.listdir(os.path.join(m.path, "INBOX"))
	assert len(names) == 6
	for n in names:
		os.stat(os.path.join(m.path, "INBOX", n))
	log = m.stderr()
	full = [l for l in log.splitlines() if FULL_FETCH.search(l)]
	assert not full, "remount fetched all metadata again:\n" + \
		"\n".join(full)
	assert REFRESH.search(log), \
		"no flag refresh on remount:\n" + log[-3000:]


def use_cache_for_two_accounts(server, new_user, mounter, witness, cache):
	"""Seeds accounts A and B (created in the same second, so their
	mailboxes likely share UIDVALIDITY), mounts A with CACHE, lists
	everything and reads its INBOX, unmounts and mounts B with the same
	CACHE.  Returns (mount of B, witness of B, same UIDVALIDITY?)."""
	a, b = new_user("first"), new_user("second")
	seed_account(server, a, {"INBOX": 4, "OnlyA": 2}, seed=31)
	seed_account(server, b, {"INBOX": 4}, seed=32)
	wa, wb = witness(a), witness(b)
	m = mounter.mount(a, cache_dir=cache)
	for n in os.listdir(os.path.join(m.path, "INBOX")):
		with open(os.path.join(m.path, "INBOX", n), "rb") as f:
			f.read()
	snapshot(m.path)
	problems = mounter.unmount(m)
	assert not problems, "\n".join(problems)
	same = wa.uidvalidity("INBOX") == wb.uidvalidity("INBOX")
	return mounter.mount(b, cache_dir=cache), wb, same


def test_cache_dir_reused_for_another_account_shows_its_tree(
		server, new_user, mounter, witness, cache):
	"""The same cache_dir given to a mount of another account: that
	account's names, sizes, dates and flags, not the first one's."""
	m, wb, same = use_cache_for_two_accounts(server, new_user, mounter,
						 witness, cache)
	got = snapshot(m.path)
	want = expected_snapshot(wb)
	assert got == want, "same UIDVALIDITY: %s\n%s" % (same,
							   diff(got, want))
	assert not os.path.exists(os.path.join(m.path, "OnlyA"))


def test_cache_dir_reused_for_another_account_reads_its_bytes(
		server, new_user, mounter, witness, cache):
	m, wb, same = use_cache_for_two_accounts(server, new_user, mounter,
						 witness, cache)
	for rec in wb.messages("INBOX"):
		p = os.path.join(m.path, "INBOX", rec["name"])
		if not os.path.exists(p):
			pytest.fail("%s missing (listing: %s)" %
				    (rec["name"], os.listdir(os.path.dirname(p))))
		with open(p, "rb") as f:
			assert f.read() == wb.body("INBOX", rec["uid"]), \
				(rec["name"], "same UIDVALIDITY: %s" % same)


def read_mailbox(root, mbox, w):
	"""Reads every message of MBOX under ROOT, checking its bytes
	against witness W."""
	for rec in w.messages(mbox):
		with open(os.path.join(root, mbox, rec["name"]), "rb") as f:
			assert f.read() == w.body(mbox, rec["uid"]), rec["name"]


def test_cache_disk_full_at_mount(server, new_user, mounter, witness,
				  tmp_path):
	"""A cache directory that account B used, then on a disk so full
	that clearing B's index frees nothing (it is linked elsewhere too): a
	mount of A still comes up and reads right (messages held in memory),
	with a warning that says so; unable to name its account there, it
	leaves the directory unnamed, not still naming B, and B's next mount
	clears what A kept there once the disk had room, and shows its own
	bytes."""
	a, b = new_user("fullA"), new_user("fullB")
	seed_account(server, a, {"INBOX": 4, "OnlyA": 2}, seed=41)
	seed_account(server, b, {"INBOX": 4}, seed=42)
	wa, wb = witness(a), witness(b)
	with small_disk(tmp_path / "small", "1m") as disk:
		cache = os.path.join(disk, "c")
		m = mounter.mount(b, cache_dir=cache)
		os.listdir(os.path.join(m.path, "INBOX"))
		assert not mounter.unmount(m)
		for name in ("account", "index"):
			os.link(os.path.join(cache, name),
				os.path.join(disk, "kept-" + name))
		filler = fill_disk(disk)
		m = mounter.mount(a, cache_dir=cache)
		assert not os.path.exists(os.path.join(cache, "account"))
		read_mailbox(m.path, "OnlyA", wa)
		log = m.stderr()
		assert "is full; messages are held in memory" in log, log
		os.unlink(filler)
		read_mailbox(m.path, "INBOX", wa)  # now kept on the disk
		problems = mounter.unmount(m)
		assert not problems, "\n".join(problems)
		assert os.path.exists(os.path.join(cache, "index"))
		same = wa.uidvalidity("INBOX") == wb.uidvalidity("INBOX")
		m = mounter.mount(b, cache_dir=cache)
		got = snapshot(m.path)
		want = expected_snapshot(wb)
		assert got == want, "same UIDVALIDITY: %s\n%s" % (
			same, diff(got, want))
		read_mailbox(m.path, "INBOX", wb)
		problems = mounter.unmount(m)
		assert not problems, "\n".join(problems)


def test_a_cache_file_left_short_is_fetched_again(account, mounter, imap,
						  cache):
	"""A message's cache file left short while nothing was mounted (a
	power loss before the kernel wrote it all) is not served: the next
	mount says so, fetches it again, and reads give the whole message."""
	rec = imap.messages("INBOX")[2]   # a middle one: no scan fetches more
	want = imap.body("INBOX", rec["uid"])
	m = mounter.mount(account["user"], cache_dir=cache)
	path = os.path.join(m.path, "INBOX", rec["name"])
	with open(path, "rb") as f:
		assert f.read() == want
	problems = mounter.unmount(m)
	assert not problems, "\n".join(problems)

	copies = []
	for d, _, names in os.walk(cache):
		for n in names:
			p = os.path.join(d, n)
			with open(p, "rb") as f:
				if f.read() == want:
					copies.append(p)
	assert len(copies) == 1, copies
	os.truncate(copies[0], len(want) // 2)

	m = mounter.mount(account["user"], cache_dir=cache)
	path = os.path.join(m.path, "INBOX", rec["name"])
	for _ in range(2):
		with open(path, "rb") as f:
			assert f.read() == want
	assert os.path.getsize(path) == len(want)
	assert "left short by an earlier run" in m.stderr(), m.stderr()
	with open(copies[0], "rb") as f:
		assert f.read() == want

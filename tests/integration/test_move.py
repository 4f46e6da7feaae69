"""mv of a message into another mailbox's directory is UID MOVE: the
witness sees it leave the source and arrive, byte-identical and with its
flags, in the destination, where imapfs lists it under its new name."""

import errno
import os

import pytest

import imapfs_samplemail as sm

from writehelpers import body, errno_of, fresh, HoldCommand, \
	listed_on_another_connection, run, sha, wait_until, CutAfterCommand, \
	Writer


def _first(imap, mbox="INBOX", pred=lambda r: True):
	for rec in fresh(imap, mbox):
		if pred(rec):
			return rec
	pytest.fail("no message in %s fits" % mbox)


def _moved_in(imap, before, mbox="Other"):
	"""Records of MBOX whose UIDs were not in BEFORE."""
	return [r for r in fresh(imap, mbox) if r["uid"] not in before]


def test_mv_moves_message(mnt, imap):
	rec = _first(imap, pred=lambda r: r["flags"])
	raw = body(imap, "INBOX", rec["uid"])
	other_before = {r["uid"] for r in fresh(imap, "Other")}
	src = os.path.join(mnt.path, "INBOX", rec["name"])
	p = run(["mv", src, os.path.join(mnt.path, "Other") + "/"])
	assert p.returncode == 0, p.stderr

	assert rec["uid"] not in {r["uid"] for r in fresh(imap, "INBOX")}
	new = _moved_in(imap, other_before)
	assert len(new) == 1
	assert sha(body(imap, "Other", new[0]["uid"])) == sha(raw)
	assert new[0]["flags"] == rec["flags"]


def test_mv_keeps_internaldate(mnt, imap):
	rec = _first(imap)
	other_before = {r["uid"] for r in fresh(imap, "Other")}
	os.rename(os.path.join(mnt.path, "INBOX", rec["name"]),
		  os.path.join(mnt.path, "Other", rec["name"]))
	new = _moved_in(imap, other_before)
	assert [r["mtime"] for r in new] == [rec["mtime"]]


def test_mv_lists_canonical_name_and_drops_old_path(mnt, imap):
	rec = _first(imap)
	other_before = {r["uid"] for r in fresh(imap, "Other")}
	src = os.path.join(mnt.path, "INBOX", rec["name"])
	os.listdir(os.path.join(mnt.path, "Other"))	# cache the listing
	p = run(["mv", src, os.path.join(mnt.path, "Other") + "/"])
	assert p.returncode == 0, p.stderr
	new = _moved_in(imap, other_before)
	assert len(new) == 1
	listing = os.listdir(os.path.join(mnt.path, "Other"))
	assert new[0]["name"] in listing
	assert new[0]["name"].startswith("%010d" % new[0]["uid"])
	if new[0]["name"] != rec["name"]:
		assert rec["name"] not in listing
	assert not os.path.exists(src)
	assert rec["name"] not in os.listdir(os.path.join(mnt.path, "INBOX"))
	# The new path reads the message.
	with open(os.path.join(mnt.path, "Other", new[0]["name"]), "rb") as f:
		assert sha(f.read()) == sha(body(imap, "Other", new[0]["uid"]))


def test_mv_to_typed_name_lists_canonical_name(mnt, imap):
	rec = _first(imap)
	other_before = {r["uid"] for r in fresh(imap, "Other")}
	typed = os.path.join(mnt.path, "Other", "my-typed-name.eml")
	os.rename(os.path.join(mnt.path, "INBOX", rec["name"]), typed)
	new = _moved_in(imap, other_before)
	assert len(new) == 1
	listing = os.listdir(os.path.join(mnt.path, "Other"))
	assert new[0]["name"] in listing
	assert "my-typed-name.eml" not in listing
	# mv (coreutils) stats the typed name right after renaming: for a
	# moment it may still stand for the moved message, then it goes.
	canon = os.path.join(mnt.path, "Other", new[0]["name"])
	try:
		st = os.stat(typed)
	except FileNotFoundError:
		pass
	else:
		assert st.st_size == new[0]["size"]
		with open(typed, "rb") as f:
			assert sha(f.read()) == sha(body(imap, "Other",
							 new[0]["uid"]))
	assert wait_until(lambda: not os.path.exists(typed), timeout=5), \
		"the typed name still resolves"
	assert os.path.exists(canon)


def test_mv_stat_of_new_name_is_the_message(mnt, imap):
	"""Right after mv, without listing the destination first, the
	message's new name resolves (as scripts do: mv, then stat/cat)."""
	rec = _first(imap)
	other_before = {r["uid"] for r in fresh(imap, "Other")}
	os.rename(os.path.join(mnt.path, "INBOX", rec["name"]),
		  os.path.join(mnt.path, "Other", rec["name"]))
	new = _moved_in(imap, other_before)
	st = os.stat(os.path.join(mnt.path, "Other", new[0]["name"]))
	assert st.st_size == new[0]["size"]
	assert int(st.st_mtime) == new[0]["mtime"]


def test_mv_several_messages(mnt, imap):
	recs = fresh(imap, "INBOX")[:3]
	hashes = sorted(sha(body(imap, "INBOX", r["uid"])) for r in recs)
	other_before = {r["uid"] for r in fresh(imap, "Other")}
	p = run(["mv"] + [os.path.join(mnt.path, "INBOX", r["name"])
			  for r in recs] + [os.path.join(mnt.path, "Other")])
	new = _moved_in(imap, other_before)
	assert sorted(sha(body(imap, "Other", r["uid"])) for r in new) == \
		hashes
	left = {r["uid"] for r in fresh(imap, "INBOX")}
	assert not left & {r["uid"] for r in recs}
	# mv (coreutils) stats each destination it made: it must not
	# report an error for a move that succeeded.
	assert p.returncode == 0, p.stderr.decode(errors="replace")


def test_rename_within_mailbox_is_eperm(mnt, imap):
	rec = _first(imap)
	before = fresh(imap, "INBOX")
	src = os.path.join(mnt.path, "INBOX", rec["name"])
	e = errno_of(os.rename, src,
		     os.path.join(mnt.path, "INBOX", "renamed.eml"))
	assert e == errno.EPERM, os.strerror(e) if e else "success"
	assert fresh(imap, "INBOX") == before
	assert os.path.exists(src)


def test_move_into_root_is_eperm(mnt, imap):
	rec = _first(imap)
	before = fresh(imap, "INBOX")
	src = os.path.join(mnt.path, "INBOX", rec["name"])
	e = errno_of(os.rename, src, os.path.join(mnt.path, rec["name"]))
	assert e == errno.EPERM, os.strerror(e) if e else "success"
	assert fresh(imap, "INBOX") == before
	assert os.path.exists(src)


def test_move_into_noselect_parent_is_eperm(account, server, mounter,
					      imap):
	w = Writer(server, account["user"])
	try:
		w.create("Parent.Child")
	finally:
		w.close()
	lst = {name: flags for flags, delim, name in imap.list()}
	assert "Parent" in lst
	assert {"\\noselect", "\\nonexistent"} & \
		{f.lower() for f in lst["Parent"]}, lst["Parent"]
	m = mounter.mount(account["user"], max_conns=2)
	rec = _first(imap)
	before = fresh(imap, "INBOX")
	src = os.path.join(m.path, "INBOX", rec["name"])
	assert os.path.isdir(os.path.join(m.path, "Parent"))
	e = errno_of(os.rename, src,
		     os.path.join(m.path, "Parent", rec["name"]))
	assert e == errno.EPERM, os.strerror(e) if e else "success"
	assert fresh(imap, "INBOX") == before
	assert os.path.exists(src)


def test_move_to_trash_and_back(mnt, imap):
	rec = _first(imap)
	raw = body(imap, "INBOX", rec["uid"])
	os.rename(os.path.join(mnt.path, "INBOX", rec["name"]),
		  os.path.join(mnt.path, "Trash", rec["name"]))
	t = fresh(imap, "Trash")
	assert len(t) == 1
	# As after "ls Trash" (lookup right after a move: see
	# test_mv_stat_of_new_name_is_the_message).
	assert t[0]["name"] in os.listdir(os.path.join(mnt.path, "Trash"))
	inbox_before = {r["uid"] for r in fresh(imap, "INBOX")}
	os.rename(os.path.join(mnt.path, "Trash", t[0]["name"]),
		  os.path.join(mnt.path, "INBOX", t[0]["name"]))
	assert fresh(imap, "Trash") == []
	back = _moved_in(imap, inbox_before, "INBOX")
	assert len(back) == 1
	assert sha(body(imap, "INBOX", back[0]["uid"])) == sha(raw)


def test_move_of_missing_name_is_enoent(mnt, imap):
	before = fresh(imap, "INBOX")
	e = errno_of(os.rename,
		     os.path.join(mnt.path, "INBOX", "0000009999-nope.eml"),
		     os.path.join(mnt.path, "Other", "x.eml"))
	assert e == errno.ENOENT, os.strerror(e) if e else "success"
	assert fresh(imap, "INBOX") == before


@pytest.mark.parametrize("opts", [(), ("noidle",)],
			 ids=["idle", "noidle"])
def test_mv_of_a_message_another_client_expunged_is_enoent(
		server, account, mounter, imap, opts):
	"""Another client expunges a message imapfs lists: mv of it says
	ENOENT (the server answers NO [EXPUNGEISSUED] on a connection that
	has not seen the expunge yet, else OK with nothing moved), and the
	name goes from the listing."""
	m = mounter.mount(account["user"], opts=opts)
	inbox, other = (os.path.join(m.path, d) for d in ("INBOX", "Other"))
	rec = fresh(imap, "INBOX")[0]
	os.listdir(other)
	assert rec["name"] in os.listdir(inbox)
	other_before = fresh(imap, "Other")
	w = Writer(server, account["user"])
	try:
		w.expunge("INBOX", rec["uid"])
	finally:
		w.close()
	e = errno_of(os.rename, os.path.join(inbox, rec["name"]),
		     os.path.join(other, rec["name"]))
	assert e == errno.ENOENT, os.strerror(e) if e else "success"
	assert fresh(imap, "Other") == other_before
	assert wait_until(lambda: rec["name"] not in os.listdir(inbox))


def test_move_with_flag_change_first_keeps_new_flags(mnt, imap):
	rec = _first(imap)
	src = os.path.join(mnt.path, "INBOX", rec["name"])
	os.setxattr(src, "user.imap.flags", b"\\Flagged $Moved")
	other_before = {r["uid"] for r in fresh(imap, "Other")}
	os.rename(src, os.path.join(mnt.path, "Other", rec["name"]))
	new = _moved_in(imap, other_before)
	assert [r["flags"] for r in new] == [{"\\Flagged", "$Moved"}]
	assert new[0]["name"] in os.listdir(os.path.join(mnt.path, "Other"))
	v = os.getxattr(os.path.join(mnt.path, "Other", new[0]["name"]),
			"user.imap.flags")
	assert set(v.decode().split()) - {"\\Recent"} == \
		{"\\Flagged", "$Moved"}


def test_a_message_just_moved_into_a_listed_mailbox_takes_changes(
		server, account, mounter, imap):
	"""Other is selected on a connection of imapfs's before messages
	come to it (ls): flags set on one right after, and a move of the
	other on to a third mailbox, reach the server (that connection
	sees the newcomers first)."""
	recs = fresh(imap, "INBOX")
	proxy = HoldCommand(server["imap_port"], b"BODY.PEEK[]")
	try:
		m = proxy.mount(mounter, account["user"], max_conns=4)
		inbox, other = (os.path.join(m.path, d)
				for d in ("INBOX", "Other"))
		os.mkdir(os.path.join(m.path, "Third"))
		before = set(listed_on_another_connection(
			proxy, os.path.join(inbox, recs[2]["name"]), other))
		for rec in recs[:2]:
			os.rename(os.path.join(inbox, rec["name"]),
				  os.path.join(other, rec["name"]))
		new = sorted(set(os.listdir(other)) - before)
		assert len(new) == 2
		os.setxattr(os.path.join(other, new[0]), "user.imap.flags",
			    b"\\Flagged $Later")
		os.rename(os.path.join(other, new[1]),
			  os.path.join(m.path, "Third", new[1]))
	finally:
		proxy.stop()
	ids = {r["message_id"] for r in recs[:2]}
	now = [r for r in fresh(imap, "Other") if r["message_id"] in ids]
	third = [r["message_id"] for r in fresh(imap, "Third")]
	assert len(now) == 1 and len(third) == 1, (now, third)
	assert now[0]["flags"] - {"\\Recent"} == {"\\Flagged", "$Later"}
	assert ids == {now[0]["message_id"], third[0]}


def test_mail_another_client_adds_between_moves_is_listed(
		server, account, mounter, imap):
	"""Another client adds a message to Other between two of imapfs's
	moves into it, so its UID lies below the last one COPYUID gave: the
	next refresh still lists it (its flags come, it is asked for)."""
	import time

	m = mounter.mount(account["user"], opts=["noidle", "list_ttl=1"])
	inbox, other = (os.path.join(m.path, d) for d in ("INBOX", "Other"))
	os.listdir(other)
	recs = fresh(imap, "INBOX")[:2]
	os.rename(os.path.join(inbox, recs[0]["name"]),
		  os.path.join(other, recs[0]["name"]))
	w = Writer(server, account["user"])
	try:
		w.append("Other", sm.make_messages(77, 1)[0])
	finally:
		w.close()
	os.rename(os.path.join(inbox, recs[1]["name"]),
		  os.path.join(other, recs[1]["name"]))
	time.sleep(1.2)  # the listing is due for a refresh
	want = sorted(r["name"] for r in fresh(imap, "Other"))
	assert wait_until(lambda: sorted(os.listdir(other)) == want,
			  timeout=10), (sorted(os.listdir(other)), want)


def test_mv_whose_answer_is_lost_leaves_the_new_name_resolvable(
		account, server, mounter, imap):
	"""The connection drops after the server moved the message but
	before its answer (and the new UID) came: the move is found done by
	looking, and the name mv stats next resolves to the moved message."""
	proxy = CutAfterCommand(server["imap_port"], b"UID MOVE")
	try:
		m = proxy.mount(mounter, account["user"])
		rec = _first(imap)
		raw = body(imap, "INBOX", rec["uid"])
		other_before = {r["uid"] for r in fresh(imap, "Other")}
		os.listdir(os.path.join(m.path, "Other"))
		dst = os.path.join(m.path, "Other", rec["name"])
		os.rename(os.path.join(m.path, "INBOX", rec["name"]), dst)
		assert proxy.cut.is_set(), "the proxy saw no UID MOVE"
		os.setxattr(dst, "user.imap.flags", b"\\Flagged")
		with open(dst, "rb") as f:
			assert sha(f.read()) == sha(raw)
		assert rec["name"] not in os.listdir(
			os.path.join(m.path, "INBOX"))
	finally:
		proxy.stop()
	new = _moved_in(imap, other_before)
	assert len(new) == 1
	assert new[0]["flags"] == {"\\Flagged"}
	assert rec["uid"] not in {r["uid"] for r in fresh(imap, "INBOX")}


@pytest.mark.parametrize("opts", [(), ("nopassthrough",)])
def test_a_cached_message_moved_is_not_fetched_again(account, mounter, imap,
						     opts):
	"""mv of a message imapfs has cached: reading it in its new place
	takes the cached bytes (no FETCH of its body), and a file opened
	before the mv still reads the whole message by the old handle."""
	import re

	m = mounter.mount(account["user"], opts=list(opts), debug=True)
	rec = fresh(imap, "INBOX")[2]   # a middle one: no scan fetches more
	raw = body(imap, "INBOX", rec["uid"])
	src = os.path.join(m.path, "INBOX", rec["name"])
	other_before = {r["uid"] for r in fresh(imap, "Other")}
	with open(src, "rb") as f:
		assert f.read() == raw
	mark = len(m.stderr())
	with open(src, "rb") as held:
		os.rename(src, os.path.join(m.path, "Other", rec["name"]))
		new = _moved_in(imap, other_before)
		assert len(new) == 1
		dst = os.path.join(m.path, "Other", new[0]["name"])
		with open(dst, "rb") as f:
			assert f.read() == raw
		# Not from the pages the first read left: from imapfs.
		os.posix_fadvise(held.fileno(), 0, 0,
				 os.POSIX_FADV_DONTNEED)
		assert held.read() == raw
	with open(dst, "rb") as f:
		assert f.read() == raw
	log = m.stderr()[mark:]
	assert "UID MOVE" in log, log
	assert not re.search(r"C: \S+ UID FETCH [^\n]*BODY\.PEEK\[\]", log), \
		log


def test_an_expunge_where_a_message_was_moved_to_still_shows(
		account, server, mounter, imap):
	"""A message moved from a mailbox whose MODSEQs run higher: the
	mailbox it went to is still refreshed from its own, so a message
	another client expunges there afterwards leaves the listing."""
	writer = Writer(server, account["user"])
	try:
		rec = fresh(imap, "INBOX")[2]
		for i in range(30):     # its MODSEQ runs ahead of Other's
			writer.store("INBOX", rec["uid"], "FLAGS",
				     "($Bump%d)" % i)
		m = mounter.mount(account["user"], opts=["list_ttl=1"])
		other = os.path.join(m.path, "Other")
		os.listdir(other)
		os.listdir(os.path.join(m.path, "INBOX"))
		rec = fresh(imap, "INBOX")[2]
		os.rename(os.path.join(m.path, "INBOX", rec["name"]),
			  os.path.join(other, rec["name"]))
		before = fresh(imap, "Other")
		assert sorted(os.listdir(other)) == sorted(r["name"]
							   for r in before)
		gone = [r for r in before if r["message_id"] !=
			rec["message_id"]][0]
		writer.store("Other", gone["uid"], "+FLAGS", "(\\Deleted)")
		writer.c.uid("EXPUNGE", str(gone["uid"]))
	finally:
		writer.close()
	want = sorted(r["name"] for r in fresh(imap, "Other"))
	assert gone["name"] not in want
	assert wait_until(lambda: sorted(os.listdir(other)) == want,
			  timeout=10), sorted(os.listdir(other))

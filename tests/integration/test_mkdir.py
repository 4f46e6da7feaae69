"""mkdir / rmdir / mv of directories are CREATE / DELETE / RENAME, as
the witness's LIST shows."""

import errno
import os
import threading

import pytest

import imapfs_samplemail as sm
from writehelpers import body, by_mailbox, errno_of, fresh, HoldCommand, \
	names, raw_list, run, Spoil, wait_until, Writer


@pytest.fixture
def m(account, mounter):
	return mounter.mount(account["user"], max_conns=2)


def _err(e):
	return os.strerror(e) if e else "success"


def test_mkdir_creates_mailbox(mnt, imap):
	before = names(imap)
	p = run(["mkdir", os.path.join(mnt.path, "New")])
	assert p.returncode == 0, p.stderr
	assert names(imap) - before == {"New"}
	assert os.path.isdir(os.path.join(mnt.path, "New"))
	assert "New" in os.listdir(mnt.path)


def test_a_refused_mkdir_names_the_new_directory_in_its_log_line(m, imap):
	"""The server refuses CREATE of "inbox" (INBOX is taken, whatever its
	case): the log line says which mkdir it was, not just where."""
	mark = len(m.stderr())
	assert errno_of(os.mkdir, os.path.join(m.path, "inbox")) != 0
	log = m.stderr()[mark:]
	assert "mkdir inbox: CREATE" in log, log


def test_new_mailbox_is_selectable(m, imap):
	os.mkdir(os.path.join(m.path, "Fresh"))
	assert fresh(imap, "Fresh") == []
	assert os.listdir(os.path.join(m.path, "Fresh")) == []


def test_mkdir_non_ascii_is_modified_utf7(m, imap):
	name = "Entwürfe 日本"
	os.mkdir(os.path.join(m.path, name))
	enc = sm.mutf7_encode(name).encode()
	assert enc == b"Entw&APw-rfe &ZeVnLA-"
	assert any(line.endswith(enc) or line.endswith(b'"' + enc + b'"')
		   for line in raw_list(imap)), raw_list(imap)
	assert name in names(imap)
	assert name in os.listdir(m.path)


def test_mkdir_ampersand_is_modified_utf7(m, imap):
	os.mkdir(os.path.join(m.path, "R&D"))
	assert any(line.endswith(b"R&-D") or line.endswith(b'"R&-D"')
		   for line in raw_list(imap)), raw_list(imap)


def test_mkdir_nested_uses_server_delimiter(m, imap):
	os.mkdir(os.path.join(m.path, "New"))
	os.mkdir(os.path.join(m.path, "New", "Sub"))
	assert {"New", "New.Sub"} <= names(imap)
	assert os.listdir(os.path.join(m.path, "New")) == ["Sub"]


def test_mkdir_p_deep(m, imap):
	p = run(["mkdir", "-p", os.path.join(m.path, "A", "B", "C")])
	assert p.returncode == 0, p.stderr
	assert "A.B.C" in names(imap)
	assert os.path.isdir(os.path.join(m.path, "A", "B", "C"))


def test_mkdir_existing_is_eexist(m, imap):
	before = names(imap)
	e = errno_of(os.mkdir, os.path.join(m.path, "Other"))
	assert e == errno.EEXIST, _err(e)
	assert names(imap) == before


def test_mkdir_with_server_delimiter_is_einval(m, imap):
	before = names(imap)
	e = errno_of(os.mkdir, os.path.join(m.path, "a.b"))
	assert e == errno.EINVAL, _err(e)
	assert names(imap) == before


def test_rmdir_empty_mailbox_deletes_it(m, imap):
	assert "Empty" in names(imap)
	p = run(["rmdir", os.path.join(m.path, "Empty")])
	assert p.returncode == 0, p.stderr
	assert "Empty" not in names(imap)
	assert not os.path.exists(os.path.join(m.path, "Empty"))


def test_rmdir_of_new_mailbox(m, imap):
	os.mkdir(os.path.join(m.path, "Tmp"))
	assert "Tmp" in names(imap)
	os.rmdir(os.path.join(m.path, "Tmp"))
	assert "Tmp" not in names(imap)


def test_rmdir_with_messages_is_enotempty(m, imap):
	before = names(imap)
	e = errno_of(os.rmdir, os.path.join(m.path, "Other"))
	assert e == errno.ENOTEMPTY, _err(e)
	assert names(imap) == before
	assert len(fresh(imap, "Other")) == 3


def test_rmdir_with_children_is_enotempty(m, imap):
	os.mkdir(os.path.join(m.path, "Par"))
	os.mkdir(os.path.join(m.path, "Par", "Kid"))
	before = names(imap)
	e = errno_of(os.rmdir, os.path.join(m.path, "Par"))
	assert e == errno.ENOTEMPTY, _err(e)
	assert names(imap) == before


def test_rmdir_of_message_parent_made_elsewhere(account, server, mounter,
						imap):
	"""A mailbox another client filled after imapfs listed it empty:
	the server's contents count, not imapfs's memory."""
	m = mounter.mount(account["user"], max_conns=2)
	assert os.listdir(os.path.join(m.path, "Empty")) == []
	w = Writer(server, account["user"])
	try:
		w.append("Empty", account["samples"]["INBOX"][0])
	finally:
		w.close()
	e = errno_of(os.rmdir, os.path.join(m.path, "Empty"))
	assert e == errno.ENOTEMPTY, "%s; imapfs: %s" % (_err(e), m.stderr())
	assert len(fresh(imap, "Empty")) == 1


def test_rmdir_inbox_is_eperm(m, imap):
	e = errno_of(os.rmdir, os.path.join(m.path, "INBOX"))
	assert e == errno.EPERM, _err(e)
	assert "INBOX" in names(imap)


def test_rename_inbox_is_eperm(m, imap):
	n = len(fresh(imap, "INBOX"))
	before = names(imap)
	e = errno_of(os.rename, os.path.join(m.path, "INBOX"),
		     os.path.join(m.path, "OldInbox"))
	assert e == errno.EPERM, _err(e)
	assert names(imap) == before
	assert len(fresh(imap, "INBOX")) == n


def test_mv_dir_renames_mailbox(m, imap):
	uids = [r["uid"] for r in fresh(imap, "Other")]
	p = run(["mv", os.path.join(m.path, "Other"),
		 os.path.join(m.path, "Renamed")])
	assert p.returncode == 0, p.stderr
	n = names(imap)
	assert "Renamed" in n and "Other" not in n
	assert [r["uid"] for r in fresh(imap, "Renamed")] == uids
	assert sorted(os.listdir(os.path.join(m.path, "Renamed"))) == \
		sorted(r["name"] for r in fresh(imap, "Renamed"))
	assert not os.path.exists(os.path.join(m.path, "Other"))


@pytest.mark.parametrize("status", ["kept", "unsaid"])
def test_a_renamed_mailbox_keeps_its_cached_messages(server, account, mounter,
						      imap, tmp_path, status):
	"""mv of a mailbox: the messages imapfs had cached, its own and
	those of the mailbox below it, are still cached under the new name,
	where the server's STATUS says the UIDVALIDITY was kept. After a
	remount (the kernel then has none of their pages) they are read with
	no FETCH of their bodies, and their bytes are the server's. With the
	UIDVALIDITY unsaid (a proxy asks for UIDNEXT instead), that
	mailbox's are fetched again, the other's are not."""
	cache = str(tmp_path / "cache")
	proxy = None
	if status == "unsaid":
		proxy = Spoil(server["imap_port"], b"Renamed (UIDVALIDITY)",
			      b"Renamed (UIDNEXT)")

	def mount(**kw):
		if proxy:
			return proxy.mount(mounter, account["user"],
					   cache_dir=cache, **kw)
		return mounter.mount(account["user"], cache_dir=cache, **kw)

	try:
		m = mount()
		other = os.path.join(m.path, "Other")
		os.mkdir(os.path.join(other, "Kid"))
		with open(os.path.join(other, "Kid", "new.eml"), "wb") as f:
			f.write(body(imap, "INBOX",
				     fresh(imap, "INBOX")[0]["uid"]))
		for top in (other, os.path.join(other, "Kid")):
			for name in os.listdir(top):
				if name != "Kid":
					with open(os.path.join(top, name),
						  "rb") as f:
						f.read()
		os.rename(other, os.path.join(m.path, "Renamed"))
		assert not mounter.unmount(m)
		if proxy:
			assert proxy.cut.is_set(), "nothing was spoilt"

		m = mount(debug=True)
		for mbox in ("Renamed", "Renamed.Kid"):
			recs = fresh(imap, mbox)
			assert recs
			top = os.path.join(m.path, *mbox.split("."))
			for rec in recs:
				with open(os.path.join(top, rec["name"]),
					  "rb") as f:
					assert f.read() == body(imap, mbox,
								rec["uid"])
	finally:
		if proxy:
			proxy.stop()
	sent = by_mailbox(m.stderr())
	fetched = {mbox for mbox in ("Renamed", "Renamed.Kid")
		   if any("BODY.PEEK[]" in c for c in sent.get(mbox, []))}
	assert fetched == ({"Renamed"} if proxy else set()), sent


def test_a_read_racing_a_mailbox_rename_gets_its_bytes(server, account,
							mounter, imap):
	"""A read whose FETCH reaches the server only after `mv` renamed the
	mailbox (a proxy holds it back till then) is asked again under the
	new name: no read fails."""
	proxy = HoldCommand(server["imap_port"], b"BODY.PEEK[]")
	got = {}

	def cat(path):
		try:
			with open(path, "rb") as f:
				got["bytes"] = f.read()
		except OSError as e:
			got["error"] = e

	try:
		m = proxy.mount(mounter, account["user"], max_conns=4,
				opts=["noidle", "nopassthrough"])
		rec = fresh(imap, "Other")[0]
		reader = threading.Thread(target=cat, args=(
			os.path.join(m.path, "Other", rec["name"]),))
		reader.start()
		assert wait_until(proxy.cut.is_set, timeout=10), \
			"no FETCH was held"
		os.rename(os.path.join(m.path, "Other"),
			  os.path.join(m.path, "Renamed"))
		proxy.released.set()
		reader.join(60)
	finally:
		proxy.stop()
	assert "Renamed" in names(imap) and "Other" not in names(imap)
	assert got.get("bytes") == body(imap, "Renamed", rec["uid"]), \
		(got.get("error"), m.stderr())
	# The kernel reads a page again after its readahead failed, so cat
	# alone would not show a read that failed: the log does.
	assert "WARNING" not in m.stderr(), m.stderr()


def test_a_mailbox_renamed_by_another_client_is_gone_at_its_old_name(
		server, account, mounter, imap):
	"""Another client renames Other while imapfs still lists it (no
	watcher, the list not due for a refresh): listing it by its old name
	says ENOENT, not EIO, and the root shows the new name."""
	m = mounter.mount(account["user"], opts=["noidle"])
	assert "Other" in os.listdir(m.path)
	w = Writer(server, account["user"])
	try:
		typ, data = w.c.rename("Other", "Elsewhere")
		assert typ == "OK", data
	finally:
		w.close()
	mark = len(m.stderr())
	assert errno_of(os.listdir, os.path.join(m.path, "Other")) == \
		errno.ENOENT
	top = os.listdir(m.path)
	assert "Elsewhere" in top and "Other" not in top, top
	assert "WARNING" not in m.stderr()[mark:], m.stderr()[mark:]


def test_mv_dir_into_other_parent(m, imap):
	os.mkdir(os.path.join(m.path, "Box"))
	p = run(["mv", os.path.join(m.path, "Other"),
		 os.path.join(m.path, "Box") + "/"])
	assert p.returncode == 0, p.stderr
	n = names(imap)
	assert "Box.Other" in n and "Other" not in n
	assert len(fresh(imap, "Box.Other")) == 3
	assert os.listdir(os.path.join(m.path, "Box")) == ["Other"]


def test_mv_dir_with_children_moves_them(m, imap):
	os.mkdir(os.path.join(m.path, "Top"))
	os.mkdir(os.path.join(m.path, "Top", "Kid"))
	os.rename(os.path.join(m.path, "Top"), os.path.join(m.path, "Top2"))
	n = names(imap)
	assert {"Top2", "Top2.Kid"} <= n
	assert not {"Top", "Top.Kid"} & n
	assert os.listdir(os.path.join(m.path, "Top2")) == ["Kid"]


def test_mv_dir_non_ascii_target(m, imap):
	os.rename(os.path.join(m.path, "Other"),
		  os.path.join(m.path, "Ärger"))
	assert "Ärger" in names(imap)
	assert any(l.endswith(b"&AMQ-rger") or l.endswith(b'"&AMQ-rger"')
		   for l in raw_list(imap)), raw_list(imap)


def test_mv_dir_onto_existing_is_refused(m, imap):
	before = names(imap)
	e = errno_of(os.rename, os.path.join(m.path, "Empty"),
		     os.path.join(m.path, "Other"))
	assert e in (errno.EEXIST, errno.ENOTEMPTY, errno.EPERM), _err(e)
	assert names(imap) == before
	assert len(fresh(imap, "Other")) == 3


def test_mv_dir_to_name_with_delimiter_is_einval(m, imap):
	before = names(imap)
	e = errno_of(os.rename, os.path.join(m.path, "Empty"),
		     os.path.join(m.path, "E.mpty"))
	assert e == errno.EINVAL, _err(e)
	assert names(imap) == before


def test_mkdir_whose_answer_is_lost_succeeds(account, server, mounter, imap):
	"""The connection drops after the server made the mailbox but before
	its answer came: imapfs lists the mailboxes, finds it made, and
	mkdir succeeds; it is there once."""
	from writehelpers import CutAfterCommand

	proxy = CutAfterCommand(server["imap_port"], b"CREATE")
	try:
		m = proxy.mount(mounter, account["user"])
		os.mkdir(os.path.join(m.path, "Lost"))
		assert proxy.cut.is_set(), "the proxy saw no CREATE"
		assert "Lost" in os.listdir(m.path)
	finally:
		proxy.stop()
	assert sorted(n for n in names(imap) if n == "Lost") == ["Lost"]


@pytest.mark.parametrize("done", [True, False], ids=["done", "not_done"])
def test_rmdir_whose_answer_is_lost_succeeds(account, server, mounter, imap,
					     done):
	"""The connection drops after the DELETE was sent, before its
	answer came; the server did delete (done) or never saw it: imapfs
	asks the server, and rmdir succeeds either way."""
	from writehelpers import CutAfterCommand

	assert "Empty" in names(imap)
	proxy = CutAfterCommand(server["imap_port"], b"DELETE", forward=done)
	try:
		m = proxy.mount(mounter, account["user"])
		os.rmdir(os.path.join(m.path, "Empty"))
		assert proxy.cut.is_set(), "the proxy saw no DELETE"
		assert "Empty" not in os.listdir(m.path)
	finally:
		proxy.stop()
	assert "Empty" not in names(imap)


@pytest.mark.parametrize("done", [True, False], ids=["done", "not_done"])
def test_mv_dir_whose_answer_is_lost_succeeds(account, server, mounter, imap,
					      done):
	"""The same for a RENAME: mv succeeds, the mailbox has its new name
	on the server with its messages, and the mount lists them there."""
	from writehelpers import CutAfterCommand

	uids = [r["uid"] for r in fresh(imap, "Other")]
	proxy = CutAfterCommand(server["imap_port"], b"RENAME", forward=done)
	try:
		m = proxy.mount(mounter, account["user"])
		os.rename(os.path.join(m.path, "Other"),
			  os.path.join(m.path, "Renamed"))
		assert proxy.cut.is_set(), "the proxy saw no RENAME"
		assert sorted(os.listdir(os.path.join(m.path, "Renamed"))) == \
			sorted(r["name"] for r in fresh(imap, "Renamed"))
		assert "Other" not in os.listdir(m.path)
	finally:
		proxy.stop()
	n = names(imap)
	assert "Renamed" in n and "Other" not in n
	assert [r["uid"] for r in fresh(imap, "Renamed")] == uids

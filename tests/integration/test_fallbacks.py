"""mv against servers without MOVE (COPY + STORE \\Deleted + UID EXPUNGE)
and without MOVE and UIDPLUS (COPY + STORE \\Deleted, nothing expunged:
no bare EXPUNGE may remove other clients' \\Deleted messages)."""

import itertools
import os
import re
import shutil
import tempfile

import pytest

import conftest
import imapfs_testserver as ts
from writehelpers import body, fresh, sha, wait_until, Writer


_SERVERS = {"nomove": ["MOVE"], "nomove_nouidplus": ["MOVE", "UIDPLUS"]}


@pytest.fixture(scope="module")
def servers():
	"""One server per capability variant for the whole module (a variant
	costs a start, a probe and a restart), stopped by PID at the end."""
	if ts.dovecot_binary() is None:
		pytest.skip("dovecot is not installed")
	started = {}
	dirs = []
	try:
		for key, drop in _SERVERS.items():
			d = tempfile.mkdtemp(prefix="imapfs-dovecot-")
			dirs.append(d)
			started[key] = ts.start(d, drop_caps=drop)
		yield started
	finally:
		for d in dirs:
			ts.stop(d)
			shutil.rmtree(d, ignore_errors=True)


_n = itertools.count(1)


@pytest.fixture
def variant(request, servers, tmp_path):
	"""(server info, user, Mounter, Witness) for a fresh account on the
	server variant named by request.param."""
	conftest._check_requirements()
	info = servers[request.param]
	caps = {c.upper() for c in info["capabilities"]}
	for c in _SERVERS[request.param]:
		assert c.upper() not in caps
	user = "fb%d_%d" % (os.getpid(), next(_n))
	conftest.seed_account(info, user, conftest.ACCOUNT_TREE, seed=2)
	mt = conftest.Mounter(info, str(tmp_path))
	w = conftest.Witness(info, user)
	yield info, user, mt, w
	w.close()
	problems = mt.cleanup()
	if problems:
		pytest.fail("\n".join(problems), pytrace=False)


def _commands(m):
	"""IMAP commands imapfs sent (from its -d wire trace)."""
	return re.findall(r"\] C: \S+ (.*)", m.stderr())


def _mark_deleted_elsewhere(info, user, mbox, uid):
	wr = Writer(info, user)
	try:
		wr.store(mbox, uid, "+FLAGS", "(\\Deleted)")
	finally:
		wr.close()


@pytest.mark.parametrize("variant", ["nomove"], indirect=True)
def test_mv_without_move(variant):
	info, user, mt, w = variant
	m = mt.mount(user, max_conns=2, debug=True)
	rec = fresh(w, "INBOX")[1]
	raw = body(w, "INBOX", rec["uid"])
	n_other = len(fresh(w, "Other"))
	os.rename(os.path.join(m.path, "INBOX", rec["name"]),
		  os.path.join(m.path, "Other", rec["name"]))
	inbox = fresh(w, "INBOX")
	assert rec["uid"] not in [r["uid"] for r in inbox]
	assert len(inbox) == 5
	assert not any("\\Deleted" in r["flags"] for r in inbox)
	other = fresh(w, "Other")
	assert len(other) == n_other + 1
	assert sha(body(w, "Other", other[-1]["uid"])) == sha(raw)
	assert other[-1]["flags"] == rec["flags"]
	cmds = _commands(m)
	assert not [c for c in cmds if re.match(r"(UID )?MOVE", c, re.I)], cmds
	assert [c for c in cmds if re.match(r"UID EXPUNGE", c, re.I)], cmds


@pytest.mark.parametrize("variant", ["nomove"], indirect=True)
def test_mv_without_move_keeps_others_deleted(variant):
	info, user, mt, w = variant
	recs = fresh(w, "INBOX")
	_mark_deleted_elsewhere(info, user, "INBOX", recs[0]["uid"])
	m = mt.mount(user, max_conns=2)
	os.rename(os.path.join(m.path, "INBOX", recs[1]["name"]),
		  os.path.join(m.path, "Other", recs[1]["name"]))
	inbox = fresh(w, "INBOX")
	assert [r["uid"] for r in inbox] == [r["uid"] for r in recs
					     if r["uid"] != recs[1]["uid"]]
	assert "\\Deleted" in inbox[0]["flags"]


@pytest.mark.parametrize("variant", ["nomove_nouidplus"],
			 indirect=True)
def test_mv_without_move_and_uidplus_copies_and_marks(variant):
	info, user, mt, w = variant
	m = mt.mount(user, max_conns=2, debug=True)
	rec = fresh(w, "INBOX")[2]
	raw = body(w, "INBOX", rec["uid"])
	n_other = len(fresh(w, "Other"))
	os.rename(os.path.join(m.path, "INBOX", rec["name"]),
		  os.path.join(m.path, "Other", rec["name"]))
	other = fresh(w, "Other")
	assert len(other) == n_other + 1
	assert sha(body(w, "Other", other[-1]["uid"])) == sha(raw)
	inbox = {r["uid"]: r for r in fresh(w, "INBOX")}
	assert rec["uid"] in inbox, "the source copy was expunged"
	assert "\\Deleted" in inbox[rec["uid"]]["flags"]
	cmds = _commands(m)
	assert not [c for c in cmds if re.match(r"(UID )?(MOVE|EXPUNGE)",
						c, re.I)], cmds
	assert not [c for c in cmds if re.match(r"EXPUNGE", c, re.I)], cmds


@pytest.mark.parametrize("variant", ["nomove_nouidplus"],
			 indirect=True)
def test_mv_without_uidplus_logs_why(variant):
	info, user, mt, w = variant
	m = mt.mount(user, max_conns=2)
	rec = fresh(w, "INBOX")[2]
	before = len(m.stderr())
	os.rename(os.path.join(m.path, "INBOX", rec["name"]),
		  os.path.join(m.path, "Other", rec["name"]))
	log = m.stderr()[before:]
	assert "UIDPLUS" in log and "\\Deleted" in log, log


@pytest.mark.parametrize("variant", ["nomove_nouidplus"],
			 indirect=True)
def test_mv_without_uidplus_keeps_others_deleted(variant):
	info, user, mt, w = variant
	recs = fresh(w, "INBOX")
	_mark_deleted_elsewhere(info, user, "INBOX", recs[0]["uid"])
	_mark_deleted_elsewhere(info, user, "INBOX", recs[4]["uid"])
	m = mt.mount(user, max_conns=2)
	os.rename(os.path.join(m.path, "INBOX", recs[1]["name"]),
		  os.path.join(m.path, "Other", recs[1]["name"]))
	inbox = fresh(w, "INBOX")
	assert [r["uid"] for r in inbox] == [r["uid"] for r in recs]
	deleted = {r["uid"] for r in inbox if "\\Deleted" in r["flags"]}
	assert deleted == {recs[0]["uid"], recs[1]["uid"], recs[4]["uid"]}
	assert len(fresh(w, "Other")) == 4


@pytest.mark.parametrize("variant", ["nomove_nouidplus"],
			 indirect=True)
def test_mv_without_uidplus_leaves_source_marked_deleted(variant):
	"""Without UIDPLUS the copy is listed in the destination, and the
	source message stays, visibly marked \\Deleted (imapfs may not
	EXPUNGE it alone), as the README says."""
	info, user, mt, w = variant
	m = mt.mount(user, max_conns=2)
	rec = fresh(w, "INBOX")[3]
	src = os.path.join(m.path, "INBOX", rec["name"])
	os.rename(src, os.path.join(m.path, "Other", rec["name"]))
	other = fresh(w, "Other")
	assert other[-1]["name"] in os.listdir(os.path.join(m.path, "Other"))
	flags = wait_until(lambda: os.path.exists(src) and
			   os.getxattr(src, "user.imap.flags").decode())
	assert "\\Deleted" in flags.split()


@pytest.mark.parametrize("variant", ["nomove"], indirect=True)
def test_rm_without_move_goes_to_trash(variant):
	info, user, mt, w = variant
	m = mt.mount(user, max_conns=2)
	rec = fresh(w, "Other")[0]
	os.unlink(os.path.join(m.path, "Other", rec["name"]))
	assert rec["uid"] not in [r["uid"] for r in fresh(w, "Other")]
	assert [r["message_id"] for r in fresh(w, "Trash")] == \
		[rec["message_id"]]

"""Changes made by another client while imapfs is mounted show up after
-o list_ttl: new, expunged and re-flagged messages, with Dovecot's
CONDSTORE and QRESYNC (a CHANGEDSINCE refresh, never a scan of every
flag, told who went by VANISHED), with CONDSTORE alone (a search says
who is left) and with a server that offers neither (a full flag
scan)."""

import os
import re
import shutil
import tempfile

import pytest

import conftest
import imapfs_samplemail as sm
from writehelpers import fresh, wait_until, Spoil, Writer

CHANGEDSINCE = re.compile(r"C: \S+ UID FETCH 1:\* \(UID FLAGS\) "
			  r"\(CHANGEDSINCE \d+( VANISHED)?\)")
VANISHED = re.compile(r"C: \S+ UID FETCH 1:\* \(UID FLAGS\) "
		      r"\(CHANGEDSINCE \d+ VANISHED\)")
SEARCH = re.compile(r"C: \S+ UID SEARCH")


@pytest.fixture(params=["condstore", "noqresync", "plain"])
def setup(request, server, server_factory, new_user, witness, tmp_path):
	"""(server info, user, mount, witness) with list_ttl=1; "noqresync"
	runs against a Dovecot that does not advertise QRESYNC, "plain" one
	that advertises neither CONDSTORE nor QRESYNC."""
	info = server
	if request.param == "plain":
		info = server_factory(drop_caps=["CONDSTORE", "QRESYNC"])
	elif request.param == "noqresync":
		info = server_factory(drop_caps=["QRESYNC"])
	user = new_user("refresh")
	conftest.seed_account(info, user, {"INBOX": 5}, seed=41)
	mt = conftest.Mounter(info, str(tmp_path))
	m = mt.mount(user, opts=("list_ttl=1",), debug=True)
	w = conftest.Witness(info, user) if info is not server else \
		witness(user)
	yield request.param, info, user, m, w
	problems = mt.cleanup()
	assert not problems, "\n".join(problems)


def listing(m):
	return sorted(os.listdir(os.path.join(m.path, "INBOX")))


def test_other_clients_changes_appear(setup):
	kind, info, user, m, w = setup
	before = fresh(w, "INBOX")
	assert listing(m) == sorted(r["name"] for r in before)
	mark = len(m.stderr())

	writer = Writer(info, user)
	try:
		writer.store("INBOX", before[1]["uid"], "FLAGS",
			     "(\\Answered $Refreshed)")
		writer.store("INBOX", before[2]["uid"], "+FLAGS", "(\\Deleted)")
		writer.c.uid("EXPUNGE", str(before[2]["uid"]))
		writer.append("INBOX", sm.make_messages(42, 1)[0])
	finally:
		writer.close()
	after = fresh(w, "INBOX")
	want = sorted(r["name"] for r in after)
	assert before[2]["name"] not in want

	got = wait_until(lambda: listing(m) == want and listing(m), timeout=10)
	assert got == want
	flags = os.getxattr(os.path.join(m.path, "INBOX", before[1]["name"]),
			    "user.imap.flags").decode().split()
	assert set(flags) == {"\\Answered", "$Refreshed"}
	log = m.stderr()[mark:]
	if kind == "condstore":
		assert VANISHED.search(log), log[-2000:]
		assert not SEARCH.search(log), log[-2000:]
	elif kind == "noqresync":
		assert CHANGEDSINCE.search(log), log[-2000:]
		assert not VANISHED.search(log), log[-2000:]
		assert SEARCH.search(log), log[-2000:]


def test_refresh_asks_only_for_changes_with_condstore(setup):
	kind, info, user, m, w = setup
	listing(m)
	mark = len(m.stderr())
	writer = Writer(info, user)
	try:
		writer.store("INBOX", fresh(w, "INBOX")[0]["uid"], "+FLAGS",
			     "($Probe)")
	finally:
		writer.close()
	assert wait_until(lambda: "$Probe" in os.getxattr(
		os.path.join(m.path, "INBOX", listing(m)[0]),
		"user.imap.flags").decode().split(), timeout=10)
	log = m.stderr()[mark:]
	if kind == "noqresync":
		assert CHANGEDSINCE.search(log), log[-2000:]
	elif kind == "condstore":
		assert CHANGEDSINCE.search(log), log[-2000:]
		# With QRESYNC enabled the server names the changed message by
		# UID, so no scan of every flag is needed to place it.
		assert not re.search(r"UID FETCH 1:\* \(UID FLAGS\)\r?$", log,
				     re.M), log[-2000:]
	else:
		assert not CHANGEDSINCE.search(log), log[-2000:]
		assert re.search(r"UID FETCH 1:\* \(UID FLAGS\)\r?$", log,
				 re.M), log[-2000:]


@pytest.mark.parametrize("refused", ["VANISHED", "CONDSTORE"])
def test_a_server_refusing_a_refresh_gets_a_scan(server, server_factory,
						  new_user, witness, mounter,
						  tmp_path, refused):
	"""The server answers BAD to the refresh with VANISHED (or, without
	QRESYNC, with CHANGEDSINCE): the log says so, that refresh is made
	by a scan of every flag instead (an expunge shows, ls never fails),
	and the next one does without what was refused."""
	info = server
	if refused == "CONDSTORE":
		info = server_factory(drop_caps=["QRESYNC"])
		mounter = conftest.Mounter(info, str(tmp_path))
		proxy = Spoil(info["imap_port"], b" (CHANGEDSINCE",
			      b" (XCHANGEDSINCE")
		said = "refused a CONDSTORE refresh"
		then = re.compile(r"C: \S+ UID FETCH 1:\* \(UID FLAGS\)\r?$",
				  re.M)
	else:
		proxy = Spoil(info["imap_port"], b" VANISHED)",
			      b" XVANISHED)")
		said = "refused a refresh with VANISHED"
		then = SEARCH
	user = new_user("refusing")
	conftest.seed_account(info, user, {"INBOX": 5}, seed=43)
	w = conftest.Witness(info, user) if info is not server else \
		witness(user)
	try:
		m = proxy.mount(mounter, user, opts=("list_ttl=1",), debug=True)
		before = fresh(w, "INBOX")
		assert listing(m) == sorted(r["name"] for r in before)
		for n, rec in enumerate(before[1:3]):
			# Before the change: the watcher's news of it may
			# start the refresh at once.
			mark = len(m.stderr())
			writer = Writer(info, user)
			try:
				writer.store("INBOX", rec["uid"], "+FLAGS",
					     "(\\Deleted)")
				writer.c.uid("EXPUNGE", str(rec["uid"]))
			finally:
				writer.close()
			want = sorted(r["name"] for r in fresh(w, "INBOX"))
			assert wait_until(lambda: listing(m) == want,
					  timeout=10), listing(m)
			log = m.stderr()[mark:]
			if n == 0:
				assert proxy.cut.is_set(), "nothing was spoilt"
				assert said in log, log[-3000:]
			else:
				assert said not in log, log[-3000:]
				assert then.search(log), log[-3000:]
	finally:
		proxy.stop()
		if info is not server:
			mounter.cleanup()

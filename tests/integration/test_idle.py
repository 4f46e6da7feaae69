"""IDLE on INBOX: what another client changes there shows at once, not
after -o list_ttl (30 s by default): a new message, an expunge, a flag
change, also after the server dropped the watching connection. With -o
noidle, or a server without IDLE, changes wait for list_ttl and the mount
works as before. Unmounting ends the IDLE (DONE, LOGOUT) and the daemon
exits cleanly."""

import os
import re
import time

import pytest

import conftest
import imapfs_samplemail as sm
import imapfs_testserver as ts
from conftest import sha256
from writehelpers import fresh, wait_until, Writer

IDLING = re.compile(r"\[conn 0\] C: \S+ IDLE")


@pytest.fixture
def inbox(server, new_user):
	user = new_user("idle")
	conftest.seed_account(server, user, {"INBOX": 3}, seed=51)
	return user


def names(m):
	return sorted(os.listdir(os.path.join(m.path, "INBOX")))


def flags(m, name):
	return set(os.getxattr(os.path.join(m.path, "INBOX", name),
			       "user.imap.flags").decode().split())


def idling(m):
	assert wait_until(lambda: IDLING.search(m.stderr()), timeout=10), \
		"imapfs never sent IDLE:\n" + m.stderr()[-2000:]


def test_a_new_message_shows_at_once(server, inbox, mounter, witness):
	m = mounter.mount(inbox, debug=True)
	before = names(m)
	idling(m)
	sample = sm.make_messages(52, 1)[0]
	writer = Writer(server, inbox)
	try:
		writer.append("INBOX", sample)
	finally:
		writer.close()
	want = sorted(r["name"] for r in fresh(witness(inbox), "INBOX"))
	assert len(want) == len(before) + 1
	assert wait_until(lambda: names(m) == want), \
		(names(m), want, m.stderr()[-3000:])
	new = (set(want) - set(before)).pop()
	with open(os.path.join(m.path, "INBOX", new), "rb") as f:
		assert sha256(f.read()) == sha256(sample.raw)


def test_mail_that_came_before_the_watch_began_shows(server, inbox, mounter,
						     witness):
	"""INBOX is listed before the watcher's IDLE has begun (its EXAMINE
	reaches the server late), and a message comes in between: it shows
	once the watch begins, not after list_ttl."""
	from writehelpers import HoldCommand

	proxy = HoldCommand(server["imap_port"], b"EXAMINE")
	try:
		m = proxy.mount(mounter, inbox, opts=["list_ttl=600"])
		before = names(m)
		assert len(before) == 3
		assert proxy.cut.wait(10), "the watcher sent no EXAMINE"
		writer = Writer(server, inbox)
		try:
			writer.append("INBOX", sm.make_messages(53, 1)[0])
		finally:
			writer.close()
		proxy.released.set()
		want = sorted(r["name"] for r in fresh(witness(inbox), "INBOX"))
		assert len(want) == 4
		assert wait_until(lambda: names(m) == want, timeout=15), \
			(names(m), want, m.stderr()[-3000:])
	finally:
		proxy.stop()


def test_a_listing_made_before_the_watch_is_not_asked_again_for_nothing(
		server, inbox, mounter):
	"""INBOX is listed before the watcher's EXAMINE reaches the server,
	and nothing comes meanwhile: the EXAMINE shows the same mailbox, so
	the listing is not asked for again."""
	from writehelpers import HoldCommand

	proxy = HoldCommand(server["imap_port"], b"EXAMINE")
	try:
		m = proxy.mount(mounter, inbox, opts=["list_ttl=600"],
				debug=True)
		assert len(names(m)) == 3
		assert proxy.cut.wait(10), "the watcher sent no EXAMINE"
		proxy.released.set()
		idling(m)
		time.sleep(0.5)
		assert not re.search(r"C: \S+ UID FETCH 1:\* \(UID FLAGS\) "
				     r"\(CHANGEDSINCE", m.stderr()), \
			m.stderr()[-3000:]
	finally:
		proxy.stop()


def test_an_expunge_and_a_flag_change_show_at_once(server, inbox, mounter,
						   witness):
	m = mounter.mount(inbox, debug=True)
	recs = fresh(witness(inbox), "INBOX")
	assert names(m) == sorted(r["name"] for r in recs)
	keep, gone = recs[0], recs[1]
	gone_path = os.path.join(m.path, "INBOX", gone["name"])
	assert "$Watched" not in flags(m, keep["name"])
	os.stat(gone_path)	# the kernel now holds its entry and attributes
	idling(m)
	writer = Writer(server, inbox)
	try:
		writer.store("INBOX", keep["uid"], "+FLAGS", "($Watched)")
		writer.store("INBOX", gone["uid"], "+FLAGS", "(\\Deleted)")
		writer.c.uid("EXPUNGE", str(gone["uid"]))
	finally:
		writer.close()
	assert wait_until(lambda: not os.path.exists(gone_path))
	assert gone["name"] not in names(m)
	assert wait_until(lambda: "$Watched" in flags(m, keep["name"]))


def test_the_watch_comes_back_after_a_drop(server, inbox, mounter, witness):
	m = mounter.mount(inbox, debug=True)
	idling(m)
	mark = len(m.stderr())
	ts.doveadm(server, "kick", inbox)	# every session of the user
	assert wait_until(lambda: IDLING.search(m.stderr()[mark:]),
			  timeout=10), m.stderr()[mark:][-2000:]
	before = names(m)	# refreshed now, and trusted for list_ttl
	writer = Writer(server, inbox)
	try:
		writer.append("INBOX", sm.make_messages(55, 1)[0])
	finally:
		writer.close()
	want = sorted(r["name"] for r in fresh(witness(inbox), "INBOX"))
	assert len(want) == len(before) + 1
	assert wait_until(lambda: names(m) == want), (names(m), want)


def test_noidle_waits_for_list_ttl(server, inbox, mounter):
	m = mounter.mount(inbox, opts=("noidle",), debug=True)
	before = names(m)
	writer = Writer(server, inbox)
	try:
		writer.append("INBOX", sm.make_messages(53, 1)[0])
	finally:
		writer.close()
	time.sleep(2)
	assert names(m) == before
	assert not IDLING.search(m.stderr())


def test_a_server_without_idle_still_mounts(server_factory, new_user,
					    tmp_path):
	info = server_factory(drop_caps=["IDLE"])
	user = new_user("noidle")
	conftest.seed_account(info, user, {"INBOX": 2}, seed=54)
	mt = conftest.Mounter(info, str(tmp_path))
	try:
		m = mt.mount(user, debug=True)
		assert len(names(m)) == 2
		assert "does not offer IDLE" in m.stderr()
		assert not IDLING.search(m.stderr())
	finally:
		problems = mt.cleanup()
	assert not problems, "\n".join(problems)


def test_unmount_ends_the_idle(server, inbox, mounter):
	m = mounter.mount(inbox, debug=True)
	names(m)
	idling(m)
	started = time.monotonic()
	mounter.unmount(m)
	assert time.monotonic() - started < 5
	log = m.stderr()
	assert re.search(r"\[conn 0\] C: DONE", log), log[-2000:]
	assert re.search(r"\[conn 0\] C: \S+ LOGOUT", log), log[-2000:]


def test_unmount_does_not_wait_for_a_silent_server(server, inbox, mounter):
	"""The watcher's connection finds a server that accepts and never
	greets: at unmount imapfs gives the attempt up at once instead of
	waiting out -o timeout (60 s)."""
	from writehelpers import QuietAfterFirst

	proxy = QuietAfterFirst(server["imap_port"])
	try:
		m = proxy.mount(mounter, inbox)
		assert len(names(m)) == 3
		assert wait_until(lambda: proxy.quiet, timeout=10), \
			"the watcher did not connect"
		mounter.mounts.remove(m)
		started = time.monotonic()
		problems = m.unmount(timeout=40)
		assert not problems, problems
		assert time.monotonic() - started < 10
	finally:
		proxy.stop()

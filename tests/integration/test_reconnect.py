"""Dropped connections: imapfs reconnects and goes on; a read that cannot
be served fails with EIO and never returns wrong bytes; a server that is
gone gives errors in bounded time, not a hang."""

import errno
import os
import re
import threading

import pytest

import conftest
import imapfs_samplemail as sm
import imapfs_testserver as ts
from writehelpers import errno_of, fresh, wait_until


def path_of(m, mbox, rec):
	return os.path.join(m.path, mbox, rec["name"])


def read_all(path):
	with open(path, "rb") as f:
		return f.read()


def test_reads_go_on_after_the_server_drops_every_connection(
		mnt, imap, server, witness):
	recs = fresh(imap, "INBOX")
	want = {r["name"]: imap.body("INBOX", r["uid"]) for r in recs}
	others = sorted(r["name"] for r in fresh(imap, "Other"))
	assert read_all(path_of(mnt, "INBOX", recs[0])) == want[recs[0]["name"]]
	ts.doveadm(server, "kick", imap.user)  # imapfs's sessions and ours
	for rec in recs[1:]:
		assert conftest.sha256(read_all(path_of(mnt, "INBOX", rec))) == \
			conftest.sha256(want[rec["name"]])
	assert sorted(os.listdir(os.path.join(mnt.path, "Other"))) == others


def test_flags_can_be_set_after_a_drop(mnt, imap, server, witness):
	rec = fresh(imap, "INBOX")[0]
	os.listdir(os.path.join(mnt.path, "INBOX"))
	ts.doveadm(server, "kick", imap.user)
	os.setxattr(path_of(mnt, "INBOX", rec), "user.imap.flags",
		    b"\\Answered $AfterDrop")
	after = fresh(witness(imap.user), "INBOX")[0]
	assert set(after["flags"]) == {"\\Answered", "$AfterDrop"}


def test_kick_during_a_large_read_gives_right_bytes_or_eio(
		account, mounter, server, witness):
	user = account["user"]
	c = ts.connect(server, user)
	try:
		sm.append(c, "Other", sm.big_message(seed=61, size=6 << 20))
	finally:
		c.logout()
	w = witness(user)
	rec = fresh(w, "Other")[-1]
	want = w.body("Other", rec["uid"])
	w.close()
	m = mounter.mount(user)
	path = path_of(m, "Other", rec)
	got = bytearray()
	errors = []
	with open(path, "rb", buffering=0) as f:
		pos = 0
		kicked = False
		while pos < len(want):
			try:
				chunk = os.pread(f.fileno(), 300 * 1024, pos)
			except OSError as e:
				errors.append(e.errno)
				assert e.errno == errno.EIO, os.strerror(e.errno)
				continue
			assert chunk, "EOF at %d of %d" % (pos, len(want))
			assert chunk == want[pos:pos + len(chunk)], \
				"wrong bytes at %d" % pos
			pos += len(chunk)
			got += chunk
			if not kicked:
				ts.doveadm(server, "kick", user)
				kicked = True
	assert bytes(got) == want
	assert len(errors) <= 3, errors


def test_server_gone_fails_reads_in_bounded_time(new_user, server_factory,
						 tmp_path):
	info = server_factory()
	user = new_user("gone")
	# Enough messages that the last is beyond what reading the first
	# fetches ahead.
	conftest.seed_account(info, user, {"INBOX": 40}, seed=62)
	mt = conftest.Mounter(info, str(tmp_path))
	try:
		m = mt.mount(user, opts=("timeout=3",))
		names = sorted(os.listdir(os.path.join(m.path, "INBOX")))
		cached = read_all(os.path.join(m.path, "INBOX", names[0]))
		# Stopping the master leaves its sessions running: end them,
		# also one that logged in after the kick.
		ts.doveadm(info, "kick", user)
		assert ts.stop(info["dir"])
		ts.end_sessions(info)

		# A message already read is served from the cache.
		assert read_all(os.path.join(m.path, "INBOX", names[0])) == \
			cached
		# One never read fails, within the timeout and its retries.
		outcome = {}

		def read_uncached():
			try:
				read_all(os.path.join(m.path, "INBOX", names[-1]))
				outcome["result"] = "read"
			except OSError as e:
				outcome["result"] = e.errno

		t = threading.Thread(target=read_uncached)
		t.start()
		t.join(60)
		assert not t.is_alive(), "a read hung with the server gone"
		assert outcome["result"] == errno.EIO, outcome
		log = m.stderr()
		assert "connect" in log.lower(), log[-2000:]
		# A read's timeout with connections refused says so. (The
		# watcher's own connection, open when the server stopped, may
		# time out first on a loaded machine: that line is its own.)
		for line in log.splitlines():
			if "did not answer" in line and "watching" not in line:
				assert "Connection refused" in line, line
	finally:
		problems = mt.cleanup()
	assert not problems, "\n".join(problems)


def test_a_lookup_when_the_list_cannot_be_refreshed_fails_cleanly(
		server, new_user, mounter):
	"""Another client makes a mailbox (NOTIFY: the list must be asked
	for again), then the server becomes unreachable: looking the new
	name up fails with an error, and imapfs lives on."""
	import imapfs_proxy
	from writehelpers import Writer

	user = new_user("nolist")
	conftest.seed_account(server, user, {"INBOX": 1})
	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", server["imaps_port"]))
	proxy.start()
	try:
		m = mounter.mount(user, debug=True, opts=["timeout=3"],
				  url="imaps://%s@127.0.0.1:%d" %
				  (user, proxy.port))
		before = sorted(os.listdir(m.path))
		assert "INBOX" in before and "Made" not in before
		assert wait_until(lambda: re.search(
			r"\[conn 0\] C: \S+ NOTIFY SET ", m.stderr()),
			timeout=10)
		w = Writer(server, user)
		try:
			w.c.create("Made")
		finally:
			w.close()
		assert wait_until(lambda: re.search(
			r"\[conn 0\] S: \* LIST .*Made", m.stderr()),
			timeout=10), m.stderr()[-2000:]
	finally:
		proxy.stop()
	e = errno_of(os.stat, os.path.join(m.path, "Made"))
	assert e in (errno.EIO, errno.ENOENT, errno.ETIMEDOUT), os.strerror(e)
	assert m.proc.poll() is None, "imapfs died:\n" + m.stderr()[-3000:]
	assert sorted(os.listdir(m.path)) == before


def test_a_copy_whose_close_failed_is_not_added_later(server, new_user,
						      mounter):
	"""cp while the server cannot be reached: close() fails, and the
	message is not added behind cp's back once the server is back (cp
	again would make a duplicate); the log says where the bytes are."""
	import imapfs_proxy

	user = new_user("closefail")
	conftest.seed_account(server, user, {"INBOX": 1, "Drafts": 0})
	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", server["imaps_port"]))
	port = proxy.port
	proxy.start()
	m = mounter.mount(user, opts=["timeout=5", "list_ttl=1"],
			  url="imaps://%s@127.0.0.1:%d" % (user, port))
	drafts = os.path.join(m.path, "Drafts")
	assert os.listdir(drafts) == []
	proxy.stop()
	f = open(os.path.join(drafts, "ghost.eml"), "wb")
	f.write(b"Subject: ghost\r\n\r\nnot to be added twice\r\n")
	with pytest.raises(OSError) as e:
		f.close()
	assert e.value.errno in (errno.EIO, errno.ETIMEDOUT), e.value
	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", server["imaps_port"]),
					  port=port)
	proxy.start()
	try:
		c = ts.connect(server, user)
		try:
			# the mount works again, and the copy stays out of it
			sm.append(c, "Drafts", sm.make_messages(5, 1)[0])
			assert wait_until(lambda: len(os.listdir(drafts)) == 1,
					  timeout=20), m.stderr()[-2000:]

			def more():
				typ, data = c.select("Drafts", readonly=True)
				return int(data[0]) > 1
			assert not wait_until(more, timeout=12, step=0.5)
		finally:
			c.logout()
	finally:
		proxy.stop()
	assert "ghost.eml was not added to the mailbox" in m.stderr()
	assert "close() said so" in m.stderr()
	# it could not connect, and says when it could again
	assert "connected to 127.0.0.1 again" in m.stderr(), m.stderr()


def test_a_listed_mailbox_shows_at_once_when_the_server_goes_silent(
		server, new_user, mounter):
	"""The link stops carrying anything (a laptop's network gone, a NAT
	that forgot the connections): ls of a mailbox listed before shows
	that listing after a short wait, not after the whole timeout at each
	step (list, then mailbox); the refresh goes on behind."""
	import time
	import imapfs_proxy

	user = new_user("silent")
	conftest.seed_account(server, user, {"INBOX": 3, "Other": 2})
	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", server["imaps_port"]))
	proxy.start()
	try:
		m = mounter.mount(user, opts=["list_ttl=1", "noidle"],
				  url="imaps://%s@127.0.0.1:%d" %
				  (user, proxy.port))
		inbox = os.path.join(m.path, "INBOX")
		names = sorted(os.listdir(inbox))
		top = sorted(os.listdir(m.path))
		proxy.set_rtt(10 * 60 * 1000)	# nothing gets through now
		time.sleep(1.5)			# the listings are stale
		start = time.monotonic()
		assert sorted(os.listdir(inbox)) == names
		assert sorted(os.listdir(m.path)) == top
		took = time.monotonic() - start
		# -o timeout is 60 s: the two refreshes gave up well before it
		assert took < 30, took
		assert "shown as it was" in m.stderr(), m.stderr()[-2000:]
	finally:
		proxy.stop()


def test_listings_show_at_once_while_connections_are_refused(
		server, new_user, mounter):
	"""The server refuses connections (down, or a firewall that rejects
	them): once imapfs has found that out, ls of what it has listed
	shows it as it was without waiting for a refresh at each step, and
	the log says why."""
	import time
	import imapfs_proxy

	user = new_user("refused")
	conftest.seed_account(server, user, {"INBOX": 3, "Other": 2})
	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", server["imaps_port"]))
	proxy.start()
	m = mounter.mount(user, opts=["list_ttl=1", "noidle"],
			  url="imaps://%s@127.0.0.1:%d" % (user, proxy.port))
	dirs = [m.path] + [os.path.join(m.path, d) for d in ("INBOX", "Other")]
	before = [sorted(os.listdir(d)) for d in dirs]
	proxy.stop()
	time.sleep(1.5)			# the listings are stale
	for _ in range(2):
		assert [sorted(os.listdir(d)) for d in dirs] == before
	log = m.stderr()
	assert "shown as it was" in log, log[-2000:]
	assert "the server cannot be reached" in log, log[-2000:]


def test_new_mail_shows_soon_after_an_outage(server, new_user, mounter):
	"""The server cannot be reached for a while, so the watcher's pause
	between attempts has grown (to 16 s here, up to 5 minutes). Once
	imapfs reaches the server again for anything, the watcher tries at
	once: new mail shows in about a second, not after the pause or
	list_ttl."""
	import time
	import imapfs_proxy

	user = new_user("outage")
	conftest.seed_account(server, user, {"INBOX": 1})
	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", server["imaps_port"]))
	port = proxy.port
	proxy.start()
	m = mounter.mount(user, opts=["list_ttl=600"], debug=True,
			  url="imaps://%s@127.0.0.1:%d" % (user, port))
	inbox = os.path.join(m.path, "INBOX")
	first = os.listdir(inbox)[0]
	# the watcher is up
	assert wait_until(lambda: re.search(r"\[conn 0\] S: \+ ", m.stderr()),
			  timeout=10), m.stderr()[-2000:]
	proxy.stop()
	assert wait_until(lambda: "trying again in 16 s" in m.stderr(),
			  timeout=40), m.stderr()[-2000:]
	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", server["imaps_port"]),
					  port=port)
	proxy.start()
	try:
		# anything that reaches the server: a flag set
		os.setxattr(os.path.join(inbox, first), "user.imap.flags",
			    b"\\Flagged")
		c = ts.connect(server, user)
		try:
			sm.append(c, "INBOX", sm.make_messages(7, 1)[0])
		finally:
			c.logout()
		start = time.monotonic()
		assert wait_until(lambda: len(os.listdir(inbox)) == 2,
				  timeout=30), m.stderr()[-2000:]
		# the pause had 16 s to go; list_ttl 600
		assert time.monotonic() - start < 8
	finally:
		proxy.stop()


def test_while_connections_are_refused_errors_come_at_once_and_end_soon(
		server, new_user, mounter, witness):
	"""The server refuses connections, with -o timeout at its default
	(60 s): a read of a message not in the cache fails after a short
	round of attempts, those after it fail at once with the same reason,
	and the first access once the server is back uses it, without a
	pause between attempts to wait out."""
	import time
	import imapfs_proxy

	user = new_user("refusedops")
	conftest.seed_account(server, user, {"INBOX": 30}, seed=64)
	recs = witness(user).messages("INBOX")
	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", server["imaps_port"]))
	port = proxy.port
	proxy.start()
	m = mounter.mount(user, opts=["noidle"],
			  url="imaps://%s@127.0.0.1:%d" % (user, port))
	inbox = os.path.join(m.path, "INBOX")
	assert sorted(os.listdir(inbox)) == [r["name"] for r in recs]
	read_all(path_of(m, "INBOX", recs[0]))
	proxy.stop()

	def timed(f):
		start = time.monotonic()
		try:
			f()
			result = 0
		except OSError as e:
			result = e.errno
		return result, time.monotonic() - start

	# The first gives the server a round of attempts (about 1.4 s). The
	# open succeeds (it would have fetched the message for the kernel
	# to read from the cache), the read says what failed.
	fd = os.open(path_of(m, "INBOX", recs[-1]), os.O_RDONLY)
	try:
		got, took = timed(lambda: os.read(fd, 4096))
	finally:
		os.close(fd)
	assert got == errno.EIO and took < 15, (got, took)
	# Those after it do not wait for more.
	got, took = timed(lambda: read_all(path_of(m, "INBOX", recs[-2])))
	assert got == errno.EIO and took < 3, (got, took)
	got, took = timed(lambda: os.setxattr(path_of(m, "INBOX", recs[0]),
					      "user.imap.flags", b"\\Flagged"))
	assert got == errno.EIO and took < 3, (got, took)
	log = m.stderr()
	assert "UID STORE: cannot connect" in log, log[-2000:]
	assert "Connection refused" in log, log[-2000:]

	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", server["imaps_port"]),
					  port=port)
	proxy.start()
	try:
		time.sleep(1.5)
		got, took = timed(lambda: read_all(path_of(m, "INBOX",
							   recs[-3])))
		assert got == 0 and took < 5, (got, took)
		assert read_all(path_of(m, "INBOX", recs[-3])) == \
			witness(user).body("INBOX", recs[-3]["uid"])
	finally:
		proxy.stop()


def test_sessions_ended_one_by_one_do_not_hold_up_the_next_access(
		server, new_user, mounter, witness):
	"""A server shutting down ends its sessions one by one, over seconds
	(here a proxy refuses new connections and cuts imapfs's four a
	second apart): the first change after it gets the short round of
	attempts (about 1.4 s) and its EIO, not a wait that doubled at each
	cut (some 10 s)."""
	import socket
	import time
	import imapfs_proxy

	user = new_user("onebyone")
	boxes = ["INBOX", "A", "B", "C", "D"]
	conftest.seed_account(server, user, {b: 4 for b in boxes}, seed=65)
	recs = witness(user).messages("INBOX")
	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", server["imaps_port"]))
	proxy.start()
	try:
		m = mounter.mount(user, max_conns=4, opts=["noidle"],
				  url="imaps://%s@127.0.0.1:%d" %
				  (user, proxy.port))
		# Mailboxes listed at once: one connection each, up to 4.
		for _ in range(2):
			listers = [threading.Thread(
				target=os.listdir,
				args=(os.path.join(m.path, b),)) for b in boxes]
			for t in listers:
				t.start()
			for t in listers:
				t.join(30)
			if proxy.counters()["open"] == 4:
				break
		assert proxy.counters()["open"] == 4, proxy.counters()
		time.sleep(2.5)  # they have served a while
		proxy.stopping = True
		proxy.sock.close()
		for c in list(proxy.conns):
			for s in (c.client, c.upstream):
				try:
					s.shutdown(socket.SHUT_RDWR)
				except OSError:
					pass    # gone already
			time.sleep(1.0)
		start = time.monotonic()
		got = errno_of(os.setxattr, path_of(m, "INBOX", recs[0]),
			       "user.imap.flags", b"\\Flagged")
		took = time.monotonic() - start
	finally:
		proxy.stop()
	assert got == errno.EIO and took < 5, (got, took)

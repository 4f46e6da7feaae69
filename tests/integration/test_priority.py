"""Priority over prefetch, on a slow link: while a scan of a mailbox has
megabytes coming ahead of the reader, a command the user waits for in
that same mailbox (a flag change, a read of a message the prefetch has
not asked for) does not queue behind them, nor does a read of another
mailbox whose own prefetch has no connection to go to.

The link is a proxy limited to a few MB/s, and what is measured is how
many bytes came from the server while the command ran, not how long it
took: behind the prefetch it would take most of what was asked ahead."""

import os
import time

import pytest

import conftest
import imapfs_samplemail as sm
import imapfs_testserver as ts
from writehelpers import wait_until

MBOX = "Scan"
SMALL = "Small"
COUNT = 80
SIZE = 512 << 10
RATE = 3 << 20	# bytes a second, each way


@pytest.fixture(scope="module")
def scan_user(server):
	user = "prio%d_%d" % (os.getpid(), next(conftest._user_counter))
	c = ts.connect(server, user)
	try:
		sm.create(c, MBOX)
		for i in range(COUNT):
			sm.append(c, MBOX, sm.big_message(seed=i, size=SIZE))
		sm.create(c, SMALL)
		for s in sm.make_messages(seed=7, count=6):
			sm.append(c, SMALL, s)
	finally:
		c.logout()
	return user


@pytest.fixture(params=[4])
def slow(request, server, scan_user, mounter):
	import imapfs_proxy

	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", server["imaps_port"]),
					  rtt_ms=20)
	proxy.start()
	m = mounter.mount(scan_user, max_conns=request.param,
			  url="imaps://%s@127.0.0.1:%d" % (scan_user, proxy.port))
	try:
		yield m, proxy
	finally:
		mounter.unmount(m)
		proxy.stop()


def start_scan(m, proxy):
	"""Lists MBOX, then reads its first messages in order on a slow
	link until the prefetch has asked for many megabytes ahead.
	Returns the sorted names."""
	d = os.path.join(m.path, MBOX)
	names = sorted(os.listdir(d))
	assert len(names) == COUNT
	proxy.set_rate(RATE)
	for name in names[:8]:
		with open(os.path.join(d, name), "rb") as f:
			assert len(f.read()) > SIZE // 2
	# The window is open: what the proxy carries now runs ahead of
	# the reader.
	start = s2c(proxy)
	assert wait_until(lambda: s2c(proxy) - start > 2 * SIZE,
		timeout=10), "no prefetch under way"
	return names


def s2c(proxy):
	"""Bytes the proxy has passed on to imapfs: at RATE, not as fast as
	it takes them from the server."""
	return proxy.counters()["sent_s2c"]


def test_a_flag_change_does_not_wait_behind_the_prefetch(slow, witness,
							  scan_user):
	m, proxy = slow
	names = start_scan(m, proxy)
	path = os.path.join(m.path, MBOX, names[1])
	before = s2c(proxy)
	os.setxattr(path, "user.imap.flags", b"\\Flagged")
	came = s2c(proxy) - before
	assert came < 2 * SIZE, (
		"the STORE waited for %d bytes of prefetch" % came)
	w = witness(scan_user)
	rec = [r for r in w.messages(MBOX) if r["name"] == names[1]][0]
	assert "\\Flagged" in w.flags(MBOX, rec["uid"])


def test_a_read_past_the_prefetch_does_not_wait_behind_it(slow, witness,
							   scan_user):
	m, proxy = slow
	names = start_scan(m, proxy)
	last = names[-1]
	before = s2c(proxy)
	with open(os.path.join(m.path, MBOX, last), "rb") as f:
		data = f.read()
	came = s2c(proxy) - before
	# It shares the link with the prefetch's streams: its own bytes
	# and theirs meanwhile, a few times its size, not the megabytes
	# asked for ahead of it.
	assert came < 8 * SIZE, (
		"the read waited for %d bytes of prefetch" % came)
	w = witness(scan_user)
	rec = [r for r in w.messages(MBOX) if r["name"] == last][0]
	assert data == w.body(MBOX, rec["uid"])
	assert "\\Seen" not in w.flags(MBOX, rec["uid"])


@pytest.mark.parametrize("slow", [2], indirect=True)
def test_a_scan_of_another_mailbox_is_not_held_up(slow, witness, scan_user):
	"""With two connections, one streams the scan and the other is kept
	for what the user waits for, so a second scan's prefetch has nowhere
	to go: its reader, waiting for a message of that prefetch, has it
	sent at once rather than after the first scan's."""
	m, proxy = slow
	start_scan(m, proxy)
	d = os.path.join(m.path, SMALL)
	before = s2c(proxy)
	got = {}
	for name in sorted(os.listdir(d)):
		with open(os.path.join(d, name), "rb") as f:
			got[name] = f.read()
	came = s2c(proxy) - before
	assert came < 4 * SIZE, (
		"the reads of %s waited for %d bytes of prefetch" % (SMALL, came))
	w = witness(scan_user)
	recs = w.messages(SMALL)
	assert len(recs) == len(got) == 6
	for r in recs:
		assert got[r["name"]] == w.body(SMALL, r["uid"])


def test_a_slow_link_is_not_asked_for_more_than_seconds_of_mail(slow):
	"""On a slow link the prefetch asks for what the link carries in a
	few seconds, not 32 MiB: a reader whose message is in a batch
	already on the wire would wait for all that came before it (at
	300 KB/s, past -o timeout)."""
	m, proxy = slow
	rate = 512 << 10
	d = os.path.join(m.path, MBOX)
	names = sorted(os.listdir(d))
	proxy.set_rate(rate)
	start = s2c(proxy)
	for name in names[:6]:
		with open(os.path.join(d, name), "rb") as f:
			assert len(f.read()) > SIZE // 2
	read = s2c(proxy) - start

	def quiet():
		before = s2c(proxy)
		time.sleep(1.0)
		return s2c(proxy) == before
	# What was asked for ahead comes in (at most seconds of it), then
	# nothing more: the reader has stopped.
	assert wait_until(quiet, timeout=30, step=0), "the prefetch went on"
	ahead = s2c(proxy) - start - read
	assert ahead < 6 * rate, (
		"%d bytes came ahead of the reader at %d bytes/s" % (ahead, rate))

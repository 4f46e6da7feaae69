"""A message whole in the cache is read by the kernel from the cache file
itself (FUSE passthrough; Linux 6.9 and later, and imapfs running with
CAP_SYS_ADMIN): imapfs answers its OPEN and RELEASE, and sees no READ.
The bytes are the server's, through read() and mmap, and no \\Seen is
set; opens of a message made while it was still being fetched, which
imapfs serves itself, and opens made after, which the kernel would
refuse to mix, both work; -o nopassthrough turns it off. (A disk full of
cached mail making room despite registered files: test_append.py.)
"""

import gzip
import mmap
import os
import re

import pytest

import conftest

READ = re.compile(r"opcode: READ \(15\), nodeid: (\d+)")


AGREED = "the kernel reads cached messages from the cache itself"
REFUSED = "the kernel refused to read the cache itself"


def kernel_offers_passthrough():
	"""True or False from the kernel's config; None where it cannot be
	read (many distributions ship no /proc/config.gz)."""
	try:
		with gzip.open("/proc/config.gz", "rt") as f:
			config = f.read()
	except OSError:
		return None
	return "CONFIG_FUSE_PASSTHROUGH=y" in config


def has_cap_sys_admin():
	"""imapfs runs with the test's capabilities."""
	with open("/proc/self/status") as f:
		for line in f:
			if line.startswith("CapEff:"):
				return (int(line.split()[1], 16) >> 21) & 1 == 1
	return False


def passthrough_expected(log):
	"""Whether the mount whose debug LOG this is should have used
	passthrough: wherever the kernel has it and imapfs may register
	files; where the kernel's config is unknown, as its log says."""
	offered = kernel_offers_passthrough()
	if offered is False or not has_cap_sys_admin():
		return False
	if offered is None:
		return AGREED in log and REFUSED not in log
	return True


def read_counts(log):
	"""READ requests in a libfuse debug log, by node id."""
	counts = {}
	for m in READ.finditer(log):
		counts[m.group(1)] = counts.get(m.group(1), 0) + 1
	return counts


def read_file(path):
	with open(path, "rb") as f:
		return f.read()


@pytest.fixture
def account_of(server, new_user, witness):
	user = new_user("pt")
	conftest.seed_account(server, user, {"INBOX": 12}, seed=71)
	w = witness(user)
	return user, w, w.messages("INBOX")


def test_a_cached_message_is_read_without_imapfs(account_of, mounter):
	"""The first mount fetches every message into the cache; a second
	mount on the same cache reads them all with no READ reaching
	imapfs (the kernel's page cache is the new mount's, empty), and
	gets the server's bytes, also through mmap."""
	user, w, recs = account_of
	flags = w.all_flags("INBOX")
	first = mounter.mount(user)
	for r in recs:
		assert read_file(os.path.join(first.path, "INBOX", r["name"])) \
			== w.body("INBOX", r["uid"])
	mounter.unmount(first)

	m = mounter.mount(user, cache_dir=first.cache_dir, debug=True)
	inbox = os.path.join(m.path, "INBOX")
	for r in recs:
		want = w.body("INBOX", r["uid"])
		assert read_file(os.path.join(inbox, r["name"])) == want
		with open(os.path.join(inbox, r["name"]), "rb") as f:
			with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) \
					as mm:
				assert mm[:] == want
	# No \Seen from any of it.
	assert w.all_flags("INBOX") == flags
	log = m.stderr()
	opens = log.count("opcode: OPEN (14)")
	assert opens >= 2 * len(recs), log[-3000:]
	if not passthrough_expected(log):
		pytest.skip("no FUSE passthrough here (Linux 6.9+ and "
			    "CAP_SYS_ADMIN); the bytes were checked")
	assert AGREED in log and REFUSED not in log, log[-3000:]
	assert read_counts(log) == {}, log[-3000:]


def test_nopassthrough_reads_through_imapfs(account_of, mounter):
	user, w, recs = account_of
	first = mounter.mount(user)
	for r in recs:
		read_file(os.path.join(first.path, "INBOX", r["name"]))
	mounter.unmount(first)

	m = mounter.mount(user, cache_dir=first.cache_dir, debug=True,
			  opts=("nopassthrough",))
	for r in recs:
		assert read_file(os.path.join(m.path, "INBOX", r["name"])) == \
			w.body("INBOX", r["uid"])
	assert sum(read_counts(m.stderr()).values()) >= len(recs)


def test_opens_made_while_a_message_was_fetched_and_after_mix(
		account_of, mounter):
	"""A message opened before it was in the cache (one over 1 MiB: a
	smaller one is fetched at open) is served by imapfs (READs); opened
	again once whole, while the first is still open, it must be too
	(the kernel refuses an open that reads the cache file beside one
	that does not), and so for the rest of the mount (the kernel has
	its pages). The next mount has the kernel read the cache file, also
	for two opens at once."""
	import imapfs_samplemail as sm
	import imapfs_testserver as ts

	user, w, recs = account_of
	c = ts.connect(w.server, user)
	try:
		sm.append(c, "INBOX", sm.big_message(seed=72, size=3 << 19))
	finally:
		c.logout()
	r = w.messages("INBOX")[-1]
	assert r["size"] > 1 << 20
	want = w.body("INBOX", r["uid"])
	m = mounter.mount(user, debug=True)
	path = os.path.join(m.path, "INBOX", r["name"])
	with open(path, "rb") as first:
		assert first.read(10) == want[:10]
		assert first.read() == want[10:]	# whole in the cache now
		with open(path, "rb") as second:
			assert second.read() == want
		with open(path, "rb") as third:
			assert third.read() == want
		first.seek(0)
		assert first.read() == want
	assert sum(read_counts(m.stderr()).values()) >= 1
	mounter.unmount(m)
	m = mounter.mount(user, cache_dir=m.cache_dir, debug=True)
	path = os.path.join(m.path, "INBOX", r["name"])
	with open(path, "rb") as a, open(path, "rb") as b:
		assert a.read() == want
		assert b.read() == want
	if passthrough_expected(m.stderr()):
		assert read_counts(m.stderr()) == {}, m.stderr()[-3000:]


def test_an_open_whose_fetch_failed_is_passed_through_later(
		account_of, mounter, server):
	"""The server is away when a message not yet cached is opened: the
	open succeeds and the read fails (EIO). Once the server is back, the
	next open fetches it and the kernel reads it from the cache file:
	one failure does not send the message through imapfs for good."""
	import errno
	import time
	import imapfs_proxy

	user, w, recs = account_of
	r = recs[-1]
	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", server["imaps_port"]))
	port = proxy.port
	proxy.start()
	m = mounter.mount(user, debug=True, opts=("noidle",),
			  url="imaps://%s@127.0.0.1:%d" % (user, port))
	path = os.path.join(m.path, "INBOX", r["name"])
	node = str(os.stat(path).st_ino)
	proxy.stop()
	fd = os.open(path, os.O_RDONLY)
	try:
		with pytest.raises(OSError) as e:
			os.read(fd, 4096)
		assert e.value.errno == errno.EIO
	finally:
		os.close(fd)
	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", server["imaps_port"]),
					  port=port)
	proxy.start()
	try:
		time.sleep(1.5)		# the next attempt to connect is due
		before = read_counts(m.stderr()).get(node, 0)
		assert read_file(path) == w.body("INBOX", r["uid"])
		if passthrough_expected(m.stderr()):
			assert read_counts(m.stderr()).get(node, 0) == before, \
				m.stderr()[-3000:]
	finally:
		proxy.stop()


def test_a_cache_file_of_the_wrong_size_is_not_passed_through(
		account_of, mounter):
	"""A cache file longer than the message (a damaged cache) is not
	given to the kernel to read: the reader gets the message's bytes,
	as many as stat() says, not the file's."""
	user, w, recs = account_of
	r = recs[0]
	want = w.body("INBOX", r["uid"])
	first = mounter.mount(user)
	assert read_file(os.path.join(first.path, "INBOX", r["name"])) == want
	mounter.unmount(first)
	found = []
	for top, _, files in os.walk(os.path.join(first.cache_dir,
						  "messages")):
		found += [os.path.join(top, f) for f in files
			  if f == str(r["uid"])]
	assert len(found) == 1, found
	with open(found[0], "ab") as f:
		f.write(b"junk that is not the message\r\n" * 100)

	m = mounter.mount(user, cache_dir=first.cache_dir)
	path = os.path.join(m.path, "INBOX", r["name"])
	assert os.stat(path).st_size == len(want)
	assert read_file(path) == want

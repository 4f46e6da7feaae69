"""Prefetch: reading a mailbox in order (cat in sorted order, grep -r,
rsync -a) fetches the following messages ahead in batches, starting small
at the first message and growing as the reader goes on, and every byte
read still equals the server's BODY.PEEK[]; other orders and concurrent
readers get the right bytes too; nothing gains \\Seen; messages expunged
behind imapfs's back fail to read instead of giving wrong bytes."""

import errno
import os
import random
import re
import subprocess
import threading
import time

import pytest

from conftest import Witness, file_sha256, seed_account, sha256, sm, ts

MBOX = "Bulk"
N_SMALL = 197
BIG_SIZES = {40: 1 << 20, 110: 2 << 20, 170: 3 << 20}	# position -> size

# A batched prefetch: one UID FETCH of more than one UID, whole bodies.
BATCH = re.compile(r"C: \S+ UID FETCH (\S*[:,]\S*) \(BODY\.PEEK\[\]\)")
# Anything that would set \Seen.
NON_PEEK = re.compile(r"C: \S+ UID FETCH \S+ \([^)]*\bBODY\[")


@pytest.fixture(scope="module")
def bulk(server):
	"""An account with MBOX: ~200 messages of mixed sizes, three of them
	1-3 MB.  Returns {"user", "sha": {file name: sha256}, "flags":
	{uid: flags}, "names": sorted file names, "sizes": {name: size}}."""
	from conftest import _user_counter
	user = "bulk%d_%d" % (os.getpid(), next(_user_counter))
	small = sm.make_messages(seed=11, count=N_SMALL)
	msgs = []
	for i, s in enumerate(small):
		if i in BIG_SIZES:
			msgs.append(sm.big_message(seed=i, size=BIG_SIZES[i]))
		msgs.append(s)
	c = ts.connect(server, user)
	try:
		sm.create(c, MBOX)
		for s in msgs:
			sm.append(c, MBOX, s)
	finally:
		c.logout()
	w = Witness(server, user)
	try:
		recs = w.messages(MBOX)
		w.examine(MBOX)
		typ, data = w.c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
		assert typ == "OK", data
	finally:
		w.close()
	bodies = {}
	for item in data:
		if isinstance(item, tuple):
			uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
			bodies[uid] = item[1]
	assert len(recs) == len(msgs) == len(bodies)
	assert sum(1 for b in bodies.values() if len(b) > 1 << 20) == 3
	return {
		"user": user,
		"sha": {r["name"]: sha256(bodies[r["uid"]]) for r in recs},
		"body": {r["name"]: bodies[r["uid"]] for r in recs},
		"flags": {r["uid"]: r["flags"] for r in recs},
		"names": sorted(r["name"] for r in recs),
		"markers": {r["name"] for r in recs
			    if sm.MARKER.encode() in bodies[r["uid"]]},
	}


@pytest.fixture
def w(bulk, witness):
	return witness(bulk["user"])


def mount_bulk(mounter, bulk, **kw):
	m = mounter.mount(bulk["user"], **kw)
	d = os.path.join(m.path, MBOX)
	assert sorted(os.listdir(d)) == bulk["names"]
	return m, d


def read(path):
	with open(path, "rb") as f:
		return f.read()


def check_bytes(bulk, d, names):
	bad = [n for n in names if sha256(read(os.path.join(d, n))) !=
	       bulk["sha"][n]]
	assert not bad, "wrong bytes in %d files: %s" % (len(bad), bad[:5])


def batches(log):
	return [m.group(1) for m in BATCH.finditer(log)]


def test_cat_in_sorted_order_reads_right_bytes(bulk, mounter):
	m, d = mount_bulk(mounter, bulk)
	check_bytes(bulk, d, bulk["names"])


def test_cat_in_sorted_order_prefetches_in_batches(bulk, mounter):
	m, d = mount_bulk(mounter, bulk, debug=True)
	for n in bulk["names"]:
		p = subprocess.run(["cat", os.path.join(d, n)],
				   stdout=subprocess.PIPE, timeout=30)
		assert p.returncode == 0
		assert sha256(p.stdout) == bulk["sha"][n], n
	log = m.stderr()
	got = batches(log)
	assert got, "no batched UID FETCH <set> (BODY.PEEK[]) in the trace:" \
		"\n" + "\n".join(l for l in log.splitlines()
				 if "UID FETCH" in l)[-3000:]
	assert not NON_PEEK.search(log), NON_PEEK.search(log).group(0)


def set_size(uid_set):
	"""How many UIDs a set like "2:17,20" names."""
	n = 0
	for part in uid_set.split(","):
		first, _, last = part.partition(":")
		n += int(last or first) - int(first) + 1
	return n


def wait_for_batches(m, at_least=1, timeout=5):
	"""The batched fetches in M's trace, once there are AT_LEAST of them
	(or TIMEOUT seconds passed)."""
	deadline = time.monotonic() + timeout
	while True:
		got = batches(m.stderr())
		if len(got) >= at_least or time.monotonic() > deadline:
			return got
		time.sleep(0.05)


def test_first_message_starts_a_small_prefetch(bulk, mounter):
	"""grep -r, rsync and cp -r begin at a mailbox's first message: reading
	it fetches a few of the next ones at once, and only a few, so a mere
	look at it stays cheap."""
	m, d = mount_bulk(mounter, bulk, debug=True)
	first = bulk["names"][0]
	assert sha256(read(os.path.join(d, first))) == bulk["sha"][first]
	got = wait_for_batches(m)
	assert len(got) == 1, got
	assert 2 <= set_size(got[0]) <= 16, got
	time.sleep(0.3)
	assert batches(m.stderr()) == got


def test_window_grows_as_the_scan_goes_on(bulk, mounter):
	m, d = mount_bulk(mounter, bulk, debug=True)
	check_bytes(bulk, d, bulk["names"][:6])
	got = wait_for_batches(m, at_least=3)
	assert sum(set_size(b) for b in got) > 32, got


def test_one_message_in_the_middle_fetches_only_itself(bulk, mounter):
	m, d = mount_bulk(mounter, bulk, debug=True)
	name = bulk["names"][100]
	assert sha256(read(os.path.join(d, name))) == bulk["sha"][name]
	time.sleep(0.3)
	assert batches(m.stderr()) == []


def test_grep_r_finds_markers_and_bytes_stay_right(bulk, mounter):
	m, d = mount_bulk(mounter, bulk)
	p = subprocess.run(["grep", "-r", "-l", "-F", sm.MARKER, d],
			   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
			   timeout=60)
	assert p.returncode == 0, p.stderr
	found = {os.path.basename(l) for l in
		 p.stdout.decode("utf-8", "surrogateescape").splitlines()}
	assert found == bulk["markers"]
	assert p.stderr == b""
	# What grep pulled in (and prefetched) is what a later read gets
	# from imapfs's cache, once the kernel forgot its copy.
	for n in bulk["names"]:
		fd = os.open(os.path.join(d, n), os.O_RDONLY)
		try:
			os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
		finally:
			os.close(fd)
	check_bytes(bulk, d, bulk["names"])


def test_rsync_a_copies_every_byte(bulk, mounter, tmp_path):
	m, d = mount_bulk(mounter, bulk)
	dst = str(tmp_path / "copy")
	p = subprocess.run(["rsync", "-a", d + "/", dst + "/"],
			   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
			   timeout=60)
	assert p.returncode == 0, p.stderr
	assert sorted(os.listdir(dst)) == bulk["names"]
	bad = [n for n in bulk["names"]
	       if file_sha256(os.path.join(dst, n)) != bulk["sha"][n]]
	assert not bad, bad[:5]
	for n in bulk["names"][:20]:
		assert int(os.stat(os.path.join(dst, n)).st_mtime) == \
			int(os.stat(os.path.join(d, n)).st_mtime)


def test_scan_adds_no_seen_flag(bulk, mounter, w):
	m, d = mount_bulk(mounter, bulk)
	for n in bulk["names"]:
		read(os.path.join(d, n))
	subprocess.run(["grep", "-r", "-q", "no such text here", d],
		       timeout=60)
	assert w.all_flags(MBOX) == bulk["flags"]


def test_reverse_order_reads_right_bytes(bulk, mounter):
	m, d = mount_bulk(mounter, bulk)
	check_bytes(bulk, d, list(reversed(bulk["names"])))


def test_random_order_reads_right_bytes(bulk, mounter):
	m, d = mount_bulk(mounter, bulk)
	names = list(bulk["names"])
	random.Random(4).shuffle(names)
	check_bytes(bulk, d, names)


def test_in_order_after_a_jump_reads_right_bytes(bulk, mounter):
	"""A scan from the middle, then from the start again."""
	m, d = mount_bulk(mounter, bulk)
	half = len(bulk["names"]) // 2
	check_bytes(bulk, d, bulk["names"][half:] + bulk["names"][:half])


def run_threads(targets):
	errors = []

	def wrap(fn):
		def run():
			try:
				fn()
			except BaseException as e:	# noqa: B902
				errors.append(e)
		return run
	threads = [threading.Thread(target=wrap(t)) for t in targets]
	for t in threads:
		t.start()
	for t in threads:
		t.join(120)
	assert not any(t.is_alive() for t in threads), "a reader hangs"
	if errors:
		raise errors[0]


def test_two_readers_on_different_files(bulk, mounter):
	m, d = mount_bulk(mounter, bulk)
	names = bulk["names"]
	half = len(names) // 2
	run_threads([lambda: check_bytes(bulk, d, names[:half]),
		     lambda: check_bytes(bulk, d, names[half:])])


def test_two_readers_on_the_same_files(bulk, mounter):
	m, d = mount_bulk(mounter, bulk)
	names = bulk["names"]
	run_threads([lambda: check_bytes(bulk, d, names),
		     lambda: check_bytes(bulk, d, names)])


def test_two_readers_of_one_big_file_in_chunks(bulk, mounter):
	m, d = mount_bulk(mounter, bulk)
	name = max(bulk["names"], key=lambda n: len(bulk["body"][n]))
	body = bulk["body"][name]
	assert len(body) > 2 << 20

	def reader(step):
		with open(os.path.join(d, name), "rb", buffering=0) as f:
			off = 0
			while off < len(body):
				chunk = f.read(step)
				assert chunk == body[off:off + step], off
				off += len(chunk)
	run_threads([lambda: reader(65536), lambda: reader(200003)])


# --- messages expunged between listing and reading -----------------------

@pytest.fixture
def vanishing(server, new_user, witness):
	user = new_user("vanish")
	seed_account(server, user, {"INBOX": 0, "Vanish": 40}, seed=9)
	w = witness(user)
	recs = w.messages("Vanish")
	bodies = {r["name"]: w.body("Vanish", r["uid"]) for r in recs}
	return user, recs, bodies


def expunge_uids(server, user, mbox, uids):
	c = ts.connect(server, user)
	try:
		typ, data = c.select(sm.quote_mailbox(mbox))
		assert typ == "OK", data
		uidset = ",".join(str(u) for u in uids)
		typ, data = c.uid("STORE", uidset, "+FLAGS.SILENT",
				  "(\\Deleted)")
		assert typ == "OK", data
		typ, data = c.uid("EXPUNGE", uidset)
		assert typ == "OK", data
	finally:
		c.logout()


@pytest.mark.parametrize("order", ["sorted", "reversed"])
def test_expunged_after_listing_fail_to_read(server, mounter, vanishing,
					     witness, order):
	user, recs, bodies = vanishing
	m = mounter.mount(user, max_conns=4)
	d = os.path.join(m.path, "Vanish")
	names = sorted(os.listdir(d))
	assert names == sorted(bodies)
	gone = {r["name"]: r["uid"] for i, r in enumerate(recs)
		if i % 3 == 1 or 20 <= i < 26}
	expunge_uids(server, user, "Vanish", sorted(gone.values()))
	left = {r["uid"] for r in witness(user).messages("Vanish")}
	assert left.isdisjoint(gone.values()) and \
		len(left) == len(recs) - len(gone)
	if order == "reversed":
		names.reverse()
	wrong = []
	for n in names:
		try:
			data = read(os.path.join(d, n))
		except OSError as e:
			if n not in gone:
				wrong.append("%s: %s" % (n, e))
			elif e.errno not in (errno.ENOENT, errno.EIO):
				wrong.append("%s: errno %d" % (n, e.errno))
			continue
		if n in gone:
			wrong.append("%s (expunged) read %d bytes" %
				     (n, len(data)))
		elif data != bodies[n]:
			wrong.append("%s: wrong bytes" % n)
	assert not wrong, "\n".join(wrong) + "\n" + m.stderr()[-3000:]

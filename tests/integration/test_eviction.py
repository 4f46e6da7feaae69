"""The cache budget (-o cache_size): sizes are parsed or refused, reading
more than the budget keeps CACHE_DIR/messages within it and every byte
right (again after eviction), and an open file outlives its eviction."""

import os
import re

import pytest

from conftest import (Witness, dovecot_out_bytes, run_imapfs_expect_failure,
		      sha256, sm, small_disk, ts)

N = 34
MSG_SIZE = 300 << 10
BUDGET = 2 << 20


@pytest.fixture(scope="module")
def many(server):
	"""An account whose INBOX holds N messages of about MSG_SIZE bytes
	(~10 MB).  Returns {"user", "names" (sorted), "body": {name: bytes}}."""
	from conftest import _user_counter
	user = "evict%d_%d" % (os.getpid(), next(_user_counter))
	c = ts.connect(server, user)
	try:
		for i in range(N):
			sm.append(c, "INBOX", sm.big_message(seed=100 + i,
							     size=MSG_SIZE))
	finally:
		c.logout()
	w = Witness(server, user)
	try:
		recs = w.messages("INBOX")
		body = {r["name"]: w.body("INBOX", r["uid"]) for r in recs}
		flags = w.all_flags("INBOX")
	finally:
		w.close()
	assert len(body) == N
	assert sum(len(b) for b in body.values()) > 9 << 20
	return {"user": user, "names": sorted(body), "body": body,
		"flags": flags}


def store_usage(cache_dir):
	"""(apparent bytes, allocated bytes) of the files under
	CACHE_DIR/messages."""
	size = alloc = 0
	for dp, dn, fn in os.walk(os.path.join(cache_dir, "messages")):
		for f in fn:
			try:
				st = os.lstat(os.path.join(dp, f))
			except FileNotFoundError:
				continue
			size += st.st_size
			alloc += st.st_blocks * 512
	return size, alloc


def limit(many):
	return BUDGET + max(len(b) for b in many["body"].values())


def read(path):
	with open(path, "rb") as f:
		return f.read()


def drop_page_cache(path_or_fd):
	"""Makes the kernel forget the pages it cached, so that the next
	read reaches imapfs."""
	if isinstance(path_or_fd, int):
		os.posix_fadvise(path_or_fd, 0, 0, os.POSIX_FADV_DONTNEED)
		return
	fd = os.open(path_or_fd, os.O_RDONLY)
	try:
		os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
	finally:
		os.close(fd)


def read_all(m, many):
	d = os.path.join(m.path, "INBOX")
	assert sorted(os.listdir(d)) == many["names"]
	bad = [n for n in many["names"]
	       if sha256(read(os.path.join(d, n))) != sha256(many["body"][n])]
	assert not bad, "wrong bytes: %s" % bad[:5]


def forget_pages(m, many):
	for n in many["names"]:
		drop_page_cache(os.path.join(m.path, "INBOX", n))


def mount_small(mounter, many, size="2M", ro=False):
	opts = ["cache_size=" + size] + (["ro"] if ro else [])
	return mounter.mount(many["user"], max_conns=4, opts=opts)


# A read-only mount opens files without imapfs: nothing is pinned, and
# every read must still give the right bytes within the budget.
RW_AND_RO = pytest.mark.parametrize("ro", [False, True], ids=["rw", "ro"])


@pytest.mark.parametrize("bad", ["abc", "0", "2X", "-1", "2MB", "1.5M",
				 "", "99999999999999999999T"])
def test_bad_cache_size_is_refused(many, mounter, server, bad):
	mnt = mounter.new_dir("mnt")
	argv = mounter.argv(many["user"], opts=["cache_size=" + bad],
			    cache_dir=mounter.new_dir("cache")) + [mnt]
	rc, err = run_imapfs_expect_failure(argv, server["password"])
	assert rc != 0
	assert "cache_size" in err, err


@pytest.mark.parametrize("size", ["512K", "2M", "1G", "3m", "1048576"])
def test_cache_size_is_accepted(many, mounter, size):
	m = mount_small(mounter, many, size)
	n = many["names"][0]
	assert read(os.path.join(m.path, "INBOX", n)) == many["body"][n]


def test_reading_more_than_budget_stays_within_it(many, mounter):
	m = mount_small(mounter, many)
	read_all(m, many)
	size, alloc = store_usage(m.cache_dir)
	assert size <= limit(many), \
		"CACHE_DIR/messages holds %d bytes (%d allocated) after " \
		"reading %d bytes with cache_size=2M" % (
			size, alloc, sum(len(b) for b in many["body"].values()))
	assert alloc <= limit(many) + (64 << 10), (size, alloc)


@RW_AND_RO
def test_usage_stays_within_budget_during_the_scan(many, mounter, ro):
	m = mount_small(mounter, many, ro=ro)
	d = os.path.join(m.path, "INBOX")
	worst = (0, None)
	for n in many["names"]:
		assert read(os.path.join(d, n)) == many["body"][n], n
		size, alloc = store_usage(m.cache_dir)
		worst = max(worst, (size, n))
	assert worst[0] <= limit(many), \
		"CACHE_DIR/messages reached %d bytes (after reading %s)" % worst


@RW_AND_RO
def test_second_pass_after_eviction_is_right(many, mounter, ro):
	m = mount_small(mounter, many, ro=ro)
	read_all(m, many)
	forget_pages(m, many)
	read_all(m, many)
	assert store_usage(m.cache_dir)[0] <= limit(many)


def test_one_pass_under_budget_fetches_each_message_once(many, mounter,
							server):
	"""Prefetch stays within the budget: one in-order pass over ~10 MB
	with cache_size=2M makes the server send about 10 MB, not a second
	copy of what prefetch fetched and the budget evicted unread (the
	server's session log, out= bytes)."""
	total = sum(len(b) for b in many["body"].values())
	user = many["user"]
	start = dovecot_out_bytes(server, user)
	m = mount_small(mounter, many)
	read_all(m, many)
	problems = mounter.unmount(m)
	assert not problems, "\n".join(problems)
	once = dovecot_out_bytes(server, user) - start
	assert total <= once < 1.5 * total, \
		"one pass of %d bytes made the server send %d" % (total, once)


FETCH_BODY = re.compile(r"C: \S+ UID FETCH (\S+) \(BODY\.PEEK\[\]")


def uids_fetched(log):
	"""UIDs named by body fetches in a -d trace."""
	out = set()
	for m in FETCH_BODY.finditer(log):
		for part in m.group(1).split(","):
			lo, _, hi = part.partition(":")
			out.update(range(int(lo), int(hi or lo) + 1))
	return out


def test_second_pass_after_eviction_is_refetched(many, mounter):
	"""The bytes really left the cache: the second pass fetches (nearly)
	every message again (-d trace)."""
	m = mounter.mount(many["user"], max_conns=4, debug=True,
			  opts=["cache_size=2M"])
	read_all(m, many)
	forget_pages(m, many)
	mark = len(m.stderr())
	read_all(m, many)
	again = uids_fetched(m.stderr()[mark:])
	fits = BUDGET // MSG_SIZE + 1
	assert len(again) >= N - fits, \
		"second pass fetched only UIDs %s" % sorted(again)


@RW_AND_RO
def test_open_file_survives_eviction(many, mounter, ro):
	m = mount_small(mounter, many, ro=ro)
	d = os.path.join(m.path, "INBOX")
	first = many["names"][0]
	body = many["body"][first]
	with open(os.path.join(d, first), "rb", buffering=0) as f:
		head = f.read(4096)
		assert head == body[:4096]
		for n in many["names"][1:]:
			assert read(os.path.join(d, n)) == many["body"][n], n
		assert store_usage(m.cache_dir)[0] <= limit(many) + len(body)
		drop_page_cache(f.fileno())
		rest = b""
		while True:
			chunk = f.read(1 << 16)
			if not chunk:
				break
			rest += chunk
	assert head + rest == body


@RW_AND_RO
def test_open_file_survives_eviction_random_access(many, mounter, ro):
	"""The same with seeks back to the start after the eviction."""
	m = mount_small(mounter, many, ro=ro)
	d = os.path.join(m.path, "INBOX")
	name = many["names"][N // 2]
	body = many["body"][name]
	with open(os.path.join(d, name), "rb", buffering=0) as f:
		assert f.read(4096) == body[:4096]
		for n in many["names"]:
			if n != name:
				read(os.path.join(d, n))
		drop_page_cache(f.fileno())
		for off in (len(body) - 1000, 0, 100000, 4096):
			f.seek(off)
			assert f.read(8192) == body[off:off + 8192], off


def test_scan_under_budget_adds_no_seen_flag(many, mounter, witness):
	m = mount_small(mounter, many)
	read_all(m, many)
	assert witness(many["user"]).all_flags("INBOX") == many["flags"]


def test_a_cache_disk_that_fills_up_makes_room(many, mounter, server,
					       tmp_path):
	"""The cache directory on a 2 MB file system, with the default
	cache_size (1G): one pass over ~10 MB reads every byte right, the
	disk keeps messages (older ones made room for newer), the log says
	so, and prefetch keeps within what the disk holds: the server sends
	each message about once."""
	total = sum(len(b) for b in many["body"].values())
	with small_disk(tmp_path / "small", "2m") as disk:
		start = dovecot_out_bytes(server, many["user"])
		m = mounter.mount(many["user"], max_conns=4,
				  cache_dir=os.path.join(disk, "c"))
		read_all(m, many)
		log = m.stderr()
		assert "making room" in log, log[-3000:]
		assert "protocol error" not in log, log[-3000:]
		assert store_usage(m.cache_dir)[0] > 0
		assert not mounter.unmount(m)
		once = dovecot_out_bytes(server, many["user"]) - start
		assert total <= once < 1.5 * total, \
			"one pass of %d bytes made the server send %d" % (
				total, once)

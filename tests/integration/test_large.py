"""A 10 MB message: bytes, ranges, and the cache (a second read and a
remount do not fetch it again; checked in the server's session log)."""

import os

import pytest

from conftest import dovecot_out_bytes, file_sha256, sha256, sm, small_disk

SIZE = 10 << 20


@pytest.fixture(scope="module")
def big_user(server):
	from conftest import _user_counter, ts
	user = "big%d_%d" % (os.getpid(), next(_user_counter))
	c = ts.connect(server, user)
	try:
		big = sm.big_message(seed=3, size=SIZE, marker=True)
		sm.append(c, "INBOX", big)
	finally:
		c.logout()
	return user


@pytest.fixture
def w(big_user, witness):
	return witness(big_user)


def _only(w):
	[(rel, (mbox, rec))] = w.expected_files().items()
	return rel, w.body(mbox, rec["uid"]), rec


def test_big_message_bytes(big_user, mounter, w):
	rel, body, rec = _only(w)
	assert len(body) > SIZE * 0.9
	m = mounter.mount(big_user, max_conns=4)
	p = os.path.join(m.path, rel)
	assert os.stat(p).st_size == len(body)
	assert file_sha256(p) == sha256(body)


def test_big_message_ranges(big_user, mounter, w):
	rel, body, rec = _only(w)
	m = mounter.mount(big_user, max_conns=2)
	size = len(body)
	with open(os.path.join(m.path, rel), "rb", buffering=0) as f:
		for off, n in ((size - 13, 100), (5_000_001, 65537),
			       ((1 << 20) + 3, 3), (1, 131071),
			       (size // 3, 1 << 20), (0, 1)):
			f.seek(off)
			assert f.read(n) == body[off:off + n], (off, n)


def _read_all(path):
	with open(path, "rb") as f:
		return f.read()


def test_second_read_is_not_refetched(big_user, mounter, w, server):
	rel, body, rec = _only(w)
	before = dovecot_out_bytes(server, big_user, still_open=1)
	m = mounter.mount(big_user, max_conns=2)
	p = os.path.join(m.path, rel)
	for _ in range(3):
		assert _read_all(p) == body
	problems = mounter.unmount(m)
	assert not problems, "\n".join(problems)
	sent = dovecot_out_bytes(server, big_user, still_open=1) - before
	assert len(body) <= sent < 1.5 * len(body), sent


def test_cache_survives_remount(big_user, mounter, w, server, tmp_path):
	rel, body, rec = _only(w)
	cache = str(tmp_path / "cache")
	os.makedirs(cache)
	m = mounter.mount(big_user, cache_dir=cache)
	assert _read_all(os.path.join(m.path, rel)) == body
	assert not mounter.unmount(m)
	before = dovecot_out_bytes(server, big_user, still_open=1)
	m = mounter.mount(big_user, cache_dir=cache)
	assert _read_all(os.path.join(m.path, rel)) == body
	assert not mounter.unmount(m)
	sent = dovecot_out_bytes(server, big_user, still_open=1) - before
	assert sent < len(body) // 2, sent


def test_a_full_cache_disk_still_serves_reads(big_user, mounter, w, server,
					      tmp_path):
	"""The cache directory on a 2 MB file system: the 10 MB message still
	reads right, held in memory, and a second read (with the kernel's
	pages dropped) does not fetch it again; the log says the disk is full,
	what is done meanwhile and what to do, and blames no server."""
	with small_disk(tmp_path / "small", "2m") as disk:
		before = dovecot_out_bytes(server, big_user, still_open=1)
		m = mounter.mount(big_user, cache_dir=os.path.join(disk, "c"),
				  max_conns=2)
		rel, body, rec = _only(w)
		path = os.path.join(m.path, rel)
		assert _read_all(path) == body
		fd = os.open(path, os.O_RDONLY)
		try:
			os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
		finally:
			os.close(fd)
		assert _read_all(path) == body
		log = m.stderr()
		assert "held in memory" in log, log[-3000:]
		assert "free space" in log, log[-3000:]
		assert "read %s:" % rel not in log, log[-3000:]
		assert "protocol error" not in log, log[-3000:]
		assert m.proc.poll() is None
		assert mounter.unmount(m) == []
		sent = dovecot_out_bytes(server, big_user, still_open=1) - before
		assert len(body) <= sent < 1.5 * len(body), sent

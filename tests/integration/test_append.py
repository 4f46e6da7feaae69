"""cp into a mailbox is APPEND: after close the message is on the server
(witness), byte for byte (bare LF made CRLF), with the flags and mtime
set before close, and listed under its canonical name."""

import datetime
import errno
import os
import signal
import subprocess
import time

import pytest

import imapfs_samplemail as sm
from conftest import fill_disk, small_disk
from writehelpers import body, errno_of, fresh, log_mark, new_log, run, \
	sha


@pytest.fixture
def m(account, mounter):
	return mounter.mount(account["user"], max_conns=2)


def _err(e):
	return os.strerror(e) if e else "success"


def _sample(kind="plain", seed=5):
	for s in sm.make_messages(seed, 12):
		if s.kind == kind and s.subject:
			return s
	raise AssertionError("no sample of kind %s" % kind)


def _write(tmp_path, data, name="msg.eml"):
	p = tmp_path / name
	p.write_bytes(data)
	return str(p)


def test_cp_appends_crlf_file_byte_identical(mnt, imap, tmp_path):
	s = _sample()
	src = _write(tmp_path, s.raw)
	p = run(["cp", src, os.path.join(mnt.path, "Empty") + "/"])
	assert p.returncode == 0, p.stderr
	recs = fresh(imap, "Empty")
	assert len(recs) == 1
	assert body(imap, "Empty", recs[0]["uid"]) == s.raw


def test_cp_lists_canonical_name(mnt, imap, tmp_path):
	s = _sample()
	src = _write(tmp_path, s.raw, "typed-name.eml")
	p = run(["cp", src, os.path.join(mnt.path, "Empty") + "/"])
	assert p.returncode == 0, p.stderr
	recs = fresh(imap, "Empty")
	assert len(recs) == 1
	assert os.listdir(os.path.join(mnt.path, "Empty")) == [recs[0]["name"]]
	assert not os.path.exists(os.path.join(mnt.path, "Empty",
					       "typed-name.eml"))
	with open(os.path.join(mnt.path, "Empty", recs[0]["name"]), "rb") as f:
		assert f.read() == s.raw


def test_cp_bare_lf_becomes_crlf(m, imap, tmp_path):
	s = _sample()
	lf = s.raw.replace(b"\r\n", b"\n")
	assert b"\r" not in lf
	src = _write(tmp_path, lf)
	p = run(["cp", src, os.path.join(m.path, "Empty", "lf.eml")])
	assert p.returncode == 0, p.stderr
	recs = fresh(imap, "Empty")
	assert len(recs) == 1
	assert body(imap, "Empty", recs[0]["uid"]) == s.raw


def test_cp_mixed_line_ends(m, imap, tmp_path):
	data = (b"Subject: mixed\r\nFrom: a@b.example\n\r\nline one\n"
		b"line two\r\nline three\n")
	src = _write(tmp_path, data)
	p = run(["cp", src, os.path.join(m.path, "Empty", "mixed.eml")])
	assert p.returncode == 0, p.stderr
	recs = fresh(imap, "Empty")
	assert body(imap, "Empty", recs[0]["uid"]) == \
		data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_cp_8bit_body_as_is(m, imap, tmp_path):
	s = _sample("eightbit")
	assert any(b > 0x7f for b in s.raw)
	src = _write(tmp_path, s.raw)
	p = run(["cp", src, os.path.join(m.path, "Empty", "8bit.eml")])
	assert p.returncode == 0, p.stderr
	recs = fresh(imap, "Empty")
	assert body(imap, "Empty", recs[0]["uid"]) == s.raw
	assert recs[0]["subject"] == s.subject


def test_cp_10mb_message(m, imap, tmp_path):
	big = sm.big_message(seed=3, size=10 << 20)
	src = _write(tmp_path, big.raw, "big.eml")
	t0 = time.monotonic()
	p = run(["cp", src, os.path.join(m.path, "Empty") + "/"], timeout=60)
	assert p.returncode == 0, p.stderr
	recs = fresh(imap, "Empty")
	assert len(recs) == 1
	assert recs[0]["size"] == len(big.raw)
	assert sha(body(imap, "Empty", recs[0]["uid"])) == sha(big.raw)
	assert time.monotonic() - t0 < 20


def test_flags_set_before_close(m, imap):
	s = _sample()
	path = os.path.join(m.path, "Empty", "flagged.eml")
	with open(path, "wb") as f:
		f.write(s.raw)
		os.setxattr(f.fileno(), "user.imap.flags",
			    b"\\Seen \\Flagged $Work")
	recs = fresh(imap, "Empty")
	assert len(recs) == 1
	assert recs[0]["flags"] == {"\\Seen", "\\Flagged", "$Work"}


def test_flags_set_by_path_before_close(m, imap):
	s = _sample()
	path = os.path.join(m.path, "Empty", "flagged.eml")
	with open(path, "wb") as f:
		f.write(s.raw)
		f.flush()
		os.setxattr(path, "user.imap.flags", b"\\Answered")
	recs = fresh(imap, "Empty")
	assert [r["flags"] for r in recs] == [{"\\Answered"}]


def test_fork_while_writing_appends_whole_message_once(m, imap):
	"""A writer that starts a program in the middle (the child's copy
	of the descriptor is closed at exec: a FUSE FLUSH) still adds the
	whole message once, at its own close."""
	s = _sample()
	path = os.path.join(m.path, "Empty", "forked.eml")
	fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
	try:
		os.write(fd, s.raw[:100])
		p = run(["true"])
		assert p.returncode == 0
		e = errno_of(os.write, fd, s.raw[100:])
	finally:
		ce = errno_of(os.close, fd)
	recs = fresh(imap, "Empty")
	assert [r["size"] for r in recs] == [len(s.raw)], \
		"second write: %s, close: %s" % (_err(e), _err(ce))
	assert body(imap, "Empty", recs[0]["uid"]) == s.raw


def test_mtime_set_before_close_is_internaldate(m, imap):
	s = _sample()
	when = int(datetime.datetime(2021, 3, 4, 5, 6, 7,
				     tzinfo=datetime.timezone.utc).timestamp())
	path = os.path.join(m.path, "Empty", "dated.eml")
	with open(path, "wb") as f:
		f.write(s.raw)
		f.flush()
		os.utime(f.fileno(), (when, when))
	recs = fresh(imap, "Empty")
	assert len(recs) == 1
	assert recs[0]["mtime"] == when
	st = os.stat(os.path.join(m.path, "Empty", recs[0]["name"]))
	assert int(st.st_mtime) == when


def test_cp_preserve_timestamps(m, imap, tmp_path):
	s = _sample()
	src = _write(tmp_path, s.raw)
	when = 1600000000
	os.utime(src, (when, when))
	p = run(["cp", "--preserve=timestamps", src,
		 os.path.join(m.path, "Empty") + "/"])
	assert p.returncode == 0, p.stderr
	recs = fresh(imap, "Empty")
	assert [r["mtime"] for r in recs] == [when]


def test_shell_redirect_appends(m, imap, tmp_path):
	s = _sample()
	src = _write(tmp_path, s.raw)
	p = run(["sh", "-c", 'cat "$1" > "$2"', "sh", src,
		 os.path.join(m.path, "Other", "redir.eml")])
	assert p.returncode == 0, p.stderr
	recs = fresh(imap, "Other")
	assert len(recs) == 4
	assert body(imap, "Other", recs[-1]["uid"]) == s.raw


@pytest.mark.parametrize("mode", [os.O_WRONLY, os.O_RDWR,
				  os.O_WRONLY | os.O_APPEND,
				  os.O_WRONLY | os.O_TRUNC],
			 ids=["wronly", "rdwr", "append", "trunc"])
def test_write_open_of_existing_message_is_eperm(m, imap, mode):
	rec = fresh(imap, "INBOX")[0]
	raw = body(imap, "INBOX", rec["uid"])
	path = os.path.join(m.path, "INBOX", rec["name"])
	e = errno_of(os.open, path, mode)
	assert e == errno.EPERM, _err(e)
	assert body(imap, "INBOX", rec["uid"]) == raw
	assert len(fresh(imap, "INBOX")) == 6


def test_truncate_existing_message_is_eperm(m, imap):
	rec = fresh(imap, "INBOX")[0]
	path = os.path.join(m.path, "INBOX", rec["name"])
	e = errno_of(os.truncate, path, 0)
	assert e == errno.EPERM, _err(e)
	assert os.stat(path).st_size == rec["size"]
	assert fresh(imap, "INBOX")[0]["size"] == rec["size"]


def test_cp_over_existing_message_is_refused(m, imap, tmp_path):
	rec = fresh(imap, "INBOX")[0]
	raw = body(imap, "INBOX", rec["uid"])
	src = _write(tmp_path, _sample().raw)
	p = run(["cp", src, os.path.join(m.path, "INBOX", rec["name"])])
	assert p.returncode != 0
	assert body(imap, "INBOX", rec["uid"]) == raw
	assert len(fresh(imap, "INBOX")) == 6


def test_empty_file_is_not_appended(m, imap):
	path = os.path.join(m.path, "Empty", "empty.eml")
	mark = log_mark(m)
	f = open(path, "wb")
	e = errno_of(f.close)
	assert e == errno.EINVAL, _err(e)
	assert fresh(imap, "Empty") == []
	assert "empty.eml" not in os.listdir(os.path.join(m.path, "Empty"))
	assert new_log(m, mark).strip(), "no log line says why"


def test_cp_into_root_is_refused(m, imap, tmp_path):
	before = {n for f, d, n in imap.list()}
	src = _write(tmp_path, _sample().raw)
	p = run(["cp", src, m.path + "/"])
	assert p.returncode != 0
	assert {n for f, d, n in imap.list()} == before
	assert not os.path.exists(os.path.join(m.path, "msg.eml"))


def test_appended_message_reads_back_through_mount(m, imap, tmp_path):
	s = _sample("multipart")
	src = _write(tmp_path, s.raw)
	p = run(["cp", src, os.path.join(m.path, "Empty") + "/"])
	assert p.returncode == 0, p.stderr
	names = os.listdir(os.path.join(m.path, "Empty"))
	assert len(names) == 1
	with open(os.path.join(m.path, "Empty", names[0]), "rb") as f:
		assert f.read() == s.raw
	assert os.getxattr(os.path.join(m.path, "Empty", names[0]),
			   "user.imap.uid").strip() == \
		str(fresh(imap, "Empty")[0]["uid"]).encode()


def test_cp_several_files(m, imap, tmp_path):
	samples = [s for s in sm.make_messages(7, 5)]
	srcs = [_write(tmp_path, s.raw, "m%d.eml" % i)
		for i, s in enumerate(samples)]
	p = run(["cp"] + srcs + [os.path.join(m.path, "Empty") + "/"])
	assert p.returncode == 0, p.stderr
	recs = fresh(imap, "Empty")
	assert sorted(sha(body(imap, "Empty", r["uid"])) for r in recs) == \
		sorted(sha(s.raw) for s in samples)



@pytest.fixture
def slow_proxy(server):
	"""A latency proxy in front of the server (its RTT set by the test),
	stopped after the mounts made through it are gone."""
	import imapfs_proxy

	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", server["imaps_port"]))
	proxy.start()
	yield proxy
	proxy.stop()


def test_rm_while_the_append_is_under_way_removes_the_message(
		slow_proxy, account, mounter, imap):
	"""rm of a new file whose close() is still adding it: rm said the
	file is gone, so the message it became goes to Trash too, and the
	mailbox keeps nothing of it. The proxy holds the APPEND's answer
	back long enough to rm in between."""
	import threading

	m = mounter.mount(account["user"], max_conns=2,
			  url="imaps://%s@127.0.0.1:%d" %
			  (account["user"], slow_proxy.port))
	s = _sample()
	path = os.path.join(m.path, "Empty", "racing.eml")
	fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
	os.write(fd, s.raw)
	closed = {}

	def close():
		closed["errno"] = errno_of(os.close, fd)

	slow_proxy.set_rtt(3000)
	t = threading.Thread(target=close)
	t.start()
	try:
		time.sleep(0.5)  # the APPEND's answer is 1.5 s away or more
		assert t.is_alive(), "close() did not wait for the APPEND"
		os.unlink(path)
	finally:
		slow_proxy.set_rtt(0)
		t.join(30)
	assert not t.is_alive()
	assert closed["errno"] == 0, os.strerror(closed["errno"])
	assert fresh(imap, "Empty") == [], "the removed file stayed"
	trash = [name for flags, delim, name in imap.list()
		 if "\\trash" in {f.lower() for f in flags}]
	assert trash, "the server lists no \\Trash mailbox"
	moved = [r for r in fresh(imap, trash[0]) if r["size"] == len(s.raw)]
	assert len(moved) == 1
	assert body(imap, trash[0], moved[0]["uid"]) == s.raw
	assert os.listdir(os.path.join(m.path, "Empty")) == []


def test_close_in_another_thread_waits_for_the_append(slow_proxy, account,
							mounter, imap):
	"""FUSE names a caller by thread: a program that creates a file in
	one thread and closes it in another (a thread pool, a Go program)
	still gets close() back only once the message is on the server."""
	import threading

	m = mounter.mount(account["user"], max_conns=2,
			  url="imaps://%s@127.0.0.1:%d" %
			  (account["user"], slow_proxy.port))
	s = _sample()
	fd = os.open(os.path.join(m.path, "Empty", "threaded.eml"),
		     os.O_WRONLY | os.O_CREAT, 0o644)
	os.write(fd, s.raw)
	closed = {}
	slow_proxy.set_rtt(1000)
	t = threading.Thread(
		target=lambda: closed.setdefault("errno", errno_of(os.close, fd)))
	t.start()
	t.join(30)
	slow_proxy.set_rtt(0)
	assert closed["errno"] == 0, os.strerror(closed["errno"])
	recs = fresh(imap, "Empty")
	assert [r["size"] for r in recs] == [len(s.raw)]


def test_writes_through_a_duplicated_descriptor_make_one_message(m, imap):
	"""A shell writes through fd 3 (exec 3>F) with builtins, each
	redirected by a dup2 and a close of the copy: the message ends at
	the last close only, whole."""
	path = os.path.join(m.path, "Empty", "fd3.eml")
	mark = log_mark(m)
	p = run(["bash", "-c", 'exec 3>"$1"; echo "From: me@example.org" >&3; '
		 'echo "Subject: fd3" >&3; echo >&3; echo body >&3; exec 3>&-',
		 "bash", path])
	assert p.returncode == 0, p.stderr
	recs = fresh(imap, "Empty")
	assert len(recs) == 1
	assert body(imap, "Empty", recs[0]["uid"]) == \
		b"From: me@example.org\r\nSubject: fd3\r\n\r\nbody\r\n"
	assert "empty file" not in new_log(m, mark)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_writer_killed_mid_message_adds_nothing(m, imap, sig):
	"""cp interrupted (Ctrl-C) or killed: the part it wrote is not a
	message. Nothing is added, the name goes, and the log says where the
	bytes are."""
	s = _sample()
	path = os.path.join(m.path, "Empty", "cut.eml")
	mark = log_mark(m)
	code = ("import os, signal, sys\n"
		"fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)\n"
		"os.write(fd, sys.stdin.buffer.read())\n"
		"signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
		"os.kill(os.getpid(), int(sys.argv[2]))\n")
	p = subprocess.run(["/usr/bin/python3", "-c", code, path, str(int(sig))],
			   input=s.raw[:len(s.raw) // 2], timeout=20)
	assert p.returncode == -sig
	assert fresh(imap, "Empty") == []
	assert "cut.eml" not in os.listdir(os.path.join(m.path, "Empty"))
	log = new_log(m, mark)
	assert "cut.eml was not added" in log and "killed" in log, log


def test_a_writer_that_exits_without_closing_adds_the_message(m, imap):
	"""A program that leaves closing to exit(): its message is whole."""
	s = _sample()
	path = os.path.join(m.path, "Empty", "exit.eml")
	code = ("import os, sys\n"
		"fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)\n"
		"os.write(fd, sys.stdin.buffer.read())\n"
		"os._exit(0)\n")
	p = subprocess.run(["/usr/bin/python3", "-c", code, path],
			   input=s.raw, timeout=20)
	assert p.returncode == 0
	recs = fresh(imap, "Empty")
	assert [r["size"] for r in recs] == [len(s.raw)]


def test_a_new_file_the_cache_disk_cannot_hold_adds_nothing(
		account, mounter, imap, tmp_path):
	"""A new message waits in CACHE_DIR/new until close: with about
	100 KB left on that disk, writing 400 KB fails with ENOSPC, and so
	does close(); the part that was written is not added as a message
	cut short, the name goes, and the log says why and where the bytes
	are."""
	with small_disk(tmp_path / "small", "1m") as disk:
		m = mounter.mount(account["user"],
				  cache_dir=os.path.join(disk, "c"))
		fill_disk(disk, leave=100 << 10)
		data = b"Subject: cut\r\n\r\n" + b"0123456789abcdef\r\n" * 22000
		path = os.path.join(m.path, "Empty", "cut.eml")
		mark = log_mark(m)
		fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
		written, write_err = 0, 0
		try:
			while written < len(data):
				written += os.write(fd, data[written:])
		except OSError as e:
			write_err = e.errno
		close_err = 0
		try:
			os.close(fd)
		except OSError as e:
			close_err = e.errno
		assert write_err == errno.ENOSPC, _err(write_err)
		assert close_err == errno.ENOSPC, _err(close_err)
		assert 0 < written < len(data)
		assert fresh(imap, "Empty") == []
		assert "cut.eml" not in os.listdir(os.path.join(m.path, "Empty"))
		log = new_log(m, mark)
		assert "Empty/cut.eml: a write to it failed" in log, log
		assert "nothing was added" in log, log
		assert not mounter.unmount(m)


def _add_big(server, user, sizes, seed=70):
	"""Appends messages of about SIZES bytes to USER's INBOX."""
	import imapfs_testserver as ts
	c = ts.connect(server, user)
	try:
		for i, size in enumerate(sizes):
			sm.append(c, "INBOX", sm.big_message(seed=seed + i,
							     size=size))
	finally:
		c.logout()


def _read(path):
	with open(path, "rb") as f:
		return f.read()


def _forget_pages(path):
	fd = os.open(path, os.O_RDONLY)
	try:
		os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
	finally:
		os.close(fd)


def test_a_new_file_makes_room_on_a_disk_full_of_cached_mail(
		account, mounter, imap, server, tmp_path):
	"""The cache on a 1 MB disk, filled by reading mail (the default
	cache_size is far larger): cp of a 700 KB message, more than is
	left, still succeeds, the cached messages making room for it, and
	the server has it byte for byte."""
	_add_big(server, account["user"], [300 << 10] * 4)
	s = sm.big_message(seed=80, size=700 << 10)
	src = _write(tmp_path, s.raw, "big.eml")
	with small_disk(tmp_path / "small", "1m") as disk:
		m = mounter.mount(account["user"],
				  cache_dir=os.path.join(disk, "c"))
		inbox = os.path.join(m.path, "INBOX")
		for rec in imap.messages("INBOX"):
			assert _read(os.path.join(inbox, rec["name"])) == \
				body(imap, "INBOX", rec["uid"])
		assert os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize \
			< len(s.raw)
		p = run(["cp", src, os.path.join(m.path, "Empty") + "/"])
		assert p.returncode == 0, p.stderr
		recs = fresh(imap, "Empty")
		assert len(recs) == 1
		assert body(imap, "Empty", recs[0]["uid"]) == s.raw
		assert os.listdir(os.path.join(disk, "c", "new")) == []
		assert "making room" in m.stderr()
		assert not mounter.unmount(m)


def test_emptying_the_cache_directory_while_mounted(account, mounter,
						     imap, server, tmp_path):
	"""A user frees space by emptying CACHE_DIR by hand while mounted:
	first its files only (a message read halfway loses the chunks it
	had: they must not read back as zeros), then everything. Reads stay
	right, cp still adds a message, and nothing is logged as failed."""
	_add_big(server, account["user"], [3 << 20])
	cache = str(tmp_path / "cache")
	m = mounter.mount(account["user"], cache_dir=cache)
	inbox = os.path.join(m.path, "INBOX")
	recs = imap.messages("INBOX")
	big = max(recs, key=lambda r: r["size"])
	want = body(imap, "INBOX", big["uid"])
	path = os.path.join(inbox, big["name"])
	mark = log_mark(m)
	with open(path, "rb") as f:
		assert f.read(512 << 10) == want[:512 << 10]
	subprocess.run(["find", cache, "-type", "f", "!", "-name", "lock",
			"-delete"], check=True)
	_forget_pages(path)
	assert _read(path) == want
	for rec in recs:
		p = os.path.join(inbox, rec["name"])
		_forget_pages(p)
		assert _read(p) == body(imap, "INBOX", rec["uid"]), rec["name"]
	for name in os.listdir(cache):
		if name != "lock":
			subprocess.run(["rm", "-rf", os.path.join(cache, name)],
				       check=True)
	for rec in recs:
		p = os.path.join(inbox, rec["name"])
		_forget_pages(p)
		try:
			got = _read(p)
		except OSError:
			raise AssertionError(m.stderr()[-3000:])
		assert got == body(imap, "INBOX", rec["uid"]), rec["name"]
	s = _sample()
	p = run(["cp", _write(tmp_path, s.raw), os.path.join(m.path, "Empty")
		 + "/"])
	assert p.returncode == 0, p.stderr
	assert [body(imap, "Empty", r["uid"]) for r in fresh(imap, "Empty")] \
		== [s.raw]
	log = new_log(m, mark)
	assert "WARNING" not in log, log
	assert not mounter.unmount(m)


def test_a_rename_whose_append_failed_leaves_no_name_and_adds_nothing(
		account, server, mounter, imap):
	"""rsync's way (write .name.XXXXXX, rename onto the name): the
	APPEND at the rename is lost with its connection, so the rename
	fails; the name is then not there (a second rsync sends the file
	again), and the message is not added later behind rsync's back."""
	from writehelpers import CutAfterCommand

	before = fresh(imap, "INBOX")
	proxy = CutAfterCommand(server["imap_port"], b"APPEND", forward=False)
	try:
		m = proxy.mount(mounter, account["user"])
		inbox = os.path.join(m.path, "INBOX")
		tmp = os.path.join(inbox, ".restored.eml.Xa1b2C")
		with open(tmp, "wb") as f:
			f.write(sm.make_messages(91, 1)[0].raw)
		e = errno_of(os.rename, tmp,
			     os.path.join(inbox, "restored.eml"))
		assert e == errno.EIO, os.strerror(e) if e else "success"
		assert not os.path.exists(os.path.join(inbox, "restored.eml"))
		time.sleep(2)
		assert "restored.eml" not in os.listdir(inbox)
	finally:
		proxy.stop()
	assert fresh(imap, "INBOX") == before
	assert "was not added to the mailbox" in m.stderr()

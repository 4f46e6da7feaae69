"""Reading: bytes, partial reads, grep and rsync over the whole tree, with
one and with several IMAP connections, and on a read-only mount."""

import os
import subprocess

import pytest

from conftest import file_sha256, sha256, sm, walk_tree


@pytest.fixture(scope="module", params=[(1,), (4,), (4, "ro")],
		ids=["conns1", "conns4", "ro"])
def mnt(request, seeded, module_mounter):
	conns, *opts = request.param
	m = module_mounter.mount(seeded["user"], max_conns=conns,
				 opts=tuple(opts))
	yield m
	problems = module_mounter.unmount(m)
	if problems:
		pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def w(seeded, witness):
	return witness(seeded["user"])


def test_every_file_equals_body_peek(mnt, w):
	for rel, (mbox, rec) in w.expected_files().items():
		want = sha256(w.body(mbox, rec["uid"]))
		assert file_sha256(os.path.join(mnt.path, rel)) == want, rel


def test_read_returns_exactly_st_size_bytes(mnt, w):
	for rel in w.expected_files():
		p = os.path.join(mnt.path, rel)
		with open(p, "rb") as f:
			assert len(f.read()) == os.stat(p).st_size, rel


def test_eightbit_message_bytes(mnt, w, seeded):
	"""8-bit UTF-8 bodies and CRLF line ends come through untouched."""
	found = 0
	for rel, (mbox, rec) in w.expected_files().items():
		body = w.body(mbox, rec["uid"])
		if b"Content-Transfer-Encoding: 8bit" not in body:
			continue
		with open(os.path.join(mnt.path, rel), "rb") as f:
			data = f.read()
		assert data == body
		assert "Straße".encode() in data and b"\r\n" in data
		found += 1
	assert found > 0


def test_partial_reads_at_odd_offsets(mnt, w):
	files = w.expected_files()
	big = sorted(files.items(), key=lambda kv: -kv[1][1]["size"])[:3]
	for rel, (mbox, rec) in big:
		body = w.body(mbox, rec["uid"])
		size = len(body)
		with open(os.path.join(mnt.path, rel), "rb",
			  buffering=0) as f:
			for off, n in ((1, 1), (3, 7), (4095, 2), (4096, 4097),
				       (size // 2 + 1, 333), (size - 1, 10),
				       (size, 5), (size + 100, 5), (0, size)):
				f.seek(off)
				assert f.read(n) == body[off:off + n], \
					(rel, off, n)


def test_pread_from_many_offsets_out_of_order(mnt, w):
	rel, (mbox, rec) = max(w.expected_files().items(),
			       key=lambda kv: kv[1][1]["size"])
	body = w.body(mbox, rec["uid"])
	fd = os.open(os.path.join(mnt.path, rel), os.O_RDONLY)
	try:
		for off in reversed(range(0, len(body), 997)):
			assert os.pread(fd, 1001, off) == body[off:off + 1001]
	finally:
		os.close(fd)


def test_dd_skip_count(mnt, w):
	rel, (mbox, rec) = max(w.expected_files().items(),
			       key=lambda kv: kv[1][1]["size"])
	body = w.body(mbox, rec["uid"])
	p = subprocess.run(["dd", "if=" + os.path.join(mnt.path, rel),
			    "bs=13", "skip=7", "count=11", "status=none"],
			   stdout=subprocess.PIPE, check=True, timeout=60)
	assert p.stdout == body[91:91 + 143]


def test_grep_finds_exactly_the_marked_messages(mnt, w):
	want = set()
	for rel, (mbox, rec) in w.expected_files().items():
		if sm.MARKER.encode() in w.body(mbox, rec["uid"]):
			want.add(rel)
	assert want
	p = subprocess.run(["grep", "-rlZ", sm.MARKER, mnt.path],
			   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
			   timeout=120)
	assert p.returncode == 0, p.stderr
	got = {os.path.relpath(x.decode(), mnt.path)
	       for x in p.stdout.split(b"\0") if x}
	assert got == want


def test_rsync_copies_identical_files(mnt, w, tmp_path):
	dst = str(tmp_path / "copy")
	p = subprocess.run(["rsync", "-a", mnt.path + "/", dst + "/"],
			   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
			   timeout=300)
	assert p.returncode == 0, p.stdout
	dirs, files = walk_tree(dst)
	expected = w.expected_files()
	assert files == set(expected)
	assert dirs == set(w.expected_dirs())
	for rel, (mbox, rec) in expected.items():
		assert file_sha256(os.path.join(dst, rel)) == \
			sha256(w.body(mbox, rec["uid"])), rel
		assert int(os.stat(os.path.join(dst, rel)).st_mtime) == \
			rec["mtime"], rel


def test_second_rsync_transfers_nothing(mnt, tmp_path):
	dst = str(tmp_path / "copy")
	subprocess.run(["rsync", "-a", mnt.path + "/", dst + "/"],
		       check=True, timeout=300)
	p = subprocess.run(["rsync", "-a", "--stats", mnt.path + "/",
			    dst + "/"], stdout=subprocess.PIPE,
			   stderr=subprocess.STDOUT, timeout=300)
	out = p.stdout.decode(errors="replace")
	assert p.returncode == 0, out
	assert "Number of regular files transferred: 0" in out, out


def test_same_file_read_twice_is_identical(mnt, w):
	rel, (mbox, rec) = next(iter(w.expected_files().items()))
	p = os.path.join(mnt.path, rel)
	with open(p, "rb") as f:
		a = f.read()
	with open(p, "rb") as f:
		b = f.read()
	assert a == b == w.body(mbox, rec["uid"])


def test_a_read_that_finds_its_message_gone_drops_its_name(server, new_user,
							   mounter, witness):
	"""Without the watch (-o noidle), another client expunges a message
	imapfs still lists: reading it fails, and the listing drops it at
	once instead of after list_ttl."""
	import conftest
	from writehelpers import Writer, fresh, wait_until

	user = new_user("gone")
	conftest.seed_account(server, user, {"INBOX": 3})
	m = mounter.mount(user, opts=["noidle"])
	inbox = os.path.join(m.path, "INBOX")
	recs = fresh(witness(user), "INBOX")
	gone = recs[1]
	assert gone["name"] in os.listdir(inbox)
	writer = Writer(server, user)
	try:
		writer.store("INBOX", gone["uid"], "+FLAGS", "(\\Deleted)")
		writer.c.uid("EXPUNGE", str(gone["uid"]))
	finally:
		writer.close()
	with pytest.raises(OSError):
		with open(os.path.join(inbox, gone["name"]), "rb") as f:
			f.read()
	assert wait_until(lambda: gone["name"] not in os.listdir(inbox),
			  timeout=10)
	assert len(os.listdir(inbox)) == 2


@pytest.mark.parametrize("loop", ["spin", "spin=0", "max_threads=2"])
def test_a_read_waiting_on_the_server_holds_up_nothing(server, new_user,
						      mounter, witness, loop):
	"""While one read waits on a server that has gone quiet, requests
	that need no server (ls, stat, reading a cached message) are still
	answered, whichever FUSE loop runs (-o spin=0 is libfuse's; with
	-o max_threads=2 imapfs's has one reader and its watcher); once the
	server answers, the read gets its bytes."""
	import threading

	import conftest
	from writehelpers import HoldAfterCommand, body, fresh, run, sha

	user = new_user("held")
	conftest.seed_account(server, user, {"INBOX": 3, "Other": 3})
	w = witness(user)
	recs = fresh(w, "INBOX")
	held = fresh(w, "Other")[0]
	# Its own FETCH: the prefetch of the messages after it may go on
	# another connection.
	proxy = HoldAfterCommand(server["imap_port"],
				 b"UID FETCH %d (BODY.PEEK[])" % held["uid"])
	try:
		m = proxy.mount(mounter, user,
				opts=[loop] if loop != "spin" else [])
		inbox = os.path.join(m.path, "INBOX")
		assert sorted(os.listdir(inbox)) == sorted(
			r["name"] for r in recs)
		other = os.path.join(m.path, "Other")
		assert held["name"] in os.listdir(other)
		cached = os.path.join(inbox, recs[0]["name"])
		with open(cached, "rb") as f:
			assert sha(f.read()) == sha(body(w, "INBOX",
							 recs[0]["uid"]))

		proxy.armed.set()
		got = {}

		def read_held():
			with open(os.path.join(other, held["name"]),
				  "rb") as f:
				got["data"] = f.read()

		reader = threading.Thread(target=read_held, daemon=True)
		reader.start()
		assert proxy.cut.wait(10), "the read sent no FETCH"
		p = run(["sh", "-c", 'ls "$1" >/dev/null && stat "$2" '
			 '>/dev/null && cat "$2"', "sh", inbox, cached],
			timeout=20)
		assert p.returncode == 0, p.stderr
		assert sha(p.stdout) == sha(body(w, "INBOX", recs[0]["uid"]))
		assert reader.is_alive(), "the held read did not wait"
		proxy.released.set()
		reader.join(20)
		assert sha(got["data"]) == sha(body(w, "Other",
						    held["uid"]))
	finally:
		proxy.stop()


def test_every_cpu_is_answered_after_a_pause(mounter, seeded, w):
	"""Programs on each CPU in turn, each after a pause long enough for
	imapfs's readers to go to sleep (-o spin is 200 µs): every one gets
	the right bytes, whether the reader on its CPU sleeps, sleeps in
	poll() or was woken by another's request."""
	import time

	m = mounter.mount(seeded["user"])
	files = sorted(w.expected_files().items())[:4]
	for pause in (0.001, 0.02, 0.2):
		for cpu in sorted(os.sched_getaffinity(0)):
			for rel, (mbox, rec) in files:
				time.sleep(pause)
				p = subprocess.run(
					["cat", os.path.join(m.path, rel)],
					stdout=subprocess.PIPE, timeout=20,
					preexec_fn=lambda c=cpu:
					os.sched_setaffinity(0, {c}))
				assert p.returncode == 0
				assert sha256(p.stdout) == sha256(
					w.body(mbox, rec["uid"])), (cpu, rel)


def test_sigterm_while_a_read_waits_on_the_server(server, new_user, mounter,
						  witness):
	"""SIGTERM to imapfs while a read waits on a server that has gone
	quiet: the read gives up at once and imapfs unmounts and exits,
	instead of waiting out -o timeout (60 s) for the read first."""
	import signal
	import threading
	import time

	import conftest
	from writehelpers import HoldAfterCommand, fresh

	user = new_user("term")
	conftest.seed_account(server, user, {"INBOX": 3})
	held = fresh(witness(user), "INBOX")[0]
	proxy = HoldAfterCommand(server["imap_port"], b"BODY.PEEK[")
	try:
		m = proxy.mount(mounter, user)
		path = os.path.join(m.path, "INBOX", held["name"])
		assert held["name"] in os.listdir(os.path.dirname(path))
		proxy.armed.set()

		def read_held():
			try:
				with open(path, "rb") as f:
					f.read()
			except OSError:
				pass

		reader = threading.Thread(target=read_held, daemon=True)
		reader.start()
		assert proxy.cut.wait(10), "the read sent no FETCH"
		mounter.mounts.remove(m)
		started = time.monotonic()
		m.proc.send_signal(signal.SIGTERM)
		rc = m.proc.wait(timeout=40)
		assert time.monotonic() - started < 10, m.stderr()[-2000:]
		assert rc == 0, m.stderr()[-2000:]
		assert not os.path.ismount(m.path)
		reader.join(10)
	finally:
		proxy.stop()



def test_a_dozen_reads_waiting_on_the_server_hold_up_nothing(
		server, new_user, mounter, witness):
	"""Twelve reads at once wait on a server that has gone quiet on
	every connection (the kernel keeps up to 12 readahead reads in
	flight): ls, stat and reading a cached message are still answered,
	and once the server answers, every read gets its bytes."""
	import threading
	import time

	import conftest
	from writehelpers import HoldAfterCommand, body, fresh, run, sha

	user = new_user("dozen")
	conftest.seed_account(server, user, {"INBOX": 3, "Other": 12})
	w = witness(user)
	# A middle message: reading the first would start a scan, whose
	# batch for the rest of INBOX could still be on the wire when the
	# server goes quiet, and hold the connection the reads need.
	cached_rec = fresh(w, "INBOX")[1]
	held = fresh(w, "Other")
	proxy = HoldAfterCommand(server["imap_port"], b"BODY.PEEK[",
				 every=True)
	try:
		m = proxy.mount(mounter, user)
		inbox = os.path.join(m.path, "INBOX")
		other = os.path.join(m.path, "Other")
		assert sorted(os.listdir(other)) == sorted(
			r["name"] for r in held)
		cached = os.path.join(inbox, cached_rec["name"])
		with open(cached, "rb") as f:
			f.read()
		os.listdir(inbox)

		proxy.armed.set()
		got = {}

		def read_held(rec):
			with open(os.path.join(other, rec["name"]), "rb") as f:
				got[rec["uid"]] = f.read()

		readers = [threading.Thread(target=read_held, args=(r,),
					    daemon=True) for r in held]
		for t in readers:
			t.start()
		assert proxy.cut.wait(10), "no read sent a FETCH"
		time.sleep(1.0)         # the rest get as far as the server
		p = run(["sh", "-c", 'ls "$1" >/dev/null && stat "$2" '
			 '>/dev/null && cat "$2"', "sh", inbox, cached],
			timeout=20)
		assert p.returncode == 0, p.stderr
		assert sha(p.stdout) == sha(body(w, "INBOX", cached_rec["uid"]))
		assert any(t.is_alive() for t in readers), \
			"no read waited on the server"
		proxy.released.set()
		for t in readers:
			t.join(30)
		for r in held:
			assert sha(got[r["uid"]]) == sha(body(w, "Other",
							      r["uid"])), r
	finally:
		proxy.stop()

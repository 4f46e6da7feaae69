"""Integration tests: imapfs mounted against a private Dovecot on 127.0.0.1.

Fixtures
  server    (session; alias dovecot) a Dovecot started by
            scripts/imapfs_testserver.py in a temporary directory, stopped
            by its PID at the end.  server_factory starts variants (e.g.
            without MOVE).
  new_user  (function) a factory of fresh, empty account names.
  seeded    (module) a fresh account holding the standard tree (SEED_TREE)
            and sample messages; a dict with "user" and "samples".
  account   (function) a fresh account with ACCOUNT_TREE, for tests that
            change things; same dict shape.
  witness   (function) factory: Witness(user), an imaplib connection that
            only EXAMINEs and PEEKs, to check imapfs against.
  imap      (function; alias observer) Witness(account["user"]).
  mounter   (function; alias mount) factory: .mount(user, max_conns=4,
            ...) -> Mount; unmounted at teardown, where the daemon must
            exit 0 and its stderr must hold no crash marker.
  mnt       (function) account mounted, parametrised max_conns 1 and 4.

The imapfs binary is $IMAPFS_BIN (default: build/fs/imapfs in the
checkout).  Without /dev/fuse, dovecot or the binary the tests skip, or
fail when CI=true.
"""

import contextlib
import datetime
import email
import email.policy
import errno
import hashlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
	os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import imapfs_samplemail as sm  # noqa: E402
import imapfs_testserver as ts  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_TIMEOUT = int(os.environ.get("IMAPFS_TEST_TIMEOUT", "300"))
CRASH_MARKERS = ("CRITICAL", "Segmentation", "AddressSanitizer")

# The standard tree of the "seeded" account: Unicode mailbox name (with
# the server's "." delimiter) -> number of sample messages in it.  The
# parents "Archive", "x" and "x.y" exist only as \Noselect.
SEED_TREE = {
	"INBOX": 24,
	"Archive.2023": 5,
	"Projects": 3,
	"Projects.imapfs": 4,
	"Entwürfe": 3,
	"日本語": 2,
	"100% done": 2,
	"a/b": 2,
	"Empty": 0,
	"x.y.z": 1,
}


# The tree of the per-test "account" fixture.
ACCOUNT_TREE = {"INBOX": 6, "Other": 3, "Empty": 0}


def imapfs_bin():
	b = os.environ.get("IMAPFS_BIN")
	if b:
		return os.path.abspath(b)
	return os.path.join(ROOT, "build", "fs", "imapfs")


def _missing(what):
	if IN_CI:
		pytest.fail("CI=true and %s" % what, pytrace=False)
	pytest.skip(what)


# --- per-test timeout --------------------------------------------------

@pytest.fixture(autouse=True)
def _alarm_timeout(request):
	"""SIGALRM per test unless pytest-timeout handles it."""
	try:
		plugin_timeout = request.config.getoption("timeout")
	except ValueError:
		plugin_timeout = None
	if plugin_timeout:
		yield
		return

	def on_alarm(signum, frame):
		raise TimeoutError("test exceeded %d s" % TEST_TIMEOUT)
	old = signal.signal(signal.SIGALRM, on_alarm)
	signal.alarm(TEST_TIMEOUT)
	try:
		yield
	finally:
		signal.alarm(0)
		signal.signal(signal.SIGALRM, old)


# --- server and accounts -----------------------------------------------

@pytest.fixture(scope="session")
def server():
	yield from _server()


@pytest.fixture(scope="session")
def dovecot(server):
	return server


def _server():
	if ts.dovecot_binary() is None:
		_missing("dovecot is not installed (scripts/install-deps)")
	if shutil.which("openssl") is None:
		_missing("openssl is not installed")
	d = tempfile.mkdtemp(prefix="imapfs-dovecot-")
	try:
		info = ts.start(d)
	except ts.ServerError as e:
		shutil.rmtree(d, ignore_errors=True)
		pytest.fail("cannot start dovecot: %s" % e, pytrace=False)
	yield info
	ts.stop(d)
	if not os.environ.get("KEEP_DOVECOT"):
		shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def server_factory():
	"""start(drop_caps=[...], quota={...}) -> info of an extra server
	(e.g. one that does not advertise MOVE), stopped by its PID at
	teardown."""
	dirs = []

	def start(drop_caps=None, quota=None, compress=False):
		if ts.dovecot_binary() is None:
			_missing("dovecot is not installed")
		d = tempfile.mkdtemp(prefix="imapfs-dovecot-")
		dirs.append(d)
		try:
			return ts.start(d, drop_caps=drop_caps, quota=quota,
					compress=compress)
		except ts.ServerError as e:
			pytest.fail("cannot start dovecot: %s" % e,
				    pytrace=False)
	yield start
	for d in dirs:
		ts.stop(d)
		shutil.rmtree(d, ignore_errors=True)


_user_counter = itertools.count(1)


@pytest.fixture
def new_user(server):
	def make(tag="u"):
		tag = re.sub(r"[^a-z0-9]", "", tag.lower())[:20] or "u"
		return "%s%d_%d" % (tag, os.getpid(), next(_user_counter))
	return make


def seed_account(server, user, tree=None, seed=1):
	"""Create TREE's mailboxes for USER and append samples.  Returns
	{mailbox: [Sample, ...]} in APPEND (= UID) order."""
	tree = SEED_TREE if tree is None else tree
	samples = sm.make_messages(seed, sum(tree.values()))
	out = {}
	c = ts.connect(server, user)
	try:
		pos = 0
		for mbox, n in tree.items():
			if mbox.upper() != "INBOX":
				sm.create(c, mbox)
			out[mbox] = samples[pos:pos + n]
			for s in out[mbox]:
				sm.append(c, mbox, s)
			pos += n
	finally:
		c.logout()
	return out


@pytest.fixture(scope="module")
def seeded(server, request):
	tag = request.module.__name__.split(".")[-1].replace("test_", "")
	user = "s%s%d_%d" % (re.sub(r"[^a-z0-9]", "", tag)[:16], os.getpid(),
			     next(_user_counter))
	return {"user": user, "samples": seed_account(server, user)}


@pytest.fixture
def account(server, new_user):
	user = new_user("acct")
	return {"user": user,
		"samples": seed_account(server, user, ACCOUNT_TREE, seed=2)}


# --- the witness ---------------------------------------------------------

_FETCH_RE = re.compile(
	rb"UID (\d+)|RFC822\.SIZE (\d+)|INTERNALDATE \"([^\"]+)\""
	rb"|FLAGS \(([^)]*)\)")


def parse_internaldate(s):
	if isinstance(s, bytes):
		s = s.decode()
	dt = datetime.datetime.strptime(s.strip(), "%d-%b-%Y %H:%M:%S %z")
	return int(dt.timestamp())


class Witness:
	"""A read-only imaplib view of one account."""

	def __init__(self, server, user):
		self.server = server
		self.user = user
		self.c = ts.connect(server, user)
		self.selected = None

	def close(self):
		try:
			self.c.logout()
		except Exception:
			pass

	def _ok(self, typ, data, what):
		if typ != "OK":
			raise AssertionError("%s: %s %r" % (what, typ, data))
		return data

	def list(self):
		"""[(flags set, delimiter, Unicode name)] from LIST "" "*"."""
		data = self._ok(*self.c.list('""', "*"), what="LIST")
		out = []
		for item in data:
			if isinstance(item, tuple):
				head, lit = item
				name = lit.decode()
				m = re.match(rb'\(([^)]*)\) ("(?:[^"\\]|\\.)*"|NIL)',
					     head)
			else:
				m = re.match(rb'\(([^)]*)\) ("(?:[^"\\]|\\.)*"|NIL) '
					     rb'(.*)$', item)
				name = m.group(3).decode()
				if name.startswith('"'):
					name = re.sub(r'\\(.)', r'\1', name[1:-1])
			flags = set(m.group(1).decode().split())
			delim = m.group(2).decode()
			delim = None if delim == "NIL" else \
				re.sub(r'\\(.)', r'\1', delim[1:-1])
			out.append((flags, delim, sm.mutf7_decode(name)))
		return out

	def examine(self, mbox):
		if self.selected != mbox:
			self._ok(*self.c.select(sm.quote_mailbox(mbox),
						readonly=True),
				 what="EXAMINE " + mbox)
			self.selected = mbox

	def uidvalidity(self, mbox):
		self.examine(mbox)
		typ, data = self.c.response("UIDVALIDITY")
		return int(data[0])

	def messages(self, mbox):
		"""[{uid, size, mtime, flags, subject}] in UID order."""
		self.examine(mbox)
		typ, data = self.c.uid("SEARCH", "ALL")
		self._ok(typ, data, "UID SEARCH")
		if not data[0].split():
			return []
		typ, data = self.c.uid(
			"FETCH", "1:*", "(UID RFC822.SIZE INTERNALDATE FLAGS "
			"BODY.PEEK[HEADER.FIELDS (SUBJECT FROM MESSAGE-ID)])")
		self._ok(typ, data, "UID FETCH")
		out = []
		for item in data:
			if not isinstance(item, tuple):
				continue
			head, lit = item
			rec = {}
			for m in _FETCH_RE.finditer(head):
				if m.group(1):
					rec["uid"] = int(m.group(1))
				elif m.group(2):
					rec["size"] = int(m.group(2))
				elif m.group(3):
					rec["mtime"] = parse_internaldate(
						m.group(3))
					rec["internaldate"] = m.group(3).decode()
				elif m.group(4) is not None:
					rec["flags"] = set(m.group(4).decode()
							   .split()) - {"\\Recent"}
			hdr = email.message_from_string(
				lit.decode("utf-8", "replace"),
				policy=email.policy.compat32)
			rec["subject"] = sm.decode_subject(hdr.get("Subject"))
			rec["from"] = hdr.get("From")
			rec["message_id"] = hdr.get("Message-ID")
			rec["name"] = sm.message_file_name(rec["uid"],
							   rec["subject"])
			out.append(rec)
		out.sort(key=lambda r: r["uid"])
		return out

	def body(self, mbox, uid):
		self.examine(mbox)
		typ, data = self.c.uid("FETCH", str(uid), "(BODY.PEEK[])")
		self._ok(typ, data, "UID FETCH BODY.PEEK[]")
		for item in data:
			if isinstance(item, tuple):
				return item[1]
		raise AssertionError("no body for %s/%d" % (mbox, uid))

	def flags(self, mbox, uid):
		self.examine(mbox)
		typ, data = self.c.uid("FETCH", str(uid), "(FLAGS)")
		self._ok(typ, data, "UID FETCH FLAGS")
		m = re.search(rb"FLAGS \(([^)]*)\)", data[0])
		return set(m.group(1).decode().split()) - {"\\Recent"}

	def all_flags(self, mbox):
		return {r["uid"]: r["flags"] for r in self.messages(mbox)}

	# The tree as imapfs should show it.
	def expected_dirs(self):
		"""{relative dir path: (flags, Unicode mailbox name)} including
		parents that LIST does not name."""
		dirs = {}
		for flags, delim, name in self.list():
			parts = name.split(delim) if delim else [name]
			rel = "/".join(sm.mailbox_component_name(p)
				       for p in parts)
			dirs[rel] = (flags, name)
			for i in range(1, len(parts)):
				prel = "/".join(sm.mailbox_component_name(p)
						for p in parts[:i])
				dirs.setdefault(prel, ({"\\Noselect"},
						       delim.join(parts[:i])))
		return dirs

	def expected_files(self):
		"""{relative file path: (mailbox, message record)}."""
		files = {}
		for rel, (flags, name) in self.expected_dirs().items():
			lf = {f.lower() for f in flags}
			if "\\noselect" in lf or "\\nonexistent" in lf:
				continue
			for rec in self.messages(name):
				files[rel + "/" + rec["name"]] = (name, rec)
		return files


@pytest.fixture
def witness(server):
	made = []

	def make(user):
		w = Witness(server, user)
		made.append(w)
		return w
	yield make
	for w in made:
		w.close()


@pytest.fixture
def imap(account, witness):
	return witness(account["user"])


@pytest.fixture
def observer(imap):
	return imap


# --- mounting ----------------------------------------------------------

def sha256(b):
	return hashlib.sha256(b).hexdigest()


def file_sha256(path):
	h = hashlib.sha256()
	with open(path, "rb") as f:
		while True:
			b = f.read(1 << 20)
			if not b:
				break
			h.update(b)
	return h.hexdigest()


def walk_tree(root):
	"""(set of relative dirs, set of relative files) under ROOT."""
	dirs, files = set(), set()
	for dp, dn, fn in os.walk(root):
		rel = os.path.relpath(dp, root)
		for d in dn:
			dirs.add(d if rel == "." else rel + "/" + d)
		for f in fn:
			files.add(f if rel == "." else rel + "/" + f)
	return dirs, files


def _read_log(path):
	try:
		with open(path, errors="replace") as f:
			return f.read()
	except OSError:
		return ""


class Mount:
	def __init__(self, path, proc, log, cache_dir, argv):
		self.path = path
		self.proc = proc
		self.log = log
		self.cache_dir = cache_dir
		self.argv = argv

	def stderr(self):
		return _read_log(self.log)

	def unmount(self, timeout=30):
		"""Unmount; returns a list of problems (empty when clean)."""
		problems = []
		if os.path.ismount(self.path):
			for i in range(20):
				p = subprocess.run(["fusermount3", "-u", self.path],
						   stdout=subprocess.PIPE,
						   stderr=subprocess.STDOUT)
				if p.returncode == 0:
					break
				time.sleep(0.25)
			else:
				problems.append("fusermount3 -u failed: %s" %
						p.stdout.decode(errors="replace"))
				subprocess.run(["fusermount3", "-u", "-z",
						self.path])
		try:
			rc = self.proc.wait(timeout=timeout)
			if rc != 0:
				problems.append("imapfs exited %d after unmount"
						% rc)
		except subprocess.TimeoutExpired:
			problems.append("imapfs did not exit within %d s of "
					"unmount" % timeout)
			self.proc.kill()
			self.proc.wait()
		log = self.stderr()
		for marker in CRASH_MARKERS:
			if marker in log:
				problems.append("stderr has %r" % marker)
		if problems:
			problems.append("imapfs stderr:\n" + log[-6000:])
		return problems


class Mounter:
	def __init__(self, server, base):
		self.server = server
		self.base = base
		self.mounts = []
		self.n = 0

	def argv(self, user, max_conns=4, opts=(), url=None, cafile=True,
		 cache_dir=None, debug=False):
		o = []
		if cafile:
			o.append("cafile=" + self.server["cafile"])
		if max_conns is not None:
			o.append("max_conns=%d" % max_conns)
		if cache_dir:
			o.append("cache_dir=" + cache_dir)
		o.extend(opts)
		argv = [imapfs_bin(), "-f"]
		if debug:
			argv.append("-d")
		if o:
			argv += ["-o", ",".join(o)]
		if url is None:
			url = "imaps://%s@%s:%d" % (user, self.server["host"],
						     self.server["imaps_port"])
		return argv + [url]

	def new_dir(self, what):
		self.n += 1
		d = os.path.join(self.base, "%s%d" % (what, self.n))
		os.makedirs(d)
		return d

	def mount(self, user, max_conns=4, opts=(), url=None, cache_dir=None,
		  password=None, debug=False, timeout=30, cafile=True, cwd=None):
		mnt = self.new_dir("mnt")
		if cache_dir is None:
			cache_dir = self.new_dir("cache")
		log = os.path.join(self.base, "imapfs%d.log" % self.n)
		argv = self.argv(user, max_conns, opts, url, cafile=cafile,
				 cache_dir=cache_dir, debug=debug) + [mnt]
		env = dict(os.environ)
		env["IMAPFS_PASSWORD"] = password or self.server["password"]
		with open(log, "wb") as lf:
			proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
						stdout=lf, stderr=lf, env=env,
						cwd=cwd)
		m = Mount(mnt, proc, log, cache_dir, argv)
		self.mounts.append(m)
		deadline = time.monotonic() + timeout
		while not os.path.ismount(mnt):
			if proc.poll() is not None:
				pytest.fail("imapfs exited %d before mounting:\n"
					    "%s\n%s" % (proc.returncode,
							" ".join(argv),
							m.stderr()),
					    pytrace=False)
			if time.monotonic() > deadline:
				pytest.fail("imapfs did not mount within %d s:"
					    "\n%s" % (timeout, m.stderr()),
					    pytrace=False)
			time.sleep(0.05)
		return m

	def unmount(self, m):
		self.mounts.remove(m)
		return m.unmount()

	def cleanup(self):
		problems = []
		for m in list(self.mounts):
			problems += self.unmount(m)
		return problems


def _check_requirements():
	if not os.path.exists("/dev/fuse"):
		_missing("/dev/fuse is missing")
	if shutil.which("fusermount3") is None:
		_missing("fusermount3 is not installed")
	b = imapfs_bin()
	if not os.access(b, os.X_OK):
		_missing("imapfs binary not found at %s (set IMAPFS_BIN)" % b)


def mounts_on(server, base):
	"""A Mounter for SERVER, its mounts checked and unmounted at the end:
	for a fixture of a module's own server (yield from mounts_on(...))."""
	_check_requirements()
	mt = Mounter(server, str(base))
	yield mt
	problems = mt.cleanup()
	if problems:
		pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def mounter(server, tmp_path):
	yield from mounts_on(server, tmp_path)


@pytest.fixture(scope="module")
def module_mounter(server, tmp_path_factory):
	_check_requirements()
	mt = Mounter(server, str(tmp_path_factory.mktemp("mnt")))
	yield mt
	problems = mt.cleanup()
	if problems:
		pytest.fail("\n".join(problems), pytrace=False)


def run_imapfs_expect_failure(argv, password, timeout=60):
	"""Run imapfs that must fail before mounting.  Returns (rc, stderr)."""
	env = dict(os.environ)
	env["IMAPFS_PASSWORD"] = password
	mnt = argv[-1]
	try:
		p = subprocess.run(argv, stdin=subprocess.DEVNULL,
				   stdout=subprocess.PIPE,
				   stderr=subprocess.PIPE, env=env,
				   timeout=timeout)
	except subprocess.TimeoutExpired:
		if os.path.ismount(mnt):
			subprocess.run(["fusermount3", "-u", mnt])
		pytest.fail("imapfs did not exit within %d s" % timeout)
	mounted = os.path.ismount(mnt)
	if mounted:
		subprocess.run(["fusermount3", "-u", mnt])
	assert not mounted, "imapfs mounted although it should have failed"
	return p.returncode, p.stderr.decode(errors="replace") + \
		p.stdout.decode(errors="replace")


def dovecot_sessions(server, user):
	"""(logins, ended sessions, sum of out= bytes of the ended ones) of
	USER, from the server log (Dovecot logs out= when a session ends)."""
	logins = ended = out = 0
	with open(server["log"], errors="replace") as f:
		for line in f:
			if "Login: user=<%s>" % user in line:
				logins += 1
			elif "imap(%s)" % user in line and \
			     "Disconnected" in line:
				ended += 1
				m = re.search(r"\bout=(\d+)", line)
				if m:
					out += int(m.group(1))
	return logins, ended, out


def dovecot_out_bytes(server, user, still_open=0, timeout=10):
	"""Bytes the server sent USER's sessions, once all but STILL_OPEN
	of them have ended (waits for the log to catch up)."""
	deadline = time.monotonic() + timeout
	while True:
		logins, ended, out = dovecot_sessions(server, user)
		if logins - ended <= still_open or \
		   time.monotonic() > deadline:
			return out
		time.sleep(0.1)


@contextlib.contextmanager
def small_disk(path, size):
	"""A tmpfs of SIZE (mount's syntax: "2m") on directory PATH, made if
	needed, for the length of the block: a small, or full, cache disk."""
	os.makedirs(str(path), exist_ok=True)
	subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs",
			str(path)], check=True)
	try:
		yield str(path)
	finally:
		subprocess.run(["umount", "-l", str(path)])


def fill_disk(path, leave=0):
	"""Fills the file system of directory PATH with a file there,
	leaving about LEAVE bytes free; returns the file's path."""
	filler = os.path.join(str(path), "filler")
	with open(filler, "wb", buffering=0) as f:
		try:
			while True:
				f.write(b"\0" * 4096)
		except OSError as e:
			assert e.errno == errno.ENOSPC, e
		if leave:
			f.truncate(f.tell() - leave)
	return filler


@pytest.fixture
def mount(mounter):
	return mounter


@pytest.fixture(params=[1, 4], ids=lambda n: "conns%d" % n)
def mnt(request, account, mounter):
	return mounter.mount(account["user"], max_conns=request.param)

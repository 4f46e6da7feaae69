"""Connecting: implicit TLS and STARTTLS mount; a wrong password, a wrong
port and an untrusted certificate fail before anything is mounted, with
a message that says why; quiet connections are kept alive."""

import os
import re

import pytest

from conftest import imapfs_bin, run_imapfs_expect_failure, seed_account
from writehelpers import RefuseLogins, wait_until


@pytest.fixture
def user(server, new_user):
	u = new_user("conn")
	seed_account(server, u, {"INBOX": 2})
	return u


def _mnt(tmp_path):
	d = tmp_path / "mnt"
	d.mkdir()
	return str(d)


def test_imaps_mounts(user, mounter):
	m = mounter.mount(user)
	assert len(os.listdir(os.path.join(m.path, "INBOX"))) == 2


def test_qresync_is_enabled_in_the_login_round_trip(user, mounter):
	"""Every connection (the probe, the pool's, the watcher's) sends
	ENABLE QRESYNC behind its login, before the login's answer, and
	Dovecot enables it: a login costs no extra round trip for it."""
	m = mounter.mount(user, debug=True)
	assert len(os.listdir(os.path.join(m.path, "INBOX"))) == 2

	def logged_in():
		"""The log, once every connection begun has the answer to
		its ENABLE (the watcher's may still be on its way)."""
		log = m.stderr()
		begun = set(re.findall(r"\[conn (\d+)\] C: A1 AUTHENTICATE",
				       log))
		done = set(re.findall(r"\[conn (\d+)\] S: A2 OK", log))
		return log if begun and begun <= done else None

	log = wait_until(logged_in, timeout=10)
	assert log, m.stderr()[-2000:]
	conns = set(re.findall(r"\[conn (\d+)\] C: A1 AUTHENTICATE", log))
	for n in conns:
		lines = [l for l in log.splitlines() if "[conn %s] " % n in l]
		order = [i for i, l in enumerate(lines)
			 if "C: A2 ENABLE QRESYNC" in l or "S: A1 OK" in l]
		assert len(order) == 2 and \
			"C: A2 ENABLE QRESYNC" in lines[order[0]], \
			"\n".join(lines[:20])
		assert any("S: * ENABLED QRESYNC" in l for l in lines), \
			"\n".join(lines[:20])
		assert not any("C: A3 ENABLE" in l for l in lines)


def keepalive_timers(pid):
	"""{socket inode: (timer kind, seconds left)} for PID's TCP sockets,
	from /proc/net/tcp{,6} (kind 2 is the keepalive timer; its time is
	in clock ticks)."""
	inodes = set()
	for fd in os.listdir("/proc/%d/fd" % pid):
		try:
			t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
		except OSError:
			continue
		m = re.fullmatch(r"socket:\[(\d+)\]", t)
		if m:
			inodes.add(m.group(1))
	hz = os.sysconf("SC_CLK_TCK")
	out = {}
	for table in ("/proc/net/tcp", "/proc/net/tcp6"):
		with open(table) as f:
			for line in f.readlines()[1:]:
				col = line.split()
				if col[9] in inodes and col[3] == "01":
					kind, when = col[5].split(":")
					out[col[9]] = (int(kind, 16),
						       int(when, 16) / hz)
	return out


def test_quiet_connections_are_probed_within_a_minute(user, mounter):
	"""A NAT or firewall that forgets quiet connections must neither drop
	imapfs's nor leave its next command hanging: TCP keepalive probes
	start after a minute of quiet, not the system's two hours."""
	m = mounter.mount(user)
	assert len(os.listdir(os.path.join(m.path, "INBOX"))) == 2
	timers = keepalive_timers(m.proc.pid)
	assert timers, "no established connection of imapfs found"
	for inode, (kind, left) in timers.items():
		assert kind == 2 and 0 < left <= 60, (inode, kind, left)


def test_starttls_mounts(user, mounter, server):
	url = "imap://%s@%s:%d" % (user, server["host"], server["imap_port"])
	m = mounter.mount(user, url=url)
	assert len(os.listdir(os.path.join(m.path, "INBOX"))) == 2


def test_password_from_passfile(user, mounter, tmp_path, server):
	pf = tmp_path / "pw"
	pf.write_text(server["password"] + "\n")
	os.chmod(pf, 0o600)
	m = mounter.mount(user, opts=["passfile=%s" % pf],
			  password="wrong-env-password-unused")
	assert len(os.listdir(os.path.join(m.path, "INBOX"))) == 2


def test_password_from_the_environment_is_not_left_there(user, mounter,
							server):
	"""$IMAPFS_PASSWORD is wiped once read: not readable in the
	process's /proc/PID/environ while mounted (logins after a drop use
	imapfs's own copy)."""
	m = mounter.mount(user)
	assert len(os.listdir(os.path.join(m.path, "INBOX"))) == 2
	with open("/proc/%d/environ" % m.proc.pid, "rb") as f:
		env = f.read()
	assert b"IMAPFS_PASSWORD=" + server["password"].encode() not in env
	assert server["password"].encode() not in env


def test_wrong_password_fails_clearly(user, mounter, tmp_path, server):
	argv = mounter.argv(user) + [_mnt(tmp_path)]
	rc, err = run_imapfs_expect_failure(argv, "not-the-password")
	assert rc != 0
	assert re.search(r"(?i)auth|login|password|credential", err), err


def test_a_login_the_server_cannot_check_now_is_tried_again_at_mount(
		user, mounter, server):
	"""The server answers the mount's login NO [UNAVAILABLE] twice
	(it could not check the password): imapfs says so, tries again,
	and mounts."""
	proxy = RefuseLogins(server["imap_port"], 2)
	try:
		m = proxy.mount(mounter, user)
		assert len(os.listdir(os.path.join(m.path, "INBOX"))) == 2
	finally:
		proxy.stop()
	assert proxy.left == 0
	log = m.stderr()
	assert log.count("trying again in") == 2, log
	assert "could not check it" in log, log


def test_wrong_port_fails_clearly(user, mounter, tmp_path, server):
	from conftest import ts
	port = ts._free_port()
	url = "imaps://%s@%s:%d" % (user, server["host"], port)
	argv = mounter.argv(user, url=url) + [_mnt(tmp_path)]
	rc, err = run_imapfs_expect_failure(argv, server["password"])
	assert rc != 0
	assert re.search(r"(?i)connect|refused", err), err


def test_imaps_to_a_plaintext_port_says_so(user, mounter, tmp_path, server):
	url = "imaps://%s@%s:%d" % (user, server["host"], server["imap_port"])
	argv = mounter.argv(user, url=url) + [_mnt(tmp_path)]
	rc, err = run_imapfs_expect_failure(argv, server["password"])
	assert rc != 0
	assert "is this a TLS port?" in err, err


def test_a_hang_up_during_the_handshake_is_not_called_a_port_mistake(
		user, mounter, tmp_path, server):
	"""A proxy whose server is down takes the connection and hangs up:
	the message says the connection was closed, not that the port may
	be a plaintext one."""
	import socket
	import threading
	lsock = socket.socket()
	lsock.bind(("127.0.0.1", 0))
	lsock.listen(8)

	def hang_up():
		while True:
			try:
				c, _ = lsock.accept()
			except OSError:
				return
			c.recv(4096)
			c.close()
	threading.Thread(target=hang_up, daemon=True).start()
	try:
		url = "imaps://%s@127.0.0.1:%d" % (user,
						   lsock.getsockname()[1])
		argv = mounter.argv(user, url=url) + [_mnt(tmp_path)]
		rc, err = run_imapfs_expect_failure(argv, server["password"])
	finally:
		lsock.close()
	assert rc != 0
	assert "closed" in err and "TLS port" not in err, err


def test_untrusted_certificate_fails_clearly(user, mounter, tmp_path,
					     server):
	argv = mounter.argv(user, cafile=False) + [_mnt(tmp_path)]
	rc, err = run_imapfs_expect_failure(argv, server["password"])
	assert rc != 0
	assert re.search(r"(?i)certificate|verif|trust", err), err


def test_version_and_help(mounter):
	import subprocess
	v = subprocess.run([imapfs_bin(), "-V"], stdout=subprocess.PIPE,
			   stderr=subprocess.STDOUT, timeout=30)
	assert v.returncode == 0 and b"imapfs" in v.stdout.lower()
	h = subprocess.run([imapfs_bin(), "-h"], stdout=subprocess.PIPE,
			   stderr=subprocess.STDOUT, timeout=30)
	assert h.returncode == 0 and b"passcmd" in h.stdout


def test_unknown_option_fails_before_the_server_is_asked(user, mounter,
							  tmp_path, server):
	"""A typo in -o is reported as such, and no login is tried: not
	even a password is needed for it."""
	argv = mounter.argv(user, opts=("no_such_option",)) + \
		[str(tmp_path)]
	rc, err = run_imapfs_expect_failure(argv, password="")
	assert rc != 0
	assert "unknown option" in err and "no_such_option" in err, err
	assert "password" not in err and "login" not in err, err


def test_bad_option_values_fail_clearly(user, mounter, tmp_path):
	for opt, word in (("max_conns=99", "max_conns"),
			  ("cache_size=2X", "cache_size"),
			  ("rm=shred", "rm="),
			  ("tls=maybe", "tls"),
			  ("spin=-1", "spin="),
			  ("spin=200000", "spin="),
			  ("spin=fast", "spin="),
			  ("max_threads=5000", "max_threads")):
		argv = mounter.argv(user, opts=(opt,)) + [str(tmp_path)]
		rc, err = run_imapfs_expect_failure(argv, password="secret")
		assert rc != 0, opt
		assert word in err, (opt, err)


def test_relative_cafile_and_cache_dir_hold_after_mounting(user, mounter,
							   server, tmp_path):
	"""imapfs works from "/" once mounted: relative paths given on the
	command line still name what they named where it was started, for
	connections made later (after a kick) and for the cache."""
	import shutil

	import imapfs_testserver as ts

	work = tmp_path / "work"
	work.mkdir()
	shutil.copy(server["cafile"], work / "ca.crt")
	rel = "relcache-%d-%d" % (os.getpid(), id(work))
	m = mounter.mount(user, cafile=False, cwd=str(work),
			  opts=["cafile=ca.crt"], cache_dir=rel)
	names = os.listdir(os.path.join(m.path, "INBOX"))
	assert names
	ts.doveadm(server, "kick", user)
	# A read (which is resent after a drop) needs a new connection,
	# made with the CA file; then a mkdir.
	with open(os.path.join(m.path, "INBOX", names[0]), "rb") as f:
		assert f.read()
	os.mkdir(os.path.join(m.path, "AfterKick"))
	assert "AfterKick" in os.listdir(m.path)
	assert mounter.unmount(m) == []
	if os.path.exists("/" + rel):
		shutil.rmtree("/" + rel)
		pytest.fail("the cache went to /" + rel)
	index = [f for f in os.listdir(work / rel)
		 if f not in ("new", "spool")]
	assert index, "nothing of the cache is where cache_dir said"


def test_a_second_mount_on_the_same_cache_is_refused(user, mounter,
						     tmp_path):
	"""Two processes writing one cache would corrupt each other's
	files: the second is refused before it mounts, and says why."""
	cache = str(tmp_path / "shared-cache")
	m = mounter.mount(user, cache_dir=cache)
	argv = mounter.argv(user, cache_dir=cache) + [_mnt(tmp_path)]
	rc, err = run_imapfs_expect_failure(argv, mounter.server["password"])
	assert rc != 0
	assert "in use by another imapfs" in err and "cache_dir" in err, err
	assert len(os.listdir(os.path.join(m.path, "INBOX"))) == 2
	assert mounter.unmount(m) == []
	m2 = mounter.mount(user, cache_dir=cache)
	assert len(os.listdir(os.path.join(m2.path, "INBOX"))) == 2

"""df on a mount: the account's quota as the server tells it (QUOTA,
RFC 9208), checked against what a second IMAP client reads with
GETQUOTAROOT; without a quota, free space enough that a file manager
copies mail in."""

import errno
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import conftest
import imapfs_testserver as ts
from writehelpers import wait_until

QUOTA = {"storage": "10M", "messages": 100}


@pytest.fixture(scope="module")
def quota_server():
	if ts.dovecot_binary() is None:
		pytest.skip("dovecot is not installed")
	d = tempfile.mkdtemp(prefix="imapfs-dovecot-")
	try:
		yield ts.start(d, quota=QUOTA)
	finally:
		ts.stop(d)
		shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def quota_mounter(quota_server, tmp_path):
	yield from conftest.mounts_on(quota_server, tmp_path)


def server_quota(info, user):
	"""(storage used KiB, limit KiB, messages used, limit) as a second
	client reads them."""
	c = ts.connect(info, user)
	try:
		typ, data = c.getquotaroot("INBOX")
		assert typ == "OK", data
	finally:
		c.logout()
	text = b" ".join(data[1]).decode()
	m = re.search(r"STORAGE (\d+) (\d+) MESSAGE (\d+) (\d+)", text)
	assert m, text
	return tuple(int(x) for x in m.groups())


def append(info, user, n, size):
	c = ts.connect(info, user)
	try:
		for i in range(n):
			typ, data = c.append(
				"INBOX", None, None,
				b"Subject: m%d\r\n\r\n" % i + b"x" * size +
				b"\r\n")
			assert typ == "OK", data
	finally:
		c.logout()


def usage(st):
	# GIO (file managers) counts blocks in f_bsize, df in f_frsize
	assert st.f_bsize == st.f_frsize, (st.f_bsize, st.f_frsize)
	return (st.f_blocks * st.f_frsize,
		(st.f_blocks - st.f_bfree) * st.f_frsize,
		st.f_bavail * st.f_frsize, st.f_files, st.f_ffree)


def test_df_shows_the_quota(quota_server, quota_mounter):
	user = "quota%d_1" % os.getpid()
	append(quota_server, user, 3, 300_000)
	used, limit, msgs, msg_limit = server_quota(quota_server, user)
	assert used > 800 and limit == 10 * 1024 and msgs == 3

	m = quota_mounter.mount(user)
	total, taken, free, files, ffree = usage(os.statvfs(m.path))
	assert total == limit * 1024
	assert taken == used * 1024
	assert free == (limit - used) * 1024
	assert (files, ffree) == (msg_limit, msg_limit - msgs)

	# df itself, in 1K blocks: size, used, available
	out = subprocess.run(["df", "-P", m.path], capture_output=True,
			     text=True, check=True).stdout.splitlines()[-1]
	assert out.split()[1:4] == [str(limit), str(used),
				    str(limit - used)], out


def test_df_follows_new_mail(quota_server, quota_mounter):
	"""Another client adds mail: df shows it within the list TTL."""
	user = "quota%d_2" % os.getpid()
	append(quota_server, user, 1, 1000)
	m = quota_mounter.mount(user, opts=["list_ttl=1"])
	before = usage(os.statvfs(m.path))
	append(quota_server, user, 2, 400_000)
	used, limit, msgs, msg_limit = server_quota(quota_server, user)

	def caught_up():
		now = usage(os.statvfs(m.path))
		return now if now[1] == used * 1024 else None
	now = wait_until(caught_up, timeout=10)
	assert now, (before, usage(os.statvfs(m.path)), used)
	assert now[4] == msg_limit - msgs
	assert now[1] > before[1]


def test_df_without_a_quota_leaves_room_to_copy(mounter, seeded):
	"""The shared test server has no QUOTA: nothing is known, and the
	free space a file manager compares a copy against is ample."""
	m = mounter.mount(seeded["user"])
	total, taken, free, files, ffree = usage(os.statvfs(m.path))
	assert taken == 0
	assert free >= 1 << 40 and total >= free
	subprocess.run(["df", m.path], check=True, capture_output=True)


def test_df_while_the_server_is_gone(quota_server, quota_mounter):
	"""The server cannot be reached before anyone asked for the quota:
	df still answers (no quota shown) instead of failing."""
	import imapfs_proxy

	user = "quota%d_3" % os.getpid()
	append(quota_server, user, 1, 1000)
	proxy = imapfs_proxy.LatencyProxy(
		("127.0.0.1", quota_server["imaps_port"]))
	proxy.start()
	try:
		m = quota_mounter.mount(user, opts=["timeout=5"],
					url="imaps://%s@127.0.0.1:%d" %
					(user, proxy.port))
		assert os.listdir(os.path.join(m.path, "INBOX"))
	finally:
		proxy.stop()
	total, taken, free, _, _ = usage(os.statvfs(m.path))
	assert taken == 0 and free >= 1 << 40
	assert m.proc.poll() is None, m.stderr()[-3000:]


def test_a_copy_over_the_quota_fails_with_edquot(quota_server, quota_mounter):
	"""cp of a message the quota has no room for: close() says EDQUOT,
	nothing is added, and the log gives the server's reason."""
	user = "quota%d_4" % os.getpid()
	append(quota_server, user, 1, 1000)
	m = quota_mounter.mount(user)
	path = os.path.join(m.path, "INBOX", "big.eml")
	f = open(path, "wb")
	f.write(b"Subject: too big\r\n\r\n" + b"y" * (11 << 20) + b"\r\n")
	with pytest.raises(OSError) as e:
		f.close()
	assert e.value.errno == errno.EDQUOT, e.value
	assert server_quota(quota_server, user)[2] == 1
	assert len(os.listdir(os.path.join(m.path, "INBOX"))) == 1
	assert wait_until(lambda: "quota" in m.stderr().lower()), m.stderr()

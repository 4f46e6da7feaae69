"""-o ro: a read-only mount refuses every write with EROFS (nothing reaches
the server), sets no \\Seen, and asks imapfs nothing when a file is opened
or closed (the kernel is told once that opens need no answer), so a warm
grep -r costs no call into imapfs per file. test_read.py reads the same
bytes through one."""

import errno
import os
import re
import subprocess

import pytest

from conftest import walk_tree

OPCODE = re.compile(r"opcode: (OPEN|RELEASE|FLUSH)\b")


def all_flags(w):
	"""{mailbox: {uid: flags}} for every mailbox with messages."""
	return {mb: w.all_flags(mb)
		for mb in {mb for mb, _ in w.expected_files().values()}}


def file_opcodes(log):
	"""Counts of OPEN, RELEASE and FLUSH requests in a libfuse debug log."""
	counts = {"OPEN": 0, "RELEASE": 0, "FLUSH": 0}
	for m in OPCODE.finditer(log):
		counts[m.group(1)] += 1
	return counts


@pytest.fixture
def w(seeded, witness):
	return witness(seeded["user"])


def test_writes_fail_with_erofs_and_change_nothing(seeded, mounter, w):
	ro = mounter.mount(seeded["user"], opts=("ro",))
	before = all_flags(w)
	dirs, files = walk_tree(ro.path)
	some = os.path.join(ro.path, sorted(files)[0])
	attempts = [
		lambda: open(os.path.join(ro.path, "INBOX", "new.eml"), "wb"),
		lambda: open(some, "ab"),
		lambda: os.unlink(some),
		lambda: os.rename(some, os.path.join(ro.path, "INBOX", "x")),
		lambda: os.mkdir(os.path.join(ro.path, "NewBox")),
		lambda: os.rmdir(os.path.join(ro.path, sorted(dirs)[0])),
		lambda: os.setxattr(some, "user.imap.flags", b"\\Flagged"),
	]
	for i, attempt in enumerate(attempts):
		with pytest.raises(OSError) as e:
			attempt()
		assert e.value.errno == errno.EROFS, (i, e.value)
	assert all_flags(w) == before
	assert os.path.isfile(some)


def test_reads_set_no_seen(seeded, mounter, w, tmp_path):
	before = all_flags(w)
	m = mounter.mount(seeded["user"], opts=("ro",))
	subprocess.run(["rsync", "-a", m.path + "/", str(tmp_path / "c")],
		       check=True, timeout=300)
	subprocess.run(["grep", "-rq", "no such text anywhere", m.path],
		       timeout=120)
	assert not mounter.unmount(m)
	assert all_flags(w) == before


def read_all(top):
	_, files = walk_tree(top)
	for rel in sorted(files):
		with open(os.path.join(top, rel), "rb") as f:
			f.read()
	return len(files)


def test_opening_files_asks_imapfs_nothing(seeded, mounter):
	"""The same reads on a read-write mount send one OPEN and one RELEASE
	per file; on a read-only one, at most the first OPEN (answered
	ENOSYS) and one FLUSH."""
	m = mounter.mount(seeded["user"], debug=True)
	n = read_all(m.path)
	assert not mounter.unmount(m)
	rw = file_opcodes(m.stderr())
	assert rw["OPEN"] >= n and rw["RELEASE"] >= n, rw

	m = mounter.mount(seeded["user"], opts=("ro",), debug=True)
	assert read_all(m.path) == n
	read_all(m.path)
	assert not mounter.unmount(m)
	got = file_opcodes(m.stderr())
	assert got["OPEN"] <= 1 and got["RELEASE"] == 0 and \
		got["FLUSH"] <= 1, got


def test_rw_after_ro_mounts_read_write(account, mounter, witness):
	"""The last of -o ro and -o rw wins, as for mount(8)."""
	m = mounter.mount(account["user"], opts=("ro", "rw"), debug=True)
	n = read_all(m.path)
	os.mkdir(os.path.join(m.path, "Made"))
	assert not mounter.unmount(m)
	assert "Made" in {name for _, _, name in witness(account["user"]).list()}
	assert file_opcodes(m.stderr())["OPEN"] >= n > 0

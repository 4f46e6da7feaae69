"""Extended attributes: user.imap.flags listed, the rest readable only
by name, unknown names ENODATA."""

import datetime
import errno
import os
import subprocess

import pytest


@pytest.fixture(scope="module")
def mnt(seeded, module_mounter):
	return module_mounter.mount(seeded["user"], max_conns=2)


@pytest.fixture
def w(seeded, witness):
	return witness(seeded["user"])


def _files(w):
	return [(rel, mbox, rec) for rel, (mbox, rec)
		in w.expected_files().items() if mbox == "INBOX"]


def _xattr(path, name):
	return os.getxattr(path, name).decode("utf-8")


def test_flags_xattr_equals_server_flags(mnt, w):
	for rel, mbox, rec in _files(w):
		v = _xattr(os.path.join(mnt.path, rel), "user.imap.flags")
		assert set(v.split()) - {"\\Recent"} == rec["flags"], rel


def test_flags_xattr_with_getfattr(mnt, w):
	rel, mbox, rec = next(r for r in _files(w)
			      if {"\\Seen", "\\Flagged"} <= r[2]["flags"])
	p = subprocess.run(["getfattr", "--only-values", "-n",
			    "user.imap.flags", os.path.join(mnt.path, rel)],
			   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
			   timeout=30)
	assert p.returncode == 0, p.stderr
	assert {"\\Seen", "\\Flagged"} <= set(p.stdout.decode().split())


def test_listxattr_lists_only_flags(mnt, w):
	for rel, mbox, rec in _files(w)[:5]:
		assert os.listxattr(os.path.join(mnt.path, rel)) == \
			["user.imap.flags"]


def test_getfattr_dump_shows_flags_only(mnt, w):
	rel = _files(w)[0][0]
	p = subprocess.run(["getfattr", "-d", os.path.join(mnt.path, rel)],
			   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
			   timeout=30)
	assert p.returncode == 0, p.stderr
	names = [l.split("=")[0] for l in p.stdout.decode().splitlines()
		 if "=" in l]
	assert names == ["user.imap.flags"]


def test_uid_and_uidvalidity_xattrs(mnt, w):
	uidvalidity = w.uidvalidity("INBOX")
	for rel, mbox, rec in _files(w):
		p = os.path.join(mnt.path, rel)
		assert _xattr(p, "user.imap.uid").strip() == str(rec["uid"])
		assert _xattr(p, "user.imap.uidvalidity").strip() == \
			str(uidvalidity)


def _parse_date(s):
	s = s.strip()
	for fmt in ("%d-%b-%Y %H:%M:%S %z", "%Y-%m-%dT%H:%M:%S%z",
		    "%Y-%m-%d %H:%M:%S %z", "%a, %d %b %Y %H:%M:%S %z"):
		try:
			return int(datetime.datetime.strptime(s, fmt)
				   .timestamp())
		except ValueError:
			pass
	if s.endswith("Z"):
		return _parse_date(s[:-1] + "+0000")
	raise AssertionError("unparsable internaldate xattr %r" % s)


def test_internaldate_xattr(mnt, w):
	for rel, mbox, rec in _files(w):
		v = _xattr(os.path.join(mnt.path, rel),
			   "user.imap.internaldate")
		assert _parse_date(v) == rec["mtime"], (rel, v)


def test_subject_from_message_id_xattrs(mnt, w):
	for rel, mbox, rec in _files(w):
		p = os.path.join(mnt.path, rel)
		if rec["subject"]:
			assert _xattr(p, "user.imap.subject") == \
				rec["subject"], rel
		addr = rec["from"].split("<")[1].rstrip(">")
		assert addr in _xattr(p, "user.imap.from"), rel
		mid = rec["message_id"].strip().strip("<>")
		assert mid in _xattr(p, "user.imap.message-id"), rel


def test_unknown_xattr_is_enodata(mnt, w):
	p = os.path.join(mnt.path, _files(w)[0][0])
	for name in ("user.imap.nope", "user.other", "user.imap.flags2"):
		with pytest.raises(OSError) as e:
			os.getxattr(p, name)
		assert e.value.errno == errno.ENODATA, name


def test_create_only_setxattr_of_flags_is_eexist(mnt, w):
	"""Every message has its flags (if only an empty set): XATTR_CREATE
	fails with EEXIST and changes nothing; XATTR_REPLACE works."""
	rel, mbox, rec = _files(w)[0]
	path = os.path.join(mnt.path, rel)
	before = _xattr(path, "user.imap.flags")
	with pytest.raises(OSError) as e:
		os.setxattr(path, "user.imap.flags", b"\\Answered",
			    os.XATTR_CREATE)
	assert e.value.errno == errno.EEXIST
	assert _xattr(path, "user.imap.flags") == before
	os.setxattr(path, "user.imap.flags", before.encode(),
		    os.XATTR_REPLACE)


# Header shapes of real and broken mail: raw header lines, then the file
# name's subject part, user.imap.subject and user.imap.from they give.
UNUSUAL_HEADERS = [
	# a header block over 64 KiB (a huge Message-ID): still named
	(b"Message-ID: <" + b"x" * (80 << 10) + b"@huge>\r\n"
	 b"From: Ann <ann@x.org>\r\nSubject: Visible after a huge field\r\n",
	 "Visible_after_a_huge_field", "Visible after a huge field",
	 "Ann <ann@x.org>"),
	# encoded words over a fold; a quoted name with a comma
	(b"From: \"Doe, John\" <j@x.org>\r\n"
	 b"Subject: =?utf-8?q?Caf=C3=A9?=\r\n =?utf-8?q?_cr=C3=A8me?=\r\n",
	 "Caf\u00e9_cr\u00e8me", "Caf\u00e9 cr\u00e8me", "Doe, John <j@x.org>"),
	# a long Subject and a name split into B words that each end in
	# padding (Thunderbird's way): all of them, not only the first
	(b"From: =?UTF-8?B?U3NzxZsgTGHFgmFsYQ==?= =?UTF-8?B?bGFsYQ==?= "
	 b"<s@x.org>\r\n"
	 b"Subject: =?UTF-8?B?5pel5pys6Kqe44Gu?=\r\n"
	 b" =?UTF-8?B?44OG44K544OI5Lu25ZCNIGE=?=\r\n =?UTF-8?B?Yg==?=\r\n",
	 "\u65e5\u672c\u8a9e\u306e\u30c6\u30b9\u30c8\u4ef6\u540d_ab",
	 "\u65e5\u672c\u8a9e\u306e\u30c6\u30b9\u30c8\u4ef6\u540d ab",
	 "Sss\u015b La\u0142alalala <s@x.org>"),
	# a group; a field named in lower case, and a second one ignored
	(b"From: team: a@b.org, c@d.org;\r\nsubject: first one\r\n"
	 b"Subject: second one\r\n",
	 "first_one", "first one", "a@b.org"),
]


def test_unusual_headers_name_and_xattrs(server, new_user, mounter,
					 tmp_path):
	import imapfs_testserver as ts
	user = new_user("hdr")
	c = ts.connect(server, user)
	try:
		for raw, _, _, _ in UNUSUAL_HEADERS:
			typ, data = c.append("INBOX", None, None,
					     raw + b"\r\nbody\r\n")
			assert typ == "OK", data
	finally:
		c.logout()
	m = mounter.mount(user, cache_dir=str(tmp_path / "cache"))
	inbox = os.path.join(m.path, "INBOX")
	names = sorted(os.listdir(inbox))
	assert len(names) == len(UNUSUAL_HEADERS), names
	for name, (_, stem, subject, sender) in zip(names, UNUSUAL_HEADERS):
		p = os.path.join(inbox, name)
		assert name[10:] == "-%s.eml" % stem, name
		assert _xattr(p, "user.imap.subject") == subject, name
		assert _xattr(p, "user.imap.from") == sender, name

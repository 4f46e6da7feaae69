"""Writing flags: setfattr/removexattr user.imap.flags is UID STORE FLAGS,
checked against what a second IMAP client (the witness) sees."""

import errno
import os

import pytest

from writehelpers import errno_of, fresh, log_mark, new_log, run, \
	wait_until, Writer


@pytest.fixture
def m(account, mounter):
	return mounter.mount(account["user"], max_conns=2)


def _inbox(imap, i=0):
	"""(record, path relative to the mount) of INBOX's message I."""
	rec = fresh(imap, "INBOX")[i]
	return rec, "INBOX/" + rec["name"]


def _pick(imap, pred):
	for rec in fresh(imap, "INBOX"):
		if pred(rec["flags"]):
			return rec, "INBOX/" + rec["name"]
	pytest.fail("no INBOX message with the wanted flags")


def test_setfattr_sets_exactly_that_set(m, imap):
	# A message that has a flag not in the new set: it must go.
	rec, rel = _pick(imap, lambda f: "\\Seen" in f or "$Junk" in f or
			 "\\Flagged" in f)
	p = run(["setfattr", "-n", "user.imap.flags", "-v",
		 "\\Seen \\Flagged $Work", os.path.join(m.path, rel)])
	assert p.returncode == 0, p.stderr
	assert imap.flags("INBOX", rec["uid"]) == {"\\Seen", "\\Flagged",
						   "$Work"}


def test_setfattr_replaces_not_adds(m, imap):
	rec, rel = _pick(imap, lambda f: "\\Flagged" in f)
	path = os.path.join(m.path, rel)
	os.setxattr(path, "user.imap.flags", b"$Only")
	assert imap.flags("INBOX", rec["uid"]) == {"$Only"}


def test_setfattr_leaves_other_messages_alone(m, imap, account):
	before = {r["uid"]: r["flags"] for r in fresh(imap, "INBOX")}
	rec, rel = _inbox(imap, 2)
	os.setxattr(os.path.join(m.path, rel), "user.imap.flags",
		    b"\\Answered")
	after = {r["uid"]: r["flags"] for r in fresh(imap, "INBOX")}
	assert after.pop(rec["uid"]) == {"\\Answered"}
	before.pop(rec["uid"])
	assert after == before


def test_getfattr_reads_back_what_was_set(m, imap):
	rec, rel = _inbox(imap, 1)
	path = os.path.join(m.path, rel)
	os.setxattr(path, "user.imap.flags", b"\\Draft $Work \\Seen")
	p = run(["getfattr", "--only-values", "-n", "user.imap.flags", path])
	assert p.returncode == 0, p.stderr
	assert set(p.stdout.decode().split()) == {"\\Draft", "$Work", "\\Seen"}


def test_getfattr_dump_lists_flags_after_set(m, imap):
	rec, rel = _inbox(imap, 3)
	path = os.path.join(m.path, rel)
	os.setxattr(path, "user.imap.flags", b"\\Flagged $Work")
	p = run(["getfattr", "-d", path])
	assert p.returncode == 0, p.stderr
	lines = [l for l in p.stdout.decode().splitlines() if "=" in l]
	assert len(lines) == 1 and lines[0].startswith("user.imap.flags="), \
		p.stdout
	# getfattr's text form doubles backslashes.
	value = lines[0].split("=", 1)[1].strip('"').replace("\\\\", "\\")
	assert set(value.split()) == {"\\Flagged", "$Work"}


@pytest.mark.parametrize("value", ["a(b", '"x"', "a)b", "x{3}", "a]b",
				   "fo%o", "a*b", "\\", "\\Seen\\Flagged",
				   "\x01ctl"],
			 ids=["paren", "quoted", "rparen", "literal",
			      "bracket", "percent", "star", "backslash",
			      "glued", "control"])
def test_invalid_flag_value_is_einval(m, imap, value):
	rec, rel = _inbox(imap, 0)
	before = imap.flags("INBOX", rec["uid"])
	mark = log_mark(m)
	e = errno_of(os.setxattr, os.path.join(m.path, rel),
		     "user.imap.flags", value.encode())
	assert e == errno.EINVAL, os.strerror(e) if e else "success"
	assert fresh(imap, "INBOX")[0]["flags"] == before
	assert new_log(m, mark).strip(), "no log line says why"


def test_line_break_in_value_is_no_second_command(m, imap):
	"""A CR LF inside the value either is refused or separates atoms;
	it never ends the STORE command early."""
	rec, rel = _inbox(imap, 0)
	n = len(fresh(imap, "INBOX"))
	e = errno_of(os.setxattr, os.path.join(m.path, rel),
		     "user.imap.flags", b"$A\r\nA1 EXPUNGE\r\nA2 DELETE INBOX")
	flags = imap.flags("INBOX", rec["uid"])
	if e:
		assert e == errno.EINVAL, os.strerror(e)
	else:
		assert flags == {"$A", "A1", "EXPUNGE", "A2", "DELETE",
				 "INBOX"}
	assert len(fresh(imap, "INBOX")) == n


@pytest.mark.parametrize("value", ["\\Seen\n\\Flagged", "\\Seen\t$X"])
def test_other_whitespace_separates_or_is_refused(m, imap, value):
	rec, rel = _inbox(imap, 0)
	e = errno_of(os.setxattr, os.path.join(m.path, rel),
		     "user.imap.flags", value.encode())
	if e:
		assert e == errno.EINVAL, os.strerror(e)
	else:
		assert imap.flags("INBOX", rec["uid"]) == set(value.split())


@pytest.mark.parametrize("value", ["\\Recent", "\\*", "\\Unknown",
				   "\\Seen \\Recent"])
def test_unsettable_flag_is_einval(m, imap, value):
	rec, rel = _inbox(imap, 0)
	before = imap.flags("INBOX", rec["uid"])
	mark = log_mark(m)
	e = errno_of(os.setxattr, os.path.join(m.path, rel),
		     "user.imap.flags", value.encode())
	assert e == errno.EINVAL, os.strerror(e) if e else "success"
	assert fresh(imap, "INBOX")[0]["flags"] == before
	assert new_log(m, mark).strip(), "no log line says why"


def test_removexattr_clears_all_flags(m, imap):
	rec, rel = _pick(imap, lambda f: len(f) >= 1)
	path = os.path.join(m.path, rel)
	p = run(["setfattr", "-x", "user.imap.flags", path])
	assert p.returncode == 0, p.stderr
	assert imap.flags("INBOX", rec["uid"]) == set()
	assert os.getxattr(path, "user.imap.flags").strip() == b""


def test_setfattr_empty_value_clears_flags(m, imap):
	rec, rel = _pick(imap, lambda f: len(f) >= 1)
	os.setxattr(os.path.join(m.path, rel), "user.imap.flags", b"")
	assert imap.flags("INBOX", rec["uid"]) == set()


@pytest.mark.parametrize("name", ["user.imap.uid", "user.imap.subject",
				  "user.imap.internaldate",
				  "user.imap.nosuch"])
def test_other_imap_xattr_is_eperm(m, imap, name):
	rec, rel = _inbox(imap, 0)
	before = imap.flags("INBOX", rec["uid"])
	e = errno_of(os.setxattr, os.path.join(m.path, rel), name, b"1")
	assert e == errno.EPERM, os.strerror(e) if e else "success"
	assert fresh(imap, "INBOX")[0]["flags"] == before


def test_removexattr_other_imap_xattr_is_eperm(m, imap):
	rec, rel = _inbox(imap, 0)
	e = errno_of(os.removexattr, os.path.join(m.path, rel),
		     "user.imap.uid")
	assert e == errno.EPERM, os.strerror(e) if e else "success"


@pytest.mark.parametrize("name", ["user.comment", "user.imapflags",
				  "user.IMAP.flags"])
def test_non_imap_xattr_is_enotsup(m, imap, name):
	rec, rel = _inbox(imap, 0)
	e = errno_of(os.setxattr, os.path.join(m.path, rel), name, b"x")
	assert e == errno.ENOTSUP, os.strerror(e) if e else "success"


def test_setfattr_on_mailbox_dir_is_refused(m, imap):
	e = errno_of(os.setxattr, os.path.join(m.path, "INBOX"),
		     "user.imap.flags", b"\\Seen")
	assert e in (errno.EPERM, errno.ENOTSUP, errno.EISDIR), \
		os.strerror(e) if e else "success"


def test_keyword_refused_by_server_is_enotsup(m, imap):
	"""Dovecot (maildir) always offers \\* in PERMANENTFLAGS, so the
	"no \\*" case cannot be provoked; but it refuses a keyword longer
	than mail_max_keyword_length (50) with NO [CANNOT].  That is a
	keyword the server will not keep: ENOTSUP (or EINVAL), flags
	unchanged."""
	rec, rel = _inbox(imap, 0)
	before = imap.flags("INBOX", rec["uid"])
	mark = log_mark(m)
	e = errno_of(os.setxattr, os.path.join(m.path, rel),
		     "user.imap.flags", b"\\Seen $" + b"k" * 80)
	# EINVAL would do too (the keyword is too long for this server);
	# EIO says the server failed, which it did not.
	assert e in (errno.ENOTSUP, errno.EINVAL), \
		"%s; imapfs: %s" % (os.strerror(e) if e else "success",
				    new_log(m, mark))
	assert imap.flags("INBOX", rec["uid"]) == before
	assert new_log(m, mark).strip(), "no log line says why"


def test_flags_survive_remount(account, mounter, imap):
	"""What setfattr wrote is what a later mount reads (server state,
	not only imapfs's memory)."""
	m1 = mounter.mount(account["user"], max_conns=1)
	rec, rel = _inbox(imap, 4)
	os.setxattr(os.path.join(m1.path, rel), "user.imap.flags",
		    b"$Label1 \\Answered")
	assert mounter.unmount(m1) == []
	m2 = mounter.mount(account["user"], max_conns=1)
	v = os.getxattr(os.path.join(m2.path, rel), "user.imap.flags")
	assert set(v.decode().split()) - {"\\Recent"} == {"$Label1",
							    "\\Answered"}


@pytest.mark.parametrize("opts", [(), ("noidle",)],
			 ids=["idle", "noidle"])
def test_setfattr_of_a_message_another_client_expunged_is_enoent(
		server, account, mounter, imap, opts):
	"""Another client expunges a message imapfs lists: setfattr of its
	flags says ENOENT instead of 0 (the server says nothing of a UID
	it no longer has), and the name goes from the listing."""
	m = mounter.mount(account["user"], opts=opts)
	rec, rel = _pick(imap, lambda f: "\\Flagged" not in f)
	path = os.path.join(m.path, rel)
	assert os.getxattr(path, "user.imap.flags") is not None
	w = Writer(server, account["user"])
	try:
		w.expunge("INBOX", rec["uid"])
	finally:
		w.close()
	e = errno_of(os.setxattr, path, "user.imap.flags", b"\\Flagged")
	assert e == errno.ENOENT, os.strerror(e) if e else "success"
	assert wait_until(lambda: rec["name"] not in
			  os.listdir(os.path.dirname(path)))

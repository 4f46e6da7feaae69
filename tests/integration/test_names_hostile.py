"""Hostile names: mkdir, rename, cp and mv with quotes, backslashes,
wildcards, '%', non-ASCII, CR/LF and edge spaces either act on exactly the
named mailbox or fail with EINVAL; nothing in a name ever reaches the
server as a second command."""

import errno
import os
import re

import pytest

import imapfs_samplemail as sm
from writehelpers import body, errno_of, fresh, names, run, sha, Writer


@pytest.fixture
def m(account, mounter):
	return mounter.mount(account["user"], max_conns=2)


def _err(e):
	return os.strerror(e) if e else "success"


# (directory name typed, mailbox name it must make, or None: EINVAL only)
MKDIR_NAMES = [
	('say "hi"', 'say "hi"'),
	("back\\slash", "back\\slash"),
	("star*", "star*"),
	("wild%card", None),		# bad %XX escape
	("%", None),
	("%zz", None),
	("100%25", "100%"),
	("a%2Fb", "a/b"),
	("Grüße 日本", "Grüße 日本"),
	("&", "&"),
	("&AMQ-", "&AMQ-"),
	("cr\rx", None),		# shown as %0D: typed raw is no name
	("lf\nx", None),
	("x\r\nA1 CREATE injected1", None),
	("x\r\nA1 DELETE INBOX", None),
	('x" "injected2', 'x" "injected2'),
	("x{5}", "x{5}"),
	("x {7}\r\nCREATE injected3", None),
	(" lead", " lead"),
	("trail ", "trail "),
	("(paren) [br]", "(paren) [br]"),
	("~user", "~user"),
	("NIL", "NIL"),
	("tab\tx", None),
	("a.b", None),			# the server's delimiter
]

INJECTED = {"injected1", "injected2", "injected3", "injected",
	    "A1", "x"}


def _ids(names):
	return ["n%02d" % i for i in range(len(names))]


def _check_no_injection(imap, before, allowed=()):
	after = names(imap)
	extra = after - before - set(allowed)
	assert not extra, "unexpected mailboxes %r" % extra
	assert "INBOX" in after
	assert not (after & INJECTED) - set(allowed)
	assert len(fresh(imap, "INBOX")) == 6


@pytest.mark.parametrize("typed,mbox", MKDIR_NAMES, ids=_ids(MKDIR_NAMES))
def test_mkdir_hostile(m, imap, typed, mbox):
	before = names(imap)
	e = errno_of(os.mkdir, os.path.join(m.path, typed))
	if e == 0:
		assert mbox is not None, "mkdir %r succeeded" % typed
		assert names(imap) - before == {mbox}
		assert typed in os.listdir(m.path)
		assert fresh(imap, mbox) == []
	else:
		assert e == errno.EINVAL, "mkdir %r: %s" % (typed, _err(e))
		assert names(imap) == before
	_check_no_injection(imap, before, [mbox] if e == 0 and mbox else [])


@pytest.mark.parametrize("typed,mbox", MKDIR_NAMES, ids=_ids(MKDIR_NAMES))
def test_rename_dir_to_hostile(m, imap, typed, mbox):
	before = names(imap)
	e = errno_of(os.rename, os.path.join(m.path, "Other"),
		     os.path.join(m.path, typed))
	if e == 0:
		assert mbox is not None, "rename to %r succeeded" % typed
		after = names(imap)
		assert after - before == {mbox}
		assert before - after == {"Other"}
		assert len(fresh(imap, mbox)) == 3
	else:
		assert e == errno.EINVAL, "rename to %r: %s" % (typed, _err(e))
		assert names(imap) == before
		assert len(fresh(imap, "Other")) == 3
	_check_no_injection(imap, before - {"Other"} | {"Other"},
			    [mbox] if e == 0 and mbox else [])


FILE_NAMES = ['q"uote.eml', "back\\slash.eml", "st*r.eml", "100%.eml",
	      "%zz.eml", "Grüße.eml", "cr\r.eml", "lf\nA1 DELETE INBOX.eml",
	      " lead.eml", "trail.eml ", "{3}.eml", "0000000001-x.eml"]


@pytest.mark.parametrize("typed", FILE_NAMES, ids=_ids(FILE_NAMES))
def test_cp_to_hostile_file_name(m, imap, tmp_path, typed):
	before = names(imap)
	s = sm.make_messages(4, 1)[0]
	src = tmp_path / "src.eml"
	src.write_bytes(s.raw)
	p = run(["cp", str(src), os.path.join(m.path, "Empty", typed)])
	recs = fresh(imap, "Empty")
	if p.returncode == 0:
		assert len(recs) == 1
		assert body(imap, "Empty", recs[0]["uid"]) == s.raw
		assert os.listdir(os.path.join(m.path, "Empty")) == \
			[recs[0]["name"]]
	else:
		assert recs == []
		assert b"Invalid argument" in p.stderr, p.stderr
	_check_no_injection(imap, before)


# Mailboxes made by another client, with names imapfs must quote.
HOSTILE_MAILBOXES = ['we"ird', "back\\slash", "star*", "pct%", "Ünï",
		     "br{3}", " sp ", "&amp"]


@pytest.mark.parametrize("mbox", HOSTILE_MAILBOXES,
			 ids=_ids(HOSTILE_MAILBOXES))
def test_mv_into_hostile_mailbox(account, server, mounter, imap, mbox):
	w = Writer(server, account["user"])
	try:
		w.create(mbox)
	finally:
		w.close()
	before = names(imap)
	assert mbox in before
	mt = mounter.mount(account["user"], max_conns=2)
	d = sm.mailbox_component_name(mbox)
	assert d in os.listdir(mt.path)
	rec = fresh(imap, "INBOX")[0]
	raw = body(imap, "INBOX", rec["uid"])
	os.rename(os.path.join(mt.path, "INBOX", rec["name"]),
		  os.path.join(mt.path, d, rec["name"]))
	got = fresh(imap, mbox)
	assert len(got) == 1
	assert sha(body(imap, mbox, got[0]["uid"])) == sha(raw)
	assert len(fresh(imap, "INBOX")) == 5
	assert names(imap) == before
	assert os.listdir(os.path.join(mt.path, d)) == [got[0]["name"]]


@pytest.mark.parametrize("mbox", HOSTILE_MAILBOXES,
			 ids=_ids(HOSTILE_MAILBOXES))
def test_rmdir_hostile_mailbox(account, server, mounter, imap, mbox):
	w = Writer(server, account["user"])
	try:
		w.create(mbox)
	finally:
		w.close()
	before = names(imap)
	mt = mounter.mount(account["user"], max_conns=2)
	os.rmdir(os.path.join(mt.path, sm.mailbox_component_name(mbox)))
	assert before - names(imap) == {mbox}
	assert names(imap) - before == set()


def test_refused_names_send_no_command(account, mounter, imap):
	"""Names with CR, LF or TAB are refused before anything is sent:
	imapfs's wire trace (-d) shows no CREATE or RENAME for them."""
	mt = mounter.mount(account["user"], max_conns=1, debug=True)
	os.listdir(mt.path)
	mark = len(mt.stderr())
	bad = [t for t, mb in MKDIR_NAMES if mb is None and
	       any(c in t for c in "\r\n\t")]
	assert len(bad) >= 5
	for typed in bad:
		assert errno_of(os.mkdir, os.path.join(mt.path, typed)) == \
			errno.EINVAL
		assert errno_of(os.rename, os.path.join(mt.path, "Empty"),
				os.path.join(mt.path, typed)) == errno.EINVAL
	cmds = re.findall(r"\] C: \S+ (.*)", mt.stderr()[mark:])
	assert not [c for c in cmds if re.match(r"(CREATE|RENAME|DELETE)",
						c)], cmds
	assert names(imap) >= {"INBOX", "Empty", "Other"}

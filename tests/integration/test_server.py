"""The test server and witness themselves (no imapfs needed): if these
fail, the imapfs tests below them cannot be trusted."""

import socket
import ssl

import pytest

from conftest import SEED_TREE, Witness, seed_account, sm, ts


def test_imaps_port_verifies_with_generated_ca(server):
	ctx = ssl.create_default_context(cafile=server["cafile"])
	with socket.create_connection((server["host"],
				       server["imaps_port"])) as s:
		with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
			assert t.recv(100).startswith(b"* OK")


def test_imaps_port_rejected_by_system_trust_store(server):
	ctx = ssl.create_default_context()
	with socket.create_connection((server["host"],
				       server["imaps_port"])) as s:
		with pytest.raises(ssl.SSLCertVerificationError):
			ctx.wrap_socket(s, server_hostname="127.0.0.1")


def test_starttls_port_logs_in(server, new_user):
	c = ts.connect(server, new_user(), tls="starttls")
	assert c.list()[0] == "OK"
	c.logout()


def test_wrong_password_is_refused(server, new_user):
	import imaplib
	c = imaplib.IMAP4_SSL(server["host"], server["imaps_port"],
			      ssl_context=ts.ssl_context(server["cafile"]))
	with pytest.raises(imaplib.IMAP4.error):
		c.login(new_user(), "not-the-password")
	c.shutdown()


def test_seed_tree_has_the_hard_cases(server, new_user, witness):
	user = new_user("seed")
	seed_account(server, user)
	listed = {name: flags for flags, delim, name in witness(user).list()}
	for mbox in SEED_TREE:
		assert mbox in listed
	# Parents that exist only as \Noselect.
	for parent in ("Archive", "x", "x.y"):
		assert "\\Noselect" in listed[parent]
	for special, use in (("Trash", "\\Trash"), ("Sent", "\\Sent"),
			     ("Drafts", "\\Drafts"), ("Junk", "\\Junk")):
		assert use in listed[special]
	w = witness(user)
	dirs = w.expected_dirs()
	assert "a%2Fb" in dirs and "100%25 done" in dirs
	assert "Entwürfe" in dirs and "日本語" in dirs
	assert len(w.messages("INBOX")) == SEED_TREE["INBOX"]


def test_seeded_flags_and_dates_round_trip(server, new_user, witness):
	user = new_user("flags")
	samples = seed_account(server, user, {"INBOX": 8})["INBOX"]
	recs = witness(user).messages("INBOX")
	assert [r["flags"] for r in recs] == [set(s.flags) for s in samples]
	assert [r["mtime"] for r in recs] == \
		[int(s.date.timestamp()) for s in samples]
	assert [r["subject"] for r in recs] == [s.subject for s in samples]


def test_body_peek_returns_appended_bytes(server, new_user, witness):
	user = new_user("bytes")
	samples = seed_account(server, user, {"INBOX": 6})["INBOX"]
	w = witness(user)
	for rec, s in zip(w.messages("INBOX"), samples):
		assert w.body("INBOX", rec["uid"]) == s.raw
		assert rec["size"] == len(s.raw)
	# PEEK left \Seen alone.
	assert [r["flags"] for r in w.messages("INBOX")] == \
		[set(s.flags) for s in samples]


def test_server_without_move(server_factory):
	info = server_factory(drop_caps=["MOVE", "UIDPLUS"])
	c = ts.connect(info, "capcheck")
	caps = set(c.capabilities)
	c.logout()
	assert "MOVE" not in caps and "UIDPLUS" not in caps
	assert "IMAP4REV1" in caps and "IDLE" in caps


def test_message_file_names_follow_the_rules():
	n = sm.message_file_name
	assert n(7, None) == "0000000007.eml"
	assert n(7, "") == "0000000007.eml"
	assert n(7, "?!? ::: ///") == "0000000007-!.eml"
	assert n(12, 'Re: a/b "x"') == "0000000012-Re_a_b_x.eml"
	assert n(1, "...dots_") == "0000000001-dots.eml"
	long = n(1, "x" * 59 + " yz")
	assert long == "0000000001-" + "x" * 59 + ".eml"
	assert sm.mailbox_component_name("100%") == "100%25"
	assert sm.mailbox_component_name("a/b") == "a%2Fb"
	assert sm.mailbox_component_name(".") == "%2E"
	assert sm.mailbox_component_name("0000000001.eml") == \
		"%30" + "000000001.eml"


def test_doveadm_kick_ends_a_session(server, new_user):
	import imaplib
	user = new_user("kick")
	c = ts.connect(server, user)
	c.select("INBOX")
	p = ts.doveadm(server, "kick", user)
	assert user in p.stdout.decode() or p.returncode == 0
	with pytest.raises((imaplib.IMAP4.abort, OSError)):
		for _ in range(50):
			c.noop()

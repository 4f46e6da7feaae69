"""NOTIFY: where the server offers it, the IDLE watcher also hears of every
other mailbox, so what another client changes outside INBOX shows at once
instead of after -o list_ttl (30 s by default): new messages, expunges,
flag changes, and mailboxes made or deleted. A server without NOTIFY gets
the INBOX watch alone."""

import os
import re

import pytest

import conftest
import imapfs_samplemail as sm
from writehelpers import fresh, wait_until, Writer

NOTIFYING = re.compile(r"\[conn 0\] C: \S+ NOTIFY SET ")
IDLING = re.compile(r"\[conn 0\] C: \S+ IDLE")


@pytest.fixture
def account2(server, new_user):
	user = new_user("notify")
	conftest.seed_account(server, user, {"INBOX": 2, "Other": 3}, seed=61)
	return user


def names(m, mbox="Other"):
	return sorted(os.listdir(os.path.join(m.path, mbox)))


def flags(m, name, mbox="Other"):
	return set(os.getxattr(os.path.join(m.path, mbox, name),
			       "user.imap.flags").decode().split())


def watching(m):
	assert wait_until(lambda: NOTIFYING.search(m.stderr()) and
			  IDLING.search(m.stderr()), timeout=10), \
		"imapfs never sent NOTIFY and IDLE:\n" + m.stderr()[-2000:]


def write(server, user, fn):
	writer = Writer(server, user)
	try:
		fn(writer)
	finally:
		writer.close()


def test_new_messages_elsewhere_show_at_once(server, account2, mounter,
					     witness):
	m = mounter.mount(account2, debug=True)
	before = names(m)	# listed now, and trusted for list_ttl
	assert len(before) == 3
	watching(m)
	sample = sm.make_messages(62, 1)[0]
	write(server, account2, lambda w: w.append("Other", sample))
	want = sorted(r["name"] for r in fresh(witness(account2), "Other"))
	assert len(want) == 4
	assert wait_until(lambda: names(m) == want), \
		(names(m), want, m.stderr()[-3000:])
	new = (set(want) - set(before)).pop()
	with open(os.path.join(m.path, "Other", new), "rb") as f:
		assert f.read() == sample.raw


def test_an_expunge_and_a_flag_change_elsewhere_show_at_once(
		server, account2, mounter, witness):
	m = mounter.mount(account2, debug=True)
	recs = fresh(witness(account2), "Other")
	assert names(m) == sorted(r["name"] for r in recs)
	keep, gone = recs[0], recs[1]
	gone_path = os.path.join(m.path, "Other", gone["name"])
	assert "$Watched" not in flags(m, keep["name"])
	os.stat(gone_path)	# the kernel now holds its entry and attributes
	watching(m)

	def change(w):
		w.store("Other", keep["uid"], "+FLAGS", "($Watched)")
		w.store("Other", gone["uid"], "+FLAGS", "(\\Deleted)")
		w.c.uid("EXPUNGE", str(gone["uid"]))

	write(server, account2, change)
	assert wait_until(lambda: not os.path.exists(gone_path)), \
		m.stderr()[-3000:]
	assert gone["name"] not in names(m)
	assert wait_until(lambda: "$Watched" in flags(m, keep["name"]))


def test_mailboxes_made_and_deleted_elsewhere_show_at_once(
		server, account2, mounter):
	m = mounter.mount(account2, debug=True)
	top = os.listdir(m.path)	# listed now, and trusted for list_ttl
	assert "Other" in top and "Fresh" not in top
	watching(m)
	sample = sm.make_messages(63, 1)[0]

	def make(w):
		sm.create(w.c, "Fresh")
		w.append("Fresh", sample)

	write(server, account2, make)
	assert wait_until(lambda: "Fresh" in os.listdir(m.path)), \
		(os.listdir(m.path), m.stderr()[-3000:])
	[name] = os.listdir(os.path.join(m.path, "Fresh"))
	with open(os.path.join(m.path, "Fresh", name), "rb") as f:
		assert f.read() == sample.raw

	write(server, account2,
	      lambda w: w.c.delete(sm.quote_mailbox("Other")))
	assert wait_until(lambda: "Other" not in os.listdir(m.path)), \
		(os.listdir(m.path), m.stderr()[-3000:])
	# The kernel had looked the name up: it is told to forget it.
	assert wait_until(
		lambda: not os.path.exists(os.path.join(m.path, "Other"))), \
		m.stderr()[-3000:]


def test_a_server_without_notify_watches_inbox_alone(server_factory,
						    new_user, tmp_path):
	info = server_factory(drop_caps=["NOTIFY"])
	user = new_user("nonotify")
	conftest.seed_account(info, user, {"INBOX": 2, "Other": 1}, seed=64)
	mt = conftest.Mounter(info, str(tmp_path))
	try:
		m = mt.mount(user, debug=True)
		assert len(names(m, "INBOX")) == 2
		assert wait_until(lambda: IDLING.search(m.stderr()),
				  timeout=10), m.stderr()[-2000:]
		assert not NOTIFYING.search(m.stderr())
		write(info, user, lambda w: w.append(
			"INBOX", sm.make_messages(65, 1)[0]))
		assert wait_until(lambda: len(names(m, "INBOX")) == 3)
	finally:
		problems = mt.cleanup()
	assert not problems, "\n".join(problems)


@pytest.mark.parametrize("mbox", ["Entwürfe", "R&D", "Ma&APw-x"])
def test_changes_in_mailboxes_with_any_name_show_at_once(
		server, new_user, mounter, witness, mbox):
	"""Dovecot names mailboxes in NOTIFY's STATUS lines in UTF-8, not in
	the modified UTF-7 of LIST ("Entw&APw-rfe"): both must find the
	mailbox, also one whose real name reads as UTF-7 ("Ma&APw-x")."""
	user = new_user("notifyname")
	conftest.seed_account(server, user, {"INBOX": 1, mbox: 1}, seed=66)
	m = mounter.mount(user, debug=True)
	name = sm.mailbox_component_name(mbox)
	before = names(m, name)	# listed now, and trusted for list_ttl
	assert len(before) == 1
	watching(m)
	write(server, user,
	      lambda w: w.append(mbox, sm.make_messages(67, 1)[0]))
	want = sorted(r["name"] for r in fresh(witness(user), mbox))
	assert len(want) == 2
	assert wait_until(lambda: names(m, name) == want), \
		(names(m, name), want, m.stderr()[-3000:])
	assert "not modified UTF-7" not in m.stderr()


def test_a_directory_listed_before_a_mailbox_went_does_not_bring_it_back(
		server, account2, mounter):
	"""A directory handle opened before a mailbox was deleted elsewhere
	and read after imapfs had the kernel forget the name: its listing
	(from when it was opened) names the mailbox, but does not make the
	kernel take the name for a live one again."""
	m = mounter.mount(account2, debug=True)
	assert "Other" in os.listdir(m.path)
	watching(m)
	fd = os.open(m.path, os.O_RDONLY | os.O_DIRECTORY)
	try:
		write(server, account2,
		      lambda w: w.c.delete(sm.quote_mailbox("Other")))
		assert wait_until(
			lambda: not os.path.exists(os.path.join(m.path,
								"Other"))), \
			m.stderr()[-3000:]
		os.listdir(fd)		# read from the old handle
	finally:
		os.close(fd)
	assert not os.path.exists(os.path.join(m.path, "Other")), \
		m.stderr()[-3000:]

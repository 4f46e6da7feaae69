"""Look-ahead across mailboxes: once a scan has brought in a mailbox's last
message, the mailbox a tree walk visits next (its first child, else its
next sibling; by name, and in readdir order) is listed and its first
messages fetched before the walker gets there. Empty mailboxes pass the
turn on; a look at one message does not reach past its mailbox. Listing
two mailboxes in walk order lists the next few too. What is fetched
ahead is still byte-exact and never gains \\Seen."""

import os
import re
import subprocess
import time

import pytest

from conftest import Witness, file_sha256, seed_account, sha256
from writehelpers import by_mailbox

# Name order: Alpha, Beta, Carton (empty), Delta, Echo, Echo.kid, INBOX.
TREE = {"Alpha": 40, "Beta": 12, "Carton": 0, "Delta": 10, "Echo": 6,
	"Echo.kid": 5}
KID = "Echo/kid"	# as the tree shows "Echo.kid"

LISTING = re.compile(r"UID FETCH 1:\* \(UID FLAGS RFC822\.SIZE")
BODIES = re.compile(r"UID FETCH (\S+) \(BODY\.PEEK\[\]\)")
NON_PEEK = re.compile(r"C: \S+ UID FETCH \S+ \([^)]*\bBODY\[")


@pytest.fixture(scope="module")
def walk(server):
	"""{"user", "names": {dir: sorted names}, "sha": {dir: {name: sha}},
	"flags": {mailbox: {uid: flags}}}, dir being the mailbox's path in
	the tree."""
	from conftest import _user_counter
	user = "look%d_%d" % (os.getpid(), next(_user_counter))
	seed_account(server, user, TREE, seed=5)
	w = Witness(server, user)
	out = {"user": user, "names": {}, "sha": {}, "flags": {}}
	try:
		for mbox in TREE:
			d = mbox.replace(".", "/")
			recs = w.messages(mbox)
			out["names"][d] = sorted(r["name"] for r in recs)
			out["sha"][d] = {r["name"]: sha256(w.body(mbox, r["uid"]))
					 for r in recs}
			out["flags"][mbox] = {r["uid"]: r["flags"] for r in recs}
	finally:
		w.close()
	return out


def first_uids(cmds):
	"""The UIDs asked for whole in CMDS."""
	uids = set()
	for c in cmds:
		m = BODIES.match(c)
		if not m:
			continue
		for part in m.group(1).split(","):
			first, _, last = part.partition(":")
			uids.update(range(int(first), int(last or first) + 1))
	return uids


def wait_for(m, mailbox, what, timeout=5):
	"""Commands M sent for MAILBOX, once WHAT(commands) holds (or TIMEOUT
	seconds passed)."""
	deadline = time.monotonic() + timeout
	while True:
		cmds = by_mailbox(m.stderr()).get(mailbox, [])
		if what(cmds) or time.monotonic() > deadline:
			return cmds
		time.sleep(0.05)


def read_all(walk, root, d):
	"""Reads every file of D in name order, the way cat * does, and
	checks its bytes."""
	path = os.path.join(root, d)
	assert sorted(n for n in os.listdir(path) if n.endswith(".eml")) \
		== walk["names"][d]
	for n in walk["names"][d]:
		with open(os.path.join(path, n), "rb") as f:
			assert sha256(f.read()) == walk["sha"][d][n], (d, n)


def fetched_ahead(cmds):
	return any(LISTING.search(c) for c in cmds) and 1 in first_uids(cmds)


def test_end_of_a_mailbox_lists_and_fetches_the_next(walk, mounter,
						      witness):
	m = mounter.mount(walk["user"], opts=("noidle",), debug=True)
	os.listdir(m.path)
	read_all(walk, m.path, "Alpha")
	cmds = wait_for(m, "Beta", fetched_ahead)
	assert fetched_ahead(cmds), cmds
	# The walker arrives: its listing and first files are already here.
	read_all(walk, m.path, "Beta")
	log = m.stderr()
	assert not NON_PEEK.search(log), NON_PEEK.search(log).group(0)
	w = witness(walk["user"])
	assert w.all_flags("Beta") == walk["flags"]["Beta"]


def test_an_empty_mailbox_passes_the_turn_on(walk, mounter):
	m = mounter.mount(walk["user"], opts=("noidle",), debug=True)
	os.listdir(m.path)
	read_all(walk, m.path, "Beta")
	cmds = wait_for(m, "Delta", fetched_ahead)
	assert fetched_ahead(cmds), cmds
	assert any(LISTING.search(c)
		   for c in by_mailbox(m.stderr()).get("Carton", [])), \
		"the empty mailbox between them was not listed"
	read_all(walk, m.path, "Delta")


def test_a_child_mailbox_comes_before_the_next_sibling(walk, mounter):
	m = mounter.mount(walk["user"], opts=("noidle",), debug=True)
	os.listdir(m.path)
	read_all(walk, m.path, "Echo")
	cmds = wait_for(m, "Echo.kid", fetched_ahead)
	assert fetched_ahead(cmds), cmds
	read_all(walk, m.path, KID)


def test_a_look_at_one_message_stays_in_its_mailbox(walk, mounter):
	"""Alpha's first message starts a small prefetch (16 of its 40
	messages), which does not reach its end: nothing else is touched."""
	m = mounter.mount(walk["user"], opts=("noidle",), debug=True)
	os.listdir(m.path)
	d = os.path.join(m.path, "Alpha")
	first = sorted(os.listdir(d))[0]
	with open(os.path.join(d, first), "rb") as f:
		assert sha256(f.read()) == walk["sha"]["Alpha"][first]
	time.sleep(0.5)
	touched = set(by_mailbox(m.stderr())) - {"Alpha"}
	assert not touched, touched


def test_a_listing_walk_lists_the_next_mailboxes(walk, mounter):
	"""find, du and rsync's file list read directories one after another:
	two in walk order, and the next ones are listed without waiting."""
	m = mounter.mount(walk["user"], opts=("noidle",), debug=True)
	os.listdir(m.path)
	os.listdir(os.path.join(m.path, "Alpha"))
	os.listdir(os.path.join(m.path, "Beta"))
	for mbox in ("Delta", "Echo"):
		cmds = wait_for(m, mbox,
				lambda c: any(LISTING.search(x) for x in c))
		assert any(LISTING.search(c) for c in cmds), (mbox, cmds)
	for d in ("Delta", "Echo", KID):
		assert sorted(n for n in os.listdir(os.path.join(m.path, d))
			      if n.endswith(".eml")) == walk["names"][d]


def test_listing_one_mailbox_lists_nothing_else(walk, mounter):
	m = mounter.mount(walk["user"], opts=("noidle",), debug=True)
	os.listdir(m.path)
	assert sorted(os.listdir(os.path.join(m.path, "Beta"))) == \
		walk["names"]["Beta"]
	time.sleep(0.5)
	touched = set(by_mailbox(m.stderr())) - {"Beta"}
	assert not touched, touched


def test_rsync_of_the_account_is_byte_exact_and_unseen(walk, mounter,
						       witness, tmp_path):
	m = mounter.mount(walk["user"])
	dst = str(tmp_path / "copy")
	p = subprocess.run(["rsync", "-a", m.path + "/", dst + "/"],
			   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
			   timeout=120)
	assert p.returncode == 0, p.stderr
	for d, names in walk["names"].items():
		got = sorted(n for n in os.listdir(os.path.join(dst, d))
			     if os.path.isfile(os.path.join(dst, d, n)))
		assert got == names, d
		bad = [n for n in names
		       if file_sha256(os.path.join(dst, d, n)) !=
		       walk["sha"][d][n]]
		assert not bad, (d, bad[:5])
	w = witness(walk["user"])
	for mbox in TREE:
		assert w.all_flags(mbox) == walk["flags"][mbox], mbox

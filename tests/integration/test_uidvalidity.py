"""A mailbox made anew on the server (a new UIDVALIDITY) is listed whole,
never mixed with what was cached of the old one: while unmounted and
while mounted."""

import errno
import os
import time

import conftest
import imapfs_samplemail as sm
import imapfs_testserver as ts
from writehelpers import fresh, wait_until


def recreate(server, user, mbox, samples):
	c = ts.connect(server, user)
	try:
		c.delete(sm.quote_mailbox(mbox))
		time.sleep(1.1)  # Dovecot's UIDVALIDITY is a time in seconds
		sm.create(c, mbox)
		for s in samples:
			sm.append(c, mbox, s)
	finally:
		c.logout()


def recreate_and_kick(server, user, mbox, samples):
	"""recreate(), then every session of USER is closed: Dovecot's index of
	a mailbox deleted and made again while other sessions have it
	selected gets corrupted when those go on using it (its log says
	"indexid changed"), and the next EXAMINE fails with SERVERBUG.
	imapfs reconnects."""
	recreate(server, user, mbox, samples)
	ts.doveadm(server, "kick", user)


def names(m, mbox):
	return sorted(os.listdir(os.path.join(m.path, mbox)))


def listing(m, mbox):
	"""names(), or None while the mailbox is gone (recreate() deletes it
	a second before it makes it again)."""
	try:
		return names(m, mbox)
	except FileNotFoundError:
		return None


def test_recreated_while_unmounted_is_listed_whole(account, mounter, server,
						     witness, tmp_path):
	user = account["user"]
	cache = str(tmp_path / "cache")
	m = mounter.mount(user, cache_dir=cache, opts=("list_ttl=1",))
	assert len(names(m, "Other")) == 3
	assert not mounter.unmount(m)

	recreate(server, user, "Other", sm.make_messages(51, 5))
	want = sorted(r["name"] for r in fresh(witness(user), "Other"))
	assert len(want) == 5

	m = mounter.mount(user, cache_dir=cache, opts=("list_ttl=1",))
	assert names(m, "Other") == want
	time.sleep(1.5)
	assert names(m, "Other") == want


def test_new_uidvalidity_while_mounted_is_listed_whole(account, mounter,
							 server, imap):
	"""The server resets UIDVALIDITY under a mounted, listed and read
	mailbox (what a restored or rebuilt server does). Deleting and
	recreating it instead would trip Dovecot's own index while imapfs
	has it selected."""
	user = account["user"]
	m = mounter.mount(user, opts=("list_ttl=1",))
	old = names(m, "Other")
	assert len(old) == 3
	for n in old:
		with open(os.path.join(m.path, "Other", n), "rb") as f:
			f.read()
	before = imap.uidvalidity("Other")
	ts.doveadm(server, "mailbox", "update", "-u", user, "--uid-validity",
		   str(before + 1000), "Other")
	imap.selected = None
	assert imap.uidvalidity("Other") == before + 1000

	want = sorted(r["name"] for r in fresh(imap, "Other"))
	assert len(want) == 3
	time.sleep(1.5)
	for _ in range(3):
		assert names(m, "Other") == want
		time.sleep(1.1)
	assert os.getxattr(os.path.join(m.path, "Other"),
			   "user.imap.uidvalidity").decode() == str(before + 1000)
	for r in fresh(imap, "Other"):
		with open(os.path.join(m.path, "Other", r["name"]), "rb") as f:
			assert conftest.sha256(f.read()) == conftest.sha256(
				imap.body("Other", r["uid"]))
	# Flags of the messages as listed under the new UIDVALIDITY can be
	# set: no connection still holding the old one refuses it.
	first = fresh(imap, "Other")[0]
	os.setxattr(os.path.join(m.path, "Other", first["name"]),
		    "user.imap.flags", b"\\Flagged")
	assert "\\Flagged" in fresh(imap, "Other")[0]["flags"]


def test_made_anew_with_same_names_reads_the_new_bytes(account, mounter,
							 server, imap):
	"""Another client deletes a mailbox imapfs has read and makes it again
	with messages of the same UIDs, names, sizes and dates but other bytes.
	The kernel holds the old files' pages; once a listing has seen the
	change, reads must give the new bytes."""
	user = account["user"]
	m = mounter.mount(user, opts=("list_ttl=1",))
	old = fresh(imap, "Other")
	assert len(old) == 3
	for r in old:
		with open(os.path.join(m.path, "Other", r["name"]), "rb") as f:
			assert f.read() == imap.body("Other", r["uid"])
	raws = [imap.body("Other", r["uid"]) for r in old]
	# Same length, other bytes: the last letters of the body swap case.
	new = [raw[:-8] + raw[-8:].swapcase() for raw in raws]
	assert all(a != b for a, b in zip(raws, new))
	before = imap.uidvalidity("Other")
	imap.selected = None
	c = ts.connect(server, user)
	try:
		c.delete(sm.quote_mailbox("Other"))
		time.sleep(1.1)  # Dovecot's UIDVALIDITY is a time in seconds
		sm.create(c, "Other")
		for r, raw in zip(old, new):
			typ, data = c.append(sm.quote_mailbox("Other"), None,
					     '"%s"' % r["internaldate"], raw)
			assert typ == "OK", data
	finally:
		c.logout()
	assert imap.uidvalidity("Other") != before
	now = fresh(imap, "Other")
	assert [(r["uid"], r["name"], r["size"]) for r in now] == \
		[(r["uid"], r["name"], r["size"]) for r in old]

	def reads_new():
		# A look at the mailbox (ls) is what finds the change.
		try:
			os.listdir(os.path.join(m.path, "Other"))
			return all(
				open(os.path.join(m.path, "Other", r["name"]),
				     "rb").read() == raw
				for r, raw in zip(now, new))
		except OSError:
			return False

	assert wait_until(reads_new, timeout=10), \
		"still the old bytes: %s" % m.stderr()[-2000:]
	for r, raw in zip(now, new):
		with open(os.path.join(m.path, "Other", r["name"]), "rb") as f:
			assert f.read() == raw


def test_mv_after_mailbox_made_anew_moves_nothing(account, mounter, server,
						  imap):
	"""The names imapfs listed stand for UIDs under one UIDVALIDITY. When
	another client has made the mailbox anew, the same UIDs name other
	messages: mv and setfattr of an old name must touch none of them."""
	user = account["user"]
	m = mounter.mount(user)
	old = fresh(imap, "Other")
	assert len(old) == 3
	assert sorted(os.listdir(os.path.join(m.path, "Other"))) == \
		sorted(r["name"] for r in old)
	inbox_before = fresh(imap, "INBOX")
	imap.selected = None
	recreate(server, user, "Other", sm.make_messages(52, 3))
	now = fresh(imap, "Other")
	assert [r["uid"] for r in now] == [r["uid"] for r in old]
	now_flags = {r["uid"]: r["flags"] for r in now}

	src = os.path.join(m.path, "Other", old[0]["name"])
	try:
		os.rename(src, os.path.join(m.path, "INBOX", old[0]["name"]))
		moved = True
	except OSError as e:
		moved = False
		assert e.errno == errno.ENOENT, e
	try:
		os.setxattr(os.path.join(m.path, "Other", old[1]["name"]),
			    "user.imap.flags", b"\\Flagged")
	except OSError as e:
		assert e.errno == errno.ENOENT, e
	assert not moved, "mv moved a message listed before the change"
	assert [r["message_id"] for r in fresh(imap, "INBOX")] == \
		[r["message_id"] for r in inbox_before]
	after = fresh(imap, "Other")
	assert [r["message_id"] for r in after] == \
		[r["message_id"] for r in now]
	assert {r["uid"]: r["flags"] for r in after} == now_flags
	assert "made anew" in m.stderr()


def test_open_files_of_a_mailbox_made_anew_reach_none_of_its_new_messages(
		account, mounter, server, imap, witness):
	"""A program holds old files open (their names pinned in the kernel)
	while another client makes the mailbox anew with messages under the
	same UIDs. Once imapfs has seen the change, neither the open files
	nor their old names reach a new message; the mailbox lists the new
	ones, readable under their own names."""
	user = account["user"]
	m = mounter.mount(user)
	old = fresh(imap, "Other")
	paths = [os.path.join(m.path, "Other", r["name"]) for r in old]
	assert sorted(os.listdir(os.path.join(m.path, "Other"))) == \
		sorted(r["name"] for r in old)
	fds = [os.open(p, os.O_RDONLY) for p in paths]
	try:
		recreate_and_kick(server, user, "Other", sm.make_messages(52, 3))
		w = witness(user)	# a session that never had the old one
		now = fresh(w, "Other")
		assert [r["uid"] for r in now] == [r["uid"] for r in old]
		before = {r["uid"]: r["flags"] for r in now}
		# A listing finds the change (the SELECT shows the new
		# UIDVALIDITY) and shows the new messages.
		assert wait_until(lambda: listing(m, "Other") ==
				  sorted(r["name"] for r in now)), \
			m.stderr()[-3000:]
		for fd, path in zip(fds, paths):
			for how, target in (("fd", fd), ("path", path)):
				try:
					os.setxattr(target, "user.imap.flags",
						    b"\\Flagged \\Answered")
					changed = True
				except OSError as e:
					changed = False
					assert e.errno == errno.ENOENT, (how, e)
				assert not changed, how
		for r in now:
			with open(os.path.join(m.path, "Other", r["name"]),
				  "rb") as f:
				assert f.read() == w.body("Other", r["uid"])
	finally:
		for fd in fds:
			os.close(fd)
	assert {r["uid"]: r["flags"] for r in fresh(w, "Other")} == before


def test_a_moved_message_is_not_found_through_a_mailbox_made_anew(
		account, mounter, server, imap, witness):
	"""mv leaves the kernel's old inode pointing at the moved message for
	a while. The source mailbox made anew must not inherit that: setfattr
	of a new message there changes that message, not the moved one."""
	user = account["user"]
	m = mounter.mount(user)
	old = fresh(imap, "Other")
	os.listdir(os.path.join(m.path, "INBOX"))
	assert len(os.listdir(os.path.join(m.path, "Other"))) == 3
	os.rename(os.path.join(m.path, "Other", old[0]["name"]),
		  os.path.join(m.path, "INBOX", old[0]["name"]))
	imap.selected = None
	inbox = {r["uid"]: r["flags"] for r in fresh(imap, "INBOX")}
	recreate_and_kick(server, user, "Other", sm.make_messages(52, 3))
	w = witness(user)	# a session that never had the old one
	now = fresh(w, "Other")
	assert now[0]["uid"] == old[0]["uid"]
	assert wait_until(lambda: listing(m, "Other") ==
			  sorted(r["name"] for r in now)), m.stderr()[-3000:]
	os.setxattr(os.path.join(m.path, "Other", now[0]["name"]),
		    "user.imap.flags", b"\\Answered")
	assert {r["uid"]: r["flags"] for r in fresh(w, "INBOX")} == inbox
	assert "\\Answered" in fresh(w, "Other")[0]["flags"]


def test_a_file_being_written_follows_its_mailbox_made_anew(
		account, mounter, server, imap, witness):
	"""rsync writes a temp file, then renames it. If the server changes
	the mailbox's UIDVALIDITY meanwhile, the pending file moves along
	with its directory: it is still found by name, renamed, and added."""
	user = account["user"]
	m = mounter.mount(user, opts=("list_ttl=1",))
	d = os.path.join(m.path, "Other")
	assert len(names(m, "Other")) == 3
	sample = sm.make_messages(82, 1)[0]
	tmp = os.path.join(d, ".msg.XXXXXX")
	fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)
	try:
		os.write(fd, sample.raw)
		before = imap.uidvalidity("Other")
		ts.doveadm(server, "mailbox", "update", "-u", user,
			   "--uid-validity", str(before + 1000), "Other")

		def renewed():
			os.listdir(d)
			return os.getxattr(d, "user.imap.uidvalidity") == \
				str(before + 1000).encode()

		assert wait_until(renewed, timeout=10), m.stderr()[-3000:]
		os.stat(tmp)
		os.rename(tmp, os.path.join(d, "final.eml"))
	finally:
		os.close(fd)
	w = witness(user)
	assert wait_until(lambda: len(fresh(w, "Other")) == 4)
	new = [r for r in fresh(w, "Other") if r["uid"] > 3]
	assert len(new) == 1 and w.body("Other", new[0]["uid"]) == sample.raw

"""COMPRESS=DEFLATE (RFC 4978): where the server offers it, imapfs turns it
on for each connection after login, so that what crosses the wire is
deflated; -o nocompress leaves it off. What a user does works the same
over it: the tree, reading, flags, adding and moving mail, and changes
another client makes (the watching connection is compressed too)."""

import os
import re

import pytest

import conftest
import imapfs_proxy
import imapfs_samplemail as sm
from writehelpers import body, fresh, sha, wait_until, Writer


@pytest.fixture
def zserver(server_factory):
	return server_factory(compress=True)


@pytest.fixture
def zmounter(zserver, tmp_path):
	m = conftest.Mounter(zserver, str(tmp_path))
	yield m
	problems = m.cleanup()
	assert not problems, "\n".join(problems)


def names(path):
	return sorted(os.listdir(path))


def test_mail_reads_and_changes_over_a_compressed_link(zserver, zmounter,
						       new_user):
	user = new_user("deflate")
	conftest.seed_account(zserver, user, {"INBOX": 12, "Other": 4},
			      seed=51)
	w = conftest.Witness(zserver, user)
	try:
		m = zmounter.mount(user, debug=True)
		inbox = os.path.join(m.path, "INBOX")
		other = os.path.join(m.path, "Other")
		recs = fresh(w, "INBOX")
		assert names(inbox) == sorted(r["name"] for r in recs)
		for r in recs:
			with open(os.path.join(inbox, r["name"]), "rb") as f:
				assert sha(f.read()) == sha(body(w, "INBOX",
								 r["uid"])), r

		os.setxattr(os.path.join(inbox, recs[0]["name"]),
			    "user.imap.flags", b"\\Flagged $Deflated")
		assert fresh(w, "INBOX")[0]["flags"] == {"\\Flagged",
							 "$Deflated"}

		new = sm.make_messages(52, 1)[0]
		with open(os.path.join(other, "new.eml"), "wb") as f:
			f.write(new.raw)
		got = [r for r in fresh(w, "Other")
		       if body(w, "Other", r["uid"]) == new.raw]
		assert len(got) == 1

		os.rename(os.path.join(inbox, recs[1]["name"]),
			  os.path.join(other, recs[1]["name"]))
		assert recs[1]["uid"] not in [r["uid"]
					      for r in fresh(w, "INBOX")]

		writer = Writer(zserver, user)
		try:
			writer.append("INBOX", sm.make_messages(53, 1)[0])
		finally:
			writer.close()
		want = sorted(r["name"] for r in fresh(w, "INBOX"))
		assert wait_until(lambda: names(inbox) == want, timeout=10), \
			names(inbox)

		# A message larger than a deflated write, both ways.
		big = sm.make_messages(55, 1)[0].raw + b"".join(
			b"line %d of a long message, with %s\r\n" %
			(i, os.urandom(8).hex().encode()) for i in range(12000))
		with open(os.path.join(other, "big.eml"), "wb") as f:
			f.write(big)
		rec = [r for r in fresh(w, "Other") if r["size"] == len(big)]
		assert len(rec) == 1
		assert body(w, "Other", rec[0]["uid"]) == big
		with open(os.path.join(other, rec[0]["name"]), "rb") as f:
			assert f.read() == big
	finally:
		w.close()
	log = m.stderr()
	problems = zmounter.unmount(m)
	assert not problems, "\n".join(problems)
	log = m.stderr()
	# Every connection that logged in turned compression on, and none
	# of it failed, up to the LOGOUTs.
	logins = set(re.findall(r"\[conn (\d+)\] C: \S+ AUTHENTICATE", log))
	on = set(re.findall(r"\[conn (\d+)\] S: \S+ OK Begin compression",
			    log))
	assert logins and on == logins, (logins, on)
	assert "without compression" not in log, log[-3000:]


def test_the_wire_carries_less_and_nocompress_turns_it_off(zserver, zmounter,
							  new_user):
	"""The same mail read through a counting proxy, with a fresh cache
	each time: compressed, the server sends well under what it sends
	with -o nocompress, and the bytes read are the same."""
	user = new_user("deflated")
	conftest.seed_account(zserver, user, {"INBOX": 20}, seed=54)
	proxy = imapfs_proxy.LatencyProxy(("127.0.0.1", zserver["imaps_port"]))
	proxy.start()
	sent = {}
	read = {}
	try:
		for opts in ((), ("nocompress",)):
			m = zmounter.mount(user, opts=list(opts), debug=True,
					   url="imaps://%s@127.0.0.1:%d" %
					   (user, proxy.port))
			inbox = os.path.join(m.path, "INBOX")
			proxy.reset()
			data = []
			for n in names(inbox):
				with open(os.path.join(inbox, n), "rb") as f:
					data.append(f.read())
			sent[opts] = proxy.counters()["bytes_s2c"]
			read[opts] = data
			log = m.stderr()
			problems = zmounter.unmount(m)
			assert not problems, "\n".join(problems)
			assert ("COMPRESS DEFLATE" in log) == (not opts), \
				log[-2000:]
	finally:
		proxy.stop()
	assert read[()] == read[("nocompress",)]
	assert sent[()] < 0.7 * sent[("nocompress",)], sent

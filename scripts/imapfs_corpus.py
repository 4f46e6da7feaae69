"""A deterministic mail corpus for imapfs's benchmark (stdlib only).

    info = ensure(CORPUS_DIR, count=10000, seed=1)  # generate or reuse
    srv = start(CORPUS_DIR)       # a private Dovecot serving it
    ...
    stop(CORPUS_DIR)

The corpus is written straight into the Maildir of user USER of a
private Dovecot (scripts/imapfs_testserver.py) instead of being
APPENDed: 0.5 GB through APPEND takes minutes, files take seconds.
Dovecot indexes the files on first access, which ensure() triggers so
that no benchmark pays for it.  A corpus is kept in CORPUS_DIR and
reused while its parameters (count, seed, version) match.

Shape (for count = 10000): most messages are 2-20 KB of text; about
10 % carry an attachment of 50 KB to 2 MB (log-uniform, skewed small);
count * 3 / 10000 (at least one) are 10 MB; about 0.5 GB in all.  Six
mailboxes, INBOX the large one (about 55 %).  About 1 % of the messages
hold MARKER in a text line, once each.
"""

import base64
import datetime
import email.utils
import imaplib
import json
import math
import os
import random
import shutil
import ssl
import time

import imapfs_testserver as ts

VERSION = 1
USER = "bench"
MARKER = "BENCH-NEEDLE-5d1c7e"
LARGE_MAILBOX = "INBOX"
# (name, weight); "." is the server's hierarchy separator.
MAILBOXES = (("INBOX", 55), ("Archive", 15), ("Sent", 12),
	     ("Lists.dev", 10), ("Lists.announce", 5), ("Receipts", 3))
HUGE_SIZE = 10 << 20
HOSTNAME = "imapfs-bench"

_WORDS = ("the of and to in is it that for on with as was at by this be "
	  "from or have an are not but which you were all one their has "
	  "meeting report budget deploy server release quarterly invoice "
	  "schedule review draft agenda kernel patch mailbox archive "
	  "backup restore network latency cache index thread filesystem "
	  "Köln Zürich naïve café résumé").split()


def _text_pool(seed, size=512 * 1024):
	"""Lines of words, LF ends, at most 72 columns."""
	rng = random.Random(seed ^ 0x5eed)
	lines = []
	total = 0
	while total < size:
		words = []
		n = 0
		while True:
			w = rng.choice(_WORDS)
			if n + len(w) + 1 > 72:
				break
			words.append(w)
			n += len(w) + 1
		if rng.random() < 0.1:
			words = []
		line = (" ".join(words) + "\n").encode("utf-8")
		lines.append(line)
		total += len(line)
	return b"".join(lines)


def _slice_text(pool, rng, nbytes):
	"""About NBYTES of whole lines of POOL from a random line start."""
	start = pool.find(b"\n", rng.randrange(len(pool))) + 1
	out = []
	got = 0
	while got < nbytes:
		end = pool.find(b"\n", start + min(nbytes - got, 8192))
		if end < 0:
			out.append(pool[start:])
			got += len(pool) - start
			start = 0
			continue
		out.append(pool[start:end + 1])
		got += end + 1 - start
		start = end + 1
	return b"".join(out)


def plan(count, seed):
	"""The list of messages: dicts with index, mailbox, target size,
	kind ("text", "attach", "huge"), flags, marker, time."""
	rng = random.Random(seed)
	nhuge = max(1, round(count * 3 / 10000))
	huge = set(rng.sample(range(count), min(nhuge, count)))
	names = [m[0] for m in MAILBOXES]
	weights = [m[1] for m in MAILBOXES]
	t0 = 1546300800  # 2019-01-01
	msgs = []
	first_huge = True
	for i in range(count):
		box = rng.choices(names, weights)[0]
		if i in huge:
			kind, size = "huge", HUGE_SIZE
			if first_huge:
				# The first 4 KB test reads it from INBOX.
				box = LARGE_MAILBOX
				first_huge = False
		elif rng.random() < 0.10:
			u = rng.random() ** 1.3
			kind = "attach"
			size = int(50e3 * math.exp(u * math.log(40)))
		else:
			kind = "text"
			size = int(2e3 * math.exp(rng.random() * math.log(10)))
		flags = ""
		if rng.random() < 0.03:
			flags += "F"
		if rng.random() < 0.10:
			flags += "R"
		if rng.random() < 0.80:
			flags += "S"
		msgs.append({
			"i": i, "mailbox": box, "kind": kind, "size": size,
			"flags": flags, "marker": i % 97 == 5,
			"time": t0 + i * 3000 + rng.randrange(3000),
		})
	return msgs


def _subject(rng, i):
	words = " ".join(rng.choice(_WORDS[20:]) for _ in
			 range(rng.randint(2, 7)))
	subj = "%s #%d" % (words.capitalize(), i)
	if not subj.isascii():
		b = base64.b64encode(subj.encode("utf-8")).decode()
		return "=?utf-8?b?%s?=" % b
	return subj


def render(m, seed, pool):
	"""The bytes of message M (LF line ends, as Maildir stores them)."""
	rng = random.Random((seed << 32) ^ (m["i"] * 2654435761))
	date = datetime.datetime.fromtimestamp(m["time"],
					       datetime.timezone.utc)
	hdr = [
		"Return-Path: <sender%d@example.org>" % (m["i"] % 211),
		"From: Sender %d <sender%d@example.org>" % (m["i"] % 211,
							  m["i"] % 211),
		"To: Bench User <bench@example.net>",
		"Subject: " + _subject(rng, m["i"]),
		"Date: " + email.utils.format_datetime(date),
		"Message-ID: <bench-%d-%08x@example.org>" % (
			m["i"], rng.getrandbits(32)),
		"MIME-Version: 1.0",
	]
	marker = ("the needle is %s here\n" % MARKER).encode()
	if m["kind"] == "text":
		hdr.append("Content-Type: text/plain; charset=utf-8")
		hdr.append("Content-Transfer-Encoding: 8bit")
		head = ("\n".join(hdr) + "\n\n").encode("utf-8")
		body = _slice_text(pool, rng, max(64, m["size"] - len(head)))
		if m["marker"]:
			half = body.find(b"\n", len(body) // 2) + 1
			body = body[:half] + marker + body[half:]
		return head + body
	boundary = "=_bench_%d_%08x" % (m["i"], rng.getrandbits(32))
	hdr.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
	head = ("\n".join(hdr) + "\n\n").encode("utf-8")
	text = _slice_text(pool, rng, rng.randint(300, 3000))
	if m["marker"]:
		text = marker + text
	part1 = ("--%s\nContent-Type: text/plain; charset=utf-8\n"
		 "Content-Transfer-Encoding: 8bit\n\n" % boundary).encode()
	part2 = ("\n--%s\nContent-Type: application/octet-stream\n"
		 "Content-Disposition: attachment; filename=\"file-%d.bin\"\n"
		 "Content-Transfer-Encoding: base64\n\n" %
		 (boundary, m["i"])).encode()
	tail = ("--%s--\n" % boundary).encode()
	fixed = len(head) + len(part1) + len(text) + len(part2) + len(tail)
	# base64 with 76-column lines: 57 raw bytes per 77 stored bytes.
	raw = max(57, (m["size"] - fixed) * 57 // 77)
	blob = base64.encodebytes(rng.randbytes(raw))
	return head + part1 + text + part2 + blob + tail


def _maildir_path(maildir, box):
	if box == "INBOX":
		return maildir
	return os.path.join(maildir, "." + box)


def _make_folder(path, uid, gid, sub):
	for d in ("", "cur", "new", "tmp"):
		p = os.path.join(path, d)
		os.makedirs(p, exist_ok=True)
		os.chown(p, uid, gid)
		os.chmod(p, 0o700)
	if sub:
		f = os.path.join(path, "maildirfolder")
		open(f, "w").close()
		os.chown(f, uid, gid)


def generate(server_dir, count, seed, log=print):
	"""Write the corpus as Maildir files.  The server must have been
	started once (its mail directory exists) but no client may have
	logged in as USER yet."""
	mail = os.path.join(server_dir, "mail")
	st = os.stat(mail)
	uid, gid = st.st_uid, st.st_gid
	home = os.path.join(mail, USER)
	if os.path.exists(home):
		shutil.rmtree(home)
	os.makedirs(home)
	os.chown(home, uid, gid)
	maildir = os.path.join(home, "Maildir")
	folders = {m[0] for m in MAILBOXES} | {"Lists"}
	for box in sorted(folders):
		_make_folder(_maildir_path(maildir, box), uid, gid,
			     box != "INBOX")
	subs = os.path.join(maildir, "subscriptions")
	with open(subs, "w") as f:
		f.write("".join(b + "\n" for b in sorted(folders)))
	os.chown(subs, uid, gid)
	pool = _text_pool(seed)
	msgs = plan(count, seed)
	total = 0
	t = time.monotonic()
	for m in msgs:
		data = render(m, seed, pool)
		vsize = len(data) + data.count(b"\n")
		name = "%d.M%dP1.%s,S=%d,W=%d:2,%s" % (
			m["time"], m["i"], HOSTNAME, len(data), vsize,
			m["flags"])
		path = os.path.join(_maildir_path(maildir, m["mailbox"]),
				    "cur", name)
		with open(path, "wb") as f:
			f.write(data)
		os.chown(path, uid, gid)
		os.utime(path, (m["time"], m["time"]))
		m["vsize"] = vsize
		total += vsize
		if log and m["i"] % 2000 == 1999:
			log("corpus: %d/%d messages, %.0f MB" %
			    (m["i"] + 1, count, total / 1e6))
	if log:
		log("corpus: %d messages, %.1f MB, %.1f s" %
		    (count, total / 1e6, time.monotonic() - t))
	return msgs


def _quote(s):
	return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def index(info, msgs, log=print):
	"""Log in, let Dovecot index every mailbox, check the counts and
	learn the UIDs (they follow the plan's order within a mailbox)."""
	ctx = ssl.create_default_context(cafile=info["cafile"])
	c = imaplib.IMAP4_SSL(info["host"], info["imaps_port"],
			      ssl_context=ctx, timeout=600)
	c.login(USER, info["password"])
	boxes = {}
	try:
		for name, _ in MAILBOXES:
			expect = [m for m in msgs if m["mailbox"] == name]
			typ, data = c.select(_quote(name), readonly=True)
			if typ != "OK":
				raise RuntimeError("SELECT %s: %r" %
						   (name, data))
			for _ in range(2):
				typ, data = c.uid(
					"FETCH", "1:*",
					"(UID FLAGS INTERNALDATE RFC822.SIZE "
					"ENVELOPE BODY.PEEK[HEADER.FIELDS "
					"(SUBJECT FROM DATE MESSAGE-ID)])")
			typ, data = c.uid("SEARCH", "ALL")
			uids = [int(x) for x in data[0].split()]
			if len(uids) != len(expect):
				raise RuntimeError("%s holds %d messages, "
						   "expected %d" %
						   (name, len(uids),
						    len(expect)))
			typ, data = c.uid("SEARCH", "LARGER",
					  str(HUGE_SIZE - 1))
			big = {int(x) for x in data[0].split()}
			for m, u in zip(expect, uids):
				m["uid"] = u
				if (m["kind"] == "huge") != (u in big):
					raise RuntimeError(
						"UID order in %s does not "
						"follow the plan" % name)
			boxes[name] = len(uids)
			c.close()
	finally:
		c.logout()
	if log:
		log("corpus: indexed %s" % boxes)
	return boxes


def _manifest_path(corpus_dir):
	return os.path.join(corpus_dir, "corpus.json")


def server_dir(corpus_dir):
	return os.path.join(os.path.abspath(corpus_dir), "server")


def load(corpus_dir):
	try:
		with open(_manifest_path(corpus_dir)) as f:
			return json.load(f)
	except (OSError, ValueError):
		return None


def ensure(corpus_dir, count=10000, seed=1, log=print):
	"""Reuse the corpus in CORPUS_DIR when it matches, else generate
	it.  Returns the manifest (also in CORPUS_DIR/corpus.json)."""
	corpus_dir = os.path.abspath(corpus_dir)
	man = load(corpus_dir)
	want = {"version": VERSION, "count": count, "seed": seed}
	if man and all(man.get(k) == v for k, v in want.items()):
		return man
	os.makedirs(corpus_dir, exist_ok=True)
	os.chmod(corpus_dir, 0o755)
	try:
		os.unlink(_manifest_path(corpus_dir))
	except OSError:
		pass
	sdir = server_dir(corpus_dir)
	info = start(corpus_dir)
	try:
		msgs = generate(sdir, count, seed, log)
		boxes = index(info, msgs, log)
	finally:
		stop(corpus_dir)
	huge = [m for m in msgs if m["kind"] == "huge"]
	man = dict(want)
	man.update({
		"user": USER,
		"marker": MARKER,
		"large_mailbox": LARGE_MAILBOX,
		"mailboxes": boxes,
		"messages": len(msgs),
		"bytes": sum(m["vsize"] for m in msgs),
		"marker_messages": sum(1 for m in msgs if m["marker"]),
		"huge": [{"mailbox": m["mailbox"], "uid": m["uid"],
			  "size": m["vsize"]} for m in huge],
		"attachments": sum(1 for m in msgs if m["kind"] == "attach"),
	})
	tmp = _manifest_path(corpus_dir) + ".tmp"
	with open(tmp, "w") as f:
		json.dump(man, f, indent=1)
	os.rename(tmp, _manifest_path(corpus_dir))
	return man


def start(corpus_dir):
	sdir = server_dir(corpus_dir)
	old = ts.load(sdir)
	if old and ts._alive(old["pid"]):
		raise ts.ServerError("a server already runs for %s (pid %d); "
				     "stop it with: dovecot-up stop %s" %
				     (sdir, old["pid"], sdir))
	return ts.start(sdir)


def stop(corpus_dir):
	return ts.stop(server_dir(corpus_dir))

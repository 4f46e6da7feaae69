"""Deterministic sample mail for imapfs's tests and demo (stdlib only).

    msgs = make_messages(seed=1, count=30)   # list of Sample
    big = big_message(seed=1, size=10 << 20)
    append(conn, "INBOX", sample)            # imaplib APPEND, flags + date

A Sample holds the raw RFC 5322 bytes (CRLF line ends), the flags and
INTERNALDATE to APPEND with, and whether the body holds MARKER.  Subjects
cycle through plain ASCII, RFC 2047 UTF-8 (B) and ISO-8859-1 (Q), very
long, with '/', ':' and quotes, empty and missing; bodies through plain
text, multipart with a base64 attachment and raw 8-bit UTF-8.

Also: modified UTF-7 (RFC 3501 5.1.3) for mailbox names, and the
message file name imapfs gives a UID + decoded subject.
"""

import base64
import datetime
import email.charset
import email.header
import email.policy
import email.utils
import random
import unicodedata
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

MARKER = "ZEBRA-MARKER-7f3a9c"

_WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india "
	  "juliet kilo lima mike november oscar papa quebec romeo sierra "
	  "tango uniform victor whiskey xray yankee zulu").split()


class Sample:
	def __init__(self, raw, subject, flags, date, has_marker, kind):
		self.raw = raw              # bytes, CRLF line ends
		self.subject = subject      # decoded subject, None if absent
		self.flags = flags          # e.g. ["\\Seen", "\\Flagged"]
		self.date = date            # aware datetime (INTERNALDATE)
		self.has_marker = has_marker
		self.kind = kind            # "plain", "multipart", "8bit", ...

	def __repr__(self):
		return "<Sample %s %r %s>" % (self.kind, self.subject,
					      self.flags)


def _subject_variants():
	"""(header value or None, decoded subject or None) pairs."""
	utf8 = "Grüße aus Köln — 日本語のテスト"
	latin1 = "Café crème für Sie"
	longs = ("A very long subject line that goes on and on " * 4).strip()
	return [
		("Quarterly report", "Quarterly report"),
		(email.header.Header(utf8, "utf-8").encode(), utf8),
		(email.header.Header(latin1, "iso-8859-1").encode(), latin1),
		(longs, longs),
		('Re: a/b "quoted" it\'s: done', 'Re: a/b "quoted" it\'s: done'),
		("", ""),
		(None, None),
		("...leading dots and trailing___", "...leading dots and "
		 "trailing___"),
		("?!? ::: ///", "?!? ::: ///"),
		("=?utf-8?q?caf=C3=A9_=3D_coffee?=", "café = coffee"),
		("Plain (with) parens & more, ok+1 @home",
		 "Plain (with) parens & more, ok+1 @home"),
		("Ünïcödé ąęść", "Ünïcödé ąęść"),
	]


def _text(rng, lines):
	out = []
	for _ in range(lines):
		out.append(" ".join(rng.choice(_WORDS)
				    for _ in range(rng.randint(4, 12))))
	return "\n".join(out) + "\n"


def _date(rng):
	base = datetime.datetime(2019, 1, 1, tzinfo=datetime.timezone.utc)
	secs = rng.randint(0, 4 * 365 * 86400)
	tz = datetime.timezone(datetime.timedelta(
		minutes=rng.choice((-300, 0, 60, 120, 330))))
	return (base + datetime.timedelta(seconds=secs)).astimezone(tz)


def _headers(msg, rng, i, subj_hdr, date):
	msg["From"] = "Sender %d <sender%d@example.org>" % (i, i)
	msg["To"] = "Test User <user@example.net>"
	msg["Date"] = email.utils.format_datetime(date)
	msg["Message-ID"] = "<sample-%d-%d@imapfs.test>" % (
		rng.randint(0, 10**9), i)
	if subj_hdr is not None:
		if not str(subj_hdr).isascii():
			subj_hdr = email.header.Header(subj_hdr,
						       "utf-8").encode()
		msg["Subject"] = subj_hdr


_POLICY = email.policy.compat32.clone(linesep="\r\n")


def _to_bytes(msg):
	return msg.as_bytes(policy=_POLICY)


def _plain(rng, i, subj_hdr, date, body):
	m = MIMEText(body, "plain", "us-ascii")
	_headers(m, rng, i, subj_hdr, date)
	return _to_bytes(m)


def _multipart(rng, i, subj_hdr, date, body):
	m = MIMEMultipart(boundary="=_imapfs_%d_%08x" % (i, rng.getrandbits(32)))
	_headers(m, rng, i, subj_hdr, date)
	m.attach(MIMEText(body, "plain", "us-ascii"))
	blob = bytes(rng.getrandbits(8) for _ in range(rng.randint(2000,
								  9000)))
	att = MIMEApplication(blob, "octet-stream")
	att.add_header("Content-Disposition", "attachment",
		       filename="data-%d.bin" % i)
	m.attach(att)
	return _to_bytes(m)


def _eightbit(rng, i, subj_hdr, date, body):
	"""Raw 8-bit UTF-8 body (Content-Transfer-Encoding: 8bit)."""
	lines = []
	lines.append("From: Sender %d <sender%d@example.org>" % (i, i))
	lines.append("To: Test User <user@example.net>")
	lines.append("Date: " + email.utils.format_datetime(date))
	lines.append("Message-ID: <eightbit-%d@imapfs.test>" % i)
	if subj_hdr is not None:
		lines.append("Subject: " + str(subj_hdr))
	lines.append("MIME-Version: 1.0")
	lines.append("Content-Type: text/plain; charset=utf-8")
	lines.append("Content-Transfer-Encoding: 8bit")
	lines.append("")
	text = "Straße, naïve café, Ελληνικά, 日本語, emoji \U0001F600\n" + body
	lines.extend(text.splitlines())
	return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def make_messages(seed=1, count=30, marker_every=3):
	"""COUNT deterministic messages.  Message i holds MARKER in its body
	when i % marker_every == 0.  Flags: every message with i % 4 in
	(1, 2) is \\Seen, i % 5 == 0 is \\Flagged, i % 7 == 3 has $Junk."""
	rng = random.Random(seed)
	subjects = _subject_variants()
	kinds = (_plain, _multipart, _eightbit)
	out = []
	for i in range(count):
		subj_hdr, subj = subjects[i % len(subjects)]
		kind = kinds[(i // len(subjects) + i) % len(kinds)]
		date = _date(rng)
		has_marker = marker_every > 0 and i % marker_every == 0
		body = _text(rng, rng.randint(3, 40))
		if has_marker:
			lines = body.splitlines()
			lines.insert(len(lines) // 2,
				     "the marker is %s here" % MARKER)
			body = "\n".join(lines) + "\n"
		raw = kind(rng, i, subj_hdr, date, body)
		flags = []
		if i % 4 in (1, 2):
			flags.append("\\Seen")
		if i % 5 == 0:
			flags.append("\\Flagged")
		if i % 7 == 3:
			flags.append("$Junk")
		out.append(Sample(raw, subj, flags, date, has_marker,
				  kind.__name__.strip("_")))
	return out


def big_message(seed=1, size=10 << 20, marker=False):
	"""One message of about SIZE bytes: a text part and a big base64
	attachment of pseudo-random bytes."""
	rng = random.Random(seed)
	date = _date(rng)
	m = MIMEMultipart(boundary="=_imapfs_big_%08x" % rng.getrandbits(32))
	_headers(m, rng, 999999, "Big attachment %d MB" % (size >> 20), date)
	body = "A big message.\n"
	if marker:
		body += "the marker is %s here\n" % MARKER
	m.attach(MIMEText(body, "plain", "us-ascii"))
	nbytes = max(1, size * 3 // 4 - 4096)
	blob = rng.randbytes(nbytes)
	att = MIMEApplication(blob, "octet-stream")
	att.add_header("Content-Disposition", "attachment",
		       filename="big.bin")
	m.attach(att)
	return Sample(_to_bytes(m), "Big attachment %d MB" % (size >> 20), [],
		      date, marker, "big")


# --- modified UTF-7 (RFC 3501 5.1.3) ----------------------------------

def mutf7_encode(s):
	out = []
	buf = []

	def flush():
		if buf:
			b = "".join(buf).encode("utf-16-be")
			out.append("&" + base64.b64encode(b).decode()
				   .rstrip("=").replace("/", ",") + "-")
			buf.clear()
	for ch in s:
		if 0x20 <= ord(ch) <= 0x7e:
			flush()
			out.append("&-" if ch == "&" else ch)
		else:
			buf.append(ch)
	flush()
	return "".join(out)


def mutf7_decode(s):
	out = []
	i = 0
	while i < len(s):
		ch = s[i]
		if ch != "&":
			out.append(ch)
			i += 1
			continue
		j = s.index("-", i)
		if j == i + 1:
			out.append("&")
		else:
			b64 = s[i + 1:j].replace(",", "/")
			b64 += "=" * (-len(b64) % 4)
			out.append(base64.b64decode(b64).decode("utf-16-be"))
		i = j + 1
	return "".join(out)


def imap_quote(s):
	return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_mailbox(name):
	"""A Unicode mailbox name as an IMAP quoted string (mUTF-7)."""
	return imap_quote(mutf7_encode(name))


# --- imaplib helpers ---------------------------------------------------

def append(conn, mailbox, sample):
	"""APPEND SAMPLE to MAILBOX (a Unicode name) with its flags and date.
	Returns the UID from APPENDUID when the server sends it."""
	flags = "(" + " ".join(sample.flags) + ")" if sample.flags else None
	typ, data = conn.append(quote_mailbox(mailbox), flags, sample.date,
				sample.raw)
	if typ != "OK":
		raise RuntimeError("APPEND to %s failed: %r" % (mailbox, data))
	text = data[0].decode(errors="replace") if data and data[0] else ""
	if "APPENDUID" in text:
		try:
			return int(text.split("APPENDUID", 1)[1].split("]")[0]
				   .split()[1])
		except (IndexError, ValueError):
			pass
	return None


def create(conn, mailbox):
	typ, data = conn.create(quote_mailbox(mailbox))
	if typ != "OK":
		raise RuntimeError("CREATE %s failed: %r" % (mailbox, data))


# --- names as imapfs shows them --------------------------------------

_KEEP = set("-_.,+=@()&!")


def decode_subject(value):
	"""RFC 2047-decode a raw Subject header value (str), unfolded."""
	if value is None:
		return None
	value = value.replace("\r\n", "\n").replace("\n ", " ") \
		.replace("\n\t", " ").replace("\n", "")
	return str(email.header.make_header(email.header.decode_header(value)))


def _isalnum(ch):
	return unicodedata.category(ch) in ("Lu", "Ll", "Lt", "Lm", "Lo",
					     "Nd")


def clean_subject(subject):
	if not subject:
		return ""
	s = unicodedata.normalize("NFC", subject)
	out = []
	run = False
	for ch in s:
		if _isalnum(ch) or ch in _KEEP:
			out.append(ch)
			run = False
		elif not run:
			out.append("_")
			run = True
	c = "".join(out).strip("_.")
	if len(c) > 60:
		c = c[:60].strip("_.")
	return c


def message_file_name(uid, subject):
	c = clean_subject(subject)
	if not c:
		return "%010d.eml" % uid
	return "%010d-%s.eml" % (uid, c)


def mailbox_component_name(component):
	"""Directory entry name imapfs gives a decoded mailbox component."""
	if component == ".":
		return "%2E"
	if component == "..":
		return "%2E%2E"
	out = []
	for ch in component:
		o = ord(ch)
		if o < 0x20 or o == 0x7f or ch in "%/":
			out.append("%%%02X" % o)
		else:
			out.append(ch)
	s = "".join(out)
	if len(s) >= 14 and s[:10].isdigit() and s.endswith(".eml") and \
	   s[:10].isascii() and 0 < int(s[:10]) <= 0xffffffff and \
	   (len(s) == 14 or (s[10] == "-" and len(s) >= 16)):
		s = "%3" + s[0] + s[1:]
	return s

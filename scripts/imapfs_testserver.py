"""A private Dovecot IMAP server on 127.0.0.1 for imapfs's tests and demo.

Everything lives under one directory DIR: the generated CA and server
certificate, dovecot.conf, base/state directories, the log and the mail
store (DIR/mail/<user>).  Any user name logs in with the password
"secret", so each test can use a fresh, empty account.

    info = start(DIR)               # returns the dict also in DIR/server.json
    stop(DIR)                       # kills that server's PID only

start(DIR, drop_caps=["MOVE"]) starts a server that does not advertise
the listed capabilities (for the fallback paths of a client).

Python 3 standard library only; the openssl command-line tool makes the
certificates.  Works as root (dovecot's usual users) or as a normal user
(everything runs as that user).
"""

import grp
import imaplib
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import time

PASSWORD = "secret"
HOST = "127.0.0.1"

# Hierarchy delimiter of the private namespace.  listescape lets a
# mailbox name component hold characters the storage would refuse,
# in particular "/" (which imapfs shows as %2F).
SEPARATOR = "."


class ServerError(Exception):
	pass


def _free_port():
	s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
	try:
		s.bind((HOST, 0))
		return s.getsockname()[1]
	finally:
		s.close()


def _two_free_ports():
	while True:
		a, b = _free_port(), _free_port()
		if a != b:
			return a, b


def _run(cmd, **kw):
	p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
			   **kw)
	if p.returncode != 0:
		raise ServerError("%s failed (%d): %s" %
				  (" ".join(cmd), p.returncode,
				   p.stderr.decode(errors="replace")))
	return p


def make_certs(certdir):
	"""A self-signed CA and a server certificate for 127.0.0.1/localhost
	signed by it.  Returns (cafile, certfile, keyfile)."""
	os.makedirs(certdir, exist_ok=True)
	ca_key = os.path.join(certdir, "ca.key")
	ca_crt = os.path.join(certdir, "ca.crt")
	key = os.path.join(certdir, "server.key")
	csr = os.path.join(certdir, "server.csr")
	crt = os.path.join(certdir, "server.crt")
	ext = os.path.join(certdir, "server.ext")
	if os.path.exists(crt) and os.path.exists(ca_crt):
		return ca_crt, crt, key
	_run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
	      "-keyout", ca_key, "-out", ca_crt, "-days", "3650",
	      "-subj", "/CN=imapfs test CA",
	      "-addext", "basicConstraints=critical,CA:TRUE",
	      "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
	_run(["openssl", "req", "-newkey", "rsa:2048", "-nodes",
	      "-keyout", key, "-out", csr, "-subj", "/CN=localhost"])
	with open(ext, "w") as f:
		f.write("basicConstraints=CA:FALSE\n"
			"keyUsage=critical,digitalSignature,keyEncipherment\n"
			"extendedKeyUsage=serverAuth\n"
			"subjectAltName=IP:127.0.0.1,DNS:localhost\n")
	_run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt,
	      "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
	      "-days", "3650", "-extfile", ext])
	os.chmod(key, 0o600)
	return ca_crt, crt, key


def _users():
	"""(login_user, internal_user, mail uid, mail gid)."""
	if os.geteuid() == 0:
		try:
			pw = pwd.getpwnam("dovecot")
			pwd.getpwnam("dovenull")
		except KeyError:
			raise ServerError("users 'dovecot' and 'dovenull' are "
					  "missing (is dovecot-core installed?)")
		return "dovenull", "dovecot", pw.pw_uid, pw.pw_gid
	pw = pwd.getpwuid(os.geteuid())
	return pw.pw_name, pw.pw_name, pw.pw_uid, os.getegid()


def _check_traversable(path, uid, gid):
	"""The mail user must reach DIR/mail: every ancestor needs x."""
	path = os.path.abspath(path)
	parts = []
	while True:
		parts.append(path)
		parent = os.path.dirname(path)
		if parent == path:
			break
		path = parent
	for p in parts:
		st = os.stat(p)
		if st.st_uid == uid:
			ok = st.st_mode & 0o100
		elif st.st_gid == gid:
			ok = st.st_mode & 0o010
		else:
			ok = st.st_mode & 0o001
		if not ok:
			raise ServerError("%s is not searchable by uid %d; "
					  "use a directory such as one made "
					  "by tempfile.mkdtemp()" % (p, uid))


def dovecot_binary():
	for p in (shutil.which("dovecot"), "/usr/sbin/dovecot"):
		if p and os.access(p, os.X_OK):
			return p
	return None


def _quota_config(quota):
	"""Dovecot settings for QUOTA (RFC 9208): quota is a dict with
	"storage" (Dovecot's size syntax, "10M") and/or "messages"."""
	if not quota:
		return "mail_plugins = $mail_plugins listescape\n", ""
	rules = "".join(":%s=%s" % (k, quota[k])
			for k in ("storage", "messages") if k in quota)
	return ("mail_plugins = $mail_plugins listescape quota\n"
		"protocol imap {\n"
		"  mail_plugins = $mail_plugins imap_quota\n"
		"}\n",
		"  quota = count:User quota\n"
		"  quota_rule = *%s\n"
		"  quota_vsizes = yes\n" % rules)


OAUTH_MECHANISMS = ("xoauth2", "oauthbearer")


def _oauth_config(d, tokeninfo_url, mechanisms):
	"""Dovecot settings for OAuth 2.0 logins (mechanisms: some of
	xoauth2, oauthbearer): tokens are checked at tokeninfo_url, the token
	appended; its JSON answer names the user as "username"."""
	if not tokeninfo_url:
		return "auth_mechanisms = plain login\n", "", "", ""
	mechanisms = " ".join(mechanisms)
	ext = os.path.join(d, "oauth2.conf.ext")
	with open(ext, "w") as f:
		f.write("tokeninfo_url = %s\n"
			"introspection_mode = get\n"
			"username_attribute = username\n"
			"active_attribute = active\n"
			"active_value = true\n" % tokeninfo_url)
	return ("auth_mechanisms = plain login %s\n" % mechanisms,
		"passdb {\n"
		"  driver = oauth2\n"
		"  mechanisms = %s\n"
		"  args = %s\n"
		"}\n" % (mechanisms, ext),
		# the password is for PLAIN and LOGIN only; users are then
		# known without asking it (doveadm's lookups)
		"  mechanisms = plain login\n", " allow_all_users=yes")


def write_config(d, imaps_port, imap_port, capability=None, quota=None,
		 tokeninfo_url=None, oauth_mechanisms=OAUTH_MECHANISMS,
		 compress=False):
	login_user, internal_user, uid, gid = _users()
	cafile, crt, key = make_certs(os.path.join(d, "tls"))
	for sub in ("base", "state"):
		os.makedirs(os.path.join(d, sub), exist_ok=True)
	mail = os.path.join(d, "mail")
	os.makedirs(mail, exist_ok=True)
	os.chmod(d, 0o755)
	os.chown(mail, uid, gid)
	os.chmod(mail, 0o750)
	_check_traversable(mail, uid, gid)
	cap_line = ""
	if capability is not None:
		cap_line = "imap_capability = %s\n" % capability
	plugins, plugin_settings = _quota_config(quota)
	if compress:    # COMPRESS=DEFLATE (RFC 4978)
		plugins += ("protocol imap {\n"
			    "  mail_plugins = $mail_plugins imap_zlib\n"
			    "}\n")
	mechanisms, oauth_passdb, static_mechanisms, all_users = \
		_oauth_config(d, tokeninfo_url, oauth_mechanisms)
	conf = """# Generated by imapfs_testserver.py; private test server.
base_dir = {d}/base
state_dir = {d}/state
instance_name = imapfs-test-{imaps_port}
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
debug_log_path = {d}/dovecot.log
protocols = imap
listen = {host}
shutdown_clients = yes
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = {uid}
first_valid_gid = {gid}

ssl = yes
ssl_cert = <{crt}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
{mechanisms}disable_plaintext_auth = yes

{oauth_passdb}passdb {{
  driver = static
{static_mechanisms}  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%u{all_users}
}}

mail_location = maildir:~/Maildir
{plugins}plugin {{
  listescape_char = "\\\\"
{plugin_settings}}}
{cap_line}
namespace inbox {{
  inbox = yes
  separator = {sep}
  prefix =
  mailbox Drafts {{
    auto = create
    special_use = \\Drafts
  }}
  mailbox Junk {{
    auto = create
    special_use = \\Junk
  }}
  mailbox Sent {{
    auto = create
    special_use = \\Sent
  }}
  mailbox Trash {{
    auto = create
    special_use = \\Trash
  }}
}}

service imap-login {{
  chroot =
  inet_listener imap {{
    address = {host}
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""".format(d=d, host=HOST, login_user=login_user,
	   internal_user=internal_user, uid=uid, gid=gid, crt=crt, key=key,
	   password=PASSWORD, sep=SEPARATOR, imap_port=imap_port,
	   imaps_port=imaps_port, cap_line=cap_line, plugins=plugins,
	   plugin_settings=plugin_settings, mechanisms=mechanisms,
	   oauth_passdb=oauth_passdb, static_mechanisms=static_mechanisms,
	   all_users=all_users)
	path = os.path.join(d, "dovecot.conf")
	with open(path, "w") as f:
		f.write(conf)
	return path, cafile


def _wait_port(port, proc, logfile, timeout=20.0):
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		if proc.poll() is not None:
			raise ServerError("dovecot exited (%d) at start:\n%s" %
					  (proc.returncode, _tail(logfile)))
		try:
			with socket.create_connection((HOST, port), timeout=1):
				return
		except OSError:
			time.sleep(0.05)
	raise ServerError("dovecot did not listen on port %d within %.0fs:\n%s"
			  % (port, timeout, _tail(logfile)))


def _tail(path, n=40):
	try:
		with open(path, errors="replace") as f:
			return "".join(f.readlines()[-n:])
	except OSError:
		return "(no log)"


def _spawn(d, conf, ports):
	binary = dovecot_binary()
	if binary is None:
		raise ServerError("dovecot not found (run scripts/install-deps)")
	out = open(os.path.join(d, "dovecot.stdout"), "ab")
	proc = subprocess.Popen([binary, "-F", "-c", conf],
				stdin=subprocess.DEVNULL, stdout=out,
				stderr=subprocess.STDOUT, start_new_session=True)
	out.close()
	try:
		for p in ports:
			_wait_port(p, proc, os.path.join(d, "dovecot.log"))
	except BaseException:
		_kill(proc.pid)
		raise
	return proc


def _kill(pid, timeout=15.0):
	try:
		os.kill(pid, signal.SIGTERM)
	except ProcessLookupError:
		return
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		try:
			# Reap it when it is our child; else poll for it.
			r, _ = os.waitpid(pid, os.WNOHANG)
			if r == pid:
				return
		except ChildProcessError:
			try:
				os.kill(pid, 0)
			except ProcessLookupError:
				return
		time.sleep(0.05)
	try:
		os.kill(pid, signal.SIGKILL)
		os.waitpid(pid, 0)
	except (ProcessLookupError, ChildProcessError):
		pass


def ssl_context(cafile):
	return ssl.create_default_context(cafile=cafile)


def connect(info, user, tls="imaps"):
	"""An imaplib connection logged in as USER (implicit TLS by default,
	tls="starttls" for the STARTTLS port)."""
	ctx = ssl_context(info["cafile"])
	if tls == "imaps":
		c = imaplib.IMAP4_SSL(info["host"], info["imaps_port"],
				      ssl_context=ctx, timeout=30)
	else:
		c = imaplib.IMAP4(info["host"], info["imap_port"], timeout=30)
		c.starttls(ssl_context=ctx)
	c.login(user, info["password"])
	return c


def _probe_capabilities(info):
	c = connect(info, "capsprobe")
	try:
		typ, data = c.capability()
		return data[0].decode().split()
	finally:
		c.logout()


def start(d, drop_caps=None, quota=None, tokeninfo_url=None,
	  oauth_mechanisms=OAUTH_MECHANISMS, compress=False):
	"""Start a server under directory D (created if needed).  drop_caps:
	capability names not to advertise after login (e.g. ["MOVE"],
	["MOVE", "UIDPLUS"]).  quota: every user's limits, as
	{"storage": "10M", "messages": 100} (see _quota_config).
	tokeninfo_url: also take OAuth 2.0 logins (oauth_mechanisms), their
	tokens checked there (see _oauth_config).  compress: offer
	COMPRESS=DEFLATE.  Returns
	the server info dict, also written
	to D/server.json."""
	d = os.path.abspath(d)
	os.makedirs(d, exist_ok=True)
	if os.path.exists(os.path.join(d, "server.json")):
		old = load(d)
		if old and _alive(old["pid"]):
			raise ServerError("a server already runs for %s (pid %d)"
					  % (d, old["pid"]))
	imaps_port, imap_port = _two_free_ports()
	conf, cafile = write_config(d, imaps_port, imap_port, quota=quota,
				    tokeninfo_url=tokeninfo_url,
				    oauth_mechanisms=oauth_mechanisms,
				    compress=compress)
	proc = _spawn(d, conf, (imaps_port, imap_port))
	info = {
		"pid": proc.pid,
		"host": HOST,
		"imaps_port": imaps_port,
		"imap_port": imap_port,
		"cafile": cafile,
		"password": PASSWORD,
		"separator": SEPARATOR,
		"dir": d,
		"log": os.path.join(d, "dovecot.log"),
		"capabilities": None,
	}
	if drop_caps:
		# Dovecot can only replace the whole capability list: learn
		# the default one, then restart with it minus drop_caps.
		try:
			caps = _probe_capabilities(info)
		finally:
			_kill(proc.pid)
		drop = {c.upper() for c in drop_caps}
		caps = [c for c in caps if c.upper() not in drop and
			not c.upper().startswith("AUTH=") and
			c.upper() not in ("LOGINDISABLED", "STARTTLS")]
		conf, cafile = write_config(d, imaps_port, imap_port,
					    capability=" ".join(caps),
					    quota=quota,
					    tokeninfo_url=tokeninfo_url,
					    oauth_mechanisms=oauth_mechanisms,
					    compress=compress)
		proc = _spawn(d, conf, (imaps_port, imap_port))
		info["pid"] = proc.pid
		info["capabilities"] = caps
	# Keep a Popen reference from complaining when we stop it later.
	proc.returncode = None
	with open(os.path.join(d, "server.json"), "w") as f:
		json.dump(info, f, indent=1)
	return info


def load(d):
	try:
		with open(os.path.join(os.path.abspath(d), "server.json")) as f:
			return json.load(f)
	except (OSError, ValueError):
		return None


def _alive(pid):
	try:
		os.kill(pid, 0)
		return True
	except ProcessLookupError:
		return False
	except PermissionError:
		return True


def doveadm(info, *args, check=True):
	"""Run doveadm against the server INFO (e.g. doveadm(info, "kick",
	"alice")); returns the CompletedProcess."""
	binary = shutil.which("doveadm") or "/usr/bin/doveadm"
	p = subprocess.run([binary, "-c", os.path.join(info["dir"],
						       "dovecot.conf")]
			   + list(args), stdout=subprocess.PIPE,
			   stderr=subprocess.PIPE)
	if check and p.returncode != 0:
		raise ServerError("doveadm %s failed (%d): %s" %
				  (" ".join(args), p.returncode,
				   p.stderr.decode(errors="replace")))
	return p


def end_sessions(info):
	"""Ends the IMAP sessions of the server INFO that outlived its
	master (stop() leaves them running): the processes its instance
	name marks as its imap processes."""
	mark = ("dovecot-imapfs-test-%d/imap" % info["imaps_port"]).encode()
	for pid in os.listdir("/proc"):
		if not pid.isdigit():
			continue
		try:
			with open("/proc/%s/cmdline" % pid, "rb") as f:
				cmd = f.read()
		except OSError:
			continue
		if cmd.startswith(mark) and cmd[len(mark):len(mark) + 1] in \
				(b"", b"\0", b" "):
			try:
				os.kill(int(pid), signal.SIGTERM)
			except ProcessLookupError:
				pass


def stop(d):
	"""Stop the server whose PID D/server.json names, and wait for it."""
	info = load(d)
	if not info:
		return False
	_kill(info["pid"])
	try:
		os.unlink(os.path.join(os.path.abspath(d), "server.json"))
	except OSError:
		pass
	return True

"""-o auth=oauth2: logging in with an OAuth 2.0 access token (OAUTHBEARER,
else XOAUTH2) that the password command prints, against a Dovecot that
checks each token at a token endpoint played here (a small HTTP server
on 127.0.0.1 that knows which token belongs to whom)."""

import http.server
import json
import os
import shutil
import tempfile
import threading
import urllib.parse

import pytest

import conftest
import imapfs_testserver as ts
from writehelpers import wait_until


class TokenEndpoint:
	"""GET /tokeninfo?access_token=T -> {"username": user, "active":
	"true"} for a known token, else 401. Records the tokens asked."""

	def __init__(self):
		self.tokens = {}
		self.asked = []
		self.lock = threading.Lock()
		endpoint = self

		class Handler(http.server.BaseHTTPRequestHandler):
			def do_GET(self):
				q = urllib.parse.urlparse(self.path).query
				tok = urllib.parse.parse_qs(q).get(
					"access_token", [""])[0]
				with endpoint.lock:
					endpoint.asked.append(tok)
					user = endpoint.tokens.get(tok)
				if user:
					code, body = 200, {"username": user,
							   "active": "true"}
				else:
					code, body = 401, {"error":
							   "invalid_token"}
				data = json.dumps(body).encode()
				self.send_response(code)
				self.send_header("Content-Type",
						 "application/json")
				self.send_header("Content-Length",
						 str(len(data)))
				self.end_headers()
				self.wfile.write(data)

			def log_message(self, *args):
				pass

		self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
							     Handler)
		self.url = "http://127.0.0.1:%d/tokeninfo?access_token=" % \
			self.httpd.server_address[1]
		self.thread = threading.Thread(target=self.httpd.serve_forever,
					       daemon=True)
		self.thread.start()

	def grant(self, token, user):
		with self.lock:
			self.tokens[token] = user

	def revoke(self, token):
		with self.lock:
			self.tokens.pop(token, None)

	def stop(self):
		self.httpd.shutdown()
		self.httpd.server_close()


@pytest.fixture(scope="module")
def endpoint():
	e = TokenEndpoint()
	yield e
	e.stop()


def _server(endpoint, mechanisms):
	if ts.dovecot_binary() is None:
		pytest.skip("dovecot is not installed")
	d = tempfile.mkdtemp(prefix="imapfs-dovecot-")
	try:
		yield ts.start(d, tokeninfo_url=endpoint.url,
			       oauth_mechanisms=mechanisms)
	finally:
		ts.stop(d)
		shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def oauth_server(endpoint):
	yield from _server(endpoint, ("xoauth2", "oauthbearer"))


@pytest.fixture(scope="module")
def xoauth2_server(endpoint):
	yield from _server(endpoint, ("xoauth2",))


@pytest.fixture
def oauth_mounter(oauth_server, tmp_path):
	yield from conftest.mounts_on(oauth_server, tmp_path)


@pytest.fixture
def xoauth2_mounter(xoauth2_server, tmp_path):
	yield from conftest.mounts_on(xoauth2_server, tmp_path)


def token_file(tmp_path, token):
	"""A file the password command cats, as a token helper keeps it."""
	path = tmp_path / "token"
	path.write_text(token + "\n")
	path.chmod(0o600)
	return path


def logins(info, user):
	with open(info["log"], errors="replace") as f:
		return [line for line in f
			if "Login: user=<%s>" % user in line]


def both_logged_in(info, user):
	"""Waits for the mount's two logins (its first connection's and the
	watcher's, which the mount does not wait for): a token changed
	before the watcher's login would race it."""
	assert wait_until(lambda: len(logins(info, user)) >= 2, timeout=20), \
		logins(info, user)


def rotate(path, token):
	"""Writes the token file as a token helper should: whole, at once."""
	tmp = path.with_name(path.name + ".new")
	tmp.write_text(token + "\n")
	tmp.chmod(0o600)
	os.replace(tmp, path)


def check_inbox(m, info, user, n):
	"""INBOX lists n messages whose bytes are the server's."""
	names = sorted(os.listdir(os.path.join(m.path, "INBOX")))
	assert len(names) == n, names
	c = ts.connect(info, user)
	try:
		c.select("INBOX", readonly=True)
		typ, data = c.uid("FETCH", "1", "(BODY.PEEK[])")
		want = data[0][1]
	finally:
		c.logout()
	with open(os.path.join(m.path, "INBOX", names[0]), "rb") as f:
		assert f.read() == want


def test_oauthbearer_login(endpoint, oauth_server, oauth_mounter, tmp_path):
	user = "oauth%d_1" % os.getpid()
	conftest.seed_account(oauth_server, user, {"INBOX": 3})
	endpoint.grant("tok-%s" % user, user)
	path = token_file(tmp_path, "tok-%s" % user)
	m = oauth_mounter.mount(user, debug=True,
				opts=["auth=oauth2", "passcmd=cat %s" % path])
	check_inbox(m, oauth_server, user, 3)
	assert "AUTHENTICATE <hidden>" in m.stderr()  # the wire is traced
	assert any("method=OAUTHBEARER" in line
		   for line in logins(oauth_server, user))
	assert "tok-%s" % user not in m.stderr()


def test_xoauth2_where_the_server_offers_only_that(endpoint, xoauth2_server,
						   xoauth2_mounter, tmp_path):
	user = "oauth%d_2" % os.getpid()
	conftest.seed_account(xoauth2_server, user, {"INBOX": 2})
	endpoint.grant("tok-%s" % user, user)
	path = token_file(tmp_path, "tok-%s" % user)
	m = xoauth2_mounter.mount(user, opts=["auth=oauth2",
					      "passfile=%s" % path])
	check_inbox(m, xoauth2_server, user, 2)
	methods = [line.split("method=")[1].split(",")[0]
		   for line in logins(xoauth2_server, user)]
	assert "XOAUTH2" in methods and "OAUTHBEARER" not in methods, methods


def test_each_login_takes_a_fresh_token(endpoint, oauth_server,
					oauth_mounter, tmp_path):
	"""The token expires while mounted: the next login runs the command
	again and uses the one it prints now."""
	user = "oauth%d_3" % os.getpid()
	conftest.seed_account(oauth_server, user, {"INBOX": 2})
	endpoint.grant("old-%s" % user, user)
	path = token_file(tmp_path, "old-%s" % user)
	m = oauth_mounter.mount(user, opts=["auth=oauth2", "list_ttl=1",
					    "passcmd=cat %s" % path])
	assert len(os.listdir(os.path.join(m.path, "INBOX"))) == 2
	both_logged_in(oauth_server, user)
	endpoint.grant("new-%s" % user, user)
	rotate(path, "new-%s" % user)
	endpoint.revoke("old-%s" % user)
	before = len(logins(oauth_server, user))
	ts.doveadm(oauth_server, "kick", user)
	c = ts.connect(oauth_server, user)
	try:
		conftest.sm.append(c, "INBOX", conftest.sm.make_messages(9, 1)[0])
	finally:
		c.logout()
	assert wait_until(lambda: len(os.listdir(
		os.path.join(m.path, "INBOX"))) == 3, timeout=20), m.stderr()
	assert len(logins(oauth_server, user)) > before
	assert "new-%s" % user in endpoint.asked


def test_a_refused_token_is_reported_and_nothing_mounted(
		endpoint, oauth_server, oauth_mounter, tmp_path):
	user = "oauth%d_4" % os.getpid()
	path = token_file(tmp_path, "never-granted")
	argv = oauth_mounter.argv(user, opts=["auth=oauth2",
					      "passcmd=cat %s" % path])
	argv.append(oauth_mounter.new_dir("mnt"))
	rc, err = conftest.run_imapfs_expect_failure(argv, "unused")
	# Dovecot says [UNAVAILABLE] when its check of the token did not
	# complete (seen once on a loaded machine): not what is tested here.
	if "[UNAVAILABLE]" in err:
		rc, err = conftest.run_imapfs_expect_failure(argv, "unused")
	assert rc != 0
	assert "OAuth 2.0 login (OAUTHBEARER) as %s" % user in err, err
	assert "invalid_token" in err, err
	assert "fresh access token" in err, err
	assert "never-granted" not in err, err


def test_a_refused_token_is_not_tried_again_and_again(endpoint, oauth_server,
						     oauth_mounter, tmp_path):
	"""The token is revoked while mounted and the helper has no other:
	one login and one more with a token asked for again, then none for
	minutes, however much the user does meanwhile (servers lock an
	account, or ban an address, for a stream of failed logins). What was
	listed still shows."""
	import time
	user = "oauth%d_5" % os.getpid()
	conftest.seed_account(oauth_server, user, {"INBOX": 2})
	endpoint.grant("gone-%s" % user, user)
	path = token_file(tmp_path, "gone-%s" % user)
	m = oauth_mounter.mount(user, opts=["auth=oauth2", "list_ttl=1",
					    "passfile=%s" % path])
	inbox = os.path.join(m.path, "INBOX")
	assert len(os.listdir(inbox)) == 2
	both_logged_in(oauth_server, user)
	asked = len(endpoint.asked)
	endpoint.revoke("gone-%s" % user)
	ts.doveadm(oauth_server, "kick", user)
	assert wait_until(lambda: "no new login for 2 minutes" in m.stderr(),
			  timeout=20), m.stderr()
	for _ in range(8):
		time.sleep(0.5)
		assert len(os.listdir(inbox)) == 2
		os.listdir(m.path)
	assert len(endpoint.asked) - asked <= 2, endpoint.asked[asked:]
	assert "no new login to 127.0.0.1 before" in m.stderr()

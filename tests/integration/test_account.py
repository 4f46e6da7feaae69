"""The per-test account mounted with one and with four connections."""

import os

from conftest import ACCOUNT_TREE, file_sha256, sha256


def test_account_mailbox_files_match_witness(mnt, imap):
	for mbox, n in ACCOUNT_TREE.items():
		recs = imap.messages(mbox)
		assert len(recs) == n
		assert sorted(os.listdir(os.path.join(mnt.path, mbox))) == \
			[r["name"] for r in recs]


def test_account_bytes_match_witness(mnt, imap):
	for rec in imap.messages("INBOX"):
		p = os.path.join(mnt.path, "INBOX", rec["name"])
		assert file_sha256(p) == sha256(imap.body("INBOX", rec["uid"]))

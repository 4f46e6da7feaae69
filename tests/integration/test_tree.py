"""The directory tree: mailboxes as directories, messages as files, their
names, sizes and times, all checked against the server (the witness)."""

import os
import stat

import pytest

from conftest import SEED_TREE, sm, walk_tree


@pytest.fixture(scope="module")
def mnt(seeded, module_mounter):
	return module_mounter.mount(seeded["user"], max_conns=4)


@pytest.fixture
def w(seeded, witness):
	return witness(seeded["user"])


def test_directories_equal_list(mnt, w):
	dirs, _ = walk_tree(mnt.path)
	assert dirs == set(w.expected_dirs())


def test_non_ascii_mailbox_names_are_decoded(mnt):
	names = os.listdir(mnt.path)
	assert "Entwürfe" in names
	assert "日本語" in names
	assert not [n for n in names if "&" in n and "-" in n]


def test_percent_in_mailbox_name_is_escaped(mnt):
	assert "100%25 done" in os.listdir(mnt.path)


def test_slash_in_mailbox_name_is_escaped(mnt):
	assert "a%2Fb" in os.listdir(mnt.path)
	files = os.listdir(os.path.join(mnt.path, "a%2Fb"))
	assert len(files) == SEED_TREE["a/b"]


def test_noselect_parents_are_directories_with_only_children(mnt, w):
	for rel, child in (("Archive", "2023"), ("x", "y"), ("x/y", "z")):
		p = os.path.join(mnt.path, rel)
		assert stat.S_ISDIR(os.stat(p).st_mode)
		assert os.listdir(p) == [child]


def test_empty_mailbox_is_empty_directory(mnt):
	p = os.path.join(mnt.path, "Empty")
	assert stat.S_ISDIR(os.stat(p).st_mode)
	assert os.listdir(p) == []


def test_special_use_mailboxes_are_listed(mnt):
	names = set(os.listdir(mnt.path))
	assert {"INBOX", "Trash", "Sent", "Drafts", "Junk"} <= names


def test_selectable_parent_has_messages_and_child(mnt):
	names = os.listdir(os.path.join(mnt.path, "Projects"))
	assert "imapfs" in names
	assert len([n for n in names if n.endswith(".eml")]) == \
		SEED_TREE["Projects"]


def test_one_file_per_message_with_expected_names(mnt, w):
	_, files = walk_tree(mnt.path)
	assert files == set(w.expected_files())


def test_file_names_sort_in_uid_order(mnt, w):
	names = sorted(os.listdir(os.path.join(mnt.path, "INBOX")))
	uids = [int(n[:10]) for n in names]
	assert uids == [r["uid"] for r in w.messages("INBOX")]


def test_sizes_equal_rfc822_size(mnt, w):
	for rel, (mbox, rec) in w.expected_files().items():
		st = os.stat(os.path.join(mnt.path, rel))
		assert st.st_size == rec["size"], rel


def test_mtimes_equal_internaldate(mnt, w):
	for rel, (mbox, rec) in w.expected_files().items():
		st = os.stat(os.path.join(mnt.path, rel))
		assert int(st.st_mtime) == rec["mtime"], \
			(rel, rec["internaldate"])


def test_messages_are_regular_read_only_files(mnt, w):
	for rel in w.expected_files():
		st = os.stat(os.path.join(mnt.path, rel))
		assert stat.S_ISREG(st.st_mode), rel
		assert st.st_mode & 0o444, rel


def test_readdir_and_stat_agree(mnt):
	inbox = os.path.join(mnt.path, "INBOX")
	with os.scandir(inbox) as it:
		for e in it:
			assert e.is_file()
			assert e.stat().st_size == \
				os.stat(os.path.join(inbox, e.name)).st_size


def test_missing_names_give_enoent(mnt):
	for rel in ("NoSuchMailbox", "INBOX/0000000999-nope.eml",
		    "INBOX/0000000001-Wrong_subject.eml", "INBOX/junk"):
		assert not os.path.exists(os.path.join(mnt.path, rel)), rel


def test_inode_numbers_are_stable(mnt):
	inbox = os.path.join(mnt.path, "INBOX")
	first = {n: os.stat(os.path.join(inbox, n)).st_ino
		 for n in os.listdir(inbox)}
	again = {n: os.stat(os.path.join(inbox, n)).st_ino
		 for n in os.listdir(inbox)}
	assert first == again
	assert len(set(first.values())) == len(first)

"""Reading, grepping, backing up and reading xattrs never set \\Seen."""

import os
import subprocess

from conftest import seed_account, walk_tree


def test_reads_never_set_seen(server, new_user, mounter, witness,
			      tmp_path):
	user = new_user("seen")
	tree = {"INBOX": 12, "Other": 6}
	seed_account(server, user, tree, seed=5)
	w = witness(user)
	before = {mb: w.all_flags(mb) for mb in tree}
	# Both kinds are there to begin with.
	flat = [f for mb in before.values() for f in mb.values()]
	assert any("\\Seen" in f for f in flat)
	assert any("\\Seen" not in f for f in flat)

	m = mounter.mount(user, max_conns=2)
	_, files = walk_tree(m.path)
	assert files
	for rel in sorted(files):
		p = os.path.join(m.path, rel)
		with open(p, "rb") as f:
			f.read()
		with open(p, "rb") as f:
			f.seek(100)
			f.read(50)
		os.listxattr(p)
		os.getxattr(p, "user.imap.flags")
	subprocess.run(["grep", "-rq", "anything-at-all", m.path],
		       timeout=120)
	subprocess.run(["rsync", "-a", m.path + "/", str(tmp_path / "c")],
		       check=True, timeout=300)
	problems = mounter.unmount(m)
	assert not problems, "\n".join(problems)

	after = {mb: witness(user).all_flags(mb) for mb in tree}
	assert after == before

"""The fsmonitor token in the mount's index is the agent's to write: a confined command's
git writes that index, so the token the person's next `git status` relays to the mount's
daemon is chosen by the agent. The daemon answers git's tokens and, over the same socket,
two questions of avfs's own (`avfs-persons`, a gate's; `avfs-writers`, the open writers of
a pure-FUSE mount): where such a question came from git, its answer was taken by git as
"nothing changed but these" (`avfs-persons` alone; the writers' file ids as paths), and
echoed back at every status after, so the person's own changes never showed in `git
status` nor went into `git commit -a` (found by the thirty-fifth round's review, review38,
for `avfs-persons`; `avfs-writers` beside it). A pure-FUSE mount's token dated past its
journal's end (its last field, the journal's sequence number, raised) was answered the
same: nothing since. Each now gets "everything may have changed" (a full scan by git,
never a wrong answer).

Each planted inside a real confined `proxy exec` (Python rewriting the index's `FSMN`
extension and its checksum, as any program of the agent's can), then the person changes a
file through the mount and runs plain `git status`: the change is listed."""

from __future__ import annotations

import os

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.proxy.envelope import ExecRequest
from avfs_git.proxy.execute import execute

from .test_adv_mountfiles import Scene, _index_token
from .test_adv_mountfiles import scene as scene

PLANT = r"""
import hashlib, struct, subprocess, sys
gd = subprocess.run(["git", "rev-parse", "--git-dir"], capture_output=True, text=True).stdout.strip()
subprocess.run(["git", "status", "--porcelain"], capture_output=True)  # (a token written)
path = gd + "/index"
with open(path, "rb") as fh:
    data = fh.read()[:-20]
at = data.rfind(b"FSMN")
size = struct.unpack(">I", data[at + 4 : at + 8])[0]
body = data[at + 8 : at + 8 + size]
end = body.index(b"\0", 4)
old = body[4:end].decode()
want = sys.argv[1]
new = ":".join(old.split(":")[:-1] + ["999999999"]) if want == "FUTURE" else want
nb = body[:4] + new.encode() + b"\0" + body[end + 1 :]
data = data[:at] + b"FSMN" + struct.pack(">I", len(nb)) + nb + data[at + 8 + size :]
with open(path, "wb") as fh:
    fh.write(data + hashlib.sha1(data).digest())
print("planted", old, "->", new)
"""


@pytest.mark.parametrize("scene", ["overlay", "fuse"], indirect=True)
@pytest.mark.parametrize("token", ["avfs-persons", "avfs-writers", "FUTURE"])
def test_a_token_the_agent_planted_hides_no_change_from_the_person_s_git_status(
    scene: Scene, token: str
) -> None:
    scene.vault.workspace("main").write("plant.py", PLANT.encode())
    checkpoint.save(scene.vault, "main", message="the agent's script")  # (the run changes nothing)
    scene.git("status", "--porcelain")  # (the person's index, with the daemon's token)
    res = execute(scene.home, scene.vault, "main", ExecRequest(argv=("python3", "plant.py", token)))
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    assert "planted" in res.result.stdout, res.to_dict()
    if token != "FUTURE":  # (the index the person's git reads holds the agent's token)
        assert _index_token(os.path.join(scene.git_dir, "index")) == token
    (scene.mp / "a.txt").write_text("changed by the person after the run\n")
    first = scene.git("status", "--porcelain").stdout
    assert " M a.txt" in first, first
    (scene.mp / "README").write_text("changed again\n")
    second = scene.git("status", "--porcelain").stdout  # (the token the first answer left)
    assert " M a.txt" in second and " M README" in second, second

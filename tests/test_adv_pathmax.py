"""A tree deeper than the host's paths reach, made by a confined command in its mount
(docs/security.md, "What the sandbox does not stop"; the eighteenth round, NAME=attack9).

The kernel's overlay makes it one directory at a time, each relative to the last (17
levels of 250-byte names: 4,279 bytes, past ``PATH_MAX`` once under the upper layer's
host directory). avfs's reader of the upper layer stats each entry by its host path, got
``ENAMETOOLONG``, and the exec's commit recorded nothing of the run, and every later
`avfs status` and checkpoint of the fork failed (exit 70, internal) until the person found
the tree and removed it. Now such a tree is one entry not recorded (``path_too_long``,
as a fifo is), said in ``not_recorded``; the rest of the run is the fork's. (The pure-FUSE
mount refuses it: the command's ``mkdir`` fails with ``ENAMETOOLONG``.)
"""

from __future__ import annotations

import json
from pathlib import Path

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .test_adv_mountfiles import Scene
from .test_adv_mountfiles import scene as scene

NAME = "n" * 250
SCRIPT = f"""
echo kept > ok.txt
python3 - <<'PY'
import os
os.makedirs("deep")
os.chdir("deep")
try:
    for _ in range(17):
        os.mkdir("{NAME}")
        os.chdir("{NAME}")
    open("f.txt", "w").write("bottom\\n")
    print("made", len(os.getcwd()))
except OSError as exc:
    print("refused", exc.errno)
PY
"""


def test_a_tree_past_path_max_wedges_no_status_or_checkpoint(scene: Scene, tmp_path: Path) -> None:
    res = scene.attack(SCRIPT)
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    made = res.result.stdout.startswith("made")
    doc = res.to_dict()
    assert "ok.txt" in {c["path"] for c in doc["changes"]}, doc  # the run's other work is the fork's
    ws = scene.vault.workspace("main")
    assert ws.read("ok.txt") == b"kept\n"
    if made:  # the overlay: one entry, said
        said = [n for n in doc["not_recorded"] if n["kind"] == "path_too_long"]
        assert len(said) == 1 and said[0]["path"].startswith("deep/" + NAME + "/"), doc["not_recorded"]
    # the person's avfs status and checkpoints work (before: exit 70, internal)
    spec = ["--home", scene.home.path, "--vault", "v:main"]
    ws.status_report()
    got = scene.cli(*spec, "--json", "status")
    assert got.code == 0, got.out
    assert json.loads(got.out)["kind"] == "status"
    if made:  # what the person reviews names the tree (before: "clean", nothing said)
        _status_names_the_tree(scene, spec)
    ws.write("after.txt", b"after\n")
    done = checkpoint.save(scene.vault, "main", message="the person's")
    assert done.checkpoint.changes >= 1
    assert scene.git("status", "--porcelain").returncode == 0
    backend = "overlay" if made else "fuse"
    mounts.unmount(scene.home, scene.vault, "main")
    assert scene.vault.workspace("main").read("after.txt") == b"after\n"
    mounts.mount(scene.home, scene.vault, "main", str(scene.mp), backend=backend)
    scene.vault.workspace("main").status_report()
    if made:  # the next mount holds it still (the upper layer is kept), and says so
        _status_names_the_tree(scene, spec)
        restored = scene.cli(*spec, "--json", "checkpoint", "restore", "base")
        assert restored.code == 0, restored.out
        _status_names_the_tree(scene, spec)  # a restore leaves it, as it leaves a fifo
    scene.person_acts("deep")


def _status_names_the_tree(scene: Scene, spec: list[str]) -> None:
    """`avfs status` (JSON and text) names the tree no checkpoint records: found in the
    nineteenth round (NAME=attack10), it said "clean" while the fork held the command's
    files there (and the person's plain `git status` only warns on stderr), through a
    restore and the next mount, for every later command of the agent to read."""
    doc = json.loads(scene.cli(*spec, "--json", "status").out)
    said = [n for n in doc["not_recorded"] if n["kind"] == "path_too_long"]
    assert len(said) == 1 and said[0]["path"].startswith("deep/" + NAME + "/"), doc
    text = scene.cli(*spec, "status")
    assert "not recorded: deep/" in text.out, text.out


GIT_DIR_SCRIPT = f"""
python3 - "$(git rev-parse --git-dir)" <<'PY'
import os, sys
os.chdir(sys.argv[1])
for _ in range(20):
    os.mkdir("{NAME}")
    os.chdir("{NAME}")
open("big", "wb").write(b"x" * (1 << 20))
print("made", len(os.getcwd()))
PY
"""


def test_a_tree_past_path_max_in_the_git_dir_wedges_no_exec_and_is_counted(scene: Scene) -> None:
    """The same tree in the fork's worktree git dir (writable in the sandbox, on both
    backends), 1 MiB at its bottom: the quota's count of the git dirs walked it by path,
    and the exec's commit and every later exec and `avfs quota show` of the vault failed
    (exit 70) until the person found it. Now it is counted, 1 MiB and all."""
    res = scene.attack(GIT_DIR_SCRIPT)
    assert res.result is not None and res.result.stdout.startswith("made"), res.to_dict()
    doc = res.to_dict()
    assert doc["error"] is None and res.success, doc
    spec = ["--home", scene.home.path, "--vault", "v:main"]
    got = scene.cli(*spec, "--json", "quota", "show")
    assert got.code == 0, got.out
    assert json.loads(got.out)["git_dirs_bytes"] >= 1 << 20, got.out
    assert json.loads(scene.cli(*spec, "--json", "status").out)["clean"]  # the exec committed
    scene.person_acts("git-dir")

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
import os
from pathlib import Path
from typing import Any

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import deeptree
from avfs_git.ops import mounts
from avfs_git.proxy.envelope import ExecRequest
from avfs_git.proxy.execute import execute

from .test_adv_gitseal import _avfs, _git, _script
from .test_adv_mountfiles import Scene
from .test_adv_mountfiles import scene as scene
from .test_overlay import require_overlay

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


# past Python's recursion limit from any stack (tests/test_adv_deep.py's DEPTH: a chain of
# 1,000 raises from a bare script's top level); 1,200 until the thirty-second round
PAST_RECURSION = 1_050
SCRATCH_DEEP = f"""
G="$(git rev-parse --git-dir)"; C="$(git rev-parse --git-common-dir)"
O="$(git rev-parse --git-path objects)"
python3 - "$G/logs" "$G/refs" "$C/refs" "$C/logs" "$O" <<'PY'
import os, sys
for top in sys.argv[1:]:
    os.chdir(top)
    os.mkdir("deep")
    os.chdir("deep")
    for _ in range({PAST_RECURSION}):
        os.mkdir("d")
        os.chdir("d")
    print("made", len(os.getcwd()))
PY
rm -f "$G/index"  # and the index a directory as deep
python3 - "$G" <<'PY'
import os, sys
os.chdir(sys.argv[1])
os.mkdir("index")
os.chdir("index")
for _ in range({PAST_RECURSION}):
    os.mkdir("d")
    os.chdir("d")
print("made", len(os.getcwd()))
PY
"""


def test_a_tree_past_python_s_recursion_limit_in_the_run_s_scratch_wedges_no_exec(scene: Scene) -> None:
    """Past 1,000 levels of directories in each place of the seal's scratch the sandbox writes
    (the worktree's `logs/` and `refs/`, the vault's `refs/` and `logs/` as it sees them,
    the object quarantine), and the worktree's `index` made a directory as deep. Found in
    the nineteenth round (NAME=attack10): the carry-back's walk of the scratch (Python
    3.11's `os.walk`, `shutil.rmtree`: one call deeper a level) raised `RecursionError`, and
    that run and every later exec of the fork failed `internal` (exit 70) until the person
    found the trees under `<vault>/avfs/seal/`; the index's removal the same, after which
    every exec failed `unusable_path` and the person's `git status` exited 128."""
    try:
        res = scene.attack(SCRATCH_DEEP)
        assert res.result is not None and res.result.stdout.count("made") == 6, res.to_dict()
        doc = res.to_dict()
        assert doc["error"] is None and res.success, doc
        nxt = execute(scene.home, scene.vault, "main", ExecRequest(argv=("true",)))
        assert nxt.success, nxt.to_dict()
        scene.person_acts("scratch")
    finally:  # (pytest's own clean-up recurses: a failure would leave the trees to it)
        deeptree.rmtree(os.path.join(scene.vault.state_dir, "seal"), ignore_errors=True)
        if os.path.isdir(os.path.join(scene.git_dir, "index")):
            deeptree.rmtree(os.path.join(scene.git_dir, "index"), ignore_errors=True)


DEEP_DOTGIT = f"""rm -rf lib/sub && python3 - <<'PY'
import os
os.makedirs("lib/sub/.git")
os.chdir("lib/sub/.git")
for _ in range({PAST_RECURSION}):
    os.mkdir("d")
    os.chdir("d")
print("made")
PY
"""


def test_a_deep_git_dir_at_a_submodule_s_path_fails_no_run(home: Any, vault: Any, tmp_path: Path) -> None:
    """A `.git` directory past 1,000 levels deep made at a submodule's path (a gitlink of the
    fork's commit), which the carry-back removes (git would take a repository there for the
    submodule's). Found in the nineteenth round (NAME=attack10): its removal
    (`shutil.rmtree`, one call deeper a level) raised `RecursionError` and the run's
    envelope was an internal error (exit 70) in place of its result."""
    require_overlay()
    vault.workspace("main").write("README", b"x\n")
    checkpoint.save(vault, name="base")
    clone = tmp_path / "clone"
    _git("clone", "-q", vault.path, str(clone))
    tip = _git("rev-parse", "HEAD", cwd=clone).strip()
    _git("update-index", "--add", "--cacheinfo", f"160000,{tip},lib/sub", cwd=clone)
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", "a submodule", cwd=clone)
    _git("push", "-q", "origin", "HEAD:main", cwd=clone)
    info = mounts.mount(home, vault, "main", None, backend="overlay")
    dotgit = os.path.join(info.mountpoint, "lib", "sub", ".git")
    try:
        _script(info, "attack.sh", DEEP_DOTGIT)
        doc = json.loads(_avfs("--json", "proxy", "exec", "--no-commit", "--", "sh", "attack.sh").stdout)
        assert doc["error"] is None and doc["result"]["stdout"] == "made\n", json.dumps(doc)[:2000]
        assert ("lib/sub", "gitlink") in {(n["path"], n["kind"]) for n in doc["not_recorded"]}, doc
        assert not os.path.lexists(dotgit)
    finally:
        if os.path.isdir(dotgit):
            deeptree.rmtree(dotgit, ignore_errors=True)
        mounts.unmount(home, vault, "main", lazy=True)


def test_an_exec_that_commits_nothing_names_the_tree_past_path_max(scene: Scene) -> None:
    """`--no-commit` (and any run whose changes are not committed: over the quota, in a
    merge): the envelope's ``not_recorded`` was always empty (it came from the checkpoint the
    run took), so a tree past ``PATH_MAX`` the command made was in no part of it, ``changes``
    cannot read it, while `avfs status` named it (attack11's "empty once")."""
    res = scene.attack(SCRIPT, commit=False)
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    doc = res.to_dict()
    assert doc["commit"] is None and "ok.txt" in {c["path"] for c in doc["changes"]}, doc
    if res.result.stdout.startswith("made"):  # the overlay
        said = [n for n in doc["not_recorded"] if n["kind"] == "path_too_long"]
        assert len(said) == 1 and said[0]["path"].startswith("deep/" + NAME + "/"), doc["not_recorded"]
        _status_names_the_tree(scene, ["--home", scene.home.path, "--vault", "v:main"])

"""A fork's path policy against the command's own git (the thirtieth round, NAME=attack21).

The rules hold in the kernel's path of a mount: a confined command's ``echo >
migrations/0001.sql`` is refused (``EROFS``). But git in the sandbox makes a commit without
writing the work tree: ``git update-index --cacheinfo`` of a blob it wrote (or
``--force-remove``), then ``git commit``, writes only the index, objects and the branch; the
carry-back took that move of the fork's branch: the read-only file changed on the fork's
branch, a hidden one was removed, an append-only log rewritten. And the index it left
staged the change for the person's next `git commit` in the mount.

Each from inside a real confined `proxy exec` in a real mount (overlay, which takes
read-only rules, and pure FUSE, which takes every kind), then what the person has: the
fork's branch, their `git status` and `git commit -a` in the mount, `avfs status`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .test_confine import _need_bwrap
from .test_fuse import require_fuse
from .test_overlay import require_overlay
from .test_pathpolicy import protect, tree_of
from .waitingexec import exec_argv

FILES = {
    "src/app.py": b"print('app')\n",
    "migrations/0001.sql": b"create table t;\n",
    ".env": b"TOKEN=s3cret\n",
    "logs/app.log": b"line 1\n",
}
ALL_KINDS = """version = 1
[paths]
read_only   = ["migrations/**"]
hidden      = [".env"]
append_only = ["logs/*.log"]
"""
READ_ONLY = """version = 1
[paths]
read_only   = ["migrations/**", ".env", "logs/*.log"]
"""

# the command's git: one protected change through the index alone, then a commit
_STAGE = """set -u
blob=$(printf '%s' "$2" | git hash-object -w --stdin)
git update-index --cacheinfo "100644,$blob,$1" || exit 9
git -c user.name=A -c user.email=a@x commit -qm "by the agent" || exit 8
echo committed
"""
_REMOVE = """set -u
git update-index --force-remove -- "$1" || exit 9
git -c user.name=A -c user.email=a@x commit -qm "by the agent" || exit 8
echo committed
"""


@pytest.fixture(params=["overlay", "fuse"])
def guarded(request: Any, home: Any, vault: Any) -> Iterator[tuple[Any, str, str]]:
    """(vault, backend, mount point): fork ``main`` holding FILES, every path but
    ``src/`` protected (on the overlay backend by read-only rules, which it takes; on
    pure FUSE by each kind), mounted."""
    if request.param == "overlay":
        require_overlay()
    else:
        require_fuse()
    _need_bwrap()
    ws = vault.workspace("main")
    for p, data in FILES.items():
        ws.write(p, data)
    checkpoint.save(vault, "main", message="files")
    protect(vault, READ_ONLY if request.param == "overlay" else ALL_KINDS)
    info = mounts.mount(home, vault, "main", None, backend=request.param)
    assert info.backend == request.param
    try:
        yield vault, request.param, info.mountpoint
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def _run(mp: str, script: str, *args: str) -> dict[str, Any]:
    """``sh SCRIPT ARGS`` through a real confined `proxy exec` in the mount: its envelope."""
    Path(mp, "agent.sh").write_text(script)
    got = subprocess.run([*exec_argv(), "--", "sh", "agent.sh", *args], capture_output=True, timeout=300)
    doc: dict[str, Any] = json.loads(got.stdout)
    assert doc["confinement"]["kind"] == "bwrap", doc["confinement"]
    assert doc["result"] is not None and doc["result"]["exit_code"] == 0, doc["result"]
    assert "committed" in doc["result"]["stdout"], doc["result"]
    return doc


def _tree(vault: Any) -> dict[str, bytes]:
    """The fork's committed tree but the command's script (the exec's own commits hold it)."""
    return {p: data for p, data in tree_of(vault).items() if p != "agent.sh"}


def _git(mp: str, *args: str) -> str:
    got = subprocess.run(["git", *args], cwd=mp, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, (args, got.stderr)
    return got.stdout


def test_the_command_s_git_commit_changes_no_protected_path(guarded: Any) -> None:
    """A read-only file rewritten and removed, a hidden file rewritten and removed, an
    append-only log rewritten, each by the command's `git update-index` (``--cacheinfo``,
    ``--force-remove``) and `git commit` (its own write of the file refused): the fork's branch does
    not move (``refs_refused`` names the path and the rule), the index stages nothing of
    it, and the person's `git commit` in the mount then records their change alone.
    An append to the log and a change of ``src/`` the same way are carried, as before."""
    vault, backend, mp = guarded
    attacks: list[tuple[str, tuple[str, ...]]] = [
        (_STAGE, ("migrations/0001.sql", "drop table t;\n")),
        (_REMOVE, ("migrations/0001.sql",)),
        (_STAGE, (".env", "TOKEN=the-agent-s\n")),
        (_REMOVE, (".env",)),
        (_STAGE, ("logs/app.log", "forged\n")),
    ]
    for script, args in attacks:
        doc = _run(mp, script, *args)
        assert doc["branch_moved"] is None, (args, doc["branch_moved"])
        why = [r for r in doc["refs_refused"] if r["ref"] == "refs/heads/main"]
        assert len(why) == 1 and args[0] in why[0]["reason"] and "policy" in why[0]["reason"], doc[
            "refs_refused"
        ]
        # the index the command's commit left no longer stages it for the person
        assert args[0] not in _git(mp, "diff", "--cached", "--name-only", "-z").split("\0"), args
        assert _tree(vault) == FILES, args
    # the person, in the mount: `git status` shows none of it, and their commit of their
    # own change holds that change alone
    with open(os.path.join(mp, "src", "app.py"), "a") as fh:
        fh.write("# by the person\n")
    status = _git(mp, "status", "--porcelain")
    assert "migrations" not in status and ".env" not in status and "logs" not in status, status
    _git(mp, "add", "src/app.py")
    _git(mp, "-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", "by the person")
    assert _git(mp, "log", "-1", "--format=%s").strip() == "by the person"
    changed = _git(mp, "diff-tree", "-r", "--name-only", "--no-commit-id", "HEAD").split()
    assert changed == ["src/app.py"], changed
    assert _tree(vault) == {**FILES, "src/app.py": FILES["src/app.py"] + b"# by the person\n"}
    # what the rules let through is carried as before: an append (pure FUSE; the overlay
    # backend's rule there is read_only), a change of an unprotected file
    doc = _run(mp, _STAGE, "logs/app.log", "line 1\nline 2\n")
    assert (doc["branch_moved"] is not None) == (backend == "fuse"), doc["refs_refused"]
    doc = _run(mp, _STAGE, "src/app.py", "print('agent')\n")
    assert doc["branch_moved"] is not None, doc["refs_refused"]
    got = _tree(vault)
    assert got["src/app.py"] == b"print('agent')\n"
    assert got["logs/app.log"] == (b"line 1\nline 2\n" if backend == "fuse" else FILES["logs/app.log"])
    r = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--vault", "v:main", "status"], capture_output=True, timeout=120
    )
    assert r.returncode == 0, r.stderr


_STAGE_ONLY = """set -u
blob=$(printf '%s' "$2" | git hash-object -w --stdin)
git update-index --cacheinfo "100644,$blob,$1" || exit 9
git update-index --force-remove -- "$3" || exit 8
echo committed
"""


def test_a_protected_change_the_command_stages_is_not_the_person_s_next_commit(guarded: Any) -> None:
    """The command stages a read-only file's rewrite and a hidden (pure FUSE; read-only on
    the overlay backend) file's removal in the mount's index and commits nothing: after
    the run both entries are HEAD's again (``refs_refused`` names them, ``ref: "index"``),
    so the person's `git commit` of their own staged change records that change alone."""
    vault, _backend, mp = guarded
    doc = _run(mp, _STAGE_ONLY, "migrations/0001.sql", "drop table t;\n", ".env")
    said = [r["reason"] for r in doc["refs_refused"] if r["ref"] == "index"]
    assert len(said) == 1 and "migrations/0001.sql" in said[0] and ".env" in said[0], doc["refs_refused"]
    assert _git(mp, "diff", "--cached", "--name-only") == ""
    with open(os.path.join(mp, "src", "app.py"), "a") as fh:
        fh.write("# by the person\n")
    _git(mp, "add", "src/app.py")
    _git(mp, "-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", "by the person")
    assert _git(mp, "diff-tree", "-r", "--name-only", "--no-commit-id", "HEAD").split() == ["src/app.py"]
    assert _tree(vault) == {**FILES, "src/app.py": FILES["src/app.py"] + b"# by the person\n"}

"""A fork's path policy against the command's git commit on a detached ``HEAD`` (the
thirty-first round, attack22: docs/security.md).

The thirtieth round (tests/test_adv_pathcommit.py) held the command's move of the fork's
branch to the fork's rules. A command can instead `git checkout --detach`, stage a
read-only file's rewrite (``git update-index --cacheinfo``: no write of the work tree) and
`git commit`: the branch does not move, and the carry-back set the mount's ``HEAD``
detached at that commit, unchecked. The person's `git status` then says the work tree
differs from ``HEAD`` at the protected file, their `git show HEAD:migrations/0001.sql`
shows the agent's rewrite, and the hint of `avfs checkpoint` (refused while detached),
`git switch -c NAME`, makes a branch (a fork) holding it. Now the detached ``HEAD`` is
checked as the branch's move is: refused (``refs_refused``, ``ref: "HEAD"``), the mount
left on the fork's branch. A detached ``HEAD`` at a change the rules let through is kept,
as before.

From inside a real confined `proxy exec` in a real mount (both backends), then the
person's `git status`, `git show`, `avfs checkpoint save`."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from .test_adv_pathcommit import FILES, _git, _run, _tree, guarded  # noqa: F401 (the fixture)

_DETACHED = """set -u
git checkout -q --detach || exit 7
blob=$(printf '%s' "$2" | git hash-object -w --stdin)
git update-index --cacheinfo "100644,$blob,$1" || exit 9
git -c user.name=A -c user.email=a@x commit -qm "by the agent, detached" || exit 8
echo committed
"""


def _avfs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avfs_git", "--vault", "v:main", "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_detached_head_at_a_protected_change_is_not_left_for_the_person(guarded: Any) -> None:  # noqa: F811
    vault, _backend, mp = guarded
    tip = _git(mp, "rev-parse", "HEAD").strip()
    doc = _run(mp, _DETACHED, "migrations/0001.sql", "drop table t;\n")
    why = [r for r in doc["refs_refused"] if r["ref"] == "HEAD"]
    assert len(why) == 1, doc["refs_refused"]
    assert "migrations/0001.sql" in why[0]["reason"] and "policy" in why[0]["reason"], why
    # the person's git: on the fork's branch, the file as the branch holds it, nothing staged
    assert _git(mp, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert _git(mp, "show", "HEAD:migrations/0001.sql").encode() == FILES["migrations/0001.sql"]
    assert "migrations" not in _git(mp, "status", "--porcelain")
    assert _git(mp, "diff", "--cached", "--name-only") == ""
    assert _tree(vault) == FILES
    # the person's checkpoint (refused while HEAD was detached) records nothing of it
    got = _avfs("checkpoint", "save", "-m", "the person's")
    assert got.returncode == 0, got.stdout + got.stderr
    assert _tree(vault) == FILES
    # what the rules let through, on a detached HEAD, is kept detached as before
    doc = _run(mp, _DETACHED, "src/app.py", "print('agent')\n")
    assert not [r for r in doc["refs_refused"] if r["ref"] == "HEAD"], doc["refs_refused"]
    assert subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=mp).returncode == 1
    assert _git(mp, "rev-parse", "HEAD").strip() != tip
    assert _git(mp, "show", "HEAD:src/app.py") == "print('agent')\n"
    status = json.loads(_avfs("status").stdout)
    assert status["git"]["detached"] == _git(mp, "rev-parse", "HEAD").strip(), status
    _git(mp, "switch", "-q", "--ignore-other-worktrees", "--discard-changes", "main")

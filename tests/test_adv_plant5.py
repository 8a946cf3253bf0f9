"""review38's lower findings, from the attacker's and the person's side (the thirty-sixth
round, plant5; docs/security.md, "Every writer of a fork's tree").

Each plants inside a real confined ``proxy exec`` (or acts as the person does: their
``avfs`` commands, their plain ``git`` in the mount), then looks at what the person's next
step sees or runs. Real mounts (both backends where the code paths differ), real git.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.mount.hookscripts import GIT_HOOKS, HOOKS_DIR
from avfs_git.mount.personhooks import GATES_DIR
from avfs_git.proxy.envelope import ExecRequest
from avfs_git.proxy.execute import execute

from .test_adv_mountfiles import Scene
from .test_adv_mountfiles import scene as scene


def _locks(vault: Any) -> list[str]:
    return sorted(os.listdir(os.path.join(vault.state_dir, "locks")))


def test_a_refused_undo_of_a_deleted_fork_s_operation_leaves_no_lock_files(home: Any, vault: Any, cli: Any) -> None:
    """An agent's fork ``x`` ran a command (its exec lock made), then was deleted (its lock
    files go). The person's (or the agent's, over MCP) ``avfs undo --op`` of an operation
    of ``x`` is refused, its ref being gone; on main the refusal left ``.exec-x.lock`` and
    ``x.lock`` behind, for forks that no longer exist (``avfs prune`` lists them as such),
    one more pair each such undo. Now nothing is left, and a later fork of that name runs
    and is deleted as any."""
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    checkpoint.save(vault, "main", message="a")
    vault.fork("main", "x")
    ops = [vault.oplog.last_undoable("x")]  # the fork's creation, then the exec's commit
    res = execute(home, vault, "x", ExecRequest(shell="echo by-the-agent > b.txt"))
    assert res.success and res.commit is not None, res.to_dict()
    ops.append(vault.oplog.last_undoable("x"))
    vault.delete_fork("x")
    before = _locks(vault)
    assert not [n for n in before if n in (".exec-x.lock", "x.lock")], before
    spec = ["--home", home.path, "--vault", "v", "--json"]
    for op in ops:
        assert op is not None
        got = cli(*spec, "undo", "--op", str(op.id))
        assert got.code != 0, got.out
        assert json.loads(got.out)["kind"] == "error", got.out
        assert _locks(vault) == before, "a refused undo left lock files"
        assert not vault.has_fork("x")
    vault.fork("main", "x")  # a later fork of that name
    res = execute(home, vault, "x", ExecRequest(shell="echo again > c.txt"))
    assert res.success and res.commit is not None, res.to_dict()
    vault.delete_fork("x")
    assert _locks(vault) == before


# -- the person's hooks with git's fsmonitor off (item 1) ---------------------------------

# the git command the person runs first after taking their `core.hooksPath` away, and the
# hook of theirs that runs first in it (each is the first hook of its command that git runs:
# `-n` skips pre-commit; `git add` writes the index; `git am` reads the message first)
FIRST_HOOKS = {
    "commit -n": "prepare-commit-msg",
    "rebase": "pre-rebase",
    "add": "post-index-change",
    "am": "applypatch-msg",
}
_PATCH = """From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: The Person <person@host.invalid>
Date: Thu, 1 Jan 2026 00:00:00 +0000
Subject: [PATCH] a new file

---
 mailed.txt | 1 +
 1 file changed, 1 insertion(+)
 create mode 100644 mailed.txt

diff --git a/mailed.txt b/mailed.txt
new file mode 100644
index 0000000..3b18e51
--- /dev/null
+++ b/mailed.txt
@@ -0,0 +1 @@
+hello world
--
2.39.5

"""


def _hook(mark: Path) -> str:
    return f"#!/bin/sh\necho ran >> {shlex.quote(str(mark))}\nexit 0\n"


def _wait_for(what: str, ok: Any) -> None:
    """Wait until ``ok()`` (the mount's daemon acts on an inotify event of its own)."""
    deadline = time.monotonic() + 60
    while not ok():
        assert time.monotonic() < deadline, f"waited a minute for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize(
    "scene,command",
    [("overlay", c) for c in FIRST_HOOKS] + [("fuse", "commit -n")],
    indirect=["scene"],
)
def test_a_hooks_directory_the_person_left_runs_nothing_the_agent_planted_there(scene: Scene, command: str) -> None:
    """The person's project had ``core.hooksPath .githooks`` (husky's kind: the work tree's
    own hooks) and the person runs git's fsmonitor off for the mount's worktree (``git
    config --worktree core.fsmonitor false``). The agent's confined command writes a hook
    of every name into ``.githooks/``; the person, no longer trusting it, takes the setting
    away (``git config --unset core.hooksPath``: their hooks are git's own directory's, the
    vault's ``hooks/``) and runs ``git commit -n`` (or ``git rebase``, ``git add``, ``git
    am``). On main the mount's link to the person's hooks directory was pointed again only
    as git's fsmonitor hook asked, or by a gate at ``pre-commit``/``pre-merge-commit``,
    which ``-n`` skips and the others never run: the agent's ``.githooks/`` hook ran on the
    host, as the person, and theirs did not. Now the first hook of each of git's commands
    is a gate while fsmonitor is off: the person's own hook runs, the planted one never."""
    hook = FIRST_HOOKS[command]
    gate = Path(scene.own, HOOKS_DIR, "pre-commit")
    if command == "rebase":
        (scene.mp / "rebased.txt").write_text("to rebase\n")
        scene.git("add", "rebased.txt")
        scene.git("commit", "-q", "-m", "a commit to rebase")
    scene.git("config", "core.hooksPath", ".githooks")
    scene.git("status", "--porcelain")  # (git asks the daemon: the link follows the setting)
    scene.git("config", "--worktree", "core.fsmonitor", "false")
    _wait_for("the gates", lambda: os.readlink(gate) == os.path.join("..", GATES_DIR, "pre-commit"))
    planted = "mkdir -p .githooks\n" + "".join(
        f"cat > .githooks/{name} <<'EOF'\n{_hook(scene.ran / ('planted-' + name))}EOF\nchmod +x .githooks/{name}\n"
        for name in GIT_HOOKS
    )
    res = scene.attack(planted)
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    theirs = Path(scene.vault.path, "hooks", hook)  # the person's own hook of that name
    theirs.write_text(_hook(scene.ran / f"person-{hook}"))
    theirs.chmod(0o755)
    scene.git("config", "--unset", "core.hooksPath")
    if command == "commit -n":
        scene.git("commit", "-q", "-n", "--allow-empty", "-m", "the person's commit")
    elif command == "rebase":
        scene.git("rebase", "-q", "-f", "HEAD~1")
    elif command == "add":
        (scene.mp / "added.txt").write_text("the person's file\n")
        scene.git("add", "added.txt")
    else:
        (scene.mp.parent / "mailed.patch").write_text(_PATCH)
        scene.git("am", "-q", str(scene.mp.parent / "mailed.patch"))
    ran = sorted(os.listdir(scene.ran))
    assert not [n for n in ran if n.startswith("planted-")], f"the agent's hook ran on the host: {ran}"
    assert f"person-{hook}" in ran, ran

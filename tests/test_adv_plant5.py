"""review38's lower findings, from the attacker's and the person's side (the thirty-sixth
round, plant5; docs/security.md, "Every writer of a fork's tree").

Each plants inside a real confined ``proxy exec`` (or acts as the person does: their
``avfs`` commands, their plain ``git`` in the mount), then looks at what the person's next
step sees or runs. Real mounts (both backends where the code paths differ), real git.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.proxy.envelope import ExecRequest
from avfs_git.proxy.execute import execute


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

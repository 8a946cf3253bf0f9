"""The workspaces a kept process keeps open from one call to the next (cli/homekeep.py,
``KEEP_WORKSPACES``): a served merge opened and closed its target's and its source's every
call (~2 ms to open their overlay databases, ~2-4 ms after the answer to close them,
docs/benchmarks.md, h-merge5's section). The ones used last stay open now; what another
process does between two calls is what the next call sees: a checkpoint and a write, a
ref moved by git, a fork deleted and made again (its state dir a new one: the kept
workspace, on the old database, is closed and the new one opened), a mount of the fork
started and ended.

Each call runs the click CLI in this process with one :class:`.homekeep.KeptHome`, as the
kept process runs it (cli/callproc.py ``keep``: the command, then its apps closed); the
changes between calls are made by processes of their own (``python -m avfs_git``, the
API in ``python -c``), each with no server."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from avfs_git.cli.homekeep import KEEP_WORKSPACES, KeptHome
from avfs_git.cli.main import main as click_main
from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault


def _call(kept: KeptHome, *argv: str) -> tuple[int, dict[str, Any]]:
    """``avfs --json ARGV`` as the kept process runs a call: (its code, its document)."""
    opened: list[Any] = []
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = click_main(["--json", *argv], opened=opened, kept=kept)
    for app in opened:
        app.run_after()
    for app in opened:
        app.close()
    return code, json.loads(buf.getvalue())


def _elsewhere(script: str) -> None:
    """``script`` run by the API in a process of its own (``h``: the home, ``v``: vault v)."""
    head = "import avfs_git\nfrom avfs_git.core.operations import checkpoint\nh = avfs_git.open_home()\nv = h.vault('v')\n"
    subprocess.run(
        [sys.executable, "-c", head + script],
        env={**os.environ, "AVFS_SERVER": "off"},
        check=True,
        capture_output=True,
        timeout=120,
    )


def _git(vault: Vault, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", vault.path, *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _fork_with(vault: Vault, name: str, files: dict[str, bytes], base: str = "main") -> None:
    vault.create_fork(base, name)
    ws = vault.workspace(name)
    for path, data in files.items():
        ws.write(path, data)
    checkpoint.save(vault, name)
    vault.close_workspaces()


@pytest.fixture
def kept() -> Any:
    k = KeptHome()
    try:
        yield k
    finally:
        k.close()


def _kept_ws(kept: KeptHome) -> dict[str, Any]:
    home = kept._home
    assert home is not None
    return dict(home.vault("v")._ws)


def test_the_workspaces_a_call_used_last_stay_open_for_the_next(
    home: Home, vault: Vault, kept: KeptHome
) -> None:
    """Two merges into ``main``: the second finds ``main``'s workspace the first opened,
    its database's connection the same (on main's code each call's were closed and
    forgotten: a new workspace each call); past ``KEEP_WORKSPACES``, the ones used first
    are closed."""
    for i in range(KEEP_WORKSPACES + 2):
        _fork_with(vault, f"s{i}", {f"s{i}.txt": b"s\n"})
    code, doc = _call(kept, "--vault", "v", "merge", "s0", "--into", "main")
    assert code == 0 and doc["results"][0]["status"] == "fast_forward", doc
    first = _kept_ws(kept)
    assert set(first) == {"main", "s0"}, first
    conn = first["main"].overlay.db
    code, doc = _call(kept, "--vault", "v", "merge", "s1", "--into", "main")
    assert code == 0 and doc["results"][0]["status"] == "merged", doc
    now = _kept_ws(kept)
    assert now["main"] is first["main"] and now["main"].overlay.db is conn
    for i in range(2, KEEP_WORKSPACES + 2):
        code, doc = _call(kept, "--vault", "v", "merge", f"s{i}", "--into", "main")
        assert code == 0, doc
    now = _kept_ws(kept)
    assert len(now) == KEEP_WORKSPACES and "main" in now and "s0" not in now, now
    assert now["main"] is first["main"]
    assert first["s0"].overlay._local.ns().get("conn") is None  # (closed)
    tree = _git(vault, "ls-tree", "--name-only", "main").split()
    assert {f"s{i}.txt" for i in range(KEEP_WORKSPACES + 2)} <= set(tree), tree


def test_another_process_s_write_checkpoint_and_moved_ref_between_calls_are_seen(
    home: Home, vault: Vault, kept: KeptHome
) -> None:
    """Between two calls another process checkpoints ``main`` and writes to it without a
    checkpoint, and git moves ``main``'s branch: the next merge, on the kept workspace,
    captures the write on the moved branch (its checkpoint's parent the moved tip)."""
    _fork_with(vault, "a", {"a.txt": b"a\n"})
    _fork_with(vault, "b", {"b.txt": b"b\n"})
    code, doc = _call(kept, "--vault", "v", "merge", "a", "--into", "main")
    assert code == 0, doc
    held = _kept_ws(kept)["main"]
    _elsewhere("w = v.workspace('main'); w.write('c.txt', b'c\\n'); checkpoint.save(v, 'main')")
    # git moves the branch (a commit of its own on top), then an uncheckpointed write
    tree = _git(vault, "rev-parse", "main^{tree}")
    moved = _git(vault, "commit-tree", tree, "-p", "main", "-m", "by git")
    _git(vault, "update-ref", "refs/heads/main", moved)
    _elsewhere("v.workspace('main').write('d.txt', b'd\\n')")
    code, doc = _call(kept, "--vault", "v", "merge", "b", "--into", "main")
    assert code == 0, doc
    res = doc["results"][0]
    assert _kept_ws(kept)["main"] is held  # (the kept one did it)
    assert [c["fork"] for c in res["captured"]] == ["main"], res
    captured = res["captured"][0]["commit"]
    assert _git(vault, "rev-parse", f"{captured}^") == moved
    assert res["ours"] == captured and res["status"] == "merged"
    tree = set(_git(vault, "ls-tree", "--name-only", "main").split())
    assert {"a.txt", "b.txt", "c.txt", "d.txt"} <= tree, tree
    assert vault.workspace("main").status() == []


def test_a_fork_deleted_and_made_again_between_calls_is_opened_anew(
    home: Home, vault: Vault, kept: KeptHome
) -> None:
    """A merge keeps target ``t``'s workspace open; another process deletes ``t`` and makes
    it again, and writes a file there without a checkpoint. The kept workspace's database
    is the deleted one (which showed nothing to capture: the next merge moved ``t`` and
    left the write out of it); the next call opens the new one, and its merge captures
    the write first."""
    _fork_with(vault, "t", {"t.txt": b"t\n"})
    _fork_with(vault, "a", {"a.txt": b"a\n"})
    _fork_with(vault, "b", {"b.txt": b"b\n"})
    code, doc = _call(kept, "--vault", "v", "merge", "a", "--into", "t")
    assert code == 0, doc
    old = _kept_ws(kept)["t"]
    _elsewhere(
        "v.delete_fork('t')\nv.create_fork('main', 't')\nv.workspace('t').write('new.txt', b'new\\n')\n"
    )
    code, doc = _call(kept, "--vault", "v", "merge", "b", "--into", "t")
    assert code == 0, doc
    res = doc["results"][0]
    assert _kept_ws(kept)["t"] is not old
    assert [c["fork"] for c in res["captured"]] == ["t"], res
    tree = set(_git(vault, "ls-tree", "--name-only", "t").split())
    assert {"new.txt", "b.txt"} <= tree and "t.txt" not in tree, tree
    vault.close_workspaces()
    assert vault.workspace("t").status() == []


def test_a_mount_of_the_target_started_and_ended_between_calls(
    home: Home, vault: Vault, kept: KeptHome, tmp_path: Path
) -> None:
    """Between two merges into ``main`` (its workspace kept open), ``main`` is mounted
    (overlay backend) by another process and a file written through the mount: the next
    merge captures it through the live mount; then the mount ends, another file is
    written by another process, and the merge after that captures it from the upper
    layer the mount left."""
    from .test_overlay import require_overlay

    require_overlay()
    for name in ("a", "b", "c"):
        _fork_with(vault, name, {f"{name}.txt": b"x\n"})
    code, doc = _call(kept, "--vault", "v", "merge", "a", "--into", "main")
    assert code == 0, doc
    held = _kept_ws(kept)["main"]
    mp = tmp_path / "mnt"
    mp.mkdir()
    env = {**os.environ, "AVFS_SERVER": "off"}
    avfs = [sys.executable, "-m", "avfs_git"]
    subprocess.run(
        [*avfs, "mount", "v:main", str(mp), "--backend", "overlay"], env=env, check=True, timeout=120
    )
    try:
        (mp / "m.txt").write_bytes(b"through the mount\n")
        code, doc = _call(kept, "--vault", "v", "merge", "b", "--into", "main")
        assert code == 0, doc
        res = doc["results"][0]
        assert _kept_ws(kept)["main"] is held
        assert [c["fork"] for c in res["captured"]] == ["main"], res
        assert (mp / "b.txt").read_bytes() == b"x\n"  # (the mount shows the merge)
    finally:
        subprocess.run([*avfs, "unmount", "v:main"], env=env, check=True, timeout=120)
    _elsewhere("v.workspace('main').write('after.txt', b'after\\n')")
    code, doc = _call(kept, "--vault", "v", "merge", "c", "--into", "main")
    assert code == 0, doc
    res = doc["results"][0]
    assert [c["fork"] for c in res["captured"]] == ["main"], res
    tree = set(_git(vault, "ls-tree", "--name-only", "main").split())
    assert {"a.txt", "b.txt", "c.txt", "m.txt", "after.txt"} <= tree, tree

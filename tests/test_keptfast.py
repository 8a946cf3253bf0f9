"""A kept process's merge read without click (h-merge6).

The resident server's kept process (cli/callproc.py ``keep``) ran each served merge
through the click CLI: ~1-1.5 ms of click's parse a merge on minimist (docs/benchmarks.md,
h-merge4's and h-merge5's sections), where a cold process already reads a merge's
arguments with :mod:`.fastcli`'s table. The kept process's calls now go through
:func:`.fastcli.fast` first, with the kept home, their :class:`.app.App` left for the
after-work as before; what the table declines (``--help``, a push) is click's. Each call
runs :func:`.callproc._run` in this process, as the kept process does, then the apps'
after-work and close."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest

from avfs_git.cli import callproc, fastcli
from avfs_git.cli import main as climain
from avfs_git.cli.homekeep import KeptHome
from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault


@pytest.fixture
def kept() -> Any:
    k = KeptHome()
    try:
        yield k
    finally:
        k.close()


@pytest.fixture
def ways(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many calls each way took from now on: ``fast`` (taken by the table), ``click``."""
    seen = {"fast": 0, "click": 0}
    real_fast, real_click = fastcli.fast, climain.main

    def fast(*a: Any, **k: Any) -> Any:
        got = real_fast(*a, **k)
        seen["fast"] += got is not None
        return got

    def click(*a: Any, **k: Any) -> Any:
        seen["click"] += 1
        return real_click(*a, **k)

    monkeypatch.setattr(fastcli, "fast", fast)
    monkeypatch.setattr(climain, "main", click)
    return seen


def _call(kept: KeptHome, *argv: str) -> tuple[int, str, list[Any]]:
    """``avfs ARGV`` as the kept process runs a call: (its code, its output, its apps)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code, opened = callproc._run({"argv": list(argv)}, kept)
    for app in opened:
        app.run_after()
    for app in opened:
        app.close()
    return code, buf.getvalue(), opened


def _fork_with(vault: Vault, name: str, files: dict[str, bytes]) -> None:
    vault.create_fork("main", name)
    ws = vault.workspace(name)
    for path, data in files.items():
        ws.write(path, data)
    checkpoint.save(vault, name)
    vault.close_workspaces()


def test_a_kept_merge_is_read_without_click_with_the_kept_home(
    home: Home, vault: Vault, kept: KeptHome, ways: dict[str, int]
) -> None:
    """A fast-forward, a merge commit and a conflict written: each taken by the table (on
    main's code, every one through click), with the kept home (its workspaces kept from
    one call to the next), their documents and exit codes the click CLI's."""
    vault.workspace("main").write("c.txt", b"base\n")
    checkpoint.save(vault, "main")
    vault.close_workspaces()
    _fork_with(vault, "a", {"a.txt": b"a\n"})
    _fork_with(vault, "b", {"b.txt": b"b\n"})
    _fork_with(vault, "c", {"c.txt": b"theirs\n"})
    code, out, opened = _call(kept, "--json", "--vault", "v", "merge", "a", "--into", "main")
    doc = json.loads(out)
    assert code == 0 and doc["results"][0]["status"] == "fast_forward", doc
    assert [app.kept for app in opened] == [kept] and kept._home is not None
    kept_main = kept._home.vault("v")._ws["main"]
    code, out, _ = _call(kept, "--json", "--vault", "v", "merge", "b", "--into", "main")
    assert code == 0 and json.loads(out)["results"][0]["status"] == "merged"
    assert kept._home.vault("v")._ws["main"] is kept_main  # (the kept workspace, used again)
    ws = vault.workspace("main")
    ws.write("c.txt", b"ours\n")
    checkpoint.save(vault, "main")
    vault.close_workspaces()
    code, out, _ = _call(kept, "--vault", "v", "merge", "c", "--into", "main", "--write-conflicts")
    assert code == 3 and "c.txt" in out, out
    assert ways == {"fast": 3, "click": 0}, ways
    text = vault.workspace("main").read("c.txt")
    assert text.startswith(b"<<<<<<< ours\n") and b">>>>>>> c\n" in text


def test_what_the_table_declines_is_click_s(
    home: Home, vault: Vault, kept: KeptHome, ways: dict[str, int]
) -> None:
    """``merge --help`` and an unknown option go to click, which answers them as ever."""
    code, out, _ = _call(kept, "--vault", "v", "merge", "--help")
    assert code == 0 and "--write-conflicts" in out
    code, out, _ = _call(kept, "--json", "--vault", "v", "merge", "a", "--no-such-option")
    assert code == 2 and json.loads(out)["kind"] == "error"
    assert ways == {"fast": 0, "click": 2}, ways

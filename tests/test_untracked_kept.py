"""The head of git's untracked cache that every overlay mount's index carries
(mount/untracked.py ``HeadAhead``: git's ``status`` on an empty tree), kept beside the
vault by the stamps of everything git reads for it (mount/untrackedkept.py): a
differential test against git itself, each head taken from git and from the kept file,
and git asked again once one of those files changed, or where what it reads is not all
in the key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from avfs_git.core.store import gitrun
from avfs_git.mount import untracked, untrackedkept


def _located(head: tuple[bytes, str] | None) -> bytes:
    """The head made for one worktree path (git's names its scratch tree)."""
    assert head is not None
    got = untracked._relocated(head[0], head[1], "/the/mount")
    assert got is not None
    return got


def test_the_kept_head_is_git_s(vault: Any, tmp_path: Path, monkeypatch: Any) -> None:
    spawned: list[object] = []
    real = untracked.spawn

    def counted(*args: Any, **kw: Any) -> Any:
        spawned.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(untracked, "spawn", counted)
    # (a file changed within the last second is not kept, gitrun's rule and test: here each
    # is changed right before the head is made)
    monkeypatch.setattr(gitrun, "CONFIG_RECENT_NS", 0)
    home = Path(os.environ["HOME"])

    def heads(expect_spawns: list[int]) -> None:
        for n in expect_spawns:
            gits = _located(untracked.HeadAhead(vault.path, None).made())  # (no vault: git's, never kept)
            spawned.clear()
            got = untracked.HeadAhead(vault.path, None, vault.path).made()
            assert len(spawned) == n, (n, spawned)
            assert _located(got) == gits

    heads([1, 0, 0])
    assert Path(vault.path, "avfs", untrackedkept.HEAD_FILE).is_file()

    exclude = Path(vault.path, "info", "exclude")
    exclude.parent.mkdir(exist_ok=True)
    exclude.write_text("*.o\n")
    heads([1, 0])  # info/exclude changed (its id and stat data are in the head)
    exclude.write_text("*.o\n*.a\n")
    heads([1, 0])

    ignore = home / ".config" / "git" / "ignore"
    ignore.parent.mkdir(parents=True, exist_ok=True)
    ignore.write_text("*.tmp\n")
    heads([1, 0])  # the global excludes file came
    ignore.unlink()
    heads([1, 0])

    elsewhere = tmp_path / "excludes"
    elsewhere.write_text("*.log\n")
    config = Path(vault.path, "config")
    before = config.read_bytes()
    with config.open("a") as fh:
        fh.write(f"[core]\n\texcludesFile = {elsewhere}\n")
    heads([1, 1])  # a file the key cannot name: git every time
    config.write_bytes(before)
    heads([1, 0])

    # a worktree git dir whose commondir leads elsewhere than the vault given: git asked
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / "commondir").write_text(str(tmp_path / "another"))
    assert untrackedkept.key(str(wt), vault.path) is None

    # the kept file damaged or of another key: git asked, the head git's
    kept = Path(vault.path, "avfs", untrackedkept.HEAD_FILE)
    for bad in ("", "{", '{"key": [], "values": {"head": "00", "made_in": "/x"}}'):
        kept.write_text(bad)
        heads([1])

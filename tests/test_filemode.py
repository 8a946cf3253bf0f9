"""git's ``core.fileMode false`` (gitmodel17): where the vault's config or the person's
global one says git does not trust the exec bit, a status shows no change of the bit
alone and a checkpoint records the mode HEAD has at the path (100644 for a new one), as
git's status and `git commit --only` do (core/store/filemode.py). Before, avfs listed a
`chmod +x` alone as modified and recorded the bit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import filemode


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def _modes(vault: Any) -> dict[str, str]:
    rows = _git("--git-dir", vault.path, "ls-tree", "-r", "main").splitlines()
    return {ln.split("\t")[1]: ln.split()[0] for ln in rows}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (b"[core]\n\tfilemode = false\n", (True, False)),
        (b"[core]\n\tfilemode = true\n\tbare = true\n[core]\n\tfilemode=no ; off\n", (True, False)),
        (b"[core]\n\tfilemode\n", (True, True)),
        (b'[core "x"]\n\tfilemode = false\n[user]\n\tfilemode = false\n', (True, None)),
        (b"[core]\n\tfilemode = 0 # off\n[alias]\n\tx = filemode\n", (True, False)),
        (b'[core]\n\tfilemode = "false"\n', (False, None)),
        (b"[include]\n\tpath = other\n[core]\n\tfilemode = false\n", (False, None)),
        (b"[core] filemode = false\n", (False, None)),
        (b"[core]\n\tfilemode = maybe\n", (False, None)),
    ],
)
def test_core_filemode_is_read_as_git_reads_it_or_asked(text: bytes, want: tuple[bool, bool | None]) -> None:
    assert filemode._filemode_in(text) == want


def test_the_person_s_and_the_vault_s_config_decide_in_git_s_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The global config first, the vault's after it (the last value wins), and one the
    parser cannot read (an include) asked of git, which follows it; git's own answer
    (`git config --type=bool`) agrees each time."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    repo = tmp_path / "v.git"
    _git("init", "-q", "--bare", str(repo))
    config = repo / "config"
    base = config.read_text()

    def agrees(want: bool) -> None:
        got = filemode.trusts_exec_bit(str(repo))
        asked = _git("--git-dir", str(repo), "config", "--type=bool", "--get", "core.filemode").strip()
        assert got is want and asked == ("true" if want else "false")

    agrees(True)  # (git init writes filemode = true)
    (home / ".gitconfig").write_text("[core]\n\tfileMode = false\n")
    agrees(True)  # (the vault's own wins)
    config.write_text(base.replace("filemode = true", "filemode = false"))
    agrees(False)
    (home / ".gitconfig").write_text("[core]\n\tfileMode = true\n")
    agrees(False)
    (home / "more").write_text("[core]\n\tfilemode = true\n")
    config.write_text(config.read_text() + "[include]\n\tpath = ~/more\n")
    agrees(True)  # (asked: git follows the include, read after the vault's own value)


def test_an_exec_bit_alone_is_no_change_and_a_checkpoint_keeps_head_s_mode(vault: Any) -> None:
    """Under `core.fileMode false` in the vault's config: a file whose exec bit alone
    changed is not in the status and not recorded; one whose bytes changed too is
    modified and recorded with HEAD's mode; a new file with the bit is recorded 100644.
    With the setting back to true the bit is a change again."""
    ws = vault.workspace("main")
    ws.write("run.sh", b"#!/bin/sh\n", mode=0o100755)
    ws.write("a.txt", b"a\n")
    ws.write("b.txt", b"b\n")
    checkpoint.save(vault)
    _git("--git-dir", vault.path, "config", "core.fileMode", "false")
    ws = vault.workspace("main")
    ws.chmod("a.txt", True)
    ws.chmod("run.sh", False)
    assert ws.status() == []
    ws.write("b.txt", b"b, changed\n", mode=0o100755)
    ws.write("new.sh", b"#!/bin/sh\n", mode=0o100755)
    got = {(c.path, c.status.value, c.new_mode) for c in ws.status()}
    assert got == {("b.txt", "modified", 0o100644), ("new.sh", "added", 0o100644)}
    checkpoint.save(vault, message="under core.fileMode false")
    modes = _modes(vault)
    assert modes == {"a.txt": "100644", "b.txt": "100644", "new.sh": "100644", "run.sh": "100755"}, modes
    assert vault.workspace("main").status() == []
    assert os.access(vault.path, os.R_OK)
    _git("--git-dir", vault.path, "config", "core.fileMode", "true")
    ws = vault.workspace("main")
    got = {(c.path, c.status.value) for c in ws.status()}
    assert got == {
        ("a.txt", "modified"),
        ("b.txt", "modified"),
        ("new.sh", "modified"),
        ("run.sh", "modified"),
    }


def test_the_mount_s_worktree_config_decides_last_where_git_reads_it(vault: Any) -> None:
    """gitmodel18: `git config --worktree core.fileMode false` in a mount writes the
    worktree's ``config.worktree`` (`<vault>/worktrees/avfs-<fork>/`), which git reads
    after the vault's config where ``extensions.worktreeConfig`` is on; before, avfs read
    the vault's alone: a `chmod +x` was listed modified and recorded where git's status
    and `git add` keep the mode (the brief's item 2). Without the extension git ignores
    the file, and so does avfs; git's own answer agrees each time."""
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    checkpoint.save(vault)
    wt = Path(vault.path) / "worktrees" / "avfs-main"
    wt.mkdir(parents=True)
    (wt / "commondir").write_text("../..\n")
    (wt / "HEAD").write_text("ref: refs/heads/main\n")
    (wt / "gitdir").write_text(str(wt / "nowhere" / ".git") + "\n")
    (wt / "config.worktree").write_text("[core]\n\tfileMode = false\n")

    def agrees(want: bool) -> None:
        asked = subprocess.run(
            ["git", "--git-dir", str(wt), "config", "--type=bool", "--get", "core.filemode"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
        assert filemode.trusts_exec_bit(vault.path, str(wt)) is want and asked in ("", str(want).lower())
        assert vault.workspace("main").changes.modes_trusted()[0] is want

    agrees(True)  # (extensions.worktreeConfig off: git does not read config.worktree)
    _git("--git-dir", vault.path, "config", "extensions.worktreeConfig", "true")
    agrees(False)
    ws = vault.workspace("main")
    ws.chmod("a.txt", True)
    assert ws.status() == []
    (wt / "config.worktree").write_text("[core]\n\tfileMode = true\n")
    _git("--git-dir", vault.path, "config", "core.fileMode", "false")
    agrees(True)  # (the worktree's is read last)
    assert {(c.path, c.status.value) for c in vault.workspace("main").status()} == {("a.txt", "modified")}

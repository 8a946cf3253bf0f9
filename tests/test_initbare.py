"""A new vault's bare repository made without a git process (core/store/initbare.py) is the
one ``git init --bare --template=`` makes: the same files and directories, modes, ``HEAD``
and ``config`` byte for byte, and git works in it; under the default umask and a tighter one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from avfs_git.core.store.initbare import init_bare

from .conftest import git


def _layout(root: Path) -> dict[str, tuple[str, int, bytes]]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = p.lstat()
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
            out[str(p.relative_to(root))] = (
                kind,
                stat.S_IMODE(st.st_mode),
                b"" if kind == "dir" else p.read_bytes(),
            )
    return out


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_the_bare_repository_is_the_one_git_init_makes(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        ours, gits = tmp_path / "ours.git", tmp_path / "gits.git"
        init_bare(str(ours), "refs/heads/main")
        git(
            "-c",
            "init.defaultObjectFormat=sha1",
            "-c",
            "init.templateDir=",
            "init",
            "-q",
            "--bare",
            "--template=",
            str(gits),
        )
        (gits / "HEAD").write_text("ref: refs/heads/main\n")
    finally:
        os.umask(old)
    assert _layout(ours) == _layout(gits)
    assert git("--git-dir", str(ours), "rev-parse", "--is-bare-repository").strip() == "true"
    assert git("--git-dir", str(ours), "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    git("--git-dir", str(ours), "fsck", "--no-progress")


def test_a_file_system_probe_that_fails_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a symlink cannot be made or the exec bit does not hold, the config says so,
    as git's does (``core.symlinks = false``, ``core.filemode = false``)."""

    def no_symlink(*_a: object, **_k: object) -> None:
        raise OSError(1, "not here")

    monkeypatch.setattr(os, "symlink", no_symlink)
    monkeypatch.setattr(os, "chmod", no_symlink)
    init_bare(str(tmp_path / "r.git"), "refs/heads/main")
    config = (tmp_path / "r.git" / "config").read_text()
    assert (
        config
        == "[core]\n\trepositoryformatversion = 0\n\tfilemode = false\n\tbare = true\n\tsymlinks = false\n"
    )
    assert not [n for n in os.listdir(tmp_path / "r.git") if n.startswith("t")]  # the probe's file went

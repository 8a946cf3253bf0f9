"""vault create --from: plain directories and git checkouts."""

from __future__ import annotations

import os

import pytest

from avfs_git.core import checkpoint, history

from .conftest import git


def make_tree(root):
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "README.md").write_text("# proj\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("README.md")
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    (root / "debug.log").write_text("noise\n")
    (root / "build").mkdir()
    (root / "build" / "out.o").write_bytes(b"\0\1")
    (root / "bin.dat").write_bytes(bytes(range(256)))


def test_import_plain_directory_honours_gitignore(home, tmp_path):
    src = tmp_path / "proj"
    make_tree(src)
    v = home.create_vault("p", from_dir=str(src))
    ws = v.workspace()
    paths = {e.path for e in ws.walk("")}
    assert "debug.log" not in paths and "build" not in paths
    assert {"src/main.py", "README.md", "run.sh", "link", ".gitignore", "bin.dat"} <= paths
    assert ws.read("bin.dat") == bytes(range(256))
    assert ws.stat("run.sh").mode == 0o100755
    assert ws.read_link("link") == "README.md"
    assert not ws.is_dirty()
    assert git("--git-dir", v.path, "fsck", "--strict", "--no-dangling") == ""
    assert len(history.log(v)) == 1


def test_import_without_ignore(home, tmp_path):
    src = tmp_path / "proj"
    make_tree(src)
    v = home.create_vault("p", from_dir=str(src), use_gitignore=False)
    paths = {e.path for e in v.workspace().walk("")}
    assert "debug.log" in paths and "build/out.o" in paths


def test_import_git_checkout_brings_history_and_uncommitted_changes(home, tmp_path):
    src = tmp_path / "repo"
    src.mkdir()
    git("init", "-q", "-b", "main", cwd=src)
    make_tree(src)
    git("add", "-A", cwd=src)
    git("commit", "-qm", "one", cwd=src)
    (src / "README.md").write_text("# changed\n")
    git("commit", "-qam", "two", cwd=src)
    git("branch", "side", cwd=src)
    # uncommitted: a modification, a deletion, an untracked file, an ignored file
    (src / "src" / "main.py").write_text("print('uncommitted')\n")
    (src / "bin.dat").unlink()
    (src / "untracked.txt").write_text("new\n")
    (src / "ignored.log").write_text("ignored\n")
    v = home.create_vault("r", from_dir=str(src))
    log = history.log(v)
    assert [c.message for c in log] == ["two\n", "one\n"]
    assert log[0].id == git("-C", str(src), "rev-parse", "HEAD").strip()
    assert "side" in v.fork_names()
    ws = v.workspace()
    st = {(c.path, c.status.value) for c in ws.status()}
    assert st == {("src/main.py", "modified"), ("bin.dat", "deleted"), ("untracked.txt", "added")}
    assert ws.read("src/main.py") == b"print('uncommitted')\n"
    assert not ws.exists("ignored.log")
    checkpoint.save(v)
    assert git("--git-dir", v.path, "fsck", "--strict", "--no-dangling") == ""


def test_import_checkout_on_master_gets_main_fork(home, tmp_path):
    src = tmp_path / "repo"
    src.mkdir()
    git("init", "-q", "-b", "master", cwd=src)
    (src / "f").write_text("f\n")
    git("add", "-A", cwd=src)
    git("commit", "-qm", "m", cwd=src)
    v = home.create_vault("m", from_dir=str(src))
    assert {"main", "master"} <= set(v.fork_names())
    assert v.workspace("main").read("f") == b"f\n"


def test_import_missing_directory(home, tmp_path):
    from avfs_git.core.errors import PathNotFoundError

    with pytest.raises(PathNotFoundError):
        home.create_vault("x", from_dir=str(tmp_path / "nope"))
    assert not home.exists("x")
    assert [n for n in os.listdir(home.vaults_dir) if not n.startswith(".")] == []
    assert [n for n in os.listdir(home.vaults_dir)] == []  # no temp leftovers


def test_create_vault_twice(home):
    from avfs_git.core.errors import AlreadyExistsError

    home.create_vault("a")
    with pytest.raises(AlreadyExistsError):
        home.create_vault("a")

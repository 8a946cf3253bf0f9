"""vault create --from: plain directories and git checkouts."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from avfs_git.core.operations import checkpoint, history

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


def _real_history_on(src, branch, tmp_path):
    """A checkout at ``src`` whose branch is ``branch`` (``git init -b``), two commits of a real
    project's files (attrs's sdist, then a change to it), as the person's repository would be."""
    from . import realdata

    unpacked = realdata.extract(realdata.pypi_sdist("attrs", "24.2.0"), tmp_path / "sdist")
    shutil.copytree(unpacked, src, symlinks=True)
    git("init", "-q", "-b", branch, cwd=src)
    git("add", "-A", cwd=src)
    git("commit", "-qm", "attrs 24.2.0", cwd=src)
    (src / "README.md").write_text((src / "README.md").read_text() + "\nlocal note\n")
    git("commit", "-qam", "note", cwd=src)


def test_import_checkout_on_master_keeps_master_as_the_default_fork(home, tmp_path):
    src = tmp_path / "repo"
    _real_history_on(src, "master", tmp_path)
    (src / "src" / "attr" / "_make.py").write_text("# uncommitted\n")
    (src / "NEW.txt").write_text("new\n")
    v = home.create_vault("m", from_dir=str(src))
    # no `main` is invented: the person's branches are the forks, master the default
    assert v.fork_names() == ["master"] and v.default_fork == "master"
    assert home.resolve("m") == (v, "master")
    # a clone of the vault checks out master, as a clone of the repository would
    assert git("--git-dir", v.path, "symbolic-ref", "HEAD").strip() == "refs/heads/master"
    ws = v.workspace()
    assert ws.base == git("-C", str(src), "rev-parse", "HEAD").strip()
    assert {(c.path, c.status.value) for c in ws.status()} == {
        ("src/attr/_make.py", "modified"),
        ("NEW.txt", "added"),
    }
    assert ws.read("src/attr/_make.py") == b"# uncommitted\n"
    assert [c.message for c in history.log(v)] == ["note\n", "attrs 24.2.0\n"]


def test_import_checkout_on_a_feature_branch_makes_it_the_default_fork(home, tmp_path):
    src = tmp_path / "repo"
    _real_history_on(src, "master", tmp_path)
    git("checkout", "-q", "-b", "feature/parse", cwd=src)
    (src / "src" / "attr" / "validators.py").write_text("# feature work\n")
    git("commit", "-qam", "feature", cwd=src)
    (src / "README.md").unlink()  # uncommitted, on the feature branch
    v = home.create_vault("f", from_dir=str(src))
    assert sorted(v.fork_names()) == ["feature/parse", "master"]
    assert v.default_fork == "feature/parse"
    ws = v.workspace()
    assert ws.fork == "feature/parse"
    assert {(c.path, c.status.value) for c in ws.status()} == {("README.md", "deleted")}
    assert ws.read("src/attr/validators.py") == b"# feature work\n"
    # master is as the repository has it, untouched by the uncommitted change
    assert v.workspace("master").exists("README.md") and not v.workspace("master").is_dirty()
    assert v.workspace("master").base == git("-C", str(src), "rev-parse", "master").strip()


def test_import_checkout_on_a_detached_head(home, tmp_path):
    src = tmp_path / "repo"
    _real_history_on(src, "master", tmp_path)
    git("checkout", "-q", "--detach", "HEAD~1", cwd=src)
    v = home.create_vault("d", from_dir=str(src))
    # a detached HEAD is on no branch: its own fork at HEAD, master kept as it is
    assert sorted(v.fork_names()) == ["main", "master"] and v.default_fork == "main"
    assert v.workspace().base == git("-C", str(src), "rev-parse", "HEAD").strip()


def test_import_checkout_without_commits_on_master(home, tmp_path):
    src = tmp_path / "repo"
    src.mkdir()
    git("init", "-q", "-b", "master", cwd=src)
    (src / "f").write_text("f\n")
    v = home.create_vault("u", from_dir=str(src))
    assert v.fork_names() == ["master"] and v.default_fork == "master"
    assert v.workspace().read("f") == b"f\n"


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


def _refs(git_dir):
    """Every branch and tag of a repository, as `git for-each-ref` lists them (name, id)."""
    out = git(
        "--git-dir",
        str(git_dir),
        "for-each-ref",
        "--format=%(refname) %(objectname)",
        "refs/heads",
        "refs/tags",
    )
    return out.splitlines()


def test_import_checkout_of_many_branches_and_tags_packs_them(home, tmp_path):
    # a checkout's branches and tags come as git clone writes them, in packed-refs: a fetch
    # wrote each as a loose file with a reflog (5,000 + 5,000: 20,000 files, 37 s against
    # git clone's 1 s here; every later read of the vault's refs paid for them). A commit
    # on no branch (the detached HEAD's) comes too, as its own fork.
    src = tmp_path / "repo"
    _real_history_on(src, "master", tmp_path)
    head = git("-C", str(src), "rev-parse", "HEAD").strip()
    lines = [f"create refs/heads/b{i:03d} {head}\n" for i in range(300)]
    lines += [f"create refs/tags/t{i:03d} {head}\n" for i in range(300)]
    subprocess.run(["git", "update-ref", "--stdin"], cwd=src, input="".join(lines), text=True, check=True)
    git("tag", "-a", "-m", "release", "v1", "HEAD~1", cwd=src)  # annotated: its object comes along
    git("checkout", "-q", "--detach", cwd=src)
    (src / "DETACHED.txt").write_text("on no branch\n")
    git("add", "DETACHED.txt", cwd=src)
    git("commit", "-qm", "on no branch", cwd=src)
    detached = git("-C", str(src), "rev-parse", "HEAD").strip()
    v = home.create_vault("many", from_dir=str(src))
    theirs = _refs(src / ".git")
    ours = [r for r in _refs(v.path) if not r.startswith("refs/heads/main ")]
    assert ours == theirs and len(theirs) == 1 + 300 + 300 + 1
    loose = [os.path.join(d, f) for d, _ds, fs in os.walk(os.path.join(v.path, "refs")) for f in fs]
    assert [os.path.relpath(p, v.path) for p in loose] == ["refs/heads/main"], (
        loose
    )  # the detached HEAD's fork
    assert not os.path.exists(os.path.join(v.path, "logs", "refs", "heads", "b000"))
    assert not os.path.exists(os.path.join(v.path, "clone.tmp"))
    assert v.default_fork == "main" and v.workspace().base == detached
    assert v.workspace().read("DETACHED.txt") == b"on no branch\n"
    assert git("--git-dir", v.path, "cat-file", "-t", "v1").strip() == "tag"
    git("--git-dir", v.path, "fsck", "--strict", "--no-dangling")


def test_import_of_a_shallow_checkout(home, tmp_path):
    # a shallow clone (CI's `--depth 1` checkout) imports as a shallow vault, as git clone of
    # it is: its one commit, the boundary in `shallow`, fsck clean
    full = tmp_path / "repo"
    _real_history_on(full, "master", tmp_path)
    src = tmp_path / "shallow"
    git("clone", "-q", "--depth", "1", f"file://{full}", str(src))
    (src / "WIP.txt").write_text("uncommitted\n")
    v = home.create_vault("sh", from_dir=str(src))
    tip = git("-C", str(src), "rev-parse", "HEAD").strip()
    assert v.default_fork == "master" and v.workspace().base == tip
    with open(os.path.join(v.path, "shallow"), encoding="ascii") as fh:
        assert fh.read().split() == [tip]
    assert {(c.path, c.status.value) for c in v.workspace().status()} == {("WIP.txt", "added")}
    git("--git-dir", v.path, "fsck", "--no-dangling")

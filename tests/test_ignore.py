"""Ignore rules as git applies them (``avfs_git.core.workspace.ignore``).

git decides: ``.gitignore`` at every level (also ones only in the overlay), the vault's
``info/exclude``, ``core.excludesFile``, with git's precedence, negation, directory patterns,
invalid lines, CRLF and a BOM. The rule cases are checked differentially: the same files in a
real git checkout, where ``git ls-files --others --ignored --exclude-standard`` says what git
ignores. Ignored paths are never in a checkpoint, an exec commit, its changes, status, apply or
export; they stay in the workspace and are counted. Real tools make them: a venv, ``pip
install -e .``, pytest's and hypothesis' caches, in a real mount and through ``proxy exec``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.core.workspace.wsview import View
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts
from avfs_git.ops import quickstart as q
from avfs_git.proxy.execute import exec_in

from .conftest import AUTHOR, IN_CI, git
from .test_fuse import require_fuse
from .test_json_schemas import validate


def _tree_paths(vault: Any, rev: str = "main") -> set[str]:
    out = git("--git-dir", vault.path, "ls-tree", "-r", "-z", "--name-only", rev)
    return {p for p in out.split("\0") if p}


def _write_all(ws: Any, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        ws.write(path, data, parents=True)


def _git_checkout(root: Path, tracked: dict[str, bytes], untracked: dict[str, bytes], exclude: bytes) -> Path:
    """A real checkout holding ``tracked`` (committed) and ``untracked`` files."""
    root.mkdir()
    git("init", "-q", cwd=root)
    for path, data in tracked.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    git("add", "-f", "--", *tracked, cwd=root)
    git("commit", "-qm", "tracked", cwd=root)
    for path, data in untracked.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    (root / ".git" / "info" / "exclude").write_bytes(exclude)
    return root


def _git_ignored(checkout: Path) -> set[str]:
    out = git("ls-files", "-z", "--others", "--ignored", "--exclude-standard", cwd=checkout)
    return {p for p in out.split("\0") if p}


def _git_ignored_lines(checkout: Path) -> list[str]:
    """The `!!` lines of `git status --ignored` (a new directory git ignores whole is one):
    what avfs's `ignored` count counts."""
    out = git("status", "--porcelain", "-z", "--ignored", cwd=checkout)
    return [p[3:] for p in out.split("\0") if p.startswith("!! ")]


# -- the rules, against git in a real checkout ------------------------------------------------

ROOT_RULES = [
    b"# a comment",
    b"*.log",
    b"!keep.log",
    b"build/",
    b"/only-root.txt",
    b"doc/**/*.tmp",
    b"\\#hash",
    b"\\!bang",
    b"space\\ ",
    b"trailing-space   ",
    b"[unclosed",  # an invalid pattern: git matches nothing with it
    b"**/deep-any",
    b"cache",
    b"!cache/keep.txt",  # cannot re-include below an excluded directory (git's rule)
    b"",
]
SUB_RULES = [b"!*.log", b"*.dat", b"/anchored.txt"]
TRACKED = {
    "README.md": b"# proj\n",
    "build/tracked.txt": b"tracked under an ignored directory\n",
    "sub/kept.dat": b"tracked, matching *.dat\n",
}
UNTRACKED = {
    "a.log": b"1",
    "keep.log": b"2",
    "build/out.o": b"3",
    "build/deeper/x.o": b"4",
    "nb/build": b"a file named build is not a directory",
    "only-root.txt": b"5",
    "sub/only-root.txt": b"6",
    "doc/a/b/c.tmp": b"7",
    "doc/c.tmp": b"8",
    "#hash": b"9",
    "!bang": b"10",
    "space ": b"11",
    "trailing-space": b"12",
    "[unclosed": b"13",
    "x/y/deep-any/z.txt": b"14",
    "cache/keep.txt": b"15",
    "cache/other.txt": b"16",
    "sub/a.log": b"17",
    "sub/b.dat": b"18",
    "sub/anchored.txt": b"19",
    "sub/inner/anchored.txt": b"20",
    "f.excl": b"21",
    "f.glob": b"22",
    "normal.txt": b"23",
    "sub/inner/.gitignore": b"*.txt\n",
}


def _encode(lines: list[bytes], style: str) -> bytes:
    sep = b"\r\n" if style in ("crlf", "bom+crlf") else b"\n"
    data = sep.join(lines) + sep
    return b"\xef\xbb\xbf" + data if style.startswith("bom") else data


@pytest.mark.parametrize("style", ["lf", "crlf", "bom", "bom+crlf"])
def test_ignored_paths_are_what_git_ignores(vault, tmp_path: Path, style: str) -> None:
    """Every rule kind, through git's own matching: the same answer as git in a checkout
    (.gitignore files only in the overlay, one only in the base, info/exclude, the global
    excludes file), and a checkpoint holds exactly what git would commit."""
    global_ignore = Path(os.environ["XDG_CONFIG_HOME"]) / "git" / "ignore"
    global_ignore.parent.mkdir(parents=True, exist_ok=True)
    global_ignore.write_bytes(b"*.glob\n")
    exclude = b"# avfs\n*.excl\n"
    root_ignore = _encode(ROOT_RULES, style)
    sub_ignore = _encode(SUB_RULES, style)
    tracked = {**TRACKED, "sub/.gitignore": sub_ignore}  # in the base tree
    untracked = {**UNTRACKED, ".gitignore": root_ignore}  # only in the overlay

    checkout = _git_checkout(tmp_path / "checkout", tracked, untracked, exclude)
    want = _git_ignored(checkout)
    assert {"a.log", "build/out.o", "f.excl", "f.glob", "cache/keep.txt"} <= want  # the checkout is real
    assert not {"keep.log", "nb/build", "normal.txt", "[unclosed"} & want

    (Path(vault.path) / "info" / "exclude").write_bytes(exclude)
    ws = vault.workspace("main")
    _write_all(ws, TRACKED)  # before the rules that match some of them (git add -f)
    checkpoint.save(vault, message="tracked")
    ws.write("sub/.gitignore", sub_ignore)
    checkpoint.save(vault, message="sub/.gitignore")
    _write_all(ws, untracked)
    ws.write("build/tracked.txt", b"changed: still tracked\n")
    changes, ignored = ws.status_ignored()
    assert set(ignored.files) == want
    assert {c.path for c in changes} == (set(untracked) - want) | {"build/tracked.txt"}
    assert "build" in ignored.tops or "build/out.o" in ignored.tops

    res = checkpoint.save(vault, message="all")
    assert res.ignored == len(_git_ignored_lines(checkout))  # as git status --ignored counts
    assert _tree_paths(vault) == set(tracked) | (set(untracked) - want)
    # the ignored files stay in the workspace, and are still ignored (not changes)
    assert all(ws.read(p) == untracked[p] for p in want)
    assert ws.status() == [] and not ws.is_dirty()
    assert set(ws.status_ignored()[1].files) == want


def test_git_t0008_cases(vault, tmp_path: Path) -> None:
    """The set-up and cases of git's own t/t0008-ignores.sh (nested .gitignore files with
    comments, a blank line and negations, an ignored directory holding its own .gitignore,
    per-repo info/exclude, a core.excludesFile with a negation, tracked files matching a
    rule), as modern git answers them: a path matched last by a negation is not ignored."""
    excludes = tmp_path / "global-excludes"
    excludes.write_text("globalone\n!globaltwo\nglobalthree\n")
    git("--git-dir", vault.path, "config", "core.excludesfile", str(excludes))
    with open(Path(vault.path) / "info" / "exclude", "a") as fh:
        fh.write("per-repo\n")
    ws = vault.workspace("main")
    for d in ("", "a/"):
        ws.write(f"{d}ignored-but-in-index", b"", parents=True)  # git add -f
    checkpoint.save(vault)
    ws.write(".gitignore", b"one\nignored-*\ntop-level-dir/\n")
    ws.write("a/.gitignore", b"two*\n*three\n")
    ws.write(
        "a/b/.gitignore",
        b"four\nfive\n# this comment should affect the line numbers\nsix\nignored-dir/\n"
        b"# and so should this blank line:\n\n!on*\n!two\n",
        parents=True,
    )
    checkpoint.save(vault)
    for d in ("", "a/"):
        ws.write(f"{d}ignored-but-in-index", b"changed")
    want = {
        "one": True,
        "a/one": True,
        "not-ignored": False,
        "a/not-ignored": False,
        "ignored-and-untracked": True,
        "a/ignored-and-untracked": True,
        "a/3-three": True,
        "a/three-not-this-one": False,
        "a/b/one": False,
        "a/b/on": False,
        "a/b/one one": False,
        "a/b/one two": False,
        'a/b/one"three': False,
        "a/b/not-ignored": False,
        "a/b/two": False,
        "a/b/twooo": True,
        "a/b/ignored-dir/foo": True,
        "a/b/ignored-dir/twoooo": True,
        "a/b/ignored-dir/seven": True,
        "a/b/ignored-dir/.gitignore": True,
        "top-level-dir/x": True,
        "per-repo": True,
        "a/per-repo": True,
        "globalone": True,
        "globaltwo": False,
        "a/globaltwo": False,
        "a/b/globaltwo": False,
        "b/globaltwo": False,
        "globalthree": True,
        "a/globalthree": True,
    }
    for path in want:
        ws.write(path, b"x", parents=True)
    ws.write("a/b/ignored-dir/.gitignore", b"seven\n")
    changes, ignored = ws.status_ignored()
    assert set(ignored.files) == {p for p, yes in want.items() if yes}
    assert {c.path for c in changes} == {p for p, yes in want.items() if not yes} | {
        "ignored-but-in-index",
        "a/ignored-but-in-index",
    }


def test_core_excludes_file_of_the_vault(vault, tmp_path: Path) -> None:
    rules = tmp_path / "my-excludes"
    rules.write_text("*.cfgx\n")
    git("--git-dir", vault.path, "config", "core.excludesFile", str(rules))
    ws = vault.workspace("main")
    ws.write("a.cfgx", b"x")
    ws.write("b.txt", b"y")
    assert [c.path for c in ws.status()] == ["b.txt"]
    assert ws.status_ignored()[1].files == ("a.cfgx",)
    checkpoint.save(vault)
    assert _tree_paths(vault) == {"b.txt"}


def test_core_excludes_file_read_by_a_command_that_never_imports_pygit2(vault, tmp_path: Path) -> None:
    """`status` reads core.excludesFile through git itself: it must not import pygit2
    (~85 ms of an agent's `avfs --json status`), and the rule must still apply."""
    rules = tmp_path / "my-excludes"
    rules.write_text("*.cfgx\n")
    git("--git-dir", vault.path, "config", "core.excludesFile", str(rules))
    ws = vault.workspace("main")
    ws.write("a.cfgx", b"x")
    ws.write("b.txt", b"y")
    script = (
        "import sys, io, json, contextlib\n"
        "from avfs_git.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    assert main(['--home', {vault.home.path!r}, '--json', '--vault', 'v', 'status']) == 0\n"
        "assert 'pygit2' not in sys.modules, 'pygit2 was imported'\n"
        "print(out.getvalue())\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [c["path"] for c in doc["changes"]] == ["b.txt"] and doc["ignored"] == 1, doc


def test_no_rules_anywhere_runs_no_git(vault) -> None:
    """Without a .gitignore on the new paths' directories and no exclude pattern, git is
    not asked (the rules object never runs a process): checked by giving it no git at all."""
    ws = vault.workspace("main")
    ws.write("deep/dir/new.txt", b"x", parents=True)
    saved = os.environ["PATH"]
    os.environ["PATH"] = "/nonexistent"
    try:
        assert [c.path for c in ws.status()] == ["deep/dir/new.txt"]
        ws.write("deep/.gitignore", b"*.txt\n")
        from avfs_git.core.errors import InternalError

        with pytest.raises(InternalError, match="git"):
            ws.status()  # now git must be asked: proof that it was not before
    finally:
        os.environ["PATH"] = saved
    assert [c.path for c in ws.status()] == ["deep/.gitignore"]


def test_a_gitignore_added_later_hides_new_paths_but_never_tracked_ones(vault) -> None:
    ws = vault.workspace("main")
    ws.write("logs/old.log", b"tracked\n", parents=True)
    checkpoint.save(vault)
    ws.write("logs/old.log", b"tracked, changed\n")
    ws.write("logs/new.log", b"new\n")
    ws.write(".gitignore", b"logs/\n")
    assert {c.path for c in ws.status()} == {".gitignore", "logs/old.log"}
    # a tracked file renamed to an ignored name: git records the deletion only
    ws.rename("logs/old.log", "logs/renamed.log")
    assert {(c.path, str(c.status)) for c in ws.status()} == {
        (".gitignore", "added"),
        ("logs/old.log", "deleted"),
    }
    checkpoint.save(vault)
    assert _tree_paths(vault) == {".gitignore"}
    assert ws.read("logs/renamed.log") == b"tracked, changed\n" and ws.read("logs/new.log") == b"new\n"


def test_restore_undo_and_a_moved_ref_keep_ignored_paths(vault) -> None:
    ws = vault.workspace("main")
    ws.write(".gitignore", b"__pycache__/\n*.pyc\n")
    ws.write("pkg/mod.py", b"x = 1\n", parents=True)
    first = checkpoint.save(vault).checkpoint.commit
    ws.write("pkg/__pycache__/mod.cpython-311.pyc", b"\x00bytecode", parents=True)
    ws.write("pkg/other.py", b"y = 2\n")
    second = checkpoint.save(vault).checkpoint.commit
    assert "pkg/__pycache__/mod.cpython-311.pyc" not in _tree_paths(vault)
    checkpoint.restore(vault, "main", first)
    assert ws.read("pkg/__pycache__/mod.cpython-311.pyc") == b"\x00bytecode"  # like git checkout
    assert not ws.exists("pkg/other.py") and ws.status() == []
    checkpoint.undo(vault)
    assert ws.base == second and ws.read("pkg/other.py") == b"y = 2\n"
    assert ws.exists("pkg/__pycache__/mod.cpython-311.pyc")
    # the fork moves under an overlay holding only ignored paths (a commit made elsewhere):
    # the workspace follows it and keeps them
    tree = git("--git-dir", vault.path, "rev-parse", "main^{tree}").strip()
    moved = git("--git-dir", vault.path, "commit-tree", tree, "-p", second, "-m", "elsewhere").strip()
    git("--git-dir", vault.path, "update-ref", "refs/heads/main", moved, second)
    ws2 = vault.workspace("main")
    assert ws2.base == moved and ws2.status() == []
    assert ws2.read("pkg/__pycache__/mod.cpython-311.pyc") == b"\x00bytecode"


def test_ignored_paths_inside_a_restored_directory_stay_after_a_checkpoint(vault) -> None:
    """An ignored file held only by a git tree of an entry (a directory checked out from a
    revision that had it, before .gitignore named it) gets its own entry before the tree is
    retired: the checkpoint leaves it out and the workspace still shows it."""
    ws = vault.workspace("main")
    ws.write("d/a.txt", b"a", parents=True)
    ws.write("d/b.log", b"log")
    old = checkpoint.save(vault).checkpoint.commit
    ws.remove("d", recursive=True)
    ws.write(".gitignore", b"*.log\n")
    checkpoint.save(vault)
    checkpoint.checkout(vault, "main", "d", old)
    assert {c.path for c in ws.status()} == {"d/a.txt"}
    checkpoint.save(vault)
    assert _tree_paths(vault) == {".gitignore", "d/a.txt"}
    assert ws.read("d/b.log") == b"log" and ws.status() == []


def test_a_fork_carries_ignored_paths_and_its_checkpoints_leave_them_out(vault) -> None:
    ws = vault.workspace("main")
    ws.write(".gitignore", b"node_modules/\n")
    checkpoint.save(vault)
    ws.write("node_modules/left-pad/index.js", b"module.exports = 1\n", parents=True)
    ws.write("node_modules/.bin/tool", b"#!/bin/sh\n", parents=True)
    vault.create_fork("main", "f")
    f = vault.workspace("f")
    assert f.read("node_modules/left-pad/index.js") == b"module.exports = 1\n"
    assert f.status() == [] and not f.is_dirty() and len(f.status_ignored()[1].files) == 2
    f.write("app.js", b"require('left-pad')\n")
    res = checkpoint.save(vault, "f")
    assert res.created and res.ignored == 1  # `!! node_modules/`, as git status --ignored
    assert _tree_paths(vault, "f") == {".gitignore", "app.js"}
    assert f.read("node_modules/.bin/tool") == b"#!/bin/sh\n" and f.status() == []


def test_export_and_apply_leave_ignored_paths_out(vault, home, tmp_path: Path, monkeypatch) -> None:
    ws = vault.workspace("main")
    ws.write(".gitignore", b".venv/\n*.log\n")
    ws.write("src/app.py", b"print(1)\n", parents=True)
    ws.write(".venv/bin/python", b"#!/dead/mountpoint\n", parents=True)
    ws.write("run.log", b"log\n")
    ws.write(".venv/lib/site.py", b"x\n", parents=True)
    listed: list[str] = []  # the directories the export's walk listed (the real listing runs)
    children = View.children

    def spy(self: View, node: Any) -> Any:
        listed.append(node.path)
        return children(self, node)

    monkeypatch.setattr(View, "children", spy)
    res = q.export(vault, "main", str(tmp_path / "out"))
    assert res.ignored == 2
    got = {str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert got == {".gitignore", "src/app.py"}
    # nothing below the ignored venv was read only to be left out (a node_modules of 13,000
    # entries took 1.9 s of a 16-file export: realproj9)
    assert not [p for p in listed if p == ".venv" or p.startswith(".venv/")], listed


def test_apply_leaves_ignored_paths_out(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / ".gitignore").write_text(".venv/\n__pycache__/\n")
    (proj / "a.txt").write_text("one\n")
    home = Home(os.environ["AVFS_HOME"], author=AUTHOR, mounts=MOUNT_SIDE)
    up = q.up(home, str(proj), agent="a1", mount=False)
    vault = Home(home.path, author=AUTHOR, mounts=MOUNT_SIDE).vault(up.vault)
    ws = vault.workspace("a1")
    ws.write(".venv/bin/python", b"#!/dead/mountpoint/.venv/bin/python3\n", parents=True)
    ws.write("__pycache__/a.pyc", b"\x00", parents=True)
    ws.write("a.txt", b"one\ntwo\n")
    res = q.apply(vault, "a1")
    assert [c.path for c in res.changes] == ["a.txt"]
    assert (proj / "a.txt").read_text() == "one\ntwo\n"
    assert not (proj / ".venv").exists() and not (proj / "__pycache__").exists()
    assert ws.read(".venv/bin/python").startswith(b"#!")  # still in the fork


def test_cli_status_counts_and_lists_ignored(vault, cli) -> None:
    ws = vault.workspace("main")
    ws.write(".gitignore", b"*.log\n")
    ws.write("a.log", b"x")
    ws.write("dir/b.log", b"y", parents=True)
    ws.write("c.txt", b"z")
    doc = cli("--json", "--vault", "v", "status").json()
    assert doc["ignored"] == 2 and "ignored_paths" not in doc
    assert [c["path"] for c in doc["changes"]] == [".gitignore", "c.txt"]
    doc = cli("--json", "--vault", "v", "status", "--ignored").json()
    assert doc["ignored_paths"] == ["a.log", "dir/"]  # git's `!!` lines: dir/ holds only what it ignores
    validate(doc)
    human = cli("--vault", "v", "status", "--ignored")
    assert "! a.log" in human.out and "! dir/" in human.out
    assert "2 ignored path(s)" in cli("--vault", "v", "status").out
    cp = cli("--json", "--vault", "v", "checkpoint", "save").json()
    assert cp["created"] and cp["ignored"] == 2 and cp["checkpoint"]["changes"] == 2
    validate(cp)


# -- real tools in a real mount ----------------------------------------------------------------

PYPROJECT = b"""[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "tinypkg"
version = "0.1"
"""
GITIGNORE = b".venv/\n__pycache__/\n*.egg-info/\n.pytest_cache/\n.hypothesis/\nbuild/\n"


@pytest.fixture
def mounted(home, vault, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    require_fuse()
    ws = vault.workspace("main")
    ws.write(".gitignore", GITIGNORE)
    ws.write("pyproject.toml", PYPROJECT)
    ws.write("tinypkg/__init__.py", b"VALUE = 42\n", parents=True)
    ws.write(
        "tests/test_it.py",
        b"from hypothesis import given, strategies as st\n"
        b"import tinypkg\n\n\n"
        b"@given(st.integers())\n"
        b"def test_value(n):\n"
        b"    assert tinypkg.VALUE == 42\n",
        parents=True,
    )
    checkpoint.save(vault, message="project")
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp))
    try:
        yield vault, str(mp)
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def _offline(text: str) -> bool:
    return any(
        m in text
        for m in ("NewConnectionError", "Temporary failure in name resolution", "No matching distribution")
    )


def _run(argv: list[str], cwd: str) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{argv}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def test_venv_pip_install_and_pytest_caches_in_a_mount(mounted) -> None:
    """`python -m venv`, `pip install -e .` and pytest (with hypothesis) in a real mount:
    status and git in the mount agree that nothing changed, a checkpoint commits nothing of
    them, and the venv still works afterwards."""
    vault, mp = mounted
    base_python = getattr(sys, "_base_executable", sys.executable)
    _run([base_python, "-m", "venv", ".venv"], mp)
    py = os.path.join(mp, ".venv", "bin", "python")
    # pip builds in isolation: setuptools and wheel come from PyPI (the registries are
    # reachable in CI; elsewhere a missing network skips)
    pip = subprocess.run(
        [py, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", "-e", "."],
        cwd=mp,
        capture_output=True,
        text=True,
        check=False,
    )
    if pip.returncode != 0 and not IN_CI and _offline(pip.stdout + pip.stderr):
        pytest.skip(f"pip cannot reach PyPI for the build dependencies: {pip.stderr[-300:]}")
    assert pip.returncode == 0, pip.stdout + pip.stderr
    # pytest and hypothesis from the test run's environment, on the project in the mount
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = mp
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "cacheprovider", "tests"],
        cwd=mp,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for made in (".venv/bin/python", ".pytest_cache", ".hypothesis", "tests/__pycache__", "tinypkg.egg-info"):
        assert os.path.lexists(os.path.join(mp, made)), made

    ws = vault.workspace("main")
    changes, ignored = ws.status_ignored()
    assert changes == []
    assert {".venv", ".pytest_cache", ".hypothesis"} <= ignored.tops
    if not ws.overlay.upper_active():
        # an overlay mount's ignored new directories are not walked: each counts once
        assert len(ignored.files) > 1000
    assert _run(["git", "status", "--porcelain"], mp) == ""
    res = checkpoint.save(vault, message="after the tools")
    assert not res.created and res.ignored == len(ignored.tops)
    assert not ws.is_dirty()

    # the project changes; the next checkpoint holds that change and nothing ignored
    with open(os.path.join(mp, "tinypkg", "__init__.py"), "a") as fh:
        fh.write("OTHER = 1\n")
    res = checkpoint.save(vault, message="code")
    assert res.created and res.checkpoint.changes == 1
    assert _tree_paths(vault) == {".gitignore", "pyproject.toml", "tinypkg/__init__.py", "tests/test_it.py"}
    # the venv survives checkpoints: its python runs and imports the editable package
    out = _run([py, "-c", "import tinypkg; print(tinypkg.VALUE, tinypkg.OTHER)"], "/")
    assert out.strip() == "42 1"
    assert _run(["git", "status", "--porcelain"], mp) == ""


@pytest.mark.parametrize("mode", ["fuse", "materialized"])
def test_venv_through_proxy_exec_stays_out_of_the_commit(home, vault, mode: str) -> None:
    if mode == "fuse":
        require_fuse()
    ws = vault.workspace("main")
    ws.write(".gitignore", b".venv/\n")
    ws.write("app.py", b"print('hi')\n")
    checkpoint.save(vault)
    base_python = getattr(sys, "_base_executable", sys.executable)
    # the sandbox shows this interpreter's installation (read-only) where the policy names it
    Path(home.path, "policy.toml").write_text(f"version = 1\n[defaults]\nreadable = [{sys.base_prefix!r}]\n")
    try:
        res = exec_in(ws, [base_python, "-m", "venv", "--without-pip", ".venv"], mode=mode)
        env = res.to_dict()
        assert res.exit_code == 0 and res.error is None, env
        # (through an overlay mount, the ignored .venv is one directory nobody walks)
        # the new .venv git ignores whole is one path (`!! .venv/`), however it was walked
        assert res.to_dict()["changes"] == [] and res.commit is None and res.ignored == 1
        assert len(json.dumps(env)) < 4096
        assert not any(".venv" in p for p in _tree_paths(vault))
        # a second command writes a real change: its commit holds only that
        res = exec_in(
            ws,
            [".venv/bin/python", "-c", "open('out.txt', 'w').write('made by the venv')"],
            mode=mode,
        )
        assert res.exit_code == 0, res.to_dict()
        assert res.to_dict()["changes"] == [{"path": "out.txt", "status": "added"}] and res.commit is not None
        assert res.checkpoint is None  # nothing uncheckpointed but ignored paths before it
        assert _tree_paths(vault) == {".gitignore", "app.py", "out.txt"}
        assert ws.exists(".venv/bin/python") and ws.status() == []
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def test_cold_commands_that_never_prune_import_neither_the_pruner_nor_the_pack_set(vault) -> None:
    """A cold `status`, `ls` and `checkpoint save` (no resident server, each its own
    process) never read below an ignored directory in path order (:mod:`.wsignored`: a
    merge's dirtiness) nor go into libgit2 (:mod:`.packset`: which packs a thread's
    repository holds): neither module is imported (~0.2-0.3 ms each of a cold call)."""
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    ws.write(".gitignore", b"build/\n")
    ws.write("build/out.o", b"o\n", parents=True)
    script = (
        "import sys, io, json, contextlib\n"
        "from avfs_git.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    code = main(['--home', {vault.home.path!r}, '--json', '--vault', 'v', *sys.argv[1:]])\n"
        "print(json.dumps([code, sorted(m for m in sys.modules if m == 'pygit2' or m.endswith(('.wsignored', '.packset')))]))\n"
    )
    for argv in (["status"], ["ls"], ["checkpoint", "save"], ["status"]):
        env = {**os.environ, "AVFS_SERVER": "off"}
        proc = subprocess.run(
            [sys.executable, "-c", script, *argv], capture_output=True, text=True, check=False, env=env
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.splitlines()[-1]) == [0, []], argv

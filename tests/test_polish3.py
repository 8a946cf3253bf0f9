"""trial2's rough edges (the thirty-eighth round, h-polish3; docs/testing.md, "A builder's
day, again"), each through real components:

- an overlay mount's upper layer keeps every file the mount wrote, also once a checkpoint
  recorded it; while mounted, the last status or checkpoint's mark (with the daemon's
  journal) says which of them show the base. Once the mount was gone (unmounted, or in a
  fork of it, whose state is a snapshot of the source's) no journal answered, the mark was
  not read, and the first checkpoint folded, hashed and counted every such file again
  (2,000 written and checkpointed in the mount: ``changes: 2003`` for one file written).
  The mark now keeps the kernel's clock, and what changed since is what has a later
  inode change time (core/workspace/upperjournal.py, ``offline``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults import layers
from avfs_git.core.vaults.home import Home
from avfs_git.core.workspace.upperjournal import MARK_KEY
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts

from . import realdata
from .conftest import AUTHOR, git
from .test_overlay import _tree, require_overlay
from .test_share import require_layers

pytestmark = pytest.mark.slow


@pytest.fixture
def attrs_src(tmp_path: Path) -> Path:
    """attrs 24.2.0's sdist, unpacked."""
    src = realdata.extract(realdata.pypi_sdist("attrs", "24.2.0"), tmp_path / "src")
    assert (src / "src" / "attr" / "_make.py").is_file()
    return src


@pytest.fixture
def lhome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    """A home on the layers file system (a fork of a mounted fork is a snapshot of its state)."""
    require_layers()
    monkeypatch.delenv("AVFS_LAYERS", raising=False)
    monkeypatch.setattr(layers, "DEFAULT_MODE", "auto")
    h = Home(str(tmp_path / "lhome"), author=AUTHOR, mounts=MOUNT_SIDE)
    yield h
    h.close()


def _session(mp: str, src: Path) -> None:
    """An agent's session in a mount: files at the root, a new directory of 92 files,
    files edited and added in directories the base has."""
    for n in range(3):
        Path(mp, f"NOTES{n}.md").write_text(f"note {n}\n")
    vendored = Path(mp, "vendored")
    for k in range(4):
        shutil.copytree(src / "src" / "attr", vendored / f"copy{k}")
    attr = Path(mp, "src", "attr")
    for name in ("_make.py", "validators.py", "filters.py"):
        with open(attr / name, "a") as fh:
            fh.write("# edited in the mount\n")
    (attr / "_new.py").write_text("NEW = 1\n")


def _after(mp: str) -> None:
    """What the session changes after its checkpoint: four paths."""
    with open(Path(mp, "NOTES0.md"), "a") as fh:  # a recorded file at the root, edited
        fh.write("more\n")
    os.unlink(Path(mp, "vendored", "copy1", "filters.py"))  # removed from a made directory
    Path(mp, "vendored", "copy2", "later.py").write_text("LATER = 2\n")  # added there
    os.unlink(Path(mp, "src", "attr", "_new.py"))  # a recorded new file in a base directory, removed


def _names(vault: Any, rev: str) -> set[str]:
    return set(git("--git-dir", vault.path, "ls-tree", "-r", "--name-only", rev).split())


@pytest.mark.parametrize("edited_after", [False, True])
def test_the_mount_s_recorded_files_are_not_captured_again_once_it_is_gone(
    home: Home, attrs_src: Path, tmp_path: Path, edited_after: bool
) -> None:
    require_overlay()
    vault = home.create_vault("at", from_dir=str(attrs_src))
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        _session(mp, attrs_src)
        first = checkpoint.save(vault, name="in-mount")
        at = first.checkpoint.commit
        assert first.checkpoint.changes > 90
        if edited_after:
            _after(mp)
        live = _tree(mp)
    finally:
        mounts.unmount(home, vault, "main")
    ws = vault.workspace("main")
    expected = {"NOTES0.md", "vendored/copy1/filters.py", "vendored/copy2/later.py", "src/attr/_new.py"}
    assert {c.path for c in ws.status()} == (expected if edited_after else set())
    ws.write("ONE.txt", b"one\n")  # the fold of the layer the mount left
    # the recorded files were dropped from the layer, not folded into entries
    assert len(ws.overlay.all()) <= len(expected) + 1
    saved = checkpoint.save(vault, name="after")
    assert saved.checkpoint.changes == (len(expected) if edited_after else 0) + 1
    assert git("--git-dir", vault.path, "diff", "--name-only", at, saved.checkpoint.commit).split() == sorted(
        (expected if edited_after else set()) | {"ONE.txt"}
    )
    assert not ws.status()
    live["ONE.txt"] = ("file", b"one\n", False)
    assert {k: v for k, v in _tree_of_fork(home, vault, tmp_path).items()} == live


def _tree_of_fork(home: Home, vault: Any, tmp_path: Path, fork: str = "main") -> dict[str, Any]:
    mp = str(tmp_path / f"again-{fork}")
    os.mkdir(mp)
    mounts.mount(home, vault, fork, mp, backend="overlay")
    try:
        return _tree(mp)
    finally:
        mounts.unmount(home, vault, fork)


def test_a_fork_of_a_mounted_fork_captures_only_its_own_change(
    lhome: Home, attrs_src: Path, tmp_path: Path
) -> None:
    require_overlay()
    vault = lhome.create_vault("at", from_dir=str(attrs_src))
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    mounts.mount(lhome, vault, "main", mp, backend="overlay")
    try:
        _session(mp, attrs_src)
        checkpoint.save(vault, name="in-mount")
        Path(mp, "after.txt").write_text("after\n")  # after the checkpoint, before the fork
        vault.fork("main", "f1")
        f1 = vault.workspace("f1")
        assert [c.path for c in f1.status()] == ["after.txt"]
        f1.write("ONE.txt", b"one\n")
        saved = checkpoint.save(vault, "f1")
    finally:
        mounts.unmount(lhome, vault, "main")
    assert saved.checkpoint.changes == 2
    assert git("--git-dir", vault.path, "diff", "--name-only", "main", "f1").split() == [
        "ONE.txt",
        "after.txt",
    ]
    assert _names(vault, "f1") == _names(vault, "main") | {"ONE.txt", "after.txt"}


def test_a_change_the_mark_missed_is_folded_not_dropped(home: Home, attrs_src: Path, tmp_path: Path) -> None:
    """The fold checks each file it drops against the lower layer: a file the mark would
    call recorded but whose bytes differ (here a mark made to say so: dated after the
    change) is folded as a change, never lost."""
    require_overlay()
    vault = home.create_vault("at", from_dir=str(attrs_src))
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        _session(mp, attrs_src)
        at = checkpoint.save(vault, name="in-mount").checkpoint.commit
    finally:
        mounts.unmount(home, vault, "main")
    ws = vault.workspace("main")
    with open(os.path.join(ws.overlay.upper_dir, "vendored", "copy3", "_make.py"), "r+b") as fh:
        fh.write(b"X")  # the same size, other bytes
    mark = json.loads(ws.overlay.get_meta(MARK_KEY) or "{}")
    mark["ctime_ns"] += 3600 * 10**9
    ws.overlay.set_meta(MARK_KEY, json.dumps(mark))
    ws.write("ONE.txt", b"one\n")
    saved = checkpoint.save(vault, name="after")
    assert saved.checkpoint.changes == 2
    assert git("--git-dir", vault.path, "diff", "--name-only", at, saved.checkpoint.commit).split() == [
        "ONE.txt",
        "vendored/copy3/_make.py",
    ]
    assert ws.read("vendored/copy3/_make.py").startswith(b"X SPDX")


def _cli(*args: str) -> Any:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def test_status_ignored_lists_what_git_lists_whatever_was_walked(attrs_src: Path, tmp_path: Path) -> None:
    """A venv carried into a fork was listed by `status --ignored` as `.venv` where nothing
    of it was read, and as each of its files once a write or checkpoint had walked it,
    under the same count; git lists `.venv/` (its ``!!`` line), and so does avfs now."""
    import subprocess
    import sys

    require_overlay()
    (attrs_src / ".gitignore").write_text(".venv/\n*.log\n")
    _cli("vault", "create", "at", "--from", str(attrs_src))
    mp = _cli("mount", "at:main").stdout.strip()
    try:  # a venv made in the fork, and a log beside the code
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", f"{mp}/.venv"], check=True)
        Path(mp, "src", "attr", "debug.log").write_text("log\n")
    finally:
        _cli("unmount", "at:main")
    # the same tree as a checkout, for git
    git("-C", str(attrs_src), "init", "-q")
    git("-C", str(attrs_src), "add", "-A")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(attrs_src / ".venv")], check=True)
    (attrs_src / "src" / "attr" / "debug.log").write_text("log\n")
    want = sorted(
        ln[3:]
        for ln in git("-C", str(attrs_src), "status", "--ignored", "--porcelain").splitlines()
        if ln[:2] == "!!"
    )
    assert want == [".venv/", "src/attr/debug.log"]
    _cli("vault", "fork", "at", "f1")  # carries them
    for step in ("fresh", "written", "checkpointed"):
        if step == "written":
            _cli("--vault", "at:f1", "write", "NOTES.md", "n")
        elif step == "checkpointed":
            _cli("--vault", "at:f1", "checkpoint", "save")
        doc = json.loads(_cli("--json", "--vault", "at:f1", "status", "--ignored").stdout)
        assert doc["ignored_paths"] == want and doc["ignored"] == 2, (step, doc)
        human = _cli("--vault", "at:f1", "status", "--ignored").stdout
        assert [ln[2:] for ln in human.splitlines() if ln.startswith("! ")] == want, (step, human)
        short = _cli("--vault", "at:f1", "status", "-s", "--ignored").stdout
        assert [ln[3:] for ln in short.splitlines() if ln.startswith("!! ")] == want, (step, short)


def test_the_license_is_an_spdx_string_and_the_build_needs_a_setuptools_that_reads_it() -> None:
    """`make install` printed setuptools' deprecation of `project.license` as a TOML table
    (three times an install); a string (SPDX) is read from setuptools 77 on."""
    import tomllib

    doc = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert doc["project"]["license"] == "MIT"
    (need,) = [r for r in doc["build-system"]["requires"] if r.startswith("setuptools")]
    assert need == "setuptools>=77"


def test_a_redirect_that_makes_a_read_only_program_mutating_names_itself() -> None:
    """`policy check -- sh -c 'echo hi >> README.rst'` was summed up `allow (mutating;
    rule read-only)`: the class the redirect's, the rule echo's. The finding that adds the
    class names the decision now, and the rule's word stays in the reason."""
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "avfs_git",
            "--json",
            "policy",
            "check",
            "--",
            "sh",
            "-c",
            "echo hi >> README.rst",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)["decision"]
    assert (d["action"], d["categories"], d["rule"]) == ("allow", ["mutating"], "builtin:redirect")
    assert d["reason"] == "allowed: writes to README.rst; `echo hi` matches rule 'read-only' (read_only)"
    human = subprocess.run(
        [sys.executable, "-m", "avfs_git", "policy", "check", "--", "sh", "-c", "echo hi >> README.rst"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "  - echo hi: mutating (builtin:redirect)" in human.splitlines()


@pytest.mark.parametrize("server", ["auto", "off"])
def test_write_from_a_file_takes_vault_create_s_word(
    attrs_src: Path, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`avfs write PATH --from FILE` was click's bare `No such option '--from'` (the option
    is --file; `vault create` takes --from): both name it now, on the fast path and click's."""
    monkeypatch.setenv("AVFS_SERVER", server)
    _cli("vault", "create", "at", "--from", str(attrs_src))
    src = attrs_src / "src" / "attr" / "_make.py"
    out = _cli("--json", "--vault", "at", "write", "copied.py", "--from", str(src)).stdout
    assert json.loads(out)["kind"] == "file_write"
    assert _cli("--vault", "at", "cat", "copied.py").stdout == src.read_text()


def test_a_builder_s_wrong_calls_say_what_to_do(home: Home, attrs_src: Path) -> None:
    """h-polish3's trial (a builder from the README, on an npm package): `Workspace.write`
    given a str took it for a host file's path ("cannot use x.txt: No such file or
    directory", hint: check --home), `exec_in(ws, "npm test")` ran a program named `npm
    test` (exit 127), and `avfs --json ... status --json` hinted `avfs --json ... --json
    status`. Each says what to do now, with nothing changed."""
    import avfs_git

    vault = home.create_vault("at", from_dir=str(attrs_src))
    ws = vault.workspace("main")
    with pytest.raises(TypeError, match=r"not str: give text\.encode\(\)"):
        ws.write("x.txt", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"shell='true --version'"):
        avfs_git.exec_in(ws, "true --version")  # type: ignore[arg-type]
    assert not ws.exists("x.txt") and not ws.status()
    assert git("--git-dir", vault.path, "rev-list", "--count", "main").strip() == "1"


def test_json_given_twice_is_hinted_once() -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "--vault", "v", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and not r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["hint"] == "avfs --json --vault v status", err


def test_up_refreshes_a_directory_that_gained_a_node_modules_bin(tmp_path: Path) -> None:
    """`avfs vault create P --from DIR`, `npm install` in DIR (node_modules/.bin/NAME, a link
    into a package), then the README's `avfs up DIR --agent claude`: "node_modules/.bin: no
    such directory", exit 1, no mount (the refresh made a link in a directory it had not
    made yet). It refreshes and mounts now."""
    require_overlay()
    src = realdata.extract(realdata.npm_tarball("lodash", "4.17.21"), tmp_path / "src")
    _cli("vault", "create", "lo", "--from", str(src))
    pkg = src / "node_modules" / "tool"  # what npm install leaves: a package, its bin linked
    (pkg / "bin").mkdir(parents=True)
    (pkg / "bin" / "tool.js").write_text("#!/usr/bin/env node\nconsole.log('tool')\n")
    (src / "node_modules" / ".bin").mkdir()
    os.symlink("../tool/bin/tool.js", src / "node_modules" / ".bin" / "tool")
    mp = _cli("up", str(src), "--agent", "claude").stdout.strip()
    try:
        assert os.readlink(Path(mp, "node_modules", ".bin", "tool")) == "../tool/bin/tool.js"
        assert Path(mp, "node_modules", ".bin", "tool").read_text().endswith("console.log('tool')\n")
    finally:
        _cli("unmount", "lo:claude")
    assert (
        "node_modules/.bin/tool"
        in git(
            "--git-dir", _cli("vault", "path", "lo").stdout.strip(), "ls-tree", "-r", "--name-only", "main"
        ).split()
    )

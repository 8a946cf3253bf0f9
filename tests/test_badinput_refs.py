"""A vault's refs as git keeps them, damaged or odd: a ``packed-refs`` line git cannot read
(git: ``fatal: unexpected line``; libgit2: "corrupted packed references file"), a HEAD that
names no branch. Each command that needs the refs says so in words (the line named, the
file to fix) with one JSON document, and changes nothing: a named checkpoint moved the
branch and then failed to make its name's ref (exit 70, no op log entry). docs/security.md,
bad input.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import CliResult, git
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]


def test_a_packed_refs_line_git_cannot_read_is_named_and_nothing_changes(cli: Cli) -> None:
    import pygit2  # noqa: F401 - loaded, as in the resident server that serves the CLI

    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a.txt", "a").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "c1").code == 0
    vault = os.path.join(os.environ["AVFS_HOME"], "vaults", "v.git")
    git("--git-dir", vault, "pack-refs", "--all")
    packed = Path(vault, "packed-refs")
    good = packed.read_bytes()
    # (as long as a ref's record: a shorter last record is refused at every packed read, as
    # git's verify_buffer_safe refuses it, tests/test_realdata7.py; this one only by a read
    # of the whole file, as git's own)
    packed.write_bytes(good + b"garbage line here, as long as a ref's record would be\n")
    assert cli("--vault", "v", "write", "b.txt", "b").code == 0  # (the overlay: no whole read)
    try:
        before = _home_state(os.environ["AVFS_HOME"])
        for args in (("checkpoint", "save", "c2"), ("checkpoint", "list"), ("log",)):
            r = cli("--vault", "v", "--json", *args)
            assert r.code != 0 and r.out.count("\n") == 1, (args, r.code, r.out)  # one document
            err = r.json()["error"]
            assert err["code"] == "corrupt_state", (args, err)  # (was internal, no hint)
            assert "line 4" in err["message"] and "garbage line here" in err["message"], err
            assert "packed-refs" in err["hint"], err
            h = cli("--vault", "v", *args)
            assert h.code == r.code and "garbage line here" in h.err and "hint:" in h.err, h.err
        # nothing changed (the branch had moved, its op log entry missing, the name's ref absent)
        assert _changed(before, _home_state(os.environ["AVFS_HOME"])) == []
    finally:
        packed.write_bytes(good)
    st = cli("--vault", "v", "--json", "status").json()
    assert [c["path"] for c in st["changes"]] == ["b.txt"], st
    assert cli("--vault", "v", "checkpoint", "save", "c2").code == 0  # the line fixed: it goes on
    assert git("--git-dir", vault, "rev-parse", "refs/avfs/checkpoints/main/-/c2") != ""


def test_a_packed_refs_ending_in_a_record_git_refuses_refuses_even_a_write(cli: Cli) -> None:
    """A last record shorter than a ref's (git's verify_buffer_safe: "unexpected line" at
    every packed read, so git refuses even `rev-parse`): avfs's write, which reads the
    fork's ref there, is a corrupt_state naming the file, nothing changed; mended, it goes on."""
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a.txt", "a").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "c1").code == 0
    vault = os.path.join(os.environ["AVFS_HOME"], "vaults", "v.git")
    git("--git-dir", vault, "pack-refs", "--all")
    packed = Path(vault, "packed-refs")
    good = packed.read_bytes()
    packed.write_bytes(good + b"garbage line here\n")
    try:
        before = _home_state(os.environ["AVFS_HOME"])
        r = cli("--vault", "v", "--json", "write", "b.txt", "b")
        assert r.code != 0 and r.out.count("\n") == 1, (r.code, r.out)
        err = r.json()["error"]
        assert err["code"] == "corrupt_state" and "garbage line here" in err["message"], err
        assert "packed-refs" in err["message"] and "remove the line" in err["hint"], err
        assert _changed(before, _home_state(os.environ["AVFS_HOME"])) == []
    finally:
        packed.write_bytes(good)
    assert cli("--vault", "v", "write", "b.txt", "b").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "c2").code == 0


def test_a_head_naming_no_branch_wedges_nothing(cli: Cli) -> None:
    """git leaves HEAD naming a branch that is gone (`git branch -m` elsewhere, a person's
    edit): avfs addresses forks by their refs, never by HEAD, and goes on."""
    assert cli("vault", "create", "v").code == 0
    vault = os.path.join(os.environ["AVFS_HOME"], "vaults", "v.git")
    Path(vault, "HEAD").write_text("ref: refs/heads/nothere\n")
    assert cli("--vault", "v", "write", "a.txt", "a").code == 0
    for args in (
        ("status",),
        ("checkpoint", "save", "c1"),
        ("log",),
        ("vault", "info"),
        ("checkpoint", "list"),
    ):
        r = cli("--vault", "v", "--json", *args)
        assert r.code == 0, (args, r.code, r.out)
    assert cli("--json", "vault", "list").code == 0
    Path(vault, "HEAD").write_text("ref: refs/heads/main\n")  # (the fixture's fsck reads HEAD)


GIT_ONLY = ["-dash", "HEAD", "fix#1", "é"]  # names git takes for a branch, a fork's may not


def test_branches_git_takes_and_a_fork_may_not_wedge_no_listing(cli: Cli) -> None:
    """Branches made by git in the vault (or pushed) under names a fork may not have:
    `vault info` failed whole (`invalid_name` for `-dash`); now it lists them as their refs
    say, the commands that walk every fork go on, and addressing one says why not."""
    assert cli("vault", "create", "v").code == 0
    vault = os.path.join(os.environ["AVFS_HOME"], "vaults", "v.git")
    for name in GIT_ONLY:
        git("--git-dir", vault, "update-ref", f"refs/heads/{name}", "refs/heads/main")
    assert cli("--vault", "v", "write", "a.txt", "a").code == 0
    before = _home_state(os.environ["AVFS_HOME"])
    info = cli("--vault", "v", "--json", "vault", "info")
    assert info.code == 0, info.out  # (was invalid_name)
    assert sorted(f["name"] for f in info.json()["forks"]) == sorted([*GIT_ONLY, "main"])
    human = cli("--vault", "v", "vault", "info")
    assert human.code == 0 and all(n in human.out for n in GIT_ONLY), human.out
    for args in (("stats",), ("doctor",), ("prune", "--dry-run"), ("vault", "list")):
        r = cli("--vault", "v", "--json", *args)
        assert r.code == 0, (args, r.code, r.out)
    assert _changed(before, _home_state(os.environ["AVFS_HOME"])) == []
    r = cli("--vault", "v:fix#1", "--json", "status")
    assert r.code == 1 and r.json()["error"]["code"] == "invalid_name", r.out
    assert cli("--vault", "v", "checkpoint", "save", "c1").code == 0


def _run(args: tuple[str, ...], libgit2: bool) -> CliResult:
    """`avfs --json --vault v ARGS` in a process of its own with a deadline; ``libgit2``:
    with pygit2 loaded first, as in the resident server that serves the CLI."""
    code = "import runpy, sys\n"
    if libgit2:
        code += "import pygit2\n"
    code += "sys.argv[0] = 'avfs'\nrunpy.run_module('avfs_git', run_name='__main__')\n"
    proc = subprocess.run(
        [sys.executable, "-c", code, "--json", "--vault", "v", *args], capture_output=True, timeout=120
    )
    return CliResult(proc.returncode, proc.stdout.decode(), proc.stderr.decode(), proc.stdout)


@pytest.mark.parametrize("libgit2", [False, True], ids=["files", "libgit2"])
@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_a_packed_refs_that_is_a_fifo_or_a_directory_is_named(cli: Cli, kind: str, libgit2: bool) -> None:
    """A FIFO as the vault's ``packed-refs`` held every command that lists refs for ever
    (`log`, `checkpoint list`, `vault info`, `gc`: avfs, or libgit2, opened it to read); a
    directory was exit 70 (IsADirectoryError). Now each says the file is not one, in words,
    one JSON document, nothing changed (processes with a deadline: on main they hang; the
    set-up in the test's process, ``conftest.run_in_process``)."""
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a.txt", "a").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "c1").code == 0
    home = os.environ["AVFS_HOME"]
    packed = os.path.join(home, "vaults", "v.git", "packed-refs")
    if os.path.exists(packed):
        os.unlink(packed)
    # (the home's state before the damage and after it is undone: git's own listing, which
    # the state holds, waits on such a FIFO too)
    before = _home_state(home)
    (os.mkfifo if kind == "fifo" else os.mkdir)(packed)
    try:  # (undone whatever happens: the fixture's `git fsck` at the end waits on a FIFO too)
        for args in (("log",), ("checkpoint", "list"), ("vault", "info"), ("gc",)):
            r = _run(args, libgit2)
            assert r.code == 70 and r.out.count("\n") == 1, (args, r.code, r.out, r.err)
            err = r.json()["error"]
            assert err["code"] == "corrupt_state" and packed in err["message"], (args, err)  # (was internal)
            assert "is not a file" in err["message"] and "move it aside" in err["hint"], (args, err)
    finally:
        (os.unlink if kind == "fifo" else os.rmdir)(packed)
    assert _changed(before, _home_state(home)) == []


@pytest.mark.parametrize("libgit2", [False, True], ids=["files", "libgit2"])
@pytest.mark.parametrize("kind", ["fifo", "empty", "garbage"])
def test_a_branch_file_that_holds_no_commit_id_is_named(cli: Cli, kind: str, libgit2: bool) -> None:
    """A fork's loose ref file a FIFO held every command of the fork for ever (avfs's read
    of it, libgit2's); emptied, it was "no fork 'main': its branch was deleted outside
    avfs"; other bytes were read as a commit id ("'ascii' codec can't encode ..."). Now
    each names the ref, its file and what it holds, with the git command that puts it
    back; nothing changed (the set-up in the test's process, each call after the damage
    a process of its own with a deadline)."""
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a.txt", "a").code == 0
    home = os.environ["AVFS_HOME"]
    ref = os.path.join(home, "vaults", "v.git", "refs", "heads", "main")
    good = Path(ref).read_bytes()
    before = _home_state(home)  # (and after the damage is undone: git waits on a FIFO too)
    os.unlink(ref)
    if kind == "fifo":
        os.mkfifo(ref)
    else:
        Path(ref).write_bytes(b"" if kind == "empty" else b"garbage\x00\xff{[\n")
    try:  # (undone whatever happens: the fixture's `git fsck` at the end waits on a FIFO too)
        for args in (("status",), ("log",), ("write", "b.txt", "b"), ("checkpoint", "save")):
            r = _run(args, libgit2)
            assert r.code == 70 and r.out.count("\n") == 1, (args, r.code, r.out, r.err)
            err = r.json()["error"]
            assert err["code"] == "corrupt_state" and ref in err["message"], (args, err)
            assert "refs/heads/main is damaged" in err["message"] and "update-ref" in err["hint"], (args, err)
    finally:
        os.unlink(ref)
        Path(ref).write_bytes(good)
    assert _changed(before, _home_state(home)) == []

"""A conflicted file's markers made in process by libgit2, held to `git merge-file` (h-merge6).

A merge that writes its conflicts made each conflicted text file's diff3-style markers
with a `git merge-file` process (~2-3 ms of the kept process's CPU a file on minimist,
and git's own beside it; docs/benchmarks.md, h-merge5's section). libgit2's merge of one
file (``git_merge_file_from_index``, the same xdiff merge) now makes them in process
(:func:`.mergetrees.merge_file`); where libgit2 would take a side for binary and git
would not, git is asked as before. The two are compared here on real files: every file
that changed between three of attrs's releases, each triple merged three ways."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint, merge
from avfs_git.core.store import gitrun
from avfs_git.core.store.mergetrees import merge_file

from . import realdata

RELEASES = ["22.2.0", "23.1.0", "23.2.0", "24.1.0"]  # attrs's (as tests/gitmodel_steps13.py's)
LABELS = ("ours", "base", "theirs")


def _git_merge_file(tmp: Path, ours: bytes, base: bytes, theirs: bytes) -> bytes:
    files = []
    for name, data in (("o", ours), ("b", base), ("t", theirs)):
        (tmp / name).write_bytes(data)
        files.append(str(tmp / name))
    p = subprocess.run(
        ["git", "merge-file", "-p", "--diff3", "-L", "ours", "-L", "base", "-L", "theirs", *files],
        capture_output=True,
    )
    assert 0 <= p.returncode <= 127, p.stderr
    return p.stdout


def _ours(store: Any, sides: list[bytes | None]) -> bytes | None:
    got = [None if d is None else (store.blob_from_bytes(d), d) for d in sides]
    anc, ours, theirs = got
    assert ours is not None and theirs is not None
    return merge_file(store, (anc, ours, theirs), 0o100644, LABELS)


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, bytes]]:
    """Each release's files (path -> bytes)."""
    out = []
    for v in RELEASES:
        root = realdata.extract(realdata.pypi_sdist("attrs", v), tmp_path_factory.mktemp(f"attrs-{v}"))
        out.append({str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()})
    return out


def test_libgit2_s_markers_are_git_merge_file_s_on_real_files(
    vault: Any, tmp_path: Path, releases: list[dict[str, bytes]]
) -> None:
    """For three successive releases (a, b, c) and every file that is not the same in all
    three: merged as (base a, ours b, theirs c), (a, c, b) and (b, a, c): libgit2's bytes
    are git's, conflicts and clean merges alike (a file new since a, or empty in it, has
    no base: git's, below)."""
    compared = conflicted = declined = 0
    for a, b, c in zip(releases, releases[1:], releases[2:], strict=False):
        for path in sorted(b.keys() & c.keys()):
            if a.get(path) == b[path] == c[path]:
                continue
            base = a.get(path)
            if not base or any(b"\0" in f[:8000] for f in (base, b[path], c[path])):
                continue  # (no base: git's, below; binary: never merged, as git's)
            orders = [(base, b[path], c[path]), (base, c[path], b[path])]
            if b[path]:
                orders.append((b[path], base, c[path]))
            for anc, ours, theirs in orders:
                got = _ours(vault.store, [anc, ours, theirs])
                if got is None:
                    declined += 1
                    continue
                assert anc is not None
                want = _git_merge_file(tmp_path, ours, anc, theirs)
                assert got == want, path
                compared += 1
                conflicted += b"\n||||||| base\n" in want
    assert compared >= 300 and conflicted >= 50, (compared, conflicted, declined)
    assert declined == 0, declined


@pytest.mark.parametrize(
    "sides",
    [
        pytest.param([b"a\nb\nc", b"a\nB\nc", b"a\nb\nC"], id="no-final-newline"),
        pytest.param([b"a\nb\n", b"a\nx", b"a\ny"], id="no-final-newline-conflict"),
        pytest.param([b"a\r\nb\r\nc\r\n", b"a\r\nB\r\nc\r\n", b"a\r\nb2\r\nc\r\n"], id="crlf"),
        pytest.param([b"caf\xe9\n1\n", b"caf\xe9\n2\n", b"caf\xe9\n3\n"], id="latin-1"),
        pytest.param([b"x\n", b"x\ny\n", b"z\nx\n"], id="clean"),
        pytest.param(
            [b"\tesc \x1b[0m\x0c\x08\n", b"\tesc \x1b[1m\x0c\x08\n", b"\tesc \x1b[2m\x0c\x08\n"], id="escapes"
        ),
        pytest.param([b"1\n2\n3\n4\n5\n", b"1\n2a\n3\n4a\n5\n", b"1\n2b\n3\n4a\n5\n"], id="zealous"),
    ],
)
def test_edge_files_match_git(vault: Any, tmp_path: Path, sides: list[bytes | None]) -> None:
    got = _ours(vault.store, sides)
    assert got is not None
    anc, ours, theirs = sides
    assert ours is not None and theirs is not None
    assert got == _git_merge_file(tmp_path, ours, anc or b"", theirs)


@pytest.mark.parametrize(
    ("base", "ours"),
    [
        pytest.param(None, b"ours\n", id="add-add"),
        pytest.param(b"", b"ours\n", id="empty-base"),
        pytest.param(b"base\n", b"", id="emptied"),
    ],
)
def test_a_conflict_with_an_empty_side_is_merged_by_git(
    vault: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: bytes | None, ours: bytes
) -> None:
    """libgit2 leaves an empty side's label off its marker line (git writes ``|||||||
    base``, ``<<<<<<< ours``): declined by :func:`.mergetrees.merge_file`, and a merge
    writing such a conflict asks `git merge-file` (an add/add: both forks made the file)."""
    assert _ours(vault.store, [base, ours, b"theirs\n"]) is None
    ws = vault.workspace("main")
    if base is not None:
        ws.write("f.txt", base)
    ws.write("other.txt", b"o\n")
    checkpoint.save(vault, "main")
    vault.create_fork("main", "a")
    vault.workspace("a").write("f.txt", b"theirs\n")
    checkpoint.save(vault, "a")
    ws.write("f.txt", ours)
    checkpoint.save(vault, "main")
    ran = _merge_files_run(monkeypatch)
    res = merge.merge(vault, "a", "main", write_conflicts=True)
    assert res.status == "conflicts_written"
    assert [c.kind for c in res.conflicts] == ["add_add" if base is None else "content"]
    assert len(ran) == 1
    want = _git_merge_file(tmp_path, ours, base or b"", b"theirs\n").replace(b">>>>>>> theirs", b">>>>>>> a")
    assert b"||||||| base\n" in want and vault.workspace("main").read("f.txt") == want


def _merge_files_run(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The `git merge-file` processes run from now on (they still run)."""
    ran: list[list[str]] = []
    real = gitrun.run

    def run(args: list[str], *a: Any, **k: Any) -> Any:
        if args[:1] == ["merge-file"]:
            ran.append(list(args))
        return real(args, *a, **k)

    monkeypatch.setattr(gitrun, "run", run)
    return ran


def test_a_merge_writes_its_conflicts_without_git(
    vault: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two conflicted text files (one in Latin-1, one with CRLF line ends): no `git
    merge-file` runs (main's code: one a file), and what is written is what git's would
    be."""
    ws = vault.workspace("main")
    ws.write("a.txt", b"1\n2\n3\n")
    ws.write("l.txt", b"caf\xe9\n")
    ws.write("n.txt", b"new\r\nbase\r\n")
    checkpoint.save(vault, "main")
    vault.create_fork("main", "src")
    s = vault.workspace("src")
    s.write("a.txt", b"1\ntheirs\n3\n")
    s.write("l.txt", b"caf\xe9 theirs\n")
    s.write("n.txt", b"new\r\ntheirs\r\n")
    checkpoint.save(vault, "src")
    ws.write("a.txt", b"1\nours\n3\n")
    ws.write("l.txt", b"caf\xe9 ours\n")
    ws.write("n.txt", b"new\r\nours\r\n")
    checkpoint.save(vault, "main")
    ran = _merge_files_run(monkeypatch)
    res = merge.merge(vault, "src", "main", write_conflicts=True)
    assert res.status == "conflicts_written"
    assert sorted((c.path, c.kind) for c in res.conflicts) == [
        ("a.txt", "content"), ("l.txt", "content"), ("n.txt", "content"),
    ]  # fmt: skip
    assert ran == []
    main = vault.workspace("main")
    for path, base, ours, theirs in (
        ("a.txt", b"1\n2\n3\n", b"1\nours\n3\n", b"1\ntheirs\n3\n"),
        ("l.txt", b"caf\xe9\n", b"caf\xe9 ours\n", b"caf\xe9 theirs\n"),
        ("n.txt", b"new\r\nbase\r\n", b"new\r\nours\r\n", b"new\r\ntheirs\r\n"),
    ):
        want = _git_merge_file(tmp_path, ours, base, theirs).replace(b">>>>>>> theirs", b">>>>>>> src")
        assert main.read(path) == want, path
    assert merge.merge_abort(vault, "main").status == "aborted"
    assert vault.workspace("main").read("l.txt") == b"caf\xe9 ours\n"


def test_permutations_of_one_file(vault: Any, tmp_path: Path) -> None:
    """Every order of four versions of one conflicting file (base, ours, theirs)."""
    versions = [b"a\nb\nc\nd\n", b"a\nB\nc\nd\n", b"a\nb\nc\nD\n", b"a\nBB\nc\nD\ne\n"]
    for anc, ours, theirs in itertools.permutations(versions, 3):
        assert _ours(vault.store, [anc, ours, theirs]) == _git_merge_file(tmp_path, ours, anc, theirs)

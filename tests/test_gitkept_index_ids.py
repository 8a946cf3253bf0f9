"""What git's kept index names (mount/gitkepthold.py ``index_ids``), where the entries a
valid cache-tree node covers are stepped over by its entry count (gitmodel23), against the
walk that reads every entry's name (gitmodel22's), on indexes real git writes: nothing
staged, a file staged deep or at the top, a new directory, a conflict's stages, an
intent-to-add, a gitlink, the skip-worktree bit (version 3), version 4, a split index."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from avfs_git.mount.gitkepthold import index_ids
from avfs_git.mount.indexflags import cache_tree, extension, named_entries, whole_entries

_GITLINK = 0o160000


def _every_name(git_dir: str, index: bytes) -> dict[str, str]:
    """gitmodel22's ``index_ids``: every entry's name read and its directories looked up."""
    data = whole_entries(git_dir, index) or index
    ext = extension(data, b"TREE")
    nodes = (cache_tree(ext) if ext is not None else None) or {}
    valid = {path: oid.hex() for path, oid in nodes.items() if oid is not None}
    if b"" in valid:
        return {valid[b""]: ""}
    out = {oid: path.decode("utf-8", "surrogateescape") for path, oid in valid.items()}
    for name, mode, oid in named_entries(data) or ():
        if mode == _GITLINK:
            continue
        parts = name.split(b"/")[:-1]
        if not any(b"/".join(parts[: i + 1]) in valid for i in range(len(parts))):
            out[oid] = name.decode("utf-8", "surrogateescape")
    return out


def _git(repo: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, input=stdin, capture_output=True, text=True, check=True
    ).stdout.strip()


def _blob(repo: Path, text: str) -> str:
    return _git(repo, "hash-object", "-w", "--stdin", stdin=text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose index holds 2,000 entries in 3 levels of directories and 5 at
    the top, its cache tree whole (`git write-tree`)."""
    r = tmp_path / "r"
    r.mkdir()
    _git(r, "init", "-q")
    blob = _blob(r, "same\n")
    rows = [f"100644 {blob}\ttop{i}.txt" for i in range(5)]
    rows += [f"100644 {blob}\td{i % 7}/m{i % 5}/l{i % 3}/f{i:05d}.txt" for i in range(2000)]
    _git(r, "update-index", "--add", "--index-info", stdin="\n".join(rows) + "\n")
    _git(r, "write-tree")
    return r


def _stage(repo: Path, case: str) -> None:
    new = _blob(repo, f"staged {case}\n")
    info = {
        "deep": f"100644 {new}\td3/m3/l0/f00003.txt",
        "top": f"100644 {new}\ttop2.txt",
        "new-dir": f"100644 {new}\tz/new/file.txt\n100644 {new}\td1/a-new.txt",
        "conflict": "\n".join(f"100644 {new} {n}\td2/m4/l0/c.txt" for n in (1, 2, 3)),
        "gitlink": f"160000 {new}\td4/sub\n100644 {new}\td4/m4/l1/f00004.txt",
    }
    if case in info:
        _git(repo, "update-index", "--add", "--index-info", stdin=info[case] + "\n")
    elif case == "intent-to-add":
        (repo / "d5").mkdir()
        (repo / "d5" / "ita.txt").write_text("not yet\n")
        _git(repo, "add", "-N", "d5/ita.txt")
    elif case == "skip-worktree":
        _git(repo, "update-index", "--skip-worktree", "d6/m1/l0/f00006.txt")
        _git(repo, "update-index", "--add", "--index-info", stdin=f"100644 {new}\td6/m0/l2/f00020.txt\n")
    elif case == "version-4":
        _git(repo, "update-index", "--index-version", "4")
        _git(repo, "update-index", "--add", "--index-info", stdin=f"100644 {new}\td0/m0/l0/f00000.txt\n")
    elif case == "split":
        _git(repo, "update-index", "--split-index")
        _git(repo, "update-index", "--add", "--index-info", stdin=f"100644 {new}\td1/m1/l1/f00001.txt\n")


@pytest.mark.parametrize(
    "case",
    [
        "nothing",
        "deep",
        "top",
        "new-dir",
        "conflict",
        "intent-to-add",
        "gitlink",
        "skip-worktree",
        "version-4",
        "split",
    ],
)
def test_the_covered_entries_stepped_over_name_what_every_name_read_names(repo: Path, case: str) -> None:
    _stage(repo, case)
    git_dir = str(repo / ".git")
    data = (repo / ".git" / "index").read_bytes()
    got = index_ids(git_dir, data)
    assert got == _every_name(git_dir, data)
    if case == "nothing":
        assert list(got.values()) == [""]
    elif case != "intent-to-add":  # (each staged blob named, where its directory's node went)
        assert _blob(repo, f"staged {case}\n") in got, got

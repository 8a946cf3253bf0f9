"""A merge of forks honours the trees' ``.gitattributes`` as `git merge` does (the
thirty-third round, mergeattr1; docs/merge.md, "Attributes"): each case made as a git
repository with branches ``ours`` and ``theirs``, merged by `git merge` in a plain checkout
of ``ours`` and by avfs (`avfs merge`, the API) in a vault cloned from it; the merged tree
or the conflicted paths must be git's. On main a vault's merge read no attribute file of
its trees (libgit2's merge in a bare repository): a ``merge=union`` file both sides changed
conflicted where git merges it, a ``-merge``/``binary`` one changed in two places merged
where git reports a conflict.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import merge as mergeop

from . import realdata

WHO = ["-c", "user.name=r", "-c", "user.email=r@example.org"]
LINES = b"".join(b"line %d\n" % i for i in range(1, 13))


def _git(work: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    proc = subprocess.run(["git", "-C", str(work), *WHO, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode in ok, proc.stdout + proc.stderr
    return proc.stdout


def _write(work: Path, files: dict[str, bytes | None]) -> None:
    for path, data in files.items():
        p = work / path
        if data is None:
            p.unlink()
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _repo(
    tmp_path: Path,
    base: dict[str, bytes | None],
    ours: dict[str, bytes | None],
    theirs: dict[str, bytes | None],
) -> Path:
    """A git repository: ``main`` of ``base``, ``ours`` and ``theirs`` each one commit on it."""
    work = tmp_path / "w"
    work.mkdir(parents=True)
    _git(work, "init", "-q", "-b", "main")
    _write(work, base)
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "base")
    for branch, files in (("ours", ours), ("theirs", theirs)):
        _git(work, "checkout", "-q", "-B", branch, "main")
        _write(work, files)
        _git(work, "add", "-A")
        _git(work, "commit", "-qm", branch)
    _git(work, "checkout", "-q", "ours")
    return work


def _git_merge(work: Path, tmp_path: Path) -> tuple[str | None, set[str]]:
    """`git merge theirs` in a plain clone checked out at ``ours``: (the merged tree, None
    where it conflicts; the conflicted paths)."""
    clone = tmp_path / "c"
    subprocess.run(["git", "clone", "-q", "-b", "ours", str(work), str(clone)], check=True, timeout=120)
    proc = subprocess.run(
        ["git", "-C", str(clone), *WHO, "merge", "--no-edit", "origin/theirs"],
        capture_output=True,
        timeout=120,
    )
    if proc.returncode == 0:
        return _git(clone, "rev-parse", "HEAD^{tree}").strip(), set()
    conflicted = set(_git(clone, "diff", "--name-only", "--diff-filter=U").split())
    assert conflicted, proc.stdout + proc.stderr
    return None, conflicted


def _same_as_git(work: Path, tmp_path: Path, home: Any, name: str = "g") -> mergeop.MergeResult:
    want_tree, want_conflicts = _git_merge(work, tmp_path)
    vault = home.clone_vault(str(work / ".git"), name)
    dry = mergeop.merge(vault, "theirs", "ours", dry_run=True)
    got = mergeop.merge(vault, "theirs", "ours")
    if want_tree is not None:
        assert got.status == "merged" and dry.status == "would_merge", got.conflicts
        assert got.commit is not None and dry.commit is not None
        assert vault.store.commit_tree(got.commit) == want_tree
        assert vault.store.commit_tree(dry.commit) == want_tree
    else:
        assert got.status == "conflicts" and dry.status == "would_conflict"
        assert {c.path for c in got.conflicts} == want_conflicts
        assert {c.path for c in dry.conflicts} == want_conflicts
    return got


def test_what_the_attributes_merge_cleanly_merges_as_git_merges_it(tmp_path: Path, home: Any) -> None:
    """``merge=union`` both sides appended to: both lines, no conflict; ``merge=NAME`` of
    no driver: git's text merge; ``*.txt -merge`` with ``ok.txt merge=text`` under it (a
    nearer directory's rule): merged as text; a ``-merge`` file both sides changed alike
    (the trivial merge takes it, as git does: no driver runs where the sides agree)."""
    attrs = b"*.txt -merge\nu.txt merge=union\nc.txt merge=nosuchdriver\n"
    base = {
        ".gitattributes": attrs,
        "u.txt": b"a\nb\nc\n",
        "c.txt": LINES,
        "sub/.gitattributes": b"ok.txt merge=text\n",
        "sub/ok.txt": LINES,
        "same.txt": LINES,
    }
    ours = {"u.txt": b"a\nb\nc\nours\n", "c.txt": LINES.replace(b"line 2\n", b"ours\n")}
    ours |= {"sub/ok.txt": LINES.replace(b"line 2\n", b"ours\n"), "same.txt": LINES + b"both\n"}
    theirs = {"u.txt": b"a\nb\nc\ntheirs\n", "c.txt": LINES.replace(b"line 11\n", b"theirs\n")}
    theirs |= {"sub/ok.txt": LINES.replace(b"line 11\n", b"theirs\n"), "same.txt": LINES + b"both\n"}
    got = _same_as_git(_repo(tmp_path, base, ours, theirs), tmp_path, home)
    assert got.status == "merged"


@pytest.mark.parametrize(
    "rule",
    [
        b"n.txt -merge\n",
        b"n.txt binary\n",
        b"n.txt merge=binary\n",
        b"[attr]keep -merge\nn.txt keep\n",  # (a macro of one's own)
    ],
)
def test_a_file_git_does_not_merge_conflicts_as_in_git(rule: bytes, tmp_path: Path, home: Any) -> None:
    """A file both sides changed in different places that git does not merge (its ``merge``
    attribute unset: ``-merge``, the ``binary`` macro, ``merge=binary``, a macro) is a
    binary conflict, the target's version kept, where a text merge is clean; beside it a
    file of NUL bytes with ``merge=text`` is a binary conflict in git too (git's and
    libgit2's text merge both refuse binary data)."""
    data = LINES.replace(b"line 6\n", b"\0\0\n")
    base = {".gitattributes": rule + b"d.dat merge=text\n", "n.txt": LINES, "d.dat": data, "x.txt": b"x\n"}
    ours = {"n.txt": LINES.replace(b"line 2\n", b"ours\n"), "d.dat": data.replace(b"line 2\n", b"ours\n")}
    theirs = {"n.txt": LINES.replace(b"line 11\n", b"theirs\n"), "d.dat": data.replace(b"line 11\n", b"t\n")}
    got = _same_as_git(_repo(tmp_path, base, ours, theirs | {"x.txt": b"y\n"}), tmp_path, home)
    assert {c.path: c.kind for c in got.conflicts} == {"n.txt": "binary", "d.dat": "binary"}


def test_the_target_s_attributes_count_as_in_git_s_checkout(tmp_path: Path, home: Any) -> None:
    """`git merge` reads the attribute files of its work tree, the target's: a
    ``merge=union`` the target added counts for the merge (clean), one the source added
    does not (a conflict), and a nested directory's file counts for the paths below it."""
    base = {"d/u.txt": b"a\n", "d/v.txt": b"a\n"}
    ours = {"d/u.txt": b"a\nours\n", "d/v.txt": b"a\nours\n", "d/.gitattributes": b"u.txt merge=union\n"}
    theirs = {"d/u.txt": b"a\ntheirs\n", "d/v.txt": b"a\ntheirs\n", ".gitattributes": b"v.txt merge=union\n"}
    got = _same_as_git(_repo(tmp_path / "1", base, ours, theirs), tmp_path / "1", home, "g1")
    assert [c.path for c in got.conflicts] == ["d/v.txt"]
    # the other way round: the source's union does not count, the target's does
    ours2 = {"d/u.txt": b"a\nours\n", ".gitattributes": b"d/u.txt merge=union\n"}
    theirs2 = {"d/u.txt": b"a\ntheirs\n"}
    got = _same_as_git(_repo(tmp_path / "2", base, ours2, theirs2), tmp_path / "2", home, "g2")
    assert got.status == "merged"


def test_a_merge_driver_of_the_config_is_never_run(tmp_path: Path, home: Any) -> None:
    """``merge=mine`` where git's config defines ``merge.mine.driver``: git runs that
    program (here it would write a file and take ours); avfs runs none and leaves the
    path a conflict (``content``: both versions for a person), where on main it merged
    the file as text, silently, where git's answer is the program's."""
    ran = tmp_path / "ran"
    base = {".gitattributes": b"m.txt merge=mine\n", "m.txt": LINES}
    ours = {"m.txt": LINES.replace(b"line 2\n", b"ours\n")}
    theirs = {"m.txt": LINES.replace(b"line 11\n", b"theirs\n")}
    work = _repo(tmp_path, base, ours, theirs)
    vault = home.clone_vault(str(work / ".git"), "g")
    driver = f"touch {ran} && true"
    subprocess.run(["git", "--git-dir", vault.store.path, "config", "merge.mine.driver", driver], check=True)
    got = mergeop.merge(vault, "theirs", "ours")
    assert [(c.path, c.kind) for c in got.conflicts] == [("m.txt", "content")]
    assert not ran.exists()
    _git(work, "config", "merge.mine.driver", driver)
    _git(work, "merge", "--no-edit", "theirs")  # (git's answer is the program's: it ran)
    assert ran.exists()


def test_conflict_markers_of_an_attributed_merge_through_the_cli(tmp_path: Path, home: Any, cli: Any) -> None:
    """`avfs merge --write-conflicts` of a merge where a ``merge=union`` file merges and a
    ``conflict-marker-size=3`` file conflicts: the union file is git's, the markers 3 long
    as git writes them, and the conflicts are git's."""
    base = {
        ".gitattributes": b"u.txt merge=union\nk.txt conflict-marker-size=3\n",
        "u.txt": b"a\n",
        "k.txt": b"k\n",
    }
    ours = {"u.txt": b"a\nours\n", "k.txt": b"ours\n"}
    theirs = {"u.txt": b"a\ntheirs\n", "k.txt": b"theirs\n"}
    work = _repo(tmp_path, base, ours, theirs)
    _, want = _git_merge(work, tmp_path)
    assert want == {"k.txt"}
    assert home.clone_vault(str(work / ".git"), "g") is not None
    r = cli("--json", "--vault", "g:ours", "merge", "theirs", "--write-conflicts")
    assert r.code == 3, r.err
    assert [c["path"] for c in r.json()["results"][0]["conflicts"]] == ["k.txt"]
    assert cli("--vault", "g:ours", "cat", "u.txt").out_bytes == (tmp_path / "c" / "u.txt").read_bytes()
    assert cli("--vault", "g:ours", "cat", "u.txt").out_bytes == b"a\nours\ntheirs\n"
    got = cli("--vault", "g:ours", "cat", "k.txt").out_bytes
    assert got.startswith(b"<<< ") and b"\n>>> " in got and b"<<<<" not in got


@pytest.mark.slow
def test_git_s_own_binary_test_files_conflict_as_in_git(tmp_path: Path, home: Any) -> None:
    """git 2.39.5's source (``realdata.git_source_dir``): ``t/t0110/url-*`` are text files
    its ``t/.gitattributes`` marks ``binary``; a line added before one of them on one side
    and after it on the other is a conflict in `git merge` (the target's kept), where a
    text merge (avfs on main) is clean; ``Documentation/git-merge.txt``
    (``conflict-marker-size=32``) edited apart on the two sides merges as git's."""
    work = tmp_path / "w"
    shutil.copytree(realdata.git_source_dir("t/t0110"), work / "t/t0110")
    for f in (".gitattributes", "t/.gitattributes", "Documentation/git-merge.txt"):
        (work / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(realdata.git_source_file(f), work / f)
    url = work / "t/t0110/url-1"
    page = (work / "Documentation/git-merge.txt").read_bytes()
    old = url.read_bytes()
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "git 2.39.5, in part")
    for branch, (u, p) in {
        "ours": (b"x://o/\n" + old, b"ours\n" + page),
        "theirs": (old + b"x://t/\n", page + b"t\n"),
    }.items():
        _git(work, "checkout", "-q", "-B", branch, "main")
        url.write_bytes(u)
        (work / "Documentation/git-merge.txt").write_bytes(p)
        _git(work, "commit", "-qam", branch)
    _git(work, "checkout", "-q", "ours")
    got = _same_as_git(work, tmp_path, home)
    assert {c.path: c.kind for c in got.conflicts} == {"t/t0110/url-1": "binary"}
    assert os.path.exists(tmp_path / "c" / "t/t0110/url-1")


def test_a_file_renamed_by_one_side_merges_by_its_new_directory_s_attributes(
    tmp_path: Path, home: Any
) -> None:
    """Theirs moves ``d/u.txt`` to ``e/u.txt`` and appends a line, ours appends another: git
    pairs the rename and merges the file under its new name, by ``e/.gitattributes``'s
    ``merge=union`` (no conflict), as avfs now does (on main: a conflict)."""
    base = {"d/u.txt": LINES, "e/.gitattributes": b"u.txt merge=union\n", "e/x": b"x\n"}
    ours = {"d/u.txt": LINES + b"ours\n"}
    theirs = {"d/u.txt": None, "e/u.txt": LINES + b"theirs\n"}
    got = _same_as_git(_repo(tmp_path, base, ours, theirs), tmp_path, home)
    assert got.status == "merged"


def test_a_favoured_side_takes_a_file_git_does_not_merge_as_git_merge_x_does(
    tmp_path: Path, home: Any
) -> None:
    """`merge --ours` (favor) of a ``-merge`` file both sides changed apart: that side's
    version, no conflict, as `git merge -X ours` (git's binary merge with a favoured side)."""
    base = {".gitattributes": b"n.txt -merge\n", "n.txt": LINES}
    ours = {"n.txt": LINES.replace(b"line 2\n", b"ours\n")}
    theirs = {"n.txt": LINES.replace(b"line 11\n", b"theirs\n")}
    work = _repo(tmp_path, base, ours, theirs)
    vault = home.clone_vault(str(work / ".git"), "g")
    _git(work, "merge", "--no-edit", "-X", "ours", "theirs")
    got = mergeop.merge(vault, "theirs", "ours", favor="ours")
    assert got.status == "merged" and got.commit is not None
    assert vault.store.commit_tree(got.commit) == _git(work, "rev-parse", "HEAD^{tree}").strip()
    assert (work / "n.txt").read_bytes() == LINES.replace(b"line 2\n", b"ours\n")

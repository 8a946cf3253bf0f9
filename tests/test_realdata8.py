"""`avfs grep` and `avfs export` beside git on real files with real ``.gitattributes`` (the
thirty-third round, realdata8; docs/testing.md, "git's and libgit2's fixtures through avfs's
read paths"): git 2.39.5's own source (Debian's tarball, ``realdata.git_source_dir``), its
root ``.gitattributes`` (``*.bat eol=crlf``, ``conflict-marker-size=32`` ...) and
``t/.gitattributes`` (``/t0110/url-* binary``: text files git is told are binary), with
``compat/vcbuild``'s batch files, ``t/t0110`` (with its script) and ``t/t3900`` (files in ISO-8859-1, EUC-JP,
ISO-2022-JP, UTF-16 beside UTF-8 ones). What differed on main:

- `avfs grep` searched ``t/t0110/url-*``, which `git grep -I` skips: git judges a file
  binary by the ``diff`` attribute first (``-diff``, the ``binary`` macro; a file with
  ``diff`` set is text whatever its bytes), by a NUL in its first 8000 bytes only where the
  attribute says nothing (``grep.c`` ``grep_source_is_binary``).
- `avfs grep` printed the matched lines of ``t/t3900``'s ISO-8859-1 and EUC-JP files with
  U+FFFD for each byte that is not UTF-8, where `git grep` prints the line's bytes (its
  help says the line is printed "as it is in the file, like `cat`"); ``--json`` keeps
  U+FFFD (JSON is text).
- `avfs grep '[[:digit:]]+'` read the POSIX class as Python's ``re`` does (a set
  ``[:digt`` then ``]+``, with a FutureWarning) and matched nothing git matches.
- `avfs export` wrote ``compat/vcbuild/*.bat`` as their blobs (LF) where `git archive`
  and `git checkout` write them with CRLF (``eol=crlf``), as the mount shows them.
- `avfs merge --write-conflicts` wrote 7-long markers into ``Documentation/git-merge.txt``
  where `git merge` writes 32-long ones (``conflict-marker-size=32``: the page shows
  7-long markers as examples), and `merge --continue` took the page's examples for
  markers left: the conflict, resolved, could not be committed. And it wrote markers into
  ``t/t0110/url-1`` (``binary``: git does not merge it, keeps the target's version and
  reports the conflict).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from . import realdata

pytestmark = pytest.mark.slow

DIRS = ["t/t0110", "t/t3900", "compat/vcbuild"]
MERGE_DOC = "Documentation/git-merge.txt"  # conflict-marker-size=32; shows 7-long markers
URL = "t/t0110/url-1"  # text, `binary` in t/.gitattributes


def _git(work: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", "-C", str(work), "-c", "core.pager=cat", *args], capture_output=True, check=True, timeout=120
    ).stdout


@pytest.fixture(scope="module")
def gitsrc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout of a part of git 2.39.5's source as its tarball has it (``git archive``'s
    output: the batch files with CRLF), committed once."""
    work = tmp_path_factory.mktemp("gitsrc") / "w"
    for d in DIRS:
        shutil.copytree(realdata.git_source_dir(d), work / d)
    for f in (".gitattributes", "t/.gitattributes", "t/t0110-urlmatch-normalization.sh", MERGE_DOC):
        (work / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(realdata.git_source_file(f), work / f)
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", "-A")
    _git(work, "-c", "user.name=r", "-c", "user.email=r@example.org", "commit", "-qm", "git 2.39.5, in part")
    assert b"\r\n" in (work / "compat/vcbuild/vcpkg_install.bat").read_bytes()  # (the case)
    return work


def _git_grep(work: Path, *args: str) -> bytes:
    proc = subprocess.run(
        ["git", "-C", str(work), "grep", "-I", "--no-color", *args],
        capture_output=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(work)},
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


# (pattern, avfs's flags, git's): each printed by both, byte for byte
SWEEP = [
    ("x://", ["-c"], ["-c", "-F"]),  # t0110/url-*: `binary` in t/.gitattributes
    ("x://q", ["-l"], ["-l", "-F"]),
    (r"[^\x00-\x7f]", ["-n"], ["-n", "-P"]),  # t3900's ISO-8859-1, EUC-JP lines as bytes
    ("url", ["-n", "-w"], ["-n", "-w", "-F"]),
    ("rem", ["-c", "-i"], ["-c", "-i", "-F"]),
    ("^$", ["-c"], ["-c"]),
    ("[[:digit:]]+[[:space:]]", ["-c"], ["-c", "-P"]),  # POSIX classes: git's, not Python's
    ("[^[:alnum:][:space:]]{3}", ["-n"], ["-n", "-P"]),
]


def test_grep_of_real_files_with_real_attributes_prints_what_git_grep_prints(
    gitsrc: Path, home: Any, cli: Any
) -> None:
    """`avfs grep --rev HEAD` and of the workspace == `git grep -I HEAD` (the blobs: avfs
    reads what `avfs cat` shows, not the checkout's CRLF), every pattern of :data:`SWEEP`;
    before, ``t/t0110/url-*`` (``binary``) were searched and t3900's lines not UTF-8 came
    out with U+FFFD."""
    assert cli("vault", "clone", str(gitsrc / ".git"), "g").code == 0
    for pattern, ours, theirs in SWEEP:
        want = _git_grep(gitsrc, *theirs, "-e", pattern, "HEAD").replace(b"HEAD:", b"")
        assert want, pattern
        for where in (["--rev", "HEAD"], []):
            got = cli("--vault", "g", "grep", *ours, pattern, *where)
            assert got.code == 0, got.err
            assert got.out_bytes == want, (pattern, where)
    doc = cli("--json", "--vault", "g", "grep", "-n", "ISO", "t/t3900/ISO8859-1.txt").json()
    assert doc["files"] == [], doc  # (the pattern is not in it; the next one is)
    doc = cli("--json", "--vault", "g", "grep", "-n", "fg$", "t/t3900/ISO8859-1.txt").json()
    assert doc["files"][0]["lines"][0]["text"] == "\ufffdb\ufffdd\ufffdfg"  # (JSON: text, U+FFFD)
    assert doc["binary_skipped"] == 0


def test_grep_judges_binary_by_the_diff_attribute_as_git_grep(
    gitsrc: Path, home: Any, tmp_path: Path
) -> None:
    """The workspace's own `.gitattributes` (uncheckpointed) decides, as a checkout's work
    tree does for `git grep`: ``-diff`` skips text files, ``diff`` searches a file with
    NULs, ``diff=NAME`` follows ``diff.NAME.binary``."""
    from avfs_git.core.operations import search

    work = tmp_path / "w"
    shutil.copytree(gitsrc, work, symlinks=True)
    vault = home.clone_vault(str(gitsrc / ".git"), "g")
    ws = vault.workspace()
    edits = {
        "t/.gitattributes": (gitsrc / "t/.gitattributes").read_bytes()
        + b"/t3900/1-UTF-8.txt -diff\n/t3900/2-UTF-8.txt diff=latin\n/t0110/nul diff\n",
        "t/t0110/nul": b"x://with a NUL\0 after it\n",
    }
    for rel, data in edits.items():
        ws.write(rel, data)
        (work / rel).write_bytes(data)
    for binary in ("true", "false"):
        _git(work, "config", "diff.latin.binary", binary)
        subprocess.run(["git", "--git-dir", vault.path, "config", "diff.latin.binary", binary], check=True)
        for pattern in ("x://", "[^\\x00-\\x7f]"):
            want = _git_grep(work, "--untracked", "-c", "-P", "-e", pattern, "--", "t").decode()
            got = search.grep(ws, pattern, ["t"], count_only=True)
            assert "".join(f"{f.path}:{f.count}\n" for f in got.files) == want, (binary, pattern)
    assert "t/t0110/nul" in [f.path for f in search.grep(ws, "x://", count_only=True).files]


def test_export_writes_what_git_archive_writes(gitsrc: Path, home: Any, cli: Any, tmp_path: Path) -> None:
    """`avfs export` of a fork of the tree == `git archive HEAD` unpacked (and so `git
    checkout`): the batch files with CRLF by ``*.bat eol=crlf``; a file the fork wrote is
    exported as it was written."""
    assert cli("vault", "clone", str(gitsrc / ".git"), "g").code == 0
    out = tmp_path / "exported"
    assert cli("export", "g:main", str(out)).code == 0
    archive = _git(gitsrc, "archive", "--format=tar", "HEAD")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        want = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]
    got = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got.keys() == want.keys()
    assert [p for p in want if got[p] != want[p]] == []
    assert b"\r\n" in got["compat/vcbuild/vcpkg_install.bat"]
    assert cli("--vault", "g", "write", "compat/vcbuild/vcpkg_install.bat", "@ECHO OFF\n").code == 0
    again = tmp_path / "again"
    assert cli("export", "g:main", str(again)).code == 0
    assert (again / "compat/vcbuild/vcpkg_install.bat").read_bytes() == b"@ECHO OFF\n"
    assert (again / "compat/vcbuild/find_vs_env.bat").read_bytes() == want["compat/vcbuild/find_vs_env.bat"]


def _labels_off(data: bytes) -> bytes:
    """``data`` with the labels of its conflict markers' lines taken off (avfs labels the
    sides ``ours``/``base``/SOURCE, git ``HEAD``/the base's id/the branch)."""
    out = []
    for line in data.split(b"\n"):
        head = line.split(b" ", 1)[0]
        if len(head) >= 7 and len(set(head)) == 1 and head[:1] in b"<|>":
            line = head
        out.append(line)
    return b"\n".join(out)


def test_a_merge_s_conflicts_are_written_as_the_attributes_say(
    gitsrc: Path, home: Any, cli: Any, tmp_path: Path
) -> None:
    """Both sides edit the same line of git's ``Documentation/git-merge.txt`` and of
    ``t/t0110/url-1``: `avfs merge --write-conflicts` writes what `git -c
    merge.conflictStyle=diff3 merge` writes in the page (markers 32 long, labels aside)
    and keeps the target's ``url-1`` (a binary conflict: git's "Cannot merge binary
    files"), and once both are resolved by hand (the page's own 7-long example markers
    kept) `merge --continue` commits the merge."""
    work = tmp_path / "w"
    shutil.copytree(gitsrc, work, symlinks=True)
    who = ["-c", "user.name=r", "-c", "user.email=r@example.org"]
    page = (work / MERGE_DOC).read_bytes()
    lines = page.split(b"\n")
    assert b"\n<<<<<<< yours:sample.txt\n" in page and lines[2] == b""
    for branch, text in (("ours", b"# ours"), ("theirs", b"# theirs")):
        _git(work, "checkout", "-q", "-B", branch, "main")
        (work / MERGE_DOC).write_bytes(b"\n".join([*lines[:2], text, *lines[3:]]))
        (work / URL).write_bytes(b"x://" + branch.encode() + b"/\n")
        _git(work, *who, "commit", "-qam", branch)
    _git(work, "checkout", "-q", "ours")
    assert cli("vault", "clone", str(work / ".git"), "g").code == 0
    proc = subprocess.run(
        ["git", "-C", str(work), *who, "-c", "merge.conflictStyle=diff3", "merge", "-q", "theirs"],
        capture_output=True,
    )
    assert proc.returncode == 1, proc.stderr
    want = (work / MERGE_DOC).read_bytes()
    assert b"\n" + b"<" * 32 + b" HEAD\n" in want
    assert b"Cannot merge binary files: " + URL.encode() in proc.stdout + proc.stderr
    assert (work / URL).read_bytes() == b"x://ours/\n"  # (git keeps the target's: no markers)
    r = cli("--json", "--vault", "g:ours", "merge", "theirs", "--write-conflicts")
    assert r.code == 3, r.err
    kinds = {c["path"]: c["kind"] for c in r.json()["results"][0]["conflicts"]}
    assert kinds == {MERGE_DOC: "content", URL: "binary"}
    got = cli("--vault", "g:ours", "cat", MERGE_DOC).out_bytes
    assert _labels_off(got) == _labels_off(want)
    assert cli("--vault", "g:ours", "cat", URL).out_bytes == b"x://ours/\n"
    assert cli("--vault", "g:ours", "cat", URL + "~theirs").out_bytes == b"x://theirs/\n"
    assert cli("--vault", "g:ours", "rm", URL + "~ours", URL + "~theirs").code == 0
    assert cli("--vault", "g:ours", "write", MERGE_DOC, "--stdin", stdin=page).code == 0
    r = cli("--vault", "g:ours", "merge", "--continue")
    assert r.code == 0, r.out + r.err
    assert cli("--vault", "g:ours", "cat", MERGE_DOC).out_bytes == page

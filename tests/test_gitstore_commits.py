"""The raw commit parser (``gitformat.parse_commit``, what ``checkpoint save`` reports without
loading pygit2) against pygit2's ``Commit`` on real commits: libgit2's own fixture
repositories (merges, trailers, a long history), this project's history, commits git itself
makes with a signature (``gpgsig``), a non-UTF-8 ``encoding`` header and several parents, and
a few malformed ones modelled on git's own tests (t4212-log-corrupt, t1450-fsck) that only a
hand-made object can hold."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pygit2
import pytest

from avfs_git.core.errors import RevisionNotFoundError
from avfs_git.core.store.gitformat import parse_commit
from avfs_git.core.store.gitstore import EMPTY_TREE, GitStore

from . import realdata
from .conftest import git, skip_outside_ci

REPO = Path(__file__).resolve().parent.parent


def _commit_ids(git_dir: str) -> list[str]:
    out = git("--git-dir", git_dir, "cat-file", "--batch-all-objects", "--batch-check")
    return [line.split()[0] for line in out.splitlines() if line.split()[1] == "commit"]


def _pygit2_fields(c: pygit2.Commit) -> tuple[object, ...]:
    try:
        message = c.message
    except (LookupError, UnicodeDecodeError):
        # pygit2 decodes strictly with a named codec and raises when it cannot: the
        # parser reads such a message as UTF-8 with replacements (git would show it as is)
        message = bytes(c.raw_message).decode("utf-8", "replace")
    return str(c.tree_id), tuple(str(p) for p in c.parent_ids), c.commit_time, message


def _compare(git_dir: str) -> dict[str, int]:
    """Every commit of ``git_dir`` parsed both ways; returns counts of what was covered."""
    repo = pygit2.Repository(git_dir)
    seen = {"commits": 0, "merges": 0, "multi-line": 0, "gpgsig": 0, "encoding": 0}
    try:
        for oid in _commit_ids(git_dir):
            c = repo[oid]
            assert isinstance(c, pygit2.Commit)
            raw = bytes(c.read_raw())
            got = tuple(parse_commit(raw))
            assert got == _pygit2_fields(c), f"{git_dir} {oid}:\n{raw!r}"
            seen["commits"] += 1
            seen["merges"] += len(c.parent_ids) > 1
            seen["multi-line"] += c.raw_message.strip().count(b"\n") > 0
            seen["gpgsig"] += b"\ngpgsig " in raw
            seen["encoding"] += b"\nencoding " in raw
    finally:
        repo.free()
    return seen


def test_libgit2_fixture_repositories(tmp_path: Path) -> None:
    total = {"commits": 0, "merges": 0, "multi-line": 0}
    for git_dir in realdata.pygit2_fixture_repos(tmp_path):
        for k, v in _compare(str(git_dir)).items():
            if k in total:
                total[k] += v
    assert total["commits"] > 300 and total["merges"] >= 5 and total["multi-line"] > 20, total


def test_this_projects_history() -> None:
    proc = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--path-format=absolute", "--git-common-dir"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        skip_outside_ci("not a git checkout", f"CI runs in a git checkout: {proc.stderr}")
    seen = _compare(proc.stdout.strip())
    assert seen["commits"] > 10 and seen["multi-line"] > 0, seen


def _literal(git_dir: str, raw: bytes) -> str:
    """Store ``raw`` as a commit object as it is (git's own tests make broken ones so)."""
    return (
        subprocess.run(
            ["git", "--git-dir", git_dir, "hash-object", "-t", "commit", "--literally", "-w", "--stdin"],
            input=raw,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )


def _made_by_git(git_dir: str, tmp_path: Path) -> None:
    """Commits git makes: signed, in ISO-8859-1 and Shift_JIS, merges of two and three,
    messages git keeps as given (``commit-tree -F``: leading blank lines, CRLF)."""
    t = EMPTY_TREE

    def commit_tree(*args: str, message: bytes, config: tuple[str, ...] = ()) -> str:
        msg = tmp_path / "msg"
        msg.write_bytes(message)
        cfg = [a for kv in config for a in ("-c", kv)]
        return git("--git-dir", git_dir, *cfg, "commit-tree", t, *args, "-F", str(msg)).strip()

    a = commit_tree(message=b"first\n")
    b = commit_tree("-p", a, message=b"subject\n\nbody line 1\nbody line 2\n\nSigned-off-by: X <x@y.z>\n")
    c = commit_tree("-p", a, message=b"\n\n\nleading blank lines\r\nand CRLF\r\n")
    commit_tree("-p", b, "-p", c, message=b"Merge two\n")
    commit_tree("-p", a, "-p", b, "-p", c, message=b"Octopus\n")
    commit_tree(
        "-p", a, message="café\n\ndétail é\n".encode("latin-1"), config=("i18n.commitEncoding=ISO-8859-1",)
    )
    commit_tree("-p", a, message="日本語\n".encode("shift_jis"), config=("i18n.commitEncoding=Shift_JIS",))
    commit_tree(message=b"no newline at the end")
    if shutil.which("ssh-keygen") is None:
        skip_outside_ci(
            "ssh-keygen is not installed",
            "ssh-keygen is not installed (openssh-server is one of the Makefile's DEBS)",
        )
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    signing = ("gpg.format=ssh", f"user.signingkey={key}.pub")
    commit_tree("-S", "-p", b, message=b"signed\n\nwith a body\n", config=signing)
    commit_tree(
        "-S",
        "-p",
        a,
        message="signé\n".encode("latin-1"),
        config=(*signing, "i18n.commitEncoding=ISO-8859-1"),
    )


# malformed commits as git's tests make them (hash-object --literally), each readable by libgit2
ODD = [
    b"author A <a@x> 1234567890 +0000\ncommitter C <c@x> 1234567890\n\nno time zone\n",
    b"author A <a@x> 1234567890 +0000\ncommitter C <> 1234567890 +0000\n\nempty email\n",
    b"author A <a@x> 1234567890 +0000\ncommitter C > D <c@x> 1234567891 +0000\n\n'>' in the name\n",
    b"author A <a@x> 1 +0000\nauthor B <b@x> 2 +0000\ncommitter C <c@x> 3 +0000\n\ntwo authors\n",
    b"author A <a@x> 1 +0000\ncommitter C <c@x> 3 +0000\n",
    b"author A <a@x> 1 +0000\ncommitter C <c@x> 3 +0000\n\nNUL\0after it\n",
    b"author A <a@x> 1 +0000\ncommitter C <c@x> 3 +0000\nencoding x-no-such-codec\n\nunknown codec \xe9\n",
    b"author A <a@x> 1 +0000\ncommitter C <c@x> 3 +0000\nencoding UTF-8\n\nnot UTF-8 \xe9\n",
    b"author A <a@x> 1 +0000\ncommitter C <c@x> 3 +0000\n\nno encoding, not UTF-8 \xe9\n",
    b"author A <a@x> 1 +0000\ncommitter C <c@x> 3 +0000\nmergetag object 0123\n type commit\n \n"
    b" tag v1\nencoding ISO-8859-1\n\nafter a multi-line header \xe9\n",
    b"author A <a@x> 1 +0000\ncommitter C <c@x>    42 -0100\n\nspaces before the time\n",
]


def test_commits_git_makes_and_odd_ones(tmp_path: Path) -> None:
    git_dir = str(tmp_path / "r.git")
    git("init", "-q", "--bare", git_dir)
    _made_by_git(git_dir, tmp_path)
    for body in ODD:
        _literal(git_dir, f"tree {EMPTY_TREE}\n".encode() + body)
    seen = _compare(git_dir)
    assert seen["gpgsig"] == 2 and seen["encoding"] >= 4 and seen["merges"] == 2, seen
    assert seen["commits"] == 10 + len(ODD), seen


def test_store_commit_fields(tmp_path: Path) -> None:
    git_dir = str(tmp_path / "r.git")
    git("init", "-q", "--bare", git_dir)
    _made_by_git(git_dir, tmp_path)
    store = GitStore(git_dir)
    try:
        for oid in _commit_ids(git_dir):
            assert store.commit_fields(oid).parents == tuple(str(p) for p in store.commit(oid).parent_ids)
            assert store.commit_time(oid) == store.commit(oid).commit_time
        with pytest.raises(RevisionNotFoundError):
            store.commit_fields("1" * 40)
        blob = (
            subprocess.run(
                ["git", "--git-dir", git_dir, "hash-object", "-w", "--stdin"],
                input=b"x",
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        with pytest.raises(RevisionNotFoundError):
            store.commit_fields(blob)  # not a commit
    finally:
        store.close()

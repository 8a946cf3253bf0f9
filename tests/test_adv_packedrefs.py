"""The vault's ``packed-refs`` read by a binary search (core/store/packedrefs.py), against
git on what a remote or a damaged file puts there (the thirty-first round, attack22:
docs/security.md).

A confined command never writes the vault's ``packed-refs`` (its sandbox shows one of its
own, read back untrusted by proxy/sealpack.py); a remote shapes the one a `vault clone`
moves in (core/vaults/cloning.py) through the names of its branches, which git takes
with any byte above 0x7f, UTF-8 or not; and a file damaged on disk (cut short, rewritten
with CRLF ends) is read by every command. Each is checked against `git for-each-ref` and
`git rev-parse` on the same file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avfs_git.core.errors import CorruptStateError
from avfs_git.core.store import packedrefs, refs

from .conftest import git

# bytes a branch name may hold that no UTF-8 name does, at the start, the end, alone
RAW_NAMES = [b"\xffx", b"ma\xff", b"\xff", b"\xfe\xff", b"a/\xff/b", b"zz", b"main", b"a-b"]


def _git_refs(repo: str, prefix: str = "refs/") -> dict[bytes, str]:
    out = subprocess.run(
        ["git", "--git-dir", repo, "for-each-ref", "--format=%(objectname) %(refname)", prefix],
        capture_output=True,
        check=True,
    ).stdout
    return {line.partition(b" ")[2]: line.partition(b" ")[0].decode() for line in out.splitlines()}


def _packed_repo(tmp_path: Path) -> tuple[str, str]:
    """A bare repository with a commit, a branch of each of :data:`RAW_NAMES`, packed;
    (its path, the commit)."""
    repo = str(tmp_path / "src.git")
    git("init", "-q", "--bare", repo)
    tree = git("--git-dir", repo, "hash-object", "-t", "tree", "/dev/null").strip()
    commit = git("--git-dir", repo, "commit-tree", tree, "-m", "one").strip()
    spec = b"".join(b"create refs/heads/" + n + b" " + commit.encode() + b"\n" for n in RAW_NAMES)
    subprocess.run(["git", "--git-dir", repo, "update-ref", "--stdin"], input=spec, check=True)
    git("--git-dir", repo, "pack-refs", "--all")
    return repo, commit


def test_every_prefix_s_range_holds_what_git_lists_under_it(tmp_path: Path) -> None:
    """A range ended at ``prefix + 0xff`` left out every name with 0xff after the prefix:
    `refs/heads/\\xffx` from `refs/heads/`, `refs/heads/ma\\xff` from `refs/heads/ma`."""
    repo, _commit = _packed_repo(tmp_path)
    want = _git_refs(repo)
    assert len(want) == len(RAW_NAMES)
    prefixes = {b"", b"refs/", b"refs/heads/", b"refs/heads/ma", b"refs/heads/a/", b"refs/heads/\xff"}
    prefixes |= {name[:i] for name in want for i in range(len(name))}
    for prefix in sorted(prefixes):
        got = packedrefs.under(repo, prefix.decode("utf-8", "surrogateescape") if prefix.isascii() else "")
        if not prefix.isascii():
            continue  # (a prefix avfs asks for is always a str of UTF-8)
        expect = {k.decode("utf-8", "replace"): v for k, v in want.items() if k.startswith(prefix)}
        assert got == expect, prefix


def test_a_clone_of_a_remote_with_such_branch_names_lists_every_fork_git_has(tmp_path: Path) -> None:
    """The remote's branches as `vault clone` moved its packed-refs in, listed as forks:
    as many as `git for-each-ref refs/heads/` in the vault (on the round's base: one left
    out, the branch whose name begins with 0xff)."""
    src, _commit = _packed_repo(tmp_path)
    env = {**os.environ, "AVFS_SERVER": "off"}
    made = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "vault", "clone", f"file://{src}", "c"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    vault = json.loads(made.stdout)["vault"]["path"]
    assert vault.startswith(os.environ["AVFS_HOME"]) and os.path.isfile(os.path.join(vault, "packed-refs"))
    heads = _git_refs(vault, refs.HEADS)
    listed = refs.list_refs_file(vault, refs.HEADS)
    assert sorted(listed) == sorted(k.decode("utf-8", "replace") for k in heads)
    info = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "vault", "info", "c"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert info.returncode == 0, info.stderr
    assert len(json.loads(info.stdout)["vault"]["forks"]) == len(heads) == len(RAW_NAMES)


def _bare_with(tmp_path: Path, body: bytes) -> str:
    repo = str(tmp_path / "d.git")
    git("init", "-q", "--bare", repo)
    Path(repo, "packed-refs").write_bytes(body)
    return repo


def _rev_parse(repo: str, name: str) -> str | None:
    got = subprocess.run(["git", "--git-dir", repo, "rev-parse", "--verify", "-q", name], capture_output=True)
    return got.stdout.decode().strip() if got.returncode == 0 else None


HEADER = b"# pack-refs with: peeled fully-peeled sorted \n"
ONE = b"ca306e7acf3edaef5ebf21819e2a06a6f24360a0"


@pytest.mark.parametrize(
    "line",
    [ONE[:30] + b" refs/heads/main", b"\xff" * 40 + b" refs/heads/main", ONE[:39] + b"g refs/heads/main"],
    ids=["cut-short", "non-ascii", "not-hex"],
)
def test_a_line_that_names_no_id_is_a_damaged_ref_as_git_says(tmp_path: Path, line: bytes) -> None:
    """git: "unexpected line"; avfs took the line's first 40 characters for the id (`vault
    info` reported `ca306e7acf3edaef5ebf21819e2a06 refs/head` as fork main's head, and a
    status said the commit was unreadable) or failed with exit 70 (UnicodeDecodeError)."""
    repo = _bare_with(tmp_path, HEADER + ONE + b" refs/heads/a\n" + line + b"\n")
    assert subprocess.run(["git", "--git-dir", repo, "for-each-ref"], capture_output=True).returncode != 0
    assert _rev_parse(repo, "refs/heads/main") is None
    for read in (
        lambda: packedrefs.lookup(repo, "refs/heads/main"),
        lambda: packedrefs.under(repo, "refs/heads/"),
    ):
        with pytest.raises(
            CorruptStateError, match=r"packed-refs .* is damaged: the line of refs/heads/main"
        ):
            read()
    assert packedrefs.lookup(repo, "refs/heads/a") == ONE.decode() == _rev_parse(repo, "refs/heads/a")
    assert packedrefs.under(repo, "refs/heads/a") == {"refs/heads/a": ONE.decode()}


def test_a_file_rewritten_with_crlf_ends_names_no_ref_as_git_reads_it(tmp_path: Path) -> None:
    """git ignores each ref ("broken name": its name ends in CR); avfs listed forks
    ``main\\r`` and ``b\\r``."""
    repo = _bare_with(
        tmp_path, HEADER.replace(b"\n", b"\r\n") + ONE + b" refs/heads/b\r\n" + ONE + b" refs/heads/main\r\n"
    )
    assert _git_refs(repo) == {} and _rev_parse(repo, "refs/heads/main") is None
    assert packedrefs.under(repo, "refs/") == {} and packedrefs.lookup(repo, "refs/heads/main") is None
    assert refs.list_refs_file(repo, refs.HEADS) == []


def test_a_vault_whose_branch_line_is_cut_short_says_so(tmp_path: Path) -> None:
    """The person's `avfs vault info` and `avfs status` on a vault whose packed-refs line
    of fork main was cut short: a clear error naming the file and the ref, where
    the round's base reported the cut line as main's head."""
    env = {**os.environ, "AVFS_SERVER": "off"}

    def avfs(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "avfs_git", "--json", *args], env=env, capture_output=True, timeout=120
        )

    made = avfs("vault", "create", "v")
    assert made.returncode == 0, made.stderr
    vault = json.loads(made.stdout)["vault"]["path"]
    git("--git-dir", vault, "pack-refs", "--all")
    path = Path(vault, "packed-refs")
    data = path.read_bytes()
    at = data.index(b" refs/heads/main\n")
    path.write_bytes(data[: at - 10] + data[at:])
    try:
        for args in (["vault", "info", "v"], ["--vault", "v", "status"]):
            got = avfs(*args)
            err = json.loads(got.stdout)
            assert got.returncode == CorruptStateError.exit_code and err["kind"] == "error", (
                args,
                got.stdout,
            )
            assert err["error"]["code"] == "corrupt_state", err
            assert err["error"]["details"]["ref"] == "refs/heads/main", err
    finally:
        path.write_bytes(data)  # (the suite's fsck of every vault at the end)
    assert avfs("--vault", "v", "status").returncode == 0

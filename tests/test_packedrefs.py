"""core/store/packedrefs.py against git: one ref by a binary search of the sorted
``packed-refs``, the refs under a prefix as one range of it, a file git wrote unsorted
scanned whole; and the listings that read many refs read the file once, not once a ref
(a clone packs every branch: docs/benchmarks.md, "Clone, fetch and push with 20,000
branches")."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.errors import CorruptStateError
from avfs_git.core.store import packedrefs, refs
from avfs_git.core.vaults.home import Home
from avfs_git.ops.maintenance import vaultstats

from .conftest import git

# names whose order is easy to get wrong: one a prefix of others ("a" < "a-b" < "a/b" <
# "ab" in bytes), non-ASCII, deep, and the ends of the range
TRICKY = ["a", "a-b", "a.b", "a/b", "a/b/c", "ab", "b", "é", "éa", "z" * 200, "0", "x"]


def _repo(tmp_path: Path, names: list[str]) -> tuple[str, dict[str, str]]:
    """A bare repository with a branch and a tag of each name (the tags annotated:
    peeled lines follow theirs), packed by `git pack-refs --all`; (its path, every ref ->
    what packed-refs says it is)."""
    repo = str(tmp_path / "r.git")
    git("init", "-q", "--bare", repo)
    tree = git("--git-dir", repo, "hash-object", "-t", "tree", "/dev/null").strip()
    commits = [git("--git-dir", repo, "commit-tree", tree, "-m", str(i)).strip() for i in range(3)]
    lines = []
    for i, name in enumerate(names):
        lines.append(f"create refs/heads/{name} {commits[i % 3]}\n")
    subprocess.run(
        ["git", "--git-dir", repo, "update-ref", "--stdin"], input="".join(lines).encode(), check=True
    )
    for i, name in enumerate([n for n in names if not n.startswith("-")][:40]):
        git("--git-dir", repo, "tag", "-a", "-m", "t", name, commits[i % 3])
    git("--git-dir", repo, "pack-refs", "--all")
    assert not [f for _d, _s, fs in os.walk(os.path.join(repo, "refs")) for f in fs]
    out = git("--git-dir", repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return repo, dict(line.split(" ", 1) for line in out.splitlines())


@pytest.fixture(scope="module")
def names() -> list[str]:
    rnd = random.Random(30)
    made = {"".join(rnd.choice("ab/-.é0") for _ in range(rnd.randint(1, 6))) for _ in range(400)}
    ok = [n for n in made if refs.valid_name(f"refs/heads/{n}") and "//" not in n]
    # (a name may not be both a ref and a directory of refs: keep the first of such pairs)
    kept: list[str] = []
    for n in sorted(set(ok + TRICKY), key=lambda n: (len(n), n)):
        if not any(n.startswith(k + "/") or k.startswith(n + "/") for k in kept):
            kept.append(n)
    return kept


def test_a_ref_and_a_range_read_as_git_reads_them(tmp_path: Path, names: list[str]) -> None:
    repo, want = _repo(tmp_path, names)
    assert b" sorted " in packedrefs.read(repo).split(b"\n", 1)[0] + b" "
    for name, oid in want.items():
        assert packedrefs.lookup(repo, name) == oid, name
        assert refs.read_ref_file(repo, name) == oid, name
    for other in (
        "refs/heads/a/",
        "refs/heads/a-",
        "refs/heads/",
        "refs/heads/zz",
        "refs/a",
        "refs/heads/éb!",
    ):
        assert packedrefs.lookup(repo, other) == want.get(other), other  # (most are absent)
    assert all(packedrefs.lookup(repo, n[:-1]) is None for n in want if n[:-1] not in want)
    prefixes = {
        "refs/",
        "refs/heads/",
        "refs/tags/",
        "refs/heads/a",
        "refs/heads/a/",
        "refs/heads/é",
        "refs/x/",
    }
    prefixes |= {f"refs/heads/{n[: len(n) // 2]}" for n in names[:50]}
    for prefix in prefixes:
        assert packedrefs.under(repo, prefix) == {k: v for k, v in want.items() if k.startswith(prefix)}, (
            prefix
        )
    assert refs.read_refs_file(repo, refs.HEADS) == {
        k: v for k, v in want.items() if k.startswith(refs.HEADS)
    }
    assert refs.list_refs_file(repo, refs.TAGS) == sorted(k for k in want if k.startswith(refs.TAGS))


def test_an_unsorted_file_is_scanned_whole(tmp_path: Path, names: list[str]) -> None:
    """A packed-refs whose header does not say ``sorted`` (an old git, a hand-made one):
    its lines in any order, read as they are."""
    repo, want = _repo(tmp_path, names)
    path = os.path.join(repo, "packed-refs")
    lines = packedrefs.read(repo).split(b"\n")[1:]
    records: list[bytes] = []  # each ref's line with its peeled line
    for line in lines:
        if line.startswith(b"^"):
            records[-1] += b"\n" + line
        elif line:
            records.append(line)
    records.reverse()
    with open(path, "wb") as fh:
        fh.write(b"# pack-refs with: peeled \n" + b"\n".join(records) + b"\n")
    for name, oid in want.items():
        assert packedrefs.lookup(repo, name) == oid, name
    assert packedrefs.under(repo, "refs/heads/a") == {
        k: v for k, v in want.items() if k.startswith("refs/heads/a")
    }
    # and one with no header at all
    with open(path, "wb") as fh:
        fh.write(b"\n".join(records) + b"\n")
    assert packedrefs.under(repo, "refs/") == want


def test_no_file_an_empty_file_and_a_fifo(tmp_path: Path) -> None:
    repo = str(tmp_path / "r.git")
    git("init", "-q", "--bare", repo)
    assert packedrefs.lookup(repo, "refs/heads/main") is None and packedrefs.under(repo, "refs/") == {}
    Path(repo, "packed-refs").write_bytes(b"")
    assert packedrefs.lookup(repo, "refs/heads/main") is None and packedrefs.under(repo, "refs/") == {}
    os.unlink(os.path.join(repo, "packed-refs"))
    os.mkfifo(os.path.join(repo, "packed-refs"))
    with pytest.raises(CorruptStateError, match="not a file"):
        packedrefs.lookup(repo, "refs/heads/main")


def test_listings_read_the_packed_refs_once(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`vault info`'s forks and `stats` of 300 packed branches: the file read for the
    range once, no search a branch (each read the whole file a branch: O(refs^2))."""
    v = home.create_vault("p")
    tip = refs.read_ref_file(v.path, refs.fork_ref("main"))
    spec = "".join(f"create refs/heads/f{i:03d} {tip}\n" for i in range(300))
    subprocess.run(["git", "--git-dir", v.path, "update-ref", "--stdin"], input=spec.encode(), check=True)
    git("--git-dir", v.path, "pack-refs", "--all")
    calls = {"lookup": 0, "under": 0}
    real_lookup, real_under = packedrefs.lookup, packedrefs.under

    def lookup(git_dir: str, name: str) -> str | None:
        calls["lookup"] += 1
        return real_lookup(git_dir, name)

    def under(git_dir: str, prefix: str) -> dict[str, str]:
        calls["under"] += 1
        return real_under(git_dir, prefix)

    # (looked up as ``packedrefs.X`` by refs.py, forklist.py and vaultstats.py at each call)
    monkeypatch.setattr(packedrefs, "lookup", lookup)
    monkeypatch.setattr(packedrefs, "under", under)
    forks = v.forks()
    assert len(forks) == 301 and {f.head for f in forks} == {tip}
    assert calls["lookup"] < 5 and 1 <= calls["under"] < 5, calls
    calls.update(lookup=0, under=0)
    st = vaultstats.stats(v)
    assert len(st.forks) == 301 and {f.head for f in st.forks} == {tip}
    assert calls["lookup"] < 5 and 1 <= calls["under"] < 5, calls

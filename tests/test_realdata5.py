"""What git does with libgit2's own test repositories (``realdata.libgit2_resources``) that
avfs did not, found in the twenty-ninth round (realdata4) and taken up in the thirtieth
(realdata5): each held to git on the same repository.

- ``shallow.git`` (a shallow clone: its ``shallow`` file names ``be3563a``, whose parents
  it does not hold) cloned with `git clone` and not with `avfs vault clone` (git's fetch
  into the vault refused it: "did not send all necessary objects"). Now the vault is a
  shallow clone, as git's is: the same ``shallow`` file, `log` stops at the boundary, the
  boundary commit's diff is its whole tree (``git log -p``'s), a checkpoint and a merge on
  top pass `git fsck`.
- A merge in a lazy vault of a criss-cross history (``merge-recursive``: every pair of
  branches has several merge bases) went over libgit2's one merge base, where the whole
  vault merges over all of them (``merge_commits``, git's virtual ancestor): 14 of the 26
  merges conflicted where `git merge-tree` is clean. Now the lazy vault fetches what
  ``merge_commits`` reads first (one fetch) and merges as the whole vault does.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import merge as mergeop
from avfs_git.core.store import mergetrees

from . import realdata
from .test_merge_fixtures import _git_merge
from .test_remotes import _free_port, _start_daemon, _stop_daemon


@pytest.fixture(scope="module")
def resources() -> dict[str, Path]:
    return {str(p).split("/tests/resources/", 1)[1]: p for p in realdata.libgit2_resources()}


def _git(git_dir: Path | str, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), *args], capture_output=True, check=True, text=True, timeout=120
    ).stdout


def test_a_shallow_repository_clones_as_a_shallow_vault(
    resources: dict[str, Path], home: Any, cli: Any, tmp_path: Path
) -> None:
    src = resources["shallow.git"]
    plain = tmp_path / "plain"
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(plain)], check=True)
    r = cli("vault", "clone", str(src), "sh")
    assert r.code == 0, r.err
    vault = Path(home.vault_path("sh"))
    assert (
        (vault / "shallow").read_text()
        == (plain / "shallow").read_text()
        == "be3563ae3f795b2b4353bcce3a527ad0a4f7f644\n"
    )
    log = cli("--vault", "sh", "--json", "log")
    assert log.code == 0, log.err
    assert [c["id"] for c in log.json()["commits"]] == _git(
        plain, "rev-list", "--first-parent", "HEAD"
    ).split()
    # the boundary commit's diff: its whole tree, as `git log -p` (and `git show`) print it
    boundary = "be3563ae3f795b2b4353bcce3a527ad0a4f7f644"
    shown = cli("--vault", "sh", "show", boundary)
    assert shown.code == 0, shown.err
    want = _git(plain, "show", "--format=", boundary)
    assert shown.out.endswith(want.lstrip("\n")), shown.out
    for path in _git(plain, "ls-tree", "-r", "--name-only", "HEAD").split():
        got = cli("--vault", "sh", "cat", path)
        assert (
            got.out_bytes
            == subprocess.run(
                ["git", "--git-dir", str(plain), "cat-file", "blob", f"HEAD:{path}"],
                capture_output=True,
                check=True,
            ).stdout
        )
    # work on top of the boundary: a checkpoint, a fork, a merge, all git's objects
    assert cli("--vault", "sh", "write", "x.txt", "one\n").code == 0
    assert cli("--vault", "sh", "checkpoint", "save", "one").code == 0
    assert cli("--vault", "sh", "vault", "fork", "side").code == 0
    assert cli("--vault", "sh:side", "write", "y.txt", "side\n").code == 0
    assert cli("--vault", "sh:side", "checkpoint", "save").code == 0
    assert cli("--vault", "sh", "write", "z.txt", "main\n").code == 0
    assert cli("--vault", "sh", "checkpoint", "save").code == 0
    merged = cli("--vault", "sh", "merge", "side")
    assert merged.code == 0, merged.err
    _git(vault, "fsck", "--strict")
    assert _git(vault, "rev-list", "--count", "HEAD").strip() == "6"  # (2 cloned, 3 checkpoints, the merge)


@contextlib.contextmanager
def _serving(repo: Path, base: Path) -> Iterator[str]:
    """``repo`` served by `git daemon` on 127.0.0.1 (a mirror under ``base``), filters
    allowed: its URL."""
    base.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", "--mirror", str(repo), str(base / "r.git")], check=True)
    _git(base / "r.git", "config", "uploadpack.allowFilter", "true")
    _git(base / "r.git", "config", "uploadpack.allowAnySHA1InWant", "true")
    port = _free_port()
    proc = _start_daemon(base, port)
    try:
        yield f"git://127.0.0.1:{port}/r.git"
    finally:
        _stop_daemon(proc)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def served(resources: dict[str, Path], tmp_path: Path) -> Iterator[str]:
    """``merge-recursive`` served by `git daemon` on 127.0.0.1, filters allowed: its URL."""
    with _serving(resources["merge-recursive/.gitted"], tmp_path / "daemon") as url:
        yield url


def test_a_lazy_vault_merges_a_criss_cross_history_as_the_whole_vault_does(
    served: str, resources: dict[str, Path], home: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    git_dir = resources["merge-recursive/.gitted"]
    vault = home.clone_vault(served, "mr", lazy=True)
    assert vault.store.promisor.remote() is not None
    before = int(_git(vault.path, "count-objects", "-v").split("in-pack: ")[1].split()[0])
    recursed: list[str] = []
    real = mergetrees.merge_commits

    def spied(store: Any, ours: str, theirs: str, *rest: Any, **kw: Any) -> Any:
        recursed.append(theirs)
        return real(store, ours, theirs, *rest, **kw)

    monkeypatch.setattr(mergeop, "merge_commits", spied)  # (looked up in merge.py)
    fetched: list[int] = []
    wanted = mergetrees.commits_merge_blobs

    def listed(store: Any, ours: str, theirs: str) -> dict[str, str]:
        blobs = wanted(store, ours, theirs)
        fetched.append(len(blobs))
        return blobs

    monkeypatch.setattr(mergetrees, "commits_merge_blobs", listed)  # (looked up in mergetrees.py)
    heads = _git(git_dir, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()
    pairs = [(a, b) for a, b in itertools.permutations(heads, 2) if a.split("-")[0] == b.split("-")[0]]
    assert len(pairs) == 26
    clean = 0
    for ours, theirs in pairs:
        want = _git_merge(git_dir, ours, theirs)
        assert want is not None
        want_clean, want_tree, want_paths = want
        got = mergeop.merge(vault, theirs, ours, dry_run=True)
        if want_clean:
            assert got.status == "would_merge", (ours, theirs, got.conflicts)
            assert got.commit is not None
            assert vault.store.commit_tree(got.commit) == want_tree, (ours, theirs)
            clean += 1
        else:
            assert got.status == "would_conflict", (ours, theirs, got.status)
            assert {c.path for c in got.conflicts} == want_paths, (ours, theirs)
    assert clean >= 14
    assert len(recursed) == len(fetched) == 26
    assert sum(fetched) > 0
    after = int(_git(vault.path, "count-objects", "-v").split("in-pack: ")[1].split()[0])
    assert before < after  # (the blobs it read were fetched)


def _moved_and_edited(work: Path) -> None:
    """A repository at ``work``: git's ``t/t4013`` (200 files of git's expected diff
    outputs, much alike) committed, then every fifth moved into ``moved/`` with a growing
    share of its lines rewritten (1 in 9 ... 1 in 2: some stay 50 % similar, some not),
    every seventh deleted, and git's ``t/t4034`` word-diff inputs added."""
    src = realdata.git_source_dir("t/t4013")
    env_git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    shutil.copytree(src, work / "t4013")
    subprocess.run([*env_git, "add", "-A"], check=True)
    subprocess.run([*env_git, "commit", "-q", "-m", "t4013"], check=True)
    files = sorted(p.name for p in (work / "t4013").iterdir())
    (work / "moved").mkdir()
    for i, name in enumerate(files[::5]):
        lines = (work / "t4013" / name).read_bytes().splitlines(keepends=True)
        every = 2 + i % 8
        lines = [b"rewritten %d\n" % j if j % every == 0 else ln for j, ln in enumerate(lines)]
        (work / "moved" / name).write_bytes(b"".join(lines))
        (work / "t4013" / name).unlink()
    for name in files[3::7]:
        (work / "t4013" / name).unlink(missing_ok=True)
    shutil.copytree(realdata.git_source_dir("t/t4034"), work / "t4034")
    subprocess.run([*env_git, "add", "-A"], check=True)
    subprocess.run([*env_git, "commit", "-q", "-m", "moved"], check=True)


def test_renames_of_similar_content_in_git_s_own_test_data_are_git_s(
    tmp_path: Path, home: Any, cli: Any
) -> None:
    """`avfs diff` of files moved and edited pairs them as `git diff` does (``R085``,
    ``similarity index 85%``, ``old => new`` in `--stat`), byte for byte: before, avfs
    paired only the same content and printed each as a deletion and an addition."""
    work = tmp_path / "w"
    _moved_and_edited(work)
    assert cli("vault", "clone", str(work / ".git"), "t4013").code == 0
    status = _git(work / ".git", "diff", "--name-status", "HEAD~1", "HEAD")
    similar = [ln for ln in status.splitlines() if ln.startswith("R") and not ln.startswith("R100")]
    assert len(similar) >= 20, status  # (renames git finds by similar content)
    assert any(ln.startswith("D\tt4013/") for ln in status.splitlines())  # (and some it does not)
    for flags in ([], ["--stat"], ["--name-status"]):
        want = subprocess.run(
            ["git", "--git-dir", str(work / ".git"), "diff", "--no-color", *flags, "HEAD~1", "HEAD"],
            capture_output=True,
            check=True,
        ).stdout
        got = cli("--vault", "t4013", "diff", *flags, "HEAD~1", "HEAD")
        assert got.code == 0, got.err
        assert got.out_bytes == want, flags
    shown = cli("--vault", "t4013", "show", "HEAD")
    assert shown.code == 0, shown.err
    assert shown.out.endswith(_git(work / ".git", "show", "--format=", "HEAD").lstrip("\n"))


def test_grep_lists_files_in_git_s_path_order(tmp_path: Path, home: Any, cli: Any) -> None:
    """`avfs grep` of git's own test data (the tree above, and a file at the top written in
    the fork) lists what `git grep -I` lists, in its order: before, a directory's files came
    before its subdirectories (``zz.txt`` first; git's path order puts it last)."""
    work = tmp_path / "w"
    _moved_and_edited(work)
    assert cli("vault", "clone", str(work / ".git"), "t4013").code == 0
    git_grep = ["git", "-C", str(work), "grep", "-I", "-n", "--no-color"]
    for pattern in ("rewritten 1", "^diff --git", "index [0-9a-f]"):
        want = subprocess.run([*git_grep, "-e", pattern, "HEAD"], capture_output=True, check=True).stdout
        got = cli("--vault", "t4013", "grep", "-n", pattern, "--rev", "HEAD")
        assert got.code == 0, got.err
        assert got.out_bytes == want.replace(b"HEAD:", b""), pattern
    (work / "zz.txt").write_bytes(b"diff --git a/zz b/zz\n")
    subprocess.run(["git", "-C", str(work), "add", "zz.txt"], check=True)
    assert cli("--vault", "t4013", "write", "zz.txt", "diff --git a/zz b/zz\n").code == 0
    for paths in ([], ["t4013", "moved"], ["zz.txt", "t4034"]):
        want = subprocess.run(
            [*git_grep, "-e", "^diff --git", "--", *paths], capture_output=True, check=True
        ).stdout
        got = cli("--vault", "t4013", "grep", "-n", "^diff --git", *paths)
        assert got.code == 0, got.err
        assert got.out_bytes == want, paths


def test_a_lazy_vault_pairs_similar_renames_fetching_their_blobs_in_one_batch(
    tmp_path: Path, home: Any, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a lazy vault the blobs git compares for renames by similar content are fetched
    first, in one batch (:func:`avfs_git.core.store.similar.pair_similar`), and
    `--name-status` is git's."""
    from avfs_git.core.store import gitstore

    work = tmp_path / "w"
    _moved_and_edited(work)
    batches: list[int] = []
    real = gitstore.GitStore.prefetch

    def counted(self: Any, oids: Any) -> int:
        n = real(self, oids)
        batches.append(n)
        return n

    monkeypatch.setattr(gitstore.GitStore, "prefetch", counted)  # (a method: looked up on the class)
    with _serving(work / ".git", tmp_path / "daemon") as url:
        vault = home.clone_vault(url, "lz", lazy=True)
        assert vault.store.promisor.remote() is not None
        got = cli("--vault", "lz", "diff", "--name-status", "HEAD~1", "HEAD")
    assert got.code == 0, got.err
    assert got.out == _git(work / ".git", "diff", "--name-status", "HEAD~1", "HEAD")
    assert len(batches) == 1 and batches[0] > 100  # (the 63 deleted and 97 added blobs, one fetch)

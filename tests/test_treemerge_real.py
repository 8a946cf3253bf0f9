"""avfs's own tree differ and trivial merge against libgit2's, on libgit2's own test
repositories (``realdata.libgit2_resources``: ``merge-resolve`` and ``merge-recursive``'s
dozens of branches made to exercise a merge, ``typechanges``, ``renames``, ``nasty``...).

- ``trivialmerge._trivial_merge`` (what a merge of forks asks first, in pure Python) against
  libgit2's ``merge_trees``, every pair of branches of every repository whose branches share a
  base: where it merges, its tree is the one libgit2 writes, and libgit2 finds no conflict
  (before, it was held to libgit2 only on hypothesis's generated trees,
  ``tests/test_merge_properties.py``);
- ``treedeltas.tree_deltas`` (the one tree differ, ``treediff``) against libgit2's tree diff,
  every commit of every repository against each of its parents (``tests/test_treediff.py``
  holds it on this project's own history, whose trees hold no type change, no submodule, no
  mode but the usual four).
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pygit2
import pytest

from avfs_git.core.store import trivialmerge
from avfs_git.core.store.gitstore import GitStore
from avfs_git.core.store.treedeltas import tree_deltas

from . import realdata
from .test_treediff import _libgit2_deltas


@pytest.fixture(scope="module")
def resources() -> list[Path]:
    return realdata.libgit2_resources()


def _branch_tips(git_dir: Path) -> dict[str, pygit2.Commit]:
    try:
        repo = pygit2.Repository(str(git_dir))
        names = list(repo.branches.local)
    except (pygit2.GitError, KeyError, ValueError):
        return {}  # a fixture whose refs or config are damaged on purpose
    tips = {}
    for name in names:
        try:
            tips[name] = repo.branches.local[name].peel(pygit2.Commit)
        except (pygit2.GitError, KeyError, ValueError):
            continue
    return tips


def test_the_trivial_merge_of_every_pair_of_branches_is_libgit2_s(
    resources: list[Path], tmp_path: Path
) -> None:
    seen = {"pairs": 0, "trivial": 0, "clean": 0, "refused": 0}
    wrong = []
    for n, git_dir in enumerate(resources):
        if len(_branch_tips(git_dir)) < 2:
            continue
        work = shutil.copytree(git_dir, tmp_path / f"{n}.git", symlinks=True)
        (work / "objects" / "pack").mkdir(exist_ok=True)  # (the merge writes its trees as a pack)
        repo = pygit2.Repository(str(work))
        store = GitStore(str(work))
        # one pack for all of a repository's merges, never finished: the ids are what is
        # compared, and a pack finished a merge (its fsync) took 90 % of the test's time
        pack = store.pack_writer()
        try:
            tips = _branch_tips(work)
            for a, b in itertools.combinations(sorted(tips), 2):
                base = repo.merge_base(tips[a].id, tips[b].id)
                if base is None:
                    continue
                trees = (str(repo[base].tree_id), str(tips[a].tree_id), str(tips[b].tree_id))
                try:
                    index = repo.merge_trees(*trees)
                except pygit2.GitError:  # nasty's '.git\foobar': libgit2 will not merge it
                    seen["refused"] += 1
                    continue
                seen["pairs"] += 1
                clean = not index.conflicts
                seen["clean"] += clean
                got = trivialmerge._trivial_merge(store, *trees, pack=pack)
                if got is None:
                    continue
                seen["trivial"] += 1
                want = str(index.write_tree(repo)) if clean else "(conflicts)"
                if got[0] != want:
                    wrong.append((git_dir.parent.name, a, b, got[0], want))
        finally:
            pack.abort()
            store.close()
            repo.free()
    assert not wrong, wrong
    assert seen["pairs"] > 1000 and seen["trivial"] > 800 and seen["clean"] > seen["trivial"], seen


def test_every_commit_s_tree_deltas_are_libgit2_s(resources: list[Path]) -> None:
    compared = 0
    wrong = []
    for git_dir in resources:
        objects = pygit2.Repository()
        objects.set_odb(pygit2.Odb(str(git_dir / "objects")))
        pairs = []
        for oid in objects.odb:
            c = objects[oid]
            if isinstance(c, pygit2.Commit):
                pairs += [(str(objects[p].tree_id), str(c.tree_id)) for p in c.parent_ids if p in objects.odb]
        store = GitStore(str(git_dir))
        try:
            for a, b in pairs:
                if tree_deltas(store, a, b) != _libgit2_deltas(objects, a, b):
                    wrong.append((str(git_dir), a, b))
                compared += 1
        finally:
            store.close()
    assert not wrong, wrong
    assert compared > 2500, compared

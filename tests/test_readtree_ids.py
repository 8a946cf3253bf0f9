"""A fresh lazy mount lists its base tree once: git's ``read-tree`` into the index's scratch
file starts as the sizes are first asked, and the sizes read the tree's blob ids from that
index (mount/readtree.py ``Ahead.blob_ids``, core/store/gitstore.py ``tree_blobs``) instead
of a ``git ls-tree`` of their own: the ids against git's listing on released projects'
trees and on a tree of awkward names and modes, and in a real lazy mount served by a real
`git daemon` on 127.0.0.1, the git processes its settling ran, its sizes and its first
`git status` (docs/lazy.md, "Mounting a lazy fork: sizes before contents")."""

from __future__ import annotations

from pathlib import Path

import pytest

from avfs_git.core.store import gitstore
from avfs_git.core.store.gitstore import GitStore
from avfs_git.core.store.treelist import blob_ids, git_listing
from avfs_git.mount import readtree

from . import realdata
from .conftest import git
from .test_readtree import _edge_tree
from .test_untracked_tree import SDISTS, _repo


def _ids_both(bare: Path, tree: str, tmp: Path) -> tuple[list[str] | None, list[str]]:
    """(the blob ids read from git's index of ``tree``, those of git's listing of it)."""
    ahead = readtree.Ahead(str(bare), tree, str(tmp))
    try:
        ids = ahead.blob_ids()
    finally:
        ahead.drop()
    listed = git_listing(str(bare), tree)
    assert listed is not None
    return ids, blob_ids(listed)


@pytest.mark.parametrize(("project", "version"), SDISTS)
def test_the_blob_ids_read_from_git_s_index_are_git_s_listing_s(
    tmp_path: Path, project: str, version: str
) -> None:
    """On a released project's tree, the ids read from git's index are those of git's
    ``ls-tree`` listing, in the same order, one per file (an id repeated where files share it)."""
    tree_dir = realdata.extract(realdata.pypi_sdist(project, version), tmp_path / "sdist")
    bare, _, commit = _repo(tmp_path, tree_dir, None)
    tree = git("--git-dir", str(bare), "rev-parse", f"{commit}^{{tree}}").strip()
    ids, listed = _ids_both(bare, tree, tmp_path)
    assert ids == listed
    assert len(ids) > 1000 and len(set(ids)) < len(ids)


def test_the_blob_ids_of_awkward_names_and_modes_are_git_s(tmp_path: Path) -> None:
    """A submodule (left out: it names a commit), symbolic links, an executable, a path
    over 4,095 bytes (its name's length is not in the entry's flags), a name that is not
    UTF-8, an empty file: the same ids as git's listing."""
    bare, commit = _edge_tree(tmp_path)
    tree = git("--git-dir", str(bare), "rev-parse", f"{commit}^{{tree}}").strip()
    ids, listed = _ids_both(bare, tree, tmp_path)
    assert ids == listed
    sub = git("--git-dir", str(bare), "rev-parse", f"{commit}:sub").strip()
    assert sub not in ids


def test_a_tree_s_blobs_come_from_git_s_index_being_made_not_another_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tree_blobs`` of a tree whose index git is making for a mount (kept beside the
    store's listing) reads its ids from that index and starts no ``git ls-tree``; with
    nothing kept beside, it lists the tree as before (the same ids)."""
    bare, commit = _edge_tree(tmp_path)
    tree = git("--git-dir", str(bare), "rev-parse", f"{commit}^{{tree}}").strip()
    listings: list[str] = []

    def listing(git_dir: str, of: str) -> bytes | None:
        listings.append(of)
        return git_listing(git_dir, of)

    monkeypatch.setattr(gitstore, "git_listing", listing)  # (where tree_blobs looks it up)
    store = GitStore(str(bare))
    listed = store.tree_blobs(tree)
    assert listings == [tree]  # (the patched listing is the one tree_blobs runs)
    store.listed.drop()
    store.listed.keep_beside(tree, readtree.Ahead(str(bare), tree, str(tmp_path)))
    try:
        assert store.tree_blobs(tree) == listed
    finally:
        store.listed.drop()
    assert listings == [tree]  # no second listing

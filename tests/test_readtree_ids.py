"""A fresh lazy mount lists its base tree once: git's ``read-tree`` into the index's scratch
file starts as the sizes are first asked, and the sizes read the tree's blob ids from that
index (mount/readtree.py ``Ahead.blob_ids``, core/store/gitstore.py ``tree_blobs``) instead
of a ``git ls-tree`` of their own: the ids against git's listing on released projects'
trees and on a tree of awkward names and modes, and in a real lazy mount served by a real
`git daemon` on 127.0.0.1, the git processes its settling ran, its sizes and its first
`git status` (docs/lazy.md, "Mounting a lazy fork: sizes before contents")."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.store import gitstore, objectinfo
from avfs_git.core.store.gitstore import GitStore
from avfs_git.core.store.treelist import blob_ids, git_listing
from avfs_git.core.store.treesizes import ask, ensure_sizes
from avfs_git.core.vaults.home import Home
from avfs_git.mount import readtree
from avfs_git.ops import mounts

from .conftest import git
from .test_fuse import require_fuse
from .test_lazy import Server, objects
from .test_lazy import server as server
from .test_readtree import _edge_tree
from .test_untracked_tree import SDISTS, shared_repo


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
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, project: str, version: str
) -> None:
    """On a released project's tree, the ids read from git's index are those of git's
    ``ls-tree`` listing, in the same order, one per file (an id repeated where files share it)."""
    bare, _, commit = shared_repo(tmp_path_factory, project, version)
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


def _git_logging(where: Path) -> tuple[Path, Path]:
    """A directory holding a ``git`` that appends its arguments to a log, then runs git;
    (the directory, the log)."""
    real = shutil.which("git")
    assert real is not None
    where.mkdir()
    log = where / "git.log"
    wrapper = where / "git"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return where, log


def test_a_fresh_lazy_mount_lists_its_tree_once_and_its_first_status_fetches_nothing(
    home: Home, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first mount of a fresh `vault clone --lazy`, its sizes asked of the server: its
    settling runs git's ``read-tree`` of the tree and no ``git ls-tree`` (the sizes read the
    ids from the index); every entry's size is the server's (`git status` without the
    fsmonitor, which looks at every file, finds nothing changed) and it fetches no blob."""
    require_fuse()
    home.clone_vault(server.url("proj.git"), "p", lazy=True)
    v = home.vault("p")
    assert not v.store.promisor.sized(git("--git-dir", v.path, "rev-parse", "main^{tree}").strip())
    bin_dir, log = _git_logging(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")  # (the daemon's git)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp))
    try:
        (mp / ".git").read_bytes()  # (opens once the index is written: fuse/settle.py)
        before = objects(v.path)  # (the tree's .gitignore files came before the gate opened)
        ran = log.read_text().splitlines()
        assert any(" read-tree " in f" {line} " for line in ran), ran
        assert not any(" ls-tree " in f" {line} " for line in ran), ran
        plain = subprocess.run(
            ["git", "-c", "core.fsmonitor=false", "status", "--porcelain"],
            cwd=mp,
            check=True,
            capture_output=True,
            env={**os.environ, "PATH": os.environ["PATH"].split(os.pathsep, 1)[1]},
        )
        assert plain.stdout == b""
        assert objects(v.path) == before
    finally:
        mounts.unmount(home, v, "main", lazy=True)


def test_over_git_the_sizes_answer_is_read_after_reading_returns(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``remote_sizes(reading=)`` over ``git://``: the request goes out, then ``reading()``
    runs (a lazy mount waits there for its announcement while the server answers), then
    the answer is read: every size the server's."""
    bare = server.base / "proj.git"
    listing = git("--git-dir", str(bare), "ls-tree", "-r", "-l", "main")
    sizes = {
        m.split()[2]: int(m.split()[3]) for m, _ in (line.split("\t", 1) for line in listing.splitlines())
    }
    seen: list[str] = []
    answer = objectinfo._answer

    def read_answer(fh: objectinfo._Stream, oids: list[str]) -> dict[str, int]:
        seen.append("answer")
        return answer(fh, oids)

    monkeypatch.setattr(objectinfo, "_answer", read_answer)  # (where _over_git looks it up)
    got = objectinfo.remote_sizes(
        server.url("proj.git"), sorted(sizes), 30, reading=lambda: seen.append("reading")
    )
    assert seen == ["reading", "answer"]
    assert got == sizes


def test_the_whole_tree_s_sizes_call_reading_before_the_answer_or_where_none_is_asked(
    server: Server, home: Home
) -> None:
    """``ensure_sizes(reading=)``: where the request goes out, ``reading()`` runs before its
    answer is read (no size known yet when it first runs); a mount's ``ask`` of a tree
    sized already (nothing asked) runs it too, or its settling would never go on."""
    home.clone_vault(server.url("proj.git"), "p", lazy=True)
    store = home.vault("p").store
    tree = git("--git-dir", store.path, "rev-parse", "main^{tree}").strip()
    oid = store.tree_blobs(tree)[0]
    known: list[int | None] = []
    ensure_sizes(store, tree, fetch=False, reading=lambda: known.append(store.promisor.size(oid)))
    assert known and known[0] is None
    assert store.promisor.sized(tree) and store.promisor.size(oid) is not None
    known.clear()
    ask(store, tree, lambda: None, reading=lambda: known.append(store.promisor.size(oid)))  # (sized)
    assert known and None not in known

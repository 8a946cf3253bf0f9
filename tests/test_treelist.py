"""A whole tree listed by git (core/store/treelist.py) against the same tree walked through
the store, and a lazy fork's mount index made from git's listing against the same index
made from a walk (mount/index.py), on real git and a real lazy clone."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avfs_git.core.errors import InternalError, ObjectUnreadableError
from avfs_git.core.store import treelist
from avfs_git.core.store.gitstore import GitStore
from avfs_git.core.vaults.home import Home
from avfs_git.mount import index as mount_index

from .conftest import git
from .test_lazy import Server
from .test_lazy import server as server


def _awkward_repo(tmp_path: Path) -> tuple[str, str]:
    """A bare repository whose tree has what a listing can get wrong: names git sorts
    differently from plain byte order (``a.b`` beside ``a/``), names with tabs, newlines,
    spaces, quotes and bytes that are not UTF-8, a symlink, an executable, an empty-named
    deep chain, and a gitlink; (its path, its tree id)."""
    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work))
    files = {
        "a.b": "dot\n",
        "a/x.py": "x\n",
        "a/b/c/d/e.txt": "deep\n",
        "a-b/y": "y\n",
        "tab\there/f": "t\n",
        "new\nline": "n\n",
        'q"uote d/sp ace.txt': "s\n",
        "pkg/.gitignore": "*.pyc\n",
        "pkg/__init__.py": "",
    }
    for rel, text in files.items():
        p = work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    raw = os.fsencode(str(work)) + b"/caf\xe9"  # not UTF-8
    with open(raw, "wb") as fh:
        fh.write(b"latin-1 name\n")
    os.symlink("a/x.py", work / "link")
    (work / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(work / "run.sh", 0o755)
    git("-C", str(work), "add", "-A")
    # a gitlink (a submodule's commit), as a tree holds one
    git("-C", str(work), "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},sub/module")
    git("-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "awkward")
    bare = tmp_path / "awkward.git"
    git("clone", "-q", "--bare", str(work), str(bare))
    tree = git("--git-dir", str(bare), "rev-parse", "HEAD^{tree}").strip()
    return str(bare), tree


def test_git_lists_a_tree_as_the_store_walks_it(tmp_path):
    bare, tree = _awkward_repo(tmp_path)
    store = GitStore(bare)
    listed = treelist.list_tree(bare, tree, store.tree_items)
    walked = treelist.walk_tree(tree, store.tree_items)
    assert listed == walked
    paths = {p for p, _, _ in listed}
    assert {"a.b", "a/b/c/d/e.txt", "tab\there/f", "new\nline", "caf\udce9", "sub/module", "link"} <= paths
    modes = {p: m for p, m, _ in listed}
    assert modes["a"] == 0o040000 and modes["link"] == 0o120000 and modes["run.sh"] == 0o100755
    assert modes["sub/module"] == 0o160000
    # depth first, a directory before what it holds
    order = [p for p, _, _ in listed]
    assert order.index("a") < order.index("a/b") < order.index("a/b/c/d/e.txt")
    # the sizes keep their listing for the index, which takes it: not held after that
    kept = store.tree_listing(tree, keep=True)
    assert store.tree_listing(tree) is kept
    assert store.tree_listing(tree) is not kept
    assert store.tree_listing(tree) == walked


def test_where_git_cannot_list_the_tree_it_is_walked(tmp_path, monkeypatch):
    bare, tree = _awkward_repo(tmp_path)
    store = GitStore(bare)

    def no_git(*args: object, **kwargs: object) -> object:
        raise InternalError("git is not installed")

    monkeypatch.setattr(treelist, "run", no_git)
    assert treelist.list_tree(bare, tree, store.tree_items) == treelist.walk_tree(tree, store.tree_items)


def test_a_lazy_forks_index_from_gits_listing_is_the_walked_one(home: Home, server: Server, tmp_path):
    """The index a lazy fork's mount writes (its tree listed by git, its sizes from the
    server) is byte for byte the one written from a walk of a whole vault of the same
    commit with the same stat data, skeleton included; and making it loads no libgit2."""
    lazy = home.clone_vault(server.url("proj.git"), "lz", lazy=True)
    whole = home.clone_vault(server.url("proj.git"), "wh")
    ws = lazy.workspace("main")
    commit = ws.view.base
    assert commit == whole.workspace("main").view.base
    stat = mount_index.index_stat(ws, 1000, 1000)

    def made(vault: object) -> tuple[str, list[tuple[str, str | None]]]:
        skeleton: list[tuple[str, str | None]] = []
        data = mount_index.index_bytes(vault, commit, stat, "tok", skeleton=skeleton)  # type: ignore[arg-type]
        return hashlib.sha1(data).hexdigest(), skeleton

    code = (
        "import sys, json\n"
        "from avfs_git.mount import index as mi\n"
        "from avfs_git.mount.side import open_home\n"
        "h = open_home(sys.argv[1]); v = h.vault('lz'); ws = v.workspace('main')\n"
        "mi.index_bytes(v, ws.view.base, mi.index_stat(ws, 1000, 1000), 'tok', skeleton=[])\n"
        "print(json.dumps('pygit2' in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(home.path)], capture_output=True, text=True, check=False
    )
    assert out.stdout.strip() == "false", out.stderr
    lazy_made, whole_made = made(lazy), made(whole)
    assert lazy_made == whole_made
    assert ("avfs_git/core/store", None) in lazy_made[1]  # the directories, for the untracked cache
    # and it is git's own: the cache tree of `git read-tree`, the entries' ids and modes
    index_file = tmp_path / "index"
    index_file.write_bytes(mount_index.index_bytes(lazy, commit, stat, "tok"))
    env = dict(os.environ, GIT_INDEX_FILE=str(index_file), GIT_DIR=lazy.path)
    listed = subprocess.run(["git", "ls-files", "-s"], env=env, capture_output=True, text=True, check=True)
    tree = subprocess.run(
        ["git", "ls-tree", "-r", "--full-tree", commit], env=env, capture_output=True, text=True, check=True
    )
    assert len(listed.stdout.splitlines()) == len(tree.stdout.splitlines()) > 50
    written = subprocess.run(["git", "write-tree"], env=env, capture_output=True, text=True, check=True)
    assert written.stdout.strip() == git("--git-dir", lazy.path, "rev-parse", f"{commit}^{{tree}}").strip()


def test_a_tree_git_does_not_have_is_an_error_not_an_empty_listing(tmp_path):
    bare, _ = _awkward_repo(tmp_path)
    store = GitStore(bare)
    with pytest.raises(ObjectUnreadableError):  # git fails, then the walk names the object
        treelist.list_tree(bare, "2" * 40, store.tree_items)


def test_a_lazy_forks_index_made_before_its_sizes_and_filled_is_the_one_made_after(
    home: Home, server: Server
):
    """A lazy fork's mount makes its index while the sizes are asked (fuse/settle.py): the
    sizes not known yet left 0, filled in afterwards (indexsizes.with_sizes). The result is
    byte for byte the index made once the sizes are known, skip-worktree entries (index
    version 3) and empty files included."""
    from avfs_git.mount.indexsizes import with_sizes

    lazy = home.clone_vault(server.url("proj.git"), "lz", lazy=True)
    ws = lazy.workspace("main")
    commit, store = ws.view.base, lazy.store
    hidden = lambda p: p.startswith("avfs_git/cli/")  # noqa: E731
    early = mount_index.index_stat(ws, 1000, 1000, unknown_zero=True)
    made = mount_index.index_bytes(lazy, commit, early, "tok", hidden=hidden, sized=False)
    assert made[4:8] == b"\0\0\0\3"  # (skip-worktree entries: version 3)
    blobs = [o for _, m, o in store.tree_listing(ws.view.base_tree) if m not in (0o040000, 0o160000)]
    assert all(store.promisor.size(o) is None for o in blobs)  # nothing asked yet
    store.ensure_sizes(ws.view.base_tree)
    after = mount_index.index_bytes(
        lazy, commit, mount_index.index_stat(ws, 1000, 1000), "tok", hidden=hidden
    )
    assert made != after
    assert 0 in {store.promisor.size(o) for o in blobs}  # an empty file: its size stays 0
    assert with_sizes(made, mount_index.sizes_of(store)) == after


def test_a_listing_git_is_making_for_the_sizes_is_waited_for_not_made_again(tmp_path, monkeypatch):
    """A lazy mount's index asks for the base tree's listing while git still lists it for
    the sizes (fuse/settle.py): it waits for that listing and parses it, rather than
    starting a second `git ls-tree` of the whole tree beside the first."""
    import threading
    import time

    bare, tree = _awkward_repo(tmp_path)
    store = GitStore(bare)
    real = treelist.git_listing
    listed: list[str] = []
    go = threading.Event()

    def slow(git_dir: str, t: str) -> bytes | None:
        listed.append(t)
        go.wait(10)
        return real(git_dir, t)

    monkeypatch.setattr(treelist, "git_listing", slow)
    pre = threading.Thread(target=store.listed.prelist, args=(tree, lambda: treelist.git_listing(bare, tree)))
    pre.start()
    got: list[treelist.Listing] = []
    user = threading.Thread(target=lambda: got.append(store.tree_listing(tree, keep=True)))
    deadline = time.monotonic() + 5
    while not listed and time.monotonic() < deadline:
        time.sleep(0.005)
    user.start()
    user.join(0.3)
    assert user.is_alive() and not got  # waiting for git's listing, not making its own
    go.set()
    pre.join(10)
    user.join(10)
    assert listed == [tree]  # one `git ls-tree`
    assert got == [treelist.walk_tree(tree, store.tree_items)]


def test_the_blob_ids_read_in_bulk_are_the_listing_s(tmp_path):
    """``blob_ids`` (git's listing read without parsing every entry, for a lazy mount's
    sizes) gives the blobs the parsed listing has, in its order, repeats kept: no tree, no
    gitlink, on a tree of awkward names; nothing for an empty listing."""
    bare, tree = _awkward_repo(tmp_path)
    out = treelist.git_listing(bare, tree)
    assert out is not None
    listing = treelist.list_tree(bare, tree, GitStore(bare).tree_items, out)
    want = [o for _, mode, o in listing if mode not in (0o040000, 0o160000)]
    assert treelist.blob_ids(out) == want and len(want) > 8
    assert treelist.blob_ids(b"") == []


def test_the_raw_listing_taken_for_the_sizes_stays_for_the_index(tmp_path):
    """A store's ``tree_blobs`` (the sizes) takes git's listing raw and leaves it kept: the
    next ``tree_listing`` parses that one, git is not run again; what was kept beside it
    (``keep_beside``) is taken once, dropped when the listing is, and dropped when asked
    for another tree."""
    bare, tree = _awkward_repo(tmp_path)
    store = GitStore(bare)
    runs = []
    real = treelist.git_listing

    def counted(git_dir: str, t: str) -> bytes | None:
        runs.append(t)
        return real(git_dir, t)

    import avfs_git.core.store.gitstore as gitstore_module

    mp = pytest.MonkeyPatch()
    mp.setattr(gitstore_module, "git_listing", counted)
    mp.setattr(treelist, "git_listing", counted)
    try:
        blobs = store.tree_blobs(tree)
        listing = store.tree_listing(tree)
    finally:
        mp.undo()
    assert runs == [tree]
    assert blobs == [o for _, mode, o in listing if mode not in (0o040000, 0o160000)]

    class Thing:
        dropped = 0

        def drop(self) -> None:
            self.dropped += 1

    kept = store.listed
    one, two, three = Thing(), Thing(), Thing()
    kept.keep_beside(tree, one)
    assert kept.take_beside(tree) is one and kept.take_beside(tree) is None and not one.dropped
    kept.keep_beside(tree, two)
    kept.drop()
    assert two.dropped == 1 and kept.take_beside(tree) is None
    kept.keep_beside(tree, three)
    assert kept.take_beside("0" * 40) is None and three.dropped == 1

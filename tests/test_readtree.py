"""A fresh lazy mount's index made by git (mount/readtree.py: ``git read-tree`` into a
scratch file, the mount's stat data and the sizes written into git's entries) against the
index avfs builds entry by entry (mount/index.py ``index_bytes``) and against git's own
reading of it, on released projects' trees and on a tree of the cases a name or a mode can
make; and in a real lazy mount, the index written is git's own but the stat data."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from avfs_git.core.store.gitstore import GitStore
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.keptindexes import kept_dir
from avfs_git.mount import readtree, untracked
from avfs_git.mount.heldstat import inode_of
from avfs_git.mount.index import index_bytes
from avfs_git.ops import mounts

from .conftest import git
from .test_fuse import require_fuse
from .test_lazy import Server, objects
from .test_lazy import server as server
from .test_untracked_tree import SDISTS, shared_repo

T_NS = 1_700_000_123_456_789_012  # a view time: seconds and nanoseconds both non-zero
OWNER = (1234, 5678)


def _git_sizes(bare: Path) -> dict[str, int]:
    """Every blob's size as git says (``cat-file --batch-check``), by id."""
    out = git("--git-dir", str(bare), "cat-file", "--batch-check", "--batch-all-objects")
    sizes = {}
    for line in out.splitlines():
        oid, kind, size = line.split()
        if kind == "blob":
            sizes[oid] = int(size)
    return sizes


def _split(index: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """(the header and entries, {extension signature: its data}) of a version 2 index."""
    count = int.from_bytes(index[8:12], "big")
    off = 12
    for _ in range(count):
        nl = int.from_bytes(index[off + 60 : off + 62], "big") & 0xFFF
        if nl == 0xFFF:
            nl = index.index(b"\0", off + 62) - off - 62
        off += (70 + nl) & ~7
    exts = {}
    at, end = off, len(index) - 20
    while at < end:
        size = int.from_bytes(index[at + 4 : at + 8], "big")
        exts[index[at : at + 4]] = index[at + 8 : at + 8 + size]
        at += 8 + size
    assert at == end and hashlib.sha1(index[:-20]).digest() == index[-20:]
    return index[:off], exts


def _cache_tree(data: bytes) -> dict[str, tuple[int, int, str]]:
    """git's cache tree (``TREE``) by directory path: (entries, subtrees, tree id)."""
    out: dict[str, tuple[int, int, str]] = {}
    at = 0

    def one(prefix: str | None) -> None:
        nonlocal at
        nul = data.index(b"\0", at)
        nl = data.index(b"\n", nul)
        count, subs = (int(x) for x in data[nul + 1 : nl].split())
        name = data[at:nul].decode("utf-8", "surrogateescape")
        path = name if prefix is None else (f"{prefix}/{name}" if prefix else name)
        out[path] = (count, subs, data[nl + 1 : nl + 21].hex())
        at = nl + 21
        for _ in range(subs):
            one(path)

    one(None)
    assert at == len(data)
    return out


def _debug(bare: Path, index: bytes, tmp: Path) -> str:
    """``git ls-files -s --debug`` of ``index`` (git reading every entry's stat data)."""
    path = tmp / "debug-index"
    path.write_bytes(index)
    env = {**os.environ, "GIT_INDEX_FILE": str(path)}
    return subprocess.run(
        ["git", "--git-dir", str(bare), "-c", "core.quotePath=false", "ls-files", "-s", "--debug"],
        env=env,
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8", "surrogateescape")


def _both(
    bare: Path, commit: str, tmp: Path
) -> tuple[bytes, bytes, readtree.GitIndex, list[tuple[str, str | None]]]:
    """(git's index filled in with ``bare``'s sizes, ``index_bytes``' with the same stat
    data, git's as made, ``index_bytes``' skeleton)."""
    store = GitStore(str(bare))

    class Vault:
        pass

    Vault.store = store  # type: ignore[attr-defined]
    sizes = _git_sizes(bare)
    tree = store.commit_tree(commit)
    made = readtree.made_by_git(str(bare), tree, "token", T_NS, OWNER, str(tmp))
    assert made is not None
    ours = readtree.sizes_filled(made.data, made.sized_at, sizes.__getitem__)

    def stat_of(path: str, mode: int, oid: str) -> tuple[int, int, int, int, int, int]:
        return T_NS, T_NS, inode_of(path), *OWNER, 0 if mode == 0o160000 else sizes[oid]

    skeleton: list[tuple[str, str | None]] = []
    built = index_bytes(Vault, commit, stat_of, "token", skeleton=skeleton)  # type: ignore[arg-type]
    return ours, built, made, skeleton


def _same(bare: Path, commit: str, tmp: Path) -> tuple[readtree.GitIndex, str]:
    """The two indexes of ``commit`` hold the same entries byte for byte, the same cache
    tree (git orders a directory's subtrees its own way: compared by path), the same
    fsmonitor extension, and git reads the same from both; the same skeleton. Returns
    git's index as made and what ``git ls-files -s --debug`` reads from it filled in."""
    ours, built, made, skeleton = _both(bare, commit, tmp)
    entries, exts = _split(ours)
    built_entries, built_exts = _split(built)
    assert entries == built_entries
    assert list(exts) == [b"TREE", b"FSMN"] == list(built_exts)
    assert _cache_tree(exts[b"TREE"]) == _cache_tree(built_exts[b"TREE"])
    assert exts[b"FSMN"] == built_exts[b"FSMN"]
    read = _debug(bare, ours, tmp)
    assert read == _debug(bare, built, tmp)
    assert {p for p, o in made.skeleton if o is None} == {p for p, o in skeleton if o is None}
    assert sorted(p for p in made.skeleton if p[1] is not None) == sorted(
        p for p in skeleton if p[1] is not None
    )
    seen = {""}
    for path, oid in made.skeleton:  # parents first (untracked.py reads it so)
        assert path.rpartition("/")[0] in seen, path
        if oid is None:
            seen.add(path)
    return made, read


@pytest.mark.parametrize(("project", "version"), SDISTS)
def test_git_s_index_filled_in_is_the_one_built_entry_by_entry(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, project: str, version: str
) -> None:
    """On a released project's tree, git's index with the mount's stat data and the sizes
    filled in holds the entries ``index_bytes`` builds, byte for byte, and git reads from
    it what the mount reports of every file: the view time, the path's inode number, the
    owner, the blob's size as git says."""
    bare, _, commit = shared_repo(tmp_path_factory, project, version)
    _, read = _same(bare, commit, tmp_path)
    sizes = {}
    for line in git(
        "--git-dir", str(bare), "-c", "core.quotePath=false", "ls-tree", "-r", "-l", commit
    ).splitlines():
        meta, path = line.split("\t", 1)
        sizes[path] = int(meta.split()[3])
    lines = read.splitlines()
    read = 0
    for i in range(0, len(lines), 6):
        path = lines[i].split("\t", 1)[1]
        sec, ns = divmod(T_NS, 10**9)
        assert lines[i + 1].split() == ["ctime:", f"{sec}:{ns}"]
        assert lines[i + 2].split() == ["mtime:", f"{sec}:{ns}"]
        assert lines[i + 3].split() == ["dev:", "0", "ino:", str(inode_of(path) & 0xFFFFFFFF)], path
        assert lines[i + 4].split() == ["uid:", str(OWNER[0]), "gid:", str(OWNER[1])]
        assert lines[i + 5].split()[:2] == ["size:", str(sizes[path])]
        read += 1
    assert read == len(sizes) > 500


def _edge_tree(tmp_path: Path) -> tuple[Path, str]:
    """A bare repository whose one commit holds what a name or a mode can make: a
    submodule, a symbolic link (also one named ``.gitignore``), an executable, ``.gitignore``
    files at the root, deep down and as a directory's name, names that end in
    ``.gitignore`` without being one, a file and a directory named ``TREE`` (the cache
    tree's signature), a path over 4,095 bytes, a name that is not UTF-8, an empty file."""
    bare = tmp_path / "edge.git"
    git("init", "-q", "--bare", str(bare))
    deep = "/".join(f"{i:02d}" + "d" * 200 for i in range(21))
    files: list[tuple[str, bytes, bytes]] = [
        ("100644", b".gitignore", b"*.log\n"),
        ("100644", b"a/.gitignore", b"build/\n"),
        ("100644", b"a/x.gitignore", b"not one\n"),
        ("100644", b"a/b/c/.gitignore", b"*.tmp\n"),
        ("100644", b"b/.gitignore/inside", b"a directory named .gitignore\n"),
        ("120000", b"c/.gitignore", b"../.gitignore"),
        ("100755", b"c/run.sh", b"#!/bin/sh\necho hi\n"),
        ("120000", b"c/link", b"run.sh"),
        ("100644", b"TREE", b"a file named TREE\n"),
        ("100644", b"d/TREE/TREE", b"a directory named TREE\n"),
        ("100644", deep.encode() + b"/.gitignore", b"deep\n"),
        ("100644", deep.encode() + b"/f.py", b"print('deep')\n"),
        ("100644", b"e/caf\xe9.txt", b"latin-1 name\n"),
        ("100644", b"e/empty", b""),
    ]
    stream = []
    for i, (_, _, body) in enumerate(files):
        stream.append(b"blob\nmark :%d\ndata %d\n%s\n" % (i + 1, len(body), body))
    stream.append(b"commit refs/heads/main\ncommitter t <t@t> 1700000000 +0000\ndata 4\nedge\n")
    for i, (mode, path, _) in enumerate(files):
        stream.append(b"M %s :%d %s\n" % (mode.encode(), i + 1, path))
    stream.append(b"M 160000 %s sub\n" % (b"1" * 40))
    subprocess.run(
        ["git", "--git-dir", str(bare), "fast-import", "--quiet"], input=b"".join(stream), check=True
    )
    return bare, git("--git-dir", str(bare), "rev-parse", "main").strip()


def test_names_and_modes_git_s_index_and_the_one_built_entry_by_entry_agree_on(tmp_path: Path) -> None:
    """On :func:`_edge_tree`: the same entries, cache tree and skeleton (the ``.gitignore``
    files are the regular files of that name, not the link, the directory or ``x.gitignore``;
    the submodule's size is 0)."""
    bare, commit = _edge_tree(tmp_path)
    made, _ = _same(bare, commit, tmp_path)
    deep = "/".join(f"{i:02d}" + "d" * 200 for i in range(21))
    assert sorted(p for p, o in made.skeleton if o is not None) == sorted(
        [".gitignore", "a/.gitignore", "a/b/c/.gitignore", f"{deep}/.gitignore"]
    )
    assert "sub" not in {p for p, _ in made.skeleton}


def test_what_the_user_s_config_says_git_still_writes_the_index_this_reads(tmp_path: Path) -> None:
    """A vault whose config asks git for index version 4, a skipped hash, an untracked
    cache, a split index and the offset tables of threaded reading: git's scratch index is
    still version 2 with only the cache tree, the same as without that config."""
    bare, commit = _edge_tree(tmp_path)
    tree = git("--git-dir", str(bare), "rev-parse", f"{commit}^{{tree}}").strip()
    plain = readtree.made_by_git(str(bare), tree, "token", T_NS, OWNER, str(tmp_path))
    for key, value in (
        ("index.version", "4"),
        ("feature.manyFiles", "true"),
        ("index.skipHash", "true"),
        ("core.untrackedCache", "true"),
        ("core.splitIndex", "true"),
        ("index.threads", "4"),
        ("index.recordEndOfIndexEntries", "true"),
        ("index.recordOffsetTable", "true"),
    ):
        git("--git-dir", str(bare), "config", key, value)
    configured = readtree.made_by_git(str(bare), tree, "token", T_NS, OWNER, str(tmp_path))
    assert plain is not None and configured == plain


def test_an_index_this_cannot_read_is_none() -> None:
    """Not an index, another version, entries cut short, an extension git should not have
    written, a cache tree of another tree: None (the caller builds the index itself)."""
    tree = "4b825dc642cb6eb9a060e54bf8d69288fbe4904b"  # the empty tree
    empty_tree = b"\0" + b"0 0\n" + bytes.fromhex(tree)
    good = b"DIRC" + (2).to_bytes(4, "big") + (0).to_bytes(4, "big")
    good += b"TREE" + len(empty_tree).to_bytes(4, "big") + empty_tree
    good += hashlib.sha1(good).digest()
    assert readtree._filled(good, tree, "t", T_NS, OWNER) is not None
    body = good[:-20]
    bad = [
        b"garbage" * 10,
        body.replace(b"DIRC\0\0\0\2", b"DIRC\0\0\0\4") + bytes(20),
        body.replace(b"\0\0\0\0TREE", b"\0\0\0\1TREE") + bytes(20),
        body + b"UNTR" + bytes(4) + bytes(20),
    ]
    for data in bad:
        assert readtree._filled(data, tree, "t", T_NS, OWNER) is None
    assert readtree._filled(good, "1" * 40, "t", T_NS, OWNER) is None


def test_a_fresh_lazy_mount_s_index_is_git_s_own_with_the_mount_s_stat_data(
    home: Home, server: Server, tmp_path: Path
) -> None:
    """The first mount of a fresh `vault clone --lazy` writes git's own index of the base
    tree (``git read-tree``'s entries and cache tree, byte for byte but the stat data),
    with every size the server's and no blob fetched; `git status` without the fsmonitor
    (it looks at every file) finds nothing changed and fetches nothing."""
    require_fuse()
    home.clone_vault(server.url("proj.git"), "p", lazy=True)
    v = home.vault("p")
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp))
    try:
        (mp / ".git").read_bytes()  # (opens once the index is written: fuse/settle.py)
        before = objects(v.path)
        git_dir = Path(git("rev-parse", "--absolute-git-dir", cwd=mp).strip())
        index = (git_dir / "index").read_bytes()
        scratch = tmp_path / "git-index"
        env = {**os.environ, "GIT_INDEX_FILE": str(scratch)}
        subprocess.run(["git", "--git-dir", v.path, "read-tree", "main^{tree}"], env=env, check=True)
        gits_entries, gits_exts = _split(scratch.read_bytes())
        entries, exts = _split(index)
        assert exts[b"TREE"] == gits_exts[b"TREE"]  # (git's own order of the subtrees)
        assert list(exts) == [b"TREE", b"FSMN", b"UNTR"]
        assert untracked._find(index, b"UNTR") is not None

        def stat_zeroed(data: bytes) -> bytes:
            out = bytearray(data)
            off = 12
            for _ in range(int.from_bytes(data[8:12], "big")):
                nl = int.from_bytes(data[off + 60 : off + 62], "big") & 0xFFF
                out[off : off + 24] = bytes(24)
                out[off + 28 : off + 40] = bytes(12)
                off += (70 + nl) & ~7
            return bytes(out)

        assert stat_zeroed(entries) == stat_zeroed(gits_entries)
        listed = git("ls-files", "--debug", cwd=mp).splitlines()
        sizes = {
            listed[i - 5]: int(line.split()[1]) for i, line in enumerate(listed) if line.startswith("  size:")
        }
        served = git("--git-dir", str(server.base / "proj.git"), "ls-tree", "-r", "-l", "main")
        want = {r.split("\t", 1)[1]: int(r.split("\t")[0].split()[3]) for r in served.splitlines()}
        assert len(sizes) == len(want) > 50 and sizes == want
        plain = subprocess.run(
            ["git", "-c", "core.fsmonitor=false", "status", "--porcelain"],
            cwd=mp,
            capture_output=True,
            text=True,
        )
        assert plain.returncode == 0 and plain.stdout == "", plain
        assert objects(v.path) == before
    finally:
        mounts.unmount(home, v, "main", lazy=True)


def test_the_sizes_known_as_git_s_entries_are_filled_in_are_written_in_that_pass(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Sizes the size cache knows go into git's entries with the stat data (the pass leaves
    only the others to :func:`~.readtree.sizes_filled`): on a released project's tree with
    none, half and every size known, the index filled in at last is the same, byte for
    byte, and the offsets left are exactly the unknown sizes'."""
    bare, _, commit = shared_repo(tmp_path_factory, "networkx", "3.4.2")
    sizes = _git_sizes(bare)
    tree_id = git("--git-dir", str(bare), "rev-parse", f"{commit}^{{tree}}").strip()
    made = readtree.made_by_git(str(bare), tree_id, "token", T_NS, OWNER, str(tmp_path))
    assert made is not None and len(made.sized_at) > 500
    whole = readtree.sizes_filled(made.data, made.sized_at, sizes.__getitem__)
    half = {oid: n for i, (oid, n) in enumerate(sorted(sizes.items())) if i % 2}
    for known in ({}, half, sizes):
        part = readtree.made_by_git(str(bare), tree_id, "token", T_NS, OWNER, str(tmp_path), known.get)
        assert part is not None and part.skeleton == made.skeleton
        assert {oid for _, oid in part.sized_at} == {oid for _, oid in made.sized_at if oid not in known}
        assert readtree.sizes_filled(part.data, part.sized_at, sizes.__getitem__) == whole
    assert (
        readtree.made_by_git(str(bare), tree_id, "token", T_NS, OWNER, str(tmp_path), sizes.get).sized_at
        == []
    )  # type: ignore[union-attr]


_FIELDS = ("ctime", "mtime", "ino", "mode", "uid", "gid", "size", "oid", "flags")


def _entries(index: bytes) -> dict[bytes, dict[str, object]]:
    """Each entry of a version 2 index by path: the fields git compares with what
    ``lstat`` says (dev aside: git stores it but compares it only when built with
    ``USE_STDEV``, which Linux builds are not), its mode, object and flags."""
    out: dict[bytes, dict[str, object]] = {}
    off = 12
    for _ in range(int.from_bytes(index[8:12], "big")):
        f = [int.from_bytes(index[off + 4 * i : off + 4 * i + 4], "big") for i in range(10)]
        flags = int.from_bytes(index[off + 60 : off + 62], "big")
        nl = flags & 0xFFF
        if nl == 0xFFF:
            nl = index.index(b"\0", off + 62) - off - 62
        out[index[off + 62 : off + 62 + nl]] = dict(
            zip(
                _FIELDS,
                ((f[0], f[1]), (f[2], f[3]), f[5], f[6], f[7], f[8], f[9], index[off + 40 : off + 60], flags),
                strict=True,
            )
        )
        off += (70 + nl) & ~7
    return out


def test_a_fresh_lazy_mount_s_index_is_what_git_s_refresh_writes_in_it(
    home: Home, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Differential, on a released project served lazily: the index a fresh lazy mount makes
    (git's read-tree, the mount's stat data and the sizes filled in by avfs) holds, entry
    for entry, what git itself writes there from scratch (``git read-tree`` of the same
    commit, then ``git update-index --refresh`` in the mount: every file ``lstat``-ed and
    read, its stat data stored), and git's own cache tree; once with the sizes asked as
    the mount starts, once with every size known before it (the pass writes them), the
    index kept by the first mount removed so the second makes it again."""
    require_fuse()
    bare, _, commit = shared_repo(tmp_path_factory, "networkx", "3.4.2")
    base = tmp_path / "daemon"
    base.mkdir()
    git("clone", "-q", "--bare", str(bare), str(base / "proj.git"))
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant", "transfer.advertiseObjectInfo"):
        git("--git-dir", str(base / "proj.git"), "config", key, "true")
    with Server.serving(base) as srv:
        home.clone_vault(srv.url("proj.git"), "p", lazy=True)
        v = home.vault("p")
        for attempt in ("sizes asked", "sizes known"):
            mp = tmp_path / f"mnt-{attempt.split()[1]}"
            mp.mkdir()
            mounts.mount(home, v, "main", str(mp))
            try:
                (mp / ".git").read_bytes()  # (opens once the index is written: fuse/settle.py)
                git_dir = Path(git("rev-parse", "--absolute-git-dir", cwd=mp).strip())
                index = (git_dir / "index").read_bytes()
                scratch = tmp_path / f"refreshed-{attempt.split()[1]}"
                env = {**os.environ, "GIT_INDEX_FILE": str(scratch)}
                subprocess.run(["git", "read-tree", commit], cwd=mp, env=env, check=True)
                # (the files' mtime, the view time, a second before git writes: no entry is
                # racily clean, which git would write with its size 0)
                time.sleep(max(0.0, int.from_bytes(index[20:24], "big") + 1.5 - time.time()))
                plain = ("-c", "core.fsmonitor=false", "-c", "core.untrackedCache=false")
                subprocess.run(
                    ["git", *plain, "update-index", "-q", "--refresh"], cwd=mp, env=env, check=True
                )
                refreshed = scratch.read_bytes()
            finally:
                mounts.unmount(home, v, "main", lazy=True)
            ours, gits = _entries(index), _entries(refreshed)
            assert len(ours) > 500 and list(ours) == list(gits), attempt
            for path, fields in gits.items():
                assert ours[path] == fields, (attempt, path)
            assert _split(index)[1][b"TREE"] == _split(refreshed)[1][b"TREE"], attempt
            shutil.rmtree(kept_dir(v.state_dir), ignore_errors=True)

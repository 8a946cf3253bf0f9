"""avfs's hand-written readers of git's index against git's own reading, on a real project's
index in every form git writes it (the twenty-fourth round, NAME=attack15): versions 2, 3
and 4, the untracked cache, a split index, the fsmonitor extension with dirty bits, the end
of index entries and offset table extensions, entries marked skip-worktree, assume-unchanged
and intent-to-add. Each reader must see what `git ls-files` sees:

- mount/indexflags.py ``names_whole`` (the check the carry-back makes before it trusts
  `git ls-files`' names), ``_walk``/``_name`` and ``flagged`` (the bits a whole rewrite
  keeps) against `git ls-files -s -z` and `git ls-files -v -z`;
- mount/indexpatch.py ``_entry_offsets`` and ``fsmonitor_dirty`` (git's dirty bits a patch
  keeps) against `git ls-files -s -z` and `git ls-files -f -z`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from avfs_git.mount import indexflags, indexpatch

from . import realdata

PROJECT = ("Django", "5.1.4")


def _git(repo: Path, *args: str, **kw: str) -> bytes:
    env = {**os.environ, **kw}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout of the project's release, committed (git's own index of it)."""
    tmp = tmp_path_factory.mktemp("gitindex")
    work = realdata.owned_copy(realdata.pypi_sdist(*PROJECT), tmp / "work")
    _git(work, "init", "-q", "-b", "main")
    # no `gc --auto`: the commit's ~7,000 loose objects start one, detached, which packs and
    # prunes them while a test copies the repository (`cp: cannot stat .git/objects/..`)
    _git(work, "config", "gc.auto", "0")
    _git(work, "add", "-A", "-f")
    _git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "release")
    return work


def _index_of(project: Path, work: Path) -> Path:
    """A repository of the project's commit to change the index of: its git directory a
    clone sharing the project's objects (``--shared``: no copy of its ~7,000 loose
    objects), no checkout (what these tests run reads the index, not the files; a `cp -a`
    of the project was ~3-4 s of CPU a test); its index git's ``read-tree HEAD``."""
    clone = ["git", "clone", "-q", "--shared", "--no-checkout", str(project), str(work)]
    subprocess.run(clone, check=True, capture_output=True)
    _git(work, "read-tree", "HEAD")
    return work


def _forms(work: Path) -> list[tuple[str, bytes]]:
    """The project's index as git writes it in each form, one after the other."""
    out = []
    index = work / ".git" / "index"
    paths = _git(work, "ls-files", "-z").split(b"\0")[:-1]
    out.append(("v2", index.read_bytes()))
    _git(work, "update-index", "--skip-worktree", paths[3].decode(), paths[400].decode())
    _git(work, "update-index", "--assume-unchanged", paths[5].decode(), paths[400].decode())
    (work / "added-later.txt").write_text("intent to add\n")
    _git(work, "add", "-N", "added-later.txt")
    out.append(("v3", index.read_bytes()))
    _git(work, "update-index", "--index-version", "4")
    out.append(("v4", index.read_bytes()))
    _git(work, "update-index", "--index-version", "3")
    _git(work, "-c", "core.untrackedCache=true", "status", "--porcelain")
    out.append(("untracked cache", index.read_bytes()))
    cfg = [
        "-c",
        "index.recordEndOfIndexEntries=true",
        "-c",
        "index.recordOffsetTable=true",
        "-c",
        "index.threads=4",
    ]
    _git(work, *cfg, "update-index", "--index-version", "4")
    _git(work, *cfg, "update-index", "--index-version", "3")
    out.append(("end of index entries, offset table", index.read_bytes()))
    _git(work, "update-index", "--split-index")
    out.append(("split index", index.read_bytes()))
    _git(work, "update-index", "--no-split-index")
    _git(work, "update-index", "--index-version", "4")
    _git(work, "-c", "core.untrackedCache=true", "status", "--porcelain")
    out.append(("v4, untracked cache", index.read_bytes()))
    return out


def _listed(work: Path, index: bytes, *args: str) -> list[bytes]:
    scratch = work / ".git" / "index.check"
    scratch.write_bytes(index)
    try:
        got = _git(work, "-c", "core.fsmonitor=false", "ls-files", *args, "-z", GIT_INDEX_FILE=str(scratch))
    finally:
        scratch.unlink()
    return got.split(b"\0")[:-1]


def test_every_index_git_writes_of_a_real_project_is_whole_and_read_as_git_reads_it(project: Path) -> None:
    forms = _forms(project)
    assert {f[1][4:8] for f in forms} == {b"\0\0\0\2", b"\0\0\0\3", b"\0\0\0\4"}
    assert any(b"EOIE" in d and b"IEOT" in d for _, d in forms)
    assert any(b"link" in d for _, d in forms) and any(b"UNTR" in d for _, d in forms)
    for name, data in forms:
        assert indexflags.names_whole(data), name
        staged = _listed(project, data, "-s")
        if data[4:8] == b"\0\0\0\4":  # (compressed names: neither walk reads them)
            assert indexflags._walk(data) is None
            continue
        if b"link" in data:  # (the entries are the shared index's and these few)
            continue
        walked = indexflags._walk(data)
        assert walked is not None, name
        assert [indexflags._name(data, off, flags) for off, _s, flags, _e in walked] == [
            s.split(b"\t", 1)[1] for s in staged
        ], name
        entries = indexpatch._entry_offsets(data, set(), {})
        assert entries is not None and len(entries[0]) == len(staged) > 2000, name
        # the bits a whole rewrite keeps: git's `ls-files -v` (lower case: assume-unchanged;
        # S: skip-worktree)
        want = {}
        for rec in _listed(project, data, "-v"):
            tag, path = rec[:1], rec[2:]
            bits = (indexflags.ASSUME_VALID if tag.islower() else 0) | (
                indexflags.SKIP_WORKTREE << 16 if tag.upper() == b"S" else 0
            )
            if bits:
                want[path] = bits
        assert {p: bits for p, (_m, _o, bits) in indexflags.flagged(data).items()} == want, name
        if name != "v2":
            assert len(want) == 3, want


def test_a_version_4_index_expanded_is_read_as_git_reads_it_and_compressed_again_is_git_s(
    project: Path,
) -> None:
    """mount/indexv4.py (gitmodel16: a checkpoint patches a version 4 index in the layout of
    versions 2 and 3, then writes it at 4 again): each version 4 form git writes of the
    project's index (skip-worktree, assume-unchanged and intent-to-add entries; the
    untracked cache, the end of index entries and offset table extensions) expanded is an
    index git lists as it lists the original (`ls-files -s -v`), that indexpatch walks
    whole, and compressed again is git's own bytes (its checksum aside)."""
    import hashlib

    from avfs_git.mount import indexv4

    # (at least "v4" and "v4, untracked cache"; more where the module's other tests left
    # the project's index at version 4 before _forms began)
    forms = [(n, d) for n, d in _forms(project) if d[4:8] == indexv4.V4]
    assert len(forms) >= 2, [n for n, _ in _forms(project)]
    for name, data in forms:
        wide = indexv4.expanded(data)
        assert wide is not None and wide[4:8] == b"\0\0\0\3", name  # (extended entries: 3)
        body = wide[:-20]
        for args in (["-s"], ["-v"], ["--eol"]):
            assert _listed(project, body + hashlib.sha1(body).digest(), *args) == _listed(
                project, data, *args
            ), (name, args)
        entries = indexpatch._entry_offsets(wide, set(), {})
        assert entries is not None and len(entries[0]) == int.from_bytes(data[8:12], "big") > 2000
        assert indexv4.compressed(body) == data[:-20], name
    # not an index git wrote: a name dropping more of the one before it than there is, or
    # one cut short (no NUL): None (the checkpoint then writes the index whole)
    entry = b"\0" * 60 + (1).to_bytes(2, "big")
    two = b"DIRC" + indexv4.V4 + (2).to_bytes(4, "big") + entry + b"\0a\0" + entry
    assert indexv4.expanded(two + b"\0b\0" + b"\0" * 20) is not None
    assert indexv4.expanded(two + b"\5b\0" + b"\0" * 20) is None
    assert indexv4.expanded(two + b"\0b" + b"\1" * 20) is None


HOOK = """#!/bin/sh
printf 'token-2\\0'
tr '\\n' '\\0' < {dirty}
"""


def test_the_fsmonitor_dirty_bits_read_are_git_s(project: Path, tmp_path: Path) -> None:
    """git's ``FSMN`` dirty bitmap, as git writes it after a hook named some paths and
    `update-index --no-fsmonitor-valid` marked others: the positions avfs reads are the
    entries `git ls-files -f` shows in upper case (not fsmonitor-valid)."""
    dirty, hook = tmp_path / "dirty", tmp_path / "hook"
    hook.write_text(HOOK.format(dirty=dirty))
    hook.chmod(0o755)
    paths = _git(project, "ls-files", "-z").split(b"\0")[:-1]
    cfg = ["-c", f"core.fsmonitor={hook}", "-c", "core.fsmonitorHookVersion=2"]
    _git(project, "update-index", "--index-version", "2")  # (v4: not patched, not read)
    dirty.write_bytes(b"".join(p + b"\n" for p in paths[::97]))
    _git(project, *cfg, "update-index", "--fsmonitor")
    _git(project, *cfg, "status", "--porcelain")
    _git(project, *cfg, "update-index", "--no-fsmonitor-valid", *(p.decode() for p in paths[10:200:7]))
    dirty.write_bytes(b"")
    data = (project / ".git" / "index").read_bytes()
    assert b"FSMN" in data
    shown = _git(project, *cfg, "ls-files", "-f", "-z").split(b"\0")[:-1]
    want = [i for i, rec in enumerate(shown) if rec[:1].isupper()]
    entries = indexpatch._entry_offsets(data, set(), {})
    assert entries is not None and len(entries[0]) == len(shown)
    got = indexpatch.fsmonitor_dirty(data, entries[2], len(entries[0]))
    assert got == want and len(want) > 20, (len(got), len(want))
    _git(project, "update-index", "--no-fsmonitor")


def test_gitlinks_and_flagged_entries_are_read_as_git_reads_them_in_every_version(
    project: Path, tmp_path: Path
) -> None:
    """``indexflags.gitlinks`` (a status's and a checkpoint's staged submodules) and
    ``flagged`` against `git ls-files -s`/`-v` on the project's index with gitlinks staged
    (`git update-index --cacheinfo 160000,...`, as `git submodule add` stages them) among
    its files, in versions 2, 3 (skip-worktree entries) and 4 (compressed names). Before the
    twenty-fifth round (NAME=attack16) both read nothing of a version 4 index: a person's
    `feature.manyFiles` index had its submodules' directories recorded as files."""
    work = _index_of(project, tmp_path / "work")  # (unflagged: the test above flagged the project's)
    _git(work, "update-index", "--index-version", "2")
    head = _git(work, "rev-parse", "HEAD").decode().strip()
    paths = _git(work, "ls-files", "-z").split(b"\0")[:-1]
    # beside files whose names share long prefixes with them (version 4 strips those)
    links = [b"django/contrib/admin/sub", b"django/db/models/fields/vendored", b"zz-last-submodule"]
    for link in links:
        _git(work, "update-index", "--add", "--cacheinfo", f"160000,{head},{link.decode()}")
    wanted = {*links, b"django/db", paths[7], b"not-there"}
    seen = {}
    named: dict[str, tuple[bytes, list[bytes]]] = {}
    for version, extra in (("2", ()), ("3", ("--skip-worktree", paths[3].decode())), ("4", ())):
        if extra:
            _git(work, "update-index", *extra)
        _git(work, "update-index", "--index-version", version)
        data = (work / ".git" / "index").read_bytes()
        assert data[4:8] == int(version).to_bytes(4, "big")
        want = {}
        for rec in _listed(work, data, "-s"):
            meta, _, path = rec.partition(b"\t")
            mode, oid, _stage = meta.split(b" ")
            if mode == b"160000" and path in wanted:
                want[path] = bytes.fromhex(oid.decode())
        assert set(want) == set(links), version
        seen[version] = indexflags.gitlinks(data, wanted)
        assert seen[version] == want, version
        flags = {}
        for rec in _listed(work, data, "-v"):
            if rec[:1] == b"S":
                flags[rec[2:]] = indexflags.SKIP_WORKTREE << 16
        assert {p: bits for p, (_m, _o, bits) in indexflags.flagged(data).items()} == flags, version
        named[version] = (data, [r.partition(b"\t")[2] for r in _listed(work, data, "-s")])
    assert seen["2"] == seen["3"] == seen["4"]
    for version, (data, want_names) in named.items():
        got = indexflags._named(data)
        assert got is not None and [n for _o, _f, _e, n in got] == want_names, version


def test_the_cache_tree_read_is_git_s(project: Path, tmp_path: Path) -> None:
    """``indexflags.cache_tree`` (what proxy/heldlock.py checks a held lock's cache tree
    by) and ``cache_tree_ids`` (the ids proxy/sealstaged.py sets to none in place) against
    the trees git writes: every directory of the project's tree, each node's id where its
    `git ls-tree -r -d` says, in versions 2 and 4; git reads the voided one and makes the
    same tree again."""
    from avfs_git.proxy.sealstaged import void_cache_tree

    work = _index_of(project, tmp_path / "work")
    root = _git(work, "write-tree").decode().strip()
    trees = {b"": root}
    for rec in _git(work, "ls-tree", "-r", "-d", "-z", root).split(b"\0")[:-1]:
        meta, _, path = rec.partition(b"\t")
        trees[path] = meta.split(b" ")[2].decode()
    assert len(trees) > 300
    for version in ("2", "4"):
        _git(work, "update-index", "--index-version", version)
        _git(work, "write-tree")
        index = work / ".git" / "index"
        data = index.read_bytes()
        ext = indexflags.extension(data, b"TREE")
        assert ext is not None, version
        nodes = indexflags.cache_tree(ext)
        assert nodes is not None and {p: o.hex() for p, o in nodes.items() if o} == trees, version
        ids = indexflags.cache_tree_ids(data)
        assert ids is not None and sorted(data[i : i + 20].hex() for i in ids) == sorted(trees.values())
        void_cache_tree(str(index))
        voided = indexflags.cache_tree(indexflags.extension(index.read_bytes(), b"TREE") or b"")
        assert voided is not None and set(voided.values()) == {bytes(20)}, version
        # (the project's files, the commit's, as the work tree: git reads them, never writes)
        worktree = {"GIT_DIR": str(work / ".git"), "GIT_WORK_TREE": str(project)}
        assert _git(project, "status", "--porcelain", "-uno", **worktree) == b""
        assert _git(work, "write-tree").decode().strip() == root
    assert indexflags.cache_tree(b"\x000 1\n" + bytes(20)) is None  # (a subtree promised, none there)


def test_a_split_index_merged_is_the_index_git_reads_and_writes_unsplit(
    project: Path, tmp_path: Path
) -> None:
    """mount/indexsplit.py (gitmodel17: a checkpoint patches a split index whole, where it
    wrote it from its commit and dropped what git had staged): each split index git writes
    of the project's index after a change of every kind (a staged removal: a bit of the
    link's delete bitmap; a change and an exec bit, skip-worktree and assume-unchanged
    bits: of its replace bitmap; a new file and one `add -N`: entries of its own), at
    versions 2 and 4 (its shared index then at 4 too), merged with the shared index it
    names, is the index git lists (`ls-files -s`, `-v`) and has the entries of the index
    git writes unsplit (`update-index --no-split-index`), byte for byte; one whose shared
    index is gone or not the one named is not merged (the checkpoint then writes it whole,
    as before)."""
    import hashlib

    from avfs_git.mount import indexsplit

    # (its work tree holds only the files the test writes and the one git reads)
    work = _index_of(project, tmp_path / "work")
    git_dir = work / ".git"
    index = git_dir / "index"
    paths = [p.decode() for p in _git(work, "ls-tree", "-r", "--name-only", "-z", "HEAD").split(b"\0")[:-1]]
    _git(work, "checkout", "HEAD", "--", paths[30])  # (the one file git reads: `--chmod` below)
    for version in ("2", "4"):
        _git(work, "read-tree", "HEAD")
        _git(work, "update-index", "--no-split-index")
        _git(work, "update-index", "--index-version", version)
        _git(work, "update-index", "--split-index")
        assert b"link" in index.read_bytes()
        _git(work, "rm", "-q", "--cached", "--", paths[11], paths[900])
        (work / paths[20]).parent.mkdir(parents=True, exist_ok=True)
        (work / paths[20]).write_text("changed and staged\n")
        _git(work, "add", "--", paths[20])
        _git(work, "update-index", "--chmod=+x", "--", paths[30])
        _git(work, "update-index", "--skip-worktree", "--", paths[40])
        _git(work, "update-index", "--assume-unchanged", "--", paths[50])
        (work / "aaa-new.txt").write_text("new\n")
        (work / "django").mkdir(exist_ok=True)
        (work / "django" / "zz-intended.txt").write_text("intended\n")
        _git(work, "add", "--", "aaa-new.txt")
        _git(work, "add", "-N", "--", "django/zz-intended.txt")
        data = index.read_bytes()
        assert data[4:8] == (b"\0\0\0\4" if version == "4" else b"\0\0\0\3")  # (extended entries: 3)
        if version == "4":
            from avfs_git.mount import indexv4

            wide = indexv4.expanded(data)
            assert wide is not None
        else:
            wide = data
        walked = indexpatch._entry_offsets(wide, set(), {})
        assert walked is not None
        off = walked[2]
        link = indexsplit.link_at(wide, off)
        assert link is not None and int.from_bytes(wide[link + 4 : link + 8], "big") > 20, version
        got = indexsplit.merged(wide, off, link, str(git_dir))
        assert got is not None, version
        body = got[:-20]
        whole = body + hashlib.sha1(body).digest()
        for args in (["-s"], ["-v"]):
            assert _listed(work, whole, *args) == _listed(work, data, *args), (version, args)
        listed = _listed(work, whole, "-s")
        assert len(listed) == len(paths) - 2 + 2 and indexsplit.link_at(got, off_of(got)) is None, version
        # git's own whole index of the same: the same entries, byte for byte
        scratch = git_dir / "index.unsplit"
        scratch.write_bytes(data)
        _git(work, "update-index", "--no-split-index", GIT_INDEX_FILE=str(scratch))
        _git(work, "update-index", "--index-version", "3", GIT_INDEX_FILE=str(scratch))
        own = scratch.read_bytes()
        scratch.unlink()
        own_walk = indexpatch._entry_offsets(own, set(), {})
        assert own_walk is not None
        assert got[: off_of(got)] == own[: own_walk[2]], version
        # the shared index not the one named, or gone: not merged
        shared = git_dir / ("sharedindex." + wide[link + 8 : link + 28].hex())
        kept = shared.read_bytes()
        for at in (40, len(kept) - 1):  # (an entry's stat data; the checksum)
            shared.write_bytes(kept[:at] + bytes([kept[at] ^ 1]) + kept[at + 1 :])
            assert indexsplit.merged(wide, off, link, str(git_dir)) is None, at
        shared.unlink()
        assert indexsplit.merged(wide, off, link, str(git_dir)) is None
        shared.write_bytes(kept)
        _git(work, "reset", "-q")


def off_of(index: bytes) -> int:
    """Where the entries of ``index`` (version 2 or 3) end."""
    walked = indexpatch._entry_offsets(index, set(), {})
    assert walked is not None
    return walked[2]


def test_a_link_s_bitmaps_ask_for_no_position_past_the_shared_index() -> None:
    """``indexsplit.ewah_bits`` reads git's EWAH bitmap (mount/ewah.py writes it as git
    does) and refuses a position at or past the shared index's count, as git refuses such
    a link; a run of ones 2^32 - 1 words long (what a confined command can write into the
    mount's index) is refused before any position is listed, and a bitmap cut short too."""
    import struct

    from avfs_git.mount import indexsplit
    from avfs_git.mount.ewah import Ewah

    bm = Ewah()
    for i in (0, 5, 64, 200, 1000):
        bm.set(i)
    raw = b"pre" + bm.serialized()
    assert indexsplit.ewah_bits(raw, 3, 1001) == ([0, 5, 64, 200, 1000], len(raw))
    assert indexsplit.ewah_bits(raw, 3, 1000) is None
    assert indexsplit.ewah_bits(raw[:-1], 3, 1001) is None
    ones = Ewah.ones(130).serialized()
    assert indexsplit.ewah_bits(ones, 0, 130) == (list(range(130)), len(ones))
    huge = struct.pack(">IIQI", 0xFFFFFFFF, 1, 1 | (0xFFFFFFFF << 1), 0)
    assert indexsplit.ewah_bits(huge, 0, 10_000) is None

"""The index a lazy clone keeps for its default fork's tip (mount/keptmake.py ``at_clone``,
docs/lazy.md "The index kept per base"): `vault clone --lazy` asks the tree's sizes and
writes the kept index before it answers, so the first mount of the fresh clone patches it
at its gate instead of making it there (issue 30, row 2). Over each transport (`git
daemon`, `git http-backend` behind Basic auth, sshd: tests/test_lazy_transports.py's
``served``): the index is the one git makes of the tree in a full clone (`git read-tree`
and `git update-index --refresh`: the same entries, modes, ids and sizes), and the first
mount's git needs no server at all; a base moved after the clone is not given that index;
a server that dies in the middle of the sizes' answer leaves the clone as it was."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.settings import Settings
from avfs_git.core.store import objectinfo
from avfs_git.core.vaults.home import Home
from avfs_git.mount import keptindex
from avfs_git.mount.heldstat import inode_of
from avfs_git.ops import mounts

from .conftest import git
from .test_lazy import objects
from .test_lazy_transports import Served, _require_backend
from .test_lazy_transports import served as served
from .test_remotes import http_git as http_git
from .test_remotes import sshd as sshd

TRANSPORTS = ["git", "http", "ssh"]


def _entries(data: bytes) -> list[tuple[str, int, str, int, tuple[int, ...]]]:
    """(path, mode, blob id, size, (ctime s, ns, mtime s, ns, dev, ino, uid, gid)) of each
    entry of index ``data`` (git's version 2)."""
    assert data[:8] == b"DIRC\0\0\0\2"
    count = struct.unpack(">I", data[8:12])[0]
    out = []
    off = 12
    for _ in range(count):
        stat = struct.unpack(">10I", data[off : off + 40])
        oid = data[off + 40 : off + 60].hex()
        flags = struct.unpack(">H", data[off + 60 : off + 62])[0]
        nl = flags & 0xFFF
        name = data[off + 62 : off + 62 + nl].decode("utf-8", "surrogateescape")
        out.append((name, stat[6], oid, stat[9], (*stat[:6], stat[7], stat[8])))
        off += (70 + nl) & ~7
    return out


def _clone(cli: object, home: Home, s: Served) -> object:
    """`vault clone --lazy` in process, ``"index_at_clone": true`` unless the home's
    config.json says otherwise (since the thirty-first round the default is false)."""
    os.makedirs(home.path, exist_ok=True)
    config = os.path.join(home.path, "config.json")
    if not os.path.exists(config):
        with open(config, "w", encoding="utf-8") as fh:
            fh.write('{"index_at_clone": true}\n')
    home.settings = Settings.from_environ(None, home.path)  # (the token, for the mount's daemon)
    r = cli("--home", home.path, "--json", "vault", "clone", "--lazy", s.url, "p")  # type: ignore[operator]
    assert r.code == 0, r.err
    return home.vault("p")


def _status(mp: Path, *config: str) -> subprocess.CompletedProcess[str]:
    args = ["git", *[x for c in config for x in ("-c", c)], "status", "--porcelain", "--untracked-files=all"]
    return subprocess.run(args, cwd=mp, capture_output=True, text=True, timeout=120)


def _a_new_file_as_git_sees_it(mp: Path, full: Path) -> None:
    """A new file written in the mount and in the full clone: the mount's `git status` (with
    its fsmonitor and without) says what the full clone's says, `?? new.txt`."""
    (mp / "new.txt").write_text("new\n")
    (full / "new.txt").write_text("new\n")
    want = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=full, capture_output=True, text=True
    ).stdout
    assert want == "?? new.txt\n"
    assert _status(mp).stdout == want
    plain = _status(mp, "core.fsmonitor=false")
    assert plain.returncode == 0 and plain.stdout == want, plain


@pytest.mark.parametrize("served", TRANSPORTS, indirect=True)
def test_a_lazy_clone_keeps_the_index_git_makes_and_its_first_mount_needs_no_server(
    cli: object, home: Home, served: Served, tmp_path: Path
) -> None:
    """`vault clone --lazy` keeps the index of the default fork's tip: entry for entry
    (path, mode, id, size) the index `git read-tree` + `git update-index --refresh` make in
    a full clone's checkout, with the stat data every mount reports (times 0, dev 0, the
    path's inode number, this user's uid and gid), fetching no blob but the tree's
    ``.gitignore`` files. The first mount then needs the server for nothing: with it gone,
    git status in the mount answers (clean, and with untracked files what a full clone's
    says) and git without the fsmonitor reads no file. (Before, the clone kept nothing and
    that mount's git failed with EIO: its index needs the sizes.)"""
    s = served
    _require_backend("fuse")
    v = _clone(cli, home, s)
    tree = git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()  # type: ignore[attr-defined]
    kept = keptindex.load(v.state_dir, tree)  # type: ignore[attr-defined]
    assert kept is not None
    assert not os.path.exists(os.path.join(v.state_dir, "kept-index", tree + keptindex.LOCK))  # type: ignore[attr-defined]
    names = git("--git-dir", v.path, "ls-tree", "-r", "--name-only", "main").splitlines()  # type: ignore[attr-defined]
    local = git("--git-dir", v.path, "cat-file", "--batch-all-objects", "--batch-check=%(objecttype)")  # type: ignore[attr-defined]
    assert local.split().count("blob") <= sum(1 for p in names if p.rsplit("/", 1)[-1] == ".gitignore")

    full = tmp_path / "full"
    git("clone", "-q", str(s.repo), str(full))
    index = full / ".git" / "index-theirs"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    subprocess.run(["git", "read-tree", "HEAD"], cwd=full, env=env, check=True)
    subprocess.run(["git", "update-index", "--refresh"], cwd=full, env=env, check=True, capture_output=True)
    theirs = _entries(index.read_bytes())
    ours = _entries(kept)
    assert [e[:4] for e in ours] == [e[:4] for e in theirs]
    assert len(ours) == len(names) > 20
    uid, gid = os.getuid(), os.getgid()
    for path, _mode, _oid, _size, stat in ours:
        assert stat == (0, 0, 0, 0, 0, inode_of(path) & 0xFFFFFFFF, uid, gid), path

    s.relay.mode = "refuse"  # the server gone: nothing below may need it
    s.relay.cut()
    mp = tmp_path / "mnt"
    mp.mkdir()
    before = objects(v.path)  # type: ignore[attr-defined]
    mounts.mount(home, v, "main", str(mp), backend="fuse")  # type: ignore[arg-type]
    try:
        first = _status(mp)
        assert first.returncode == 0 and first.stdout == "", first
        _a_new_file_as_git_sees_it(mp, full)
        assert objects(v.path) == before  # type: ignore[attr-defined]
    finally:
        mounts.unmount(home, v, "main", lazy=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("served", ["git"], indirect=True)
def test_a_base_moved_after_the_clone_is_not_given_the_kept_index(
    cli: object, home: Home, served: Served, tmp_path: Path
) -> None:
    """The kept index is its tree's: after the clone the fork moves to a tree with a file
    changed, added and removed (a checkpoint), and its mount's index is that tree's, not
    the one the clone kept (which stays, for a mount of the old base)."""
    s = served
    _require_backend("fuse")
    v = _clone(cli, home, s)
    old = git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()  # type: ignore[attr-defined]
    assert keptindex.load(v.state_dir, old) is not None  # type: ignore[attr-defined]
    ws = v.workspace("main")  # type: ignore[attr-defined]
    ws.write("NOTES.md", b"changed after the clone\n")
    ws.write("added.txt", b"added\n")
    ws.remove("avfs_git/__main__.py")
    checkpoint.save(v, "main", name="moved")  # type: ignore[arg-type]
    new = git("--git-dir", v.path, "rev-parse", "main^{tree}").strip()  # type: ignore[attr-defined]
    assert new != old
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")  # type: ignore[arg-type]
    try:
        assert _status(mp).stdout == ""
        plain = _status(mp, "core.fsmonitor=false")
        assert plain.returncode == 0 and plain.stdout == "", plain
        index = subprocess.run(["git", "ls-files", "-s"], cwd=mp, capture_output=True, text=True).stdout
        tree = git("--git-dir", v.path, "ls-tree", "-r", "main")  # type: ignore[attr-defined]
        assert sorted(line.split()[1] + " " + line.split("\t")[1] for line in index.splitlines()) == sorted(
            line.split()[2] + " " + line.split("\t")[1] for line in tree.splitlines()
        )
        assert "added.txt" in index and "avfs_git/__main__.py\n" not in index
    finally:
        mounts.unmount(home, v, "main", lazy=True)  # type: ignore[arg-type]
    assert keptindex.load(v.state_dir, old) is not None  # type: ignore[attr-defined]


@pytest.mark.parametrize("served", TRANSPORTS, indirect=True)
def test_a_server_that_dies_in_the_sizes_answer_leaves_the_clone_and_its_first_status_as_they_were(
    cli: object, home: Home, served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server dies once the clone's request for the tree's sizes has gone out (every
    connection reset as its answer is read): the clone still succeeds, lazy, with no kept
    index nor its lock left; once the server is back, the first mount makes its index as a
    mount of a clone that kept none does, and git status there is clean."""
    s = served
    _require_backend("fuse")
    died: list[int] = []
    answer = objectinfo._answer

    def dying(fh: object, oids: list[str]) -> dict[str, int]:
        died.append(len(oids))
        s.relay.mode = "refuse"
        s.relay.cut()
        return answer(fh, oids)  # type: ignore[arg-type]

    monkeypatch.setattr(objectinfo, "_answer", dying)  # (where _over_git/_over_http/_over_ssh look it up)
    v = _clone(cli, home, s)
    monkeypatch.setattr(objectinfo, "_answer", answer)
    assert died and max(died) > 20  # the whole tree's request went out, and the server died
    assert v.lazy  # type: ignore[attr-defined]
    kept_dir = os.path.join(v.state_dir, "kept-index")  # type: ignore[attr-defined]
    # (git's read-tree of the tree, started as the clone answered, is no kept index:
    # mount/keptmake.py ``start_read_tree``)
    assert not os.path.isdir(kept_dir) or [n for n in os.listdir(kept_dir) if ".read-tree" not in n] == []
    s.relay.mode = "pass"
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend="fuse")  # type: ignore[arg-type]
    try:
        first = _status(mp)
        assert first.returncode == 0 and first.stdout == "", first
        plain = _status(mp, "core.fsmonitor=false")
        assert plain.returncode == 0 and plain.stdout == "", plain
    finally:
        mounts.unmount(home, v, "main", lazy=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("served", ["http", "ssh"], indirect=True)
def test_over_http_and_ssh_the_sizes_request_goes_out_before_reading_and_its_answer_after(
    home: Home, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As over ``git://`` (tests/test_readtree_ids.py): the request for sizes goes out,
    then ``reading()`` runs (a lazy mount waits there for its announcement while the server
    answers), then the answer is read, every size the server's. (Before, over HTTP(S) and
    ssh, ``reading()`` ran before anything was started: the request left after the
    mount's announcement, and the gate waited for the whole answer.)"""
    s = served
    home.settings = Settings.from_environ(None, home.path)  # (the token)
    v = home.clone_vault(s.url, "p", lazy=True)
    listing = git("--git-dir", str(s.repo), "ls-tree", "-r", "-l", "main")
    sizes = {
        m.split()[2]: int(m.split()[3]) for m, _ in (line.split("\t", 1) for line in listing.splitlines())
    }
    seen: list[str] = []
    request, answer = objectinfo._request, objectinfo._answer

    def asked(oids: list[str]) -> bytes:
        seen.append("request")
        return request(oids)

    def read_answer(fh: objectinfo._Stream, oids: list[str]) -> dict[str, int]:
        seen.append("answer")
        return answer(fh, oids)

    monkeypatch.setattr(objectinfo, "_request", asked)  # (where _over_http/_over_ssh look them up)
    monkeypatch.setattr(objectinfo, "_answer", read_answer)
    assert v.store.promisor.learn_sizes(sorted(sizes), reading=lambda: seen.append("reading"))
    assert seen == ["request", "reading", "answer"]
    assert {o: v.store.promisor.size(o) for o in sizes} == sizes


@pytest.mark.parametrize("served", ["git"], indirect=True)
def test_index_at_clone_false_in_the_home_s_config_keeps_none(
    cli: object, home: Home, served: Served
) -> None:
    """``"index_at_clone": false`` in the home's ``config.json``: the clone asks no sizes and
    keeps no index (row 1 of issue 30 without the index's work); ``"yes"`` is refused
    (``usage``) before anything is cloned."""
    import json

    os.makedirs(home.path, exist_ok=True)
    with open(os.path.join(home.path, "config.json"), "w", encoding="utf-8") as fh:
        json.dump({"index_at_clone": False}, fh)
    v = _clone(cli, home, served)
    kept = os.path.join(v.state_dir, "kept-index")  # type: ignore[attr-defined]
    # (git's read-tree of the tree, started as the clone answered, is no kept index)
    assert not os.path.exists(kept) or [n for n in os.listdir(kept) if ".read-tree" not in n] == []
    assert not os.path.exists(os.path.join(v.state_dir, "blob-sizes"))  # type: ignore[attr-defined]
    with open(os.path.join(home.path, "config.json"), "w", encoding="utf-8") as fh:
        json.dump({"index_at_clone": "yes"}, fh)
    r = cli("--home", home.path, "--json", "vault", "clone", "--lazy", served.url, "q")  # type: ignore[operator]
    assert r.code == 2 and json.loads(r.out)["error"]["code"] == "usage", r.out
    assert "index_at_clone" in r.out
    assert not os.path.exists(os.path.join(home.path, "vaults", "q.git"))

"""A lazy vault's demand fetches over one kept connection to a ``git://`` server
(core/store/blobwire.py; docs/lazy.md "How a read fetches"): against a real `git daemon` on
127.0.0.1 (tests/test_lazy.py's fixture) behind a TCP relay here that counts connections and
can cut one short, through the API and through a real mount (both backends); and the pack
reader against packs git itself makes."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from avfs_git.core.errors import BlobNotLocalError, UsageError
from avfs_git.core.store import blobwire
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import mounts

from .conftest import IN_CI, git
from .test_fuse import require_fuse
from .test_lazy import Server, blob_at, objects
from .test_lazy import server as server

# files in three directories (each read misses: none is a neighbour of another)
FILES = ("avfs_git/core/store/gitstore.py", "avfs_git/cli/output.py", "avfs_git/ops/mounts.py")


class Relay:
    """A TCP relay on 127.0.0.1 in front of the server: counts connections and the fetch
    requests on them, and cuts connections short when asked (``cut``: each fetch request's
    answer stops after a few bytes, the connection closed)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.connections = 0
        self.requests = 0
        self.open = 0
        self.cut = False
        self.strip_v2 = False  # the client's protocol-v2 request removed: the server answers v0
        self.states: list[dict[str, object]] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._lock = threading.Lock()
        self.live: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                self.connections += 1
                self.open += 1
            try:
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                with self._lock:
                    self.open -= 1
                continue
            held = threading.Event()
            held.set()
            state: dict[str, object] = {"cut": False, "ends": 0, "go": held}
            with self._lock:
                self.live.extend((client, server))
                self.states.append(state)
            threading.Thread(target=self._pipe, args=(client, server, True, state), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False, state), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, up: bool, state: dict[str, object]) -> None:
        try:
            while data := src.recv(65536):
                if up:
                    if self.strip_v2:
                        data = data.replace(b"\0version=2\0", b"\0\0\0\0\0\0\0\0\0\0\0")
                    if b"command=fetch" in data:
                        with self._lock:
                            self.requests += 1
                            if self.cut:
                                state["cut"] = True
                elif state["cut"]:
                    dst.sendall(data[:24])  # "0011packfile\n", a few bytes of the pack, and then nothing
                    break
                else:
                    go = state["go"]
                    assert isinstance(go, threading.Event)
                    go.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                state["ends"] = int(str(state["ends"])) + 1
                if state["ends"] == 2:
                    self.open -= 1
                    src.close()
                    dst.close()

    def hold(self, on: bool) -> None:
        """Hold back (or let through) the server's answers on the connections open now:
        a fetch on one of them waits, holding its locks, until let through."""
        with self._lock:
            states = list(self.states)
        for state in states:
            go = state["go"]
            assert isinstance(go, threading.Event)
            go.clear() if on else go.set()

    def drop_all(self) -> None:
        """Close every connection now (the server side of a kept connection going away)."""
        with self._lock:
            live, self.live = self.live, []
        for s in live:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Take no new connection (those made are left as they are)."""
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def relay(server: Server) -> Iterator[Relay]:
    r = Relay(server.port)
    try:
        yield r
    finally:
        if not r.stop.is_set():
            r.close()
        r.drop_all()


def _vault(home: Home, relay: Relay, **settings: object) -> Vault:
    v = home.clone_vault(relay.url("proj.git"), "p", lazy=True)
    with open(os.path.join(v.path, "avfs", "config.json"), "w", encoding="utf-8") as fh:
        json.dump({"read_neighbours": 0, **settings}, fh)  # one blob a read: the counts are exact
    # the tree's sizes, as a mount asks them as it starts (the clone asks none; a first read
    # outside a mount would ask them on a connection of their own)
    v.workspace("main").view.learn_sizes()
    relay.requests = 0  # the clone's and the sizes'
    return v


def _leftovers(v: Vault) -> list[str]:
    return [n for n in os.listdir(os.path.join(v.path, "objects", "pack")) if n.startswith("tmp_")]


def test_reads_that_miss_share_one_kept_connection(home: Home, server: Server, relay: Relay) -> None:
    v = _vault(home, relay)
    src = server.base / "proj.git"
    conns, before = relay.connections, objects(v.path)
    for f in FILES:
        assert v.workspace("main").read(f) == blob_at(src, "main", f)
    assert relay.connections - conns == 1 and relay.requests == len(FILES)
    assert objects(v.path) == before + len(FILES)
    packs = os.listdir(os.path.join(v.path, "objects", "pack"))
    # each fetch's pack is marked as the promisor's, as git fetch marks it
    assert {n[: -len(".pack")] for n in packs if n.endswith(".pack")} <= {
        n[: -len(".promisor")] for n in packs if n.endswith(".promisor")
    }
    # the packs as git reads them: checksums, indexes, every object's id
    subprocess.run(["git", "--git-dir", v.path, "fsck", "--strict"], check=True, capture_output=True)
    for pack in (n for n in packs if n.endswith(".idx")):
        git("--git-dir", v.path, "verify-pack", os.path.join(v.path, "objects", "pack", pack))


def test_a_fetchs_blobs_are_read_once_from_what_it_checked(
    home: Home, server: Server, relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contents a fetch over the kept connection checked answer the first read of each
    of its blobs (core/store/freshblobs.py): a neighbour's read is right, fetches nothing
    and reads no pack; a second read of it reads the vault as any read does."""
    v = _vault(home, relay, read_neighbours=100)
    src = server.base / "proj.git"
    ws = v.workspace("main")
    store = v.store
    read_packs: list[str] = []  # the objects read from the vault's files
    pure, libgit2 = store._reader.read, store._libgit2_read

    def read_pure(oid: str) -> object:
        got = pure(oid)
        if got is not None:
            read_packs.append(oid)
        return got

    def read_libgit2(oid: str, *args: object, **kw: object) -> object:
        got = libgit2(oid, *args, **kw)
        read_packs.append(oid)
        return got

    monkeypatch.setattr(store._reader, "read", read_pure)
    monkeypatch.setattr(store, "_libgit2_read", read_libgit2)
    first, neighbour = "avfs_git/core/store/gitstore.py", "avfs_git/core/store/promisor.py"
    blobs = {git("--git-dir", str(src), "rev-parse", f"main:{p}").strip() for p in (first, neighbour)}
    assert ws.read(first) == blob_at(src, "main", first)
    assert relay.requests == 1 and blobs.isdisjoint(read_packs)  # (the read's own: from the fetch too)
    assert ws.read(neighbour) == blob_at(src, "main", neighbour)
    assert relay.requests == 1 and blobs.isdisjoint(read_packs)
    assert store.promisor.fresh.taken == 2
    assert ws.read(neighbour) == blob_at(src, "main", neighbour)
    assert len(blobs.intersection(read_packs)) == 1 and relay.requests == 1


def test_keep_connection_false_is_one_git_fetch_a_read(home: Home, server: Server, relay: Relay) -> None:
    v = _vault(home, relay, keep_connection=False)
    src = server.base / "proj.git"
    conns = relay.connections
    for f in FILES:
        assert v.workspace("main").read(f) == blob_at(src, "main", f)
    assert relay.connections - conns == len(FILES)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_bad_keep_connection_fails_the_read_clearly_and_fetches_nothing(
    home: Home, relay: Relay, value: object
) -> None:
    v = _vault(home, relay, keep_connection=value)
    before = objects(v.path)
    with pytest.raises(UsageError) as exc:
        v.workspace("main").read(FILES[0])
    assert "keep_connection" in exc.value.message and "config.json" in exc.value.message
    assert objects(v.path) == before


def test_a_connection_the_server_dropped_is_made_again(home: Home, server: Server, relay: Relay) -> None:
    v = _vault(home, relay)
    src = server.base / "proj.git"
    assert v.workspace("main").read(FILES[0]) == blob_at(src, "main", FILES[0])
    relay.drop_all()  # the server closed the kept connection while it was idle
    conns = relay.connections
    assert v.workspace("main").read(FILES[1]) == blob_at(src, "main", FILES[1])
    assert relay.connections - conns == 1


def test_an_idle_connection_is_closed(
    home: Home, server: Server, relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobwire, "IDLE_S", 0.3)
    v = _vault(home, relay)
    v.workspace("main").read(FILES[0])
    assert relay.open == 1
    threading.Event().wait(1.5)
    assert relay.open == 0  # no process is held on the server for a vault nobody reads
    assert v.workspace("main").read(FILES[1]) == blob_at(server.base / "proj.git", "main", FILES[1])


def test_a_server_cut_off_mid_answer_fails_the_read_clearly_and_writes_nothing(
    home: Home, server: Server, relay: Relay
) -> None:
    v = _vault(home, relay)
    src = server.base / "proj.git"
    v.workspace("main").read(FILES[0])
    before, packs = objects(v.path), sorted(os.listdir(os.path.join(v.path, "objects", "pack")))
    relay.cut = True
    with pytest.raises(BlobNotLocalError) as exc:
        v.workspace("main").read(FILES[1])
    assert exc.value.details["path"] == FILES[1] and exc.value.details["remote"] == "origin"
    assert "closed the connection" in exc.value.message
    assert objects(v.path) == before and sorted(os.listdir(os.path.join(v.path, "objects", "pack"))) == packs
    assert _leftovers(v) == []
    relay.cut = False  # the next read makes a new connection and gets it
    assert v.workspace("main").read(FILES[1]) == blob_at(src, "main", FILES[1])


def test_a_server_gone_fails_the_read_clearly(home: Home, server: Server, relay: Relay) -> None:
    v = _vault(home, relay)
    v.workspace("main").read(FILES[0])
    # the server goes away: its kept connection with it (git daemon's own upload-pack
    # outlives the daemon: the relay closes the connection and takes no new one)
    relay.close()
    relay.drop_all()
    server.stop()
    before = objects(v.path)
    with pytest.raises(BlobNotLocalError) as exc:
        v.workspace("main").read(FILES[1])
    assert exc.value.details["path"] == FILES[1] and "did not give it" in exc.value.message
    assert objects(v.path) == before
    assert v.workspace("main").read(FILES[0])  # fetched before: reads offline


def test_a_blob_the_server_no_longer_has_is_named(home: Home, server: Server, relay: Relay) -> None:
    repo = server.base / "proj.git"
    work = server.base / "gone-work"
    git("clone", "-q", str(repo), str(work))
    (work / "SECRET.md").write_text("pushed by mistake\n")
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "oops")
    git("-C", str(work), "push", "-q", "origin", "main")
    v = _vault(home, relay)
    git("-C", str(work), "push", "-q", "--force", "origin", "HEAD~1:main")
    git("--git-dir", str(repo), "reflog", "expire", "--expire=now", "--all")
    git("--git-dir", str(repo), "gc", "-q", "--prune=now")
    before = objects(v.path)
    with pytest.raises(BlobNotLocalError) as exc:
        v.workspace("main").read("SECRET.md")
    assert "no longer has it" in exc.value.message and exc.value.details["server_lacks"] is True
    assert objects(v.path) == before and _leftovers(v) == []
    assert v.workspace("main").read(FILES[0]) == blob_at(repo, "main", FILES[0])  # the next one works


def test_a_server_that_answers_in_protocol_v0_is_fetched_from_by_git(
    home: Home, server: Server, relay: Relay
) -> None:
    v = _vault(home, relay)
    relay.strip_v2 = True
    src = server.base / "proj.git"
    for f in FILES[:2]:
        assert v.workspace("main").read(f) == blob_at(src, "main", f)
    wire = v.store.promisor._wire
    assert wire is not None and wire.unsupported and relay.requests == 0


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_reads_in_a_lazy_mount_share_one_connection(
    home: Home, server: Server, relay: Relay, tmp_path: Path, backend: str
) -> None:
    require_fuse()
    if backend == "overlay" and (why := mounts.overlay_available()) is not None:
        if IN_CI:
            pytest.fail(f"overlayfs must be available in CI: {why}")
        pytest.skip(f"requires overlayfs: {why}")
    v = _vault(home, relay)
    src = server.base / "proj.git"
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, v, "main", str(mp), backend=backend)
    try:
        conns = relay.connections
        for f in FILES:
            assert (mp / f).read_bytes() == blob_at(src, "main", f)
        assert relay.connections - conns == 1 and relay.requests == len(FILES)
        # cut off mid-answer: EIO, nothing written; the next read gets it
        before = objects(v.path)
        relay.cut = True
        with pytest.raises(OSError) as exc:
            (mp / "NOTES.md").read_bytes()
        assert exc.value.errno == errno.EIO
        assert objects(v.path) == before and _leftovers(v) == []
        relay.cut = False
        assert (mp / "NOTES.md").read_bytes() == blob_at(src, "main", "NOTES.md")
    finally:
        mounts.unmount(home, v, "main", lazy=True)


def test_a_forked_process_opens_its_own_connection(home: Home, server: Server, relay: Relay) -> None:
    """A process forked after a fetch (a warm server's spare child) never talks on its
    parent's connection: its first fetch opens one of its own, and the parent's goes on."""
    v = _vault(home, relay)
    src = server.base / "proj.git"
    assert v.workspace("main").read(FILES[0]) == blob_at(src, "main", FILES[0])
    conns = relay.connections
    pid = os.fork()
    if pid == 0:  # the child: read another file, and say whether it came right
        ok = v.workspace("main").read(FILES[1]) == blob_at(src, "main", FILES[1])
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert relay.connections - conns == 1  # the child's own
    assert v.workspace("main").read(FILES[2]) == blob_at(src, "main", FILES[2])
    assert relay.connections - conns == 1  # the parent's connection was not disturbed


def test_a_fork_while_a_fetch_holds_the_connection_does_not_deadlock_the_child(
    home: Home, server: Server, relay: Relay
) -> None:
    """A process forked while another thread of its parent waits on a fetch (the vault
    handle's fetch lock and the connection's lock held: a warm server forking a call's
    process meanwhile) fetches in the child on its own connection: the child does not
    inherit those held locks and wait forever on them; the parent's fetch then finishes."""
    import signal
    import time

    v = _vault(home, relay)
    src = server.base / "proj.git"
    ws = v.workspace("main")
    assert ws.read(FILES[0]) == blob_at(src, "main", FILES[0])  # the kept connection is open
    relay.hold(True)  # its answers wait now
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(ws.read(FILES[1])), daemon=True)
    requests = relay.requests
    reader.start()
    deadline = time.monotonic() + 30
    while relay.requests == requests:  # the fetch is asked: its locks are held
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pid = os.fork()
    if pid == 0:  # the child: another file, over a connection of its own
        ok = False
        try:
            ok = ws.read(FILES[2]) == blob_at(src, "main", FILES[2])
        finally:
            os._exit(0 if ok else 1)
    try:
        deadline = time.monotonic() + 60
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            assert time.monotonic() < deadline, "the forked child never finished its fetch (deadlocked)"
            time.sleep(0.05)
        assert os.waitstatus_to_exitcode(done[1]) == 0
    finally:
        if not done[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        relay.hold(False)
        reader.join(60)
    assert got == [blob_at(src, "main", FILES[1])]  # the parent's fetch went on


# -- the pack reader, against packs git makes ------------------------------------------------
def _similar_blobs(repo: Path, n: int) -> list[str]:
    """``n`` blobs of a few KiB that differ by a line (git deltas them against each other)."""
    base = "".join(f"line {i} of a file that git will store as a delta\n" for i in range(200))
    oids = []
    for i in range(n):
        data = base.replace("line 100 ", f"changed {i} ")
        oids.append(
            subprocess.run(
                ["git", "--git-dir", str(repo), "hash-object", "-w", "--stdin"],
                input=data.encode(),
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
    return oids


@pytest.mark.parametrize("ofs", [True, False])
def test_the_pack_reader_resolves_gits_deltas(tmp_path: Path, ofs: bool) -> None:
    repo = tmp_path / "r.git"
    git("init", "-q", "--bare", str(repo))
    oids = _similar_blobs(repo, 6)
    pack = subprocess.run(
        [
            "git",
            "--git-dir",
            str(repo),
            "pack-objects",
            "--stdout",
            *(["--delta-base-offset"] if ofs else []),
        ],
        input="".join(o + "\n" for o in oids).encode(),
        capture_output=True,
        check=True,
    ).stdout
    kinds = _entry_kinds(pack)
    assert (blobwire.OBJ_OFS_DELTA if ofs else blobwire.OBJ_REF_DELTA) in kinds  # deltas are read
    got = blobwire.read_pack(pack)
    assert sorted(got) == sorted(oids)
    for oid in oids:
        assert (
            got[oid]
            == subprocess.run(
                ["git", "--git-dir", str(repo), "cat-file", "blob", oid], capture_output=True, check=True
            ).stdout
        )


def _entry_kinds(pack: bytes) -> set[int]:
    """The entry types of a pack, as `git verify-pack` reads it."""
    kinds = set()
    count = int.from_bytes(pack[8:12], "big")
    pos = 12
    for _ in range(count):
        kind, _size, pos = blobwire._entry_header(pack, pos, len(pack) - 20)
        if kind == blobwire.OBJ_OFS_DELTA:
            _, pos = blobwire._ofs(pack, pos, len(pack) - 20)
        elif kind == blobwire.OBJ_REF_DELTA:
            pos += 20
        _, pos = blobwire._inflate(pack, pos, len(pack) - 20, _size)
        kinds.add(kind)
    return kinds


def test_a_pack_cut_short_or_altered_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "r.git"
    git("init", "-q", "--bare", str(repo))
    oids = _similar_blobs(repo, 3)
    pack = subprocess.run(
        ["git", "--git-dir", str(repo), "pack-objects", "--stdout"],
        input="".join(o + "\n" for o in oids).encode(),
        capture_output=True,
        check=True,
    ).stdout
    for bad in (pack[:-30], pack[:40], pack[:12] + bytes([pack[12] ^ 0x10]) + pack[13:], b"PACK"):
        with pytest.raises(blobwire.WireError):
            blobwire.read_pack(bad)

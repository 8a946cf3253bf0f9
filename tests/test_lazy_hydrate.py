"""What is local in a lazy vault, and fetching ahead (docs/lazy.md): `avfs stats`'s lazy
counts, `avfs vault hydrate`, the fetch timeout a vault sets, and the background prefetch of
a mounted lazy fork. Against the real `git daemon` (and `git http-backend` with Basic auth)
of tests/test_lazy.py, serving a real history; objects counted in the vault before and after."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from avfs_git.core.errors import BlobNotLocalError, UsageError
from avfs_git.core.operations import hydrate as hydrate_mod
from avfs_git.core.settings import Settings
from avfs_git.core.store import prefetch
from avfs_git.core.store.prefetch import (
    Budget,
    Demand,
    Filler,
    object_store_bytes,
    rank,
    read_status,
    status_file,
)
from avfs_git.core.vaults.home import Home
from avfs_git.ops import mounts

from .conftest import IN_CI, git
from .test_fuse import require_fuse
from .test_json_schemas import check
from .test_lazy import Server, blob_at, missing, objects, silent_server
from .test_lazy import lazy as lazy
from .test_lazy import server as server
from .test_remotes import http_git as http_git


@pytest.fixture(autouse=True)
def _a_read_fetches_its_file_alone(home: Home) -> None:
    """These tests count the blobs reads fetched: here a read fetches its own file only
    (by default its directory's other files come with it: tests/test_lazy_neighbours.py)."""
    os.makedirs(home.path, exist_ok=True)
    set_config(os.path.join(home.path, "config.json"), read_neighbours=0)


def tree_blobs(repo: Path, rev: str, under: str = "") -> dict[str, int]:
    """blob id -> size of the files of ``rev`` (under ``under``), as the server has them."""
    args = ["--git-dir", str(repo), "ls-tree", "-r", "-l", rev]
    if under:
        args.append(under)
    out: dict[str, int] = {}
    for line in git(*args).splitlines():
        meta, _path = line.split("\t", 1)
        _mode, kind, oid, size = meta.split()
        if kind == "blob":
            out[oid] = int(size)
    return out


def stats_doc(cli, home: Home, *paths: str) -> dict:
    r = cli("--json", "--home", home.path, "--vault", "p", "stats", *paths)
    assert r.code == 0, r.err
    return check(r)


def test_stats_counts_local_and_promised_blobs_per_fork_and_under_paths(lazy, server: Server, cli):
    v = lazy.vault("p")
    src = server.base / "proj.git"
    every = tree_blobs(src, "main")
    v.workspace("main").view.learn_sizes()  # as a mount does as it starts (the clone asks none)
    doc = stats_doc(cli, lazy)
    lz = doc["lazy"]
    assert lz["remote"] == "origin" and lz["url"] == server.url("proj.git") and lz["paths"] == []
    [main] = lz["forks"]
    assert (
        main["name"] == "main" and main["commit"] == git("--git-dir", str(src), "rev-parse", "main").strip()
    )
    local = main["local"]
    assert local["blobs"] == len(every) and local["files"] >= len(every)
    # the clone fetched no blob; the sizes came from the server's object-info
    assert local["blobs_local"] == 0 and local["bytes_local"] == 0
    assert local["blobs_promised"] == len(every) and local["bytes_promised"] == sum(every.values())
    assert local["promised_size_unknown"] == 0
    # a read: one blob local, its bytes counted as local
    before = objects(v.path)
    rel = "avfs_git/core/store/gitstore.py"
    data = v.workspace("main").read(rel)
    assert objects(v.path) == before + 1
    local = stats_doc(cli, lazy)["lazy"]["forks"][0]["local"]
    assert (local["blobs_local"], local["bytes_local"]) == (1, len(data))
    assert local["blobs_promised"] == len(every) - 1
    assert local["bytes_promised"] == sum(every.values()) - len(data)
    # under a path, per fork (a second fork on another commit is counted on its own tree)
    v.fork("main", "old")
    git("--git-dir", v.path, "update-ref", "refs/heads/old", "main~1")
    under = tree_blobs(src, "main", "avfs_git/core/store")
    doc = stats_doc(cli, lazy, "avfs_git/core/store", "avfs_git/core/store/gitstore.py")
    forks = {f["name"]: f["local"] for f in doc["lazy"]["forks"]}
    assert doc["lazy"]["paths"] == ["avfs_git/core/store", "avfs_git/core/store/gitstore.py"]
    assert forks["main"]["blobs"] == len(under) and forks["main"]["blobs_local"] == 1
    assert forks["old"]["blobs"] == len(tree_blobs(src, "main~1", "avfs_git/core/store"))
    # the older errors.py's size was never asked (only main's tree was):
    # counted apart, not guessed
    doc = stats_doc(cli, lazy, "avfs_git/core/errors.py")
    forks = {f["name"]: f["local"] for f in doc["lazy"]["forks"]}
    assert (forks["old"]["blobs_promised"], forks["old"]["bytes_promised"]) == (1, 0)
    assert forks["old"]["promised_size_unknown"] == 1
    assert forks["main"]["bytes_promised"] == sum(tree_blobs(src, "main", "avfs_git/core/errors.py").values())
    assert objects(v.path) == before + 1  # stats fetched nothing
    # for people: a line per fork
    r = cli("--home", lazy.path, "--vault", "p", "stats", "avfs_git/core/store")
    assert r.code == 0 and "lazy: blobs from origin" in r.out and "fork main: 1 of" in r.out


def test_stats_of_a_bad_path_is_a_clear_error_and_a_whole_vault_has_no_lazy_part(lazy, server, cli, home):
    v = lazy.vault("p")
    before = objects(v.path)
    for bad, code in (("no/such/dir", "path_not_found"), ("../up", "invalid_path")):
        r = cli("--json", "--home", lazy.path, "--vault", "p", "stats", bad)
        doc = check(r)
        assert doc["kind"] == "error" and doc["error"]["code"] == code, doc
    assert objects(v.path) == before
    home.create_vault("w")
    r = cli("--json", "--home", home.path, "--vault", "w", "stats")
    assert r.code == 0 and check(r)["lazy"] is None


def listing(vault_path: str) -> set[str]:
    """Every file under the vault's objects/ (what a fetch may write)."""
    out = set()
    for root, _dirs, files in os.walk(os.path.join(vault_path, "objects")):
        out |= {os.path.join(root, f) for f in files}
    return out


def test_hydrate_fetches_the_promised_files_under_paths_in_batches(lazy, server: Server, cli, monkeypatch):
    v = lazy.vault("p")
    src = server.base / "proj.git"
    under = tree_blobs(src, "main", "avfs_git/core")
    read = v.workspace("main").read("avfs_git/core/types.py")
    before, promised = objects(v.path), missing(v.path)
    monkeypatch.setattr(hydrate_mod, "BATCH_BLOBS", 10)
    r = cli("--json", "--home", lazy.path, "--vault", "p:main", "vault", "hydrate", "avfs_git/core")
    assert r.code == 0, r.err
    doc = check(r)
    n = len(under) - 1
    assert (doc["blobs"], doc["already_local"], doc["fetched_blobs"]) == (len(under), 1, n)
    assert doc["fetched_bytes"] == sum(under.values()) - len(read) and doc["disk_bytes"] > 0
    assert doc["batches"] == -(-n // 10) and doc["paths"] == ["avfs_git/core"] and doc["lazy"]
    assert doc["local"]["blobs_promised"] == 0 and doc["local"]["blobs_local"] == len(under)
    assert objects(v.path) == before + n and missing(v.path) == promised - n
    # progress on stderr, a line per batch (stderr is no terminal here)
    assert r.err.count("hydrate: ") == doc["batches"] and f"hydrate: {n}/{n} blobs" in r.err
    # what was hydrated reads with the server gone; what was not is still promised
    server.stop()
    w = lazy.vault("p").workspace("main")
    assert w.read("avfs_git/core/store/promisor.py") == blob_at(
        src, "main", "avfs_git/core/store/promisor.py"
    )
    r = cli("--home", lazy.path, "--vault", "p", "cat", "avfs_git/cli/output.py")
    assert (r.code == 5 and "blob_not_local" in r.err) or "not local" in r.err
    # again: nothing left to fetch, so no server is needed
    r = cli("--json", "--home", lazy.path, "--vault", "p", "vault", "hydrate", "avfs_git/core")
    doc = check(r)
    assert (doc["fetched_blobs"], doc["batches"], doc["already_local"]) == (0, 0, len(under))
    r = cli("--home", lazy.path, "--vault", "p", "vault", "hydrate", "avfs_git/core")
    assert r.code == 0 and "fetched 0 blobs" in r.out


def test_hydrate_offline_is_blob_not_local_and_writes_nothing(lazy, server: Server, cli):
    v = lazy.vault("p")
    server.stop()
    before, files = objects(v.path), listing(v.path)
    r = cli("--json", "--home", lazy.path, "--vault", "p", "vault", "hydrate")
    doc = check(r)
    assert r.code == 5 and doc["error"]["code"] == "blob_not_local", doc
    err = doc["error"]
    assert err["details"]["remote"] == "origin" and err["details"]["fetched_blobs"] == 0
    assert err["details"]["to_fetch"] == len(tree_blobs(server.base / "proj.git", "main"))
    assert "origin" in err["message"] and "hydrate stopped after 0 of" in err["message"]
    assert objects(v.path) == before and listing(v.path) == files


def test_hydrate_stopped_midway_keeps_the_whole_batches_before_and_says_how_far(
    lazy, server: Server, monkeypatch
):
    v = lazy.vault("p")
    monkeypatch.setattr(hydrate_mod, "BATCH_BLOBS", 5)
    before = objects(v.path)
    seen: list[int] = []

    def progress(done: int, total: int, size: int) -> None:
        seen.append(done)
        server.stop()  # the server goes after the first batch

    with pytest.raises(BlobNotLocalError) as exc:
        hydrate_mod.hydrate(v, "main", ["avfs_git/core"], progress=progress)
    assert seen == [5]
    assert exc.value.details["fetched_blobs"] == 5 and exc.value.details["fetched_bytes"] > 0
    assert objects(v.path) == before + 5
    git("--git-dir", v.path, "fsck", "--connectivity-only")


def test_hydrate_of_a_bad_path_fetches_nothing(lazy, server: Server, cli):
    v = lazy.vault("p")
    before, files = objects(v.path), listing(v.path)
    for args, code in (
        (["no/such"], "path_not_found"),
        (["avfs_git/core", "/abs"], "invalid_path"),
    ):
        doc = check(cli("--json", "--home", lazy.path, "--vault", "p", "vault", "hydrate", *args))
        assert doc["error"]["code"] == code, doc
    doc = check(cli("--json", "--home", lazy.path, "--vault", "p:nofork", "vault", "hydrate"))
    assert doc["error"]["code"] == "fork_not_found"
    assert objects(v.path) == before and listing(v.path) == files


def test_hydrate_over_http_uses_the_token_and_never_writes_it(
    home, server: Server, http_git, cli, monkeypatch
):
    url, served, password = http_git
    git("--git-dir", str(served), "fetch", "-q", str(server.base / "proj.git"), "+refs/heads/*:refs/heads/*")
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant"):
        git("--git-dir", str(served), "config", key, "true")
    monkeypatch.setenv("AVFS_GIT_TOKEN", password)
    monkeypatch.setenv("AVFS_GIT_USERNAME", "agent")
    home.settings = Settings.from_environ(None, home.path)
    v = home.clone_vault(url, "n", lazy=True)
    under = tree_blobs(served, "main", "avfs_git/cli")
    r = cli("--json", "--home", home.path, "--vault", "n", "vault", "hydrate", "avfs_git/cli")
    doc = check(r)
    assert doc["fetched_blobs"] == len(under) and doc["local"]["blobs_promised"] == 0, doc
    # over HTTP the sizes were not known before: they are now, from the fetched blobs
    assert doc["fetched_bytes"] == sum(under.values())
    monkeypatch.delenv("AVFS_GIT_TOKEN")
    r = cli("--json", "--home", home.path, "--vault", "n", "vault", "hydrate", "avfs_git/mcp")
    assert check(r)["error"]["code"] == "blob_not_local"  # no token: the server refuses
    assert password not in r.out
    for root, _dirs, names in os.walk(v.path):
        for f in names:
            with open(os.path.join(root, f), "rb") as fh:
                assert password.encode() not in fh.read(), f


def set_config(path: str, **values: object) -> None:
    cfg = json.loads(Path(path).read_text()) if os.path.exists(path) else {}
    cfg.update(values)
    Path(path).write_text(json.dumps(cfg))


def test_the_vault_sets_the_fetch_timeout_else_the_home(lazy, server: Server, cli):
    v = lazy.vault("p")
    server.stop()
    with silent_server(server.port):
        set_config(v.config_path, fetch_timeout_s=1.5)
        start = time.monotonic()
        r = cli("--json", "--home", lazy.path, "--vault", "p", "cat", "avfs_git/cli/output.py")
        took = time.monotonic() - start
        err = check(r)["error"]
        assert err["code"] == "blob_not_local" and "timed out after 1.5 s" in err["message"], err
        assert took < 30  # not the 60 s default
        # the home's setting, where the vault has none; read at each fetch (no reopening)
        set_config(v.config_path, other=1)
        Path(v.config_path).write_text(
            json.dumps({k: w for k, w in v.fresh_config().items() if k != "fetch_timeout_s"})
        )
        set_config(os.path.join(lazy.path, "config.json"), fetch_timeout_s=1.25)
        with pytest.raises(BlobNotLocalError) as exc:
            v.workspace("main").read("avfs_git/cli/output.py")
        assert "timed out after 1.25 s" in exc.value.message
        # hydrate goes by the same setting
        r = cli("--json", "--home", lazy.path, "--vault", "p", "vault", "hydrate", "avfs_git/mcp")
        assert "timed out after 1.25 s" in check(r)["error"]["message"]


def test_a_bad_fetch_timeout_is_a_clear_error_and_fetches_nothing(lazy, server: Server, cli):
    v = lazy.vault("p")
    before, files = objects(v.path), listing(v.path)
    for bad in ("10", 0, -1, True, float("inf")):
        set_config(v.config_path, fetch_timeout_s=bad)
        r = cli("--json", "--home", lazy.path, "--vault", "p", "cat", "avfs_git/cli/output.py")
        err = check(r)["error"]
        assert (
            err["code"] == "usage" and "fetch_timeout_s" in err["message"] and v.config_path in err["message"]
        ), err
    r = cli("--json", "--home", lazy.path, "--vault", "p", "vault", "hydrate")
    assert check(r)["error"]["code"] == "usage"
    assert objects(v.path) == before and listing(v.path) == files
    set_config(v.config_path, fetch_timeout_s=30)
    assert v.workspace("main").read("avfs_git/cli/output.py") == blob_at(
        server.base / "proj.git", "main", "avfs_git/cli/output.py"
    )


# -- the background prefetch ---------------------------------------------------------------


@pytest.fixture
def rich(home: Home, server: Server, tmp_path: Path) -> Home:
    """The served history with binaries and a large file on top, cloned lazily as ``p``."""
    work = tmp_path / "extra"
    git("clone", "-q", str(server.base / "proj.git"), str(work))
    (work / "assets").mkdir()
    (work / "assets" / "big.bin").write_bytes(os.urandom(2 << 20))
    (work / "assets" / "logo.png").write_bytes(os.urandom(3000))
    (work / "assets" / "notes.unknown").write_bytes(b"n" * 5000)
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "commit", "-q", "-m", "assets")
    git("-C", str(work), "push", "-q", "origin", "main")
    home.clone_vault(server.url("proj.git"), "p", lazy=True)
    return home


def promised_of(v, rev: str = "main") -> set[str]:
    """The blobs of ``rev``'s tree the vault does not hold."""
    blobs, _ = hydrate_mod.tree_blobs(v, "main", v.store.commit_tree(v.store.rev_parse(rev)), [], "test")
    return {o for o in blobs if not v.store.is_local(o)}


def run_filler(v, budget: Budget, demand: Demand | None = None, **kw) -> tuple[Filler, list[list[str]]]:
    batches: list[list[str]] = []
    demand = demand or Demand()
    tree = v.store.commit_tree(v.store.rev_parse("main"))
    f = Filler(v.store, lambda: tree, budget, demand, on_batch=batches.append, **kw)
    f.start()
    assert f.thread is not None
    f.thread.join(300)
    assert not f.thread.is_alive()
    return f, batches


def test_the_filler_fetches_neighbours_of_reads_then_sources_then_the_rest_and_large_files_last(rich, server):
    v = rich.vault("p")
    src = server.base / "proj.git"
    sizes = tree_blobs(src, "main")
    paths = {}
    for line in git("--git-dir", str(src), "ls-tree", "-r", "main").splitlines():
        meta, path = line.split("\t", 1)
        paths.setdefault(meta.split()[2], path)
    demand = Demand()
    v.store.promisor.demand = demand  # as a mount's daemon sets it
    v.workspace("main").read("avfs_git/cli/output.py")  # a read: its directory goes first
    assert demand.dirs() == ["avfs_git/cli"]
    promised = promised_of(v)
    before = objects(v.path)
    f, batches = run_filler(v, Budget(1e12, 1 << 50), demand, batch_blobs=7)
    assert f.state == "done" and f.error is None, f.status()
    order = [o for b in batches for o in b]
    assert len(order) == len(set(order)) and set(order) == promised  # each once, all of them
    assert objects(v.path) == before + len(promised) and not promised_of(v)
    assert max(len(b) for b in batches) <= 7
    neighbours = {o for o in promised if tree_blobs(src, "main", "avfs_git/cli").get(o) is not None}
    assert neighbours and set(order[: len(neighbours)]) == neighbours
    ranks = [rank(paths[o], sizes[o]) for o in order[len(neighbours) :]]
    assert ranks == sorted(ranks), ranks  # sources, then the rest, then large or binary files
    assert ranks[0] == 1 and ranks[-1] == 3
    assert paths[order[-1]] == "assets/big.bin"
    assert {paths[o] for o in order if rank(paths[o], sizes[o]) == 3} == {"assets/big.bin", "assets/logo.png"}


def test_the_filler_keeps_to_its_bandwidth(lazy, server):
    v = lazy.vault("p")
    total = sum(tree_blobs(server.base / "proj.git", "main").values())
    bandwidth = total / 3.0  # the whole tree in about three seconds at the budget
    start = time.monotonic()
    f, batches = run_filler(v, Budget(bandwidth, 1 << 50))
    took = time.monotonic() - start
    assert f.state == "done" and f.fetched_bytes == total
    assert len(batches) > 1  # a batch is about two seconds of the budget
    assert took >= 0.95 * total / bandwidth, (took, total / bandwidth)


def test_the_filler_stops_at_its_disk_budget_and_waits_out_a_dead_server(lazy, server, monkeypatch):
    v = lazy.vault("p")
    start = object_store_bytes(v.path)
    f, batches = run_filler(v, Budget(1e12, start + 1), batch_blobs=5)
    assert f.state == "disk_budget" and len(batches) == 1 and f.remaining > 0
    assert object_store_bytes(v.path) > start
    # a read goes on past the budget
    left = promised_of(v)
    v.workspace("main").read("avfs_git/cli/output.py")
    assert len(promised_of(v)) == len(left) - 1
    # the server gone: the filler waits and tries again; back, it goes on
    monkeypatch.setattr(prefetch, "RETRY_S", 0.3)
    server.stop()
    tree = v.store.commit_tree(v.store.rev_parse("main"))
    f = Filler(v.store, lambda: tree, Budget(1e12, 1 << 50), Demand())
    f.start()
    deadline = time.monotonic() + 60
    while f.state != "offline" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f.state == "offline" and "origin" in (f.error or "")
    server.start()
    assert f.thread is not None
    f.thread.join(120)
    assert f.state == "done" and not promised_of(v)


BACKENDS = pytest.mark.parametrize("backend", ["overlay", "fuse"])


@contextlib.contextmanager
def mounted(home: Home, v, mp: Path, backend: str) -> Iterator[Path]:
    require_fuse()
    if backend == "overlay" and (why := mounts.overlay_available()) is not None:
        if IN_CI:
            pytest.fail(f"overlayfs must be available in CI: {why}")
        pytest.skip(f"requires overlayfs: {why}")
    mp.mkdir(exist_ok=True)
    mounts.mount(home, v, "main", str(mp), backend=backend)
    try:
        yield mp
    finally:
        mounts.unmount(home, v, "main", lazy=True)


PREFETCH_KEYS = (
    "state",
    "fetched_blobs",
    "fetched_bytes",
    "remaining_blobs",
    "bandwidth",
    "disk_bytes",
    "error",
)


def wait_state(v, *states: str, timeout: float = 180.0) -> dict:
    """The mount's prefetch status once its state is one of ``states``."""
    path = status_file(v.path, "main")
    deadline = time.monotonic() + timeout
    got = read_status(path)
    while (got is None or got["state"] not in states) and time.monotonic() < deadline:
        time.sleep(0.1)
        got = read_status(path)
    assert got is not None and got["state"] in states, got
    return got


@BACKENDS
def test_a_mounted_lazy_fork_prefetches_everything_within_generous_budgets(
    lazy, server, tmp_path, cli, backend
):
    v = lazy.vault("p")
    set_config(v.config_path, prefetch=True, prefetch_bandwidth=1e9)
    promised = promised_of(v)
    before = objects(v.path)
    with mounted(lazy, v, tmp_path / "mnt", backend) as mp:
        got = wait_state(v, "done")
        assert got["fetched_blobs"] == len(promised) and got["remaining_blobs"] == 0
        assert objects(v.path) == before + len(promised) and not promised_of(v)
        # stats: the mount's prefetch, and nothing promised left
        doc = stats_doc(cli, lazy)
        assert doc["lazy"]["prefetch"] == [{"key": "main", **{k: got[k] for k in PREFETCH_KEYS}}]
        assert doc["lazy"]["forks"][0]["local"]["blobs_promised"] == 0
        server.stop()  # everything reads offline now
        rel = "avfs_git/mcp/server.py"
        assert (mp / rel).read_bytes() == blob_at(server.base / "proj.git", "main", rel)
    assert read_status(status_file(v.path, "main"))["state"] == "done"


@BACKENDS
def test_prefetch_stops_at_the_disk_budget_and_reads_go_on(lazy, server, tmp_path, backend):
    v = lazy.vault("p")
    start = object_store_bytes(v.path)
    set_config(v.config_path, prefetch=True, prefetch_bandwidth=20000, prefetch_disk_bytes=start + 1)
    promised = promised_of(v)
    with mounted(lazy, v, tmp_path / "mnt", backend) as mp:
        got = wait_state(v, "disk_budget")
        assert 0 < got["fetched_blobs"] < len(promised) and got["remaining_blobs"] > 0
        assert got["disk_bytes"] == start + 1
        left = promised_of(v)
        assert len(left) == len(promised) - got["fetched_blobs"]
        # reads go on past the budget: each fetches its file
        rel = sorted(p for p in git("--git-dir", v.path, "ls-tree", "-r", "--name-only", "main").splitlines())
        unread = next(
            p
            for p in rel
            if v.store.tree_lookup(v.store.commit_tree(v.store.rev_parse("main")), p)[0] in left
        )
        assert (mp / unread).read_bytes() == blob_at(server.base / "proj.git", "main", unread)
        assert len(promised_of(v)) == len(left) - 1
        assert read_status(status_file(v.path, "main"))["state"] == "disk_budget"


def test_a_bad_prefetch_setting_refuses_the_mount_and_changes_nothing(lazy, server, tmp_path):
    require_fuse()
    v = lazy.vault("p")
    before, files = objects(v.path), listing(v.path)
    mp = tmp_path / "mnt"
    mp.mkdir()
    for key, bad in (("prefetch", "yes"), ("prefetch_bandwidth", 10), ("prefetch_disk_bytes", -5)):
        set_config(v.config_path, **{"prefetch": True, key: bad})
        with pytest.raises(UsageError) as exc:
            mounts.mount(lazy, v, "main", str(mp), backend="fuse")
        assert key in exc.value.message and v.config_path in exc.value.message
        Path(v.config_path).write_text("{}")
    assert mounts.list_mounts(lazy) == [] and os.listdir(mp) == []
    assert objects(v.path) == before and listing(v.path) == files


class HoldProxy:
    """A TCP proxy on 127.0.0.1 to ``port``: forwards every connection, except that when
    :attr:`hold_next` is set the next one is accepted and held, unanswered (a fetch stuck in
    flight)."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hold_next = threading.Event()
        self.held = threading.Event()
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c = self.sock.accept()[0]
            except OSError:
                continue
            self.conns.append(c)
            if self.hold_next.is_set():
                self.hold_next.clear()
                self.held.set()
                continue
            up = socket.create_connection(("127.0.0.1", self.upstream))
            self.conns.append(up)
            for a, b in ((c, up), (up, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.stop.set()
        for c in self.conns:
            c.close()
        self.sock.close()


@BACKENDS
def test_a_read_never_waits_behind_a_prefetch_in_flight(home, server, tmp_path, backend):
    proxy = HoldProxy(server.port)
    try:
        v = home.clone_vault(f"git://127.0.0.1:{proxy.port}/proj.git", "p", lazy=True)
        # a read waiting behind the held fetch would wait this long: it must not
        set_config(v.config_path, prefetch=True, fetch_timeout_s=120)
        v.workspace("main").view.learn_sizes()  # known: the mount asks the server nothing
        proxy.hold_next.set()  # the first fetch after mounting (the prefetch's) hangs
        with mounted(home, v, tmp_path / "mnt", backend) as mp:
            assert proxy.held.wait(60)
            assert wait_state(v, "fetching")["fetched_blobs"] == 0
            rel = "avfs_git/core/store/promisor.py"
            assert (mp / rel).read_bytes() == blob_at(server.base / "proj.git", "main", rel)
            # read while the prefetch's fetch is still held: it did not wait for it
            got = read_status(status_file(v.path, "main"))
            assert got is not None and got["state"] == "fetching" and got["fetched_blobs"] == 0
    finally:
        proxy.close()


def test_the_filler_reaches_an_http_server_with_the_token_and_never_writes_it(
    home, server, http_git, monkeypatch
):
    url, served, password = http_git
    git("--git-dir", str(served), "fetch", "-q", str(server.base / "proj.git"), "+refs/heads/*:refs/heads/*")
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant"):
        git("--git-dir", str(served), "config", key, "true")
    monkeypatch.setenv("AVFS_GIT_TOKEN", password)
    monkeypatch.setenv("AVFS_GIT_USERNAME", "agent")
    home.settings = Settings.from_environ(None, home.path)
    v = home.clone_vault(url, "p", lazy=True)
    promised = promised_of(v)
    assert promised
    f, _batches = run_filler(v, Budget(1e12, 1 << 50))
    assert f.state == "done" and f.fetched_blobs == len(promised) and not promised_of(v), f.status()
    for root, _dirs, names in os.walk(v.path):
        for name in names:
            with open(os.path.join(root, name), "rb") as fh:
                assert password.encode() not in fh.read(), name


def test_mcp_hydrate_fetches_under_paths_and_offline_is_blob_not_local(lazy, server: Server):
    """MCP's `hydrate` tool: the same document as `avfs vault hydrate`, and the same error
    offline, with nothing written."""
    from avfs_git.mcp.tools import AvfsTools

    v = lazy.vault("p")
    src = server.base / "proj.git"
    under = tree_blobs(src, "main", "avfs_git/core/store")
    tools = AvfsTools(lazy.path, "p:main")
    before = objects(v.path)
    doc = json.loads(tools.call("hydrate", {"paths": ["avfs_git/core/store"]}))
    assert doc["kind"] == "hydrate" and doc["fetched_blobs"] == len(under), doc
    assert objects(v.path) == before + len(under)
    server.stop()
    held = listing(v.path)
    with pytest.raises(BlobNotLocalError):  # the server makes it the error document
        tools.call("hydrate", {"paths": ["avfs_git/cli"]})
    assert listing(v.path) == held

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

from avfs_git.core.errors import BlobNotLocalError
from avfs_git.core.operations import hydrate as hydrate_mod
from avfs_git.core.settings import Settings
from avfs_git.core.vaults.home import Home

from .conftest import git
from .test_json_schemas import check
from .test_lazy import Server, blob_at, missing, objects
from .test_lazy import lazy as lazy
from .test_lazy import server as server
from .test_remotes import http_git as http_git


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
    doc = stats_doc(cli, lazy)
    lz = doc["lazy"]
    assert lz["remote"] == "origin" and lz["url"] == server.url("proj.git") and lz["paths"] == []
    [main] = lz["forks"]
    assert (
        main["name"] == "main" and main["commit"] == git("--git-dir", str(src), "rev-parse", "main").strip()
    )
    local = main["local"]
    assert local["blobs"] == len(every) and local["files"] >= len(every)
    # the clone fetched no blob; the sizes came from the server's object-info at the clone
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
    # the older errors.py's size was never asked (the clone asks the default fork's only):
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


@contextlib.contextmanager
def silent_server(port: int) -> Iterator[None]:
    """A listener on 127.0.0.1:``port`` that accepts connections and says nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        sock.close()


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

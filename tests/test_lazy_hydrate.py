"""What is local in a lazy vault, and fetching ahead (docs/lazy.md): `avfs stats`'s lazy
counts, `avfs vault hydrate`, the fetch timeout a vault sets, and the background prefetch of
a mounted lazy fork. Against the real `git daemon` (and `git http-backend` with Basic auth)
of tests/test_lazy.py, serving a real history; objects counted in the vault before and after."""

from __future__ import annotations

import json
import os
from pathlib import Path

from avfs_git.core.vaults.home import Home

from .conftest import git
from .test_json_schemas import check
from .test_lazy import Server, blob_at, missing, objects
from .test_lazy import lazy as lazy
from .test_lazy import server as server


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


__all__ = ["blob_at", "json", "missing", "os"]

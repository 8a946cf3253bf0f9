"""Row 2 of issue 30 (docs/benchmarks.md, the eighteenth round): what three ways of having a
fresh lazy clone's index or sizes sooner would cost, measured before any is built.

- ``libgit2``: the index made in the mount's daemon by libgit2 (pygit2's ``Index.read_tree``,
  written once) instead of ``git read-tree`` in a process of its own: the CPU of pygit2's
  import and of the build, in a new interpreter (the daemon has not loaded it at the gate:
  fuse/settle.py), against git's process; whether its bytes are git's (the entries, then the
  cache tree), and whether mount/readtree.py's pass reads them. pygit2's ``IndexEntry``
  carries a path, an id and a mode only: the stat data the mount reports (times, inode,
  owner, size) are written by the same pass either way, so the pass's CPU is timed too.
- ``sizes``: the whole tree's sizes asked wherever they are asked (the clone's end, the
  clone's own connection, the mount): git's listing of the tree, the request made, the
  server's ``upload-pack`` answering ``object-info`` (its process's CPU, ``--stateless-rpc``
  on the served repository, as a ``git daemon`` runs it), the answer parsed.

Run: ``.venv/bin/python -m bench.row2ideas --served DIR [--repeats N]`` (DIR holds
``big.git``, as ``bench.lazytaskcpu`` or ``bench.lazycases --monorepo --served DIR`` keep it);
one JSON document on stdout: per figure the median and every repeat.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from avfs_git.core.store import objectinfo
from avfs_git.mount import readtree

# a new interpreter: pygit2 imported (its CPU), then the tree read into a new index file
_LIBGIT2 = r"""
import sys, time
c0 = time.process_time()
import pygit2
c1 = time.process_time()
repo = pygit2.Repository(sys.argv[1])
index = pygit2.Index(sys.argv[3])
index.read_tree(repo[sys.argv[2]])
index.write()
print(c1 - c0, time.process_time() - c1)
"""


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _git_read_tree(repo: str, tree: str, path: str) -> float:
    """``git read-tree`` as mount/readtree.py runs it: its process's CPU."""
    env = {**os.environ, "GIT_DIR": repo, "GIT_INDEX_FILE": path, "GIT_INDEX_VERSION": "2"}
    args = [x for c in readtree.CONFIG for x in ("-c", c)]
    c0 = _children_cpu()
    subprocess.run(["git", *args, "read-tree", tree], env=env, check=True)
    return _children_cpu() - c0


def _cache_tree_at(data: bytes) -> int:
    """Where git's ``TREE`` extension starts (the entries end)."""
    end = len(data) - 20
    at = data.rfind(b"TREE", 12, end)
    while at >= 0 and at + 8 + int.from_bytes(data[at + 4 : at + 8], "big") != end:
        at = data.rfind(b"TREE", 12, at)
    return at


def libgit2_round(repo: str, tree: str, scratch: Path) -> dict[str, Any]:
    """One cold build each way, compared."""
    d = Path(tempfile.mkdtemp(dir=scratch))
    try:
        git_cpu = _git_read_tree(repo, tree, str(d / "git"))
        p = subprocess.run(
            [sys.executable, "-c", _LIBGIT2, repo, tree, str(d / "libgit2")],
            capture_output=True,
            text=True,
            check=True,
        )
        imp, build = map(float, p.stdout.split())
        by_git, by_lg2 = (d / "git").read_bytes(), (d / "libgit2").read_bytes()
        t0 = time.process_time()
        filled = readtree._filled(by_git, tree, "t", 1_700_000_000_123_456_789, (1000, 1000), {}.get)
        pass_cpu = time.process_time() - t0
        filled_lg2 = readtree._filled(by_lg2, tree, "t", 1_700_000_000_123_456_789, (1000, 1000), {}.get)
        at = _cache_tree_at(by_git)
        return {
            "git_read_tree_cpu_s": git_cpu,
            "libgit2_import_cpu_s": imp,
            "libgit2_build_cpu_s": build,
            "pass_cpu_s": pass_cpu,
            "bytes": len(by_git),
            "entries_end_at": at,
            "same_bytes": by_git == by_lg2,
            "same_entries": at > 0 and by_git[:at] == by_lg2[:at],
            "same_length": len(by_git) == len(by_lg2),
            "pass_reads_libgit2_s": filled_lg2 is not None,
            "same_after_pass": filled is not None
            and filled_lg2 is not None
            and filled.data == filled_lg2.data,
        }
    finally:
        shutil.rmtree(d, ignore_errors=True)


def sizes_round(repo: str, tree: str) -> dict[str, Any]:
    """The whole tree's sizes asked once: each part's CPU (and the server's wall time)."""
    c0 = _children_cpu()
    listing = subprocess.run(
        ["git", "--git-dir", repo, "ls-tree", "-r", "-z", "--full-tree", tree],
        capture_output=True,
        check=True,
    ).stdout
    ls_cpu = _children_cpu() - c0
    oids = sorted(
        {
            head.split(b" ")[2].decode()
            for e in listing.split(b"\0")
            if e and (head := e.split(b"\t", 1)[0]).split(b" ")[1:2] == [b"blob"]
        }
    )
    t0 = time.process_time()
    request = objectinfo._request(oids)
    request_cpu = time.process_time() - t0
    c0, w0 = _children_cpu(), time.perf_counter()
    p = subprocess.run(
        ["git", "upload-pack", "--stateless-rpc", repo],
        input=request,
        capture_output=True,
        env={**os.environ, "GIT_PROTOCOL": "version=2"},
        check=True,
    )
    server_cpu, server_wall = _children_cpu() - c0, time.perf_counter() - w0
    t0 = time.process_time()
    got = objectinfo._answer(io.BufferedReader(io.BytesIO(p.stdout)))  # type: ignore[arg-type]
    parse_cpu = time.process_time() - t0
    return {
        "ls_tree_cpu_s": ls_cpu,
        "request_cpu_s": request_cpu,
        "server_object_info_cpu_s": server_cpu,
        "server_object_info_wall_s": server_wall,
        "parse_cpu_s": parse_cpu,
        "blobs": len(oids),
        "sizes": len(got),
    }


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in rounds[0].items():
        vals = [r[k] for r in rounds]
        if isinstance(v, float):
            out[k] = {"median": statistics.median(vals), "each": vals}
        else:
            out[k] = vals[0] if all(x == vals[0] for x in vals) else vals
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--served", required=True, help="the served repository's directory (big.git in it)")
    ap.add_argument("--tree", help="the tree (default: big.git's HEAD's)")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    repo = str(Path(args.served).resolve() / "big.git")
    tree = (
        args.tree
        or subprocess.run(
            ["git", "--git-dir", repo, "rev-parse", "HEAD^{tree}"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    with tempfile.TemporaryDirectory(prefix="avfs-row2ideas-") as tmp:
        lg2 = [libgit2_round(repo, tree, Path(tmp)) for _ in range(args.repeats)]
    sizes = [sizes_round(repo, tree) for _ in range(args.repeats)]
    doc = {
        "tree": tree,
        "repeats": args.repeats,
        "load": os.getloadavg()[0],
        "libgit2": _summary(lg2),
        "sizes": _summary(sizes),
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()

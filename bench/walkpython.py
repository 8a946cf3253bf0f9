"""The Python a read-only view (an overlay's lower layer) spends per entry of a cold walk,
in process: every directory's listing and each entry's attributes packed into a
``struct stat``, as ``FastFUSE.readdir_fuse_3`` makes them for a readdirplus, without
libfuse or the kernel. Run by each side's own interpreter, in turns:

    /work/base/.venv/bin/python -m bench.walkpython HOME VAULT FORK [--rounds 3]

(a checkout without ``libfuse.set_entry_attrs`` packs by mfusepy's ``set_st_attrs``).
Prints the entries and the CPU per entry of each round (the first warms the caches).
"""

from __future__ import annotations

import argparse
import ctypes
import time
from typing import Any

import mfusepy as fuse

from avfs_git.core.vaults.home import Home
from avfs_git.core.workspace.workspace import Workspace
from avfs_git.fuse.ops import WorkspaceFS
from avfs_git.mount.side import MOUNT_SIDE


def _filler() -> Any:
    try:
        from avfs_git.fuse.libfuse import set_entry_attrs  # type: ignore[attr-defined]
    except ImportError:  # (before h-mountcost2)

        def fill(st: Any, attrs: dict[str, Any]) -> None:
            ctypes.memset(ctypes.addressof(st), 0, ctypes.sizeof(st))
            fuse.set_st_attrs(st, attrs, use_ns=True)

        return fill
    return set_entry_attrs


def walk(served: Any) -> int:
    ops = WorkspaceFS(served, read_only=True)
    fill = _filler()
    st = fuse.c_stat()
    todo, n = ["/"], 0
    while todo:
        d = todo.pop()
        for entry, p, node in ops.listing(d, 0):
            full = entry not in (".", "..") and ops.plus_ok(p, node)
            fill(st, ops.entry_attrs(p, node, full))
            n += 1
            if node is not None and node.is_dir and entry not in (".", ".."):
                todo.append("/" + p)
        ops.listing_done(d)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("home")
    ap.add_argument("vault")
    ap.add_argument("fork")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    v = Home(args.home, mounts=MOUNT_SIDE).vault(args.vault)
    served = Workspace(v, args.fork, v.ws_dir(args.fork))
    served.overlay.with_upper = False
    for _ in range(args.rounds + 1):
        t0 = time.process_time()
        n = walk(served)
        t = time.process_time() - t0
        print(f"{n} entries {t * 1000:.1f} ms {t / n * 1e6:.1f} us/entry")


if __name__ == "__main__":
    main()

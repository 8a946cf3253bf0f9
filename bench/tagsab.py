"""A warm ``proxy exec``'s seal with many loose tags: the tags read by a walk (an ``lstat``
of each, as every call did) against the daemon's inotify watch of ``refs/tags``
(proxy/refwatch.py), in one process, interleaved (docs/benchmarks.md, "The fourteenth
round", h-review3).

A vault of ``N`` loose tags; each round runs :func:`avfs_git.proxy.seal.prepare` and
:func:`~avfs_git.proxy.seal.carry_back` (what a call does around its command) once with
the watch registered and once without, the order alternating (the daemon's watch of the
branches registered on both sides); reported: the median CPU time (``time.process_time``)
of each side, their ratio, then that of calls one after another with the watch (as a
daemon's warm calls come), and the load. Since the sixteenth round the vault's loose tags
are lines of the sandbox's ``packed-refs``: a watched call after a walked one makes that
file again, a call after a watched one reuses it.

Run: ``.venv/bin/python -m bench.tagsab [N ...]`` (default 2000 200).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time


def measure(n: int, rounds: int = 30) -> dict[str, float]:
    from avfs_git.core.operations import checkpoint
    from avfs_git.core.vaults import layers
    from avfs_git.mount.side import open_home
    from avfs_git.proxy import refwatch, seal

    d = tempfile.mkdtemp(prefix="avfs-tagsab-")
    home = open_home(os.path.join(d, "home"))
    try:
        v = home.create_vault("v")
        v.workspace("main").write("f", b"1\n")
        commit = checkpoint.save(v).checkpoint.commit
        os.makedirs(os.path.join(v.path, "refs", "tags"), exist_ok=True)
        for i in range(n):
            with open(os.path.join(v.path, "refs", "tags", f"v{i}"), "w") as fh:
                fh.write(commit + "\n")
        refwatch.MAX_TRUST_S = 3600.0
        heads = refwatch.start(v.path)  # as a mount's daemon keeps it (both sides)
        watch = refwatch.start(v.path, "tags")
        assert watch is not None and heads is not None
        key = (watch.key, "tags")

        def one() -> None:
            seal.carry_back(v, seal.prepare(v, "main", None))

        one()
        cpu: dict[str, list[float]] = {"walk": [], "watch": []}
        for r in range(rounds):
            for side in ("walk", "watch") if r % 2 else ("watch", "walk"):
                if side == "walk":
                    refwatch._live.pop(key, None)
                else:
                    refwatch._live[key] = watch
                t = time.process_time()
                one()
                cpu[side].append((time.process_time() - t) * 1000)
        # a daemon's calls one after another (the memo of what the sandbox is shown kept)
        steady = []
        for _r in range(rounds):
            t = time.process_time()
            one()
            steady.append((time.process_time() - t) * 1000)
        watch.close()
        heads.close()
        walk, watched = statistics.median(cpu["walk"]), statistics.median(cpu["watch"])
        return {
            "tags": n,
            "walk_cpu_ms": walk,
            "watch_cpu_ms": watched,
            "ratio": watched / walk,
            "steady_cpu_ms": statistics.median(steady),
        }
    finally:
        home.close()
        layers.unmount(home.path)
        shutil.rmtree(d, ignore_errors=True)


def main(argv: list[str]) -> None:
    for n in [int(a) for a in argv] or [2000, 200]:
        got = measure(n)
        print(
            f"{got['tags']} tags: walk {got['walk_cpu_ms']:.2f} ms, watch {got['watch_cpu_ms']:.2f} ms"
            f" of CPU a call (median), ratio {got['ratio']:.2f}; watched, one call after another:"
            f" {got['steady_cpu_ms']:.2f} ms; load {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])

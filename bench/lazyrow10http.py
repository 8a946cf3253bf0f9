"""Rows 1 and 2 of issue 30 as bench/lazyrow9ab.py measures them, the monorepo served by
`git http-backend` behind Basic auth on 127.0.0.1 (bench/authgit.py) instead of `git
daemon` (docs/benchmarks.md, the thirty-eighth round, branch ``h-lazyrow10``): avfs is given
the password through ``AVFS_GIT_TOKEN`` / ``AVFS_GIT_USERNAME``, plain git (the bare clone,
the whole vault's status) through a credential helper in ``GIT_CONFIG_*``.

Run: ``.venv/bin/python -m bench.lazyrow10http --served DIR --side NAME=TREE:SETTING ...
[--repeats N]`` (root, cgroup v1's cpuacct). The result goes to
``bench/results/h-lazyrow10-http-<time>.json``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import lazyrow8ab, lazyrow9ab
from .lazyrow7cpu import IN_CG, _free_port

PASSWORD = "lazyrow10-secret"
ROOT = Path(__file__).resolve().parents[1]


def _server(cg: Path, base: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    counts = base.parent / f"{base.name}-http-counts.json"
    proc = subprocess.Popen(
        ["sh", "-c", IN_CG, str(cg), sys.executable, "-m", "bench.authgit", str(base), str(port), PASSWORD,
         str(counts)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the HTTP server did not start") from None
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}"


if __name__ == "__main__":
    os.environ.update(
        AVFS_GIT_TOKEN=PASSWORD,
        AVFS_GIT_USERNAME="agent",
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="credential.helper",
        GIT_CONFIG_VALUE_0=f"!f() {{ echo username=agent; echo password={PASSWORD}; }}; f",
    )
    lazyrow8ab._server = _server  # type: ignore[assignment]
    lazyrow8ab._round = lazyrow9ab._round  # type: ignore[assignment]
    if "--prefix" not in sys.argv:
        sys.argv += ["--prefix", "h-lazyrow10-http"]
    if "--tag" not in sys.argv:
        sys.argv += ["--tag", "h-lazyrow10h"]
    lazyrow8ab.main()

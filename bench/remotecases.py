"""Remote benchmarks: `avfs push` of the tree's vault to a `git daemon` on 127.0.0.1 vs
`git push` of the very same repository to the same daemon, `avfs fetch` of it into a new
vault vs `git fetch` into a copy of that vault, and `avfs vault clone` from it
vs `git clone --bare` (a vault is a bare repository: a clone with a checkout would charge
git for writing 100k files avfs never writes).

Both sides run as commands (the way a user or an agent runs them). Each repeat pushes into
a fresh empty repository and clones into a fresh directory (made and removed untimed).
Medium repeats (11 at full size): a transfer is a fraction of a second at 10k, and under a
shared machine's load three samples said little.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .env import log, run, venv_bin
from .timing import Result, Side, Target, interleave, median
from .trees import VAULT

if TYPE_CHECKING:
    from .context import Context


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _daemon(base: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--listen=127.0.0.1", f"--port={port}", "--reuseaddr", "--export-all",
         "--enable=receive-pack", f"--base-path={base}", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("git daemon did not start") from None
            time.sleep(0.05)
    return proc, f"git://127.0.0.1:{port}"


def bench_remote(ctx: Context, labels: list[str]) -> None:
    for label in labels:
        _remote(ctx, label)


def _remote(ctx: Context, label: str) -> None:
    from .context import _close, _open

    vault, hdir = _open(ctx, "remote", label)
    served = ctx.fx.new_dir(f"served-{label}")
    clones = ctx.fx.new_dir(f"clones-{label}")
    daemon, url = _daemon(served)
    avfs = venv_bin("avfs")
    env = {**os.environ, "AVFS_HOME": str(hdir), "AVFS_PROGRESS": "never"}
    try:
        run([avfs, "--vault", VAULT, "remote", "add", "bench", f"{url}/avfs.git"], env=env)

        def fresh(name: str) -> None:
            path = served / name
            if path.exists():
                shutil.rmtree(path)
            run(["git", "init", "-q", "--bare", str(path)])

        def push_setup(i: int) -> None:
            fresh("avfs.git")
            fresh("git.git")
            # a new, empty repository there: what the vault saw of the last one goes too
            # (else the lease on it is stale and renewed: a second round trip git never makes)
            run(["git", "--git-dir", vault.path, "update-ref", "-d", "refs/remotes/bench/main"])

        def push_avfs(i: int) -> None:
            run([avfs, "--vault", VAULT, "push", "bench", "main"], env=env)

        def push_git(i: int) -> None:
            run(
                [
                    "git",
                    "--git-dir",
                    vault.path,
                    "push",
                    "-q",
                    f"{url}/git.git",
                    "refs/heads/main:refs/heads/main",
                ]
            )

        log(f"remote {label}: push to git daemon")
        s = interleave(
            {"avfs": Side(op=push_avfs, setup=push_setup), "git": Side(op=push_git)},
            ctx.repeats.medium,
            ctx.repeats.warmup,
        )
        ctx.emit(
            Result(
                "remote_push",
                label,
                median(s["avfs"]),
                s["avfs"],
                what="`avfs push` of the vault's main fork into an empty repository on a git daemon",
                baseline="git push of the same repository, same daemon",
                baseline_ms=median(s["git"]),
                baseline_samples_ms=s["git"],
                target=Target(max_ratio=1.1),
            )
        )

        fetcher = hdir / "vaults" / "fetcher.git"
        git_fetcher = clones / "fetcher.git"

        def fetch_setup(i: int) -> None:
            if fetcher.exists():
                run([avfs, "vault", "delete", "fetcher", "--force"], env=env)
            trash = hdir / "trash"
            if trash.exists():
                shutil.rmtree(trash)
            run([avfs, "vault", "create", "fetcher"], env=env)
            run([avfs, "--vault", "fetcher", "remote", "add", "bench", f"{url}/avfs.git"], env=env)
            # git fetches into a copy of that very vault (its initial commit is a "have" in
            # the negotiation, and the connectivity walk's --not --all: an empty repository
            # would spare git both, ~30-70 ms here)
            if git_fetcher.exists():
                shutil.rmtree(git_fetcher)
            run(["cp", "-a", str(fetcher), str(git_fetcher)])

        def fetch_avfs(i: int) -> None:
            run([avfs, "--vault", "fetcher", "fetch", "bench"], env=env)

        def fetch_git(i: int) -> None:
            run(
                [
                    "git",
                    "--git-dir",
                    str(git_fetcher),
                    "fetch",
                    "-q",
                    "--prune",
                    f"{url}/git.git",
                    "+refs/heads/*:refs/remotes/bench/*",
                ]
            )  # fmt: skip (the URL: no remote's config)

        log(f"remote {label}: fetch from git daemon")
        s = interleave(
            {"avfs": Side(op=fetch_avfs, setup=fetch_setup), "git": Side(op=fetch_git)},
            ctx.repeats.medium,
            ctx.repeats.warmup,
        )
        ctx.emit(
            Result(
                "remote_fetch",
                label,
                median(s["avfs"]),
                s["avfs"],
                what="`avfs fetch` of that repository from the git daemon into a new vault"
                " (its branches to remote-tracking refs)",
                baseline="git fetch of the same repository into a copy of that new vault, same daemon",
                baseline_ms=median(s["git"]),
                baseline_samples_ms=s["git"],
                target=Target(max_ratio=1.1),
            )
        )
        run([avfs, "vault", "delete", "fetcher", "--force"], env=env)

        def clone_setup(i: int) -> None:
            for d in clones.iterdir():
                shutil.rmtree(d)
            vaults = hdir / "vaults" / "copy.git"
            if vaults.exists():
                run([avfs, "vault", "delete", "copy", "--force"], env=env)
            trash = hdir / "trash"
            if trash.exists():
                shutil.rmtree(trash)

        def clone_avfs(i: int) -> None:
            run([avfs, "vault", "clone", f"{url}/avfs.git", "copy"], env=env)

        def clone_git(i: int) -> None:
            run(["git", "clone", "-q", "--bare", f"{url}/git.git", str(clones / "git.git")])

        log(f"remote {label}: clone from git daemon")
        s = interleave(
            {"avfs": Side(op=clone_avfs, setup=clone_setup), "git": Side(op=clone_git)},
            ctx.repeats.medium,
            ctx.repeats.warmup,
        )
        ctx.emit(
            Result(
                "remote_clone",
                label,
                median(s["avfs"]),
                s["avfs"],
                what="`avfs vault clone` of that repository from the git daemon (a bare vault, forks, origin)",
                baseline="git clone --bare of the same repository, same daemon",
                baseline_ms=median(s["git"]),
                baseline_samples_ms=s["git"],
                target=Target(max_ratio=1.1),
            )
        )
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(10)
        _close(ctx, vault, hdir)
        ctx.fx.done_with(served)
        ctx.fx.done_with(clones)


REMOTE_BENCHMARKS = {"remote": bench_remote}

"""A kept process's calls in process: N pushes and N fetches through the click CLI as
``cli/callproc.keep`` runs them (``main(argv, opened=..., kept=...)``, the apps closed, the
server's environment taken back), with the server's modules loaded (``prewarm.load``):
the median CPU of this process's own Python per call, and of the git processes it ran.

``python -m bench.keptinproc N MODE [--profile FILE]``, MODE ``closed`` (the home opened
and closed by every call, as main's kept process did) or ``kept`` (the home kept open,
:mod:`avfs_git.cli.homekeep`); each push is of one new checkpoint (made by another
process, untimed), each fetch of one new commit pushed to the fetched remote by git.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from avfs_git.cli import callproc, prewarm
from avfs_git.cli.homekeep import KeptHome
from avfs_git.cli.main import main as click_main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int)
    ap.add_argument("mode", choices=("closed", "kept"))
    ap.add_argument("--profile")
    args = ap.parse_args()
    prewarm.load()
    tmp = tempfile.mkdtemp(prefix="keptinproc-")
    env = {**os.environ, "AVFS_HOME": f"{tmp}/home", "AVFS_SERVER": "off", "AVFS_PROGRESS": "never"}
    avfs = os.path.join(os.path.dirname(sys.executable), "avfs")

    def run(*cmd: str) -> None:
        subprocess.run(cmd, env=env, check=True, capture_output=True)

    src = f"{tmp}/src"
    for i in range(200):
        os.makedirs(f"{src}/d{i % 10}", exist_ok=True)
        with open(f"{src}/d{i % 10}/f{i}.txt", "w") as fh:
            fh.write("x" * 200 + str(i))
    run(avfs, "vault", "create", "v", "--from", src)
    for r in ("origin", "up"):
        run("git", "init", "-q", "--bare", f"{tmp}/{r}.git")
        run(avfs, "--vault", "v", "remote", "add", r, f"{tmp}/{r}.git")
        run(avfs, "--vault", "v", "push", r, "main")
    run(avfs, "--vault", "v", "fetch", "up")
    run("git", "clone", "-q", "-b", "main", f"{tmp}/up.git", f"{tmp}/upwork")
    os.environ.clear()
    os.environ.update(env)
    server_env = dict(os.environ)
    kept = KeptHome() if args.mode == "kept" else None
    prof = cProfile.Profile(time.process_time) if args.profile else None
    own: dict[str, list[float]] = {"push": [], "fetch": []}
    kids: dict[str, list[float]] = {"push": [], "fetch": []}
    out = sys.stdout

    def call(argv: list[str], what: str) -> None:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        c0 = time.process_time()
        if prof:
            prof.enable()
        opened: list[object] = []
        with open(os.devnull, "w") as null:
            sys.stdout = null
            code = click_main(argv, opened=opened, kept=kept)  # type: ignore[arg-type]
            sys.stdout = out
        for app in opened:
            app.run_after()  # type: ignore[attr-defined]
            app.close()  # type: ignore[attr-defined]
        callproc._set_environ(server_env)
        callproc._forget_derived()
        if kept is not None:
            callproc._write_back(callproc._wal_grown())
        if prof:
            prof.disable()
        c1 = time.process_time()
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert code == 0, code
        own[what].append((c1 - c0) * 1000)
        kids[what].append((r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1000)

    ident = ["-c", "user.name=a", "-c", "user.email=a@b"]
    for i in range(args.n):
        run(avfs, "--vault", "v", "write", f"r{i}.txt", str(i))
        run(avfs, "--vault", "v", "checkpoint", "save", "-m", f"r{i}")
        call(["--vault", "v", "push", "origin", "main"], "push")
        with open(f"{tmp}/upwork/u{i}", "w") as fh:
            fh.write(str(i))
        run("git", "-C", f"{tmp}/upwork", "add", "-A")
        run("git", "-C", f"{tmp}/upwork", *ident, "commit", "-qm", "u")
        run("git", "-C", f"{tmp}/upwork", "push", "-q", "origin", "HEAD:main")
        call(["--vault", "v", "fetch", "up"], "fetch")
    for what in ("push", "fetch"):
        o, k = own[what][1:], kids[what][1:]
        print(f"{what}: own Python {statistics.median(o):.2f} ms, git {statistics.median(k):.2f} ms")
    if prof and args.profile:
        prof.dump_stats(args.profile)
    if kept is not None:
        kept.close()
    from avfs_git.core.vaults import layers

    layers.unmount(f"{tmp}/home")  # (the home's layers file system, where root made one)
    subprocess.run(["rm", "-rf", tmp], check=False)


if __name__ == "__main__":
    main()

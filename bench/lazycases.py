"""Lazy vault benchmark (docs/lazy.md): `avfs vault clone --lazy` + `avfs mount` until `ls`
of the mount answers, vs `git clone --bare` of the same repository from the same
`git daemon` on 127.0.0.1, in the same run, interleaved; then the first `git status` in the
lazy mount and the objects it fetched.

The repository is real files: the released packages installed in this checkout's venv
(pygit2, rich, click, hypothesis, mypy... thousands of files, a few hundred MB), committed in
three commits (the second and third change a few hundred files), served with
``uploadpack.allowFilter`` and ``uploadpack.allowAnySHA1InWant``.

``--generate N``: instead, N generated small files (directories of 50, one commit), to see
how the figure grows with the number of files (``--generate 10000``, ``--generate 100000``).
``--monorepo``: instead, bench/scalecases.py's monorepo of released sdists (Django's last
three releases beside six large projects: 20,538 files, 236 MB at the tip), served packed.
``--served DIR``: keep the served repository in ``DIR`` (built there when it is missing,
reused otherwise), so that runs at several sizes do not build it again.

Row 2 of issue 30 is measured too: the first `git status` in the lazy mount, right after
`ls` answered (it waits for the mount's index: fuse/settle.py), against the first `git
status` in a mount of a whole vault of the same repository (cloned once, not timed;
mounted, `ls`, `git status`, unmounted in each round).

Run: ``.venv/bin/python -m bench.lazycases [--repeats N] [--baseline SRC] [--generate N |
--monorepo] [--served DIR]``; the result
goes to ``bench/results/lazy-<time>.json`` and is printed. ``--baseline SRC``: another avfs
source tree (``git archive REV avfs_git | tar -x -C SRC``, then ``python -m compileall``),
timed in the same run, interleaved with this one, through this venv's interpreter with
``PYTHONPATH=SRC`` (its own home), for a before/after figure. Both run as
``python -m avfs_git``, or with ``--native`` as each tree's own console script
(``.venv/bin/avfs``, the native program ``make install`` writes: a served call starts no
interpreter; SRC must then be a worktree with its own venv); the load average before and
after goes into the result. ``--prefix P``: the result file's name starts with P.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .remotecases import _daemon

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _build(served: Path, work: Path) -> int:
    """The served repository; the number of files of its tip."""
    site = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"))
    shutil.copytree(site, work, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _git("init", "-q", "-b", "main", str(work))
    ident = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    _git("-C", str(work), "add", "-A")
    _git(*ident, "-C", str(work), "commit", "-q", "-m", "one")
    pys = sorted(p for p in work.rglob("*.py") if p.is_file())
    for n, step in ((2, 7), (3, 11)):
        for p in pys[::step][:300]:
            with open(p, "a") as fh:
                fh.write(f"# change {n}\n")
        _git("-C", str(work), "add", "-A")
        _git(*ident, "-C", str(work), "commit", "-q", "-m", f"change {n}")
    _git("clone", "-q", "--bare", str(work), str(served / "big.git"))
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant"):
        _git("--git-dir", str(served / "big.git"), "config", key, "true")
    return len(_git("-C", str(work), "ls-files").splitlines())


def _generate(served: Path, n: int) -> int:
    """A served repository of ``n`` generated files (``git fast-import``); ``n``."""
    import random

    dest = served / "big.git"
    _git("init", "-q", "--bare", "-b", "main", str(dest))
    rnd = random.Random(n)
    words = [f"w{i}" for i in range(5000)]
    out = []
    for i in range(n):
        lines = "\n".join(" ".join(rnd.choice(words) for _ in range(12)) for _ in range(20))
        body = (lines + f"\n# {i}\n").encode()
        out.append(b"blob\nmark :%d\ndata %d\n%s\n" % (i + 1, len(body), body))
    out.append(b"commit refs/heads/main\ncommitter b <b@e> 1700000000 +0000\ndata 3\none\n")
    for i in range(n):
        d = i // 50
        out.append(b"M 100644 :%d pkg%03d/sub%03d/f%05d.py\n" % (i + 1, d // 100, d % 100, i))
    subprocess.run(["git", "--git-dir", str(dest), "fast-import", "--quiet"], input=b"".join(out), check=True)
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant"):
        _git("--git-dir", str(dest), "config", key, "true")
    _git("--git-dir", str(dest), "repack", "-adq")
    return n


def _served(served: Path, t: Path, args: argparse.Namespace) -> int:
    """The served repository ``served/big.git`` (built unless it is there); its tip's files."""
    if not (served / "big.git").exists():
        if args.monorepo:
            from .scalecases import _build as build_monorepo

            build_monorepo(served, t)
        elif args.generate:
            _generate(served, args.generate)
        else:
            _build(served, t / "work")
    return len(
        _git("--git-dir", str(served / "big.git"), "ls-tree", "-r", "--name-only", "main").splitlines()
    )


def _whole_status(avfs: list[str], env: dict[str, str], name: str, mp: Path) -> float:
    """Mount the whole vault ``name``, `ls`, then the first `git status` (its seconds)."""
    mp.mkdir(exist_ok=True)
    subprocess.run([*avfs, "mount", f"{name}:main", str(mp)], check=True, env=env, capture_output=True)
    os.listdir(mp)
    start = time.perf_counter()
    # (the previous avfs's status is not reported: it may fail, as it did once at 100k files)
    subprocess.run(["git", "status", "--porcelain"], cwd=mp, check="base" not in mp.name, capture_output=True)
    took = time.perf_counter() - start
    subprocess.run([*avfs, "unmount", f"{name}:main"], env=env, capture_output=True)
    return took


def _objects(git_dir: Path) -> int:
    out = _git("--git-dir", str(git_dir), "count-objects", "-v")
    c = dict(line.split(": ") for line in out.splitlines())
    return int(c["count"]) + int(c["in-pack"])


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _lazy_round(
    avfs: list[str],
    env: dict[str, str],
    url: str,
    name: str,
    mp: Path,
    home: Path,
    phases: list[float],
    settled: bool = False,
    cpu_s: list[float] | None = None,
    daemon_cpu_s: list[float] | None = None,
) -> tuple[float, float, int]:
    """`vault clone --lazy` + `mount` + `ls`: (its seconds, the first `git status`'s seconds,
    the objects that status fetched); unmounted after. The clone's and the mount's (with
    `ls`) seconds are appended to ``phases`` (the clone's, the mount command's, `ls`'s). ``settled``: `git status` is timed once the
    mount's index is written (the mount's `.git` opens then: fuse/settle.py), and the wait
    for that is appended to ``phases`` too."""
    mp.mkdir()
    cpu = _children_cpu()
    start = time.perf_counter()
    subprocess.run([*avfs, "vault", "clone", "--lazy", url, name], check=True, env=env, capture_output=True)
    cloned = time.perf_counter()
    subprocess.run([*avfs, "mount", f"{name}:main", str(mp)], check=True, env=env, capture_output=True)
    listing = time.perf_counter()
    os.listdir(mp)
    took = time.perf_counter() - start
    phases += [cloned - start, listing - cloned, start + took - listing]
    if cpu_s is not None:  # the CPU time of the two commands and their git (not the daemon's)
        cpu_s.append(_children_cpu() - cpu)
    vault = home / "vaults" / f"{name}.git"
    pid = json.loads((vault / "avfs" / "mounts" / "main.json").read_text())["pid"]
    ticks = _cpu_ticks(pid)
    if settled:
        start = time.perf_counter()
        (mp / ".git").read_bytes()
        phases.append(time.perf_counter() - start)
    # (after the wait in a settled round: the mount's own fetch of the .gitignore files, which
    # an unsettled round's status waits for, is not the status's)
    before = _objects(vault)
    start = time.perf_counter()
    # (the previous avfs's status is not reported: it may fail, as it did once at 100k files)
    subprocess.run(["git", "status", "--porcelain"], cwd=mp, check="base" not in mp.name, capture_output=True)
    status = time.perf_counter() - start
    fetched = _objects(vault) - before
    if daemon_cpu_s is not None:  # the daemon's CPU from `ls` until that status answered
        daemon_cpu_s.append((_cpu_ticks(pid) - ticks) / os.sysconf("SC_CLK_TCK"))
    subprocess.run([*avfs, "unmount", f"{name}:main"], env=env, capture_output=True)
    return took, status, fetched


def _cpu_ticks(pid: int) -> int:
    """utime + stime of process ``pid`` (clock ticks)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline", help="another avfs source tree to time in the same run")
    ap.add_argument("--generate", type=int, help="N generated files instead of the venv's packages")
    ap.add_argument("--monorepo", action="store_true", help="bench/scalecases.py's monorepo instead")
    ap.add_argument("--served", help="keep (or reuse) the served repository in this directory")
    # the homes' warm CLI servers on (started first): the commands served, the mount daemon
    # forked from the server where the tree does that
    ap.add_argument("--warm-server", action="store_true")
    # each tree's own console script (`make install`'s native program, as a person types
    # `avfs`; the baseline a worktree with its own venv), not `python -m avfs_git`
    ap.add_argument("--native", action="store_true")
    ap.add_argument("--prefix", default="", help="put before the result file's name")
    args = ap.parse_args()
    avfs = [str(ROOT / ".venv" / "bin" / "python"), "-m", "avfs_git"]
    base_avfs = avfs
    if args.native:
        avfs = [str(ROOT / ".venv" / "bin" / "avfs")]
        base_avfs = [str(Path(args.baseline or ROOT).resolve() / ".venv" / "bin" / "avfs")]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="avfs-bench-lazy-") as tmp:
        t = Path(tmp)
        # not in the checkout: `python -m avfs_git` would import this tree's package from the
        # working directory, ahead of the baseline's PYTHONPATH
        os.chdir(t)
        served = Path(args.served).resolve() if args.served else t / "served"
        served.mkdir(parents=True, exist_ok=True)
        files = _served(served, t, args)
        daemon, base = _daemon(served)
        url = f"{base}/big.git"
        lazy_s: list[float] = []
        base_s: list[float] = []
        phases: dict[str, list[float]] = {"this": [], "baseline": []}
        cpu: dict[str, list[float]] = {"this": [], "baseline": []}
        daemon_cpu: dict[str, list[float]] = {"this": [], "baseline": []}  # from ls to status
        base_status_s: list[float] = []
        fetched_settled: list[int] = []
        full_s: list[float] = []
        status_s: list[float] = []
        fetched: list[int] = []
        whole_status_s: list[float] = []
        settle_s: list[float] = []  # (clone, mount, ls, wait for the index) per round
        settled_status_s: list[float] = []
        # one home for every repeat (its set-up is not a clone's cost); no layers file
        # system, so that the temporary directory can be removed
        home, base_home = t / "home", t / "base-home"
        server = "auto" if args.warm_server else "off"
        common = {"AVFS_PROGRESS": "never", "AVFS_SERVER": server, "AVFS_LAYERS": "off"}
        env = {**os.environ, **common, "AVFS_HOME": str(home)}
        base_env = {**os.environ, **common, "AVFS_HOME": str(base_home), "PYTHONPATH": args.baseline or ""}
        if args.native:  # (a PYTHONPATH would make the native program hand every call to Python)
            base_env.pop("PYTHONPATH")
        if args.warm_server:
            for cmd, e in ((avfs, env), (base_avfs, base_env)):
                Path(e["AVFS_HOME"]).mkdir()
                subprocess.run([*cmd, "server", "start"], check=True, env=e, capture_output=True)
        try:
            subprocess.run([*avfs, "vault", "clone", url, "whole"], check=True, env=env, capture_output=True)
            for i in range(args.repeats):
                whole_status_s.append(_whole_status(avfs, env, "whole", t / "whole-mnt"))
                # git clone --bare
                dest = t / f"full-{i}.git"
                start = time.perf_counter()
                subprocess.run(["git", "clone", "-q", "--bare", url, str(dest)], check=True)
                full_s.append(time.perf_counter() - start)
                shutil.rmtree(dest)
                # avfs vault clone --lazy + mount until ls answers: this tree and the baseline,
                # which goes first in every other round (the one right after the full clone
                # meets its writeback)
                sides = ["this", "baseline"] if args.baseline else ["this"]
                for side in sides if i % 2 == 0 else sides[::-1]:
                    if side == "this":
                        took, status, got = _lazy_round(
                            avfs, env, url, f"big{i}", t / f"mnt-{i}", home, phases["this"],
                            cpu_s=cpu["this"], daemon_cpu_s=daemon_cpu["this"],
                        )  # fmt: skip
                        lazy_s.append(took)
                        status_s.append(status)
                        fetched.append(got)
                        _, status, got = _lazy_round(
                            avfs, env, url, f"set{i}", t / f"set-{i}", home, settle_s, settled=True
                        )
                        settled_status_s.append(status)
                        fetched_settled.append(got)
                    else:
                        took, status, _ = _lazy_round(
                            base_avfs, base_env, url, f"big{i}", t / f"base-mnt-{i}", base_home,
                            phases["baseline"], cpu_s=cpu["baseline"], daemon_cpu_s=daemon_cpu["baseline"],
                        )  # fmt: skip
                        base_s.append(took)
                        base_status_s.append(status)
        finally:
            daemon.terminate()
            daemon.wait(10)
            if args.warm_server:
                for cmd, e in ((avfs, env), (base_avfs, base_env)):
                    subprocess.run([*cmd, "server", "stop"], env=e, capture_output=True)
            os.chdir(ROOT)
    result = {
        "case": "lazy clone + mount until ls answers vs git clone --bare (same git daemon, same run)",
        "files": files,
        "repository": "monorepo"
        if args.monorepo
        else f"generated {args.generate}"
        if args.generate
        else "venv",
        "repeats": args.repeats,
        "warm_server": args.warm_server,
        "native": args.native,
        "git_clone_bare_s_median": statistics.median(full_s),
        "lazy_clone_mount_ls_s_median": statistics.median(lazy_s),
        "ratio": statistics.median(lazy_s) / statistics.median(full_s),
        "first_git_status_in_lazy_mount_s_median": statistics.median(status_s),
        "objects_fetched_by_first_git_status": max(fetched_settled),
        "objects_fetched_while_status_waited_for_the_index": max(fetched),
        "daemon_cpu_s_from_ls_to_status_median": statistics.median(daemon_cpu["this"]),
        "first_git_status_in_whole_vault_mount_s_median": statistics.median(whole_status_s),
        "first_git_status_ratio": statistics.median(status_s) / statistics.median(whole_status_s),
        "first_git_status_in_lazy_mount_s": status_s,
        "lazy_mount_index_wait_after_ls_s_median": statistics.median(settle_s[3::4]),
        "first_git_status_once_index_written_s_median": statistics.median(settled_status_s),
        "first_git_status_once_index_written_ratio": statistics.median(settled_status_s)
        / statistics.median(whole_status_s),
        "git_clone_bare_s": full_s,
        "lazy_clone_mount_ls_s": lazy_s,
        "load_average_before_after": [load_before[0], os.getloadavg()[0]],
        "clone_s_median": statistics.median(phases["this"][0::3]),
        "mount_s_median": statistics.median(phases["this"][1::3]),
        "ls_s_median": statistics.median(phases["this"][2::3]),
        "clone_mount_cpu_s_median": statistics.median(cpu["this"]),
        "mount_ls_s_median": statistics.median(
            [a + b for a, b in zip(phases["this"][1::3], phases["this"][2::3], strict=True)]
        ),
    }
    if base_s:
        result |= {
            "baseline": args.baseline,
            "baseline_lazy_clone_mount_ls_s_median": statistics.median(base_s),
            "baseline_ratio": statistics.median(base_s) / statistics.median(full_s),
            "baseline_lazy_clone_mount_ls_s": base_s,
            "baseline_clone_s_median": statistics.median(phases["baseline"][0::3]),
            "baseline_mount_s_median": statistics.median(phases["baseline"][1::3]),
            "baseline_ls_s_median": statistics.median(phases["baseline"][2::3]),
            "baseline_clone_mount_cpu_s_median": statistics.median(cpu["baseline"]),
            "baseline_daemon_cpu_s_from_ls_to_status_median": statistics.median(daemon_cpu["baseline"]),
            "baseline_first_git_status_in_lazy_mount_s_median": statistics.median(base_status_s),
            "baseline_first_git_status_in_lazy_mount_s": base_status_s,
            "baseline_mount_ls_s_median": statistics.median(
                [a + b for a, b in zip(phases["baseline"][1::3], phases["baseline"][2::3], strict=True)]
            ),
        }
    out = ROOT / "bench" / "results" / time.strftime(f"{args.prefix}lazy-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

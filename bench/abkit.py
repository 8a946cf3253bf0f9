"""What the A/B scripts (``bench/*ab.py``) share: their sides, the interleaved order of
their rounds, the machine's load, the small tree they seed, timing a command and the CPU of
a process, and where and how their results are written.

Each script times two (or more) avfs checkouts in the same run, interleaved, so that every
side sees the same moment's load: ``this`` tree against ``--baseline SRC``
(:func:`baseline_args`, :func:`this_and_baseline`), or ``NAME=WORKTREE`` sides
(:func:`worktrees`), each with its own ``make install``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .env import rmtree, utc_stamp

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
T = TypeVar("T")


def baseline_args(ap: argparse.ArgumentParser, rounds: int) -> None:
    """``--baseline SRC`` (required) and ``--rounds N`` (default ``rounds``)."""
    ap.add_argument("--baseline", required=True, help="another avfs source tree, timed in the same run")
    ap.add_argument("--rounds", type=int, default=rounds)


def this_and_baseline(baseline: str) -> dict[str, str]:
    """The two sides: this tree and ``baseline``, by name."""
    return {"this": str(ROOT), "baseline": str(Path(baseline).resolve())}


def worktrees(specs: Sequence[str]) -> dict[str, str]:
    """``NAME=WORKTREE`` arguments as name -> worktree, in their order."""
    return dict(s.split("=", 1) for s in specs)


def avfs_bin(worktree: str) -> str:
    """A worktree's console script as ``make install`` wrote it."""
    return str(Path(worktree, ".venv", "bin", "avfs"))


@contextlib.contextmanager
def scratch(prefix: str, *, chdir: bool = True, parent: Path | None = None) -> Iterator[Path]:
    """A temporary directory (in ``parent``, else the system's), removed at the end (the
    layers file systems of the homes in it unmounted first); with ``chdir``, the current
    directory meanwhile: a command run from a checkout (``-m avfs_git``, a server it
    starts) would import that checkout's package ahead of its own."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    here = os.getcwd()
    try:
        if chdir:
            os.chdir(tmp)
        yield tmp
    finally:
        os.chdir(here)
        rmtree(tmp)


def side_envs(tmp: Path, trees: dict[str, str], **extra: str) -> dict[str, dict[str, str]]:
    """Each side's environment: a home of its own under ``tmp``, its tree's package first
    (``PYTHONPATH``: run from ``tmp``, not a checkout, whose package ``-m avfs_git`` would
    import ahead of it), the home's server answering, no progress bars; and ``extra``."""
    return {
        side: {**os.environ, "AVFS_HOME": str(tmp / f"home-{side}"), "AVFS_PROGRESS": "never",
               "AVFS_SERVER": "auto", "PYTHONPATH": tree, **extra}
        for side, tree in trees.items()
    }  # fmt: skip


# the start of a side's timed in-process script: vault ``p`` of the home ``sys.argv[1]``
# names, opened as a process with the mount side does (``v``)
VAULT_P = """
import sys, time
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
v = Home(sys.argv[1], mounts=MOUNT_SIDE).vault("p")
"""


def changed_files_args() -> argparse.Namespace:
    """The arguments of an A/B over a mounted fork where ``--changed`` of ``--files`` files
    change each round (bench/adopt100ab.py, bench/livewrite100ab.py): the sides
    (NAME=WORKTREE), ``--rounds``, ``--files``, ``--changed``, ``--backends``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("sides", nargs="+", help="NAME=WORKTREE")
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--changed", type=int, default=100)
    ap.add_argument("--backends", default="overlay,fuse")
    return ap.parse_args()


def mounted_sides(
    tmp: Path, trees: dict[str, str], backend: str, src: Path
) -> tuple[dict[str, dict[str, str]], dict[str, list[str]], dict[str, Path]]:
    """For each side, a home of its own under ``tmp`` (no server, no progress bars, its tree's
    package first): vault ``p`` made from ``src``, fork ``p:f1`` mounted on ``backend``
    at ``tmp/mp-BACKEND-SIDE``; (environments, avfs command heads, mount points), by side.
    The caller unmounts them."""
    envs: dict[str, dict[str, str]] = {}
    avfs: dict[str, list[str]] = {}
    mps: dict[str, Path] = {}
    for side, tree in trees.items():
        env = {**os.environ, "AVFS_HOME": str(tmp / f"home-{backend}-{side}"), "AVFS_SERVER": "off",
               "AVFS_PROGRESS": "never", "PYTHONPATH": tree}  # fmt: skip
        envs[side] = env
        avfs[side] = [str(Path(tree, ".venv", "bin", "python")), "-m", "avfs_git"]
        call(avfs[side], env, "vault", "create", "p", "--from", str(src))
        call(avfs[side], env, "vault", "fork", "p:main", "f1")
        mps[side] = tmp / f"mp-{backend}-{side}"
        mps[side].mkdir()
        call(avfs[side], env, "--vault", "p:f1", "mount", "--backend", backend, str(mps[side]))
    return envs, avfs, mps


def call(head: list[str], env: dict[str, str], *args: str) -> str:
    """``head + args`` run to its end (CalledProcessError when it fails); its stdout."""
    return subprocess.run([*head, *args], env=env, check=True, capture_output=True, text=True).stdout


def order(names: Sequence[T], i: int) -> list[T]:
    """Round ``i``'s order: ``names`` rotated by ``i`` (two sides: each goes first in
    every other round)."""
    k = i % len(names)
    return [*names[k:], *names[:k]]


def warm_rounds(names: Sequence[T], rounds: int, loads: list[float]) -> Iterator[tuple[int, T]]:
    """(round, side) of an untimed round 0 (it warms the caches) and ``rounds`` rounds
    after it, each in :func:`order`; the load appended to ``loads`` as each round starts,
    and once more at the end."""
    for i in range(rounds + 1):
        loads.append(load())
        for n in order(names, i):
            yield i, n
    loads.append(load())


def load() -> float:
    """The 1-minute load average now."""
    return os.getloadavg()[0]


def seed_tree(src: Path, files: int = 50, dirs: int = 5) -> str:
    """A small tree of ``files`` text files in ``dirs`` directories at ``src`` (the forks
    the A/B scripts mount and run in); its path."""
    for i in range(files):
        (src / f"d{i % dirs}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % dirs}" / f"f{i}.txt").write_text(f"file {i}\n" * 20)
    return str(src)


def children_cpu_s() -> float:
    """The CPU (user + system) of this process' reaped children so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def proc_cpu_s(pid: int, *, reaped: bool = True) -> float:
    """The CPU of process ``pid`` from ``/proc/PID/stat`` (ticks of 10 ms): its own, and
    with ``reaped`` the children it has reaped (utime + stime + cutime + cstime)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11 : 15 if reaped else 13]) / os.sysconf("SC_CLK_TCK")


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> str:
    """Run ``cmd``; its stdout (RuntimeError, with its output, when it fails)."""
    p = subprocess.run(cmd, capture_output=True, env=env, cwd=cwd, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd}: {p.returncode}\n{p.stdout}{p.stderr}")
    return p.stdout


def timed_ms(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """The wall time of :func:`run` of ``cmd``, in ms."""
    t0 = time.perf_counter()
    run(cmd, env)
    return (time.perf_counter() - t0) * 1000


def median_of_ratios(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The median of the per-round ratios ``xs[i] / ys[i]``."""
    return statistics.median(a / b for a, b in zip(xs, ys, strict=True))


def stamped(prefix: str) -> Path:
    """``bench/results/<prefix>-<UTC time>.json``."""
    return RESULTS / f"{prefix}-{utc_stamp()}.json"


def write_json(path: Path, doc: Any, indent: int = 2, *, announce: bool = False) -> Path:
    """``doc`` as JSON at ``path``; with ``announce``, ``wrote PATH`` printed."""
    path.write_text(json.dumps(doc, indent=indent) + "\n")
    if announce:
        print(f"wrote {path}")
    return path


def print_loads(loads: Sequence[float]) -> None:
    print(f"load (1 min) {min(loads):.1f}-{max(loads):.1f}")


def summary_vs_git(wall: dict[str, dict[str, list[float]]], names: Sequence[str]) -> dict[str, Any]:
    """Per operation and side: the median wall time and the median of the per-round ratios
    against the side ``git``, each printed as a line."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for op, sides in wall.items():
        summary[op] = {}
        for n in names:
            summary[op][n] = {
                "wall_ms": statistics.median(sides[n]),
                "median_of_ratios": median_of_ratios(sides[n], sides["git"]),
            }
            print(f"{op:6} {n:8} wall {summary[op][n]['wall_ms']:7.1f} ms  / git (median of ratios)"
                  f" {summary[op][n]['median_of_ratios']:.2f}x")  # fmt: skip
    return summary


def baseline_result(
    prefix: str,
    case: str,
    args: argparse.Namespace,
    load_before: float,
    median: Any,
    per_round: Any,
    *,
    head: dict[str, Any] | None = None,
    tail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The result of a ``--baseline`` script (``head`` after its baseline, ``tail`` after
    its medians), written to :func:`stamped` ``prefix``; its medians (``tail`` too) and the
    load printed."""
    result = {
        "case": case,
        "baseline": args.baseline,
        **(head or {}),
        "rounds": args.rounds,
        "load_average_before_after": [load_before, load()],
        "median": median,
        **(tail or {}),
        "per_round": per_round,
    }
    write_json(stamped(prefix), result)
    print_json({"median": median, **(tail or {}), "load": result["load_average_before_after"]})
    return result


def print_json(doc: Any) -> None:
    """``doc`` on stdout, indented (what a script says of its result)."""
    json.dump(doc, sys.stdout, indent=2)
    print()


@contextlib.contextmanager
def api_workers(tmp: Path, trees: dict[str, str], code: str) -> Iterator[dict[str, Worker]]:
    """Per side, a home in ``tmp`` holding vault ``v`` (from a :func:`seed_tree`, fork
    ``main``) and a :class:`Worker` of the side's tree running ``code`` with the home's path
    as its argument; at the end, the workers closed and each home's layers file system
    unmounted."""
    workers = {}
    try:
        for side, tree in trees.items():
            home = tmp / f"home-{side}"
            env = {**os.environ, "PYTHONPATH": tree, "AVFS_HOME": str(home), "AVFS_PROGRESS": "never"}
            subprocess.run(
                [str(Path(tree) / ".venv/bin/python"), "-m", "avfs_git", "vault", "create", "v", "--from",
                 seed_tree(tmp / f"src-{side}")],
                env=env, check=True, capture_output=True, cwd=tmp,
            )  # fmt: skip
            workers[side] = Worker(tree, code, [str(home)], env, str(tmp))
        yield workers
    finally:
        from avfs_git.core.vaults import layers

        for w in workers.values():
            w.close()
        for side in trees:
            layers.unmount(str(tmp / f"home-{side}"))  # (its image's file system)


def api_rounds(
    code: str, one: Callable[[Worker], dict[str, Any]], rounds: int
) -> tuple[argparse.Namespace, float, dict[str, list[dict[str, Any]]]]:
    """A ``--baseline`` script over the Python API: its arguments (:func:`baseline_args`,
    ``rounds`` by default), a worker per side running ``code`` (:func:`api_workers`), ``one``
    of each worker once untimed (the warm-up), then ``--rounds`` rounds in :func:`order`.
    Returns the arguments, the load before, and each side's answers of ``one`` by round."""
    ap = argparse.ArgumentParser()
    baseline_args(ap, rounds)
    args = ap.parse_args()
    trees = this_and_baseline(args.baseline)
    answers: dict[str, list[dict[str, Any]]] = {side: [] for side in trees}
    load_before = load()
    with scratch("avfs-bench-api-", chdir=False) as tmp, api_workers(tmp, trees, code) as workers:
        for side in trees:
            one(workers[side])
        for i in range(args.rounds):
            for side in order(list(trees), i):
                answers[side].append(one(workers[side]))
    return args, load_before, answers


class Worker:
    """A process of one tree's Python running ``code`` (with ``args``), asked one line at a
    time and answering one JSON line each; it says ``ready`` first."""

    def __init__(self, tree: str, code: str, args: list[str], env: dict[str, str], cwd: str) -> None:
        self.proc = subprocess.Popen(
            [str(Path(tree) / ".venv/bin/python"), "-c", code, *args],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=cwd,
        )  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def ask(self, what: str, refused: str) -> dict[str, Any]:
        """The answer to ``what``; RuntimeError(``what: refused``) when it is not ``ok``."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        got: dict[str, Any] = json.loads(self.proc.stdout.readline())
        if not got["ok"]:
            raise RuntimeError(f"{what}: {refused}")
        return got

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def other_hand(vault: str, fork: str, files: dict[str, str], tmp: Path) -> None:
    """Another hand's commit of ``files`` (path -> text) onto ``fork``'s branch of the bare
    ``vault``: `git --git-dir` with an index of its own in ``tmp`` (removed after), the
    blobs written in one `hash-object --stdin-paths`, `commit-tree`, `update-ref`."""
    index = tmp / "other-hand-index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}

    def g(*args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            ["git", "--git-dir", vault, *args],
            env=env,
            input=stdin,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    old = g("rev-parse", f"refs/heads/{fork}")
    g("read-tree", old)
    paths = list(files)
    texts = []
    for i, p in enumerate(paths):
        f = tmp / f"other-hand-{i}"
        f.write_text(files[p])
        texts.append(str(f))
    oids = g("hash-object", "-w", "--stdin-paths", stdin="\n".join(texts) + "\n").split()
    info = "".join(f"100644 {o}\t{p}\n" for o, p in zip(oids, paths, strict=True))
    g("update-index", "--index-info", stdin=info)
    new = g("commit-tree", g("write-tree"), "-p", old, "-m", "another hand")
    g("update-ref", f"refs/heads/{fork}", new, old)
    index.unlink()


def ab_report(args: argparse.Namespace, got: dict[str, dict[str, list[float]]], load: Any) -> dict[str, Any]:
    """Two sides' (``args.a``, ``args.b``) timings per case as medians and the b/a ratio,
    printed and written to ``args.out`` when given (the A/B scripts' common report)."""
    report = {
        "a": args.a,
        "b": args.b,
        "rounds": args.rounds,
        "load": load,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cases": {
            c: {
                "a_ms": statistics.median(v["a"]),
                "b_ms": statistics.median(v["b"]),
                "ratio_b_over_a": statistics.median(v["b"]) / statistics.median(v["a"]),
                "a_all": v["a"],
                "b_all": v["b"],
            }
            for c, v in got.items()
        },
    }
    text = json.dumps(report, indent=1)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    print(text)
    return report

"""Issue 31's long session, measured at points along it: what `status`, `checkpoint save`
and a warm `proxy exec -- true` cost after 1, 100, 500, 1,000 checkpoints in one mount,
on each backend, against `git status` / `git commit -a` of the same tree in a plain
checkout, and what grows with the session (counts, not times).

``python -m bench.longsess [--backends overlay,fuse] [--points 1,100,500,1000]
[--rounds 5] [--files 10000] [--batch 20] [--out FILE]``

A tree of ``--files`` files (100 directories) is imported into one home per backend and
cloned for git. The session is batches of small changes made alike on every side, each
followed by a named checkpoint through the CLI (``checkpoint save cNNNN``, as an agent
calls it; git: ``add -A && commit``): ``--batch`` new files in existing directories, two
earlier session files and one of the tree's files edited, every 10th batch one earlier
session file deleted, every 25th batch a new directory of 5 files. At each point, each
of ``--rounds`` rounds changes 10 files (5 of the tree's, 5 of the session's) on every
side and times, in a rotating order: `avfs --json status` / `git status --porcelain`;
`avfs checkpoint save` / `git commit -qam`; `avfs --json proxy exec -- true` (warm) /
`true`. Wall time and CPU: every process of a side (its CLI server, its mount daemon,
the calls and what they run) is in a cpuacct cgroup of the side's own, and a call's CPU
is the group's growth from before it to ``--settle`` seconds after its answer.

Then, once a point: the counts (the upper layer's entries, the overlay database's rows
by table, the status mark's tops, kept times, refs and loose ref files, reflog lines,
packs and loose objects, the operation log's rows, the mount daemon's open descriptors and those of removed packs) and the system calls of one status
and one checkpoint run in their own process (``AVFS_SERVER=off``, ``strace -c -f``),
with the mount daemon's over the same call (``strace -c -f -p``).
Needs root (cgroups, strace of the daemon).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from . import abkit as ab
from .spareab import CGROUPS

DIRS = 100


class Side:
    def __init__(self, name: str, root: Path, avfs: str, src: Path, env: dict[str, str]) -> None:
        self.name, self.avfs = name, avfs
        self.env = dict(env)
        self.group = CGROUPS / f"avfs-longsess-{os.getpid()}-{name}"
        self.group.mkdir()
        self.dir = root / f"mnt-{name}"
        if name == "git":
            ab.run(["git", "clone", "-q", str(src), str(self.dir)], self.env)
            return
        self.env["AVFS_HOME"] = str(root / f"home-{name}")
        self.head = [avfs, "--json", "--vault", "s:main"]
        self.call([avfs, "vault", "create", "s", "--from", str(src)])
        self.dir.mkdir()
        self.call([avfs, "mount", "--backend", name, "s:main", str(self.dir)])

    def enter(self) -> None:
        (self.group / "cgroup.procs").write_text(str(os.getpid()))

    def usage_ms(self) -> float:
        return int((self.group / "cpuacct.usage").read_text()) / 1e6

    def call(self, argv: list[str], cwd: Path | None = None) -> str:
        p = subprocess.run(
            argv, cwd=cwd, env=self.env, capture_output=True, text=True, preexec_fn=self.enter, timeout=900
        )
        if p.returncode != 0:
            raise RuntimeError(f"{self.name}: {argv}: {p.returncode}\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
        return p.stdout

    def timed(self, argv: list[str], settle: float, cwd: Path | None = None) -> tuple[float, float, str]:
        """(wall ms, CPU ms of the side's group to ``settle`` s after the answer, stdout)."""
        u0, t0 = self.usage_ms(), time.perf_counter()
        out = self.call(argv, cwd)
        wall = (time.perf_counter() - t0) * 1e3
        time.sleep(settle)
        return wall, self.usage_ms() - u0, out

    def checkpoint(self, name: str) -> None:
        if self.name == "git":
            self.call(["git", "add", "-A"], self.dir)
            self.call(["git", "commit", "-qm", name], self.dir)
        else:
            self.call([*self.head, "checkpoint", "save", name])

    def vault(self) -> Path:
        return Path(self.env["AVFS_HOME"], "vaults", "s.git")

    def state_dir(self) -> Path | None:
        for p in Path(self.env["AVFS_HOME"], "layers", "ws").glob("*/overlay.db"):
            if p.parent.joinpath("changes.db").exists():
                return p.parent
        return None

    def daemon_pid(self) -> int:
        return int(json.loads(self.vault().joinpath("avfs", "mounts", "main.json").read_text())["pid"])

    def close(self) -> None:
        if self.name != "git":
            with contextlib.suppress(Exception):
                self.call([self.avfs, "unmount", "s:main"])
            with contextlib.suppress(Exception):
                self.call([self.avfs, "server", "stop"])
        for _ in range(300):
            try:
                self.group.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def make_tree(src: Path, files: int) -> None:
    for i in range(files):
        d = src / f"d{i % DIRS:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.txt").write_text(f"file {i}\n" + "text of the tree\n" * 30)


class Session:
    """The batches, alike on every side."""

    def __init__(self, files: int, batch: int) -> None:
        self.files, self.batch = files, batch
        self.alive: list[str] = []  # session files not deleted
        self.k = 0

    def ops(self) -> list[tuple[str, str | None]]:
        k, out = self.k, []
        self.k += 1
        for f in range(self.batch):
            p = f"d{(k * 7 + f) % DIRS:03d}/s{k:05d}-{f:02d}.txt"
            out.append((p, f"batch {k} file {f}\n"))
            self.alive.append(p)
        for j in (3, 11):
            if len(self.alive) > j + self.batch:
                out.append((self.alive[-(j + self.batch)], f"edited in batch {k}\n"))
        i = (k * 37) % self.files
        out.append((f"d{i % DIRS:03d}/f{i:06d}.txt", f"tree file edited in batch {k}\n"))
        if k % 10 == 9 and len(self.alive) > 2 * self.batch:
            out.append((self.alive.pop(len(self.alive) // 2), None))
        if k % 25 == 24:
            for f in range(5):
                p = f"n{k:05d}/sub/f{f}.txt"
                out.append((p, f"new dir {k} {f}\n"))
                self.alive.append(p)
        return out

    def probe_paths(self) -> list[str]:
        base = [f"d{(i * 13) % DIRS:03d}/f{i * 13:06d}.txt" for i in range(1, 6)]
        n = len(self.alive)
        return base + [self.alive[(n * j) // 6] for j in range(1, 6)]


def apply(root: Path, ops: list[tuple[str, str | None]]) -> None:
    for rel, text in ops:
        p = root / rel
        if text is None:
            p.unlink()
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def counts(side: Side) -> dict[str, Any]:
    out: dict[str, Any] = {}
    v = side.vault()
    out["refs"] = int(
        subprocess.run(["git", "-C", str(v), "for-each-ref"], capture_output=True, text=True).stdout.count(
            "\n"
        )
    )
    out["loose_ref_files"] = sum(len(fs) for _, _, fs in os.walk(v / "refs"))
    out["reflog_lines"] = sum(
        Path(d, f).read_bytes().count(b"\n") for d, _, fs in os.walk(v / "logs") for f in fs
    )
    pk = v / "objects" / "pack"
    out["packs"] = len(list(pk.glob("*.pack")))
    out["loose_objects"] = sum(
        len(fs) for d, _, fs in os.walk(v / "objects") if re.fullmatch(r"[0-9a-f]{2}", os.path.basename(d))
    )
    st = side.state_dir()
    if st is not None:
        db = sqlite3.connect(f"file:{st / 'overlay.db'}?mode=ro", uri=True)
        for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            out[f"rows_{t}"] = db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
        mark = db.execute("SELECT value FROM meta WHERE key='upper_mark'").fetchone()
        with contextlib.suppress(Exception):
            out["mark_tops"] = len(json.loads(mark[0])["tops"]) if mark and mark[0] else None
        db.close()
        for sub in ("upper", "files"):
            if (st / sub).is_dir():
                out[f"{sub}_entries"] = sum(len(ds) + len(fs) for _, ds, fs in os.walk(st / sub))
        ch = st / "changes.db"
        if ch.exists():
            db = sqlite3.connect(f"file:{ch}?mode=ro", uri=True)
            out["rows_change_events"] = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            db.close()
    op = v / "avfs" / "oplog.db"
    if op.exists():
        db = sqlite3.connect(f"file:{op}?mode=ro", uri=True)
        out["rows_oplog"] = db.execute("SELECT COUNT(*) FROM ops").fetchone()[0]
        db.close()
    with contextlib.suppress(Exception):  # the daemon's open files: packs a repack removed among them
        links = [os.readlink(f) for f in Path(f"/proc/{side.daemon_pid()}/fd").iterdir()]
        out["daemon_fds"] = len(links)
        out["daemon_fds_deleted_packs"] = sum(
            1 for ln in links if "/objects/pack/" in ln and "(deleted)" in ln
        )
    idx = side.dir / ".git"
    with contextlib.suppress(OSError):
        gd = idx.read_text().split("gitdir:", 1)[1].strip()
        out["mount_index_bytes"] = os.path.getsize(os.path.join(gd, "index"))
    return out


def _strace_summary(path: Path) -> dict[str, int]:
    calls: dict[str, int] = {}
    for ln in path.read_text().splitlines():
        f = ln.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] not in ("total",):
            with contextlib.suppress(ValueError):
                calls[f[-1]] = int(f[3])
    return dict(sorted(calls.items(), key=lambda kv: -kv[1]))


def straced(side: Side, argv: list[str], tmp: Path, tag: str) -> dict[str, Any]:
    """System calls of ``argv`` in its own process, and of the mount daemon meanwhile."""
    env = {**side.env, "AVFS_SERVER": "off"}
    cf, df = tmp / f"{tag}-call.strace", tmp / f"{tag}-daemon.strace"
    d = subprocess.Popen(
        ["strace", "-c", "-f", "-o", str(df), "-p", str(side.daemon_pid())], stderr=subprocess.DEVNULL
    )
    time.sleep(1.0)
    subprocess.run(["strace", "-c", "-f", "-o", str(cf), *argv], env=env, capture_output=True, check=True)
    time.sleep(0.5)
    d.send_signal(2)
    d.wait(timeout=30)
    call, daemon = _strace_summary(cf), _strace_summary(df)
    return {
        "call_total": sum(call.values()), "call_top": dict(list(call.items())[:12]),
        "daemon_total": sum(daemon.values()), "daemon_top": dict(list(daemon.items())[:12]),
    }  # fmt: skip


def probe(
    sides: list[Side], sess: Session, rounds: int, settle: float, point: int, tmp: Path
) -> dict[str, Any]:
    res: dict[str, Any] = {"point": point, "loads": [], "wall": {}, "cpu": {}}
    for s in sides:
        res["wall"][s.name] = {"status": [], "checkpoint": [], "exec": []}
        res["cpu"][s.name] = {"status": [], "checkpoint": [], "exec": []}
    paths = sess.probe_paths()
    for i in range(rounds + 1):  # round 0 untimed: warms
        res["loads"].append(ab.load())
        for s in sides:
            apply(s.dir, [(p, f"probe {point} round {i} of {p}\n") for p in paths])
        for what in ("status", "checkpoint", "exec"):
            for s in ab.order(sides, i + point):
                if s.name == "git":
                    argv = {
                        "status": ["git", "status", "--porcelain"],
                        "checkpoint": ["git", "commit", "-qam", f"p{point}r{i}"],
                        "exec": ["true"],
                    }[what]
                    w, c, _ = s.timed(argv, settle, s.dir)
                else:
                    argv = {
                        "status": [*s.head, "status"],
                        "checkpoint": [*s.head, "checkpoint", "save", "-m", f"p{point}r{i}"],
                        "exec": [*s.head, "proxy", "exec", "--", "true"],
                    }[what]
                    w, c, out = s.timed(argv, settle)
                    if what == "status" and i == 1:
                        res.setdefault("listed", {})[s.name] = len(json.loads(out)["changes"])
                if i:
                    res["wall"][s.name][what].append(round(w, 2))
                    res["cpu"][s.name][what].append(round(c, 2))
    res["loads"].append(ab.load())
    res["median_wall"] = {s: {k: statistics.median(v) for k, v in d.items()} for s, d in res["wall"].items()}
    res["median_cpu"] = {s: {k: statistics.median(v) for k, v in d.items()} for s, d in res["cpu"].items()}
    res["counts"] = {s.name: counts(s) for s in sides if s.name != "git"}
    res["strace"] = {}
    for s in sides:
        if s.name == "git":
            continue
        apply(s.dir, [(p, f"strace {point} of {p}\n") for p in paths])
        res["strace"][s.name] = {
            "status": straced(s, [*s.head, "status"], tmp, f"{s.name}-{point}-status"),
            "checkpoint": straced(s, [*s.head, "checkpoint", "save", "-m", f"s{point}"], tmp, f"{s.name}-{point}-ckpt"),
        }  # fmt: skip
        res["counts"][s.name]["after_strace"] = counts(s)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="overlay,fuse")
    ap.add_argument("--points", default="1,100,500,1000")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--settle", type=float, default=0.3)
    ap.add_argument("--out", default=None)
    ap.add_argument("--tree", default=str(ab.ROOT), help="the avfs checkout whose console script runs")
    a = ap.parse_args()
    points = [int(x) for x in a.points.split(",")]
    out = Path(a.out).resolve() if a.out else ab.stamped("longsess")
    avfs = ab.avfs_bin(a.tree)
    head = subprocess.run(
        ["git", "-C", a.tree, "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    doc: dict[str, Any] = {"args": vars(a), "head": head, "probes": [], "batch_s": {}}
    with ab.scratch("longsess-", parent=Path("/tmp")) as tmp:
        env = {**os.environ, "AVFS_PROGRESS": "never", "AVFS_SERVER": "auto", "HOME": str(tmp),
               "GIT_AUTHOR_NAME": "s", "GIT_AUTHOR_EMAIL": "s@x", "GIT_COMMITTER_NAME": "s",
               "GIT_COMMITTER_EMAIL": "s@x"}  # fmt: skip
        src = tmp / "src"
        make_tree(src, a.files)
        ab.run(["git", "init", "-q", "-b", "main", str(src)], env)
        ab.run(["git", "-C", str(src), "add", "-A"], env)
        ab.run(["git", "-C", str(src), "commit", "-qm", "tree"], env)
        sides: list[Side] = []
        try:
            sides.append(Side("git", tmp, avfs, src, env))
            for b in a.backends.split(","):
                sides.append(Side(b, tmp, avfs, src, env))
            sess = Session(a.files, a.batch)
            spent = {s.name: 0.0 for s in sides}
            for n in range(1, max(points) + 1):
                ops = sess.ops()
                for s in sides:
                    t0 = time.perf_counter()
                    apply(s.dir, ops)
                    s.checkpoint(f"c{n:05d}")
                    spent[s.name] += time.perf_counter() - t0
                if n in points:
                    doc["batch_s"][n] = {k: round(v, 1) for k, v in spent.items()}
                    p = probe(sides, sess, a.rounds, a.settle, n, tmp)
                    doc["probes"].append(p)
                    ab.write_json(out, doc)
                    print(
                        f"point {n}: load {p['loads'][-1]:.1f} wall {json.dumps(p['median_wall'])}",
                        flush=True,
                    )
                    print(f"  cpu {json.dumps(p['median_cpu'])}", flush=True)
                if n % 50 == 0:
                    print(
                        f"  batch {n} load {ab.load():.1f} {json.dumps({k: round(v) for k, v in spent.items()})}",
                        flush=True,
                    )
        finally:
            for s in sides:
                s.close()
    ab.write_json(out, doc, announce=True)


if __name__ == "__main__":
    main()

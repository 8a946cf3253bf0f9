"""The session part of ``bench/realproj5.py``: 500+ checkpoints in one mount per backend
and in a clone on the host disk, docutils 0.16 → 0.21.2 applied four files at a time, the
sides interleaved step by step (its docstring says what is checked)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import stat
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import realproj4 as rp4
from bench.fleet5 import AVFS, BASE, ROUNDS, history

CHUNK = 4  # files a checkpoint
VERSIONS = BASE + ROUNDS


def _run(argv: list[str], cwd: Path | None, env: dict[str, str], check: bool = True) -> tuple[float, str]:
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(argv)[:200]}: {proc.returncode} {proc.stderr[-1500:]}")
    return time.monotonic() - t0, proc.stdout


def churn(hist: Path, env: dict[str, str]) -> list[list[tuple[str, bytes | None, bool]]]:
    """The release diffs as chunks of CHUNK files: (path, bytes or None to delete, exec bit)."""
    chunks: list[list[tuple[str, bytes | None, bool]]] = []
    for a, b in itertools.pairwise(VERSIONS):
        ns = rp4.git(hist, "diff", "--no-renames", "--name-status", "-z", f"v{a}", f"v{b}", env=env).split(
            "\0"
        )
        pairs = sorted(zip(ns[0::2], ns[1::2], strict=False), key=lambda p: p[1])
        ops: list[tuple[str, bytes | None, bool]] = []
        for status, path in pairs:
            if not path:
                continue
            if status == "D":
                ops.append((path, None, False))
                continue
            mode = rp4.git(hist, "ls-tree", f"v{b}", "--", path, env=env).split()[0]
            data = subprocess.run(
                ["git", "show", f"v{b}:{path}"], cwd=hist, env=env, capture_output=True, check=True
            ).stdout
            ops.append((path, data, mode == "100755"))
        chunks += [ops[i : i + CHUNK] for i in range(0, len(ops), CHUNK)]
    return chunks


def apply(root: Path, ops: list[tuple[str, bytes | None, bool]]) -> None:
    for path, data, ex in ops:
        p = root / path
        if data is None:
            p.unlink()
            d = p.parent
            while d != root and not any(d.iterdir()):  # git keeps no empty directory
                d.rmdir()
                d = d.parent
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, 0o755 if ex else 0o644)


def tree_hash(root: Path) -> str:
    """A hash of every file below ``root`` (names, exec bits, bytes; ``.git`` left out)."""
    got: list[tuple[str, bytes]] = []
    for top, dirs, files in os.walk(root):
        if top == str(root):
            dirs[:] = [d for d in dirs if d != ".git"]
            files = [f for f in files if f != ".git"]
        for f in files:
            p = os.path.join(top, f)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                got.append((rel, b"L" + os.fsencode(os.readlink(p))))
            else:
                with open(p, "rb") as fh:
                    got.append((rel, bytes([st.st_mode & 0o100 != 0]) + hashlib.sha256(fh.read()).digest()))
    h = hashlib.sha256()
    for rel, info in sorted(got):
        h.update(rel.encode() + b"\0" + info)
    return h.hexdigest()[:16]


class Place:
    def __init__(self, name: str, root: Path, src: Path, env: dict[str, str]) -> None:
        self.name, self.env = name, env
        self.dir = root / "run" / name
        self.n = 0
        self.ckpt_s: list[float] = []
        if name == "plain":
            rp4.git(root, "clone", "-q", str(src), str(self.dir), env=env)
            return
        self.vf = f"s:{name}"
        _run([AVFS, "vault", "fork", "s:main", name], None, env)
        self.dir.mkdir(parents=True)
        self.mount()

    def mount(self) -> None:
        _run([AVFS, "mount", "--backend", self.name, self.vf, str(self.dir)], None, self.env)

    def unmount(self) -> None:
        _run([AVFS, "unmount", self.vf], None, self.env, check=False)

    def checkpoint(self) -> None:
        self.n += 1
        name = f"c{self.n:04d}"
        if self.name == "plain":
            t0 = time.monotonic()
            rp4.git(self.dir, "add", "-A", env=self.env)
            rp4.git(self.dir, "commit", "-q", "--allow-empty", "-m", name, env=self.env)
            self.ckpt_s.append(time.monotonic() - t0)
            rp4.git(self.dir, "tag", name, env=self.env)
        else:
            self.ckpt_s.append(
                _run([AVFS, "--vault", self.vf, "checkpoint", "save", name], None, self.env)[0]
            )

    def probe(self, label: str) -> dict[str, Any]:
        """10 changed files: status timed (3 runs, median), then a checkpoint of them."""
        files = sorted(p for p in self.dir.joinpath("docutils").rglob("*.py"))[:10]
        for p in files:
            with open(p, "a") as fh:
                fh.write(f"# {label}\n")
        out: dict[str, Any] = {}
        if self.name == "plain":
            runs = [_run(["git", "status", "--porcelain"], self.dir, self.env)[0] for _ in range(3)]
            out["git_status_s"] = statistics.median(runs)
        else:
            runs = [_run([AVFS, "--json", "--vault", self.vf, "status"], None, self.env) for _ in range(3)]
            out["avfs_status_s"] = statistics.median(r[0] for r in runs)
            out["avfs_status_changes"] = len(json.loads(runs[0][1])["changes"])
            runs2 = [_run(["git", "status", "--porcelain"], self.dir, self.env)[0] for _ in range(3)]
            out["git_status_s"] = statistics.median(runs2)
        self.checkpoint()
        out["checkpoint_s"] = self.ckpt_s[-1]
        out["at_checkpoint"] = self.n
        return out

    def trees(self) -> list[str]:
        if self.name == "plain":
            return rp4.git(self.dir, "log", "--first-parent", "--format=%T", env=self.env).split()
        vault = Path(self.env["AVFS_HOME"]) / "vaults" / "s.git"
        return rp4.git(vault, "log", "--first-parent", "--format=%T", self.name, env=self.env).split()


def run_session(root: Path, backends: list[str]) -> dict[str, Any]:
    shutil.rmtree(root / "run", ignore_errors=True)
    (root / "run").mkdir(parents=True)
    home = root / "run" / "home"
    env = rp4.env_base(home)
    env["AVFS_HOME"] = str(home)
    hist = history(root.parent / "fleet", env)
    src = root / "run" / "src"
    rp4.git(root, "clone", "-q", "--no-tags", str(hist), str(src), env=env)
    first = rp4.git(hist, "rev-parse", f"v{VERSIONS[0]}", env=env).strip()
    rp4.git(src, "reset", "-q", "--hard", first, env=env)
    t0 = time.monotonic()
    chunks = churn(hist, env)
    res: dict[str, Any] = {"chunks": len(chunks), "files_changed": sum(map(len, chunks))}
    res["churn_read_s"] = round(time.monotonic() - t0, 1)
    _run([AVFS, "vault", "create", "s", "--from", str(src)], None, env)
    places = [Place("plain", root, src, env)] + [Place(b, root, src, env) for b in backends]
    probes: dict[str, list[Any]] = {p.name: [] for p in places}
    loads = []
    try:
        for i, ops in enumerate(chunks):
            if i in (5, len(chunks) - 1):
                for p in places:
                    probes[p.name].append(p.probe(f"probe {i}"))
            for p in places:
                apply(p.dir, ops)
                p.checkpoint()
            if i % 50 == 0:
                loads.append(os.getloadavg()[0])
                print(f"  session {i}/{len(chunks)} load {loads[-1]:.1f}", flush=True)
        res["loads"] = loads
        res["checkpoints"] = {p.name: p.n for p in places}
        res["probes"] = probes
        res["checkpoint_s"] = {
            p.name: {
                "first_50_median": statistics.median(p.ckpt_s[:50]),
                "last_50_median": statistics.median(p.ckpt_s[-50:]),
                "all_median": statistics.median(p.ckpt_s),
                "total": round(sum(p.ckpt_s), 1),
            }
            for p in places
        }
        trees = {p.name: p.trees() for p in places}
        plain = places[0]
        res["trees_equal_plain"] = {p.name: trees[p.name] == trees["plain"] for p in places[1:]}
        res["n_trees"] = {k: len(v) for k, v in trees.items()}
        res["end_hash"] = {p.name: tree_hash(p.dir) for p in places}
        res["after"] = after(places[1:], plain, env)
    finally:
        for p in places[1:]:
            p.unmount()
    return res


def after(places: list[Place], plain: Place, env: dict[str, str]) -> dict[str, Any]:
    """log, diff, a restore to c0003, gc (every fork unmounted: it refuses otherwise), a
    restore to the last: each against git's."""
    res: dict[str, Any] = {}
    for p in places:
        out = res[p.name] = {}
        w, doc = _run([AVFS, "--json", "--vault", p.vf, "log"], None, env)
        out["log_s"], out["log_entries"] = round(w, 3), len(json.loads(doc).get("commits") or [])
        out["git_rev_list"] = int(rp4.git(plain.dir, "rev-list", "--count", "HEAD", env=env))
        w, doc = _run([AVFS, "--vault", p.vf, "diff", "--name-status", "c0001", "c0002"], None, env)
        want = rp4.git(plain.dir, "diff", "--no-renames", "--name-status", "c0001", "c0002", env=env)
        out["diff_s"], out["diff_equal"] = round(w, 3), sorted(doc.split("\n")) == sorted(want.split("\n"))
        if not out["diff_equal"]:
            out["diff"] = {"avfs": doc[-1500:], "git": want[-1500:]}
        w, _ = _run([AVFS, "--vault", p.vf, "checkpoint", "restore", "c0003"], None, env)
        out["restore_early_s"] = round(w, 3)
        rp4.git(plain.dir, "checkout", "-q", "-B", "early", "c0003", env=env)
        out["restore_early_equal"] = tree_hash(p.dir) == tree_hash(plain.dir)
        _, st = _run([AVFS, "--json", "--vault", p.vf, "status"], None, env)
        out["status_after_restore"] = len(json.loads(st)["changes"])
        rp4.git(plain.dir, "checkout", "-q", "main", env=env)
    gc = subprocess.run([AVFS, "--json", "--vault", "s", "gc"], env=env, capture_output=True, text=True)
    res["gc_while_mounted"] = {
        "rc": gc.returncode,
        "code": (json.loads(gc.stdout).get("error") or {}).get("code"),
    }
    for p in places:
        p.unmount()
    w, doc = _run([AVFS, "--json", "--vault", "s", "gc"], None, env, check=False)
    res["gc_s"], res["gc"] = round(w, 2), json.loads(doc) if doc.strip() else None
    vault = Path(env["AVFS_HOME"]) / "vaults" / "s.git"
    fsck = subprocess.run(
        ["git", "fsck", "--no-progress"], cwd=vault, env=env, capture_output=True, text=True
    )
    res["fsck"] = {"rc": fsck.returncode, "out": (fsck.stdout + fsck.stderr)[-800:]}
    rp4.git(plain.dir, "checkout", "-q", "-B", "early", "c0003", env=env)
    early = tree_hash(plain.dir)
    rp4.git(plain.dir, "checkout", "-q", "main", env=env)
    last = tree_hash(plain.dir)
    for p in places:
        out = res[p.name]
        p.mount()
        out["after_gc_early_equal"] = tree_hash(p.dir) == early
        w, _ = _run([AVFS, "--vault", p.vf, "checkpoint", "restore", f"c{p.n:04d}"], None, env)
        out["restore_last_s"] = round(w, 3)
        out["restore_last_equal"] = tree_hash(p.dir) == last
        w, st = _run([AVFS, "--json", "--vault", p.vf, "status"], None, env)
        out["status_at_end_s"], out["status_at_end_changes"] = round(w, 3), len(json.loads(st)["changes"])
        g = subprocess.run(
            ["git", "status", "--porcelain"], cwd=p.dir, env=env, capture_output=True, text=True
        )
        out["git_status_at_end"] = g.stdout.splitlines()[:20]
    return res

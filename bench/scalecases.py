"""Many machines, one vault (docs/scale.md): a real project's test command in a lazy mount
from cold, against the same in a full clone, from one `git daemon` on 127.0.0.1, in the
same run, interleaved; and the bytes the lazy run fetched against the size of the files the
task read.

The repository is a monorepo of released sdists from PyPI (fetched once through
tests/realdata.py's cache): Django's last three releases as three commits (``Django/``,
files changing between versions as they really did), with ansible-core, botocore, sympy,
mypy, networkx and twisted beside it under ``vendor/`` (about 20,000 files at the tip),
served (packed, as a hosting server's repositories are) with ``uploadpack.allowFilter``,
``uploadpack.allowAnySHA1InWant`` and ``transfer.advertiseObjectInfo``. The task is Django's own test runner for one package,
``tests/runtests.py --parallel=1 utils_tests`` (its dependencies asgiref and sqlparse from
their sdists, outside the repository, on ``PYTHONPATH``).

Each repeat runs, in turn:

- **full**: ``git clone`` (with its checkout) from the server, then the task in it;
- **lazy**: ``avfs vault clone --lazy`` + ``avfs mount`` until ``ls`` answers, then the
  task in the mount, every file it reads fetched then (from cold: a new vault each time);
- **batched**: the same, but the task's package (``Django/django``, the test package)
  fetched in one batch first (``avfs grep`` fetches every file under the paths it
  searches in one fetch): what a prefetch of the files near the ones read does at best.

Bytes are counted on the wire: every connection to the server goes through a small TCP
relay here that counts what the server sends. The files the task read are the regular
files it opened in the full clone, found once with ``strace -f -e trace=open,openat``
(not timed); their size is what a perfect fetcher would have to move.

``--neighbours COUNT:BYTES`` sets the home's ``read_neighbours`` and ``read_neighbours_bytes``
(what a read fetches besides its file, docs/lazy.md; ``0:0``: one blob per fetch, as
before); ``lazy_task_fetches`` counts the fetch requests to the server during the lazy task
(protocol v2 ``command=fetch``: one per ``git fetch``, one per fetch over a kept connection)
and ``lazy_task_connections`` the connections. ``--variant JSON`` (repeatable) adds a lazy
run per repeat with those home settings on top (e.g. ``'{"keep_connection": false}'``), its
keys prefixed ``v1_``, ``v2_``…, interleaved with the others: an A/B in the same run;
``--no-batched`` skips the batched run; ``--warm`` runs each lazy task a second time in its
mount (``warm_task_s``: every file it reads is local then, so what is left over the full
clone's time is the mount's own cost); ``--settled`` adds a lazy run per repeat whose task
starts once the mount has settled (``settled_wait_s``: a ``git status`` in the mount, which
waits for the mount's sizes and git index, docs/lazy.md; then ``settled_task_s``): the
misses' cost without the settling running beside the task. ``--baseline SRC``: another avfs
source tree (a worktree of another commit), whose lazy runs (and settled ones with
``--settled``) go beside this tree's in every repeat, the side going first alternating,
run as ``python -m avfs_git`` with ``PYTHONPATH=SRC`` and a home of its own (keys prefixed
``base_``): a before/after of the code in the same run.

Run: ``.venv/bin/python -m bench.scalecases [--repeats N] [--neighbours COUNT:BYTES]
[--variant JSON]... [--no-batched] [--warm] [--settled] [--baseline SRC]``; the result goes to
``bench/results/scale-<time>.json`` and is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .fusecases import _realdata
from .remotecases import _daemon

ROOT = Path(__file__).resolve().parents[1]
DJANGO = ("Django", ("5.0.10", "5.1.3", "5.1.4"))
VENDOR = (("ansible-core", "2.17.5"), ("botocore", "1.35.0"), ("sympy", "1.13.3"),
          ("mypy", "1.13.0"), ("networkx", "3.4.2"), ("twisted", "24.10.0"))  # fmt: skip
DEPS = (("asgiref", "3.8.1"), ("sqlparse", "0.5.1"))
TASK = ("runtests.py", "--parallel=1", "utils_tests")
BATCH = ("Django/django", "Django/tests/utils_tests", "Django/tests/runtests.py")  # the task's package
IDENT = (
    "-c",
    "user.name=bench",
    "-c",
    "user.email=bench@example.com",
    "-c",
    "gc.auto=0",
)  # (no gc behind rmtree)


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


class Relay:
    """A TCP relay on 127.0.0.1 in front of the server that counts the bytes the server
    sends (``down``) and receives (``up``); it forwards at once and acknowledges at once
    (:func:`_recv`)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.down = 0
        self.up = 0
        self.connections = 0  # one per git fetch (and per object-info request)
        self.requests = 0  # protocol v2 fetch commands (a kept connection carries many)
        self._lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(("127.0.0.1", self.target))
            _prompt(client, server)
            threading.Thread(target=self._pipe, args=(client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, "down"), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, way: str) -> None:
        try:
            while data := _recv(src):
                with self._lock:
                    setattr(self, way, getattr(self, way) + len(data))
                    if way == "up":
                        self.requests += data.count(b"command=fetch")
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def _prompt(*socks: socket.socket) -> None:
    """The relay sends at once (no Nagle delay of its own)."""
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _recv(sock: socket.socket) -> bytes:
    """What came on ``sock``, acknowledged at once: the relay adds no delayed-ACK wait
    between a server's small writes (a ``git fetch`` talking to the server directly sees
    one, ~40 ms a fetch: its pack's header and first data are separate writes and the
    server's Nagle waits for the ACK; so the relay favours the ``git fetch`` runs)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    return sock.recv(65536)


def _unpack(rd: object, project: str, version: str, dest: Path) -> Path:
    return Path(rd.extract(Path(rd.pypi_sdist(project, version)), dest))  # type: ignore[attr-defined]


def _build(served: Path, t: Path) -> dict[str, int]:
    """The served monorepo; its tip's file count and size."""
    rd = _realdata()
    work = t / "work"
    _git("init", "-q", "-b", "main", str(work))
    for project, version in VENDOR:
        shutil.copytree(
            _unpack(rd, project, version, t / "src" / project), work / "vendor" / project, symlinks=True
        )
    name, versions = DJANGO
    for version in versions:
        shutil.rmtree(work / name, ignore_errors=True)
        shutil.copytree(
            _unpack(rd, name, version, t / "src" / f"{name}-{version}"), work / name, symlinks=True
        )
        _git("-C", str(work), "add", "-A", "-f")
        _git(*IDENT, "-C", str(work), "commit", "-q", "-m", f"{name} {version}")
    _git("clone", "-q", "--bare", str(work), str(served / "big.git"))
    # packed, as a hosting server's repositories are (a local clone leaves the objects
    # loose: every fetch would then compress and delta them anew)
    _git("--git-dir", str(served / "big.git"), "repack", "-a", "-d", "-q")
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant", "transfer.advertiseObjectInfo"):
        _git("--git-dir", str(served / "big.git"), "config", key, "true")
    sizes = [
        int(x)
        for x in re.findall(r"blob [0-9a-f]+ +(\d+)\t", _git("-C", str(work), "ls-tree", "-r", "-l", "HEAD"))
    ]
    shutil.rmtree(work)
    return {"files": len(sizes), "bytes": sum(sizes)}


def _task_env(tree: Path, deps: list[Path]) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / DJANGO[0]), *map(str, deps)])}


def _task(tree: Path, deps: list[Path], strace: Path | None = None) -> float:
    cmd = [sys.executable, *TASK]
    if strace is not None:
        cmd = ["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", str(strace), *cmd]
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=tree / DJANGO[0] / "tests", env=_task_env(tree, deps), capture_output=True, text=True
    )
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"the task failed in {tree}:\n{proc.stderr[-3000:]}")
    return took


def _read_set(trace: Path, tree: Path) -> tuple[int, int]:
    """(files, bytes) of the regular files under ``tree`` the traced task opened."""
    opened = set()
    pat = re.compile(r'open(?:at)?\((?:AT_FDCWD|\d+), "([^"]+)".*\) = \d+')
    for line in trace.read_text(errors="replace").splitlines():
        m = pat.search(line) or re.search(r'open\("([^"]+)".*\) = \d+', line)
        if m:
            p = Path(m.group(1))
            if not p.is_absolute():
                continue  # (runtests opens nothing relative to the tree; a cwd-relative path is not ours)
            if (
                p.is_relative_to(tree)
                and ".git" not in p.parts
                and "__pycache__" not in p.parts
                and p.is_file()
            ):
                opened.add(p)
    return len(opened), sum(p.stat().st_size for p in opened)


def _http_server(served: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``git http-backend`` behind Basic auth on 127.0.0.1 (bench/authgit.py), as
    bench/lazyrow10http.py serves it: avfs given the password through ``AVFS_GIT_TOKEN``,
    plain git through a credential helper (both in this process's environment, which every
    command inherits)."""
    from .lazyrow10http import PASSWORD
    from .remotecases import _free_port

    os.environ.update(
        AVFS_GIT_TOKEN=PASSWORD,
        AVFS_GIT_USERNAME="agent",
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="credential.helper",
        GIT_CONFIG_VALUE_0=f"!f() {{ echo username=agent; echo password={PASSWORD}; }}; f",
    )
    port = _free_port()
    counts = served.parent / f"{served.name}-http-counts.json"
    proc = subprocess.Popen([sys.executable, "-m", "bench.authgit", str(served), str(port), PASSWORD, str(counts)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc, f"http://127.0.0.1:{port}"


def _settled(avfs: list[str], url: str, mp: Path, name: str, env: dict[str, str], deps: list[Path],
             relay: Relay) -> dict[str, float]:  # fmt: skip
    """A lazy clone + mount, a ``git status`` in it (it waits for the mount's sizes and
    index: the settling), then the task: the task's keys prefixed ``settled_``."""
    mp.mkdir()
    subprocess.run([*avfs, "vault", "clone", "--lazy", url, name], check=True, env=env, capture_output=True)
    subprocess.run([*avfs, "mount", f"{name}:main", str(mp)], check=True, env=env, capture_output=True)
    row: dict[str, float] = {}
    try:
        os.listdir(mp)
        start = time.perf_counter()
        subprocess.run(["git", "-C", str(mp), "status", "--porcelain"], check=True, capture_output=True)
        row["settled_wait_s"] = time.perf_counter() - start
        down, reqs = relay.down, relay.requests
        row["settled_task_s"] = _task(mp, deps)
        row["settled_task_bytes"] = relay.down - down
        row["settled_task_fetches"] = relay.requests - reqs
    finally:
        subprocess.run([*avfs, "unmount", f"{name}:main"], env=env, capture_output=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--neighbours", metavar="COUNT:BYTES", help="the home's read_neighbours and"
                    " read_neighbours_bytes (docs/lazy.md); unset: the defaults")  # fmt: skip
    ap.add_argument("--variant", action="append", default=[], metavar="JSON", help="another lazy run"
                    " per repeat with these home settings (its keys prefixed v1_, v2_, ...)")  # fmt: skip
    ap.add_argument("--no-batched", action="store_true", help="skip the batched run")
    ap.add_argument("--warm", action="store_true", help="each lazy task run again in its mount"
                    " (warm_task_s: the mount's own cost, nothing left to fetch)")  # fmt: skip
    ap.add_argument("--settled", action="store_true", help="a lazy run per repeat whose task"
                    " starts once the mount settled (after a git status in it)")  # fmt: skip
    ap.add_argument("--served", metavar="DIR", help="the served monorepo kept in DIR/big.git (built"
                    " there when missing) instead of built in the run")  # fmt: skip
    ap.add_argument("--baseline", metavar="SRC", help="another avfs source tree, its lazy runs"
                    " (and settled ones) interleaved with this one's (prefix base_)")  # fmt: skip
    ap.add_argument("--http", action="store_true", help="served by `git http-backend` behind Basic"
                    " auth (bench/authgit.py) instead of `git daemon`")  # fmt: skip
    args = ap.parse_args()
    avfs = str(ROOT / ".venv" / "bin" / "avfs")
    load_before = os.getloadavg()
    rd = _realdata()
    with tempfile.TemporaryDirectory(prefix="avfs-bench-scale-") as tmp:
        t = Path(tmp)
        # not in the checkout: `python -m avfs_git` (the baseline, the mount daemons) would
        # import this tree's package from the working directory, ahead of PYTHONPATH
        os.chdir(t)
        served = Path(args.served).resolve() if args.served else t / "served"
        served.mkdir(parents=True, exist_ok=True)
        if (served / "big.git").exists():
            listing = _git("--git-dir", str(served / "big.git"), "ls-tree", "-r", "-l", "main")
            sizes = [int(x) for x in re.findall(r"blob [0-9a-f]+ +(\d+)\t", listing)]
            tip = {"files": len(sizes), "bytes": sum(sizes)}
        else:
            tip = _build(served, t)
        deps = [_unpack(rd, p, v, t / "deps" / p) for p, v in DEPS]
        daemon, base = _http_server(served) if args.http else _daemon(served)
        relay = Relay(int(base.rsplit(":", 1)[1]))
        url = f"{base.split(':', 1)[0]}://127.0.0.1:{relay.port}/big.git"
        home = t / "home"
        if args.neighbours:
            count, size = (int(x) for x in args.neighbours.split(":"))
            home.mkdir()
            (home / "config.json").write_text(
                json.dumps({"read_neighbours": count, "read_neighbours_bytes": size})
            )
        env = {**os.environ, "AVFS_HOME": str(home), "AVFS_PROGRESS": "never", "AVFS_SERVER": "off",
               "AVFS_LAYERS": "off"}  # fmt: skip
        variants = [(env, "", [avfs])]
        for j, extra in enumerate(args.variant, 1):
            vhome = t / f"home-v{j}"
            vhome.mkdir()
            base = json.loads((home / "config.json").read_text()) if (home / "config.json").exists() else {}
            (vhome / "config.json").write_text(json.dumps({**base, **json.loads(extra)}))
            variants.append(({**env, "AVFS_HOME": str(vhome)}, f"v{j}_", [avfs]))
        python = [str(ROOT / ".venv" / "bin" / "python"), "-m", "avfs_git"]
        base_env = {**env, "AVFS_HOME": str(t / "base-home"), "PYTHONPATH": args.baseline or ""}
        if args.baseline:
            variants.append((base_env, "base_", python))
        rows: list[dict[str, float]] = []
        read_files = read_bytes = 0
        try:
            for i in range(args.repeats):
                row: dict[str, float] = {}
                # full: git clone with its checkout, then the task
                dest = t / f"full-{i}"
                down = relay.down
                start = time.perf_counter()
                subprocess.run(["git", "clone", "-q", url, str(dest)], check=True)
                row["full_clone_s"] = time.perf_counter() - start
                row["full_clone_bytes"] = relay.down - down
                row["full_task_s"] = _task(dest, deps)
                if i == 0:  # what the task reads: traced once, not timed
                    trace = t / "trace.txt"
                    _task(dest, deps, strace=trace)
                    read_files, read_bytes = _read_set(trace, dest)
                shutil.rmtree(dest)
                # lazy: vault clone --lazy + mount until ls answers, then the task in the mount
                # (each variant: its own home, its settings; interleaved with the full run)
                # (the side right after the full clone meets its writeback: the order alternates)
                for j, (venv, prefix, cmd) in sorted(enumerate(variants), reverse=i % 2 == 1):
                    mp = t / f"mnt-{i}-{j}"
                    mp.mkdir()
                    name = f"big{i}v{j}"
                    down = relay.down
                    start = time.perf_counter()
                    subprocess.run(
                        [*cmd, "vault", "clone", "--lazy", url, name],
                        check=True,
                        env=venv,
                        capture_output=True,
                    )
                    subprocess.run(
                        [*cmd, "mount", f"{name}:main", str(mp)], check=True, env=venv, capture_output=True
                    )
                    os.listdir(mp)
                    row[f"{prefix}lazy_clone_mount_s"] = time.perf_counter() - start
                    row[f"{prefix}lazy_clone_mount_bytes"] = relay.down - down
                    down, conns, reqs = relay.down, relay.connections, relay.requests
                    try:
                        row[f"{prefix}lazy_task_s"] = _task(mp, deps)
                        row[f"{prefix}lazy_task_bytes"] = relay.down - down
                        row[f"{prefix}lazy_task_fetches"] = relay.requests - reqs
                        row[f"{prefix}lazy_task_connections"] = relay.connections - conns
                        if args.warm:  # again in the same mount, every file it reads now local
                            row[f"{prefix}warm_task_s"] = _task(mp, deps)
                    finally:
                        subprocess.run([*cmd, "unmount", f"{name}:main"], env=venv, capture_output=True)
                if args.settled:
                    sides = [("", [avfs], env)] + ([("base_", python, base_env)] if args.baseline else [])
                    for prefix, cmd, senv in sides if i % 2 == 0 else sides[::-1]:
                        got = _settled(
                            cmd, url, t / f"mnt-{prefix}s{i}", f"{prefix}settled{i}", senv, deps, relay
                        )
                        row.update({f"{prefix}{k}": v for k, v in got.items()})
                if args.no_batched:
                    rows.append(row)
                    continue
                # lazy, the package's directories fetched in one batch first (what a
                # prefetch of the files near the ones read would do at best): `avfs grep`
                # fetches every committed file under the paths it searches, in one fetch
                mp = t / f"mnt-b{i}"
                mp.mkdir()
                name = f"batched{i}"
                subprocess.run(
                    [avfs, "vault", "clone", "--lazy", url, name], check=True, env=env, capture_output=True
                )
                subprocess.run(
                    [avfs, "mount", f"{name}:main", str(mp)], check=True, env=env, capture_output=True
                )
                down = relay.down
                try:
                    start = time.perf_counter()
                    subprocess.run(
                        [avfs, "--vault", name, "grep", "-l", "no such text in avfs's bench", *BATCH],
                        env=env, capture_output=True,
                    )  # fmt: skip
                    row["batched_task_s"] = time.perf_counter() - start + _task(mp, deps)
                finally:
                    row["batched_task_bytes"] = relay.down - down
                    subprocess.run([avfs, "unmount", f"{name}:main"], env=env, capture_output=True)
                rows.append(row)
        finally:
            relay.close()
            daemon.terminate()
            daemon.wait(10)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    result = {
        "case": "Django's runtests.py utils_tests in a lazy mount from cold vs in a full git clone"
        " (one git daemon on 127.0.0.1, same run, interleaved)",
        "tip_files": tip["files"],
        "tip_bytes": tip["bytes"],
        "repeats": args.repeats,
        "read_neighbours": args.neighbours or "default",
        "load_average_before": load_before,
        "load_average": os.getloadavg(),
        "task_ratio_lazy_vs_full": med["lazy_task_s"] / med["full_task_s"],
        "end_to_end_ratio_lazy_vs_full": (med["lazy_clone_mount_s"] + med["lazy_task_s"])
        / (med["full_clone_s"] + med["full_task_s"]),
        "files_read_by_task": read_files,
        "bytes_of_files_read": read_bytes,
        "bytes_fetched_by_task": med["lazy_task_bytes"],
        "fetched_vs_read_ratio": med["lazy_task_bytes"] / read_bytes if read_bytes else None,
        "batched_task_ratio_vs_full": med["batched_task_s"] / med["full_task_s"]
        if "batched_task_s" in med
        else None,
        "batched_fetched_vs_read_ratio": med["batched_task_bytes"] / read_bytes
        if read_bytes and "batched_task_bytes" in med
        else None,
        "settled_task_ratio_vs_full": med["settled_task_s"] / med["full_task_s"]
        if "settled_task_s" in med
        else None,
        "baseline": args.baseline,
        "baseline_task_ratio_vs_full": med["base_lazy_task_s"] / med["full_task_s"]
        if args.baseline
        else None,
        "baseline_settled_task_ratio_vs_full": med["base_settled_task_s"] / med["full_task_s"]
        if args.baseline and "base_settled_task_s" in med
        else None,
        "variants": args.variant,
        "variant_task_ratios_vs_full": [
            med[f"v{j}_lazy_task_s"] / med["full_task_s"] for j in range(1, len(args.variant) + 1)
        ],
        "variant_fetched_vs_read_ratios": [
            med[f"v{j}_lazy_task_bytes"] / read_bytes if read_bytes else None
            for j in range(1, len(args.variant) + 1)
        ],
        "medians": med,
        "runs": rows,
    }
    out = ROOT / "bench" / "results" / time.strftime("scale-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

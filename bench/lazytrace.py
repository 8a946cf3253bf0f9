"""Where the cold lazy task's time goes (docs/scale.md, "Where the lazy task's time goes"):
the task of :mod:`bench.scalecases` (Django's ``runtests.py utils_tests``) run once in a
lazy mount from cold, every demand fetch logged: which file it was for, how many blobs it
carried, and its time split between the server, the wire and the client's git processes.

A TCP relay in front of ``git daemon`` (:class:`TracingRelay`) records each connection and
each request on it (a ``command=fetch`` of protocol v2; a ``git fetch`` makes one connection
with one, a kept connection (core/store/blobwire.py) carries one per fetch): when it was
sent, when the answer's last byte came, the bytes each way and the ``want`` lines (a read's
own blob is its fetch's first want: :meth:`.promisor.Promisor.fetch` keeps the caller's
order), named by their path in the served tip. ``connection_s`` is a ``git fetch``'s whole
connection (its process's start and its ``index-pack`` are not on the wire: docs/scale.md
gives their share from one fetch traced with git's trace2); ``answer_s`` is from a request
to the last byte of its answer.

Run: ``.venv/bin/python -m bench.lazytrace [--variant JSON]... [--repeats N]``: each variant
(the home's settings, e.g. ``'{"keep_connection": false}'``) in a new home and vault, the
variants interleaved; the lists go to ``bench/results/lazytrace-<time>.json`` and are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .fusecases import _realdata
from .remotecases import _daemon
from .scalecases import DEPS, ROOT, _build, _git, _prompt, _recv, _task, _unpack


class TracingRelay:
    """A TCP relay on 127.0.0.1 in front of the server that records each connection."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.conns: list[dict[str, Any]] = []
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
            rec: dict[str, Any] = {"open": time.time(), "up": 0, "down": 0, "sent": b"", "events": []}
            self.conns.append(rec)
            server = socket.create_connection(("127.0.0.1", self.target))
            _prompt(client, server)
            threading.Thread(target=self._pipe, args=(client, server, rec, "up"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, rec, "down"), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, rec: dict[str, Any], way: str) -> None:
        try:
            while data := _recv(src):
                now = time.time()
                rec[way] += len(data)
                rec["events"].append((now, way, data if way == "up" else len(data)))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            rec["close"] = time.time()
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def _wants(sent: bytes) -> list[str]:
    return [m.decode() for m in re.findall(rb"want ([0-9a-f]{40})", sent)]


def _requests(rec: dict[str, Any], names: dict[str, str], t0: float) -> list[dict[str, Any]]:
    """The fetch requests on one connection, each with its wants and its answer's time."""
    out: list[dict[str, Any]] = []
    events = rec["events"]
    for i, (at, way, data) in enumerate(events):
        if way != "up" or b"command=fetch" not in data or at < t0:
            continue
        wants = _wants(b"".join(d for _, w, d in events[i:] if w == "up").split(b"command=fetch")[1])
        down = [(t, n) for t, w, n in events[i + 1 :] if w == "down"]
        nxt = next((t for t, w, d in events[i + 1 :] if w == "up" and b"command=fetch" in d), None)
        if nxt is not None:
            down = [(t, n) for t, n in down if t < nxt]
        row = {
            "at_s": at - t0,
            "file": names.get(wants[0], wants[0]) if wants else None,
            "blobs": len(wants),
            "bytes_down": sum(n for _, n in down),
            "answer_s": (down[-1][0] if down else at) - at,
            "open_to_request_s": at - rec["open"],
        }
        if not out and rec["open"] >= t0:  # one git fetch's connection (a kept one opened before)
            row["connection_s"] = rec.get("close", at) - rec["open"]
        out.append(row)
    return out


def _run(avfs: str, url: str, t: Path, label: str, cfg: dict[str, Any], deps: list[Path],
         relay: TracingRelay, names: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    """The task once in a new lazy vault and mount of a new home with settings ``cfg``."""
    home = t / f"home-{label}"
    home.mkdir()
    (home / "config.json").write_text(json.dumps(cfg))
    env = {**os.environ, "AVFS_HOME": str(home), "AVFS_PROGRESS": "never", "AVFS_SERVER": "off",
           "AVFS_LAYERS": "off"}  # fmt: skip
    mp = t / f"mnt-{label}"
    mp.mkdir()
    try:
        subprocess.run(
            [avfs, "vault", "clone", "--lazy", url, "big"], check=True, env=env, capture_output=True
        )
        subprocess.run([avfs, "mount", "big:main", str(mp)], check=True, env=env, capture_output=True)
        os.listdir(mp)
        first = len(relay.conns)
        t0 = time.time()
        took = _task(mp, deps)
        time.sleep(0.5)  # the last connection's close reaches the relay
    finally:
        subprocess.run([avfs, "unmount", "big:main"], env=env, capture_output=True)
    fetches = [row for rec in relay.conns for row in _requests(rec, names, t0)]

    def med(key: str) -> float | None:
        vals = [r[key] for r in fetches if key in r]
        return statistics.median(vals) if vals else None

    return {
        "settings": cfg,
        "load_average": os.getloadavg(),
        "task_s": took,
        "connections": len(relay.conns) - first,
        "fetches": len(fetches),
        "sum_answer_s": sum(r["answer_s"] for r in fetches),
        "sum_connection_s": sum(r.get("connection_s", 0.0) for r in fetches),
        "bytes_down": sum(r["bytes_down"] for r in fetches),
        "median": {k: med(k) for k in ("answer_s", "connection_s", "open_to_request_s")},
        "list": fetches,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", action="append", default=[], metavar="JSON",
                    help="the home's settings of one variant (repeatable; default: one, {})")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    variants = [json.loads(v) for v in args.variant] or [{}]
    avfs = str(ROOT / ".venv" / "bin" / "avfs")
    rd = _realdata()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="avfs-bench-trace-") as tmp:
        t = Path(tmp)
        (t / "served").mkdir()
        _build(t / "served", t)
        names: dict[str, str] = {}
        for line in _git("--git-dir", str(t / "served" / "big.git"), "ls-tree", "-r", "HEAD").splitlines():
            meta, path = line.split("\t", 1)
            names.setdefault(meta.split()[2], path)
        deps = [_unpack(rd, p, v, t / "deps" / p) for p, v in DEPS]
        daemon, base = _daemon(t / "served")
        relay = TracingRelay(int(base.rsplit(":", 1)[1]))
        url = f"git://127.0.0.1:{relay.port}/big.git"
        try:
            for i in range(args.repeats):
                for j, cfg in enumerate(variants):  # interleaved
                    runs.append(_run(avfs, url, t, f"{i}-{j}", cfg, deps, relay, names))
        finally:
            relay.close()
            daemon.terminate()
            daemon.wait(10)
    result = {
        "case": "where the cold lazy task's time goes (bench/lazytrace.py)",
        "variants": variants,
        "median_task_s": [
            statistics.median(r["task_s"] for r in runs if r["settings"] == v) for v in variants
        ],
        "runs": runs,
    }
    out = ROOT / "bench" / "results" / time.strftime("lazytrace-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps(result, indent=2) + "\n")
    for run in runs:
        print(json.dumps({k: v for k, v in run.items() if k != "list"}))
        for r in run["list"]:
            print(f"{r['at_s']:7.2f}s {r['blobs']:4d} blobs {r['bytes_down']:8d} B "
                  f"{r['answer_s'] * 1000:6.0f} ms {r.get('connection_s', 0) * 1000:6.0f} ms  {r['file']}")  # fmt: skip
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))


if __name__ == "__main__":
    main()

"""A/B of served CLI calls: two (or more) avfs checkouts, each on a fresh copy of one 10k
home with its own resident server, interleaved in the same rounds with ``python -S -c pass``.

``python -m bench.servedab [--rounds N] [--cmd save|status|fork] [--served] [--layers] [--pause S] NAME=WORKTREE ...``

Each WORKTREE is an avfs checkout with its own ``make install`` (``WORKTREE/.venv``): the
console script it wrote is what is timed. The home is the one ``cli_commands`` makes (the
10k tree, ``layers = off``, 10 changes), copied fresh for every side; ``save`` writes one
file before each call through a process of that side's code keeping the vault open
(untimed). Per side: the median wall time, the caller's CPU (``wait4``), and the CPU of
the server and the children it reaped (spares and calls: utime + stime + cutime + cstime
of ``/proc/PID/stat``) per call over the run. ``--served`` times the call from ``connect``
to the command's exit code, the request sent by this process (the side's own stamp),
without the caller's start-up. Results as JSON under ``bench/results/`` (``--out``).

The wall figures of a loaded machine move by ±15 % between two identical sides (run two
sides on the same worktree to see it); the CPU figures are steadier. Unlike the bench's
own rows, each command here follows another command (rotating order), not the baseline
alone: the server's work after a call (its next spare) falls on all sides alike.
"""

from __future__ import annotations

import argparse
import json
import marshal
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .abkit import load, order, proc_cpu_s, worktrees
from .env import WORK_DIR, make_hermetic, rmtree, utc_stamp
from .trees import SIZES, VAULT, Fixtures, pick_paths

RESULTS = Path(__file__).parent / "results"
WRITER = """
import sys
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
layers = sys.argv[3] if len(sys.argv) > 3 else "off"
home = Home(sys.argv[1], author=("bench", "bench@example.invalid"), layers=layers, mounts=MOUNT_SIDE)
ws = home.vault(sys.argv[2]).workspace("main")
for p in sys.argv[4:]:  # the changes, written by this process (it keeps the vault open)
    ws.write(p, b"changed\\n")
print("ready", flush=True)
for line in sys.stdin:
    ws.write(line.strip(), b"x\\n")
    print("ok", flush=True)
"""


def _template(out: Path, layers: bool = False) -> Path:
    """The 10k home as ``cli_commands`` makes it (made once per run); with ``layers``, its
    changes left for each side's writer to make in a home of the default setting (its
    state dirs in the layers file system: a fork is a snapshot), as ``vault_fork_layers``."""
    fx = Fixtures(out / "run", keep=True)
    home, hdir = fx.home("cli", "10k")
    if not layers:
        ws = home.vault(VAULT).workspace("main")
        for p in pick_paths(SIZES["10k"], 10, "cli"):
            ws.write(p, fx.content.changed_bytes(p, "cli"))
    home.close()
    return hdir


def _cpu_ms(pid: int) -> float:
    return proc_cpu_s(pid) * 1000.0


def _spawn(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (ms) of ``argv``, its stdout to /dev/null."""
    t0 = time.perf_counter()
    pid = os.posix_spawn(
        argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
    )
    _, status, ru = os.wait4(pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(argv)}")
    return wall, (ru.ru_utime + ru.ru_stime) * 1000


class Side:
    """One checkout: its home, server, writer and samples."""

    def __init__(self, name: str, tree: str, template: Path, out: Path, layers: bool = False) -> None:
        self.name = name
        self.tree = tree
        self.home = out / f"home-{name}"
        subprocess.run(["cp", "-a", str(template), str(self.home)], check=True)
        changes = []
        if layers:  # main's state made anew by the writer, in the layers file system
            rmtree(self.home / "vaults" / f"{VAULT}.git" / "avfs" / "ws" / "main")
            changes = pick_paths(SIZES["10k"], 10, "cli")
        self.avfs = [f"{tree}/.venv/bin/avfs", "--home", str(self.home), "--vault", f"{VAULT}:main"]
        python = f"{tree}/.venv/bin/python"
        self.writer = subprocess.Popen(
            [python, "-c", WRITER, str(self.home), VAULT, "auto" if layers else "off", *changes],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=tree,
        )
        assert self.writer.stdout is not None
        self.writer.stdout.readline()  # its changes written
        self.stamp = subprocess.run(
            [python, "-c", "from avfs_git.cli.codestamp import stamp; print(stamp())"],
            capture_output=True,
            text=True,
            cwd="/",
            check=True,
        ).stdout.strip()
        # from "/": the server is `python -m avfs_git.cli.resident`, which imports avfs from
        # the current directory first (a checkout there would be the code it runs)
        subprocess.run([*self.avfs, "server", "start"], check=True, capture_output=True, cwd="/")
        self.server = int((self.home / "run" / "cli.pid").read_text())
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def argv(self, cmd: str, i: int) -> list[str]:
        if cmd == "save":
            assert self.writer.stdin is not None and self.writer.stdout is not None
            self.writer.stdin.write(f"ab/s-{os.getpid()}-{i}.txt\n")
            self.writer.stdin.flush()
            self.writer.stdout.readline()
            return [*self.avfs, "--json", "checkpoint", "save", "-m", f"m{i}"]
        if cmd == "fork":
            return [*self.avfs, "--json", "vault", "fork", f"ab-{os.getpid()}-{i}"]
        return [*self.avfs, "--json", "status"]

    def served(self, argv: list[str]) -> tuple[float, float]:
        """Connect to exit code, the request sent from here (nothing of the caller's start-up)."""
        null = os.open(os.devnull, os.O_WRONLY)
        env = {k.encode(): v.encode() for k, v in os.environ.items()}
        req = marshal.dumps({"v": 1, "stamp": self.stamp, "argv": argv[1:], "cwd": os.getcwd(), "env": env})
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, null, null))
        t0 = time.perf_counter()
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.connect(str(self.home / "run" / "cli.sock"))
            sock.sendmsg([b"%08d" % len(req) + req], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
            buf = b""
            code = None
            while code is None:
                data = sock.recv(65536)
                if not data:
                    raise SystemExit(f"{self.name}: the server went away")
                buf += data
                while len(buf) >= 8 and len(buf) >= 8 + int(buf[:8]):
                    n = 8 + int(buf[:8])
                    msg = marshal.loads(buf[8:n])
                    buf = buf[n:]
                    if "fallback" in msg:
                        raise SystemExit(f"{self.name}: not served ({msg['fallback']})")
                    code = msg.get("code", code)
        finally:
            sock.close()
            os.close(null)
        if code != 0:
            raise SystemExit(f"{self.name}: exit code {code}")
        return (time.perf_counter() - t0) * 1000, 0.0

    def close(self) -> None:
        subprocess.run([*self.avfs, "server", "stop"], capture_output=True, check=False)
        try:
            if self.writer.stdin is not None:
                self.writer.stdin.close()
        except OSError:
            pass
        self.writer.wait()
        if (self.home / "layers").is_mount():
            subprocess.run(["umount", "-l", str(self.home / "layers")], capture_output=True, check=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.servedab", description=__doc__.split("\n\n")[0])
    ap.add_argument("sides", nargs="+", metavar="NAME=WORKTREE")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--cmd", choices=("save", "status", "fork"), default="save")
    ap.add_argument("--served", action="store_true", help="time connect -> exit code only")
    ap.add_argument(
        "--layers", action="store_true", help="a home of the default setting: its forks are snapshots"
    )
    ap.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="seconds between two commands (an agent's pace; 0: back to back)",
    )
    ap.add_argument(
        "--out", type=Path, default=None, help="results file (default bench/results/servedab-*.json)"
    )
    args = ap.parse_args(argv)
    out = WORK_DIR / "servedab" / utc_stamp()  # (removed at the end)
    make_hermetic(WORK_DIR / "home")
    template = _template(out, args.layers)
    sides: list[Side] = []
    python = [sys.executable, "-S", "-c", "pass"]
    base_wall: list[float] = []
    base_cpu: list[float] = []
    try:
        for name, tree in worktrees(args.sides).items():
            sides.append(Side(name, tree, template, out, args.layers))
        for s in sides:
            for i in range(-2, 0):  # warm-up: the first calls teach each server's spares
                warm = s.argv(args.cmd, i)
                if args.served:
                    s.served(warm)
                else:
                    _spawn(warm)
        cpu0 = {s.name: _cpu_ms(s.server) for s in sides}
        loads = [load()]
        turns: list[Side | None] = [None, *sides]
        for i in range(args.rounds):
            for who in order(turns, i):
                time.sleep(args.pause)
                if who is None:
                    w, c = _spawn(python)
                    base_wall.append(w)
                    base_cpu.append(c)
                else:
                    a = who.argv(args.cmd, i)
                    w, c = who.served(a) if args.served else _spawn(a)
                    who.wall.append(w)
                    who.cpu.append(c)
            loads.append(load())
        time.sleep(0.3)  # (the last spares)
        server_cpu = {s.name: (_cpu_ms(s.server) - cpu0[s.name]) / args.rounds for s in sides}
    finally:
        for s in sides:
            s.close()
        rmtree(out)
    med = statistics.median
    doc: dict[str, Any] = {
        "cmd": args.cmd,
        "layers": args.layers,
        "pause_s": args.pause,
        "served": args.served,
        "rounds": args.rounds,
        "load": [min(loads), max(loads)],
        "python": {"wall_ms": base_wall, "cpu_ms": base_cpu},
        "sides": {
            s.name: {"tree": s.tree, "wall_ms": s.wall, "cpu_ms": s.cpu, "server_cpu_ms": server_cpu[s.name]}
            for s in sides
        },
    }
    print(
        f"{args.cmd}{' (layers)' if args.layers else ''}, {args.rounds} rounds, load {min(loads):.2f}-{max(loads):.2f}"
    )
    print(f"python -S -c pass: {med(base_wall):.1f} ms, CPU {med(base_cpu):.1f} ms")
    for s in sides:
        print(
            f"{s.name}: {med(s.wall):.1f} ms ({med(s.wall) / med(base_wall):.2f}x), caller CPU "
            f"{med(s.cpu):.1f} ms, server + children CPU {server_cpu[s.name]:.1f} ms a call"
        )
    path = args.out or RESULTS / f"servedab-{args.cmd}-{utc_stamp()}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

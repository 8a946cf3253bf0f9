"""``proxy exec`` benchmarks: its overhead over running the command directly, with a warm
mount (a live mount reused), in process and from the CLI, on a fork that is not mounted
(the first call mounts it and keeps it warm, the second reuses it), with a cold one
(mounted for the call and unmounted after), and a 10-command agent session (exec +
changes + commit each), all in one run.

The overhead target (DESIGN.md: <= 20 ms with a warm mount, confinement adding <= 10 ms of
it) is the CLI median minus the median of running ``true`` directly, both timed as
subprocesses here, interleaved; the CPU each call costs (the CLI process, the mount daemon)
is noted beside it, being less noisy on a shared machine than wall time.
"""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path
from typing import TYPE_CHECKING, Any

import avfs_git

from .env import log, run
from .fusecases import _empty_home, mounted
from .timing import Result, Side, Target, interleave, median
from .trees import VAULT

if TYPE_CHECKING:
    from .context import Context

VAULT_FORK = "main"


def _seed(ctx: Context, home_dir: Path) -> tuple[Any, Any]:
    from avfs_git.core.operations import checkpoint

    home, vault = _empty_home(home_dir)
    ws = vault.workspace(VAULT_FORK)
    for i in range(50):
        ws.write(f"src/m{i}.py", f"x = {i}\n".encode())
    checkpoint.save(vault, name="base")
    return home, vault


def bench_proxy_exec(ctx: Context, labels: list[str]) -> None:
    del labels  # the workload does not depend on the tree size
    true_ms = 0.0
    warm: dict[str, float] = {}
    for backend in ctx.backends:
        true_ms, warm[backend] = _warm(ctx, backend)
    _many_forks(ctx, ctx.backends[0])
    _not_mounted(ctx, warm)
    _not_mounted_api(ctx)
    # cold: no live mount, so each call mounts for itself (backend auto) and unmounts after
    # (AVFS_MOUNT_IDLE=0: the mount is not kept warm)
    top = ctx.fx.new_dir("proxy-cold")
    hdir = top / "home"
    _home, vault = _seed(ctx, hdir)
    base = [ctx.avfs_bin, "--home", str(hdir), "--vault", f"{VAULT}:{VAULT_FORK}", "--json", "proxy", "exec"]
    log("proxy exec with a cold mount")
    env0 = {**os.environ, "AVFS_MOUNT_IDLE": "0"}
    cold = interleave(
        {"cold": Side(op=lambda i: run([*base, "--", "true"], env=env0))}, max(3, ctx.repeats.slow), 1
    )
    doc = json.loads(run([*base, "--", "true"], env=env0))
    ctx.emit(
        Result(
            "proxy_exec_cold",
            "-",
            median(cold["cold"]),
            cold["cold"],
            what="`avfs --json proxy exec -- true` that mounts for the call (backend auto) and unmounts after"
            " (AVFS_MOUNT_IDLE=0)",
            baseline="true (subprocess)",
            baseline_ms=true_ms,
            notes=[f"the call's mount: {json.dumps(doc.get('mount'))[:300]}"],
        )
    )
    vault.close()
    ctx.fx.done_with(top)


MANY_FORKS = 200


def _many_forks(ctx: Context, backend: str) -> None:
    """The warm call in a vault with 200 other forks against the same call in a vault
    with none (both mounted, interleaved): what costs per fork of the vault on every call
    (the quota's count of the forks' overlays, the sandbox's scratch copy of every branch)
    shows as a ratio over 1; CPU per call of the CLI and of each mount's daemon noted."""
    top = ctx.fx.new_dir(f"proxy-forks-{backend}")
    homes = {}
    for name, n in (("one", 0), ("many", MANY_FORKS)):
        home, vault = _seed(ctx, top / name / "home")
        for i in range(n):
            vault.create_fork(VAULT_FORK, f"f{i}")
        (top / name / "mnt").mkdir()
        homes[name] = (home, vault, top / name)
    log(f"proxy exec with a warm mount: a vault with {MANY_FORKS} forks against one with none")
    with (
        mounted(*homes["one"][:2], VAULT_FORK, top / "one" / "mnt", backend) as m1,
        mounted(*homes["many"][:2], VAULT_FORK, top / "many" / "mnt", backend) as m2,
    ):
        tail = ["--vault", f"{VAULT}:{VAULT_FORK}", "--json", "proxy", "exec", "--", "true"]
        argv = {name: [ctx.avfs_bin, "--home", str(d / "home"), *tail] for name, (_h, _v, d) in homes.items()}
        docs = {name: json.loads(run(a)) for name, a in argv.items()}
        notes = [f"unexpected envelope ({n}): {d}" for n, d in docs.items() if not d["mount"]["reused"]]
        cpu = {"one": _Cpu(m1.pid), "many": _Cpu(m2.pid)}
        s = interleave(
            {name: Side(op=cpu[name].timed(name, argv[name])) for name in argv},
            ctx.repeats.fast,
            ctx.repeats.warmup,
        )
    ctx.emit(
        Result(
            "proxy_exec_warm_forks",
            backend,
            median(s["many"]),
            s["many"],
            what=f"`avfs --json proxy exec -- true`, a live mount reused, in a vault with {MANY_FORKS} other"
            " forks (subprocess)",
            baseline="the same call in a vault with no other fork, interleaved",
            baseline_ms=median(s["one"]),
            baseline_samples_ms=s["one"],
            target=Target(max_ratio=1.1, label="≤ 1.1x (flat in the forks)"),
            notes=[
                *notes,
                f"{MANY_FORKS} forks: {cpu['many'].note('many')}",
                f"no fork: {cpu['one'].note('one')}",
            ],
        )
    )
    for _h, vault, _d in homes.values():
        vault.close()
    ctx.fx.done_with(top)


def _not_mounted(ctx: Context, warm: dict[str, float]) -> None:
    """A fork that is not mounted, as an agent that never mounts meets it: the first
    `proxy exec` mounts it and keeps it warm (docs/fuse.md), against `avfs mount` of the
    same fork; the second call reuses that mount, against `true`. Each round unmounts it
    after the second call (and after `avfs mount`), interleaved, untimed."""
    top = ctx.fx.new_dir("proxy-first")
    hdir = top / "home"
    _home, vault = _seed(ctx, hdir)
    spec = f"{VAULT}:{VAULT_FORK}"
    avfs = [ctx.avfs_bin, "--home", str(hdir)]
    base = [*avfs, "--vault", spec, "--json", "proxy", "exec"]
    env = {k: v for k, v in os.environ.items() if k != "AVFS_MOUNT_IDLE"}  # the default timeout
    docs: list[dict[str, Any]] = []

    def unmount(i: int) -> None:
        run([*avfs, "unmount", spec], env=env)

    def exec_true(i: int) -> None:
        docs.append(json.loads(run([*base, "--", "true"], env=env)))

    log("proxy exec on a fork that is not mounted: first and second call")
    s = interleave(
        {
            "true": Side(op=lambda i: run(["true"])),
            "mount": Side(op=lambda i: run([*avfs, "--json", "mount", spec], env=env), teardown=unmount),
            "first": Side(op=exec_true),
            "second": Side(op=exec_true, teardown=unmount),
        },
        max(5, ctx.repeats.slow),
        1,
    )
    firsts, seconds = docs[0::2], docs[1::2]
    notes = []
    if not all(d["success"] and d["mount"]["kept_warm"] and not d["mount"]["reused"] for d in firsts):
        notes.append(f"unexpected first envelope: {json.dumps(firsts[-1].get('mount'))}")
    if not all(d["success"] and d["mount"]["reused"] for d in seconds):
        notes.append(f"unexpected second envelope: {json.dumps(seconds[-1].get('mount'))}")
    backend = (firsts[-1].get("mount") or {}).get("backend")
    ctx.emit(
        Result(
            "proxy_exec_first",
            "-",
            median(s["first"]),
            s["first"],
            what="the first `avfs --json proxy exec -- true` on a fork that is not mounted: it mounts"
            " the fork (backend auto) and keeps it warm",
            baseline="`avfs --json mount VAULT:FORK` (subprocess)",
            baseline_ms=median(s["mount"]),
            baseline_samples_ms=s["mount"],
            target=Target(max_ratio=1.0, label="≤ `avfs mount`"),
            notes=[*notes, f"backend {backend}; `avfs mount` median {median(s['mount']):.0f} ms"],
        )
    )
    true_ms = median(s["true"])
    overhead = [x - true_ms for x in s["second"]]
    ctx.emit(
        Result(
            "proxy_exec_second",
            "-",
            median(overhead),
            overhead,
            what="the second `avfs --json proxy exec -- true` on that fork (the mount the first kept"
            " warm, reused through its daemon) minus `true`",
            target=Target(max_ms=20.0, label="≤ 20 ms overhead"),
            notes=[
                f"end to end: {median(s['second']):.1f} ms; `true` alone {true_ms:.1f} ms",
                "proxy_exec_warm in this run (a mount made by `avfs mount`): "
                + ", ".join(f"{b} {ms:.1f} ms" for b, ms in warm.items()),
            ],
        )
    )
    vault.close()
    ctx.fx.done_with(top)


def _not_mounted_api(ctx: Context) -> None:
    """The first call of the Python API (``exec_in``; MCP's ``exec`` is the same call in
    its server's process) on a fork that is not mounted, in this process (avfs loaded),
    against the API's own mount of the same fork (``ops.mounts.mount``, kept warm the same
    way); each unmounted after, interleaved, untimed."""
    from avfs_git.ops import mounts

    top = ctx.fx.new_dir("proxy-first-api")
    home, vault = _seed(ctx, top / "home")
    ws = vault.workspace(VAULT_FORK)
    docs: list[Any] = []

    def unmount(i: int) -> None:
        mounts.unmount(home, vault, VAULT_FORK)

    log("proxy exec on a fork that is not mounted: the API's first call")
    s = interleave(
        {
            "mount": Side(
                op=lambda i: mounts.mount(home, vault, VAULT_FORK, idle_timeout_s=600.0),
                teardown=unmount,
                in_process=True,
            ),
            "first": Side(
                op=lambda i: docs.append(avfs_git.exec_in(ws, ["true"])), teardown=unmount, in_process=True
            ),
        },
        max(5, ctx.repeats.slow),
        1,
    )
    bad = [
        d
        for d in docs
        if not (d.success and d.mount is not None and d.mount.kept_warm and not d.mount.reused)
    ]
    ctx.emit(
        Result(
            "proxy_exec_first_api",
            "-",
            median(s["first"]),
            s["first"],
            what="the first `exec_in(ws, ['true'])` on a fork that is not mounted (in process; MCP's"
            " `exec` is the same call): it mounts the fork (backend auto) and keeps it warm",
            baseline="`ops.mounts.mount` of the same fork, kept warm (in process)",
            baseline_ms=median(s["mount"]),
            baseline_samples_ms=s["mount"],
            target=Target(max_ratio=1.0, label="≤ the mount"),
            notes=[f"unexpected envelope: {bad[-1].to_dict().get('mount')}"] if bad else [],
        )
    )
    vault.close()
    ctx.fx.done_with(top)


def _children_cpu_ms() -> float:
    """User + system CPU of this process' finished children so far (ms)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1000.0


def _process_cpu_ms(pid: int) -> float:
    """User + system CPU of process ``pid`` so far, all its threads, and of its children it
    has reaped (the sandboxes and commands it ran) (ms)."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) * 1000.0 / os.sysconf("SC_CLK_TCK")


class _Cpu:
    """CPU of each timed call: the CLI process's own (its children's rusage) and the mount
    daemon's (its /proc ticks: 10 ms each, so only the mean over many calls says much)."""

    def __init__(self, daemon_pid: int) -> None:
        self.daemon_pid = daemon_pid
        self.client: dict[str, list[float]] = {}
        self.daemon: dict[str, list[float]] = {}

    def timed(self, name: str, argv: list[str]) -> Any:
        def op(i: int) -> None:
            c0, d0 = _children_cpu_ms(), _process_cpu_ms(self.daemon_pid)
            run(argv)
            if i >= 0:
                self.client.setdefault(name, []).append(_children_cpu_ms() - c0)
                self.daemon.setdefault(name, []).append(_process_cpu_ms(self.daemon_pid) - d0)

        return op

    def note(self, name: str) -> str:
        c, d = self.client.get(name, []), self.daemon.get(name, [])
        if not c:
            return ""
        return (
            f"CPU per call: the CLI process {median(c):.1f} ms (median, user+sys), "
            f"the mount daemon with its sandboxes and commands {sum(d) / len(d):.1f} ms (mean)"
        )


def _warm(ctx: Context, backend: str) -> tuple[float, float]:
    """proxy exec with a live mount of ``backend``; returns the median of `true` alone and
    the CLI's median overhead over it."""
    top = ctx.fx.new_dir(f"proxy-{backend}")
    hdir = top / "home"
    home, vault = _seed(ctx, hdir)
    (top / "mnt").mkdir()
    base = [ctx.avfs_bin, "--home", str(hdir), "--vault", f"{VAULT}:{VAULT_FORK}", "--json", "proxy", "exec"]
    ws = vault.workspace(VAULT_FORK)
    with mounted(home, vault, VAULT_FORK, top / "mnt", backend) as m:
        doc = json.loads(run([*base, "--", "true"]))
        notes = [] if doc["mount"]["reused"] and doc["success"] else [f"unexpected envelope: {doc}"]
        cpu = _Cpu(m.pid)
        s = interleave(
            {
                "true": Side(op=cpu.timed("true", ["true"])),
                "cli": Side(op=cpu.timed("cli", [*base, "--", "true"])),
                "host": Side(op=cpu.timed("host", [*base, "--host", "writable", "--", "true"])),
                "api": Side(op=lambda i: avfs_git.exec_in(ws, ["true"]), in_process=True),
            },
            ctx.repeats.fast,
            ctx.repeats.warmup,
            ctx.profiler,
            f"proxy_exec-{backend}",
        )
        true_ms = median(s["true"])
        overhead = [x - true_ms for x in s["cli"]]
        ctx.emit(
            Result(
                "proxy_exec_warm",
                backend,
                median(overhead),
                overhead,
                what="`avfs --json proxy exec -- true` minus `true`, a live mount reused (subprocess)",
                target=Target(max_ms=20.0, label="≤ 20 ms overhead"),
                notes=[
                    *notes,
                    f"end to end: {median(s['cli']):.1f} ms; `true` alone {true_ms:.1f} ms",
                    cpu.note("cli"),
                    f"`true` alone: CPU {median(cpu.client['true']):.1f} ms",
                ],
            )
        )
        # what the sandbox adds: the same call confined (the default) and `--host writable`,
        # sample by sample (interleaved in one run)
        confined = [c - h for c, h in zip(s["cli"], s["host"], strict=True)]
        kind = (doc.get("confinement") or {}).get("kind")
        ctx.emit(
            Result(
                "proxy_exec_confinement",
                backend,
                median(confined),
                confined,
                what="`proxy exec -- true` confined (bwrap, the default) minus `--host writable`, warm mount",
                target=Target(max_ms=10.0, strict=True),
                notes=[f"--host writable: median {median(s['host']):.1f} ms; {cpu.note('host')}"]
                + ([] if kind == "bwrap" else [f"not confined: {doc.get('confinement')}"]),
            )
        )
        api = [x - true_ms for x in s["api"]]
        ctx.emit(
            Result(
                "proxy_exec_api",
                backend,
                median(api),
                api,
                what="avfs_git.exec_in(ws, ['true']) in process minus `true`, a live mount reused",
                target=Target(max_ms=20.0, label="≤ 20 ms overhead"),
                notes=[f"end to end: {median(s['api']):.1f} ms"],
            )
        )
        # an agent session: 10 commands, each writes a file -> changes -> one commit each
        session_notes: list[str] = []

        def agent_session(i: int) -> None:
            for k in range(10):
                out = json.loads(run([*base, "--", "sh", "-c", f"echo {i}-{k} > out-{k}.txt"]))
                if out["commit"] is None and i >= 0:
                    session_notes.append(f"command {k} of session {i} made no commit")

        session = interleave({"s": Side(op=agent_session)}, max(3, ctx.repeats.slow), 1)["s"]
        ctx.emit(
            Result(
                "proxy_agent_session",
                backend,
                median(session),
                session,
                what="10 x `proxy exec -- sh -c 'echo … > file'` (exec + changes + commit each), warm mount",
                notes=sorted(set(session_notes))[:3],
            )
        )
    vault.close()
    ctx.fx.done_with(top)
    return true_ms, median(overhead)


PROXY_BENCHMARKS = {"proxy_exec": bench_proxy_exec}

"""Every frequent command end to end, against Python's own start-up (issue 31).

An agent runs one ``avfs`` process per step, so what it waits for is the whole process:
the console script (``make install``'s launcher: native, or ``python -S``), the home's resident
server and the forked child that runs the command, or for `proxy exec` the mount's daemon.
Each command here is timed as a subprocess on a 10k fork with 10 changes, interleaved
with ``python -S -c pass`` of the same interpreter in the same rounds; the target is
<= 2x that. The server is started and answering before the first timed round (every call
after an agent's first is served). Where the figure is over, ``-X importtime`` of the
call (``PYTHONPROFILEIMPORTTIME``: the launcher takes no flags) is kept in the results: none
for a call the native launcher hands to the server (no Python starts in the caller).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .context import Context, _open, _tag, _write_ws
from .env import log, run
from .fusecases import mounted
from .timing import Result, Side, Target, interleave, median
from .trees import SIZES, VAULT, pick_paths

if TYPE_CHECKING:
    from avfs_git.core.vaults.vault import Vault

TARGET = Target(max_ratio=2.0, label="≤ 2x `python -S -c pass`")


def _importtime(argv: list[str], runs: int = 3) -> dict[str, Any]:
    """The imports of the median run of ``argv`` (the launcher under
    ``PYTHONPROFILEIMPORTTIME=1``): total, count and the top five by cumulative time."""
    got: list[tuple[int, list[tuple[str, int]]]] = []
    for _ in range(runs):
        p = subprocess.run(
            argv, capture_output=True, env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}, check=False
        )
        rows = []
        for line in p.stderr.decode(errors="replace").splitlines():
            if line.startswith("import time:") and line.count("|") == 2:
                _, cum, name = line.split("|")
                if cum.strip().isdigit():
                    rows.append((name.rstrip(), int(cum)))
        total = sum(c for n, c in rows if not n.startswith("  "))
        got.append((total, rows))
    got.sort(key=lambda x: x[0])
    total, rows = got[len(got) // 2]
    top = sorted(rows, key=lambda r: r[1], reverse=True)[:5]
    return {
        "total_import_ms": round(total / 1000, 2),
        "modules": len(rows),
        "top": [{"module": n.strip(), "cumulative_ms": round(c / 1000, 2)} for n, c in top],
    }


def _wait_server(hdir: Path) -> bool:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(hdir / "run" / "cli.sock"))
            return True
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    return False


def bench_cli_commands(ctx: Context, labels: list[str]) -> None:
    """status, diff, log, cat, write, vault fork, checkpoint save and warm `proxy exec`, each
    a subprocess, vs `python -S -c pass` in the same rounds."""
    for label in labels:
        _commands(ctx, label)
        _fork_default_home(ctx, label)


def _commands(ctx: Context, label: str) -> None:
    vault, hdir = _open(ctx, "cli", label)
    changed = pick_paths(SIZES[label], 10, "cli")
    ws = vault.workspace("main")
    _write_ws(ctx, ws, changed, "cli")
    avfs = [ctx.avfs_bin, "--home", str(hdir), "--vault", f"{VAULT}:main"]
    run([*avfs, "server", "start"])
    notes = [] if _wait_server(hdir) else ["the resident server did not answer: calls ran on their own"]
    py = [ctx.python, "-S", "-c", "pass"]
    cat_path = changed[0]

    def save(i: int) -> None:
        run([*avfs, "--json", "checkpoint", "save", "-m", f"bench {_tag(i)}"])

    commands: dict[str, tuple[str, Side]] = {
        "status": ("avfs --json status", Side(op=lambda i: run([*avfs, "--json", "status"]))),
        "diff": ("avfs --json diff", Side(op=lambda i: run([*avfs, "--json", "diff"]))),
        "log": ("avfs --json log -n 1", Side(op=lambda i: run([*avfs, "--json", "log", "-n", "1"]))),
        "cat": ("avfs cat PATH", Side(op=lambda i: run([*avfs, "cat", cat_path]))),
        "write": (
            "avfs write PATH TEXT",
            Side(op=lambda i: run([*avfs, "write", f"cli/w-{_tag(i)}.txt", f"text {i}"])),
        ),
        "vault_fork": (
            "avfs --json vault fork NEW",
            Side(op=lambda i: run([*avfs, "--json", "vault", "fork", f"c-{_tag(i)}"])),
        ),
        "checkpoint_save": (
            "avfs --json checkpoint save -m M (one file written before each, untimed)",
            Side(op=save, setup=lambda i: ws.write(f"cli/s-{_tag(i)}.txt", f"{i}\n".encode())),
        ),
    }
    for name, (what, side) in commands.items():
        _one(ctx, label, name, what, side, py, notes)
    _proxy_exec(ctx, label, vault, hdir, avfs, py, notes)
    for name, argv in (
        ("status", [*avfs, "--json", "status"]),
        ("cat", [*avfs, "cat", cat_path]),
        ("vault_fork", [*avfs, "--json", "vault", "fork", "c-importtime"]),
    ):
        ctx.extras.setdefault("importtime_cli", {})[name] = _importtime(
            argv, runs=1 if name == "vault_fork" else 3
        )
    run([*avfs, "server", "stop"])
    vault.close()
    ctx.fx.done_with(hdir)


def _fork_default_home(ctx: Context, label: str) -> None:
    """`vault fork` in a home as a user gets it: the layers file system on (``layers =
    auto``), so the source's state is a subvolume and a fork is its snapshot. The bench's
    other homes keep plain state dirs (``layers = off``), where a fork copies the source's
    changes instead. Noted when the host cannot mount the layers file system."""
    from avfs_git.core.vaults.home import Home
    from avfs_git.mount.side import MOUNT_SIDE

    from .env import AUTHOR

    _plain, hdir = ctx.fx.home("clilayers", label)
    _plain.close()
    home = Home(str(hdir), author=AUTHOR, mounts=MOUNT_SIDE)  # the home's own setting: auto
    vault = home.vault(VAULT)
    ws = vault.workspace("main")
    _write_ws(ctx, ws, pick_paths(SIZES[label], 10, "cli"), "cli")
    avfs = [ctx.avfs_bin, "--home", str(hdir), "--vault", f"{VAULT}:main"]
    run([*avfs, "server", "start"])
    notes = [] if _wait_server(hdir) else ["the resident server did not answer: calls ran on their own"]
    ignored = json.loads(run([*avfs, "--json", "vault", "fork", "c-probe"]))["ignored"]
    notes.append(f"fork mode: {ignored['mode']}" + (f" ({ignored['reason']})" if ignored["reason"] else ""))
    _one(
        ctx,
        label,
        "vault_fork_layers",
        "avfs --json vault fork NEW in a default home (layers = auto: a snapshot)",
        Side(op=lambda i: run([*avfs, "--json", "vault", "fork", f"c-{_tag(i)}"])),
        [ctx.python, "-S", "-c", "pass"],
        notes,
    )
    run([*avfs, "server", "stop"])
    vault.close()
    home.close()
    ctx.fx.done_with(hdir)


def _one(ctx: Context, label: str, name: str, what: str, side: Side, py: list[str], notes: list[str]) -> None:
    log(f"cli {name}")
    s = interleave({"avfs": side, "python": Side(op=lambda i: run(py))}, ctx.repeats.fast, ctx.repeats.warmup)
    ctx.emit(
        Result(
            f"cli_{name}",
            label,
            median(s["avfs"]),
            s["avfs"],
            what=f"{what}, end to end (subprocess, served; 10 changes)",
            baseline="python -S -c pass",
            baseline_ms=median(s["python"]),
            baseline_samples_ms=s["python"],
            target=TARGET,
            notes=list(notes),
        )
    )


def _proxy_exec(
    ctx: Context, label: str, vault: Vault, hdir: Path, avfs: list[str], py: list[str], notes: list[str]
) -> None:
    """`proxy exec -- true` with the fork mounted (the mount's daemon answers)."""
    backend = ctx.backends[0]
    mp = hdir.parent / f"cli-mnt-{label}"
    mp.mkdir(exist_ok=True)
    argv = [*avfs, "--json", "proxy", "exec", "--", "true"]
    home = vault.home
    assert home is not None
    with mounted(home, vault, "main", mp, backend):
        doc = json.loads(run(argv))
        extra = (
            []
            if doc.get("success") and doc["mount"]["reused"]
            else [f"unexpected envelope: {doc.get('mount')}"]
        )
        _one(
            ctx,
            label,
            "proxy_exec",
            f"avfs --json proxy exec -- true (a live {backend} mount)",
            Side(op=lambda i: run(argv)),
            py,
            [*notes, *extra],
        )
        ctx.extras.setdefault("importtime_cli", {})["proxy_exec"] = _importtime(argv)


CLI_BENCHMARKS = {"cli_commands": bench_cli_commands}

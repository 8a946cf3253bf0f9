"""The suite's CPU by program, from BSD process accounting (suitetime4, docs/benchmarks.md).

acct records every process that exits (its CPU, its parent, whether it exec'd) but only its
15-character name, so every Python process of the venv is ``python``. ``shim-on VENV``
puts a ``.pth`` file in the venv's site-packages that names each of its Python processes in
``/proc/self/comm`` by what it runs (``A:proxy exec``, ``M:a.cli.resident``, ``C:<code>``,
``S:<script>``; a mount daemon renames itself ``avfs-mountd`` later); ``shim-off VENV``
removes it (the shim adds a module to every process: test_coldstart fails while it is on).
Run the tests in a PID namespace of their own with accounting on inside it (accounting is
per PID namespace: no other process of the machine is in the file)::

    python -m bench.acctsuite shim-on .venv
    unshare --pid --fork --mount-proc sh -c 'touch /var/log/acct-x; accton /var/log/acct-x; \\
        CI=true AVFS_TEST_CPU=/tmp/x.json .venv/bin/python -m pytest -n 2 --dist loadfile \\
        --basetemp=/tmp/x-bt -p no:cacheprovider FILES...; accton off'
    python -m bench.acctsuite shim-off .venv
    python -m bench.acctsuite table /var/log/acct-x

acct truncates each process's CPU to whole 10 ms ticks: most git processes are recorded as
0; the cgroup's total (``AVFS_TEST_CPU``) less acct's is theirs."""

from __future__ import annotations

import collections
import glob
import os
import subprocess
import sys

SHIM = "_acctsuite_comm"
_SHIM_SOURCE = '''"""bench/acctsuite.py's shim: this process named by what it runs (acct keeps only that)."""
import os


def _sub(args):
    words, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a.startswith("-"):
            skip = a in ("--home", "--vault", "--fork", "-C", "--cwd", "--author", "--mount")
        elif "/" not in a and ":" not in a:
            words.append(a)
    return " ".join(words[:2])


def _name():
    try:
        with open("/proc/self/cmdline", "rb") as f:
            rest = [a.decode("utf-8", "replace") for a in f.read().split(b"\\0")[:-1]][1:]
    except OSError:
        return None
    i = 0
    while i < len(rest) and rest[i].startswith("-") and rest[i] not in ("-m", "-c"):
        i += 2 if rest[i] in ("-X", "-W") else 1
    rest = rest[i:]
    if not rest:
        return "P:stdin"
    if rest[0] == "-m" and len(rest) > 1:
        return "A:" + _sub(rest[2:]) if rest[1] == "avfs_git" else "M:" + rest[1].replace("avfs_git.", "a.")
    if rest[0] == "-c":
        return "C:" + (rest[1][:13] if len(rest) > 1 else "")
    script = os.path.basename(rest[0])
    return "A:" + _sub(rest[1:]) if script == "avfs" else "S:" + script


try:
    _n = _name()
    if _n:
        with open("/proc/self/comm", "w") as _f:
            _f.write(_n.replace("\\n", " ")[:15])
except OSError:
    pass
'''


def _site(venv: str) -> str:
    found = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages"))
    if len(found) != 1:
        raise SystemExit(f"no single site-packages under {venv}: {found}")
    return found[0]


def shim(venv: str, on: bool) -> None:
    site = _site(venv)
    paths = (os.path.join(site, SHIM + ".py"), os.path.join(site, "zz" + SHIM + ".pth"))
    if on:
        with open(paths[0], "w") as fh:
            fh.write(_SHIM_SOURCE)
        with open(paths[1], "w") as fh:
            fh.write(f"import {SHIM}\n")
    else:
        for p in paths:
            if os.path.exists(p):
                os.unlink(p)


def _kind(comm: str) -> str:
    if comm.startswith("C:import sys;"):
        return "test processes (pytest workers) own Python"
    if comm.startswith("M:pytest"):
        return "pytest controller (and what it forks)"
    if comm.startswith("A:"):
        return "avfs CLI: " + (comm[2:].strip() or "?")
    if comm == "avfs-mountd":
        return "mount daemon"
    if comm.startswith("M:a.cli.residen"):
        return "resident CLI server"
    return comm


def table(path: str) -> list[tuple[str, float, int]]:
    """(program, CPU seconds, processes), most CPU first; a fork that did not exec is named
    ``fork of`` its program, git by its parent (the test process, a daemon, git or sh)."""
    out = subprocess.run(["dump-acct", path], capture_output=True, text=True, check=True).stdout
    recs = []
    for ln in out.splitlines():
        f = [x.strip() for x in ln.split("|")]
        if len(f) >= 15:
            recs.append((f[0], (float(f[2]) + float(f[3])) / 100.0, int(f[9]), int(f[10]), "F" in f[11]))
    later: dict[int, list[int]] = collections.defaultdict(list)
    for i, r in enumerate(recs):
        later[r[2]].append(i)
    rows: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    for i, (comm, cpu, _pid, ppid, fork) in enumerate(recs):
        name = _kind(comm)
        parent = next((recs[j][0] for j in later.get(ppid, []) if j > i), None)  # (it exits later)
        if comm == "git" or comm.startswith("git-"):
            name = f"{comm} [from {_kind(parent) if parent else 'a parent still running or gone'}]"
        elif fork:
            name = "fork of " + name
        rows[name][0] += cpu
        rows[name][1] += 1
    return sorted(((k, v[0], int(v[1])) for k, v in rows.items()), key=lambda r: -r[1])


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] in ("shim-on", "shim-off"):
        shim(argv[1], argv[0] == "shim-on")
        return 0
    if len(argv) == 2 and argv[0] == "table":
        rows = table(argv[1])
        total = sum(r[1] for r in rows)
        print(f"{total:.1f} s over {sum(r[2] for r in rows)} processes")
        for name, cpu, n in rows:
            print(f"{cpu:8.1f} s {100 * cpu / total:5.1f} % {n:6d}  {name}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

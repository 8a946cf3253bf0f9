"""Which files avfs's host side touches that a confined command can write (branch h-attack29).

Every process of the host side runs under ``strace -f -y -e trace=%file,%process`` (the
mount's daemon attached while it serves a warm ``proxy exec``; the CLI's own calls; the
person's git in the mount; ``status``, ``checkpoint save``, ``diff``, ``log``, ``fetch``,
``pull``, ``push`` to a local bare remote, a first exec on an unmounted fork, ``merge``,
``unmount`` and ``mount``): every path such a process opened, stat'ed, ran, renamed or
removed, leaving out the processes below ``bwrap`` (the command's). Then a confined
command in each fork's mount looks at each path as the sandbox shows it: a path the
sandbox shows as the very file the host touched (the same device and inode) that it may
write, or whose directory it may write, is listed. What the security page already names
as the command's (the worktree's git dir, the mount, the policy's caches) is counted
apart; anything else is a finding.

    .venv/bin/python -m bench.hostreach [--keep DIR]

Needs root or user namespaces, FUSE or overlayfs, bwrap and strace. Writes nothing under
the checkout; prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$")
STR = re.compile(r'"((?:[^"\\]|\\.)*)"')
WRITES = re.compile(r"O_WRONLY|O_RDWR|O_CREAT")
CHANGERS = ("unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "symlink")
PROBE = """import json, os, sys
out = {}
for p in json.load(open(sys.argv[1])):
    out[p] = {}
    for tag, q in (("f", p), ("d", os.path.dirname(p))):
        try:
            st = os.lstat(q)
            out[p][tag] = [st.st_dev, st.st_ino, os.access(q, os.W_OK)]
        except OSError:
            out[p][tag] = None
json.dump(out, open(sys.argv[2], "w"))
"""


def _load(path: str) -> Any:
    with open(path) as fh:
        return json.load(fh)


def _unescape(s: str) -> str:
    return bytes(s, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def touched(trace: str, cwd0: str, out: dict[str, set[str]]) -> None:
    """Add to ``out`` the paths the host-side processes of one ``strace -f -y`` log touched."""
    cwd: dict[int, str] = {}
    boxed: set[int] = set()
    pending: dict[int, str] = {}
    with open(trace, errors="replace") as fh:
        lines = fh.readlines()
    for raw in lines:
        m = LINE.match(raw)
        if not m:
            continue
        pid, call, rest = int(m.group(1)), m.group(2) or m.group(3), m.group(4)
        if "<unfinished ...>" in rest:
            pending[pid] = rest.split("<unfinished")[0]
            continue
        if m.group(2):
            rest = pending.pop(pid, "") + rest
        got = re.search(r"\)\s+=\s+(-?\d+|\?)", rest)
        ret = got.group(1) if got else "?"
        here = cwd.get(pid, cwd0)
        if call in ("clone", "clone3", "vfork", "fork"):
            if ret.isdigit():
                cwd[int(ret)] = here
                if pid in boxed:
                    boxed.add(int(ret))
            continue
        strs = [_unescape(s) for s in STR.findall(rest.split(") =")[0])]
        if pid in boxed or not strs:
            continue
        if call == "execve" and strs[0].endswith("/bwrap") and ret == "0":
            boxed.add(pid)
            continue
        if call == "chdir" and ret == "0":
            cwd[pid] = os.path.normpath(os.path.join(here, strs[0]))
            continue
        dirfd = re.match(r'(\d+)<([^>]*)>, "', rest)
        base = dirfd.group(2) if dirfd and call != "execve" else here
        for p in strs[:2] if call.startswith(("rename", "link", "symlink")) else strs[:1]:
            if p and not p.startswith(("/proc", "/sys", "/dev")):
                p = os.path.normpath(os.path.join(base, p))
                kind = "W" if WRITES.search(rest) or call.startswith(CHANGERS) else "R"
                out.setdefault(p, set()).add(call + ":" + kind)


def _run(argv: list[str], env: dict[str, str], trace: str | None = None, cwd: str | None = None) -> str:
    pre = ["strace", "-f", "-y", "-qq", "-e", "trace=%file,%process", "-o", trace] if trace else []
    p = subprocess.run(
        [*pre, *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    return p.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", help="a directory to work in and keep (default: a temporary one)")
    a = ap.parse_args()
    top = a.keep or tempfile.mkdtemp(prefix="avfs-hostreach-", dir="/var/tmp")
    os.makedirs(top, exist_ok=True)
    home, traces = os.path.join(top, "home"), os.path.join(top, "traces")
    os.makedirs(traces, exist_ok=True)
    avfs = os.path.join(os.path.dirname(sys.executable), "avfs")
    env = {**os.environ, "AVFS_HOME": home, "AVFS_SERVER": "off"}
    src = os.path.join(top, "src")
    os.makedirs(os.path.join(src, "lib"), exist_ok=True)
    for name, text in (
        (".gitignore", "build/\n"),
        (".gitattributes", "*.py diff=python\n"),
        ("lib/a.py", "1\n"),
    ):
        with open(os.path.join(src, name), "w") as fh:
            fh.write(text)
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=p", "-c", "user.email=p@x", "commit", "-qm", "i"],
    ):
        subprocess.run(["git", "-C", src, *args], check=True)
    subprocess.run(["git", "init", "-q", "--bare", os.path.join(top, "up.git")], check=True)
    fork = "master"
    step = [avfs, "--vault", f"v:{fork}"]
    _run([avfs, "vault", "create", "v", "--from", src], env)
    _run([*step, "mount"], env)
    _run([avfs, "--vault", "v", "remote", "add", "origin", "file://" + os.path.join(top, "up.git")], env)
    _run([avfs, "vault", "fork", f"v:{fork}", "f2"], env)
    mnt = {f: os.path.join(home, "mnt", "v", f) for f in (fork, "f2")}
    reg = _load(os.path.join(home, "vaults", "v.git", "avfs", "mounts", f"{fork}.json"))
    daemon = subprocess.Popen(["strace", "-f", "-y", "-qq", "-e", "trace=%file,%process", "-o",
                               os.path.join(traces, "daemon"), "-p", str(reg["pid"])])  # fmt: skip
    time.sleep(1.5)  # (attached)
    shell = "echo x > f.txt; mkdir -p build; echo y > build/o; git add f.txt; git -c user.name=a -c user.email=a@b commit -qm in"
    person = (
        "git status --short; echo z > g.txt; git add g.txt; git -c user.name=p -c user.email=p@x commit -qm p"
    )
    steps: list[tuple[list[str], str | None]] = [
        ([*step, "proxy", "exec", "--", "sh", "-c", shell], top),
        (["sh", "-c", person], mnt[fork]),
        ([*step, "status"], top),
        ([*step, "checkpoint", "save", "-m", "c"], top),
        ([*step, "diff", "HEAD~1"], top),
        ([*step, "fetch", "origin"], top),
        ([*step, "push", "origin"], top),
        ([*step, "pull", "origin"], top),
        # (a first exec on a fork not mounted: released after the call, so strace's -f ends)
        (
            [
                "env",
                "AVFS_MOUNT_IDLE=0",
                avfs,
                "--vault",
                "v:f2",
                "proxy",
                "exec",
                "--",
                "sh",
                "-c",
                "echo q > q",
            ],
            top,
        ),
        ([*step, "merge", "f2"], top),
    ]
    paths: dict[str, set[str]] = {}
    for i, (argv, cwd) in enumerate(steps):
        trace = os.path.join(traces, f"step{i}")
        _run(argv, env, trace, cwd)
        touched(trace, cwd or top, paths)
    _run([avfs, "mount", "v:f2"], env)
    daemon.terminate()
    daemon.wait()
    touched(os.path.join(traces, "daemon"), "/", paths)
    listed = os.path.join(top, "paths.json")
    with open(listed, "w") as fh:
        json.dump(sorted(paths), fh)
    host = os.path.join(top, "host.json")
    subprocess.run([sys.executable, "-c", PROBE, listed, host], check=True)
    seen = _load(host)
    found: dict[str, Any] = {}
    expected: dict[str, int] = {}
    for f, m in mnt.items():
        shutil.copy(listed, os.path.join(m, ".hostreach-paths.json"))
        with open(os.path.join(m, ".hostreach.py"), "w") as fh:
            fh.write(PROBE)
        argv = [avfs, "--vault", f"v:{f}", "proxy", "exec", "--no-commit", "--", "python3", ".hostreach.py"]
        _run([*argv, ".hostreach-paths.json", ".hostreach-out.json"], env)
        inside = _load(os.path.join(m, ".hostreach-out.json"))
        for p, i in inside.items():
            h = seen[p]
            hits = [t for t in ("f", "d") if i[t] and h[t] and i[t][:2] == h[t][:2] and i[t][2]]
            if not hits or p == "/etc/mtab":  # (a link to /proc/self/mounts)
                continue
            mine = ("/worktrees/avfs-", "/mnt/v/")
            own = any(k in p for k in mine) and f"/{'avfs-' if '/worktrees/' in p else ''}{f}" in p
            own = own or f"/mounts/{f}.d/avfs-fsmonitor.sock" in p  # (shown read-only: a socket)
            if own or "/avfs/caches/" in p:  # (its own fork's; the caches every fork shares: security.md)
                expected[f] = expected.get(f, 0) + 1
            else:
                found[f"{f}: {p}"] = {"writable": hits, "host": sorted(paths[p])}
    for f in mnt:
        _run([avfs, "unmount", f"v:{f}"], env)
    from avfs_git.core.vaults import layers

    layers.unmount(home)  # (the home's layer mount, where the upper layers live)
    print(json.dumps({"paths": len(paths), "expected_writable": expected, "findings": found}, indent=1))
    if not a.keep:
        shutil.rmtree(top, ignore_errors=True)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

"""Paths, the hermetic environment, and subprocess helpers.

Every git (and avfs) process the harness starts, and the harness itself, see the same
environment: a throw-away ``HOME`` with its own ``.gitconfig``, no system config, a fixed
identity, ``LC_ALL=C`` and ``TZ=UTC``. The user's git configuration (hooks, fsmonitor,
aliases, signing...) therefore cannot change a figure. :func:`make_hermetic` must run
before anything imports pygit2: libgit2 reads ``HOME`` once, when it initialises.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
RESULTS_DIR = BENCH_DIR / "results"
DOCS_PAGE = PROJECT_DIR / "docs" / "benchmarks.md"

AUTHOR = ("bench", "bench@localhost")

GITCONFIG = """\
[user]
\tname = bench
\temail = bench@localhost
[init]
\tdefaultBranch = main
[gc]
\t# no automatic (and detached, CPU-stealing) gc in the middle of a run
\tauto = 0
[advice]
\tdetachedHead = false
[core]
\tpager = cat
"""


def make_hermetic(home: Path) -> dict[str, str]:
    """Make ``home`` a minimal user home and replace this process' environment with a
    hermetic one (inherited by every subprocess). Returns the new environment."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".config").mkdir(exist_ok=True)
    (home / ".gitconfig").write_text(GITCONFIG, encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        "LC_ALL": "C",
        "LANG": "C",
        "TZ": "UTC",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": AUTHOR[0],
        "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_COMMITTER_NAME": AUTHOR[0],
        "GIT_COMMITTER_EMAIL": AUTHOR[1],
    }
    # which avfs is measured (a worktree first on the path: the mount daemons are
    # subprocesses and must run the same code), and where the real projects are cached
    for keep in ("PYTHONPATH", "AVFS_TEST_CACHE"):
        if os.environ.get(keep):
            env[keep] = os.environ[keep]
    os.environ.clear()
    os.environ.update(env)
    return env


def venv_bin(name: str) -> str:
    """A script of the running interpreter's environment (``.venv/bin/avfs``), else PATH's."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"bench: cannot find {name!r} next to {sys.executable} or on PATH")
    return found


def run(
    args: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
) -> str:
    """Run a command, fail loudly (with its stderr) when it fails, return its stdout."""
    proc = subprocess.run(
        list(args),
        cwd=cwd,
        env=None if env is None else dict(env),
        input=input,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(args)}\n"
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    return proc.stdout.decode("utf-8", "replace")


def git(*args: str, cwd: Path | str | None = None) -> str:
    return run(["git", *args], cwd=cwd)


def rmtree(path: Path | str) -> None:
    """Remove ``path``, the layers file systems of avfs homes in it unmounted first (their
    images go with the tree)."""
    root = os.path.realpath(path) + "/"
    try:
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            points = [ln.split()[1] for ln in fh if ln.split()[2:3] == ["btrfs"]]
    except OSError:
        points = []
    for mp in points:
        if mp.startswith(root) and os.path.basename(mp) == "layers":
            subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)


def flush_disk() -> None:
    """Write dirty pages back now, so the next timed step does not pay for earlier ones."""
    os.sync()


def utc_stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)

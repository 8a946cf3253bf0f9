"""A fork mounted by tests/gitmount.py's ``mount_fork`` unmounted and mounted again by the
CLI run in the test's process (conftest's ``run_in_process``), the new mount's daemon
forked by the process's zygote (tests/gitmount.py ``warm_daemons``, checked): for the
contract files that check what git keeps across a remount, not the CLI's process (each
remount was two CLI processes and a spawned daemon, ~0.6 s of CPU: suitetime24).
tests/contract/test_git_state_remount.py remounts by real processes in one case."""

from __future__ import annotations

from pathlib import Path

from .conftest import run_in_process
from .gitmount import warm_daemons


def remount(mp: Path, backend: str, fork: str = "v:f") -> None:
    """`avfs --vault FORK unmount MP`, then `avfs --vault FORK mount --backend BACKEND MP`."""
    res = run_in_process(["--vault", fork, "unmount", str(mp)])
    assert res.code == 0, res.out + res.err
    with warm_daemons() as asked:
        res = run_in_process(["--vault", fork, "mount", "--backend", backend, str(mp)])
    assert res.code == 0, res.out + res.err
    assert asked == [False], asked  # (the daemon forked warm, where the CLI's would spawn it)

"""A `core.hooksPath` naming a mount's own hooks directory (`git config core.hooksPath
"$(git rev-parse --git-path hooks)"` in a mount: the path git shows there) made the
mount's reference-transaction guard chain to itself: each `git commit` forked without end
(769 processes in 0.9 s), in every mount of the vault (the setting is the vault's). Found by
the review of the thirty-fourth round (gitmodel24 made it take effect at once; on the round
before, at the next mount). Now avfs's own directories are never taken for the person's
hooks: the vault's `hooks/` is. The test's git runs in a pids cgroup of its own with a limit,
so that the loop, where it exists, ends at the limit (counted in `pids.events`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import skip_outside_ci
from .gitmount import _git, _require, mount_fork

PIDS = Path("/sys/fs/cgroup/pids")
LIMIT = 300


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_hooks_path_naming_the_mount_s_own_hooks_runs_the_vault_s_hooks_once(
    cli_proc: Any, tmp_path: Path, backend: str
) -> None:
    _require(backend)
    if not (PIDS / "cgroup.procs").exists():
        skip_outside_ci("no pids cgroup controller here")
    group = PIDS / f"avfs-test-hooks-{os.getpid()}-{backend}"
    group.mkdir()
    try:
        (group / "pids.max").write_text(f"{LIMIT}\n")
        with mount_fork(cli_proc, tmp_path, backend) as (mp, _avfs):
            own = _git(mp, "rev-parse", "--git-path", "hooks").stdout.strip()
            _git(mp, "config", "core.hooksPath", os.path.abspath(os.path.join(mp, own)))
            vault_hooks = Path(_git(mp, "rev-parse", "--git-common-dir").stdout.strip(), "hooks")
            if not vault_hooks.is_absolute():
                vault_hooks = mp / vault_hooks
            marker = tmp_path / "ran"
            hook = vault_hooks / "post-commit"
            hook.write_text(f"#!/bin/sh\necho ran >> {marker}\n")
            hook.chmod(0o755)
            (mp / "x.txt").write_text("x\n")
            _git(mp, "add", "x.txt")
            env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(mp.parent)}
            proc = subprocess.run(
                ["sh", "-c", f"echo $$ > {group}/cgroup.procs && exec git commit -qm x"],
                cwd=mp,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            events = (group / "pids.events").read_text().split()
            assert events == ["max", "0"], (events, proc.stderr[-500:])  # (main: the limit hit)
            assert proc.returncode == 0, proc.stderr[-2000:]
            assert marker.read_text() == "ran\n"  # (the person's hook, the vault's, ran once)
            _git(mp, "config", "--unset", "core.hooksPath")
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            subprocess.run(["kill", "-9", pid], check=False)
        group.rmdir()

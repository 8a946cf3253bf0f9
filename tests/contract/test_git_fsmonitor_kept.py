"""The person's own fsmonitor setting in a mount outlives a remount (mount/gitkeep.py): `git
config --worktree core.fsmonitor false` (git looks at every file of this worktree) is the
setting after `avfs unmount` and `avfs mount` as in a plain worktree, whose
`config.worktree` is the person's; the mount wrote its own anew, naming avfs's hook again
(found in gitmodel13, fixed in gitmodel15). A hook's path is code and is never kept: the
next mount names avfs's own hook. Both backends, real mounts, real git."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..gitmount import _git, mount_fork
from ..remount import remount
from .backends import MOUNTS

pytestmark = pytest.mark.backends(*MOUNTS)


@pytest.fixture
def mounted(backend: str, cli_proc: Any, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as m:
        yield m


def _setting(mp: Path) -> list[str]:
    return _git(mp, "config", "--worktree", "--get-all", "core.fsmonitor", check=False).stdout.splitlines()


@pytest.mark.parametrize("value", ["false", "true"])
def test_the_person_s_fsmonitor_boolean_outlives_a_remount(mounted: Any, backend: str, value: str) -> None:
    mp, _ = mounted
    _git(mp, "config", "--worktree", "core.fsmonitor", value)
    (mp / "new.txt").write_text("new\n")
    remount(mp, backend)  # (in process: tests/remount.py)
    assert _setting(mp) == [value]
    # (one value: the person's next setting replaces it, as in a plain worktree)
    _git(mp, "config", "--worktree", "core.fsmonitor", "false")
    assert _git(mp, "status", "--porcelain").stdout == "?? new.txt\n"


def test_a_hook_the_person_names_is_not_kept(mounted: Any, backend: str, tmp_path: Path) -> None:
    mp, _ = mounted
    ran = tmp_path / "ran"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {ran}\nexit 1\n")
    hook.chmod(0o755)
    own = _setting(mp)
    _git(mp, "config", "--worktree", "core.fsmonitor", str(hook))
    remount(mp, backend)  # (in process: tests/remount.py)
    assert _setting(mp) == own and own != [str(hook)]
    _git(mp, "status", "--porcelain")
    assert not ran.exists()

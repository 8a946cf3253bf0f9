"""A fork mounted as a person mounts it, for tests that run git in the mount: fork ``f`` of
vault ``v`` (a.txt, d/c.txt) mounted by the CLI, and the git and status calls they check
it with."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .test_fuse import require_fuse
from .test_overlay import require_overlay


def _require(backend: str) -> None:
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()


def _git(mp: str | Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["GIT_CEILING_DIRECTORIES"] = os.path.dirname(str(mp))
    proc = subprocess.run(["git", *args], cwd=mp, env=env, capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


@contextlib.contextmanager
def mount_fork(cli_proc: Any, tmp_path: Path, backend: str) -> Iterator[tuple[Path, Any]]:
    """Fork `f` of vault `v` (a.txt = "one\\n", d/c.txt) mounted at tmp_path/m on
    ``backend`` by the CLI; (mount point, run avfs there). The caller has checked that the
    backend's facilities are there."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "a.txt").write_text("one\n")
    (src / "d" / "c.txt").write_text("c\n")
    assert cli_proc("vault", "create", "v", "--from", str(src)).code == 0
    assert cli_proc("vault", "fork", "v:main", "f").code == 0
    mp = tmp_path / "m"
    mp.mkdir()
    res = cli_proc("--vault", "v:f", "mount", "--backend", backend, str(mp))
    assert res.code == 0, res.err

    def avfs(*args: str) -> Any:
        return cli_proc(*args, cwd=str(mp))

    try:
        yield mp, avfs
    finally:
        cli_proc("--vault", "v:f", "unmount", str(mp))


@pytest.fixture
def mounted(cli_proc: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, Any]]:
    """:func:`mount_fork` on the backend the test is parametrized with (``backend``), for the
    adversarial files that choose their backends case by case; the contract suite's own
    fixture is tests/contract/test_git_in_mount.py's."""
    backend = request.node.callspec.params["backend"]
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend) as m:
        yield m


def _status(avfs: Any) -> dict[str, Any]:
    res = avfs("--json", "status")
    assert res.code == 0, res.err
    doc: dict[str, Any] = res.json()
    return doc


def _clean_everywhere(mp: Path, avfs: Any) -> None:
    assert _git(mp, "status", "--porcelain").stdout == ""
    doc = _status(avfs)
    assert doc["clean"] and not doc["stale"], doc
    assert doc["head"] == doc["base"] == _git(mp, "rev-parse", "HEAD").stdout.strip()

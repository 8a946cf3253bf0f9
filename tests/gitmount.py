"""A fork mounted as a person mounts it, for tests that run git in the mount: fork ``f`` of
vault ``v`` (a.txt, d/c.txt) mounted by the CLI, and the git and status calls they check
it with."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.ops import mounts

from .conftest import run_in_process
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


def copy_fork_home(made: Path | None) -> bool:
    """Put a copy of ``made`` (tests/forkhome.py's home of vault ``v`` and fork ``f``) at the
    test's ``AVFS_HOME``; False (nothing done) where there is none to copy or the test's
    home exists already."""
    home = Path(os.environ["AVFS_HOME"])
    if made is None or home.exists():
        return False
    shutil.copytree(made, home, symlinks=True)
    return True


_OWN = object()  # mount_fork's ``made`` by default: the process' fork home (tests/forkhome.py)


@contextlib.contextmanager
def warm_daemons() -> Iterator[list[bool]]:
    """The mount daemons that commands run in this process (``run_in_process``) start are
    forked by this process's zygote (ops/warmstart.py), as the suite's API mounts are, not
    spawned: the CLI turns the zygote off for its call (cli/app.py: one command, whose
    process ends with it), which a test's process is not; a spawned daemon's start is ~0.3 s
    of CPU in Python's start and its imports, at every mount of every test (suitetime21).
    The daemon runs the same code either way; what the zygote would have said at each mount
    (False: the CLI's) is appended to the list given, so a caller can check it ran."""
    asked: list[bool] = []
    real = mounts._launch

    def launch(cmd: list[str], env: dict[str, str], log_path: str, zygote: bool = True, *rest: Any) -> Any:
        asked.append(zygote)
        return real(cmd, env, log_path, True, *rest)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mounts, "_launch", launch)
        yield asked


def warm(cli: Any) -> Any:
    """``cli`` (conftest's in-process one) with the daemons of the mounts it makes forked
    warm (:func:`warm_daemons`)."""

    def run(*args: str, **kw: Any) -> Any:
        with warm_daemons():
            return cli(*args, **kw)

    return run


@contextlib.contextmanager
def mount_fork(
    cli_proc: Any, tmp_path: Path, backend: str, made: Any = _OWN, in_process: bool = False
) -> Iterator[tuple[Path, Any]]:
    """Fork `f` of vault `v` (a.txt = "one\\n", d/c.txt) mounted at tmp_path/m on
    ``backend`` by the CLI; (mount point, run avfs there). The caller has checked that the
    backend's facilities are there. The home is a copy of ``made`` (by default the one
    tests/forkhome.py makes once a process: two CLI processes a test fewer); where there is
    none (``AVFS_TEST_LAYERS=1``) or the test's home exists already, `avfs vault create v
    --from SRC` and `avfs vault fork v:main f` make it. ``in_process``: the avfs it gives
    runs each command in the test's process (tests/conftest.py ``run_in_process``, in the
    mount as its directory), not as a process of its own (~0.2 s of CPU each): for tests
    that check what a command does, not its process; so do the mount and the unmount (the
    daemon is a process of its own either way, started detached in a session of its own;
    the unmount in process waits for it and collects it; in process, the daemon is forked
    by the process's zygote: :func:`warm_daemons`)."""
    if made is _OWN:
        from .forkhome import process_fork_home

        made = process_fork_home()
    if not copy_fork_home(made):
        src = tmp_path / "src"
        (src / "d").mkdir(parents=True)
        (src / "a.txt").write_text("one\n")
        (src / "d" / "c.txt").write_text("c\n")
        assert cli_proc("vault", "create", "v", "--from", str(src)).code == 0
        assert cli_proc("vault", "fork", "v:main", "f").code == 0
    mp = tmp_path / "m"
    mp.mkdir()

    def outside(*args: str) -> Any:  # the mount and the unmount: the daemon is a process either way
        if not in_process:
            return cli_proc(*args)
        with warm_daemons() as asked:
            res = run_in_process(list(args))
        if args[2:3] == ("mount",):
            assert asked == [False], asked  # (the mount's daemon forked warm: warm_daemons)
        return res

    res = outside("--vault", "v:f", "mount", "--backend", backend, str(mp))
    assert res.code == 0, res.err

    def avfs(*args: str) -> Any:
        if in_process:
            with warm_daemons():  # (a remount too)
                return run_in_process(list(args), cwd=str(mp))
        return cli_proc(*args, cwd=str(mp))

    try:
        yield mp, avfs
    finally:
        outside("--vault", "v:f", "unmount", str(mp))


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

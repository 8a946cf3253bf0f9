"""The backends of the contract suite, chosen in one place.

Every test here that asks for ``backend`` (itself, or through a fixture that builds its fork
on it: ``fs``, a module's mount) runs once per backend: ``api`` (the in-process
``Workspace``), ``overlay`` (kernel overlayfs over avfs's lower view) and ``fuse`` (the
pure-FUSE mount). A behaviour with no API door (a POSIX call, git run in the mount, the
mount's daemon) says so with ``@pytest.mark.backends(*MOUNTS)`` on the test or the module;
no test leaves a backend out by skipping. A backend whose facility is missing (FUSE,
overlayfs) skips outside CI and fails under CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint

from ..forkhome import process_fork_home
from ..gitmount import mount_fork
from ..sharedfork import SharedFork
from ..test_fuse import _mounted, require_fuse
from ..test_overlay import require_overlay
from .backends import ALL, ApiFS, MountFS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends")
    names = tuple(marker.args) if marker else ALL
    unknown = [n for n in names if n not in ALL]
    if unknown or not names:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: backends{names}: each must be one of {ALL}")
    # module scope: a module that mounts once per backend (test_posix) gets one mount each
    metafunc.parametrize("backend", names, indirect=True, scope="module")


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    """The backend's name, once its facilities are known to be there."""
    name: str = request.param
    if name == "overlay":
        require_overlay()
    elif name == "fuse":
        require_fuse()
    return name


@pytest.fixture
def fs(backend: str, home: Any, vault: Any, tmp_path: Any) -> Iterator[Any]:
    """The fork ``main`` of ``vault`` holding README.md, src/app.py, bin/run.sh (0755) and
    readme-link -> README.md, checkpointed; through each backend."""
    if backend == "api":
        ws = vault.workspace("main")
        ws.write("README.md", b"# hello\n")
        ws.write("src/app.py", b"print('hi')\n")
        ws.write("bin/run.sh", b"#!/bin/sh\necho run\n", mode=0o755)
        ws.symlink("README.md", "readme-link")
        checkpoint.save(vault, name="base")
        yield ApiFS(ws)
        return
    with _mounted(home, vault, tmp_path, backend) as m:
        yield MountFS(m[1], vault.workspace("main"))


@pytest.fixture(scope="module")
def shared_fork(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedFork | None]:
    """The module's mount of tests/gitmount.py's fork ``f`` on ``backend``, shared by its
    tests with a checked reset between them (tests/sharedfork.py); None on the API backend
    and where each test makes its vault anew (``AVFS_TEST_LAYERS=1``)."""
    made = process_fork_home() if backend != "api" else None
    if made is None:
        yield None
        return
    shared = SharedFork(tmp_path_factory.mktemp(f"shared-{backend}"), backend, made)
    try:
        yield shared
    finally:
        shared.drop()


@pytest.fixture
def shared_mounted(
    backend: str,
    shared_fork: SharedFork | None,
    cli_proc: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Path, Any]]:
    """Fork ``f`` mounted on ``backend``, (mount point, run avfs there in the test's
    process): the module's shared mount (:func:`shared_fork`), or, for a test marked
    ``own_mount`` (its history is its point), a mount of its own
    (tests/gitmount.py's ``mount_fork(..., in_process=True)``)."""
    if shared_fork is None or request.node.get_closest_marker("own_mount"):
        with mount_fork(cli_proc, tmp_path, backend, in_process=True) as m:
            yield m
        return
    with shared_fork.use(monkeypatch) as m:
        yield m

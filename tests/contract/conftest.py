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
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint

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

"""The backends of the contract suite (tests/contract/): the fork every test starts from,
through each backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint

from ..test_fuse import _mounted
from .backends import ApiFS, MountFS


@pytest.fixture(params=["api", "overlay", "fuse"])
def fs(request, home, vault, tmp_path) -> Iterator[Any]:
    """The fork ``main`` of ``vault`` holding README.md, src/app.py, bin/run.sh (0755) and
    readme-link -> README.md, checkpointed; through each backend."""
    if request.param == "api":
        ws = vault.workspace("main")
        ws.write("README.md", b"# hello\n")
        ws.write("src/app.py", b"print('hi')\n")
        ws.write("bin/run.sh", b"#!/bin/sh\necho run\n", mode=0o755)
        ws.symlink("README.md", "readme-link")
        checkpoint.save(vault, name="base")
        yield ApiFS(ws)
        return
    with _mounted(home, vault, tmp_path, request.param) as m:
        yield MountFS(m[1], vault.workspace("main"))

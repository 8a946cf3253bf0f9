"""What a confined command does under a name shaped like avfs's own side files is in the
change stream, and so is every name of a linked file it writes (review43, F2 and F2b).

flaky4 (the thirty-eighth round) made the side files a restore, an undo, a merge or an
adoption swaps through an overlay mount (core/workspace/liveswap.py, ``.avfs-adopt-`` and
hex digits) never a change in `avfs watch` and ``changes_since``, told by the name's shape
alone: a command's own ``.avfs-adopt-0123456789ab`` (a tracked file it added) was passed
over, and so were the other names of a linked file written through such a name (the
kernel names the side-shaped link; a rewrite of ``Makefile`` left no ``modified Makefile``
in the stream, though the exec's record and commit had it). Now only a side name avfs
signed (a key in the workspace's state directory, which no sandbox sees) is avfs's own.

F2b, fix42's own: the names of a linked file were given once per read of the kernel's
events, and a ``chmod`` of the ignored link in the same read took them: the write's
``modified Makefile`` after it was dropped.

Real confined execs in a real overlay mount (pure FUSE refuses hard links), then the
person's ``avfs watch --once --since``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .test_adv_gitseal import _avfs, _exec
from .test_confine import _need_bwrap
from .test_overlay import require_overlay
from .test_watch_sides import journaled

SIDE = ".avfs-adopt-0123456789ab"
REWRITE = "printf 'all:\\n\\techo PWNED\\n' > Makefile"


@pytest.fixture
def overlay(home: Any, vault: Any) -> Iterator[Any]:
    require_overlay()
    _need_bwrap()
    ws = vault.workspace("main")
    ws.write("Makefile", b"all:\n\techo good\n")
    ws.write(".gitignore", b"build/\n*.o\n")
    checkpoint.save(vault, name="base")
    info = mounts.mount(home, vault, "main", None, backend="overlay")
    try:
        yield info
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def _cursor() -> str:
    r = _avfs("--json", "watch", "v:main", "--once")
    assert r.returncode == 0, r
    return str(json.loads(r.stdout.splitlines()[-1])["cursor"])


def _stream(vault: Any, since: str) -> list[tuple[str, str]]:
    """The file events of `avfs watch v:main --once --since SINCE` (the daemon asked to
    journal what the kernel queued first)."""
    journaled(vault, "main")
    r = _avfs("--json", "watch", "v:main", "--once", "--since", since)
    assert r.returncode == 0, r
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    return [
        (d["event"]["kind"], d["event"]["path"])
        for d in docs
        if d["kind"] == "watch_event" and d["event"].get("path") is not None
    ]


def test_a_tracked_file_the_command_names_like_a_side_file_is_in_the_stream(overlay: Any, vault: Any) -> None:
    """A confined command adds a tracked ``.avfs-adopt-0123456789ab``: its record has it
    and so has the stream (``created``). On main the stream passed over it."""
    c0 = _cursor()
    made = _exec("sh", "-c", f"printf 'evil\\n' > {SIDE}")
    assert made["exit_code"] == 0, made["result"]
    assert SIDE in {c["path"] for c in made["changes"]}, made["changes"]
    assert ("created", SIDE) in _stream(vault, c0)


def test_a_write_through_a_side_shaped_link_names_the_tracked_file_in_the_stream(
    overlay: Any, vault: Any
) -> None:
    """Exec 1 makes ``Makefile`` a link of an ignored ``build/.avfs-adopt-0123456789ab``;
    exec 2 rewrites ``Makefile`` (the kernel names the side-shaped link): the stream has
    exec 2's ``modified Makefile``, as its record does. On main it had no event of exec 2's."""
    first = _exec(
        "sh", "-c", f"mkdir build && cp Makefile build/{SIDE} && rm Makefile && ln build/{SIDE} Makefile"
    )
    assert first["exit_code"] == 0, first["result"]
    c1 = _cursor()
    second = _exec("sh", "-c", REWRITE)
    assert second["exit_code"] == 0, second["result"]
    assert "Makefile" in {c["path"] for c in second["changes"]}, second["changes"]
    assert ("modified", "Makefile") in _stream(vault, c1)


def test_a_chmod_of_the_link_in_the_same_read_as_a_write_drops_no_name(overlay: Any, vault: Any) -> None:
    """Exec 1 makes ``Makefile`` a link of an ignored ``cache.o``; exec 2 changes the
    link's mode, then rewrites ``Makefile``, in one read of the kernel's events: the stream
    has ``modified Makefile``. On main the chmod took the names, and only ``cache.o``'s
    events came."""
    first = _exec("sh", "-c", "cp Makefile cache.o && rm Makefile && ln cache.o Makefile")
    assert first["exit_code"] == 0, first["result"]
    c1 = _cursor()
    second = _exec("sh", "-c", f"chmod 644 cache.o; {REWRITE}")
    assert second["exit_code"] == 0, second["result"]
    assert "Makefile" in {c["path"] for c in second["changes"]}, second["changes"]
    assert ("modified", "Makefile") in _stream(vault, c1)

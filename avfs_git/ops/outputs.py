"""Build outputs a fork shares with its source that name the source's mount point.

A fork of a live fork shares what git ignores in it (a ``.venv``, ``node_modules``, build
directories). Tools write absolute paths into such outputs: pip a venv's entry-point
shebangs and an editable install's ``.pth``, cmake its ``CMakeCache.txt``. Built by
``proxy exec``, those paths name the vault's one path in the sandbox
(:func:`..proxy.confine.stable_path`), the same for every fork; built on the host in a
mount, they name that mount, and in the new fork they would run the source's files
(its code, not the fork's). :func:`naming` finds such outputs, so that ``vault fork``
can say so. The files are what a confined command may have written: only regular files
inside the fork are read (no links out, no FIFOs), and a bounded part of each.

It reads a bounded set of files where these paths are known to live (venvs found by
their ``pyvenv.cfg`` and cmake caches, two levels deep), never a whole tree.
"""

from __future__ import annotations

import glob
import os

from ..core.workspace.untrusted import read_file

__all__ = ["naming"]

_HEAD = 4096  # of a script: its shebang and the start of a launcher
_SMALL = 1 << 20  # a .pth, an .egg-link, a cmake cache


def naming(root: str, limit: int = 20) -> list[str]:
    """Paths (relative to ``root``, a fork's mount point) of build outputs under it whose
    content names ``root`` by its absolute path; at most ``limit``."""
    needles = {os.path.normpath(root).encode() + b"/"}
    try:
        needles.add(os.path.realpath(root).encode() + b"/")
    except OSError:
        pass
    found: list[str] = []
    top = os.path.realpath(root)
    for path, size in _candidates(root):
        if len(found) >= limit:
            break
        data = _read(path, size, top)
        if data is None:
            continue
        if any(n in data for n in needles) or any(data.rstrip(b"\n") + b"/" == n for n in needles):
            found.append(os.path.relpath(path, root))
    return found


def _read(path: str, size: int, top: str) -> bytes | None:
    """The first ``size`` bytes of regular file ``path`` when it is in ``top`` (None
    otherwise). What a confined command wrote is untrusted (:mod:`..core.untrusted`): a link
    out of the fork, a FIFO (which would block the open) or a device is not read."""
    if not os.path.realpath(path).startswith(top + "/"):
        return None
    return read_file(path, size, prefix=True)


def _candidates(root: str) -> list[tuple[str, int]]:
    """(file, how much of it to read) where absolute paths of the tree are written."""
    out: list[tuple[str, int]] = []
    venvs = [
        os.path.dirname(p)
        for depth in ("*", "*/*")
        for p in glob.glob(os.path.join(root, depth, "pyvenv.cfg"), include_hidden=True)
    ]
    for venv in sorted(set(venvs)):
        bindir = os.path.join(venv, "bin")
        try:
            scripts = sorted(os.scandir(bindir), key=lambda e: e.name)
        except OSError:
            scripts = []
        out += [(e.path, _HEAD) for e in scripts if e.is_file(follow_symlinks=False)]
        for pattern in ("*.pth", "*.egg-link"):
            out += [
                (p, _SMALL)
                for p in sorted(glob.glob(os.path.join(venv, "lib", "python*", "site-packages", pattern)))
            ]
    for depth in ("*", "*/*"):
        out += [
            (p, _SMALL)
            for p in sorted(glob.glob(os.path.join(root, depth, "CMakeCache.txt"), include_hidden=True))
        ]
    return out

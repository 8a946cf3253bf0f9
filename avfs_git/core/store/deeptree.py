"""Directory trees of any depth on the host: a walk and a removal that do not go one
Python call deeper per level.

Python 3.11's ``os.walk`` and ``shutil.rmtree`` recurse, so a tree deeper than the
interpreter's recursion limit (~1,000 levels: a confined command's ``mkdir d && cd d`` in
a loop makes one in a second) raises ``RecursionError`` (not an ``OSError``:
``ignore_errors=True`` does not catch it) wherever avfs's host side walks or removes what a
fork holds (a fork's state dir and upper layer, a mount's files on a restore, a
materialized copy, the project directory ``avfs apply`` writes). Found in the fifteenth
round (NAME=review4).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

__all__ = ["makedirs", "rmtree", "walk"]


def walk(top: str, *, topdown: bool = True) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(top, topdown)`` (links never followed, errors skipped) by a loop: the
    same ``(dirpath, dirnames, filenames)``, ``dirnames`` pruned in place when top-down."""
    stack: list[tuple[str, list[str], list[str]] | str] = [top]
    while stack:
        item = stack.pop()
        if not isinstance(item, str):
            yield item  # (bottom-up: a directory after everything below it)
            continue
        dirs: list[str] = []
        files: list[str] = []
        try:
            with os.scandir(item) as it:
                for e in it:
                    try:
                        is_dir = e.is_dir(follow_symlinks=False)
                    except OSError:
                        is_dir = False
                    (dirs if is_dir else files).append(e.name)
        except OSError:
            continue
        if topdown:
            yield item, dirs, files
        else:
            stack.append((item, dirs, files))
        stack.extend(os.path.join(item, d) for d in reversed(dirs))


def makedirs(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)`` by a loop (it makes each missing parent one
    call deeper): the missing directories found bottom up, made top down."""
    missing: list[str] = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        up = os.path.dirname(p)
        if up == p:
            break
        p = up
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except FileExistsError:
            if not os.path.isdir(d):
                raise


def rmtree(path: str, *, ignore_errors: bool = False) -> None:
    """``shutil.rmtree(path, ignore_errors=...)``; a tree deeper than Python's recursion
    limit is removed by ``rm -rf`` (its own process: coreutils' walk has no depth limit
    and, like rmtree, follows no link)."""
    try:
        shutil.rmtree(path, ignore_errors=ignore_errors)
        return
    except RecursionError:
        pass
    done = subprocess.run(["rm", "-rf", "--", path], capture_output=True, check=False)
    if done.returncode != 0 and not ignore_errors and os.path.lexists(path):
        raise OSError(f"rm -rf {path} failed: {done.stderr.decode(errors='replace').strip()}")

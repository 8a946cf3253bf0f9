"""A workspace's files written into a local directory (`Workspace.materialize_to`): the
directory checked (or made, when only it is missing) first, so that a missing parent is a
clear refusal, not a bare OSError after part of the copy; and empty, as ``git clone`` wants
its own: the copy writes through what is there (a link a copy before left, where the fork
now has a file, took the file's bytes to wherever it pointed)."""

from __future__ import annotations

import os
import stat as stat_
from collections.abc import Callable, Iterator
from typing import Protocol

from ..errors import DirectoryNotEmptyError, InvalidPathError, NotDirectoryError, PathNotFoundError
from ..types import MODE_EXEC, DirEntry, NodeKind
from .wsview import Node, View


class Copied(Protocol):
    """What a copy reads of a workspace (`Workspace`, without importing it)."""

    view: View

    def visible_filter(self) -> Callable[[str, NodeKind], bool] | None: ...
    def walk(self, path: str = "", *, max_depth: int | None = None) -> Iterator[DirEntry]: ...
    def read_link(self, path: str) -> str: ...
    def resolve(self, path: str, *, follow: bool = True) -> Node: ...


def check_dest(dest: str) -> None:
    """Refuse ``dest`` unless it is an empty local directory, made here when only it is
    missing (its parent there, as ``shutil.copytree`` and ``git clone DIR`` make theirs).

    Raises:
        PathNotFoundError: its parent does not exist either; NotDirectoryError: it is not a
            directory; DirectoryNotEmptyError: it holds anything; InvalidPathError: it
            cannot be looked at (a NUL, a name too long, no permission).
    """
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        try:
            os.mkdir(dest)
        except FileNotFoundError:
            raise PathNotFoundError(f"{dest}: no such local directory", details={"path": dest}) from None
        except (ValueError, OSError) as exc:
            raise InvalidPathError(
                f"invalid local directory {dest!r}: {exc}", details={"path": dest}
            ) from None
        return
    except (ValueError, OSError) as exc:  # a NUL, a name too long, a component not a directory
        raise InvalidPathError(f"invalid local directory {dest!r}: {exc}", details={"path": dest}) from None
    if not stat_.S_ISDIR(st.st_mode):
        raise NotDirectoryError(f"{dest}: not a directory", details={"path": dest})
    try:
        with os.scandir(dest) as it:
            held = next(it, None) is not None
    except OSError as exc:
        raise InvalidPathError(f"invalid local directory {dest!r}: {exc}", details={"path": dest}) from None
    if held:
        raise DirectoryNotEmptyError(
            f"{dest}: not an empty directory (a copy writes through what is there)",
            hint="materialize into a new or empty directory",
            details={"path": dest},
        )


def materialize(ws: Copied, dest: str, progress: Callable[[int], None] | None = None) -> int:
    """Write ``ws``'s files into local directory ``dest``; returns the file count."""
    check_dest(dest)
    count = 0
    shown = ws.visible_filter()
    for de in ws.walk(""):
        if shown is not None and not shown(de.path, de.kind):
            continue  # a hidden path is not copied out (what is below it neither)
        target = os.path.join(dest, de.path)
        if de.kind is NodeKind.DIR:
            os.makedirs(target, exist_ok=True)
        elif de.kind is NodeKind.SYMLINK:
            os.symlink(ws.read_link(de.path), target)
        elif de.kind is NodeKind.FILE:
            n = ws.resolve(de.path, follow=False)
            with open(target, "wb") as fh:
                fh.write(ws.view.read_node(n))
            if n.mode == MODE_EXEC:
                os.chmod(target, 0o755)
            count += 1
            if progress:
                progress(count)
    return count

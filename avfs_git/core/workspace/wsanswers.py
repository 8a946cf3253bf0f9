"""What a write answers: the blob id of what it left at its path, the next ``expect`` of
its writer. With ``expect`` it is read under the write lock, in the same turn as the write:
read after the lock was let go it could be a racing writer's version, and a writer that
went on from it would overwrite a version it never saw (``tests/test_expect.py`` caught the
CLI and MCP reporting another's version as their write's). :class:`BlobAnswers` is the part
of :class:`.workspace.Workspace` that does this, over its writes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import IO, TYPE_CHECKING, Any, Protocol

from ..errors import IsDirectoryError
from .wschecks import parse_expect

if TYPE_CHECKING:
    from ..types import Stat


class Writer(Protocol):
    """What the answers need of the workspace (:class:`.wswrite.Mutations`, its checks)."""

    def write(
        self,
        path: str,
        data: bytes | IO[bytes],
        *,
        mode: int | None = None,
        parents: bool = True,
        expect: str | None = None,
    ) -> Stat: ...
    def rename(self, src: str, dst: str, *, expect: str | None = None) -> str: ...
    def copy(self, src: str, dst: str, *, recursive: bool = False, expect: str | None = None) -> str: ...
    def blob_of(self, path: str) -> str | None: ...
    def write_lock(self) -> AbstractContextManager[None]: ...
    def _check_expect(self, path: str, expect: str) -> None: ...


class BlobAnswers:
    def write_blob(
        self: Writer, path: str, data: bytes | IO[bytes], *, expect: str | None = None, **kw: Any
    ) -> tuple[Stat, str | None]:
        """:meth:`write`, and the blob id of what it wrote (what the next ``expect`` of
        its writer compares with). With ``expect`` it is read under the write lock: read
        after it, it could be a racing writer's (``tests/test_expect.py`` caught the CLI
        and MCP reporting another's version as their write's, and a writer that went on
        from it overwrote a version it never saw)."""
        if expect is None:
            st = self.write(path, data, **kw)
            return st, self.blob_of(st.path)
        parse_expect(expect)
        with self.write_lock():
            self._check_expect(path, expect)
            st = self.write(path, data, **kw)
            return st, self.blob_of(st.path)

    def rename_blob(self: Writer, src: str, dst: str, *, expect: str | None = None) -> tuple[str, str | None]:
        """:meth:`rename`, and the blob id of what ``dst`` holds after it (None for a
        directory), read under the write lock with ``expect`` (see :meth:`write_blob`)."""
        return _moved_blob(self, lambda: self.rename(src, dst), expect, dst)

    def copy_blob(
        self: Writer, src: str, dst: str, *, recursive: bool = False, expect: str | None = None
    ) -> tuple[str, str | None]:
        """:meth:`copy`, and the blob id of what ``dst`` holds after it (see
        :meth:`rename_blob`)."""
        return _moved_blob(self, lambda: self.copy(src, dst, recursive=recursive), expect, dst)


def _moved_blob(ws: Writer, move: Callable[[], str], expect: str | None, dst: str) -> tuple[str, str | None]:
    if expect is None:
        out = move()
        return out, _file_blob(ws, out)
    parse_expect(expect)
    with ws.write_lock():
        ws._check_expect(dst, expect)
        out = move()
        return out, _file_blob(ws, out)


def _file_blob(ws: Writer, path: str) -> str | None:
    """The blob at ``path``; None for a directory (a move or copy of one)."""
    try:
        return ws.blob_of(path)
    except IsDirectoryError:
        return None

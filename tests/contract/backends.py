"""The doors a contract test drives a fork through: the in-process ``Workspace`` API, or
plain ``os`` calls in a real mount. Both answer the same small set of calls, so one test
body runs on every backend."""

from __future__ import annotations

import os
import stat
from typing import Any

from avfs_git.core.errors import AvfsError

ALL = ("api", "overlay", "fuse")  # every backend: a contract test runs on these by default
MOUNTS = ("overlay", "fuse")  # for what only a mount has: @pytest.mark.backends(*MOUNTS)


class ApiFS:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    def write(self, p: str, data: bytes) -> None:
        self.ws.write(p, data, parents=False)

    def read(self, p: str) -> bytes:
        return bytes(self.ws.read(p))

    def append(self, p: str, data: bytes) -> None:
        self.ws.write(p, self.ws.read(p) + data, parents=False)

    def rename(self, a: str, b: str) -> None:
        self.ws.rename(a, b)

    def unlink(self, p: str) -> None:
        self.ws.remove(p)

    def mkdir(self, p: str) -> None:
        self.ws.mkdir(p)

    def rmdir(self, p: str) -> None:
        self.ws.rmdir(p)

    def symlink(self, target: str, p: str) -> None:
        self.ws.symlink(target, p)

    def readlink(self, p: str) -> str:
        return str(self.ws.read_link(p))

    def set_exec(self, p: str, on: bool) -> None:
        self.ws.chmod(p, on)

    def is_exec(self, p: str) -> bool:
        return bool(self.ws.stat(p).mode == 0o100755)

    def kind(self, p: str) -> str:
        """``file``, ``dir`` or ``symlink``."""
        return str(self.ws.stat(p).kind)

    def exists(self, p: str) -> bool:
        return bool(self.ws.exists(p))

    def listdir(self, p: str) -> list[str]:
        return sorted(e.name for e in self.ws.listdir(p))

    def errno_of(self, fn: Any, *args: Any) -> int:
        try:
            fn(*args)
        except AvfsError as exc:
            return int(exc.errno)
        return 0


class MountFS:
    def __init__(self, root: str, ws: Any) -> None:
        self.root = root
        self.ws = ws  # the workspace behind the mount: status and checkpoints go through it

    def _p(self, p: str) -> str:
        return os.path.join(self.root, p)

    def write(self, p: str, data: bytes) -> None:
        with open(self._p(p), "wb") as fh:
            fh.write(data)

    def read(self, p: str) -> bytes:
        with open(self._p(p), "rb") as fh:
            return fh.read()

    def append(self, p: str, data: bytes) -> None:
        with open(self._p(p), "ab") as fh:
            fh.write(data)

    def rename(self, a: str, b: str) -> None:
        os.rename(self._p(a), self._p(b))

    def unlink(self, p: str) -> None:
        os.unlink(self._p(p))

    def mkdir(self, p: str) -> None:
        os.mkdir(self._p(p))

    def rmdir(self, p: str) -> None:
        os.rmdir(self._p(p))

    def symlink(self, target: str, p: str) -> None:
        os.symlink(target, self._p(p))

    def readlink(self, p: str) -> str:
        return os.readlink(self._p(p))

    def set_exec(self, p: str, on: bool) -> None:
        os.chmod(self._p(p), 0o755 if on else 0o644)

    def is_exec(self, p: str) -> bool:
        return bool(os.stat(self._p(p)).st_mode & 0o100)

    def kind(self, p: str) -> str:
        """``file``, ``dir`` or ``symlink`` (one ``lstat``: its first answer is the one checked)."""
        mode = os.lstat(self._p(p)).st_mode
        return "symlink" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "file"

    def exists(self, p: str) -> bool:
        return os.path.lexists(self._p(p))

    def listdir(self, p: str) -> list[str]:
        return sorted(n for n in os.listdir(self._p(p)) if not (p in ("", ".") and n == ".git"))

    def errno_of(self, fn: Any, *args: Any) -> int:
        try:
            fn(*args)
        except OSError as exc:
            return int(exc.errno or 0)
        return 0

"""Whether the code a warm process imported is still what is on disk: the resident CLI
server's (cli/resident.py) and a process's mount-daemon zygote's (fuse/zygote.py), each a
process that forks what would otherwise start a new interpreter.

The server watches avfs's package directories with inotify from before
it imports anything of them, so an edit, a new or removed module, a rename onto a ``.py``
or a ``touch`` made at any time after is queued in the kernel before the call that
follows it can connect: the server reads the queue when a call comes and, when anything
changed, lets the call run on its own and ends (the next call starts a server with the new
code). The caller sends only the interpreter and the package's place
(cli/client.py ``stamp``). Where inotify cannot be had (no watches left), the server
compares the files' stamp (:func:`files_stamp`) on every call instead. (Moved here from
cli/ so that the zygote, in fuse/, below the front ends, watches its code the same way.)
"""

from __future__ import annotations

import os


def package_dir() -> str:
    """The ``avfs_git`` package directory this module belongs to (absolute)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def files_stamp(root: str | None = None) -> str:
    """The package's ``.py`` files under ``root`` (default: this package) as the sum of
    their mtimes and sizes and their count: any edit, addition or removal changes it. What
    the server compares where it cannot watch the files."""
    total = count = 0
    todo = [root or package_dir()]
    while todo:
        d = todo.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name.endswith(".py"):
                        st = e.stat(follow_symlinks=False)
                        total += st.st_mtime_ns + st.st_size
                        count += 1
                    elif e.is_dir(follow_symlinks=False) and e.name != "__pycache__":
                        todo.append(e.path)
        except OSError:
            continue
    return f"{count} {total}"


class CodeWatch:
    """The package directory under watch (from construction on)."""

    def __init__(self, root: str | None = None) -> None:
        self.root = root or package_dir()
        self._changed = False
        self._fallback: str | None = None
        self._inotify = None
        try:
            from inotify_simple import INotify, flags

            self._flags = flags
            mask = (
                flags.MODIFY
                | flags.ATTRIB
                | flags.CLOSE_WRITE
                | flags.CREATE
                | flags.DELETE
                | flags.MOVED_FROM
                | flags.MOVED_TO
                | flags.DELETE_SELF
                | flags.MOVE_SELF
            )
            ino = INotify(nonblocking=True)
            try:
                for d in self._dirs():
                    ino.add_watch(d, mask)
            except OSError:
                ino.close()
                raise
            self._inotify = ino
        except (ImportError, OSError):
            self._fallback = files_stamp(self.root)

    def _dirs(self) -> list[str]:
        out = []
        for d, subdirs, _files in os.walk(self.root):
            subdirs[:] = [s for s in subdirs if s != "__pycache__"]
            out.append(d)
        return out

    def changed(self) -> bool:
        """Whether anything of the code changed since construction (once true, always)."""
        if self._changed:
            return True
        if self._inotify is None:
            self._changed = files_stamp(self.root) != self._fallback
            return self._changed
        f = self._flags
        try:
            events = self._inotify.read(timeout=0)
        except OSError:
            events = []
            self._changed = True
        for ev in events:
            if ev.mask & (f.Q_OVERFLOW | f.IGNORED | f.DELETE_SELF | f.MOVE_SELF):
                self._changed = True
            elif ev.mask & f.ISDIR:
                self._changed |= ev.name != "__pycache__"
            elif ev.name.endswith(".py"):
                self._changed = True
        return self._changed

    def close(self) -> None:
        """Stop watching (the server is leaving); :meth:`changed` is true from then on."""
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
            self._changed = True

"""What names the avfs code a CLI call runs: the resident server (:mod:`.resident`) serves
only calls whose stamp is its own, and only while its code is unchanged on disk
(:mod:`.codewatch`). Imports nothing beyond Python's start-up (the console script computes
the stamp before it knows whether a server answers)."""

import posix
import sys


def package_dir() -> str:
    """The ``avfs_git`` package directory this module belongs to, as ``os.path.abspath``
    would give it (without importing :mod:`os`: the console script's served path does not)."""
    path = __file__ if __file__.startswith("/") else posix.getcwd() + "/" + __file__
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts[:-2])


def stamp() -> str:
    """The code a call runs, as the caller sends it: this interpreter (path and version) and
    the avfs package's directory. Edits of the files there are the server's to see: it
    watches them from before it imports them (:class:`.codewatch.CodeWatch`), so the caller
    stats nothing (a stat of each of ~200 files cost ~1 ms a call)."""
    return f"{sys.executable} {sys.version_info[:3]} {package_dir()}"


def files_stamp(root: "str | None" = None) -> str:
    """The package's ``.py`` files under ``root`` (default: this package) as the sum of
    their mtimes and sizes and their count: any edit, addition or removal changes it. What
    the server compares where it cannot watch the files."""
    import os

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

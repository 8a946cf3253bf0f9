"""What names the avfs code a CLI call runs: the resident server (:mod:`.resident`) serves
only calls whose stamp is its own, and only while its code is unchanged on disk
(:mod:`.codewatch`). The stamp itself is computed by the console script's module,
:mod:`.client` (:func:`stamp`, :func:`package_dir`: re-exported here), before it knows
whether a server answers, with nothing imported: a served call loads that one module of
avfs (see :mod:`.launcher`)."""

from .client import package_dir, stamp

__all__ = ["files_stamp", "package_dir", "stamp"]


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

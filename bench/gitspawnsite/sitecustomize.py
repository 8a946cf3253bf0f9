"""(h-gitspawn1) Log every git process a Python process starts, and who started it.

With this directory on ``PYTHONPATH`` and ``GITSPAWN_LOG`` naming a file, each
``subprocess.Popen`` of git appends one line: the test running (``PYTEST_CURRENT_TEST``),
the innermost ``avfs_git`` frames that led to it (or ``-`` when no avfs code is on the
stack: a test's own git, its oracle), the innermost ``tests/`` or ``bench/`` frame, and git's
subcommand and first arguments. ``bench/gitspawns.py`` and the suite sample of
docs/benchmarks.md's h-gitspawn1 section read it."""

import os
import subprocess
import sys

_LOG = os.environ.get("GITSPAWN_LOG")
_init = subprocess.Popen.__init__


def _frames():
    f = sys._getframe(2)
    ours, theirs = [], ""
    while f is not None:
        name = f.f_code.co_filename
        if "/avfs_git/" in name and len(ours) < 4:
            mod = name.split("/avfs_git/", 1)[1].removesuffix(".py").replace("/", ".")
            ours.append(f"{mod}:{f.f_code.co_name}")
        elif not theirs and ("/tests/" in name or "/bench/" in name):
            theirs = f"{os.path.basename(name)}:{f.f_code.co_name}"
        f = f.f_back
    return ours, theirs


def _logged(self, args, *a, **kw):
    try:
        argv = [args] if isinstance(args, (str, bytes)) else list(args)
        prog = os.path.basename(os.fsdecode(argv[0])) if argv else ""
        if prog == "git" or (prog in ("sh", "bash") and "git " in " ".join(map(str, argv[1:]))[:200]):
            ours, theirs = _frames()
            words = " ".join(os.fsdecode(x) if isinstance(x, bytes) else str(x) for x in argv[1:])
            line = "\t".join(
                (
                    os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0],
                    " < ".join(ours) or "-",
                    theirs or "-",
                    words.replace("\n", " ")[:240],
                )
            )
            fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\n").encode("utf-8", "replace"))
            finally:
                os.close(fd)
    except Exception:
        pass
    _init(self, args, *a, **kw)


if _LOG:
    subprocess.Popen.__init__ = _logged

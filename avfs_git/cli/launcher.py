"""The ``avfs`` console script as ``make install`` writes it: the interpreter without ``site``.

pip's console script starts Python the ordinary way, and ``site`` then scans the venv's
site-packages and runs its ``.pth`` files (setuptools' distutils shim, the editable
install's path): 3-7 ms of a call whose whole budget, served by the resident server, is
about twice ``python -S -c pass``. The script written here runs the same interpreter with
``-S`` and appends the directory avfs is installed in to ``sys.path`` (where site-packages
would be, after ``PYTHONPATH`` and the standard library: an avfs on ``PYTHONPATH`` still
wins, as with pip's script). Without ``PYTHONPATH``, it loads ``avfs_git/cli/client.py``
by its path, not through its packages: the search of ``sys.path`` for ``avfs_git`` and the
two ``__init__`` modules, with the stamp's module (now in ``client.py``), were ~0.9 M of
the ~4.5 M instructions a served call added to Python's own ~28 M start-up (callgrind);
the packages load when a call needs more. A call served by the resident server, and
`proxy exec` answered by a mount's daemon, import nothing else; every other path runs
``site`` itself before it imports anything outside avfs and the standard library
(:func:`.execopts.with_site`), so the click CLI, pygit2 and the ``.pth`` files are there
as before. ``python -m avfs_git`` and pip's own script keep working unchanged.

``python -m avfs_git.cli.launcher PATH`` writes it (atomically, mode 0755) at ``PATH``.
"""

from __future__ import annotations

import os
import sys

# the kernel reads at most this much of a "#!" line (127 before Linux 5.1); a longer one
# takes the shell trampoline pip uses for the same case
SHEBANG_MAX = 127

BODY = """\
# avfs's console script, written by `make install` (python -m avfs_git.cli.launcher):
# Python starts without site (-S); avfs runs site itself when a call needs more than the
# standard library (avfs_git/cli/launcher.py)
import sys

sys.path.append({root!r})


def _client():
    # a call the resident server answers needs avfs_git/cli/client.py alone: loaded by its
    # path, without avfs_git and avfs_git.cli (their search on sys.path and their
    # __init__), which load when a call needs more. Not with PYTHONPATH set: an avfs there
    # is the one that runs (import it as any other)
    import posix

    if b"PYTHONPATH" not in posix.environ:
        from _frozen_importlib import module_from_spec
        from _frozen_importlib_external import spec_from_file_location

        spec = spec_from_file_location("avfs_git.cli.client", {client!r})
        module = module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
            return module.main
        except OSError:
            del sys.modules[spec.name]
    from avfs_git.cli.client import main

    return main


if __name__ == "__main__":
    sys.exit(_client()())
"""


def package_root() -> str:
    """The directory that holds the ``avfs_git`` package this module belongs to."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def script(python: str, root: str) -> str:
    """The launcher's text: ``python -S`` running avfs from ``root``."""
    head = f"#!{python} -S\n"
    if len(head) > SHEBANG_MAX or " " in python:
        quoted = python.replace("'", "'\"'\"'")
        head = f"#!/bin/sh\n'''exec' '{quoted}' -S \"$0\" \"$@\"\n' '''\n"
    return head + BODY.format(root=root, client=os.path.join(root, "avfs_git", "cli", "client.py"))


def write(path: str, python: str | None = None, root: str | None = None) -> None:
    """Write the launcher at ``path`` (replacing pip's script there), for ``python``
    (default: this interpreter) and avfs at ``root`` (default: this package's)."""
    text = script(python or sys.executable, root or package_root())
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """``python -m avfs_git.cli.launcher PATH``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m avfs_git.cli.launcher PATH", file=sys.stderr)
        return 2
    write(args[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())

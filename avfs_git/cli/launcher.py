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

``python -m avfs_git.cli.launcher PATH`` writes it (atomically, mode 0755) at ``PATH``: where
a C compiler is there, as a native program (``launcher.c``, built for this interpreter and
checkout) that hands a call to the resident server without starting Python at all, and
runs this script's text (``python -S -c``) for every call it does not serve; else as the
script. ``--script`` writes the script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

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


def write(
    path: str,
    python: str | None = None,
    root: str | None = None,
    *,
    native: bool = True,
    cflags: tuple[str, ...] = (),
) -> bool:
    """Write the launcher at ``path`` (replacing pip's script there), for ``python``
    (default: this interpreter) and avfs at ``root`` (default: this package's): the native
    program when ``native`` and it builds (with the compiler flags ``cflags`` besides its
    own: a sanitizer's, say), else the script. True when it is native."""
    python, root = python or sys.executable, root or package_root()
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        if native and _build(tmp, python, root, os.path.abspath(path), cflags):
            os.chmod(tmp, 0o755)
            os.replace(tmp, path)
            return True
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(script(python, root))
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
        return False
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def c_string(text: str) -> str:
    """``text`` as a C string literal: every byte but letters and digits as an octal escape
    (no hex escape runs on, no trigraph forms)."""
    return (
        '"' + "".join(chr(b) if chr(b).isalnum() and b < 128 else f"\\{b:03o}" for b in text.encode()) + '"'
    )


def _build(out: str, python: str, root: str, self_path: str, cflags: tuple[str, ...] = ()) -> bool:
    """Compile ``launcher.c`` into ``out`` for ``python`` and ``root``; False when there is no
    C compiler or the build fails (the script is written instead)."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return False
    # the stamp exactly as the client computes it in a process of that interpreter
    probe = "import sys; sys.path.append(sys.argv[1]); from avfs_git.cli.client import stamp; print(stamp())"
    try:
        got = subprocess.run(
            [python, "-S", "-c", probe, root], capture_output=True, text=True, timeout=60, env=_clean_env()
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    if got.returncode != 0 or not got.stdout.strip():
        return False
    body = f"import sys\nsys.path[0:1] = []\nsys.argv[0] = {self_path!r}\n" + BODY.format(
        root=root, client=os.path.join(root, "avfs_git", "cli", "client.py")
    )
    defines = {
        "AVFS_PYTHON": python,
        "AVFS_STAMP": got.stdout.rstrip("\n"),
        "AVFS_SELF": self_path,
        "AVFS_BODY": body,
        "AVFS_ROOT_REPR": repr(root),
        "AVFS_SELF_REPR": repr(self_path),
    }
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.c")
    with tempfile.TemporaryDirectory(prefix="avfs-launcher-") as tmp:
        header = os.path.join(tmp, "defines.h")
        with open(header, "w", encoding="utf-8") as fh:
            fh.write("".join(f"#define {k} {c_string(v)}\n" for k, v in defines.items()))
        try:
            done = subprocess.run(
                [cc, "-O2", "-Wall", *cflags, "-include", header, "-o", out, src],
                capture_output=True,
                text=True,
                timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
    if done.returncode != 0:
        sys.stderr.write(f"avfs: the native launcher did not build; the script is installed\n{done.stderr}")
        return False
    return True


def _clean_env() -> dict[str, str]:
    """This environment without what would load another avfs or profile the probe."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONPROFILEIMPORTTIME", "PYTHONSTARTUP")
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m avfs_git.cli.launcher PATH``."""
    args = list(sys.argv[1:] if argv is None else argv)
    native = "--script" not in args
    args = [a for a in args if a != "--script"]
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m avfs_git.cli.launcher [--script] PATH", file=sys.stderr)
        return 2
    write(args[0], native=native)
    return 0


if __name__ == "__main__":
    sys.exit(main())

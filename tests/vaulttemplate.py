"""The vault the ``vault`` fixture gives (tests/conftest.py), made once a process and copied.

``home.create_vault("v")`` in a fresh home costs ~12 ms of CPU (the bare repository, its
first commit, the op log and the overlay's template databases, the home's config); a copy
of the same files and the vault opened ~3 ms, and 1,271 of the suite's tests ask for the
fixture. The template is made by ``create_vault`` itself, the first time a process needs
it, in the hermetic set-up of that test (the same author, git config and layers switch
every test has; the author and ``layers="off"`` given, not read), checked once by ``git fsck --strict``, and copied whole (no hard links:
a test may damage its vault's objects on purpose) into a home that does not exist yet,
made by conftest's own ``home`` fixture; any other home (a module's own fixture, one
already written to, the layers file system under ``AVFS_TEST_LAYERS=1``) gets
``create_vault`` as before. A copy is the state ``create_vault`` leaves, but for the
times it wrote (the first commit's, the op log's first entry's: the template's). Every
test that took a copy checks, as it ends, that the template is as it was made."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from avfs_git.core.vaults.home import Home

_made: dict[str, object] = {}  # "dir": the template's home, "print": what it held then


def _print(top: str) -> dict[str, tuple[int, int, int, int]]:
    """Every entry under ``top``: its mode, size, change time and inode (a write, a chmod,
    a rename, an entry added or removed anywhere in it changes this)."""
    out = {}
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            out[os.path.relpath(p, top)] = (st.st_mode, st.st_size, st.st_ctime_ns, st.st_ino)
    return out


def _make(where: Path, author: tuple[str, str], **kw: object) -> str:
    top = str(where / "vault-template" / "avfs-home")
    h = Home(top, author=author, **kw)  # type: ignore[arg-type]
    try:
        h.create_vault("v")
    finally:
        h.close()
    v = os.path.join(top, "vaults", "v.git")
    proc = subprocess.run(
        ["git", "--git-dir", v, "fsck", "--strict", "--no-dangling", "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), f"git fsck {v}: {proc.stdout}{proc.stderr}"
    _made["dir"], _made["print"] = top, _print(top)
    return top


def copy_into(home: Home, where: Path, author: tuple[str, str], **kw: object) -> None:
    """Put the template's home (vault ``v``, the default) at ``home.path``, which must not
    exist; the template is made under ``where`` (the session's base temp dir) first."""
    top = str(_made["dir"]) if "dir" in _made else _make(where, author, **kw)
    unchanged()
    shutil.copytree(top, home.path, symlinks=True, copy_function=shutil.copy)


def unchanged() -> None:
    """The template is as it was made: no test wrote to it (they write to their copies)."""
    if "dir" in _made:
        now = _print(str(_made["dir"]))
        assert now == _made["print"], f"the vault template {_made['dir']} was changed by a test"


def template_dir() -> str | None:
    """Where the template is, once made (for the guard's own test)."""
    return str(_made["dir"]) if "dir" in _made else None

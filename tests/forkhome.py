"""An avfs home holding vault ``v`` and its fork ``f`` (a.txt, d/c.txt: tests/gitmount.py's
:func:`~tests.gitmount.mount_fork`), made once by the CLI for a module and copied into each
test's own ``AVFS_HOME``, for the files whose every test mounts that fork and whose point is
not how the vault is made: two CLI processes a test fewer (``vault create``, ``vault fork``;
tests/contract/test_git_in_mount.py took ~1 s of each test's ~2 s set-up for them). The
copy is the test's own (its vault, objects and op log), so tests stay independent; the
home names no path of its own (checked when it is made). With ``AVFS_TEST_LAYERS=1`` the
forks' state lives in a per-home file system image, which a copy does not carry: each test
makes its vault anew there (:func:`mount_copied_fork` falls back to ``mount_fork``).

:func:`process_fork_home` is the same home made once a process (under the session's base
temp dir), for tests/gitmount.py's ``mount_fork`` itself: its callers elsewhere
(tests/contract/test_git_attributes.py, test_git_fork_ref.py, test_git_move_at_unmount.py,
tests/test_adv_githead.py) get the copy too, and a check, at each copy, that no test wrote
to the one made."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .conftest import AUTHOR, LAYERS, scratch_home
from .gitmount import mount_fork


def make_fork_home(top: Path) -> Path | None:
    """The home under ``top`` (made there by ``avfs vault create v --from SRC`` and ``avfs
    vault fork v:main f`` in an environment as the hermetic fixture sets it); None with
    ``AVFS_TEST_LAYERS=1``."""
    if LAYERS:
        return None
    user, home, src = top / "userhome", top / "avfs-home", top / "src"
    (src / "d").mkdir(parents=True)
    (src / "a.txt").write_text("one\n")
    (src / "d" / "c.txt").write_text("c\n")
    user.mkdir()
    (user / ".gitconfig").write_text(
        f"[user]\n\tname = {AUTHOR[0]}\n\temail = {AUTHOR[1]}\n[init]\n\tdefaultBranch = main\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "AVFS_"))}
    env.update(
        HOME=str(user),
        XDG_CONFIG_HOME=str(user / ".config"),
        AVFS_HOME=str(home),
        AVFS_SERVER="off",
        AVFS_LAYERS="off",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME=AUTHOR[0],
        GIT_AUTHOR_EMAIL=AUTHOR[1],
        GIT_COMMITTER_NAME=AUTHOR[0],
        GIT_COMMITTER_EMAIL=AUTHOR[1],
    )
    for args in (("vault", "create", "v", "--from", str(src)), ("vault", "fork", "v:main", "f")):
        done = subprocess.run(
            [sys.executable, "-m", "avfs_git", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    # a copy elsewhere is the same home only if nothing in it names where it is (the op log
    # names the source directory in its message of the create: words, not a path it reads)
    named = subprocess.run(["grep", "-rlaF", str(home), str(home)], capture_output=True, text=True)
    assert named.returncode == 1 and not named.stdout, named.stdout
    return home


@contextlib.contextmanager
def mount_copied_fork(
    made: Path | None, cli_proc: Any, tmp_path: Path, backend: str, in_process: bool = False
) -> Iterator[tuple[Path, Any]]:
    """``mount_fork``'s (mount point, run avfs there), its home a copy of ``made`` (from
    :func:`make_fork_home`) at the test's ``AVFS_HOME``."""
    with mount_fork(cli_proc, tmp_path, backend, made=made, in_process=in_process) as m:
        yield m


_made: dict[str, Any] = {}  # "home": the process' own, "print": what it held when made


def _print(top: Path) -> dict[str, tuple[int, int, int, int]]:
    """Every entry under ``top``: mode, size, change time, inode (any write changes it)."""
    out = {}
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            st = os.lstat(os.path.join(d, n))
            out[os.path.relpath(os.path.join(d, n), top)] = (
                st.st_mode,
                st.st_size,
                st.st_ctime_ns,
                st.st_ino,
            )
    return out


def process_fork_home() -> Path | None:
    """:func:`make_fork_home`'s home made once this process (the first time a test asks),
    under the session's base temp dir; checked unchanged at every later call (a test
    writes to its copy, never to this). None with ``AVFS_TEST_LAYERS=1``."""
    if LAYERS:
        return None
    if "home" not in _made:
        top = Path(scratch_home("fork-home-"))
        home = make_fork_home(top)
        assert home is not None
        _made["home"], _made["print"] = home, _print(home)
    home = _made["home"]
    assert _print(home) == _made["print"], f"the fork home {home} was changed by a test"
    return Path(home)

"""One mount of tests/gitmount.py's fork ``f`` (vault ``v``: a.txt, d/c.txt) shared by a
module's tests on a backend, with a checked reset between them (suitetime2).

A mount's fixed cost (its daemon's start and end, the worktree, the ready sandbox: ~0.2 s of
CPU, docs/testing.md "suitetime1") was paid by every test that mounts. Where a test needs
only "fork ``f`` mounted, at its first commit, nothing changed", it gets the module's mount
(:class:`SharedFork`); after it, the fork is put back and **checked** to be that state
again, cheaply but in full (:meth:`SharedFork.reset`):

- the mount is there on its backend, its daemon the one registered and alive, the only
  mount of its home;
- git in the mount is on the fork's branch with nothing in progress; where the branch
  moved or anything is changed, ``avfs checkpoint restore`` takes the fork back to its
  first commit (what a person does; the state discarded is kept under a recovery ref);
- then: the branch at the first commit, ``avfs status`` clean at that base, ``git status``
  clean with nothing untracked or ignored, every file's bytes and mode as at the start and
  no other file, the index's entries and their bits as at the start, the git dir's own
  files (config, hooks, info, in-progress states, a shared index) as at the start, the
  vault's refs as at the start but the recovery refs the restores made and the refs avfs
  holds for git's gc, and ``git fsck --strict`` (the hermetic fixture's check of a test's
  vaults: the shared home is not under the test's ``tmp_path``).

Anything else (a daemon killed, a mount unmounted or moved, a backend changed, a ref or a
config a test made, a check that fails) and the mount is dropped and made anew from a fresh
copy of the home: the next test starts from a new mount, as before. Each test's
``AVFS_HOME`` is the shared home for its duration, so the CLI, in process or as a process,
finds the fork. Tests whose history is their point (remounts, killed daemons, a second
mount of the fork) keep a mount of their own (:func:`tests.gitmount.mount_fork`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.store.locks import start_ticks
from avfs_git.core.vaults.registry import mounted_at

from .conftest import AUTHOR, run_in_process
from .gitmount import _git, warm_daemons

# where a restore keeps the state it discarded: the reset's own restores' refs are dropped
_RECOVERY = "refs/avfs/recovery/"
# refs that may differ after a reset: what avfs holds of the overlay for git's gc
_MOVABLE_REFS = ("refs/avfs/held/",)
# a worktree git dir's files that git or avfs rewrite with no change of state (the index's
# stat data, logs, the last fetch or commit message); the index is compared by its entries
_VOLATILE = {"index", "logs", "ORIG_HEAD", "FETCH_HEAD", "COMMIT_EDITMSG", "AUTO_MERGE", "gitdir"}


def _files(mp: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry under ``mp`` but ``.git``: its mode and bytes (a link's target)."""
    out: dict[str, tuple[int, bytes]] = {}
    for d, dirs, files in os.walk(mp):
        if d == str(mp):
            dirs[:] = [x for x in dirs if x != ".git"]
            files = [x for x in files if x != ".git"]
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                body = os.readlink(p).encode()
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as fh:
                    body = fh.read()
            else:
                body = b""
            out[os.path.relpath(p, mp)] = (st.st_mode, body)
    return out


def _gitdir_files(git_dir: Path) -> dict[str, bytes]:
    """The worktree git dir's own files but :data:`_VOLATILE`: their bytes."""
    out: dict[str, bytes] = {}
    for d, dirs, files in os.walk(git_dir):
        rel = os.path.relpath(d, git_dir)
        if rel.split(os.sep)[0] in _VOLATILE:
            dirs[:] = []
            continue
        for n in files:
            r = os.path.normpath(os.path.join(rel, n))
            if r in _VOLATILE or r.endswith(".lock"):
                if r.endswith(".lock"):
                    out[r] = b"(a lock left)"
                continue
            p = os.path.join(d, n)
            with open(p, "rb") as fh:
                out[r] = fh.read()
    return out


class SharedFork:
    """Fork ``f`` mounted once on ``backend`` under ``top`` (a module's temp dir), its home a
    copy of ``made`` (tests/forkhome.py's); see the module's docstring."""

    def __init__(self, top: Path, backend: str, made: Path) -> None:
        self.top, self.backend, self.made = top, backend, made
        self.n = 0  # mounts made
        self.shared = 0  # tests that got the mount as the one before left it
        self.mp: Path | None = None
        self.home: Path | None = None
        self.known: dict[str, Any] = {}
        self.pid: int | None = None  # the mount's daemon, and its start (a pid given anew)
        self.ticks: int | None = None
        self.head = ""  # the fork's first commit
        self.git_dir = top
        self.user = top / "userhome"
        self.user.mkdir(exist_ok=True)
        (self.user / ".gitconfig").write_text(
            f"[user]\n\tname = {AUTHOR[0]}\n\temail = {AUTHOR[1]}\n[init]\n\tdefaultBranch = main\n"
            '[protocol "file"]\n\tallow = always\n'
        )

    def _env(self) -> dict[str, str]:
        assert self.home is not None
        return {
            "AVFS_HOME": str(self.home),
            "HOME": str(self.user),
            "XDG_CONFIG_HOME": str(self.user / ".config"),
        }

    def _avfs(self, *args: str) -> Any:
        assert self.mp is not None
        with warm_daemons():
            return run_in_process(list(args), cwd=str(self.mp), env=self._env())

    def _mount(self) -> None:
        self.n += 1
        where = self.top / f"mount{self.n}"
        where.mkdir()
        self.home, self.mp = where / "avfs-home", where / "m"
        shutil.copytree(self.made, self.home, symlinks=True)
        self.mp.mkdir()
        with warm_daemons() as asked:
            res = run_in_process(
                ["--vault", "v:f", "mount", "--backend", self.backend, str(self.mp)], env=self._env()
            )
        assert res.code == 0, res.err
        assert asked == [False], asked
        self.git_dir = Path(_git(self.mp, "rev-parse", "--absolute-git-dir").stdout.strip())
        self.known = self._state()
        assert len(self.known["mounts"]) == 1, self.known["mounts"]
        self.pid = int(self.known["mounts"][0][1])
        self.ticks = start_ticks(self.pid)
        self.head = _git(self.mp, "rev-parse", "HEAD").stdout.strip()

    def _state(self) -> dict[str, Any]:
        """What the reset checks is as it was at the mount (see the module's docstring):
        three git processes, the rest read in this process."""
        mp, home = self.mp, self.home
        assert mp is not None and home is not None
        vault = home / "vaults" / "v.git"
        refs = _git(mp, "--git-dir", str(vault), "for-each-ref", "--format=%(refname) %(objectname)").stdout
        st = self._avfs("--json", "status")
        assert st.code == 0, st.err
        doc = st.json()
        return {
            # HEAD, its branch and every change git sees, untracked and ignored files too
            "status": _git(
                mp, "status", "--porcelain=v2", "--branch", "--ignored", "--untracked-files=all"
            ).stdout,
            "avfs": (doc["clean"], doc["stale"], doc["head"], doc["base"], doc.get("changes")),
            "entries": _git(mp, "ls-files", "-s", "-v").stdout,  # (with the skip-worktree bits)
            "files": _files(mp),
            "gitdir": _gitdir_files(self.git_dir),
            "refs": sorted(ln for ln in refs.splitlines() if not ln.split(" ")[0].startswith(_MOVABLE_REFS)),
            "mounts": self._records(),
        }

    def _records(self) -> list[tuple[str, Any, Any, Any]]:
        """The home's mount records (the vault's only): key, daemon, mount point, backend."""
        assert self.home is not None
        d = self.home / "vaults" / "v.git" / "avfs" / "mounts"
        out = []
        for n in sorted(os.listdir(d)):
            if n.endswith(".json"):
                rec = json.loads((d / n).read_text())
                out.append((n, rec.get("pid"), rec.get("mountpoint"), rec.get("backend")))
        return out

    def _alive(self) -> bool:
        """Still the mount made: mounted, its daemon (the same process) running."""
        return (
            self.mp is not None
            and self.pid is not None
            and mounted_at(str(self.mp))
            and start_ticks(self.pid) == self.ticks
        )

    def reset(self) -> bool:
        """The fork back at its first commit and checked to be the state it was mounted in;
        False (the caller remounts) where it cannot be or is not."""
        mp, home = self.mp, self.home
        assert mp is not None and home is not None
        try:
            if not self._alive():
                return False  # unmounted, killed
            now = self._state()
            if now == self.known:
                return True
            if any(now[k] != self.known[k] for k in ("gitdir", "mounts")):
                return False  # git's own state (a rebase, a sparse checkout, a config), a remount
            if now["status"].split("\n")[1] != self.known["status"].split("\n")[1]:
                return False  # off the fork's branch ("# branch.head")
            # git moves the branch back, as a person would (the mount follows it), and takes
            # what is not tracked away; the restores' recovery refs (none at the start) go
            _git(mp, "reset", "-q", "--hard", self.head)
            _git(mp, "clean", "-q", "-f", "-d", "-x")
            vault = str(home / "vaults" / "v.git")
            made = _git(mp, "--git-dir", vault, "for-each-ref", "--format=%(refname)", _RECOVERY).stdout
            for ref in made.split():
                _git(mp, "--git-dir", vault, "update-ref", "-d", ref)
            return bool(self._state() == self.known)
        except (OSError, ValueError, AssertionError, subprocess.SubprocessError):
            return False

    def drop(self) -> None:
        """Unmount (lazily where it is gone or busy) and forget the mount."""
        if self.mp is None:
            return
        with contextlib.suppress(Exception):
            self._avfs("--vault", "v:f", "unmount", str(self.mp))
        if mounted_at(str(self.mp)):
            subprocess.run(["umount", "-l", str(self.mp)], check=False, capture_output=True)
        self.mp = None

    @contextlib.contextmanager
    def use(self, mp_patch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Any]]:
        """(mount point, run avfs there in the test's process), the test's ``AVFS_HOME`` the
        shared home; after the test, the checked reset (a new mount where it fails)."""
        if self.mp is None:
            self._mount()
        else:
            self.shared += 1
        assert self.mp is not None and self.home is not None
        mp_patch.setenv("AVFS_HOME", str(self.home))
        mp = self.mp

        def avfs(*args: str) -> Any:
            with warm_daemons():  # (a remount too)
                return run_in_process(list(args), cwd=str(mp))

        try:
            yield mp, avfs
        finally:
            # the hermetic fixture's check of the vaults a test leaves (this one is not under
            # the test's tmp_path): a failure is the test's, not a reason to remount
            from .conftest import _fsck_every_vault

            try:
                _fsck_every_vault(self.home / "vaults")
            finally:
                if not self.reset():
                    self.drop()

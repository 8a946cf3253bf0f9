"""avfs's mount side, as the workspace is given it (:class:`~.workspace.MountSide`): each
question a workspace asks of a live mount of its fork, answered by mount/live.py. The
composition root of the Python API: :func:`open_home` is ``avfs_git.open_home``, and every
front end opens its home with it (core never imports this package: tests/test_layers.py).

mount/live.py (and the index code under it) is imported on a workspace's first question:
a command that never opens a workspace (`avfs gc`) does not load it."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from ..core.settings import Settings

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from .ownfiles import MountedFork


class WorktreeSide:
    """A live mount of a workspace's fork, reached through its worktree git dir, the mount
    registry and the mount's daemon. Holds nothing: one instance serves every home."""

    __slots__ = ()

    def overlay_mountpoint(self, ws: MountedFork) -> str | None:
        from . import live

        return live.overlay_mountpoint(ws.vault, ws.fork)

    def files_dir(self, ws: MountedFork) -> str:
        from .ownfiles import files_dir

        return files_dir(ws.vault, ws.fork)

    def live_fuse_mount(self, ws: MountedFork) -> bool:
        from . import live

        return live.live_fuse_mount(ws)

    def show_written(self, ws: MountedFork, seq: int) -> None:
        from . import live

        live.show_written(ws, seq)

    def sync_mounted(self, ws: MountedFork, *, view_changed: bool, index: bool = True) -> None:
        from . import live

        live.sync_mounted(ws, view_changed=view_changed, index=index)

    def staged(self, ws: MountedFork) -> list[str] | None:
        """mount/indexexact.py ``staged_paths`` of the live mount's index against the base
        ([]: no mount is live, or no index; a version 4 index expanded first)."""
        from .live import live_git_dir
        from .ownfiles import CLEAN_FILE, MAX_INDEX, files_dir, read_bytes, read_text

        git_dir, base = live_git_dir(ws), ws.base
        try:  # (the index a merge of avfs wrote, holding exactly its commit: untouched since)
            st = None if git_dir is None else os.stat(os.path.join(git_dir, "index"))
        except OSError:
            st = None
        if st is not None and read_text(os.path.join(files_dir(ws.vault, ws.fork), CLEAN_FILE)) == (
            f"{st.st_ino} {st.st_mtime_ns} {st.st_size}"
        ):
            return []
        data = None if git_dir is None else read_bytes(os.path.join(git_dir, "index"), MAX_INDEX)
        if data is None or base is None:
            return []
        from .indexexact import staged_paths  # (a merge into a mounted fork's only)

        if data[:8] == b"DIRC\0\0\0\4":
            from .indexv4 import expanded

            data = expanded(data)
        return None if data is None else staged_paths(ws.store, data, ws.store.commit_tree(base))

    def moved_here(self, ws: MountedFork, commit: str, *, off_branch: bool = False) -> bool:
        from . import live

        return live.moved_here(ws, commit, off_branch=off_branch)

    def git_state(self, ws: MountedFork) -> dict[str, str | None] | None:
        from . import live

        return live.git_state(ws)

    def merge_given_up(self, ws: MountedFork, theirs: str) -> bool:
        from . import live

        return live.merge_given_up(ws, theirs)

    def staged_gitlinks(self, ws: MountedFork, paths: list[str]) -> dict[str, str]:
        from . import live
        from .indexflags import staged_gitlinks

        found = staged_gitlinks(ws, paths)
        if found and live.live_git_dir(ws) is None:
            return {}  # (a killed mount's leftover index: nobody runs git there)
        return found

    def worktree_git_dir(self, ws: MountedFork) -> str | None:
        from .ownfiles import worktree_dir

        d = worktree_dir(ws.vault, ws.fork)
        if os.path.isdir(d):
            return d
        # unmounted: the git dir its unmount kept, whose config.worktree names the person's
        # core.fileMode where they set one (mount/gitkeep.py ``_keep_file_mode``, gitmodel19)
        from ..core.vaults.registry import gitkept_dir

        kept = os.path.join(gitkept_dir(ws.vault.state_dir, ws.fork), "git")  # (gitkeep.GIT)
        return kept if os.path.isdir(kept) and not os.path.islink(kept) else None

    def stamp_current(self, ws: MountedFork, *, held: bool = False) -> None:
        from . import live

        live.stamp_current(ws, held=held)

    def index_guard(
        self, ws: MountedFork, *, git: bool = False
    ) -> AbstractContextManager[Callable[[str], Callable[[bool], None] | None] | None]:
        from . import live

        return live.index_guard(ws, git=git)


MOUNT_SIDE = WorktreeSide()


def open_home(
    path: str | None = None, *, settings: Settings | None = None, writer: str | None = None
) -> Home:
    """Open (and create on first write) the avfs home at ``path`` (else ``settings.home``:
    ``$AVFS_HOME`` or ``~/.avfs``) with avfs's mount side: ``avfs_git.open_home``.

    A front end: ``settings`` is what the caller read from the environment; None reads
    this process's (:meth:`.Settings.from_environ`, ``path`` as ``--home``), so the Python
    API works without building one. The home's commits take git's ``GIT_AUTHOR_*`` and
    ``GIT_COMMITTER_*`` from this process's environment (:mod:`.identity`). ``writer``:
    who writes through it when not the CLI or the API (``mcp``), for `avfs watch`."""
    from ..core.store.identity import from_environ
    from ..core.vaults.home import Home
    from ..policy.pathsource import POLICY_PATHS

    if settings is None:
        settings = Settings.from_environ(None, path)
    return Home(
        path or settings.home,
        mounts=MOUNT_SIDE,
        identity=from_environ(),
        settings=settings,
        paths=POLICY_PATHS,
        writer=writer,
    )

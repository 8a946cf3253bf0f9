"""The git model's steps of its fourteenth round (gitmodel14, tests/test_git_model.py runs
them): a remount whatever git has staged or open (git's own state outlives the mount
since gitmodel14: docs/fuse.md "What a remount keeps of git's own state"), a checkpoint
made while the fork is not mounted (the index patched as after one made while mounted),
and a directory a nested `.gitignore` hid, files at every depth below it, shown again by a
commit that removes the rule (and hidden again by one that puts it back).

A mixin of :class:`tests.test_git_model.GitModel`, as
:class:`.gitmodel_steps13.ThirteenthRoundSteps`. Each step's non-git actions are noted in
a line tests/replay_gitmodel.py replays."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .gitmodel_attrs import ModelAttrs


class FourteenthRoundSteps(ModelAttrs):
    """The steps; see the module's docstring."""

    # what else the model has (annotations only: the model's own are used)
    check: Any
    write_all: Any
    plain_checkpoint: Any
    remount_now: Any
    _tick: Any

    # -- avfs's own mount, whatever git has open ---------------------------------------------
    @rule()
    def remount_anywhere(self) -> None:
        """`avfs unmount` then `avfs mount` of the fork, whatever git has staged, marked in
        its index or open (a conflicted merge, a rebase, a bisect, a detached HEAD,
        sparse-checkout): git's state, the files, the history and avfs's status as before
        (the plain side does nothing)."""
        self.remount_now()

    @precondition(lambda self: self.busy() is None)
    @rule()
    def checkpoint_unmounted(self) -> None:
        """`avfs unmount`, `avfs checkpoint save` of the fork (not mounted: from the home),
        `avfs mount`: the checkpoint is `git commit --only` of what the files differ from
        HEAD in, as one made while mounted (mount/gitkeep.py patches git's kept index where
        the commits differ: what git staged elsewhere stays staged)."""
        self._tick()
        self.note("avfs unmount; avfs checkpoint save; avfs mount")
        avfs = _avfs()
        before = self.m.git("rev-parse", "HEAD").stdout.strip()
        avfs(self.avfs_home, "--vault", "v:f", "unmount", self.mp, cwd=self.home)
        try:
            avfs(self.avfs_home, "--vault", "v:f", "checkpoint", "save", "-m", "checkpoint", cwd=self.home)
        finally:
            avfs(self.avfs_home, "--vault", "v:f", "mount", "--backend", self.backend, self.mp, cwd=self.home)
        self.kept.clear()  # (every file of the new mount read again)
        after = self.m.git("rev-parse", "HEAD").stdout.strip()
        made = self.plain_checkpoint("checkpoint", commit=after if after != before else None)
        assert made == (before != after), f"checkpoint made a commit: mount {before != after}, plain {made}"
        self.last_checkpoint = made

    # -- a directory an ignore rule hid, shown again -------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(put_back=st.booleans(), status_first=st.booleans())
    def unignore_deep(self, put_back: bool, status_first: bool) -> None:
        """A nested `.gitignore` of `build/` committed, files at two depths below `build/`
        written (``status_first``: everything checked then, so avfs's status remembers
        `build` as an ignored top), the rule removed by `git rm` and `git commit` (the
        files are new then, at every depth), and (``put_back``) put back by `git revert`."""
        self.forks += 1
        d = f"ig{self.forks}"
        self.write_all({f"{d}/.gitignore": "build/\n"})
        if not self.both("add", "--", f"{d}/.gitignore"):
            return
        self.both("commit", "-q", "-m", "ignore build/", "--", f"{d}/.gitignore")
        self.write_all({f"{d}/build/top.o": "top\n", f"{d}/build/deep/er/out.o": "deep\n"})
        if status_first:
            self.check()
        self.both("rm", "-q", "--", f"{d}/.gitignore")
        self.both("commit", "-q", "-m", "no ignore rule", "--", f"{d}/.gitignore")
        if put_back:
            self.check()
            self.both("revert", "--no-edit", "HEAD")
        self.last_checkpoint = False


def _avfs() -> Any:
    from .test_git_model import _avfs as run

    return run

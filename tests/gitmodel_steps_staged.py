"""The git model's steps of the staged-then-written round (h-staged1, the thirty-sixth
round; tests/test_git_model_staged.py runs them): a version of a tracked file the person
staged in the mount (`git add`, then the file edited again or not), then another writer
of that same path.

- ``staged_then(data, again, then)``: ``then`` ``exec``: `avfs proxy exec -- sh -c 'printf
  ... > PATH'`, a run whose record commits the path (:meth:`GitModel.exec_script`: the
  record is another writer's commit, the person's staged entry stays staged, as a plain
  worktree's index stays when another hand commits on its branch; h-staged1: before, the
  mount's index took the record's entry and the staged version was gone); ``checkpoint``:
  `avfs checkpoint save` (the person's `git commit --only` of the files: the entry becomes
  the commit's, as git's does); ``write``: `avfs write PATH` from outside the mount, then
  `avfs checkpoint save` (the same).

A mixin of :class:`tests.test_git_model.GitModel`."""

from __future__ import annotations

import os
import shlex
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .gitmodel_attrs import ModelAttrs

THENS = ("exec", "checkpoint", "write")


class StagedThenSteps(ModelAttrs):
    """The steps; see the module's docstring."""

    # what else the model has (annotations only: the model's own are used)
    clock: int
    pick: Any
    tracked: Any
    checkpoint: Any
    exec_script: Any
    _tick: Any

    def _write_both(self, path: str, text: str) -> None:
        for side in (self.p, self.m):
            with open(os.path.join(side.root, path), "w") as fh:
                fh.write(text)

    @precondition(lambda self: self.busy() is None)
    @rule(data=st.data(), again=st.booleans(), then=st.sampled_from(THENS))
    def staged_then(self, data: st.DataObject, again: bool, then: str) -> None:
        """A version of a tracked file staged on both sides (``again``: the file then
        written once more), then ``then`` writes the same path (the module's docstring)."""
        from .test_git_model import _avfs

        files = [
            f
            for f in self.tracked()
            if os.path.isfile(os.path.join(self.p.root, f))
            and not os.path.islink(os.path.join(self.p.root, f))
            and "'" not in f
        ]
        path = self.pick(data, files)
        if path is None:
            return
        self._tick()
        self.note(f"staged-then {path} again={again} then={then}")
        self._write_both(path, f"staged {self.clock}\n")
        self.both("add", "--", path)
        if again:
            self._write_both(path, f"again {self.clock}\n")
        if then == "exec":
            self.exec_script(f"printf 'by exec {self.clock}\\n' > {shlex.quote(path)}")
            return
        if then == "write":
            text = f"by avfs write {self.clock}\n"
            _avfs(self.avfs_home, "write", path, text, cwd=str(self.mp))
            with open(os.path.join(self.p.root, path), "w") as fh:
                fh.write(text)
        self.checkpoint(False)

"""The git model's steps of its seventeenth round (gitmodel17, tests/test_git_model17.py
runs them): what the sixteenth round's strict xfails found, made steps once fixed:
`core.fileMode false` with an exec bit changed alone, with the bytes, or on a new file
(then a checkpoint or none, and the setting unset: the bits are changes again); and a new
file `git add`ed, checkpointed, the checkpoint undone and the commit before restored (the
overlay backend's lower layer kept the children it listed before the checkpoint: the
restore removed the file without a whiteout). The split index's staged removal is the
sixteenth round's ``split_index`` step, drawn with ``rm-cached`` now.

A mixin of :class:`tests.test_git_model.GitModel`, as the earlier rounds' (its own class,
:class:`tests.test_git_model17.GitModel17`, draws them). Each step's non-git actions are
noted in a line."""

from __future__ import annotations

import os
import stat
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from .gitmodel_attrs import ModelAttrs

STAGED_PATH = "docs/staged-then-undone.md"


class SeventeenthRoundSteps(ModelAttrs):
    """The steps; see the module's docstring."""

    # what else the model has (annotations only: the model's own are used)
    tracked: Any
    has_parent: Any
    write_all: Any
    checkpoint: Any
    undo: Any
    restore: Any
    on_both: Any
    clean: Any
    avfs_status_doc: Any
    last_checkpoint: bool

    def _flip_exec(self, path: str) -> None:
        """The owner's, group's and others' exec bits of ``path`` flipped on both sides."""
        full = os.path.join(self.p.root, path)
        executable = not os.stat(full).st_mode & stat.S_IXUSR
        self.note(f"chmod {'+' if executable else '-'}x {path}")
        self.on_both(lambda root: os.chmod(os.path.join(root, path), 0o755 if executable else 0o644))

    # -- core.fileMode false -----------------------------------------------------------------
    @precondition(lambda self: self.busy() is None)
    @rule(how=st.sampled_from(["exec-alone", "with-change", "new-exec"]), save=st.booleans())
    def file_mode(self, how: str, save: bool) -> None:
        """`git config core.fileMode false`, then an exec bit flipped alone (tox.ini), with
        a change of the bytes (README.md), or a new file made executable; then `avfs
        checkpoint save` (``save``: git's `commit --only` keeps HEAD's mode, 100644 for a
        new path) or nothing, then `git config --unset core.fileMode`: the bits git did
        not record are changes again, to git and to avfs (the workspace keeps them).
        Before gitmodel17 avfs listed the bit alone as a change and recorded it."""
        self.both("config", "core.fileMode", "false")
        tracked = set(self.tracked())

        def regular(path: str) -> bool:
            full = os.path.join(self.p.root, path)
            return path in tracked and os.path.isfile(full) and not os.path.islink(full)

        if how == "exec-alone" and regular("tox.ini"):
            self._flip_exec("tox.ini")
        elif how == "with-change" and regular("README.md"):
            self.note("append a line to README.md")
            for side in (self.p, self.m):
                with open(os.path.join(side.root, "README.md"), "a") as fh:
                    fh.write("a line beside an exec bit\n")
            self._flip_exec("README.md")
        elif how == "new-exec":
            self.write_all({"tools/new-tool.sh": "#!/bin/sh\necho made executable\n"})
            self.note("chmod 755 tools/new-tool.sh")
            self.on_both(lambda root: os.chmod(os.path.join(root, "tools/new-tool.sh"), 0o755))
        if save:
            self.checkpoint(False)
        self.both("config", "--unset", "core.fileMode")

    # -- a staged file checkpointed, undone, restored away ----------------------------------
    @precondition(lambda self: self.busy() is None and self.has_parent())
    @rule()
    def staged_undone_restored(self) -> None:
        """A commit of README.md and a `git status` and `avfs status` in the mount, then a
        new file `git add`ed, `avfs checkpoint save`, `avfs undo`, `avfs checkpoint
        restore HEAD~1` (the model's own steps, one after the other, no check between the
        checkpoint and the undo: a check lists the lower layer at the checkpoint's base,
        and the overlay backend's lower layer then knew the file). Before gitmodel17 the
        file came back on the overlay backend (its lower layer's children were kept by the
        base alone, which the undo brought back), listed `added` by avfs."""
        if STAGED_PATH in self.tracked() or not self.clean():
            return
        # (git's commit in the mount, which avfs's status then follows: the base the undo
        # comes back to is the one the file was made at)
        self.write_all({"README.md": "a line before a staged file\n"})
        self.both("commit", "-q", "-m", "before a staged file", "--", "README.md")
        self.m.porcelain()
        self.avfs_status_doc()
        self.write_all({STAGED_PATH: "staged, checkpointed, undone\n"})
        self.both("add", "--", STAGED_PATH)
        self.checkpoint(False)
        if self.last_checkpoint:
            self.undo()
        if self.has_parent():
            self.restore()

"""The git model's check (tests/test_git_model.py ``GitModel.check``) where it takes what it
read before as read again (suitetime24): the tags and notes of a side whose ref files'
`lstat` is what it was, and git's index as the branch's tree where the plain side's status
shows nothing staged. Each still fails the check where one side changed, and each shortcut
is checked to have been taken; the model's avfs commands run in this process, each mount's
daemon forked warm (tests/test_git_model.py ``_avfs``)."""

from __future__ import annotations

import builtins
import subprocess
from typing import Any

import pytest

from . import test_git_model as tgm
from .test_overlay import require_overlay


def _counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Every git command a :class:`tgm.Side` or a temporary index of one runs, by its words
    (``Side.git`` and ``_Git.__call__``: where the model's git is called)."""
    seen: list[tuple[str, ...]] = []
    side_git, index_git = tgm.Side.git, tgm._Git.__call__

    def git(self: Any, *args: str, **kw: Any) -> Any:
        seen.append(args)
        return side_git(self, *args, **kw)

    def in_index(self: Any, *args: str) -> str:
        seen.append(args)
        return index_git(self, *args)

    monkeypatch.setattr(tgm.Side, "git", git)
    monkeypatch.setattr(tgm._Git, "__call__", in_index)
    return seen


def test_the_check_reads_tags_again_where_their_files_changed_and_fails_on_a_difference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_overlay()
    tgm.BACKEND = "overlay"
    model = tgm.GitModel()
    try:
        seen = _counted(monkeypatch)
        model.check()  # (the first: every file and ref read)
        assert sum(a[0] == "for-each-ref" for a in seen) == 2
        del seen[:]
        model.check()  # nothing changed: the tags and notes as read, no reset of the index copy
        assert not [a for a in seen if a[0] == "for-each-ref"], seen
        assert not [a for a in seen if a[:2] == ("reset", "-q")], seen
        # something staged on both sides: the index copy is reset to the branch's tree again
        model.write_all({"README.md": "staged on both sides\n"})
        model.both("add", "README.md")
        del seen[:]
        model.check()
        assert [a for a in seen if a[:2] == ("reset", "-q")], seen
        model.both("reset", "-q")
        model.check()
        # a tag made in the vault only (the mount's side: its tags are the vault's)
        subprocess.run(["git", "--git-dir", model.vault, "tag", "only-in-the-vault", "f"], check=True)
        del seen[:]
        with pytest.raises(AssertionError, match="tags or notes differ"):
            model.check()
        assert sum(a[0] == "for-each-ref" for a in seen) == 1  # (the mount's read again)
    finally:
        model.teardown()


def test_the_check_asks_git_status_alone_where_nothing_is_staged_or_marked_and_fails_on_a_difference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """suitetime27: where neither index marks an entry (tgm._unflagged) and the plain side's
    status shows nothing staged, the check asks each side's `git status` only: HEAD from its
    ``# branch.oid``, no `git log`, no `ls-files -v`, what the working tree differs from the
    branch from the plain side's status (no `add -A` and `diff --cached` of an index copy).
    A commit on one side alone, an entry marked on one side alone, still fail it."""
    require_overlay()
    tgm.BACKEND = "overlay"
    model = tgm.GitModel()
    try:
        seen = _counted(monkeypatch)
        model.check()
        model.write_all({"README.md": "changed on both sides\n", "new.txt": "new on both\n"})
        del seen[:]
        model.check()  # a change and an untracked file: git's status of each side, no more
        assert sorted(a[0] for a in seen) == ["status", "status"], seen
        # an entry marked on one side: `ls-files -v` of both, and the check fails
        model.m.git("update-index", "--assume-unchanged", "LICENSE")
        del seen[:]
        with pytest.raises(AssertionError, match="index bits differ"):
            model.check()
        assert sum(a[:2] == ("ls-files", "-v") for a in seen) == 2, seen
        model.m.git("update-index", "--no-assume-unchanged", "LICENSE")
        model.check()
        # a commit on one side alone: its history differs
        model.m.git("commit", "-q", "--allow-empty", "-m", "the mount's alone")
        with pytest.raises(AssertionError, match="history differs"):
            model.check()
    finally:
        model.teardown()


def _reads(monkeypatch: pytest.MonkeyPatch, roots: tuple[str, ...]) -> list[str]:
    """Every file below ``roots`` (their `.git` out) that tests/test_git_model.py opens, by
    its path: what ``_tree`` reads (the module's ``open``, counted, then the builtin's)."""
    seen: list[str] = []

    def counted(path: Any, *args: Any, **kw: Any) -> Any:
        p = str(path)
        if p.startswith(roots) and "/.git" not in p:
            seen.append(p)
        return builtins.open(path, *args, **kw)

    monkeypatch.setattr(tgm, "open", counted, raising=False)
    return seen


def test_the_check_reads_a_file_where_its_stat_changed_and_every_file_within_eight_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """suitetime3: each side's files are read only where their `lstat` changed since a check
    read them (the plain side's were read whole at every check), and each at least every
    ``FULL_READ_EVERY`` checks whatever its stat says. A file changed on the plain side
    alone, with its size kept, still fails the check at once."""
    require_overlay()
    tgm.BACKEND = "overlay"
    model = tgm.GitModel()
    try:
        m, p = model.m.root + "/", model.p.root + "/"
        seen = _reads(monkeypatch, (m, p))
        model.check()  # (the first: every file of both sides)
        files = {x[len(p) :] for x in seen if x.startswith(p)}
        assert len(files) > 100 and files == {x[len(m) :] for x in seen if x.startswith(m)}
        model.write_all({"README.md": "changed on both sides\n"})
        del seen[:]
        model.check()
        assert sorted(seen) == [m + "README.md", p + "README.md"], seen
        with open(p + "README.md", "w") as fh:
            fh.write("changed on the p side\n")  # (the size kept: 22 bytes, as both sides')
        with pytest.raises(AssertionError, match=r"files differ .*: README\.md: bytes \(mount 22 bytes"):
            model.check()  # (named by path: pytest's diff of the two trees cost 70 s under CI=true)
        model.write_all({"README.md": "changed on both sides\n"})
        del seen[:]
        for _ in range(tgm.FULL_READ_EVERY):
            model.check()
        for root in (m, p):
            assert {x[len(root) :] for x in seen if x.startswith(root)} == files, root
    finally:
        model.teardown()

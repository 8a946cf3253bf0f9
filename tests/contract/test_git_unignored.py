"""Files an ignore rule hid, shown again when git in the mount removes the rule with a
commit: `avfs status` (and so a checkpoint) names every one of them, as git's status does
(found in gitmodel13: the model's every-command run, attrs 22.2.0's tree taken whole
without the run's `.gitignore`; a checkpoint then recorded a tree other than `git add
-A`'s). Both backends, real mounts, real git."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..gitmount import _git, _status, mount_fork
from .backends import MOUNTS

pytestmark = pytest.mark.backends(*MOUNTS)


@pytest.fixture
def mounted(backend: str, cli_proc: Any, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    """Fork `f` mounted by the CLI (tests/gitmount.py), every avfs command of the test
    (the mount, its status and checkpoints, the unmount) run in the test's process: what
    the tests check is what avfs lists and records, not its process (suitetime24: they
    were ~8 CLI processes a test, ~0.2 s of CPU each)."""
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as m:
        yield m


def _listed(mp: Path) -> list[str]:
    """What git's status in the mount lists, every untracked file named."""
    return sorted(line[3:] for line in _git(mp, "status", "--porcelain", "-uall").stdout.splitlines())


def test_files_a_removed_ignore_rule_hid_are_all_new(mounted: Any, backend: str) -> None:
    mp, avfs = mounted
    assert avfs("write", ".gitignore", "build/\n*.log\n").code == 0
    assert avfs("checkpoint", "save", "-m", "ignore build/").code == 0
    (mp / "build" / "deep").mkdir(parents=True)
    (mp / "build" / "deep" / "out.o").write_text("o\n")
    (mp / "build" / "top.o").write_text("t\n")
    (mp / "s.log").write_text("l\n")
    assert _status(avfs)["changes"] == []
    _git(mp, "rm", "-q", ".gitignore")
    _git(mp, "commit", "-q", "-m", "no ignore rules")
    want = _listed(mp)
    assert want == ["build/deep/out.o", "build/top.o", "s.log"]
    assert sorted(c["path"] for c in _status(avfs)["changes"]) == want


PERSON = ("-c", "user.name=P", "-c", "user.email=p@x.invalid")


@pytest.mark.parametrize("where", ["nested .gitignore", "info/exclude"])
def test_a_rule_that_goes_and_comes_back_is_followed_at_every_depth(
    mounted: Any, backend: str, where: str
) -> None:
    """The rule in a nested ``.gitignore`` (removed and put back by commits) or in the
    vault's ``info/exclude`` (edited in place: no commit, no change in the mount): each
    time, avfs's status names what git's names, at every depth below the directory, and a
    checkpoint records that (what `git add -A` stages)."""
    mp, avfs = mounted
    git_dir = Path(_git(mp, "rev-parse", "--git-common-dir").stdout.strip())
    exclude = (mp / git_dir if not git_dir.is_absolute() else git_dir) / "info" / "exclude"
    (mp / "sub").mkdir()
    (mp / "sub" / "keep.txt").write_text("k\n")
    if where == "nested .gitignore":
        (mp / "sub" / ".gitignore").write_text("build/\n")
    else:
        exclude.parent.mkdir(exist_ok=True)
        exclude.write_text("build/\n")
    assert avfs("checkpoint", "save", "-m", "rule").code == 0
    (mp / "sub" / "build" / "deep" / "er").mkdir(parents=True)
    (mp / "sub" / "build" / "deep" / "er" / "out.o").write_text("o\n")
    (mp / "sub" / "build" / "top.o").write_text("t\n")
    assert _listed(mp) == [] and _status(avfs)["changes"] == []

    def rule(on: bool) -> None:
        if where == "nested .gitignore":
            if on:
                _git(mp, *PERSON, "revert", "--no-edit", "HEAD")
            else:
                _git(mp, "rm", "-q", "sub/.gitignore")
                _git(mp, *PERSON, "commit", "-q", "-m", "no rule")
        else:
            exclude.write_text("build/\n" if on else "# none\n")

    hidden = ["sub/build/deep/er/out.o", "sub/build/top.o"]
    rule(False)
    assert [p for p in _listed(mp) if p.startswith("sub/build")] == hidden
    assert sorted(c["path"] for c in _status(avfs)["changes"]) == _listed(mp)
    rule(True)
    assert not [p for p in _listed(mp) if p.startswith("sub/build")]
    assert sorted(c["path"] for c in _status(avfs)["changes"]) == _listed(mp)
    rule(False)
    assert sorted(c["path"] for c in _status(avfs)["changes"]) == _listed(mp)
    assert avfs("checkpoint", "save", "-m", "all of it").code == 0
    tree = _git(mp, "ls-tree", "-r", "--name-only", "HEAD", "sub/build").stdout.split()
    assert tree == hidden
    assert _listed(mp) == [] and _status(avfs)["changes"] == []

"""The git model's nineteenth round (gitmodel19): what last round left, each a fixed
sequence beside a plain clone, and the steps of tests/gitmodel_steps19.py on a mount and a
plain clone, checked after every step as tests/test_git_model.py checks (each once, and a
seeded random run of them among the steps they meet most).

- A `git commit` in the mount that records a `.gitattributes` converting on checkout
  (`* text=auto eol=crlf`): the files it leaves alone keep their bytes, as git's work
  tree keeps them. The every-command run's overlay failure at load ~25
  (`src/attrs/validators.py` CRLF in the mount, suitetime20): avfs took git's commit as
  the base (wstip.take_tip) without keeping the old forms (a checkpoint's and a merge's
  move did: wsforms.keep_forms), so the lower layer showed the new form under the size the
  kernel held, read once memory pressure dropped the file's pages (here
  `POSIX_FADV_DONTNEED`: deterministic). On pure FUSE every such file showed its CRLF form
  at once (gitmodel10's open entry).
- An unmounted fork follows the `core.fileMode` its mount's `config.worktree` set
  (gitmodel18's note).
- `avfs undo` of a checkpoint keeps staged what git had staged as the checkpoint recorded
  it, as git's `reset --soft HEAD~1` does (gitmodel18's note).

Scale the random run by hand: ``AVFS_MODEL19_EXAMPLES=3 AVFS_MODEL19_STEPS=30
AVFS_MODEL19_SEED=1902 pytest tests/test_git_model19.py -k random``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from . import test_git_model as tgm
from .gitmodel_steps19 import NineteenthRoundSteps
from .gitmount import _git, _require, mount_fork

EXAMPLES = int(os.environ.get("AVFS_MODEL19_EXAMPLES", "1"))
STEPS = int(os.environ.get("AVFS_MODEL19_STEPS", "12"))
SEED = int(os.environ.get("AVFS_MODEL19_SEED", "1901"))
# the rules the random run draws: this round's, and the older ones they meet most
RULES = [
    "crlf_commit",
    "stash_across_checkpoint",
    "rebase_undo_between",
    "reset_then_restore",
    "write",
    "add",
    "commit",
    "checkpoint",
    "undo",
    "restore",
    "remount_anywhere",
]


class GitModel19(NineteenthRoundSteps, tgm.GitModel):
    """The model with this round's steps."""


LONG = b"".join(b"line %d of a text file\n" % i for i in range(2000))
ATTRS = b"* text=auto eol=crlf\n"


def _dropped(path: Path) -> bytes:
    """``path``'s bytes read after the kernel's pages of it were dropped."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return path.read_bytes()


def _files(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` but git's own, read with its pages dropped."""
    out: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            if name != ".git":
                p = Path(dirpath) / name
                out[p.relative_to(root).as_posix()] = _dropped(p)
    return out


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
@pytest.mark.parametrize("how", ["commit", "amend", "commit-then-revert"])
def test_git_s_commit_of_attributes_leaves_the_other_files_as_they_were(
    backend: str, how: str, cli_proc: Any, tmp_path: Path
) -> None:
    """`.gitattributes` of `* text=auto eol=crlf` written, `git add -A` and `git commit`
    (or `--amend`, or a commit and then its `git revert`) in the mount and in a plain clone
    beside it, `avfs status` (avfs takes git's commit as the base): every file, its pages
    dropped, is the plain clone's; git's status is clean on both sides and avfs's too.
    Both backends failed before (overlay: `a.txt` read `one\\r`; pure FUSE: every file
    CRLF)."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        (mp / "long.txt").write_bytes(LONG)
        assert avfs("checkpoint", "save", "-m", "a long text file").code == 0
        vault = Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git"
        plain = tmp_path / "plain"
        _git(tmp_path, "clone", "-q", "-b", "f", str(vault), str(plain))
        assert _files(mp) == _files(plain)  # (the kernel holds each file's size and pages)
        for root in (mp, plain):
            (root / ".gitattributes").write_bytes(ATTRS)
            _git(root, "add", "-A")
            if how == "amend":
                _git(root, "commit", "-q", "--amend", "-m", "a long text file, attributes")
            else:
                _git(root, "commit", "-q", "-m", "attributes")
        res = avfs("--json", "status")
        assert res.code == 0, res.err
        assert res.json()["base"] == _git(mp, "rev-parse", "HEAD").stdout.strip()  # (taken)
        if how == "commit-then-revert":
            for root in (mp, plain):
                _git(root, "revert", "--no-edit", "HEAD")
            assert avfs("status").code == 0
        assert _files(mp) == _files(plain)
        assert _git(mp, "status", "--porcelain").stdout == _git(plain, "status", "--porcelain").stdout == ""
        doc = avfs("--json", "status").json()
        assert doc["clean"], doc


def _changes(res: Any) -> set[tuple[str, str]]:
    assert res.code == 0, res.err
    return {(c["path"], c["status"]) for c in res.json()["changes"]}


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_an_unmounted_fork_keeps_the_worktree_s_file_mode_setting(
    backend: str, cli_proc: Any, tmp_path: Path
) -> None:
    """`git config --worktree core.fileMode false` in the mount, `chmod +x a.txt` (git:
    no change), unmount: the fork's status and checkpoint, unmounted, follow the setting
    the unmount kept (mount/gitkeep.py), as git does at the next mount, where it comes
    back: no change listed, the checkpoint of another file records a.txt 100644, and git's
    status after the remount is clean. Before (gitmodel18's note), the unmounted fork read
    the vault's config alone: a.txt modified, recorded 100755 (both backends)."""
    from .conftest import run_in_process

    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        _git(mp, "config", "--worktree", "core.fileMode", "false")
        os.chmod(mp / "a.txt", 0o755)
        (mp / "new.txt").write_text("new\n")
        assert _git(mp, "status", "--porcelain").stdout == "?? new.txt\n"
        assert _changes(avfs("--json", "status")) == {("new.txt", "added")}
        assert run_in_process(["--vault", "v:f", "unmount", str(mp)]).code == 0
        outside = ["--vault", "v:f"]
        assert _changes(run_in_process([*outside, "--json", "status"])) == {("new.txt", "added")}
        assert run_in_process([*outside, "checkpoint", "save", "-m", "unmounted"]).code == 0
        vault = Path(os.environ["AVFS_HOME"]) / "vaults" / "v.git"
        tree = _git(vault, "ls-tree", "f").stdout
        assert "100755" not in tree, tree
        assert run_in_process([*outside, "mount", "--backend", backend, str(mp)]).code == 0
        assert _git(mp, "config", "--worktree", "--get", "core.fileMode").stdout.strip() == "false"
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert _changes(avfs("--json", "status")) == set()
        assert os.stat(mp / "a.txt").st_mode & 0o111


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
@pytest.mark.parametrize("how", ["changed", "added", "removed"])
def test_what_git_staged_as_the_checkpoint_recorded_it_stays_staged_after_its_undo(
    backend: str, how: str, cli_proc: Any, tmp_path: Path
) -> None:
    """A change `git add`ed (a new file `git add`ed, a file `git rm`ed), then `avfs
    checkpoint save` (it records the same), then `avfs undo`: git's status is what it was
    before the checkpoint (`M `, `A `, `D `: staged), as after git's own `reset --soft
    HEAD~1`; a change the person had not staged comes back unstaged, as before. Before
    (gitmodel18's note), every path the checkpoint recorded came back unstaged (avfs kept
    no copy of the index from before the checkpoint)."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        if how == "changed":
            (mp / "a.txt").write_text("staged\n")
            _git(mp, "add", "a.txt")
        elif how == "added":
            (mp / "new.txt").write_text("new\n")
            _git(mp, "add", "new.txt")
        else:
            _git(mp, "rm", "-q", "a.txt")
        (mp / "d" / "c.txt").write_text("not staged\n")
        before = _git(mp, "status", "--porcelain").stdout
        assert sorted(before.splitlines()) == sorted(
            [{"changed": "M  a.txt", "added": "A  new.txt", "removed": "D  a.txt"}[how], " M d/c.txt"]
        )
        assert avfs("checkpoint", "save", "-m", "what git staged, and more").code == 0
        assert _git(mp, "status", "--porcelain").stdout == ""
        assert avfs("undo").code == 0
        assert _git(mp, "status", "--porcelain").stdout == before
        assert avfs("checkpoint", "save", "-m", "again").code == 0  # (the next checkpoint: as ever)
        assert _git(mp, "status", "--porcelain").stdout == ""


# -- the new steps on the model ------------------------------------------------------------


def _each_step_once(backend: str) -> None:
    tgm.BACKEND = backend
    model = GitModel19()
    steps: list[Any] = [
        lambda: model.crlf_commit(False),
        lambda: model.both("rm", "-q", ".gitattributes"),
        lambda: model.both("commit", "-q", "-m", "the attributes out"),
        lambda: model.crlf_commit(True),
        lambda: model.stash_across_checkpoint(True),
        lambda: model.both("add", "-A"),
        lambda: model.both("commit", "-q", "-m", "what the first stash brought back"),
        lambda: model.both("rm", "-q", "--", "docs/stashed-over-a-checkpoint.md"),
        lambda: model.both("rm", "-q", "--", "docs/checkpointed-under-a-stash.md"),
        lambda: model.both("commit", "-q", "-m", "taken out again"),
        lambda: model.stash_across_checkpoint(False),
        lambda: model.both("commit", "-q", "-a", "-m", "what the second stash brought back"),
        lambda: model.rebase_undo_between("abort"),
        lambda: model.rebase_undo_between("continue"),
        model.reset_then_restore,
    ]
    tgm.each_once(model, steps)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_each_new_step_once_agrees_with_plain_git(backend: str) -> None:
    _require(backend)
    _each_step_once(backend)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_random_runs_of_the_new_steps_agree_with_plain_git(backend: str) -> None:
    _require(backend)
    tgm.run_seeded(GitModel19, RULES, backend, seed_=SEED, steps=STEPS, examples=EXAMPLES)


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
@pytest.mark.parametrize("then", ["abort", "continue"])
def test_an_undo_waits_for_git_s_rebase_to_end(
    backend: str, then: str, cli_proc: Any, tmp_path: Path
) -> None:
    """A checkpoint, then `git rebase -i` stopped at an `edit` in the mount, then `avfs
    undo`: refused (`git_in_progress`, exit 75, naming `git rebase --continue`), the
    fork's branch where it was. Before (gitmodel19's ``rebase_undo_between``), the undo
    moved the branch under git's open rebase and `git rebase --abort` moved it back: the
    undo said done and was lost. Once the rebase is given up the undo works; once it is
    continued with the checkpoint's commit reworded at its stop, it is refused as after
    `--amend` (`ref_moved`)."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        (mp / "new.txt").write_text("checkpointed\n")
        assert avfs("checkpoint", "save", "-m", "before a rebase").code == 0
        tip = _git(mp, "rev-parse", "HEAD").stdout
        edit = "sequence.editor=sed -i -e '1s/^pick/edit/'"
        _git(mp, "-c", edit, "rebase", "-q", "-i", "HEAD~1")
        res = avfs("--json", "undo")
        assert res.code == 75, res.out
        err = res.json()["error"]
        assert err["code"] == "git_in_progress" and "rebase --continue" in err["hint"], err
        assert _git(mp, "rev-parse", "refs/heads/f").stdout == tip
        if then == "continue":
            _git(mp, "commit", "-q", "--amend", "-m", "reworded in the rebase")
        _git(mp, "rebase", f"--{then}")
        res = avfs("--json", "undo")
        if then == "abort":
            assert res.code == 0, res.out
            assert _git(mp, "rev-parse", "refs/heads/f").stdout != tip
            assert _git(mp, "status", "--porcelain").stdout == "?? new.txt\n"
        else:
            assert res.code != 0 and res.json()["error"]["code"] == "ref_moved", res.out


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_restore_waits_for_git_s_rebase_to_end(backend: str, cli_proc: Any, tmp_path: Path) -> None:
    """Two checkpoints, then `git rebase -i` stopped at an `edit` in the mount, then `avfs
    checkpoint restore` of the first: refused (`git_in_progress`, exit 75, naming `git
    rebase --continue`), the branch and the files where they were. Before (gitmodel19 left
    it), the restore moved the branch under git's open rebase and `git rebase --abort` moved
    it back: the restore said done and was lost. Once the rebase is given up the restore
    works; a HEAD merely detached (`git checkout --detach`) does not stop it."""
    _require(backend)
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as (mp, avfs):
        first = _git(mp, "rev-parse", "HEAD").stdout.strip()
        (mp / "new.txt").write_text("checkpointed\n")
        assert avfs("checkpoint", "save", "-m", "one").code == 0
        (mp / "more.txt").write_text("more\n")
        assert avfs("checkpoint", "save", "-m", "two").code == 0
        tip = _git(mp, "rev-parse", "HEAD").stdout
        edit = "sequence.editor=sed -i -e '1s/^pick/edit/'"
        _git(mp, "-c", edit, "rebase", "-q", "-i", "HEAD~1")
        res = avfs("--json", "checkpoint", "restore", first)
        assert res.code == 75, res.out
        err = res.json()["error"]
        assert err["code"] == "git_in_progress" and "rebase --continue" in err["hint"], err
        assert _git(mp, "rev-parse", "refs/heads/f").stdout == tip
        assert (mp / "new.txt").exists() and (mp / "more.txt").exists()
        _git(mp, "rebase", "--abort")
        _git(mp, "checkout", "-q", "--detach")
        res = avfs("--json", "checkpoint", "restore", first)
        assert res.code == 0, res.out
        assert _git(mp, "rev-parse", "refs/heads/f").stdout.strip() == first
        _git(mp, "switch", "-q", "f")
        assert not (mp / "new.txt").exists() and not (mp / "more.txt").exists()

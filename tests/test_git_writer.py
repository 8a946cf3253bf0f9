"""git in the mount is a writer of the fork like avfs (docs/fuse.md, "git inside the mount"):
what git commits, resets or switches there, avfs's status, diff and checkpoints see at once,
never undo, and refuse to record while git is off the fork's branch or in the middle of its
own work. Both backends, through the CLI as a person runs it (its cwd in the mount).
The model-based check of the same is tests/test_git_model.py."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from .test_fuse import require_fuse
from .test_overlay import require_overlay

BACKENDS = ["overlay", "fuse"]


def _require(backend: str) -> None:
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()


def _git(mp: str | Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["GIT_CEILING_DIRECTORIES"] = os.path.dirname(str(mp))
    proc = subprocess.run(["git", *args], cwd=mp, env=env, capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture
def mounted(cli_proc: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """Fork `f` of vault `v` (a.txt = "one\\n", d/c.txt) mounted at tmp_path/m on the
    backend the test is parametrized with; (mount point, run avfs there)."""
    backend = request.node.callspec.params["backend"]
    _require(backend)
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "a.txt").write_text("one\n")
    (src / "d" / "c.txt").write_text("c\n")
    assert cli_proc("vault", "create", "v", "--from", str(src)).code == 0
    assert cli_proc("vault", "fork", "v:main", "f").code == 0
    mp = tmp_path / "m"
    mp.mkdir()
    res = cli_proc("--vault", "v:f", "mount", "--backend", backend, str(mp))
    assert res.code == 0, res.err

    def avfs(*args: str) -> Any:
        return cli_proc(*args, cwd=str(mp))

    try:
        yield mp, avfs
    finally:
        cli_proc("--vault", "v:f", "unmount", str(mp))


def _status(avfs: Any) -> dict[str, Any]:
    res = avfs("--json", "status")
    assert res.code == 0, res.err
    doc: dict[str, Any] = res.json()
    return doc


def _clean_everywhere(mp: Path, avfs: Any) -> None:
    assert _git(mp, "status", "--porcelain").stdout == ""
    doc = _status(avfs)
    assert doc["clean"] and not doc["stale"], doc
    assert doc["head"] == doc["base"] == _git(mp, "rev-parse", "HEAD").stdout.strip()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_git_commit_is_never_undone_by_a_status_and_a_checkpoint(mounted: Any, backend: str) -> None:
    """Issue 27 #1: a status between `git commit` and a checkpoint made the checkpoint record
    the committed file back as it was before (the overlay backend's status, reading only
    what changed, re-applied a root entry holding the old base's tree)."""
    mp, avfs = mounted
    with open(mp / "a.txt", "a") as fh:
        fh.write("two\n")
    (mp / "b.txt").write_text("new\n")
    _git(mp, "add", "a.txt")
    _git(mp, "commit", "-qm", "two")
    committed = _git(mp, "rev-parse", "HEAD").stdout.strip()
    human = avfs("status")
    assert human.code == 0 and "b.txt" in human.out and "a.txt" not in human.out, human.out
    doc = _status(avfs)
    assert doc["base"] == doc["head"] == committed and not doc["stale"], doc
    assert doc["changes"] == [{"path": "b.txt", "status": "added"}], doc
    diff = avfs("diff")
    assert diff.code == 0 and "a.txt" not in diff.out and "+new" in diff.out, diff.out
    assert avfs("checkpoint", "save", "-m", "after").code == 0
    assert _git(mp, "show", "HEAD:a.txt").stdout == "one\ntwo\n"
    assert _git(mp, "show", "HEAD:b.txt").stdout == "new\n"
    assert _git(mp, "rev-parse", "HEAD~1").stdout.strip() == committed
    assert (mp / "a.txt").read_text() == "one\ntwo\n"
    _clean_everywhere(mp, avfs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resets_and_amends_in_the_mount_are_the_base_at_once(mounted: Any, backend: str) -> None:
    """A ref git moved anywhere (back, sideways) is the base; the view stays what the mount's
    files are, and avfs status lists what they differ from it, as git status does."""
    mp, avfs = mounted
    first = _git(mp, "rev-parse", "HEAD").stdout.strip()
    (mp / "a.txt").write_text("changed\n")
    _git(mp, "commit", "-qam", "changed")
    _git(mp, "reset", "-q", "--soft", "HEAD~1")  # the change is staged again: a change of the fork
    doc = _status(avfs)
    assert doc["base"] == doc["head"] == first and doc["changes"] == [{"path": "a.txt", "status": "modified"}]
    _git(mp, "commit", "-qm", "again")
    _git(mp, "commit", "-q", "--amend", "-m", "amended")
    amended = _git(mp, "rev-parse", "HEAD").stdout.strip()
    _clean_everywhere(mp, avfs)
    _git(mp, "reset", "-q", "--mixed", "HEAD~1")
    doc = _status(avfs)
    assert doc["base"] == first and doc["changes"] == [{"path": "a.txt", "status": "modified"}], doc
    assert avfs("checkpoint", "save", "-m", "by avfs").code == 0
    assert _git(mp, "show", "HEAD:a.txt").stdout == "changed\n"
    _git(mp, "reset", "-q", "--hard", amended)
    _clean_everywhere(mp, avfs)
    assert (mp / "a.txt").read_text() == "changed\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_head_moved_off_the_fork_is_named_and_checkpoints_refuse(mounted: Any, backend: str) -> None:
    """Issue 27 #2: `git checkout -b X` in the mount left avfs on the old fork as if nothing
    happened. The mount stays fork f: avfs status says where git's HEAD went, checkpoints
    refuse naming the way back, and nothing is lost."""
    mp, avfs = mounted
    (mp / "b.txt").write_text("new\n")
    # a switch git makes is switched back (tests/test_git_head.py): moved by hand here
    _git(mp, "branch", "x")
    _git(mp, "symbolic-ref", "HEAD", "refs/heads/x")
    doc = _status(avfs)
    assert doc["git"] == {"head": "refs/heads/x", "detached": None, "in_progress": None}, doc
    assert "git's HEAD is on refs/heads/x" in avfs("status").out
    res = avfs("--json", "checkpoint", "save")
    assert res.code != 0 and res.json()["error"]["code"] == "git_in_progress", res.out
    assert "git switch f" in res.json()["error"]["hint"]
    _git(mp, "switch", "-q", "f")
    assert _status(avfs)["git"] is None
    _git(mp, "checkout", "-q", "--detach")
    doc = _status(avfs)
    assert doc["git"]["detached"] == doc["base"] and doc["git"]["head"] is None, doc
    res = avfs("--json", "checkpoint", "save")
    assert res.code != 0 and res.json()["error"]["code"] == "git_in_progress", res.out
    _git(mp, "switch", "-q", "f")
    assert avfs("checkpoint", "save", "-m", "b").code == 0
    assert _git(mp, "show", "HEAD:b.txt").stdout == "new\n"
    _clean_everywhere(mp, avfs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_rebase_left_half_done_is_refused_by_a_checkpoint(mounted: Any, backend: str) -> None:
    mp, avfs = mounted
    vault = avfs("vault", "path").out.strip()
    # another fork changes a.txt; the mount changes it too and commits
    assert avfs("vault", "fork", "v:main", "other").code == 0
    assert avfs("--vault", "v:other", "write", "a.txt", "theirs\n").code == 0
    assert avfs("--vault", "v:other", "checkpoint", "save", "-m", "theirs").code == 0
    (mp / "a.txt").write_text("ours\n")
    _git(mp, "commit", "-qam", "ours")
    ours = _git(mp, "rev-parse", "HEAD").stdout.strip()
    (mp / "kept.txt").write_text("not committed\n")
    assert _git(mp, "rebase", "other", check=False).returncode != 0  # a conflict: half done
    res = avfs("--json", "checkpoint", "save")
    assert res.code != 0, res.out
    err = res.json()["error"]
    assert err["code"] == "git_in_progress" and "rebase" in err["message"], err
    assert "git rebase --abort" in err["hint"]
    assert _status(avfs)["git"]["in_progress"] == "rebase"
    _git(mp, "rebase", "--abort")
    assert _git(mp, "--git-dir", vault, "rev-parse", "refs/heads/f").stdout.strip() == ours
    assert avfs("checkpoint", "save", "-m", "kept").code == 0
    assert _git(mp, "show", "HEAD:kept.txt").stdout == "not committed\n"
    assert _git(mp, "show", "HEAD:a.txt").stdout == "ours\n"
    _clean_everywhere(mp, avfs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_git_commit_racing_a_checkpoint_loses_nothing(mounted: Any, backend: str) -> None:
    """Both land, in some order: every line either wrote is in the fork's history."""
    mp, avfs = mounted
    for i in range(6):
        with open(mp / "a.txt", "a") as fh:
            fh.write(f"git {i}\n")
        (mp / f"avfs{i}.txt").write_text(f"avfs {i}\n")
        out: dict[str, Any] = {}

        def commit(i: int, out: dict[str, Any]) -> None:
            out["git"] = _git(mp, "commit", "-qm", f"git {i}", "--", "a.txt", check=False)

        t = threading.Thread(target=commit, args=(i, out))
        t.start()
        out["avfs"] = avfs("checkpoint", "save", "-m", f"avfs {i}")
        t.join()
        # git's commit may find nothing left to commit (the checkpoint took a.txt first)
        assert out["avfs"].code == 0, out["avfs"].err
        assert out["git"].returncode == 0 or "nothing" in out["git"].stdout + out["git"].stderr, out["git"]
        if _status(avfs)["changes"]:
            assert avfs("checkpoint", "save", "-m", "rest").code == 0
        _clean_everywhere(mp, avfs)
        assert _git(mp, "show", f"HEAD:avfs{i}.txt").stdout == f"avfs {i}\n"
    assert _git(mp, "show", "HEAD:a.txt").stdout == "one\n" + "".join(f"git {i}\n" for i in range(6))


@pytest.mark.parametrize("backend", BACKENDS)
def test_git_gc_prune_and_worktree_add_in_the_mount(mounted: Any, backend: str) -> None:
    mp, avfs = mounted
    (mp / "a.txt").write_text("committed by git\n")
    _git(mp, "commit", "-qam", "git")
    (mp / "b.txt").write_text("uncommitted\n")
    _git(mp, "gc", "-q", "--prune=now")
    _git(mp, "prune")
    doc = _status(avfs)
    assert doc["changes"] == [{"path": "b.txt", "status": "added"}] and not doc["stale"], doc
    # a linked worktree of the vault made inside the mount: a nested repository's `.git`
    # (not part of the fork), its files ordinary files of the fork
    _git(mp, "worktree", "add", "-q", "-b", "w", "sub")
    assert (mp / "sub" / "a.txt").read_text() == "committed by git\n"
    assert _git(mp / "sub", "rev-parse", "--abbrev-ref", "HEAD").stdout.strip() == "w"
    assert avfs("checkpoint", "save", "-m", "with a worktree inside").code == 0
    assert _git(mp, "show", "HEAD:b.txt").stdout == "uncommitted\n"
    assert _git(mp, "show", "HEAD:a.txt").stdout == "committed by git\n"
    assert _git(mp, "show", "HEAD:sub/a.txt").stdout == "committed by git\n"
    assert _git(mp, "ls-tree", "-r", "--name-only", "HEAD").stdout.count(".git") == 0
    assert _git(mp, "status", "--porcelain").stdout == ""
    # git gc again, now that a worktree of the vault lives in the mount
    _git(mp, "gc", "-q", "--prune=now")
    assert _status(avfs)["clean"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_mounts_git_file_cannot_be_removed_or_replaced(mounted: Any, backend: str) -> None:
    mp, avfs = mounted
    (mp / "b.txt").write_text("kept\n")
    gitfile = (mp / ".git").read_text()
    with pytest.raises(OSError):
        os.unlink(mp / ".git")
    (mp / "other").write_text("gitdir: /nowhere\n")
    with pytest.raises(OSError):
        os.replace(mp / "other", mp / ".git")
    with pytest.raises(OSError), open(mp / ".git", "w") as fh:
        fh.write("gitdir: /nowhere\n")
    assert (mp / ".git").read_text() == gitfile
    os.unlink(mp / "other")
    doc = _status(avfs)
    assert doc["changes"] == [{"path": "b.txt", "status": "added"}], doc
    assert avfs("checkpoint", "save", "-m", "kept").code == 0
    assert _git(mp, "show", "HEAD:b.txt").stdout == "kept\n"
    _clean_everywhere(mp, avfs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_rename_onto_a_file_git_just_committed(mounted: Any, backend: str) -> None:
    """Found by the git model (seed 11): a file renamed in the mount, committed with git,
    then replaced by another rename failed with ESTALE on the overlay backend. Adopting
    git's commit changed the lower layer under the kernel's overlay where the upper layer
    held the file (it was new in the commit); the lower layer must not change there."""
    mp, avfs = mounted
    os.rename(mp / "a.txt", mp / "d" / "moved.txt")
    _status(avfs)
    _git(mp, "add", "-A")
    _status(avfs)
    _git(mp, "commit", "-qm", "moved")
    _status(avfs)
    os.rename(mp / "d" / "c.txt", mp / "d" / "moved.txt")  # onto the committed file
    assert (mp / "d" / "moved.txt").read_text() == "c\n" and not (mp / "d" / "c.txt").exists()
    doc = _status(avfs)
    assert sorted((c["path"], c["status"]) for c in doc["changes"]) == [
        ("d/c.txt", "deleted"),
        ("d/moved.txt", "modified"),
    ], doc
    assert avfs("checkpoint", "save", "-m", "again").code == 0
    _clean_everywhere(mp, avfs)
    assert _git(mp, "show", "HEAD:d/moved.txt").stdout == "c\n"

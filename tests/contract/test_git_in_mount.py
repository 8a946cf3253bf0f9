"""git in the mount is a writer of the fork like avfs (docs/fuse.md, "git inside the mount"):
what git commits, resets or switches there, avfs's status, diff and checkpoints see at once,
never undo, and refuse to record while git is off the fork's branch or in the middle of its
own work. Both backends, through the CLI as a person runs it (its cwd in the mount).
The model-based check of the same is tests/test_git_model.py.

Where git's HEAD may go in a mount (docs/fuse.md, "HEAD moves"): the mount is its fork,
so a branch switch git makes there (`git switch X`, `git checkout -b X`) is switched back
by the mount's post-checkout guard, with the way to work on X said, and nothing in the
mount changes; a detached HEAD is git's own state, which avfs names. The same holds inside
a confined `proxy exec`, whose HEAD is the mount's (written there, checked after the run).
The person's own hooks keep running in the mount. Both backends, real mounts, real git,
real bwrap. (The model check, tests/test_git_model.py, runs switches among its steps.)"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inotify_simple import INotify, flags

from ..conftest import run_in_process
from ..forkhome import make_fork_home, mount_copied_fork
from ..gitmount import _clean_everywhere, _git, _status
from ..test_confine import _need_bwrap
from ..test_json_schemas import _validator
from .backends import MOUNTS

pytestmark = pytest.mark.backends(*MOUNTS)  # git runs in a mount; the API has no git


@pytest.fixture(scope="module")
def fork_home(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """Vault `v` and its fork `f`, made once (tests/forkhome.py) and copied for each test."""
    return make_fork_home(tmp_path_factory.mktemp("fork-home"))


@pytest.fixture
def mounted(
    backend: str, cli_proc: Any, tmp_path: Path, fork_home: Path | None
) -> Iterator[tuple[Path, Any]]:
    """Fork `f` of vault `v` mounted by the CLI on each mount backend (tests/gitmount.py's
    `mount_fork`, its home a copy of the module's); the avfs commands the tests check the
    mount with run in the test's process (the race tests run the move they race with git
    as a process of its own: :func:`_racer`)."""
    with mount_copied_fork(fork_home, cli_proc, tmp_path, backend, in_process=True) as m:
        yield m


def _racer(mp: Path, cli_proc: Any) -> Any:
    """`avfs` as a process of its own in the mount, for a move that a thread of the test's
    races with git: run in the test's process, the move's Python would hold the GIL the
    racing thread needs to start git the instant the branch moves."""
    return lambda *args: cli_proc(*args, cwd=str(mp))


def _exec(mp: Path, script: str) -> dict[str, Any]:
    """``sh -c script`` by a confined `proxy exec` in the mount (the person's cwd), run in the
    test's process (``conftest.run_in_process``): the command runs in the mount daemon's
    sandbox either way, the CLI being its client (a process of its own was ~0.15 s of CPU
    in its Python's start: suitetime1)."""
    r = run_in_process(["--json", "proxy", "exec", "--", "sh", "-c", script], cwd=mp)
    doc: dict[str, Any] = json.loads(r.out)
    assert doc["result"] is not None, doc
    return doc


# what a move waits for git's `index.lock` in the tests that hold it (AVFS_LOCK_WAIT: 10 s by
# default, each of them waited it out once); the error names it, so the wait is the setting's
BUSY_WAIT = "2"


@contextlib.contextmanager
def _short_lock_wait() -> Iterator[None]:
    """AVFS_LOCK_WAIT set to :data:`BUSY_WAIT` for the avfs calls made inside."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AVFS_LOCK_WAIT", BUSY_WAIT)
        yield


def _state(mp: Path) -> tuple[str, str, str, dict[str, bytes]]:
    """HEAD's file, `git status --porcelain`, the branches, every file's bytes."""
    files = {
        str(p.relative_to(mp)): p.read_bytes()
        for p in sorted(mp.rglob("*"))
        if p.is_file() and p.name != ".git" and not p.is_symlink()
    }
    head = _git(mp, "symbolic-ref", "-q", "HEAD", check=False).stdout.strip()
    return head, _git(mp, "status", "--porcelain").stdout, _git(mp, "branch", "--list").stdout, files


def test_a_git_commit_is_never_undone_by_a_status_and_a_checkpoint(mounted: Any) -> None:
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


def test_resets_and_amends_in_the_mount_are_the_base_at_once(mounted: Any) -> None:
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


def test_a_head_moved_off_the_fork_is_named_and_checkpoints_refuse(mounted: Any) -> None:
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


def test_a_rebase_left_half_done_is_refused_by_a_checkpoint(mounted: Any) -> None:
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


def test_a_git_commit_racing_a_checkpoint_loses_nothing(mounted: Any, cli_proc: Any) -> None:
    """Both land, in some order: every line either wrote is in the fork's history."""
    mp, avfs = mounted
    racer = _racer(mp, cli_proc)
    for i in range(6):
        with open(mp / "a.txt", "a") as fh:
            fh.write(f"git {i}\n")
        (mp / f"avfs{i}.txt").write_text(f"avfs {i}\n")
        out: dict[str, Any] = {}

        def commit(i: int, out: dict[str, Any]) -> None:
            out["git"] = _git(mp, "commit", "-qm", f"git {i}", "--", "a.txt", check=False)

        t = threading.Thread(target=commit, args=(i, out))
        t.start()
        out["avfs"] = racer("checkpoint", "save", "-m", f"avfs {i}")
        t.join()
        # git's commit may find nothing left to commit (the checkpoint took a.txt first)
        assert out["avfs"].code == 0, out["avfs"].err
        assert out["git"].returncode == 0 or "nothing" in out["git"].stdout + out["git"].stderr, out["git"]
        if _status(avfs)["changes"]:
            assert avfs("checkpoint", "save", "-m", "rest").code == 0
        _clean_everywhere(mp, avfs)
        assert _git(mp, "show", f"HEAD:avfs{i}.txt").stdout == f"avfs {i}\n"
    assert _git(mp, "show", "HEAD:a.txt").stdout == "one\n" + "".join(f"git {i}\n" for i in range(6))


RACE_ROUNDS = int(os.environ.get("AVFS_GIT_RACE_ROUNDS", "8"))


def test_a_git_commit_started_as_a_checkpoint_moves_the_branch_commits_the_new_index(
    mounted: Any, cli_proc: Any
) -> None:
    """`git commit` reads HEAD, then the index, then takes `index.lock`: one started the
    instant a checkpoint moved the fork's branch read the new HEAD and, while avfs still
    wrote the index for it, the old index, and committed it on the checkpoint (its tree
    the old base's: the checkpoint's changes undone by the person's next commit). Two gits
    in a plain worktree leave a window of microseconds (git renames its index the moment
    after it moves the ref); avfs's was the retirement and the index's patch (tens of ms),
    and a thread polling the branch hit it. The index is now written before the branch
    moves, `index.lock` held until after (mount/indexahead.py): a `git commit` that read
    the new HEAD reads the new index, one that read the old HEAD fails on its own
    compare-and-swap. Every round: git's commit fails, or its tree is its parent's."""
    mp, avfs = mounted
    racer = _racer(mp, cli_proc)
    vault = _git(mp, "rev-parse", "--git-common-dir").stdout.strip()
    ref = Path(vault, "refs", "heads", "f")
    stale: list[str] = []
    for i in range(RACE_ROUNDS):
        (mp / f"r{i}.txt").write_text(f"round {i}\n")
        out: dict[str, Any] = {}
        t = _commit_when_moved(mp, ref, out, f"git {i}")
        res = racer("checkpoint", "save", "-m", f"avfs {i}")
        t.join()
        assert res.code == 0, res.err
        if out["git"].returncode == 0:
            got = _git(mp, "log", "-1", "--format=%T %P %s", "HEAD").stdout.split()
            if got[0] != _git(mp, "rev-parse", f"{got[1]}^{{tree}}").stdout.strip():
                stale.append(f"round {i}: git's commit has tree {got[0]}, its parent {got[1]}")
        assert _git(mp, "show", f"HEAD:r{i}.txt", check=False).returncode == 0 or stale
        if _status(avfs)["changes"]:
            assert avfs("checkpoint", "save", "-m", "rest").code == 0
        _clean_everywhere(mp, avfs)
    assert not stale, stale


def _commit_when_moved(mp: Path, ref: Path, out: dict[str, Any], msg: str) -> threading.Thread:
    """A thread that runs `git commit --allow-empty` in the mount the moment the branch file
    changes (its result in ``out["git"]``). It waits on an inotify watch of the branch's
    directory (set before the move starts, so no event is missed) and looks at the file
    at each event: woken as soon as a poll of the file would see it, without a polling
    loop taking a CPU away from the move it races (a busy ``stat`` loop did, in each
    round of both race tests)."""
    before = ref.stat()
    watch = INotify()
    watch.add_watch(
        str(ref.parent), flags.MOVED_TO | flags.CLOSE_WRITE | flags.CREATE | flags.ATTRIB | flags.DELETE
    )

    def commit() -> None:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with contextlib.suppress(FileNotFoundError):
                    st = ref.stat()
                    if (st.st_ino, st.st_mtime_ns) != (before.st_ino, before.st_mtime_ns):
                        break
                watch.read(timeout=1000)  # (any change in the directory; the file looked at again)
        finally:
            watch.close()
        out["git"] = _git(mp, "commit", "-q", "--allow-empty", "-m", msg, check=False)

    t = threading.Thread(target=commit)
    t.start()
    return t


def test_a_git_commit_started_as_a_restore_undo_revert_or_merge_moves_the_branch_commits_the_new_index(
    mounted: Any, cli_proc: Any
) -> None:
    """The moves that change the view raced as the checkpoint's above: a restore, the undo
    of one, a revert and a clean merge moved the branch, then wrote the index whole (the view's new stat
    data), `index.lock` held across both; a `git commit` that read the new HEAD and, before
    avfs's write, the old index, and took `index.lock` once avfs let it go, committed the
    old tree on the restored commit (the restore undone in the branch's history). Each
    now writes the index for the commit before the branch moves (mount/indexahead.py).
    Every round: git's commit fails, or its tree is its parent's (the moved-to tree)."""
    mp, avfs = mounted
    racer = _racer(mp, cli_proc)
    vault = _git(mp, "rev-parse", "--git-common-dir").stdout.strip()
    ref = Path(vault, "refs", "heads", "f")
    stale: list[str] = []
    for i in range(RACE_ROUNDS):
        (mp / f"r{i}.txt").write_text(f"round {i}\n")
        assert avfs("checkpoint", "save", "-m", f"avfs {i}").code == 0
        kind = ("restore", "undo", "revert", "merge")[i % 4]
        if kind == "undo":  # (the undo of a restore: the view changes back)
            assert avfs("checkpoint", "restore", "HEAD~1").code == 0
        if kind == "merge":  # (main moved on: a clean three-way merge into f)
            assert avfs("--vault", "v:main", "write", f"m{i}.txt", f"main {i}").code == 0
            assert avfs("--vault", "v:main", "checkpoint", "save", "-m", f"main {i}").code == 0
        moved_from = _git(mp, "rev-parse", "HEAD^{tree}").stdout.strip()
        out: dict[str, Any] = {}
        t = _commit_when_moved(mp, ref, out, f"git {i}")
        res = {
            "restore": lambda: racer("checkpoint", "restore", "HEAD~1"),
            "undo": lambda: racer("undo"),
            "revert": lambda: racer("revert", "HEAD"),
            "merge": lambda: racer("merge", "main"),
        }[kind]()
        t.join()
        assert res.code == 0, res.err
        if out["git"].returncode == 0:
            got = _git(mp, "log", "-1", "--format=%T %P", "HEAD").stdout.split()
            if got[0] != _git(mp, "rev-parse", f"{got[1]}^{{tree}}").stdout.strip():
                was = "the tree before the move" if got[0] == moved_from else "another tree"
                stale.append(f"round {i} ({kind}): git's commit has {was} {got[0]}, its parent {got[1]}")
                break  # (the fork's history now undoes the move: nothing after is clean)
        _clean_everywhere(mp, avfs)
    assert not stale, stale


def test_git_gc_prune_and_worktree_add_in_the_mount(mounted: Any) -> None:
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


def test_git_submodule_add_and_a_commit_in_the_mount_keep_the_gitlink(mounted: Any, tmp_path: Path) -> None:
    """`git submodule add` of a local repository and `git commit` in the mount: avfs's
    status stays clean, a checkpoint records nothing, the fork's tree keeps the gitlink
    git committed and the submodule's files stay in the mount. Before, the checkpoint
    replaced the gitlink with those files: on the overlay backend until gitmodel9, on
    pure FUSE (whose checkout is the fork's own entries) until gitmodel10. Beside a
    plain clone doing the same: tests/test_submodules.py."""
    mp, avfs = mounted
    lib = tmp_path / "lib"
    _git(tmp_path, "init", "-q", "-b", "main", str(lib))
    (lib / "l.txt").write_text("lib\n")
    _git(lib, "add", "l.txt")
    _git(lib, "commit", "-q", "-m", "lib")
    _git(mp, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "added")
    _git(mp, "commit", "-q", "-m", "a submodule added")
    head = _git(mp, "rev-parse", "HEAD").stdout
    doc = _status(avfs)
    assert doc["clean"] and doc["changes"] == [], doc
    assert avfs("checkpoint", "save", "-m", "after").code == 0
    assert _git(mp, "rev-parse", "HEAD").stdout == head  # nothing recorded
    assert _git(mp, "ls-tree", "HEAD", "added").stdout.split()[:2] == ["160000", "commit"]
    assert (mp / "added" / "l.txt").read_text() == "lib\n"
    assert _git(mp, "status", "--porcelain").stdout == ""


def test_the_mounts_git_file_cannot_be_removed_or_replaced(mounted: Any) -> None:
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


def test_a_rename_onto_a_file_git_just_committed(mounted: Any) -> None:
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


def test_a_branch_switch_in_the_mount_is_switched_back(mounted: Any, cli: Any) -> None:
    mp, avfs = mounted
    assert cli("vault", "fork", "v:main", "g").code == 0
    assert cli("--vault", "v:g", "write", "theirs.txt", "g's\n").code == 0
    assert cli("--vault", "v:g", "checkpoint", "save", "-m", "g").code == 0
    # uncheckpointed work in the mount: a change and a new file, carried by git's switch
    with open(mp / "a.txt", "a") as fh:
        fh.write("mine\n")
    (mp / "new.txt").write_text("new\n")
    before = _state(mp)
    st = _status(avfs)
    sw = _git(mp, "switch", "g", check=False)
    assert sw.returncode == 1, sw
    assert "avfs: this mount is fork f of vault v: switching back to f" in sw.stderr, sw.stderr
    assert "avfs mount v:g DIR" in sw.stderr, sw.stderr
    assert _state(mp) == before  # g's theirs.txt is not there, the work is
    assert not (mp / "theirs.txt").exists()
    assert _status(avfs)["changes"] == st["changes"] and _status(avfs)["git"] is None
    # `checkout -b`: the branch is made (a fork of the vault, at the mount's commit), the
    # mount stays f
    tip = _git(mp, "rev-parse", "HEAD").stdout.strip()
    cb = _git(mp, "checkout", "-b", "x", check=False)
    assert cb.returncode == 1 and "switching back to f" in cb.stderr, cb
    assert _git(mp, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/f"
    assert _git(mp, "rev-parse", "x").stdout.strip() == tip
    assert "x" in json.dumps(cli("--json", "vault", "info", "v").json())
    assert _state(mp)[1:] == (before[1], _git(mp, "branch", "--list").stdout, before[3])
    # a detached HEAD is git's own state: allowed, named by avfs, and left with `git switch f`
    assert _git(mp, "checkout", "-q", "--detach").returncode == 0
    assert _status(avfs)["git"]["detached"] == tip
    _git(mp, "switch", "-q", "f")
    # file checkouts pass: the guard looks at branch checkouts only
    _git(mp, "checkout", "-q", "--", "a.txt")
    assert (mp / "a.txt").read_text() == "one\n"
    assert avfs("checkpoint", "save", "-m", "work").code == 0
    _clean_everywhere(mp, avfs)


def test_the_persons_hooks_still_run_in_the_mount(mounted: Any, cli: Any, tmp_path: Path) -> None:
    """The mount's own hooks directory (core.hooksPath of its worktree) reaches the vault's
    hooks: pre-commit and post-checkout run as they would without avfs, a hook added after
    mounting too."""
    mp, _avfs = mounted
    hooks = Path(cli("vault", "path", "v").out.strip()) / "hooks"
    marks = tmp_path / "marks"
    for name in ("pre-commit", "post-checkout"):
        (hooks / name).write_text(f'#!/bin/sh\necho {name} "$@" >> {marks}\n')
        (hooks / name).chmod(0o755)
    (mp / "b.txt").write_text("b\n")
    _git(mp, "add", "b.txt")
    _git(mp, "commit", "-qm", "b")
    _git(mp, "checkout", "-q", "--detach")
    _git(mp, "switch", "-q", "f")
    lines = marks.read_text().splitlines()
    assert lines[0] == "pre-commit" and lines[1].startswith("post-checkout ") and len(lines) == 3, lines
    # a refused switch does not run the person's post-checkout (nothing was checked out)
    assert cli("vault", "fork", "v:main", "g").code == 0
    _git(mp, "switch", "g", check=False)
    assert len(marks.read_text().splitlines()) == 3


def test_head_moves_inside_proxy_exec(mounted: Any) -> None:
    """Inside a confined command git's HEAD is the mount's: a branch switch is switched back
    by the same guard (the branch it made is not carried out: refs_refused), a detached
    checkout stays, with no half-done state (HEAD used to be read-only there: git rewrote the
    files, then failed to move HEAD), and a commit made on a detached HEAD is carried back."""
    _need_bwrap()
    mp, avfs = mounted
    (mp / "b.txt").write_text("b\n")
    assert avfs("checkpoint", "save", "-m", "b").code == 0
    tip = _git(mp, "rev-parse", "HEAD").stdout.strip()
    before = _state(mp)
    doc = _exec(mp, "git switch -c x; echo rc=$?; git symbolic-ref HEAD")
    assert doc["result"]["stdout"] == "rc=1\nrefs/heads/f\n", doc["result"]
    assert "switching back to f" in doc["result"]["stderr"]
    assert [r["ref"] for r in doc["refs_refused"]] == ["refs/heads/x"], doc["refs_refused"]
    assert _state(mp) == before
    # detached: the files are HEAD~1's, HEAD is there on the host too
    doc = _exec(
        mp,
        "git checkout -q HEAD~1 && echo made > c.txt && git add c.txt && git commit -qm c && git rev-parse HEAD",
    )
    assert doc["exit_code"] == 0, doc["result"]
    made = doc["result"]["stdout"].strip()
    assert _git(mp, "rev-parse", "HEAD").stdout.strip() == made
    assert _git(mp, "rev-parse", "HEAD~1").stdout.strip() == _git(mp, "rev-parse", f"{tip}~1").stdout.strip()
    assert not (mp / "b.txt").exists() and (mp / "c.txt").read_text() == "made\n"
    assert _git(mp, "status", "--porcelain").stdout == ""
    assert _status(avfs)["git"]["detached"] == made
    vault = avfs("vault", "path").out.strip()
    fsck = subprocess.run(["git", "--git-dir", vault, "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    assert _git(mp, "rev-parse", "refs/heads/f").stdout.strip() == tip  # the branch did not move
    # back on the fork, the commit made detached is kept where git keeps it (the reflog)
    _git(mp, "switch", "-q", "f")
    assert (mp / "b.txt").read_text() == "b\n" and not (mp / "c.txt").exists()
    assert _git(mp, "cat-file", "-t", made).stdout.strip() == "commit"
    _clean_everywhere(mp, avfs)


def test_a_rebase_finished_inside_proxy_exec_moves_the_fork(mounted: Any) -> None:
    """A rebase detaches HEAD while it works: inside `proxy exec` it could not start before;
    one that finishes in the command moves the fork's branch like a commit."""
    _need_bwrap()
    mp, avfs = mounted
    for n in ("1", "2"):
        (mp / f"n{n}.txt").write_text(n)
        _git(mp, "add", f"n{n}.txt")
        _git(mp, "commit", "-qm", f"n{n}")
    base = _git(mp, "rev-parse", "HEAD~2").stdout.strip()
    doc = _exec(mp, "git rebase -q --onto HEAD~2 HEAD~1 && git log --format=%s -2")  # drops n1
    assert doc["exit_code"] == 0, doc["result"]
    assert doc["result"]["stdout"].splitlines()[0] == "n2", doc["result"]
    assert _git(mp, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/f"
    assert _git(mp, "rev-parse", "HEAD~1").stdout.strip() == base
    assert not (mp / "n1.txt").exists() and (mp / "n2.txt").read_text() == "2"
    _clean_everywhere(mp, avfs)


def test_the_way_back_named_for_the_vaults_own_head_branch_works(
    backend: str, cli: Any, tmp_path: Path, mounted: Any
) -> None:
    """The vault's own HEAD branch (`main`) is taken by git 2.39 for checked out in the bare
    vault, so `git switch main` in its mount fails ("already checked out"): the way back
    avfs names there is one that works (`--ignore-other-worktrees`), and for another fork
    the plain one."""
    mp = tmp_path / "main-m"
    mp.mkdir()
    assert cli("--vault", "v:main", "mount", "--backend", backend, str(mp)).code == 0
    try:
        _git(mp, "checkout", "-q", "--detach")
        res = cli("--json", "checkpoint", "save", cwd=str(mp))
        assert res.code != 0 and res.json()["error"]["code"] == "git_in_progress", res.out
        hint = res.json()["error"]["hint"]
        way_back = hint.split("`")[1]
        assert way_back == "git switch --ignore-other-worktrees main", hint
        assert way_back in cli("status", cwd=str(mp)).out
        assert _git(mp, "switch", "-q", "main", check=False).returncode != 0  # (git's limit)
        _git(mp, *way_back.split()[1:])
        assert _status(lambda *a: cli(*a, cwd=str(mp)))["git"] is None
    finally:
        cli("--vault", "v:main", "unmount", str(mp))
    other_mp, avfs = mounted
    _git(other_mp, "checkout", "-q", "--detach")
    assert avfs("--json", "checkpoint", "save").json()["error"]["hint"].split("`")[1] == "git switch f"


def test_a_directory_git_removed_then_brought_back_by_a_reset_stays(mounted: Any) -> None:
    """Found by the git model (gitmodel2): `git rm -r DIR`, a commit, `git reset --hard
    HEAD~1` (git makes DIR again, and its files), then `avfs status`: on pure FUSE the
    files were gone from the mount (`cat` failed, git and avfs listed them deleted, a
    checkpoint would have recorded their removal). The directory git made while the base
    had none is an entry of an empty tree; taking git's commit as the base retired the
    file entries below it (each the new base's file) and left that empty tree hiding them."""
    mp, avfs = mounted
    (mp / "gh" / "wf").mkdir(parents=True)
    (mp / "gh" / "c.md").write_text("c\n")
    (mp / "gh" / "wf" / "ci.yml").write_text("w\n")
    _git(mp, "add", "-A")
    _git(mp, "commit", "-qm", "gh")
    for rm in (["rm", "-r", "-q", "--", "gh"], ["rm", "-r", "-q", "--cached", "--", "gh"]):
        _git(mp, *rm)
        assert avfs("status").code == 0
        _git(mp, "commit", "-qm", "without gh")
        assert avfs("status").code == 0
        _git(mp, "reset", "-q", "--hard", "HEAD~1")
        doc = _status(avfs)
        assert doc["changes"] == [] and doc["head"] == _git(mp, "rev-parse", "HEAD").stdout.strip(), (rm, doc)
        assert (mp / "gh" / "c.md").read_text() == "c\n" and (
            mp / "gh" / "wf" / "ci.yml"
        ).read_text() == "w\n"
        assert _git(mp, "status", "--porcelain").stdout == "", rm
        assert avfs("checkpoint", "save", "-m", "nothing").code == 0
        assert _git(mp, "ls-tree", "-r", "--name-only", "HEAD", "gh").stdout.split() == [
            "gh/c.md",
            "gh/wf/ci.yml",
        ]


def test_a_file_a_restore_took_away_can_be_made_again(mounted: Any, backend: str) -> None:
    """Found by the git model (gitmodel2: every command once, fuse; shrunk to four steps):
    write NEW.txt, `avfs checkpoint save`, `avfs checkpoint restore HEAD~1`, then a create
    of NEW.txt in the mount (`>>`, `>`) failed with ENOENT on pure FUSE: the kernel still
    held the name (libfuse's invalidation forgets attributes, not names) and sent an open,
    not a create. The open of a name that is gone answers ESTALE, so the kernel looks the
    name up again: a create creates, a plain open is ENOENT. At the root and below it."""
    mp, avfs = mounted
    for rel in ("NEW.txt", "d/NEW2.txt"):
        (mp / rel).write_text("new\n")
        assert avfs("checkpoint", "save", "-m", "new").code == 0
        assert avfs("checkpoint", "restore", _git(mp, "rev-parse", "HEAD~1").stdout.strip()).code == 0
        with pytest.raises(FileNotFoundError):
            open(mp / rel).close()  # (not ESTALE)
        assert not (mp / rel).exists()
        with open(mp / rel, "a") as fh:
            fh.write("again\n")
        assert (mp / rel).read_text() == "again\n"
        assert avfs("checkpoint", "save", "-m", "again").code == 0
        assert avfs("checkpoint", "restore", _git(mp, "rev-parse", "HEAD~1").stdout.strip()).code == 0
        (mp / rel).write_text("truncated\n")  # O_CREAT | O_TRUNC
        assert (mp / rel).read_text() == "truncated\n"
        assert _status(avfs)["changes"] == [{"path": rel, "status": "added"}]
        (mp / rel).unlink()


@pytest.mark.parametrize("move", ["checkpoint", "undo"])
def test_what_git_staged_stays_staged_across_avfs_moving_the_base(mounted: Any, move: str) -> None:
    """`avfs checkpoint save` and `avfs undo` of one move the fork's branch, then patch the
    mount's git index for the new base (what git staged elsewhere stays staged, as after
    a commit). On pure FUSE the daemon, seeing the base move with the index not yet
    stamped for it, could write the index whole in between: a `git rm --cached` was
    unstaged. The move and the index's patch are made under the index guard and git's
    `index.lock` (mount/indexguard.py), as git's own commit updates its ref and then
    its index under `index.lock`."""
    mp, avfs = mounted
    for i in range(8):
        (mp / f"k{i}.txt").write_text(f"kept {i}\n")
        _git(mp, "add", f"k{i}.txt")
        assert avfs("checkpoint", "save", "-m", f"k{i}").code == 0
        _git(mp, "rm", "-q", "--cached", f"k{i}.txt")  # staged: k's deletion
        with open(mp / "a.txt", "a") as fh:
            fh.write(f"line {i}\n")
        if move == "undo":
            assert avfs("checkpoint", "save", "-m", f"a {i}").code == 0
            res = avfs("undo")
        else:
            res = avfs("checkpoint", "save", "-m", f"a {i}")
        assert res.code == 0, res.err
        assert avfs("status").code == 0  # (the daemon's refresh, if any, has run by now)
        want = {f"D  k{i}.txt", f"?? k{i}.txt"} | ({" M a.txt"} if move == "undo" else set())
        assert set(_git(mp, "status", "--porcelain").stdout.splitlines()) == want, i
        _git(mp, "add", "-A")
        _git(mp, "commit", "-q", "--allow-empty", "-m", f"round {i}")
        assert avfs("status").code == 0


@pytest.mark.parametrize("move", ["restore", "undo", "checkpoint"])
def test_git_s_skip_worktree_and_assume_unchanged_bits_survive_avfs_moving_the_base(
    mounted: Any, move: str
) -> None:
    """A person's `git update-index --skip-worktree` / `--assume-unchanged` survive avfs's
    restore, undo and checkpoint as they survive git's own `reset`: git copies
    skip-worktree to a path's new entry, and an entry that stays the same keeps every bit.
    avfs wrote the mount's index whole from the base tree and dropped them (the git model,
    overlay, seed 32: after a restore, `git rm -r --cached docs` then took the
    skip-worktree file out of the index, which git leaves in: git skips such entries)."""
    mp, avfs = mounted
    (mp / "b.txt").write_text("b\n")
    (mp / "d" / "n.txt").write_text("n\n")
    assert avfs("checkpoint", "save", "-m", "with b").code == 0
    _git(mp, "update-index", "--skip-worktree", "d/c.txt")
    _git(mp, "update-index", "--assume-unchanged", "a.txt")
    (mp / "e.txt").write_text("e\n")
    assert avfs("checkpoint", "save", "-m", "with e").code == 0
    if move == "restore":
        head = _git(mp, "rev-parse", "HEAD~1").stdout.strip()
        res = avfs("checkpoint", "restore", head)
    elif move == "undo":
        res = avfs("undo")
    else:
        (mp / "b.txt").write_text("b again\n")
        res = avfs("checkpoint", "save", "-m", "b again")
    assert res.code == 0, res.err
    assert avfs("status").code == 0  # (the daemon's refresh, if any, has run by now)
    flags = sorted(ln for ln in _git(mp, "ls-files", "-v").stdout.splitlines() if not ln.startswith("H "))
    assert flags == ["S d/c.txt", "h a.txt"], flags
    _git(mp, "rm", "-r", "-q", "--cached", "--", "d")  # (git leaves a skip-worktree entry staged)
    assert _git(mp, "ls-files", "--", "d").stdout.split() == ["d/c.txt"]


@pytest.mark.parametrize("move", ["checkpoint", "exec"])
def test_what_git_staged_stays_staged_beside_a_skip_worktree_entry(mounted: Any, move: str) -> None:
    """A move that keeps the view (a checkpoint, an exec's record of what was
    uncheckpointed) patches the mount's index, keeping what git staged; an index with a
    skip-worktree entry (git writes it as version 3) was not patched but written whole,
    and a staged `git rm --cached` was gone (the git model, seed 34 on both backends: a
    `proxy exec` of a `git reset --hard HEAD~1` that failed, after `git rm -r --cached
    docs/_static` and `git update-index --skip-worktree tests/utils.py`)."""
    if move == "exec":
        _need_bwrap()
    mp, avfs = mounted
    (mp / "b.txt").write_text("b\n")
    assert avfs("checkpoint", "save", "-m", "with b").code == 0
    _git(mp, "rm", "-q", "--cached", "b.txt")
    _git(mp, "update-index", "--skip-worktree", "d/c.txt")
    (mp / "a.txt").write_text("two\n")
    if move == "checkpoint":
        assert avfs("checkpoint", "save", "-m", "a").code == 0
    else:
        doc = _exec(mp, "exit 3")  # (the record below the command: a.txt)
        assert doc["result"]["exit_code"] == 3 and doc["checkpoint"]["on_branch"], doc
    assert avfs("status").code == 0  # (the daemon's refresh, if any, has run by now)
    assert _git(mp, "show", "--format=", "--name-only", "HEAD").stdout.split() == ["a.txt"]
    assert sorted(_git(mp, "status", "--porcelain").stdout.splitlines()) == ["?? b.txt", "D  b.txt"]
    flags = [ln for ln in _git(mp, "ls-files", "-v").stdout.splitlines() if not ln.startswith("H ")]
    assert flags == ["S d/c.txt"], flags


def test_an_assume_unchanged_entry_git_mv_moved_keeps_its_bit_across_a_checkpoint(mounted: Any) -> None:
    """`git mv` keeps an entry's assume-unchanged bit; a checkpoint that records the move
    patched the entry at the new path anew and dropped it, where git's own `reset -- PATH`
    leaves an entry equal to the commit's as it is (the git model, overlay, seed 35,
    10 x 60: `git mv -k docs documentation` in `proxy exec`)."""
    mp, avfs = mounted
    _git(mp, "update-index", "--assume-unchanged", "d/c.txt")
    _git(mp, "mv", "-k", "d", "moved")
    assert avfs("checkpoint", "save", "-m", "moved").code == 0
    assert avfs("status").code == 0  # (the daemon's refresh, if any, has run by now)
    flags = [ln for ln in _git(mp, "ls-files", "-v").stdout.splitlines() if not ln.startswith("H ")]
    assert flags == ["h moved/c.txt"], flags


def test_a_directory_git_mv_renamed_keeps_its_files_when_git_moves_the_base(mounted: Any) -> None:
    """Found by the git model (gitmodel2's soak, fuse, seed 11; shrunk by hand): `git mv`
    of a directory, then `git reset --mixed HEAD~1` (git moves the base under the view):
    on pure FUSE `avfs status` lost the moved files (`git status` listed them new). The
    renamed directory is an entry of the tree it was made from; taking git's commit as the
    base emptied every such entry the new base does not hold, a rule meant for a checkpoint
    that retires the deletions below one (wsretire ``_empty_kept_trees``): now only there."""
    mp, avfs = mounted
    (mp / "a.txt").unlink()
    assert avfs("checkpoint", "save", "-m", "without a").code == 0
    (mp / "b.txt").write_text("b\n")
    assert avfs("checkpoint", "save", "-m", "with b").code == 0
    _git(mp, "mv", "-k", "d", "moved-dir")
    _git(mp, "reset", "-q", "--mixed", "HEAD~1")
    got = {(c["path"], c["status"], c.get("old_path")) for c in _status(avfs)["changes"]}
    assert got == {("moved-dir/c.txt", "renamed", "d/c.txt"), ("b.txt", "added", None)}, got
    assert (mp / "moved-dir" / "c.txt").read_text() == "c\n"
    assert _git(mp, "status", "--porcelain", "--untracked-files=all").stdout.splitlines() == [
        " D d/c.txt",
        "?? b.txt",
        "?? moved-dir/c.txt",
    ]
    assert avfs("checkpoint", "save", "-m", "moved").code == 0
    assert _git(mp, "ls-tree", "-r", "--name-only", "HEAD").stdout.split() == ["b.txt", "moved-dir/c.txt"]


@pytest.mark.parametrize("move", ["checkpoint", "merge"])
def test_a_move_of_the_base_waits_for_git_s_index_lock_and_fails_clearly(
    mounted: Any, cli: Any, move: str
) -> None:
    """git in the mount holds `index.lock` (a `git commit -a` waiting for its message holds
    it for as long as the editor is open) while avfs moves the fork's branch. The mover
    waited 10 s for it, then moved the branch all the same and left the index alone: once
    git let go, the index still held the old base under the new HEAD (`git status`:
    `MM a.txt`, the checkpoint's change staged backwards), and git's next `commit` put the
    old file back on the branch; the checkpoint's answer said nothing. It now fails
    `busy` naming the lock, the branch where it was, the change still uncheckpointed (a
    merge into the mounted fork: nothing merged)."""
    mp, avfs = mounted
    if move == "merge":
        assert cli("vault", "fork", "v:main", "g").code == 0
        assert cli("--vault", "v:g", "write", "theirs.txt", "g's\n").code == 0
        assert cli("--vault", "v:g", "checkpoint", "save", "-m", "g").code == 0
        want, args = "", ("merge", "g")
    else:
        with open(mp / "a.txt", "a") as fh:
            fh.write("two\n")
        want, args = " M a.txt\n", ("checkpoint", "save", "-m", "while git holds index.lock")
    head = _git(mp, "rev-parse", "HEAD").stdout
    lock = Path(_git(mp, "rev-parse", "--absolute-git-dir").stdout.strip()) / "index.lock"
    lock.write_bytes(b"")  # git's, as a running git holds it
    try:
        with _short_lock_wait():
            res = avfs("--json", *args)
    finally:
        lock.unlink()
    assert res.code == 75, (res.code, res.out, res.err)
    err = json.loads(res.out or res.err)["error"]
    assert err["code"] == "busy" and err["details"]["path"] == str(lock), err
    assert f"(waited {BUSY_WAIT} s)" in err["message"], err  # AVFS_LOCK_WAIT's, not a fixed wait
    assert _git(mp, "rev-parse", "HEAD").stdout == head
    assert _git(mp, "status", "--porcelain").stdout == want
    assert avfs(*args).code == 0  # once git is done
    if move == "checkpoint":
        _clean_everywhere(mp, avfs)
        assert _git(mp, "show", "HEAD:a.txt").stdout == "one\ntwo\n"
    else:
        assert (mp / "theirs.txt").read_text() == "g's\n"
        assert _git(mp, "status", "--porcelain").stdout == ""


def test_a_proxy_exec_while_the_person_s_git_holds_index_lock_keeps_its_record_beside(
    mounted: Any,
) -> None:
    """A confined command run while the person's git holds git's `index.lock` (taken before
    the run, so it is the person's, not the command's: the carry-back removes only a lock
    the command made, tests/test_adv_carry.py): the exec's landing of its record waits for
    the lock as a checkpoint does, and finds it kept (mount/indexguard.py `lock_for_move`):
    the record before the command is kept beside the branch under a recovery ref, as when
    the fork moved meanwhile, the branch not moved, what the command changed left
    uncheckpointed, and the exec's error says why (`busy`, the lock), after one wait: it
    lost the record (the error raised out of the landing) or waited twice (a checkpoint of
    the command's changes after it)."""
    _need_bwrap()
    mp, avfs = mounted
    with open(mp / "a.txt", "a") as fh:
        fh.write("before\n")
    head = _git(mp, "rev-parse", "HEAD").stdout
    lock = Path(_git(mp, "rev-parse", "--absolute-git-dir").stdout.strip()) / "index.lock"
    lock.write_bytes(b"")  # git's, as the person's running git holds it
    try:
        with _short_lock_wait():
            doc = _exec(mp, "echo b > b.txt")
        assert lock.exists()  # the person's: never removed by avfs
    finally:
        lock.unlink(missing_ok=True)
    assert doc["result"]["exit_code"] == 0, doc
    assert doc["error"]["code"] == "busy" and doc["error"]["details"]["path"] == str(lock), doc
    assert f"(waited {BUSY_WAIT} s)" in doc["error"]["message"], doc  # the caller's AVFS_LOCK_WAIT
    cp = doc["checkpoint"]
    assert cp["created"] and not cp["on_branch"] and cp["ref"], cp
    assert _git(mp, "rev-parse", "HEAD").stdout == head
    assert _git(mp, "show", f"{cp['commit']}:a.txt").stdout == "one\nbefore\n"
    assert {(c["path"], c["status"]) for c in _status(avfs)["changes"]} == {
        ("a.txt", "modified"),
        ("b.txt", "added"),
    }


@pytest.mark.parametrize("move", ["restore", "undo"])
def test_a_move_that_fails_busy_leaves_no_recovery_ref_without_its_operation(mounted: Any, move: str) -> None:
    """A restore or undo of a fork with uncheckpointed changes keeps them under a recovery
    ref, then waits for git's `index.lock` to move the branch. It made the ref first: a
    move that then failed `busy` left a recovery ref that no operation named (`avfs op log`
    said nothing of it, `avfs gc` expired it as any kept ref, `undo` could not find it).
    The ref and its operation are made both or neither: a busy move makes neither, and the
    uncheckpointed change is still there to be kept by the retry."""
    mp, avfs = mounted
    (mp / "b.txt").write_text("b\n")
    assert avfs("checkpoint", "save", "-m", "b").code == 0
    restore = ("checkpoint", "restore", "HEAD~1")
    if move == "undo":  # an undo of a restore: the view it brings back replaces the changes
        assert avfs(*restore).code == 0
    with open(mp / "a.txt", "a") as fh:
        fh.write("uncheckpointed\n")
    args = restore if move == "restore" else ("undo",)
    head = _git(mp, "rev-parse", "HEAD").stdout
    ops = avfs("--json", "op", "log").json()
    lock = Path(_git(mp, "rev-parse", "--absolute-git-dir").stdout.strip()) / "index.lock"
    lock.write_bytes(b"")  # git's, as a running git holds it
    try:
        with _short_lock_wait():
            res = avfs("--json", *args)
    finally:
        lock.unlink()
    assert res.code == 75, (res.code, res.out, res.err)
    assert res.json()["error"]["code"] == "busy"
    assert f"(waited {BUSY_WAIT} s)" in res.json()["error"]["message"], res.json()
    assert _git(mp, "for-each-ref", "refs/avfs/recovery").stdout == ""
    assert avfs("--json", "op", "log").json() == ops
    assert _git(mp, "rev-parse", "HEAD").stdout == head
    assert (mp / "a.txt").read_text() == "one\nuncheckpointed\n"
    res = avfs("--json", *args)  # once git is done: the ref and its operation, both
    assert res.code == 0, (res.code, res.out, res.err)
    recs = _git(mp, "for-each-ref", "--format=%(refname)", "refs/avfs/recovery").stdout.split()
    assert len(recs) == 1, recs
    newest = avfs("--json", "op", "log").json()["operations"][0]
    assert recs[0] in {r["ref"] for r in newest["refs"]}, newest
    assert _git(mp, "show", f"{recs[0]}:a.txt").stdout == "one\nuncheckpointed\n"


def test_git_sparse_checkout_in_the_mount_is_refused_until_disabled(mounted: Any) -> None:
    """`git sparse-checkout` takes the files it leaves out out of the mount: removals to
    avfs, which records files, not git's index. While it is on, avfs names it and refuses to
    record (a checkpoint recorded every left-out file as deleted); `disable` brings them
    back and the fork is as it was (docs/fuse.md, "gitmodel8")."""
    mp, avfs = mounted
    head = _git(mp, "rev-parse", "HEAD").stdout
    _git(mp, "sparse-checkout", "set", "--no-cone", "/a.txt")
    assert not (mp / "d" / "c.txt").exists()
    assert _git(mp, "status", "--porcelain").stdout == ""
    doc = _status(avfs)
    assert doc["git"] is not None and doc["git"]["in_progress"] == "sparse-checkout", doc
    _validator("status").validate(doc)  # (docs/schemas/status.schema.json names it)
    res = avfs("--json", "checkpoint", "save", "-m", "sparse")
    err = res.json()["error"]
    assert res.code == 75 and err["code"] == "git_in_progress", res.out
    assert "git sparse-checkout disable" in err["hint"]
    assert _git(mp, "rev-parse", "HEAD").stdout == head
    _git(mp, "sparse-checkout", "disable")
    assert (mp / "d" / "c.txt").read_text() == "c\n"
    doc = _status(avfs)
    assert doc["git"] is None and doc["changes"] == [], doc
    assert avfs("checkpoint", "save", "-m", "nothing").code == 0
    assert _git(mp, "rev-parse", "HEAD").stdout == head


def test_under_sparse_checkout_a_present_file_s_skip_worktree_bit_goes_as_git_s_with_fsmonitor(
    mounted: Any, tmp_path: Path
) -> None:
    """Seed 82 of the git model (gitmodel9): under `git sparse-checkout`, git clears the
    skip-worktree bit of an entry whose file is present (sparse-index.c,
    `clear_skip_worktree_from_present_files`) whenever it reads the index, and the bit is
    gone for good at the next write of the index. The mount answers git's `core.fsmonitor`,
    so its `git status` writes the index every time (the hook's new token): the bit is gone
    after one status, and once the file is removed git lists it deleted. A plain clone whose
    git has an fsmonitor hook does the same; one without writes the index only when a
    refresh changed an entry, and kept the bit (the model's plain side). The mount agrees
    with git that has an fsmonitor (docs/fuse.md, "gitmodel9"), and avfs refuses to record
    while sparse-checkout is on, naming it."""
    mp, avfs = mounted
    vault = _git(mp, "rev-parse", "--git-common-dir").stdout.strip()
    hook = tmp_path / "fsmonitor.sh"  # (version 2: a new token, then "/": anything changed)
    hook.write_text("#!/bin/sh\nprintf 'tok%s\\0/\\0' \"$(date +%s%N)\"\n")
    hook.chmod(0o755)
    plain: dict[str, Path] = {}
    for name, fsmonitor in (("with", True), ("without", False)):
        p = tmp_path / f"plain-{name}"
        subprocess.run(["git", "clone", "-q", "-b", "f", vault, str(p)], check=True, capture_output=True)
        if fsmonitor:
            _git(p, "config", "core.fsmonitor", str(hook))
            _git(p, "config", "core.fsmonitorHookVersion", "2")
        for f in ("a.txt", "d/c.txt"):  # (no entry racy: of the index's own second, git's
            os.utime(p / f, (1e9, 1e9))  # status would refresh it and write the index)
        _git(p, "update-index", "-q", "--really-refresh")
        plain[name] = p
    sides = [mp, *plain.values()]

    def bits(root: Path) -> str:
        return _git(root, "-c", "core.sparseCheckout=false", "ls-files", "-v", "--", "d").stdout

    for root in sides:
        _git(root, "sparse-checkout", "set", "d")
        _git(root, "update-index", "--skip-worktree", "--", "d/c.txt")
        assert bits(root) == "S d/c.txt\n", root
    for root in sides:
        _git(root, "status", "--porcelain")
    assert [bits(r) for r in sides] == ["H d/c.txt\n", "H d/c.txt\n", "S d/c.txt\n"]
    for root in sides:
        os.unlink(root / "d" / "c.txt")
    st = {r: _git(r, "status", "--porcelain").stdout for r in sides}
    assert st[mp] == st[plain["with"]] == " D d/c.txt\n", st
    assert st[plain["without"]] == "", st
    res = avfs("--json", "checkpoint", "save", "-m", "sparse")
    assert res.code == 75 and "git sparse-checkout disable" in res.json()["error"]["hint"], res.out


@pytest.mark.parametrize("how", ["detach", "rebase-break"])
def test_git_off_its_branch_after_its_commits_keeps_its_files_and_index(mounted: Any, how: str) -> None:
    """Two `git commit`s in the mount, no avfs command between, then git leaves the branch
    at the commit before them (`git checkout --detach HEAD~2`, or `git rebase -i HEAD~2`
    whose todo list starts with `break`: git's files and index are HEAD~2's, its rebase
    open): the next avfs command takes the branch as git's move (the base follows, the
    view stays), lists what the files differ from the branch, and leaves git's files and
    index alone. Before (gitmodel12), it took the branch as another hand's move and made
    the view the branch's: on the overlay backend it wrote the branch's files under git's
    detached HEAD or open rebase, and its index entries; on pure FUSE it listed no change
    (the files were HEAD~2's) and rewrote git's index."""
    mp, avfs = mounted
    for text in ("two\n", "three\n"):
        (mp / "a.txt").write_text(text)
        _git(mp, "commit", "-qam", text.strip())
    tip = _git(mp, "rev-parse", "HEAD").stdout.strip()
    if how == "detach":
        _git(mp, "checkout", "-q", "--detach", "HEAD~2")
    else:
        _git(mp, "-c", "sequence.editor=sed -i -e 1ibreak", "rebase", "-q", "-i", "HEAD~2")
    doc = _status(avfs)
    assert doc["head"] == doc["base"] == tip and not doc["stale"], doc
    assert doc["changes"] == [{"path": "a.txt", "status": "modified"}], doc
    assert doc["git"]["in_progress"] == (None if how == "detach" else "rebase"), doc
    assert (mp / "a.txt").read_text() == "one\n"
    assert _git(mp, "status", "--porcelain").stdout == ""
    assert avfs("checkpoint", "save", "-m", "refused").code == 75
    if how == "detach":
        _git(mp, "switch", "-q", "f")
    else:
        _git(mp, "rebase", "--continue")
    assert (mp / "a.txt").read_text() == "three\n"
    _clean_everywhere(mp, avfs)


def test_a_merge_into_the_mount_after_a_converted_checkpoint_goes_through(mounted: Any) -> None:
    """Under `core.autocrlf=input`, a file written with CRLF and without a last newline,
    checkpointed (its blob LF, the file kept as written), then `avfs merge` of another fork
    into the mounted one: a fast-forward, the file as git's merge leaves it. Before
    (gitmodel12), on pure FUSE the converted file's entry (which no checkpoint retires)
    made the merge take the fork for written during every try: `busy`, nothing moved."""
    mp, avfs = mounted
    _git(mp, "config", "core.autocrlf", "input")
    (mp / "crlf.txt").write_bytes(b"one\r\ntwo\nlast")
    assert avfs("checkpoint", "save", "-m", "converted").code == 0
    assert _git(mp, "cat-file", "blob", "HEAD:crlf.txt").stdout == "one\ntwo\nlast"
    assert avfs("vault", "fork", "v:f", "o").code == 0
    assert avfs("--vault", "v:o", "write", "o.txt", "from o\n").code == 0
    assert avfs("--vault", "v:o", "checkpoint", "save", "-m", "o").code == 0
    with _short_lock_wait():
        res = avfs("--json", "merge", "o")
    assert res.code == 0, res.out + res.err
    assert res.json()["results"][0]["status"] == "fast_forward", res.out
    assert (mp / "o.txt").read_text() == "from o\n"
    assert (mp / "crlf.txt").read_bytes() == b"one\r\ntwo\nlast"
    assert _git(mp, "status", "--porcelain").stdout == ""
    assert _status(avfs)["clean"]

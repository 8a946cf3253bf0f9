"""git's own state in a mount outlives the mount (docs/fuse.md, "What a remount keeps of
git's own state"; mount/gitkeep.py): what git keeps per worktree (its index and the bits
`update-index` sets, an open merge, cherry-pick, revert, rebase, `am` or bisect, ORIG_HEAD,
HEAD's reflog, a detached HEAD, sparse-checkout) is as it was after `avfs unmount` and
`avfs mount` of the fork, and after a kept-warm mount's idle release; where the fork's
branch moved while it was unmounted (a checkpoint, a restore), what named the old commit is
set aside and git's index is the new commit's, its skip-worktree bits kept; what a
confined command could plant there (links, a submodule's git dir, another branch's HEAD, a
`core.fsmonitor`) is never brought back. Found in gitmodel13 (the unmount removed the
worktree git dir). Both backends, real mounts, real git; the remount of the first state's
case and the kept-warm mount's `proxy exec` are real CLI processes, the other calls run in
the test's process (``conftest.run_in_process``: what git keeps is the mount's, not the
command's process; ~0.2 s of CPU a process, suitetime17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.vaults import registry

from ..gitmount import _git, _status, mount_fork, warm
from .backends import MOUNTS

pytestmark = pytest.mark.backends(*MOUNTS)

PERSON = ("-c", "user.name=P", "-c", "user.email=p@x.invalid")


@pytest.fixture
def mounted(backend: str, cli_proc: Any, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as m:
        yield m


def _commit(mp: Path, path: str, text: str, message: str) -> None:
    (mp / path).write_text(text)
    _git(mp, *PERSON, "commit", "-qam", message)


def _other_branch_changes_a(mp: Path, text: str, scratch: Path | None = None) -> None:
    """Branch ``other`` at HEAD, then a commit there writing a.txt = ``text`` (made through
    a linked worktree of the vault at ``scratch``/wt, which is removed after)."""
    _git(mp, "branch", "other")
    wt = (scratch or mp.parent) / "wt"
    _git(mp, "worktree", "add", "-q", str(wt), "other")
    (wt / "a.txt").write_text(text)
    _git(wt, *PERSON, "commit", "-qam", "theirs")
    _git(mp, "worktree", "remove", "--force", str(wt))


def _bits(mp: Path) -> str:
    (mp / "new.txt").write_text("new\n")
    _git(mp, "add", "new.txt")
    _git(mp, "update-index", "--skip-worktree", "a.txt")
    _git(mp, "update-index", "--assume-unchanged", "d/c.txt")
    return "update-index --no-skip-worktree a.txt"


def _merge(mp: Path, scratch: Path | None = None) -> str:
    _other_branch_changes_a(mp, "theirs\n", scratch)
    _commit(mp, "a.txt", "ours\n", "ours")
    assert _git(mp, "merge", "-q", "other", check=False).returncode == 1
    return "merge --abort"


def _cherry_pick(mp: Path) -> str:
    _other_branch_changes_a(mp, "theirs\n")
    _commit(mp, "a.txt", "ours\n", "ours")
    assert _git(mp, *PERSON, "cherry-pick", "other", check=False).returncode == 1
    return "cherry-pick --abort"


def _revert(mp: Path) -> str:
    _commit(mp, "a.txt", "two\n", "two")
    _commit(mp, "a.txt", "three\n", "three")
    assert _git(mp, *PERSON, "revert", "--no-edit", "HEAD~1", check=False).returncode == 1
    return "revert --abort"


def _rebase(mp: Path) -> str:
    _commit(mp, "a.txt", "two\n", "two")
    _commit(mp, "d/c.txt", "c2\n", "c2")
    _git(mp, *PERSON, "-c", "sequence.editor=sed -i -e '2i break'", "rebase", "-q", "-i", "HEAD~2")
    return "rebase --abort"


def _am(mp: Path) -> str:
    _other_branch_changes_a(mp, "theirs\n")
    patch = _git(mp, "format-patch", "-1", "other", "--stdout").stdout
    _commit(mp, "a.txt", "ours\n", "ours")
    am = subprocess.run(
        ["git", *PERSON, "am"], cwd=mp, input=patch, capture_output=True, text=True, check=False
    )
    assert am.returncode != 0, am.stdout
    return "am --abort"


def _bisect(mp: Path) -> str:
    for n in range(3):
        _commit(mp, "a.txt", f"v{n}\n", f"v{n}")
    _git(mp, "bisect", "start", "HEAD", "HEAD~3")
    return "bisect reset"


def _detached(mp: Path) -> str:
    _commit(mp, "a.txt", "two\n", "two")
    _git(mp, "checkout", "-q", "--detach", "HEAD~1")
    return "checkout -q f"


def _orig_head(mp: Path) -> str:
    _commit(mp, "a.txt", "two\n", "two")
    _commit(mp, "a.txt", "three\n", "three")
    _git(mp, "reset", "-q", "--soft", "HEAD~1")
    return "reset -q --hard ORIG_HEAD"


def _sparse(mp: Path) -> str:
    _git(mp, "sparse-checkout", "set", "--no-cone", "/a.txt")
    assert not (mp / "d" / "c.txt").exists()
    return "sparse-checkout disable"


STATES: dict[str, Callable[[Path], str]] = {
    # (what `git add` staged and an open merge: test_git_move_at_unmount.py)
    "skip-worktree, assume-unchanged": _bits,
    "cherry-pick": _cherry_pick,
    "revert": _revert,
    "rebase -i": _rebase,
    "am": _am,
    "bisect": _bisect,
    "detached HEAD": _detached,
    "ORIG_HEAD, reflog": _orig_head,
    "sparse-checkout": _sparse,
}


def _git_s_view(mp: Path) -> dict[str, str]:
    """What git says of its state in the mount: its long status names an open operation."""
    return {
        "status": _git(mp, "status").stdout,
        "v2": _git(mp, "status", "--porcelain=v2", "--branch", "-uall").stdout,
        "index": _git(mp, "ls-files", "-s", "-v").stdout,
        "HEAD": _git(mp, "rev-parse", "HEAD").stdout,
        "branch": _git(mp, "symbolic-ref", "-q", "HEAD", check=False).stdout,
        "ORIG_HEAD": _git(mp, "rev-parse", "-q", "--verify", "ORIG_HEAD", check=False).stdout,
        "reflog": _git(mp, "reflog", "--format=%H %gs").stdout,
        "sparse": _git(mp, "sparse-checkout", "list", check=False).stdout,
        "files": "\n".join(sorted(str(p.relative_to(mp)) for p in mp.rglob("*") if ".git" not in p.parts)),
    }


def _remount(cli_proc: Any, mp: Path, backend: str) -> None:
    assert cli_proc("--vault", "v:f", "unmount", str(mp)).code == 0
    assert cli_proc("--vault", "v:f", "mount", "--backend", backend, str(mp)).code == 0


@pytest.mark.parametrize("what", list(STATES))
def test_each_of_git_s_states_outlives_a_remount(
    mounted: Any, backend: str, cli: Any, cli_proc: Any, what: str
) -> None:
    """The remount by real processes in the first state's case, by the CLI in the test's
    process in the others (``conftest.run_in_process``; the mount's daemon a process
    either way, forked there by the process's zygote: tests/gitmount.py ``warm``, ~0.3 s of
    CPU a daemon spawned cold, 26 a run of this file: suitetime1): what git keeps is the
    mount's, not the command's process."""
    mp, avfs = mounted
    run = cli_proc if what == next(iter(STATES)) else warm(cli)
    assert avfs("checkpoint", "save", "-m", "base").code == 0
    finish = STATES[what](mp)
    before = _git_s_view(mp)
    changes = _status(avfs)["changes"]
    _remount(run, mp, backend)
    after = _git_s_view(mp)
    assert after == before
    assert _status(avfs)["changes"] == changes
    # and git goes on with it where it stopped, avfs's status agreeing with git's
    _git(mp, *PERSON, *finish.split(" "))
    want = sorted(line[3:] for line in _git(mp, "status", "--porcelain", "-uall").stdout.splitlines())
    assert sorted(c["path"] for c in _status(avfs)["changes"]) == want


def _kept(home: str, fork: str = "f") -> str:
    return registry.gitkept_dir(os.path.join(home, "vaults", "v.git", "avfs"), fork)


@pytest.mark.parametrize("move", ["checkpoint", "restore"])
def test_a_branch_moved_while_unmounted_sets_aside_what_named_the_old_commit(
    mounted: Any, backend: str, cli: Any, move: str
) -> None:
    """A checkpoint or a restore of the fork while it is not mounted: git's index, an open
    cherry-pick and a detached HEAD named the old commit; after the mount, git is on the
    fork's branch at its new commit with its index (skip-worktree bits kept), as a live
    mount is after a move by other hands, HEAD's reflog as it was, and what named the old
    commit set aside, not lost."""
    mp, avfs = mounted
    assert avfs("checkpoint", "save", "-m", "base").code == 0
    base = _git(mp, "rev-parse", "HEAD").stdout.strip()
    _git(mp, "update-index", "--skip-worktree", "d/c.txt")
    (mp / "new.txt").write_text("new\n")
    _git(mp, "add", "new.txt")
    _cherry_pick(mp)
    reflog = _git(mp, "reflog", "--format=%H %gs").stdout
    assert cli("--vault", "v:f", "unmount", str(mp)).code == 0
    if move == "checkpoint":
        assert cli("--vault", "v:f", "checkpoint", "save", "-m", "while unmounted").code == 0
    else:
        assert cli("--vault", "v:f", "checkpoint", "restore", base).code == 0
    tip = cli("--vault", "v:f", "--json", "status").json()["head"]
    assert warm(cli)("--vault", "v:f", "mount", "--backend", backend, str(mp)).code == 0
    assert _git(mp, "rev-parse", "HEAD").stdout.strip() == tip
    assert _git(mp, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/f"
    assert "cherry-picking" not in _git(mp, "status").stdout
    assert not _git(mp, "ls-files", "-u").stdout  # no conflict stages of the old commit
    assert _git(mp, "ls-files", "-v", "d/c.txt").stdout == "S d/c.txt\n"
    assert _git(mp, "reflog", "--format=%H %gs").stdout.endswith(reflog)
    want = sorted(line[3:] for line in _git(mp, "status", "--porcelain", "-uall").stdout.splitlines())
    assert want == sorted(c["path"] for c in _status(avfs)["changes"])
    aside = Path(_kept(os.environ["AVFS_HOME"]) + ".set-aside")
    assert (aside / "CHERRY_PICK_HEAD").is_file() and (aside / "index").is_file()
    assert not Path(_kept(os.environ["AVFS_HOME"])).exists()


def test_what_a_command_could_plant_is_never_brought_back(
    mounted: Any, backend: str, cli: Any, tmp_path: Path
) -> None:
    """Links (to a host file, to a host directory, deeper down), a FIFO, a submodule's git
    dir, HEAD naming another fork's branch, a `core.fsmonitor` in `config.worktree` and an
    include there: none comes back at the next mount; git's own state beside them does."""
    mp, _ = mounted
    (mp / "new.txt").write_text("new\n")
    _git(mp, "add", "new.txt")
    git_dir = Path(_git(mp, "rev-parse", "--absolute-git-dir").stdout.strip())
    staged = _git(mp, "ls-files", "-s", "new.txt").stdout
    ran = tmp_path / "ran"  # what the planted fsmonitor hook would make (no git runs till the remount)
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("s\n")
    os.symlink(host / "secret", git_dir / "ORIG_HEAD")
    os.symlink(host, git_dir / "rebase-merge")
    (git_dir / "sequencer").mkdir()
    os.symlink(host / "secret", git_dir / "sequencer" / "todo")
    os.mkfifo(git_dir / "MERGE_MSG")
    (git_dir / "modules" / "s").mkdir(parents=True)
    (git_dir / "modules" / "s" / "config").write_text(f"[core]\n\tfsmonitor = touch {ran}\n")
    evil = tmp_path / "evil.cfg"
    evil.write_text(f"[core]\n\tfsmonitor = touch {ran}\n")
    cfg = git_dir / "config.worktree"
    cfg.write_text(cfg.read_text() + f"[include]\n\tpath = {evil}\n[core]\n\tfsmonitor = touch {ran}\n")
    (git_dir / "HEAD").write_text("ref: refs/heads/main\n")
    assert cli("--vault", "v:f", "unmount", str(mp)).code == 0
    assert warm(cli)("--vault", "v:f", "mount", "--backend", backend, str(mp)).code == 0
    for name in ("ORIG_HEAD", "rebase-merge", "sequencer/todo", "MERGE_MSG", "modules"):
        assert not os.path.lexists(git_dir / name), name
    assert (git_dir / "HEAD").read_text() == "ref: refs/heads/f\n"
    text = (git_dir / "config.worktree").read_text()
    assert "touch" not in text and str(evil) not in text, text
    assert (host / "secret").read_text() == "s\n" and os.listdir(host) == ["secret"]
    # git's own state beside them came back
    assert _git(mp, "ls-files", "-s", "new.txt").stdout == staged
    assert _git(mp, "status", "--porcelain").stdout == "A  new.txt\n"
    assert not ran.exists()


def _avfs_env(backend: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AVFS_NO_OVERLAY", None)
    env["AVFS_MOUNT_IDLE"] = "600"
    if backend == "fuse":
        env["AVFS_NO_OVERLAY"] = "1"
    return env


def test_git_s_state_outlives_a_kept_warm_mount_s_idle_release(
    backend: str, cli: Any, cli_proc: Any, tmp_path: Path
) -> None:
    """`proxy exec` mounts the fork and keeps it warm; git in that mount stages a file and
    opens a merge; the mount's idle timer releases it (its activity file made old, as after
    600 s without use); the next mount shows git's state as it was."""
    from ..forkhome import process_fork_home
    from ..gitmount import _require, copy_fork_home

    _require(backend)
    if not copy_fork_home(process_fork_home()):  # (else made as tests/gitmount.py makes it)
        src = tmp_path / "src"
        (src / "d").mkdir(parents=True)
        (src / "a.txt").write_text("one\n")
        (src / "d" / "c.txt").write_text("c\n")
        assert cli_proc("vault", "create", "v", "--from", str(src)).code == 0
        assert cli_proc("vault", "fork", "v:main", "f").code == 0
    home = os.environ["AVFS_HOME"]
    env = _avfs_env(backend)

    def avfs(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "avfs_git", "--home", home, *args],
            capture_output=True,
            timeout=120,
            env=env,
        )

    r = avfs("--vault", "v:f", "--json", "proxy", "exec", "--", "true")
    doc = json.loads(r.stdout)
    assert doc["success"] and doc["mount"]["kept_warm"], doc
    mp = Path(doc["mount"]["mountpoint"])
    state_dir = os.path.join(home, "vaults", "v.git", "avfs")
    record = registry.record_path(state_dir, "f")
    try:
        _merge(mp, tmp_path)
        (mp / "new.txt").write_text("new\n")
        _git(mp, "add", "new.txt")
        before = _git_s_view(mp)
        # the idle timer's release: its activity file made older than the timeout until it goes
        deadline = time.monotonic() + 60
        while os.path.exists(record) and time.monotonic() < deadline:
            old = time.time() - 3600
            try:
                os.utime(registry.activity_path(state_dir, "f"), (old, old))
            except FileNotFoundError:
                pass
            time.sleep(0.1)
        assert not os.path.exists(record), "the mount was not released"
        with open(registry.log_path(state_dir, "f"), "rb") as fh:
            assert b"without use" in fh.read()
        assert os.path.isdir(_kept(home))
        mp2 = tmp_path / "again"
        mp2.mkdir()
        assert warm(cli)("--vault", "v:f", "mount", "--backend", backend, str(mp2)).code == 0
        try:
            after = _git_s_view(mp2)
            assert after == before
        finally:
            cli("--vault", "v:f", "unmount", str(mp2))
    finally:
        if os.path.exists(record):
            cli("--vault", "v:f", "unmount", str(mp))


def test_a_checkpoint_while_unmounted_keeps_what_git_staged_elsewhere(
    mounted: Any, backend: str, cli: Any
) -> None:
    """As a checkpoint while mounted does (the index patched where the commits differ): a
    path `git rm --cached` took out, an exec bit `update-index --chmod` staged alone and a
    skip-worktree bit stay in git's index across a checkpoint made while the fork was not
    mounted; what the checkpoint recorded is clean."""
    mp, avfs = mounted
    (mp / "e").mkdir()
    (mp / "e" / "f.txt").write_text("f\n")
    assert avfs("checkpoint", "save", "-m", "e").code == 0
    _git(mp, "update-index", "--skip-worktree", "e/f.txt")
    (mp / "x.txt").write_text("x\n")
    (mp / "new.txt").write_text("new\n")
    _git(mp, "add", "new.txt")
    _git(mp, "rm", "-q", "--cached", "d/c.txt")
    _git(mp, "update-index", "--chmod=+x", "a.txt")
    staged = [ln for ln in _git(mp, "status", "--porcelain").stdout.splitlines() if "x.txt" not in ln]
    assert cli("--vault", "v:f", "unmount", str(mp)).code == 0
    assert cli("--vault", "v:f", "checkpoint", "save", "-m", "while unmounted").code == 0
    assert warm(cli)("--vault", "v:f", "mount", "--backend", backend, str(mp)).code == 0
    assert _git(mp, "log", "-1", "--format=%s").stdout == "while unmounted\n"
    assert _git(mp, "status", "--porcelain").stdout.splitlines() == [
        ln for ln in staged if "new.txt" not in ln
    ]
    assert _git(mp, "ls-files", "-v", "e/f.txt").stdout == "S e/f.txt\n"
    assert not os.path.exists(_kept(os.environ["AVFS_HOME"]) + ".set-aside")


def test_a_staged_exec_bit_stays_modified_after_a_checkpoint(mounted: Any, backend: str) -> None:
    """An exec bit `update-index --chmod` staged alone (the file stays 644) is `MM` after a
    checkpoint of another path, as after plain git's `commit --only` of it: the patched
    index keeps git's fsmonitor dirty bits (found in gitmodel14: it read `M `, git trusting
    the entry under avfs's token; mount/indexpatch.py ``_dirty_after``)."""
    mp, avfs = mounted
    _git(mp, "update-index", "--chmod=+x", "a.txt")
    (mp / "x.txt").write_text("x\n")
    assert _git(mp, "status", "--porcelain", "a.txt").stdout == "MM a.txt\n"
    assert avfs("checkpoint", "save", "-m", "x").code == 0
    assert _git(mp, "status", "--porcelain", "a.txt").stdout == "MM a.txt\n"


def test_a_deleted_fork_takes_git_s_kept_state_with_it(mounted: Any, backend: str, cli: Any) -> None:
    mp, _ = mounted
    (mp / "new.txt").write_text("new\n")
    _git(mp, "add", "new.txt")
    assert cli("--vault", "v:f", "unmount", str(mp)).code == 0
    kept = _kept(os.environ["AVFS_HOME"])
    assert os.path.isfile(os.path.join(kept, "git", "index"))
    assert cli("vault", "delete", "v:f", "--force").code == 0
    assert not os.path.lexists(kept) and not os.path.lexists(kept + ".set-aside")

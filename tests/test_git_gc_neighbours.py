"""git's clean-up commands in a mount, before any avfs command looked, lose nothing of the
person's (the twenty-fifth round, gitgc2; back in the twenty-sixth, gitgc3).

The person's state in the mount, beside a plain clone in the same state: the last commit
undone (`git reset --soft HEAD~1`, `git reset`: its file now untracked, shown by the
workspace's base, which no branch names any more), a tracked file changed, and an untracked
file the workspace holds as a blob id (what a move of the branch or an undo keeps). Then one
of git's own clean-ups, the reflogs' entries dropped first (each form but its own way of
dropping them), and git's gc: `git reflog delete`, `git update-ref -d` of avfs's held refs
(refused in the mount: avfs's own), `git gc --aggressive`, `git prune`, `git repack -adk`,
`git maintenance run --task=gc`, `git worktree prune`. Each then: avfs's status, the
mount's files and `git status` as the clone's, a remount the same, and the person's
checkpoint records every file. Before gitgc2 each lost the undone commit's file (pruned,
or followed away as another hand's move of the branch), and the deletion of the held refs
the blob-id file too.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import refs
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.core.workspace.overlayentry import OBJECT, Entry
from avfs_git.ops import mounts

from .conftest import git, run_in_process
from .test_fuse import require_fuse
from .test_overlay import require_overlay

MODE_BLOB = 0o100644
FILES = {
    "README.md": b"hello\nchanged, not committed\n",
    "NEW.txt": b"the undone commit's file\n",
    "held.txt": b"only the workspace names this blob\n",
}
EXPIRE = ["reflog", "expire", "--expire=now", "--expire-unreachable=now", "--all"]
GC = ["gc", "-q", "--prune=now"]


def _drop_reflog_entries(cwd: Path) -> None:
    """`git reflog delete` of every entry of HEAD's and the branch's reflogs, one by one."""
    for ref, log in (("HEAD", "logs/HEAD"), ("main", "logs/refs/heads/main")):
        path = Path(cwd, git("rev-parse", "--git-path", log, cwd=cwd).strip())
        for _ in range(50):
            if not path.read_bytes():
                break
            git("reflog", "delete", f"{ref}@{{0}}", cwd=cwd)
        # (`git reflog show` of an emptied log lists what `git log -g` walks: not the file)
        assert path.read_bytes() == b""


def _delete_held_refs(cwd: Path) -> None:
    """`git update-ref -d` of avfs's held refs: refused in the mount (in a plain clone there
    are none)."""
    for name in (refs.held_ref("main"), refs.held_base_ref("main")):
        if not git("for-each-ref", name, cwd=cwd).strip():
            continue
        proc = subprocess.run(["git", "update-ref", "-d", name], cwd=cwd, capture_output=True, text=True)
        assert proc.returncode != 0, f"git update-ref -d {name} in the mount was not refused"
        assert "refs/avfs/held/ is avfs's own" in proc.stderr, proc.stderr
        assert git("for-each-ref", name, cwd=cwd).strip()


def _run(*args: str) -> Callable[[Path], None]:
    return lambda cwd: (git(*args, cwd=cwd), None)[1]


def _all(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(cwd: Path) -> None:
        for step in steps:
            step(cwd)

    return run


FORMS: dict[str, Callable[[Path], None]] = {
    "reflog_delete": _all(_drop_reflog_entries, _run(*GC)),
    "update_ref_delete_held": _all(_delete_held_refs, _run(*EXPIRE), _run(*GC)),
    "gc_aggressive": _all(_run(*EXPIRE), _run("gc", "-q", "--aggressive", "--prune=now")),
    "prune": _all(_run(*EXPIRE), _run("prune", "--expire=now")),
    "repack_adk": _all(_run(*EXPIRE), _run("repack", "-adk", "-q"), _run("prune", "--expire=now")),
    "maintenance": _all(
        _run(*EXPIRE), _run("-c", "gc.pruneExpire=now", "maintenance", "run", "--task=gc", "--quiet")
    ),
    "worktree_prune": _all(_run("worktree", "prune", "--expire=now"), _run(*EXPIRE), _run(*GC)),
}


def _avfs(home: Home, *args: str) -> None:
    """`avfs ARGS` on fork main, run in the test's process as the console script runs it
    (conftest's ``run_in_process``): what the tests check is what the status and the
    checkpoint see and record (suitetime24: as processes, two a test were ~0.5 s of CPU)."""
    res = run_in_process(["--home", home.path, "--vault", "v:main", *args])
    assert res.code == 0, res.out + res.err


def _same(mp: Path, plain: Path) -> None:
    for name, data in FILES.items():
        assert (plain / name).read_bytes() == data
        assert (mp / name).read_bytes() == data, f"{name} in the mount"
    want = " M README.md\n?? NEW.txt\n?? held.txt\n"
    assert git("status", "--porcelain", cwd=plain) == want
    assert git("status", "--porcelain", cwd=mp) == want


def _person(cwd: Path) -> None:
    git("reset", "-q", "--soft", "HEAD~1", cwd=cwd)
    git("reset", "-q", cwd=cwd)
    (cwd / "README.md").write_bytes(FILES["README.md"])


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_git_s_clean_up_in_a_mount_before_avfs_looks_loses_nothing(
    home: Home, vault: Vault, tmp_path: Path, backend: str, form: str
) -> None:
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()
    ws = vault.workspace("main")
    ws.write("README.md", b"hello\n")
    checkpoint.save(vault, "main")
    ws.write("NEW.txt", FILES["NEW.txt"])
    checkpoint.save(vault, "main")
    plain = tmp_path / "plain"
    git("clone", "-q", vault.path, str(plain))
    blob = subprocess.run(
        ["git", "--git-dir", vault.path, "hash-object", "-w", "--stdin"],
        input=FILES["held.txt"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    with ws.overlay.txn() as db:  # what take_tip keeps where git moved the branch
        ws.overlay.put(db, Entry("held.txt", OBJECT, MODE_BLOB, blob.strip()), "git")
    (plain / "held.txt").write_bytes(FILES["held.txt"])
    _person(plain)
    FORMS[form](plain)
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend=backend)
    try:
        _person(mp)
        FORMS[form](mp)
        _avfs(home, "status")
        _same(mp, plain)
        mounts.unmount(home, vault, "main")
        mounts.mount(home, vault, "main", str(mp), backend=backend)
        _same(mp, plain)
        _avfs(home, "checkpoint", "save", "-m", "the person's checkpoint")
        for name, data in FILES.items():
            assert git("--git-dir", vault.path, "show", f"main:{name}").encode() == data
        assert git("status", "--porcelain", cwd=mp) == ""
        mounts.unmount(home, vault, "main")
        mounts.mount(home, vault, "main", str(mp), backend=backend)
        for name, data in FILES.items():
            assert (mp / name).read_bytes() == data
        assert git("status", "--porcelain", cwd=mp) == ""
    finally:
        mounts.unmount(home, vault, "main")
    fsck = subprocess.run(
        ["git", "--git-dir", vault.path, "fsck", "--strict", "--no-dangling"], capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def _moved(vault: Vault) -> str | None:
    """What the mount's reference-transaction hook recorded of git's last move of the
    fork's branch in the mount's own worktree ("OLD NEW"), None when nothing."""
    from avfs_git.mount.ownfiles import MOVED_FILE, files_dir

    try:
        return Path(files_dir(vault, "main"), MOVED_FILE).read_text().strip()
    except FileNotFoundError:
        return None


def _worktree_git_dir(vault: Vault) -> str:
    from avfs_git.mount.ownfiles import worktree_dir

    return worktree_dir(vault, "main")


def _elsewhere(hand: str, vault: Vault, mp: Path, tmp_path: Path) -> str:
    """Fork main's branch moved by ``hand`` to a new commit adding OTHER.txt; the commit."""
    old = git("--git-dir", vault.path, "rev-parse", "main").strip()
    if hand == "linked_worktree":
        # made from the mount, as the git model does: git copies the mount's worktree config,
        # hooksPath too, so the mount's reference-transaction hook runs there as well
        wt = tmp_path / "wt"
        git("worktree", "add", "-q", "--detach", str(wt), old, cwd=mp)
        (wt / "OTHER.txt").write_text("another hand's\n")
        git("add", "-A", cwd=wt)
        git("commit", "-q", "-m", "in a linked worktree", cwd=wt)
        git("update-ref", "refs/heads/main", "HEAD", old, cwd=wt)
        git("--git-dir", vault.path, "worktree", "remove", "--force", str(wt))
    elif hand == "update_ref":
        blob = (
            subprocess.run(
                ["git", "--git-dir", vault.path, "hash-object", "-w", "--stdin"],
                input=b"another hand's\n",
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        listing = git("--git-dir", vault.path, "ls-tree", old)
        tree = subprocess.run(
            ["git", "--git-dir", vault.path, "mktree"],
            input=f"{listing}100644 blob {blob}\tOTHER.txt\n",
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        new = git("--git-dir", vault.path, "commit-tree", tree, "-p", old, "-m", "update-ref").strip()
        git("--git-dir", vault.path, "update-ref", "refs/heads/main", new, old)
    else:  # a push into the vault from a clone (git refuses it by default: checked out in the mount)
        git("--git-dir", vault.path, "config", "receive.denyCurrentBranch", "ignore")
        clone = tmp_path / "clone"
        git("clone", "-q", "--branch", "main", vault.path, str(clone))
        (clone / "OTHER.txt").write_text("another hand's\n")
        git("add", "-A", cwd=clone)
        git("commit", "-q", "-m", "pushed", cwd=clone)
        git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=clone)
    new = git("--git-dir", vault.path, "rev-parse", "main").strip()
    assert new != old
    return new


@pytest.mark.parametrize("hand", ["linked_worktree", "update_ref", "push"])
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_another_hand_s_move_is_not_taken_for_git_s_in_the_mount(
    home: Home, vault: Vault, tmp_path: Path, backend: str, hand: str
) -> None:
    """git in the mount commits (its hook records the move: "OLD NEW"), avfs takes it, the
    reflogs are expired there (the HEAD log says nothing any more); then another hand moves
    the branch: a linked worktree made from the mount (which runs the mount's hook: git
    copies the worktree's config), `git update-ref` on the vault, a push into it. The
    record stays git's own, and the next avfs command follows the move as another hand's:
    the mount shows the new commit, git's status there is clean. gitgc2's hook recorded
    the linked worktree's move, and the mount kept the old view as the person's (the
    linked worktree's file shown deleted: test_mount_moved_elsewhere failed)."""
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()
    ws = vault.workspace("main")
    ws.write("README.md", b"hello\n")
    checkpoint.save(vault, "main")
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend=backend)
    try:
        (mp / "NEW.txt").write_bytes(FILES["NEW.txt"])
        old = git("rev-parse", "HEAD", cwd=mp).strip()
        git("add", "NEW.txt", cwd=mp)
        git("commit", "-q", "-m", "in the mount", cwd=mp)
        mine = git("rev-parse", "HEAD", cwd=mp).strip()
        assert _moved(vault) == f"{old} {mine}"
        _avfs(home, "status")
        git(*EXPIRE, cwd=mp)
        theirs = _elsewhere(hand, vault, mp, tmp_path)
        assert _moved(vault) == f"{old} {mine}", f"{hand}'s move recorded as git's in the mount"
        _avfs(home, "status")
        assert (mp / "OTHER.txt").read_text() == "another hand's\n"
        assert git("status", "--porcelain", cwd=mp) == ""
        assert git("rev-parse", "HEAD", cwd=mp).strip() == theirs
    finally:
        mounts.unmount(home, vault, "main")


@pytest.mark.parametrize("how", ["subdirectory", "relative_git_dir", "git_dir_through_a_link"])
def test_git_s_own_move_is_recorded_however_git_finds_the_worktree(
    home: Home, vault: Vault, tmp_path: Path, how: str
) -> None:
    """git in the mount run from a subdirectory, with ``GIT_DIR`` relative, or with
    ``GIT_DIR`` naming the worktree's git dir through a symbolic link: its `reset --soft`
    is recorded as git's own (the hook compares the directory, not the spelling), and
    with the reflogs expired and git's gc run, the undone commit's file stays."""
    require_fuse()
    ws = vault.workspace("main")
    ws.write("d/README.md", b"hello\n")
    checkpoint.save(vault, "main")
    ws.write("NEW.txt", FILES["NEW.txt"])
    checkpoint.save(vault, "main")
    mp = tmp_path / "m"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend="fuse")
    try:
        tip = git("rev-parse", "HEAD", cwd=mp).strip()
        parent = git("rev-parse", "HEAD~1", cwd=mp).strip()
        gd = _worktree_git_dir(vault)
        if how == "subdirectory":
            git("reset", "-q", "--soft", "HEAD~1", cwd=mp / "d")
        else:
            if how == "relative_git_dir":
                where = os.path.relpath(gd, mp / "d")
            else:
                link = tmp_path / "link"
                link.symlink_to(gd)
                where = str(link)
            env = {**os.environ, "GIT_DIR": where, "GIT_WORK_TREE": ".."}
            subprocess.run(["git", "reset", "-q", "--soft", "HEAD~1"], cwd=mp / "d", env=env, check=True)
        assert _moved(vault) == f"{tip} {parent}"
        git("reset", "-q", cwd=mp)
        git(*EXPIRE, cwd=mp)
        git(*GC, cwd=mp)
        _avfs(home, "status")
        assert (mp / "NEW.txt").read_bytes() == FILES["NEW.txt"]
        assert git("status", "--porcelain", cwd=mp) == "?? NEW.txt\n"
    finally:
        mounts.unmount(home, vault, "main")

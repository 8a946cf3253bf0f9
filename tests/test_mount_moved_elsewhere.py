"""A mounted fork whose base another process moves shows the new commit when that process's
avfs command returns, on both backends: a commit made in a linked worktree outside the
mount and put on the fork's branch with `git update-ref`, `git update-ref` alone, `git
push` into the vault, and `avfs checkpoint restore`, `undo` and `merge` run from the CLI
(docs/fuse.md "One state, two writers"). After each move, every directory's listing, every
file's `stat` and an open of each show the new commit's tree, with the mount's caches warm
from the old one (a walk of it right before). A ref moved by git from outside is taken by
the next avfs command (`avfs status` here); on pure FUSE it returned before the daemon had
the kernel forget the old view, which a listing made at once still showed (the git model's
linked-worktree step, found in gitmodel11, fixed in fusefollow: core/workspace/wsbase.py
``_follow_ref`` waits as a restore does).

One mount per backend for the module (its fork reset by the moves themselves: each test
checks the mount against the fork's tip after every move it makes, from whatever state it
starts)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from avfs_git.core.vaults import layers
from avfs_git.core.vaults.registry import mount_dir
from avfs_git.mount.ownfiles import ACK_FILE

from .conftest import AUTHOR
from .test_fuse import require_fuse
from .test_overlay import require_overlay

ROUNDS = 3  # moves a test makes, each checked with the caches warm from the one before


@dataclass(frozen=True)
class Shown:
    """A tree as a mount shows it: each directory's names, each file's bytes."""

    tree: str
    listings: dict[str, set[str]]
    files: dict[str, bytes]


@dataclass
class Mounted:
    """Fork ``f`` of vault ``v`` mounted at ``mp`` by the CLI in the home ``home``."""

    top: Path
    mp: Path
    vault: str  # the vault's git dir
    env: dict[str, str]
    backend: str
    count: int = 0  # a number for each change made, so that names never repeat

    def avfs(self, *args: str, cwd: Path | None = None, code: int = 0) -> str:
        """`avfs ARGS` as a person's other shell runs it (``cwd``: outside the mount), its
        exit ``code`` checked."""
        done = subprocess.run(
            [sys.executable, "-m", "avfs_git", *args],
            cwd=cwd or self.top,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == code, f"avfs {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def git(self, *args: str, cwd: Path | None = None) -> str:
        """git on the vault (``cwd`` None) or in a checkout outside the mount."""
        where = ["--git-dir", self.vault] if cwd is None else []
        done = subprocess.run(
            ["git", *where, *args], cwd=cwd or self.top, env=self.env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout.strip()

    def tip(self, fork: str = "f") -> str:
        return self.git("rev-parse", f"refs/heads/{fork}")

    def change(self, tree: Path) -> None:
        """A new file at the root and in a new directory, ``a.txt`` changed, the previous
        change's new file and directory removed, in the checkout ``tree``."""
        self.count += 1
        n = self.count
        (tree / "a.txt").write_text(f"a, change {n}\n")
        (tree / f"n{n}.txt").write_text(f"new {n}\n")
        (tree / f"dir{n}").mkdir()
        (tree / f"dir{n}" / "x.txt").write_text(f"x {n}\n")
        (tree / "d" / f"c{n}.txt").write_text(f"c {n}\n")
        for old in (tree / f"n{n - 1}.txt", tree / "d" / f"c{n - 1}.txt"):
            old.unlink(missing_ok=True)
        shutil.rmtree(tree / f"dir{n - 1}", ignore_errors=True)

    def warm(self) -> None:
        """Every listing, every attribute and every file's bytes read through the mount:
        what the kernel then keeps of the view the next move replaces."""
        for dirpath, dirnames, filenames in os.walk(self.mp):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            for name in filenames:
                if dirpath == str(self.mp) and name == ".git":
                    continue
                with open(os.path.join(dirpath, name), "rb") as fh:
                    fh.read()

    def expect(self, rev: str) -> Shown:
        """What the mount shows of ``rev`` (a commit or a tree), read from git before the
        move: the check after it then reads only the mount, at once."""
        files: dict[str, bytes] = {}
        for line in self.git("ls-tree", "-r", "-z", rev).split("\0"):
            if line:
                meta, path = line.split("\t", 1)
                files[path] = subprocess.run(
                    ["git", "--git-dir", self.vault, "cat-file", "blob", meta.split()[2]],
                    capture_output=True,
                    check=True,
                ).stdout
        listings: dict[str, set[str]] = {"": set()}
        for path in files:
            parts = path.split("/")
            for i in range(len(parts)):
                listings.setdefault("/".join(parts[:i]), set()).add(parts[i])
        return Shown(self.git("rev-parse", f"{rev}^{{tree}}"), listings, files)

    def assert_shows(self, want: Shown) -> None:
        """The mount's listings, stats and bytes are ``want``'s, read once; the fork's tip
        has its tree. On pure FUSE first: the daemon has acknowledged the fork's tip (its
        watcher had the kernel forget the old view, mount/live.py ``acknowledge``), which
        is what makes the reads below hold at any load: without it they passed whenever the
        watcher (a 20 ms poll) came round before them, and failed one run in two to four of
        the git model's every-command test, when it did not."""
        if self.backend == "fuse":
            ack = Path(mount_dir(os.path.join(self.vault, "avfs"), "f"), ACK_FILE).read_text().split()
            assert ack[:1] == [self.tip()], "the move returned before the mount's daemon showed it"
        got_listings = {
            d: set(os.listdir(self.mp / d)) - ({".git"} if not d else set()) for d in sorted(want.listings)
        }
        assert got_listings == want.listings
        got: dict[str, tuple[int, bool, bytes]] = {}
        for path in want.files:
            st = os.stat(self.mp / path)
            with open(self.mp / path, "rb") as fh:
                got[path] = (st.st_size, stat.S_ISREG(st.st_mode), fh.read())
        assert got == {p: (len(b), True, b) for p, b in want.files.items()}
        assert self.git("rev-parse", "refs/heads/f^{tree}") == want.tree


@pytest.fixture(scope="module", params=["fuse", "overlay"])
def mounted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    """Vault ``v`` (a.txt, b.txt, d/c.txt), its fork ``f`` mounted on the backend of the
    parameter, and the fork ``g`` merges take from; made once for the module's tests. The
    home is as a person's is by default, not as the suite's others: its warm CLI server
    runs the avfs commands, and its forks' state lives in its layers file system (where a
    loop-mounted btrfs can be made: core/vaults/layers.py, else plain directories). So a
    command returns within a few milliseconds of its move; with ``AVFS_SERVER=off`` and
    ``AVFS_LAYERS=off`` a pure-FUSE daemon's watcher had come round before the command
    returned in 60 moves of 60, and the bug fixed here hid (with both on: the first
    move showed it)."""
    backend = request.param
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()
    top = tmp_path_factory.mktemp(f"moved-{backend}")
    user, home, src, mp = top / "userhome", top / "avfs-home", top / "src", top / "m"
    for d in (src / "d", user, mp):
        d.mkdir(parents=True)
    (src / "a.txt").write_text("a\n")
    (src / "b.txt").write_text("b\n")
    (src / "d" / "c.txt").write_text("c\n")
    (user / ".gitconfig").write_text(f"[user]\n\tname = {AUTHOR[0]}\n\temail = {AUTHOR[1]}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "AVFS_"))}
    env.update(
        HOME=str(user),
        XDG_CONFIG_HOME=str(user / ".config"),
        AVFS_HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME=AUTHOR[0],
        GIT_AUTHOR_EMAIL=AUTHOR[1],
        GIT_COMMITTER_NAME=AUTHOR[0],
        GIT_COMMITTER_EMAIL=AUTHOR[1],
    )
    m = Mounted(top, mp, str(home / "vaults" / "v.git"), env, backend)
    try:
        m.avfs("vault", "create", "v", "--from", str(src))
        m.avfs("vault", "fork", "v:main", "f")
        m.avfs("vault", "fork", "v:main", "g")
        m.avfs("--vault", "v:f", "mount", "--backend", backend, str(mp))
        yield m
    finally:
        subprocess.run(
            [sys.executable, "-m", "avfs_git", "--vault", "v:f", "unmount", str(mp)],
            env=env,
            capture_output=True,
            timeout=120,
        )
        if os.path.ismount(mp):
            subprocess.run(["fusermount3", "-u", "-z", str(mp)], check=False)
        subprocess.run(
            [sys.executable, "-m", "avfs_git", "server", "stop"], env=env, capture_output=True, timeout=120
        )
        layers.unmount(str(home))


def _outside(m: Mounted, name: str) -> Path:
    return m.top / f"{name}{m.count}"


def _commit_outside(m: Mounted, fork: str) -> str:
    """A commit of :meth:`Mounted.change` on ``fork``'s tip, made in a linked worktree
    outside the mount (`git worktree add --detach`), put on the fork's branch by `git
    update-ref BRANCH HEAD OLD` from there; the new commit."""
    old = m.tip(fork)
    wt = _outside(m, "wt")
    # (from the mount, as the git model does: git copies the mount's worktree config, which
    # makes a worktree of the vault, bare with `extensions.worktreeConfig`, a work tree)
    m.git("worktree", "add", "-q", "--detach", str(wt), old, cwd=m.mp)
    m.change(wt)
    m.git("add", "-A", cwd=wt)
    m.git("commit", "-q", "-m", "in a linked worktree", cwd=wt)
    m.git("update-ref", "-m", "from a linked worktree", f"refs/heads/{fork}", "HEAD", old, cwd=wt)
    m.git("worktree", "remove", "--force", str(wt))
    return m.tip(fork)


def _saved_in_mount(m: Mounted) -> str:
    """:meth:`Mounted.change` made in the mount, then `avfs checkpoint save`; the commit."""
    m.change(m.mp)
    m.avfs("--vault", "v:f", "checkpoint", "save")
    return m.tip()


def test_linked_worktree_commit_and_update_ref(mounted: Mounted) -> None:
    """The git model's step: `git worktree add --detach` outside the mount, a commit there,
    `git update-ref refs/heads/f HEAD OLD`, then `avfs status`."""
    m = mounted
    for _ in range(ROUNDS):
        m.warm()
        want = m.expect(_commit_outside(m, "f"))
        m.avfs("status", cwd=m.mp)  # (in the mount, as the git model's step)
        m.assert_shows(want)


@pytest.mark.parametrize("how", ["rewritten", "stashed"])
def test_a_move_after_files_rewritten_with_their_own_bytes_is_followed(mounted: Mounted, how: str) -> None:
    """The same move where the mount's files show nothing git would see, but a tracked
    file was written since the base (``rewritten``: its own bytes written again;
    ``stashed``: a change staged, an untracked file, then `git stash -a`, which writes the
    file back): the mount follows as where nothing was written, and git's index with it
    (git's status clean, nothing staged). Before (found in gitmodel13, pure FUSE: seed
    1301 of the model, `apply --index`, `stash -a`, the linked worktree's move), the
    workspace counted the file as uncheckpointed, its base stayed (`avfs status`: stale),
    the mount showed the old commit and git's status listed the new commit's files staged
    deleted, which the next `git commit` there would have recorded."""
    m = mounted
    for _ in range(ROUNDS):
        m.warm()
        a = m.mp / "a.txt"
        if how == "rewritten":
            a.write_bytes(a.read_bytes())
        else:
            a.write_text("staged, then stashed\n")
            m.git("add", "a.txt", cwd=m.mp)
            (m.mp / "untracked.txt").write_text("untracked\n")
            m.git("stash", "-q", "-a", cwd=m.mp)
        want = m.expect(_commit_outside(m, "f"))
        doc = json.loads(m.avfs("--json", "status", cwd=m.mp))
        assert doc["base"] == doc["head"] == m.tip() and not doc["stale"] and doc["changes"] == [], doc
        m.assert_shows(want)
        assert m.git("status", "--porcelain", cwd=m.mp) == ""
    if how == "stashed":
        m.git("stash", "clear", cwd=m.mp)


def test_update_ref_alone(mounted: Mounted) -> None:
    """`git update-ref` of the fork's branch to a commit of the vault, forward and back to
    its parent, then `avfs status`."""
    m = mounted
    m.git("update-ref", "refs/heads/g", m.tip())
    ahead = _commit_outside(m, "g")
    for _ in range(ROUNDS):
        m.warm()
        old = m.tip()
        target = ahead if old != ahead else m.git("rev-parse", f"{ahead}^")
        want = m.expect(target)
        m.git("update-ref", "refs/heads/f", target, old)
        m.avfs("status", cwd=m.mp)  # (in the mount, as the git model's step)
        m.assert_shows(want)


def test_git_push_into_the_vault(mounted: Mounted) -> None:
    """A clone of the vault outside, a commit there, `git push` to the fork's branch (which
    git refuses by default: the mount's worktree has it checked out, docs/hooks.md)."""
    m = mounted
    m.git("config", "receive.denyCurrentBranch", "ignore")
    clone = _outside(m, "clone")
    m.git("clone", "-q", "--branch", "f", m.vault, str(clone))
    for _ in range(ROUNDS):
        m.warm()
        m.git("pull", "-q", "--ff-only", cwd=clone)
        m.change(clone)
        m.git("add", "-A", cwd=clone)
        m.git("commit", "-q", "-m", "pushed", cwd=clone)
        m.git("push", "-q", "origin", "HEAD:refs/heads/f", cwd=clone)
        want = m.expect(m.git("rev-parse", "HEAD", cwd=clone))
        m.avfs("status", cwd=m.mp)  # (in the mount, as the git model's step)
        m.assert_shows(want)


def test_restore_and_undo_from_the_cli(mounted: Mounted) -> None:
    """`avfs checkpoint restore` to the fork's previous commit, then `avfs undo` of it."""
    m = mounted
    for _ in range(ROUNDS):
        m.change(m.mp)
        m.avfs("--vault", "v:f", "checkpoint", "save")
        saved, before = m.expect(m.tip()), m.expect(f"{m.tip()}^")
        m.warm()
        m.avfs("--vault", "v:f", "checkpoint", "restore", f"{m.tip()}^")
        m.assert_shows(before)
        m.warm()
        m.avfs("--vault", "v:f", "undo")
        m.assert_shows(saved)


def test_merge_from_the_cli(mounted: Mounted) -> None:
    """`avfs merge g` into the mounted fork: a fast-forward, then merge commits (each fork
    changed; the merged tree is git's `merge-tree`)."""
    m = mounted
    for i in range(ROUNDS):
        m.git("update-ref", "refs/heads/g", m.tip())
        _commit_outside(m, "g")
        if i:
            (m.mp / f"f{m.count}.txt").write_text("only in f\n")
            m.avfs("--vault", "v:f", "checkpoint", "save")
        want = m.expect(m.git("merge-tree", "--write-tree", "refs/heads/f", "refs/heads/g"))
        m.warm()
        m.avfs("--vault", "v:f", "merge", "g", "-m", "g into f")
        m.assert_shows(want)
        assert len(m.git("rev-list", "--parents", "-n1", m.tip()).split()) == (3 if i else 2)


def test_a_merge_resolved_to_ours_stays_open_until_continue(mounted: Mounted) -> None:
    """A merge from the CLI with its conflicts written into the mounted fork, every conflict
    resolved in the mount to exactly the fork's own version (the mount then shows nothing
    against its base): the merge stays open, as git's does, and `avfs merge --continue`
    makes the two-parent merge commit, its tree the fork's own (realproj10 found the
    overlay backend ending such a merge by itself, with no merge commit, where pure FUSE
    and the API kept it open)."""
    m = mounted
    wt = _outside(m, "wt-ours")
    m.git("worktree", "add", "-q", "--detach", str(wt), m.tip(), cwd=m.mp)
    (wt / "a.txt").write_text("a, g's\n")  # (only the conflict: the merge brings nothing else)
    m.git("commit", "-q", "-am", "g's a.txt", cwd=wt)
    theirs = m.git("rev-parse", "HEAD", cwd=wt)
    m.git("update-ref", "refs/heads/g", theirs)
    m.git("worktree", "remove", "--force", str(wt))
    (m.mp / "a.txt").write_text("a, the fork's own\n")
    m.avfs("--vault", "v:f", "checkpoint", "save")
    ours = m.tip()
    out = m.avfs("--vault", "v:f", "--json", "merge", "g", "--write-conflicts", code=3)
    assert json.loads(out)["results"][0]["status"] == "conflicts_written"
    assert "<<<<<<<" in (m.mp / "a.txt").read_text()
    (m.mp / "a.txt").write_text("a, the fork's own\n")
    status = json.loads(m.avfs("--vault", "v:f", "--json", "status"))
    assert status["merge"] is not None and status["merge"]["unresolved"] == [], status
    want = m.expect(ours)
    done = json.loads(m.avfs("--vault", "v:f", "--json", "merge", "--continue"))
    assert done["results"][0]["status"] == "merged"
    assert m.git("rev-list", "--parents", "-n1", m.tip()).split() == [m.tip(), ours, theirs]
    m.assert_shows(want)
    assert json.loads(m.avfs("--vault", "v:f", "--json", "status"))["merge"] is None

"""A merge into a mounted fork against `git merge` in a plain worktree, on a real project's
history (more-itertools 10.2.0 and 10.3.0's released sdists, one a commit: the files change
as they really did), on both backends: a fast-forward, a clean three-way merge and a
conflicting one. After each, the mount's tree, its git index (`git ls-files -s`) and `git
status` equal the plain worktree's after `git merge` of the same commits.

And what the merge costs there (docs/benchmarks.md, h-merge12's section): into an overlay
mount the index written ahead of the move is the final one where it holds exactly the
merged commit's tree (mount/indexahead.py ``merged``): the move's own write made it whole
after every merge (the tree walked, each file's stat data, a `git status` for the untracked
cache): ~100 ms of a ~130 ms merge into a mounted 10k-file fork; conflicts written there
patch it too (h-merge13: it was written whole twice). What git staged there, which the
merge's capture does not record, refuses the merge (h-merge13: it was dropped). And a
process that merges many times keeps no more than ``PACK_FILES_OPEN`` pack files of
libgit2's open (it kept one per pack)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint, merge
from avfs_git.core.store import packwriter
from avfs_git.core.store.gitlib import PACK_FILES_OPEN
from avfs_git.mount import index as mount_index
from avfs_git.ops import mounts

from . import realdata
from .conftest import git
from .test_overlay import require_overlay

OLD, NEW = "10.2.0", "10.3.0"


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """more-itertools' two releases as a git history (tags ``vOLD``, ``vNEW``)."""
    return realdata.history("more-itertools", [OLD, NEW], tmp_path_factory.mktemp("mi"), aggressive=False)


def _changed(releases: Path) -> dict[str, str]:
    """path -> A/M/D: what the newer release changed."""
    out = git("-C", str(releases), "diff", "--no-renames", "--name-status", f"v{OLD}", f"v{NEW}")
    return {ln.split("\t")[1]: ln.split("\t")[0] for ln in out.splitlines()}


@pytest.fixture
def forks(home: Any, tmp_path: Path, releases: Path) -> Any:
    """Vault ``mi`` whose ``main`` holds the older release, fork ``up`` the newer one
    (its changes written through the API, checkpointed)."""
    old = tmp_path / "old"
    old.mkdir()
    tar = subprocess.run(["git", "-C", str(releases), "archive", f"v{OLD}"], capture_output=True, check=True)
    subprocess.run(["tar", "x", "-C", str(old)], input=tar.stdout, check=True)
    vault = home.create_vault("mi", from_dir=str(old))
    vault.create_fork("main", "up")
    up = vault.workspace("up")
    for path, how in _changed(releases).items():
        if how == "D":
            up.remove(path)
        else:
            blob = subprocess.run(["git", "-C", str(releases), "show", f"v{NEW}:{path}"], capture_output=True)
            up.write(path, blob.stdout, parents=True)
    checkpoint.save(vault, "up")
    return vault


@contextlib.contextmanager
def main_mounted(backend: str, home: Any, forks: Any, tmp_path: Path) -> Iterator[Path]:
    """Fork ``main`` of ``forks`` mounted on ``backend`` at ``tmp_path/mnt``."""
    if backend == "overlay":
        require_overlay()
    else:
        from .test_fuse import require_fuse

        require_fuse()
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, forks, "main", str(mp), backend=backend)
    try:
        yield mp
    finally:
        mounts.unmount(home, forks, "main")


@pytest.fixture(params=["overlay", "fuse"])
def mounted(request: pytest.FixtureRequest, home: Any, forks: Any, tmp_path: Path) -> Iterator[Path]:
    with main_mounted(request.param, home, forks, tmp_path) as mp:
        yield mp


def _target_moves(vault: Any, mp: Path, releases: Path, kind: str) -> None:
    """The target's own commit of a three-way ``kind``, written in the mount and
    checkpointed: a new file and a line added to a file the newer release leaves alone
    (``merge``), or one it changes rewritten (``conflict``)."""
    if kind == "ff":
        return
    changed = _changed(releases)
    tracked = git("-C", str(mp), "ls-files").splitlines()
    pick = sorted(p for p in tracked if (p in changed and changed[p] == "M") == (kind == "conflict"))
    path = next(p for p in pick if p.endswith((".py", ".rst", ".txt")))
    if kind == "conflict":
        (mp / path).write_text("# the target's own version\n")
    else:
        with open(mp / path, "a") as fh:
            fh.write("# the target's own line\n")
    (mp / "NOTES.txt").write_text("the target's own file\n")
    checkpoint.save(vault, "main", message="the target's own")


def _plain_clone(vault: Any, tmp_path: Path) -> Path:
    """A plain clone of the vault at ``main``."""
    plain = tmp_path / "plain"
    git("clone", "-q", "--branch", "main", vault.path, str(plain))
    return plain


def _plain(vault: Any, tmp_path: Path) -> Path:
    """A plain clone of the vault at ``main``, with ``git merge`` of ``up`` done there."""
    plain = _plain_clone(vault, tmp_path)
    subprocess.run(
        ["git", "-C", str(plain), "merge", "-q", "--no-edit", "origin/up"], capture_output=True, check=False
    )
    return plain


def _state(where: Path) -> tuple[str, str, str]:
    """(HEAD's tree, `git ls-files -s`, `git status --porcelain`) of a work tree."""
    return (
        git("-C", str(where), "rev-parse", "HEAD^{tree}"),
        git("-C", str(where), "ls-files", "-s"),
        git("-C", str(where), "status", "--porcelain"),
    )


@pytest.mark.parametrize("kind", ["ff", "merge", "conflict"])
def test_a_merge_into_a_mount_leaves_what_git_merge_leaves(
    forks: Any, mounted: Path, releases: Path, tmp_path: Path, kind: str
) -> None:
    _target_moves(forks, mounted, releases, kind)
    plain = _plain(forks, tmp_path)
    res = merge.merge(forks, "up", "main", write_conflicts=kind == "conflict")
    assert res.status == {"ff": "fast_forward", "merge": "merged", "conflict": "conflicts_written"}[kind]
    assert _state(mounted) == _state(plain)
    if kind == "conflict":
        assert any(
            ln.startswith("UU ") for ln in git("-C", str(mounted), "status", "--porcelain").splitlines()
        )


def _whole_writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The commits the mount's index is written whole for from now on (it still is)."""
    made: list[str] = []
    real = mount_index.index_bytes

    def counted(vault: Any, commit: str, *args: Any, **kw: Any) -> bytes:
        made.append(commit)
        return real(vault, commit, *args, **kw)

    monkeypatch.setattr(mount_index, "index_bytes", counted)
    return made


@pytest.mark.parametrize("kind", ["ff", "merge"])
def test_a_merge_into_an_overlay_mount_writes_no_index_whole(
    home: Any, forks: Any, releases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    require_overlay()
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, forks, "main", str(mp), backend="overlay")
    try:
        git("-C", str(mp), "status", "--porcelain")  # (git's untracked cache written into the index)
        _target_moves(forks, mp, releases, kind)
        plain = _plain(forks, tmp_path)
        made = _whole_writes(monkeypatch)
        merge.merge(forks, "up", "main")
        # main's code wrote the index whole after the move (walked the tree, a `git status`
        # for its untracked cache); the one written ahead of the move is now the final one
        assert made == []
        assert _state(mp) == _state(plain)
        assert git("-C", str(mp), "diff-index", "--cached", "HEAD") == ""
    finally:
        mounts.unmount(home, forks, "main")


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_conflicts_written_into_a_mount_write_no_index_whole(
    home: Any, forks: Any, releases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """`merge --write-conflicts` into a mounted fork: main's code wrote its index whole
    twice (once for the view the conflicts show, once more with their unmerged entries:
    ~110 ms of CPU each at 10,000 files); now the index written for the target's base is
    patched once, to the tree the conflicts show with their stages (mount/indexstages.py),
    and git sees what `git merge` leaves in a plain clone, `git merge --abort` too."""
    if backend == "overlay":
        require_overlay()
    else:
        from .test_fuse import require_fuse

        require_fuse()
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, forks, "main", str(mp), backend=backend)
    try:
        git("-C", str(mp), "status", "--porcelain")
        _target_moves(forks, mp, releases, "conflict")
        plain = _plain(forks, tmp_path)
        made = _whole_writes(monkeypatch)
        assert merge.merge(forks, "up", "main", write_conflicts=True).status == "conflicts_written"
        assert made == []
        assert _state(mp) == _state(plain)
        assert git("-C", str(mp), "ls-files", "-u") == git("-C", str(plain), "ls-files", "-u") != ""
        monkeypatch.undo()
        subprocess.run(["git", "-C", str(plain), "merge", "--abort"], check=True)
        assert merge.merge_abort(forks, "main").status
        assert _state(mp) == _state(plain)
    finally:
        mounts.unmount(home, forks, "main")


def _stage(where: Path, path: str) -> None:
    """`git add` of a change to ``path``, the file then put back as it was: staged only
    (`MM`), nothing in the work tree for a capture to record."""
    was = (where / path).read_bytes()
    (where / path).write_bytes(was + b"# staged\n")
    git("-C", str(where), "add", path)
    (where / path).write_bytes(was)


@pytest.mark.parametrize("kind", ["ff", "merge"])
def test_what_git_staged_in_the_mount_refuses_a_merge(
    forks: Any, mounted: Path, releases: Path, tmp_path: Path, kind: str
) -> None:
    """What git staged in the mount, which the merge's capture does not record: main's
    code merged and wrote the index for the merged commit, the staged version gone with no
    trace. `git merge` in a plain clone refuses a true merge over it (and keeps it over a
    fast-forward that leaves its path alone); avfs refuses both, naming the path, nothing
    changed: the mount's tree, index and status as before, as the plain clone's."""
    from avfs_git.core.errors import DirtyWorkspaceError
    from avfs_git.core.store import refs

    _target_moves(forks, mounted, releases, kind)
    plain = _plain_clone(forks, tmp_path)
    changed = _changed(releases)
    path = next(p for p in sorted(git("-C", str(mounted), "ls-files").splitlines()) if p not in changed)
    _stage(mounted, path)
    _stage(plain, path)
    before = _state(mounted)
    assert before == _state(plain) and before[2] == f"MM {path}\n"
    tips = [refs.read_ref(forks.store, refs.fork_ref(f)) for f in ("main", "up")]
    with pytest.raises(DirtyWorkspaceError) as got:
        merge.merge(forks, "up", "main")
    assert got.value.details["staged"] == [path]
    assert [refs.read_ref(forks.store, refs.fork_ref(f)) for f in ("main", "up")] == tips
    assert _state(mounted) == before
    if kind == "merge":  # (git refuses it too, and changes nothing)
        done = subprocess.run(
            ["git", "-C", str(plain), "merge", "-q", "--no-edit", "origin/up"], capture_output=True
        )
        assert done.returncode != 0 and b"overwritten by merge" in done.stderr
        assert _state(plain) == before


def _open_packs(under: str) -> int:
    """Descriptors of this process on packs below ``under`` (another test of the same worker
    may have left one of its own vault's open: Python's mmap keeps a duplicate descriptor of
    each pack core/store/objects.py maps; the official CI once counted 33)."""
    n = 0
    prefix = os.path.realpath(under) + os.sep
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        n += target.startswith(prefix) and target.endswith(".pack")
    return n


def test_a_process_merging_many_times_keeps_its_open_packs_bounded(
    vault: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each checkpoint and merge commit writes a pack, each merge reads them: libgit2 kept
    every pack it opened (a kept process of the resident server: one descriptor more a
    merge, its check after each call reading them all, until the packs passed
    ``PACK_LIMIT`` and were merged); now no more than ``PACK_FILES_OPEN``."""
    monkeypatch.setattr(packwriter, "PACK_LIMIT", 10_000)  # (the packs left as written)
    for i in range(PACK_FILES_OPEN + 4):
        vault.create_fork("main", f"f{i}")
        vault.workspace(f"f{i}").write(f"f{i}.txt", f"{i}\n".encode())
        checkpoint.save(vault, f"f{i}")
        vault.workspace("main").write(f"m{i}.txt", f"{i}\n".encode())
        checkpoint.save(vault, "main")
        assert merge.merge(vault, f"f{i}", "main").status == "merged"
    assert packwriter.pack_count(vault.path) > 2 * PACK_FILES_OPEN
    assert _open_packs(vault.path) <= PACK_FILES_OPEN

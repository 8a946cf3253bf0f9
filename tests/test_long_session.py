"""A long session in one mount (issue 31): status and checkpoints cost what changed since
the last checkpoint, not what the checkpoints before it recorded.

An overlay mount's upper layer keeps every file written while mounted, also once a
checkpoint recorded it (core/workspace/upperjournal.py): a checkpoint remembers what it
recorded, so the next status and checkpoint read the upper layer only where something
changed since. Counted here as the upper-layer entries read (`Overlay._u_classified`), with
each answer checked against a full read; and the mount's git index, which a checkpoint
patches, checked against git's own reading of the mount. The contract suite
(tests/contract/test_status.py) checks the answers on every backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.workspace import upperjournal
from avfs_git.core.workspace.overlay import Overlay
from avfs_git.ops import mounts

from .conftest import git
from .test_fsmonitor import _mount_ignoring_node_modules


def _w(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


class Reads:
    """The upper-layer entries this process reads (each a path classified)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        classified = Overlay._u_classified

        def counted(ov: Overlay, path: str, real: str, st: os.stat_result, in_new: bool = False) -> Any:
            self.paths.append(path)

            return classified(ov, path, real, st, in_new)

        monkeypatch.setattr(Overlay, "_u_classified", counted)

    def of(self, fn: Any) -> tuple[Any, int]:
        self.paths.clear()
        got = fn()
        return got, len(self.paths)


def _status(vault: Any) -> list[tuple[str, str]]:
    return sorted((c.path, str(c.status)) for c in vault.workspace("main").status())


def _full_status(vault: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The status a read of the whole upper layer gives (what the journal must agree with)."""
    with monkeypatch.context() as m:
        m.setattr(upperjournal, "entries", lambda ov, **kw: (ov.all(), None, False))
        return _status(vault)


def _batch(mp: str, k: int, n: int = 20) -> None:
    for f in range(n):
        _w(os.path.join(mp, f"b{k}", f"x{f}.txt"), f"{k} {f}\n")


def _git_clean(mp: str) -> None:
    """git in the mount agrees the checkpoint is HEAD: its index (patched by each
    checkpoint) holds HEAD's tree, and nothing in the mount differs from it."""
    assert git("status", "--porcelain", cwd=mp) == ""
    assert git("diff", "--cached", "--name-only", cwd=mp) == ""
    assert git("write-tree", cwd=mp).strip() == git("rev-parse", "HEAD^{tree}", cwd=mp).strip()


def test_checkpoints_in_one_overlay_mount_cost_the_changes_since_the_last(home, vault, tmp_path, monkeypatch):
    mp = _mount_ignoring_node_modules(home, vault, tmp_path)
    reads = Reads(monkeypatch)
    try:
        for i in range(200):
            _w(os.path.join(mp, "node_modules", f"p{i % 10}", f"f{i}.js"), "x\n")

        def one_round(k: int) -> tuple[int, int]:
            """Two edits and a new file, then a status and a checkpoint: what each read."""
            _w(os.path.join(mp, "src", "app.py"), f"print({k + 100})\n")
            _w(os.path.join(mp, "src", "lib.py"), f"round {k}\n")
            _w(os.path.join(mp, "round", f"r{k}.txt"), f"{k}\n")
            got, n_status = reads.of(lambda: _status(vault))
            assert got == [
                (f"round/r{k}.txt", "added"),
                ("src/app.py", "modified"),
                ("src/lib.py", "added" if k == 1 else "modified"),
            ]
            assert got == _full_status(vault, monkeypatch)
            res, n_save = reads.of(lambda: checkpoint.save(vault, message=f"round {k}"))
            assert res.created and res.ignored == 1 and not res.not_recorded
            return n_status, n_save

        _batch(mp, 0)
        checkpoint.save(vault, message="batch 0")
        first = one_round(1)
        for k in range(1, 41):  # 40 checkpoints, no status between them
            _batch(mp, k)
            res, n = reads.of(lambda k=k: checkpoint.save(vault, message=f"batch {k}"))
            assert res.created and res.checkpoint.changes == 20
            assert n < 60, f"checkpoint {k} read {n} upper-layer entries"
        later = one_round(2)
        # 800 more files in the upper layer: read no more than after one checkpoint
        assert later[0] <= first[0] + 5 and later[1] <= first[1] + 5, (first, later)
        assert max(later) < 60
        _git_clean(mp)
        # what the checkpoints recorded, changed again: reported exactly
        _w(os.path.join(mp, "b3", "x0.txt"), "edited\n")
        _w(os.path.join(mp, "b4", "x1.txt"), "edited, then back\n")
        _w(os.path.join(mp, "b4", "x1.txt"), "4 1\n")
        os.unlink(os.path.join(mp, "b5", "x2.txt"))
        os.rename(os.path.join(mp, "b6", "x0.txt"), os.path.join(mp, "b6", "moved.txt"))
        os.chmod(os.path.join(mp, "b7", "x1.txt"), 0o755)
        os.rename(os.path.join(mp, "b8"), os.path.join(mp, "b8-renamed"))
        want = [
            ("b3/x0.txt", "modified"),
            ("b5/x2.txt", "deleted"),
            ("b6/moved.txt", "renamed"),
            ("b7/x1.txt", "modified"),
            *((f"b8-renamed/x{f}.txt", "renamed") for f in range(20)),
        ]
        assert _status(vault) == sorted(want) == _full_status(vault, monkeypatch)
        res = checkpoint.save(vault, message="edits")
        assert res.created and _status(vault) == [] == _full_status(vault, monkeypatch)
        _git_clean(mp)
        tree = git("ls-tree", "-r", "HEAD", cwd=mp)
        assert "100755 blob" in next(ln for ln in tree.splitlines() if ln.endswith("\tb7/x1.txt"))
        assert "b5/x2.txt" not in tree and "\tb8/" not in tree and "b8-renamed/x19.txt" in tree
    finally:
        mounts.unmount(home, vault, "main")


def _save_in_a_new_process(home: str) -> tuple[dict[str, Any], bool]:
    """`avfs checkpoint save` in a new interpreter: its JSON, and whether it imported pygit2."""
    script = (
        "import sys, io, json, contextlib\n"
        "from avfs_git.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    code = main(['--home', {home!r}, '--json', '--vault', 'v:main', 'checkpoint', 'save'])\n"
        "print(json.dumps({'code': code, 'pygit2': 'pygit2' in sys.modules, 'out': out.getvalue()}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.splitlines()[-1])
    assert doc["code"] == 0, doc
    return json.loads(doc["out"]), bool(doc["pygit2"])


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_checkpoint_in_a_mount_patches_git_index_without_libgit2(home, vault, tmp_path, backend):
    """The checkpoint patches the mount's git index where the two bases differ (a
    modified, a deleted, a new file): the few sizes it needs are read without loading
    libgit2 (~80-150 ms of a CLI call), and git in the mount agrees with the result."""
    mp = _mount_ignoring_node_modules(home, vault, tmp_path, backend)
    try:
        for k in range(3):
            _batch(mp, k, 5)
        checkpoint.save(vault, message="batches")
        _git_clean(mp)
        _w(os.path.join(mp, "b1", "x1.txt"), "changed\n")
        os.unlink(os.path.join(mp, "b2", "x0.txt"))
        _w(os.path.join(mp, "b0", "a-new.txt"), "new\n")  # sorts before every other entry of b0/
        _w(os.path.join(mp, "zz", "last.txt"), "last\n")  # and after every entry
        doc, loaded = _save_in_a_new_process(home.path)
        assert doc["created"] and doc["checkpoint"]["changes"] == 4
        assert not loaded, "checkpoint save in a mount imported pygit2"
        _git_clean(mp)
        assert git("show", "HEAD:b0/a-new.txt", cwd=mp) == "new\n"
    finally:
        mounts.unmount(home, vault, "main")


def test_changes_below_a_directory_made_in_the_mount_are_read_where_they_are(
    home, vault, tmp_path, monkeypatch
):
    """overlayfs marks a directory made in the mount opaque (it hides the lower layer
    below it): once checkpointed, a change below it is read where it is, not as the whole
    directory (which a session keeps adding to), and deletions there (no whiteout: the
    kernel makes none in an opaque directory) are seen."""
    mp = _mount_ignoring_node_modules(home, vault, tmp_path)
    reads = Reads(monkeypatch)
    try:
        for k in range(30):
            for f in range(20):
                _w(os.path.join(mp, "made", f"k{k}", f"x{f}.txt"), f"{k} {f}\n")
            checkpoint.save(vault, message=f"batch {k}")
        assert _status(vault) == []
        _w(os.path.join(mp, "made", "k3", "x0.txt"), "edited\n")
        os.unlink(os.path.join(mp, "made", "k5", "x2.txt"))
        _w(os.path.join(mp, "made", "k7", "new.txt"), "new\n")
        for f in range(20):
            os.unlink(os.path.join(mp, "made", "k9", f"x{f}.txt"))
        os.rmdir(os.path.join(mp, "made", "k9"))
        for f in range(20):
            os.unlink(os.path.join(mp, "made", "k11", f"x{f}.txt"))
        _w(os.path.join(mp, "made", "k11", "other.txt"), "other\n")  # k11 emptied, a file in it
        want = sorted(
            [
                ("made/k3/x0.txt", "modified"),
                ("made/k5/x2.txt", "deleted"),
                ("made/k7/new.txt", "added"),
                ("made/k11/other.txt", "added"),
                *((f"made/k9/x{f}.txt", "deleted") for f in range(20)),
                *((f"made/k11/x{f}.txt", "deleted") for f in range(20)),
            ]
        )
        got, n = reads.of(lambda: _status(vault))
        assert got == want == _full_status(vault, monkeypatch)
        assert n < 300, f"status read {n} upper-layer entries (made/ holds 630)"
        res, n = reads.of(lambda: checkpoint.save(vault, message="changes below made/"))
        assert res.created and n < 300, n
        assert _status(vault) == [] == _full_status(vault, monkeypatch)
        _git_clean(mp)
        tree = git("ls-tree", "-r", "--name-only", "HEAD", cwd=mp)
        assert "made/k9/" not in tree and "made/k11/x0.txt" not in tree and "made/k11/other.txt" in tree
        assert git("show", "HEAD:made/k3/x0.txt", cwd=mp) == "edited\n"
        _w(os.path.join(mp, "made", "k3", "x0.txt"), "3 0\n")  # back to what batch 3 recorded
        assert _status(vault) == [("made/k3/x0.txt", "modified")]
    finally:
        mounts.unmount(home, vault, "main")


def test_files_removed_in_one_overlay_mount_are_not_read_again_at_each_checkpoint(
    home, vault, tmp_path, monkeypatch
):
    """A removal in an overlay mount leaves a whiteout in the upper layer, and a status or
    checkpoint kept every whiteout it read in view whatever the base: each file the session
    removed was read again at every later status and checkpoint (the status mark's tops:
    50 at the 500th checkpoint of bench/longsess.py, one removal in ten batches; a real
    project's session removes whole directories). A whiteout over nothing of the base now
    shows the base unchanged; one that hides a base's file, a pin or a fifo stays."""
    mp = _mount_ignoring_node_modules(home, vault, tmp_path)
    reads = Reads(monkeypatch)
    try:
        _batch(mp, 0)
        checkpoint.save(vault, message="batch 0")
        ov = vault.workspace("main").overlay
        tops = []
        for k in range(1, 31):  # a batch and a removal of one of the last batch's files, each checkpointed
            _batch(mp, k, 4)
            os.unlink(os.path.join(mp, f"b{k - 1}", "x0.txt"))
            res, n = reads.of(lambda k=k: checkpoint.save(vault, message=f"batch {k}"))
            assert res.created, k
            assert n < 30, f"checkpoint {k} read {n} upper-layer entries"
            tops.append(len(json.loads(ov.get_meta(upperjournal.MARK_KEY) or "{}").get("tops", [])))
        assert max(tops[10:]) <= max(tops[:10]), tops  # was one more a checkpoint: every removal
        _w(os.path.join(mp, "src", "app.py"), "print(2)\n")
        got, n = reads.of(lambda: _status(vault))
        assert got == [("src/app.py", "modified")] == _full_status(vault, monkeypatch)
        assert n < 30, n
        # a file removed long ago that a commit made elsewhere brings back: the base diff
        # names it, and the whiteout that no longer was in view hides it, as before
        tip = git("--git-dir", vault.path, "rev-parse", "main").strip()
        blob = git("--git-dir", vault.path, "rev-parse", "main~25:b5/x0.txt").strip()
        env = {**os.environ, "GIT_INDEX_FILE": str(tmp_path / "elsewhere.index")}
        subprocess.run(["git", "--git-dir", vault.path, "read-tree", tip], env=env, check=True)
        subprocess.run(
            [
                "git",
                "--git-dir",
                vault.path,
                "update-index",
                "--add",
                "--cacheinfo",
                f"100644,{blob},b5/x0.txt",
            ],
            env=env,
            check=True,
        )
        tree = subprocess.run(
            ["git", "--git-dir", vault.path, "write-tree"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        back = git("--git-dir", vault.path, "commit-tree", tree, "-p", tip, "-m", "b5/x0.txt back").strip()
        git("--git-dir", vault.path, "update-ref", "refs/heads/main", back, tip)
        res = checkpoint.save(vault, message="app")  # onto the commit made elsewhere
        assert res.created
        assert _status(vault) == _full_status(vault, monkeypatch)
    finally:
        mounts.unmount(home, vault, "main")


def test_a_checkpoint_s_kept_times_do_not_read_those_of_the_session_before(vault) -> None:
    """A checkpoint keeps the times of the files it retired (:meth:`Overlay.keep_times`) and
    drops those kept under another view time: by two ranges of the view's index, not a
    read of every row the session kept (`view != ?` read all: the pure-FUSE CLI checkpoint's
    `pread64` 0 / 147 / 447 at 1 / 100 / 600 checkpoints). Counted in SQLite's virtual
    machine steps over one keep, with 20,000 rows of the view kept; a new view drops them."""
    ws = vault.workspace("main")
    ov = ws.overlay
    oid = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    ov.set_meta("view_time", "1000")
    with ov.txn() as db:
        ov.keep_times(db, [(f"d{i % 100}/f{i}", oid, 1, 1) for i in range(20_000)])
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0

    with ov.txn() as db:
        db.set_progress_handler(step, 1)
        try:
            ov.keep_times(db, [("new.txt", oid, 2, 2)])
        finally:
            db.set_progress_handler(None, 1)
    assert steps[0] < 2_000, steps  # (a read of every row: ~3 a row, 60,000)
    assert len(ov.kept_times()) == 20_001
    ov.set_meta("view_time", "2000")
    with ov.txn() as db:
        ov.keep_times(db, [("other.txt", oid, 3, 3)])
    assert ov.kept_times() == {"other.txt": (oid, 3, 3)}
    assert ov.kept_times("1000") == {}

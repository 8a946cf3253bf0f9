"""A merge into a mounted fork holding an installed, ignored tree (a ``node_modules``), on a
real project's history (more-itertools 10.2.0 and 10.3.0's released sdists, one a commit),
on both backends, against `git merge` in a plain clone holding the same ignored files:
after a fast-forward and a three-way merge, the mount's git index (`git ls-files -s
--debug` less the stat data) and `git status --porcelain=v2` (ignored files listed too)
equal the plain clone's.

And what such a merge costs (docs/benchmarks.md, h-merge14's section): the target's status,
read three or four times a merge, read every database row of an ignored tree the overlay
holds (an installed ``node_modules`` folded into the database: 14,000 rows for minimist,
~130 ms of CPU each time on an overlay mount); it now reads none below a new directory git
ignores (core/workspace/overlayentry.py ``unignored_rows``). Into a pure-FUSE mount the index
was written whole after every merge (the tree walked, a `git status` for the untracked
cache); the one written ahead of the move is now the final one there too, the time the
merge's files show given to it (mount/indexahead.py ``written_ns``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint, merge
from avfs_git.core.workspace import overlay as overlay_mod

from . import realdata
from .conftest import git
from .test_merge_mountindex import NEW, OLD, _changed, _whole_writes, main_mounted

MODULES = {
    f"node_modules/pkg{i}/{name}": f"module {i} {name}\n" for i in range(40) for name in ("a.js", "b.js")
}
IGNORE = b"node_modules/\n"


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """more-itertools' two releases as a git history (tags ``vOLD``, ``vNEW``)."""
    return realdata.history("more-itertools", [OLD, NEW], tmp_path_factory.mktemp("mi"), aggressive=False)


@pytest.fixture
def forks(home: Any, tmp_path: Path, releases: Path) -> Any:
    """Vault ``mi``: ``main`` the older release with ``node_modules/`` ignored, fork ``up``
    the newer one over it (checkpointed), and ``main``'s installed ``node_modules`` written
    through the API before any mount (the overlay database's rows, as a fold leaves them)."""
    old = tmp_path / "old"
    old.mkdir()
    tar = subprocess.run(["git", "-C", str(releases), "archive", f"v{OLD}"], capture_output=True, check=True)
    subprocess.run(["tar", "x", "-C", str(old)], input=tar.stdout, check=True)
    vault = home.create_vault("mi", from_dir=str(old))
    main = vault.workspace("main")
    main.write(
        ".gitignore", (old / ".gitignore").read_bytes() + IGNORE if (old / ".gitignore").exists() else IGNORE
    )
    checkpoint.save(vault, "main", message="node_modules ignored")
    vault.create_fork("main", "up")
    up = vault.workspace("up")
    for path, how in _changed(releases).items():
        if how == "D":
            up.remove(path)
        else:
            blob = subprocess.run(["git", "-C", str(releases), "show", f"v{NEW}:{path}"], capture_output=True)
            up.write(path, blob.stdout + (IGNORE if path == ".gitignore" else b""), parents=True)
    checkpoint.save(vault, "up")
    for path, text in MODULES.items():
        main.write(path, text.encode(), parents=True)
    assert not main.is_dirty()
    return vault


@pytest.fixture(params=["overlay", "fuse"])
def mounted(request: pytest.FixtureRequest, home: Any, forks: Any, tmp_path: Path) -> Iterator[Path]:
    with main_mounted(request.param, home, forks, tmp_path) as mp:
        git("-C", str(mp), "status", "--porcelain")  # (git's untracked cache written into the index)
        yield mp


def _plain(vault: Any, tmp_path: Path) -> Path:
    """A plain clone of the vault at ``main`` holding the same ignored ``node_modules``."""
    plain = tmp_path / "plain"
    git("clone", "-q", "--branch", "main", vault.path, str(plain))
    for path, text in MODULES.items():
        (plain / path).parent.mkdir(parents=True, exist_ok=True)
        (plain / path).write_text(text)
    return plain


def _target_moves(vault: Any, where: list[Path], releases: Path) -> None:
    """The target's own commit of a three-way merge: a line added to a file the newer
    release leaves alone, written in each work tree (the mount's checkpointed, the plain
    clone's committed)."""
    changed = _changed(releases)
    path = next(
        p
        for p in sorted(git("-C", str(where[0]), "ls-files").splitlines())
        if p not in changed and p.endswith((".py", ".rst", ".txt"))
    )
    for w in where:
        with open(w / path, "a") as fh:
            fh.write("# the target's own line\n")
    checkpoint.save(vault, "main", message="the target's own")
    git("-C", str(where[1]), "commit", "-q", "-am", "the target's own")


def _index(where: Path) -> str:
    """`git ls-files -s --debug` less the stat data (ctime, mtime, dev, ino, uid, gid)."""
    keep = [
        ln
        for ln in git("-C", str(where), "ls-files", "-s", "--debug").splitlines()
        if not ln.startswith(("  ctime:", "  mtime:", "  dev:", "  uid:"))
    ]
    return "\n".join(keep)


def _state(where: Path) -> tuple[str, str, str]:
    """(HEAD's tree, the index less its stat data, `git status --porcelain=v2 --ignored`)."""
    return (
        git("-C", str(where), "rev-parse", "HEAD^{tree}"),
        _index(where),
        git("-C", str(where), "status", "--porcelain=v2", "--ignored"),
    )


def _rows_below(monkeypatch: pytest.MonkeyPatch, prefix: str) -> list[str]:
    """The overlay database's rows read from now on at or below ``prefix`` (its entries as
    a read makes them)."""
    read: list[str] = []
    real = overlay_mod.entry_of_row

    def counted(row: Any) -> Any:
        e = real(row)
        if e.path.startswith(prefix):
            read.append(e.path)
        return e

    monkeypatch.setattr(overlay_mod, "entry_of_row", counted)
    return read


def _kernel_asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The mounts the kernel's mount table is read for from now on, to know whether a
    mount's daemon serves it (mount/ownfiles.py ``daemon_serves``)."""
    from avfs_git.mount import ownfiles

    asked: list[str] = []
    real = ownfiles.mounted_as

    def counted(target: str, source: str) -> bool:
        asked.append(source)
        return real(target, source)

    monkeypatch.setattr(ownfiles, "mounted_as", counted)
    return asked


@pytest.mark.parametrize("kind", ["ff", "merge"])
def test_a_merge_into_a_mount_over_an_ignored_tree_leaves_what_git_merge_leaves(
    forks: Any, mounted: Path, releases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Both backends: git's index and status after the merge are the plain clone's after
    `git merge`, the ignored tree listed alike. The target's statuses read no row of its
    ignored ``node_modules`` but the first below it (main's code: every row, each status),
    the pure-FUSE mount's index is not written whole after the move (main's: it was), and
    the kernel's mount table is read once to know the mount's daemon serves it (main's: at
    each step that writes through the mount or tells its daemon, 8-9 times)."""
    plain = _plain(forks, tmp_path)
    if kind == "merge":
        _target_moves(forks, [mounted, plain], releases)
    assert _state(mounted) == _state(plain)
    subprocess.run(["git", "-C", str(plain), "merge", "-q", "--no-edit", "origin/up"], check=True)
    whole = _whole_writes(monkeypatch)
    rows = _rows_below(monkeypatch, "node_modules/")
    asked = _kernel_asked(monkeypatch)
    res = merge.merge(forks, "up", "main")
    assert res.status == {"ff": "fast_forward", "merge": "merged"}[kind]
    assert whole == []
    assert asked == ["avfs:mi:main"], asked  # (main's code: 8-9 times)
    # (a read in path order meets the first row below the ignored directory, then jumps past it)
    assert len(rows) < len(MODULES) / 4, len(rows)
    monkeypatch.undo()
    assert _state(mounted) == _state(plain)
    assert git("-C", str(mounted), "diff-index", "--cached", "HEAD") == ""
    assert sorted(forks.workspace("main").status_report(list_ignored=True)["ignored_paths"]) == [
        "node_modules/"
    ]


def test_a_merge_into_an_overlay_mount_reads_its_status_again_only_after_a_write(
    forks: Any, home: Any, releases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overlay mount: the target's status read at its capture is not read again before
    the move (`refuse_changed`'s) nor at it (what came in between, kept under a recovery
    ref) when the mount's journal names no write since (core/workspace/upperjournal.py ``status_kept``):
    one read a fast-forward (main's code: three). A write through the mount in that
    moment is read: the try is refused and tried again, the write captured and merged
    with the rest."""
    from avfs_git.core.operations import mergeguard
    from avfs_git.core.workspace import wsstatus

    with main_mounted("overlay", home, forks, tmp_path) as mp:
        plain = _plain(forks, tmp_path)
        subprocess.run(["git", "-C", str(plain), "merge", "-q", "--no-edit", "origin/up"], check=True)
        reads: list[str] = []
        real = wsstatus.Changes._status_ignored

        def counted(self: Any) -> Any:
            reads.append(self.overlay.upper_dir)
            return real(self)

        monkeypatch.setattr(wsstatus.Changes, "_status_ignored", counted)
        assert merge.merge(forks, "up", "main").status == "fast_forward"
        assert len(reads) == 1, reads
        monkeypatch.undo()
        assert _state(mp) == _state(plain)

        forks.workspace("up").write("later.txt", b"later\n")
        checkpoint.save(forks, "up")
        check, tries = mergeguard.refuse_changed, []

        def written_in_the_window(ws: Any) -> None:
            if not tries:
                (mp / "window.txt").write_text("written in the window\n")
            tries.append(1)
            check(ws)

        monkeypatch.setattr(mergeguard, "refuse_changed", written_in_the_window)
        got = merge.merge(forks, "up", "main")
        monkeypatch.undo()
        assert got.status == "merged" and len(tries) == 2
        assert (mp / "window.txt").read_text() == "written in the window\n"
        assert (mp / "later.txt").read_text() == "later\n"
        assert git("-C", str(mp), "status", "--porcelain") == ""


def test_a_status_without_an_upper_layer_reads_no_row_below_an_ignored_tree(
    forks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unmounted (and so on a pure-FUSE mount: no upper layer), a status of a fork whose
    database holds an installed ``node_modules`` reads no row below it but the first (main's
    code: every row, ~80 ms on minimist's 14,000; core/workspace/overlay.py ``all``), and
    says what it said: the change listed, the ignored tree counted and listed as one."""
    main = forks.workspace("main")
    main.write("notes.txt", b"a change\n")
    rows = _rows_below(monkeypatch, "node_modules/")
    report = main.status_report(list_ignored=True)
    assert len(rows) < len(MODULES) / 4, len(rows)
    monkeypatch.undo()
    assert [(c["path"], c["status"]) for c in report["changes"]] == [("notes.txt", "added")]
    assert report["ignored"] == 1 and report["ignored_paths"] == ["node_modules/"]
    assert main.is_dirty()

"""A merge into a fork a pure-FUSE mount serves refuses while the mount holds one of the
overlay's files open for writing (core/operations/mergeguard.py ``refuse_open_files``): it
asks the mount's daemon which files its write handles hold, in one request over the
mount's socket (``avfs-writers``, mount/journalhook.py), and probes only those. It probed
every overlay file for a write handle's ``flock``: ~370 ms a merge with minimist's
``node_modules`` in the overlay (docs/benchmarks.md, h-merge3's and h-merge5's sections).
A daemon that does not answer the question has every file probed, as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import AvfsError
from avfs_git.core.operations import checkpoint, merge
from avfs_git.core.workspace import hookwire
from avfs_git.core.workspace.overlaydb import OverlayDB

from .test_fuse import require_fuse

IGNORED = 40  # files under an ignored directory: overlay files that stay after a checkpoint


def _probes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The file ids the merge probes for a write handle's flock, in order."""
    seen: list[str] = []
    real = OverlayDB.in_use

    def in_use(self: OverlayDB, fileid: str) -> bool:
        seen.append(fileid)
        return real(self, fileid)

    monkeypatch.setattr(OverlayDB, "in_use", in_use)
    return seen


def test_a_merge_into_a_pure_fuse_mount_probes_only_the_files_its_daemon_holds_open(
    home: Any, vault: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from avfs_git.ops import mounts

    require_fuse()
    main = vault.workspace("main")
    main.write(".gitignore", b"build/\n")
    for i in range(IGNORED):
        main.write(f"build/out{i}.o", b"o\n")
    checkpoint.save(vault, "main")
    assert len([e for e in main.overlay.all() if e.fileid]) >= IGNORED  # (kept in the overlay)
    vault.create_fork("main", "a")
    vault.workspace("a").write("from-a.txt", b"a\n")
    checkpoint.save(vault, "a")
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend="fuse")
    try:
        probes = _probes(monkeypatch)
        tip = vault.workspace("main").tip()
        with open(mp / "being-written.txt", "w") as fh:
            fh.write("half")
            fh.flush()
            with pytest.raises(AvfsError) as exc:
                merge.merge(vault, "a", "main")
            assert exc.value.code == "busy" and exc.value.details["paths"] == ["being-written.txt"]
            held = vault.workspace("main").overlay.get("being-written.txt").fileid
            # (probed again and again for a second: a file closed a moment ago is let go)
            assert set(probes) == {held}  # on main's code: every overlay file, 40 and more
            assert vault.workspace("main").tip() == tip

            # a daemon that does not answer the question: every file probed, as before
            asked: list[str] = []

            def no_answer(git_dir: str, token: str, timeout_s: float = 10.0) -> list[str] | None:
                asked.append(token)
                return None

            monkeypatch.setattr(hookwire, "ask", no_answer)
            probes.clear()
            with pytest.raises(AvfsError) as exc:
                merge.merge(vault, "a", "main")
            assert exc.value.code == "busy" and exc.value.details["paths"] == ["being-written.txt"]
            assert asked == [hookwire.WRITERS] and len(set(probes)) > IGNORED
            monkeypatch.undo()
            probes = _probes(monkeypatch)
            fh.write(" and the rest\n")
        res = merge.merge(vault, "a", "main")  # closed: the merge goes through
        assert res.status == "merged"
        assert set(probes) <= {held}  # (its release may reach the daemon after close() returned)
        assert (mp / "being-written.txt").read_text() == "half and the rest\n"
    finally:
        mounts.unmount(home, vault, "main", lazy=True)

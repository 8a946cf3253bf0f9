"""An exec's new files are each read once to be recorded (record3, the thirty-sixth round):
the status hashes each new file and writes its blob from the same bytes into the pack the
commit then takes, and the capture does not read it again (core/workspace/recordblobs.py).

The files are es-abstract 1.24.2's (its npm tarball, 2,480 files, 2.8 MB; on pure FUSE, where
only the commit is checked, test_record2's 735 of them) and a 48 MiB file
of zeros, which a ``proxy exec -- sh -c "tar xzf …; fallocate -l 48M …"`` writes into a
mounted fork, on each mount backend. What the mount's daemon (which records)
read meanwhile is its ``/proc/PID/io`` ``rchar``: every byte its ``read`` calls returned.
On overlay, the command's own reads (the 235 KB tarball; a reaped child's count is its
parent's) and the record's small ones (the overlay's database, trees, the mount's index,
the pack read back for its checksum) are a few MB; each full read of the new files is
another ~51 MB. Before record3 the status and the capture read each file (and a file over
1 MiB twice in the capture: hashed, then stored); now once.
On both backends the commit holds the tree git's ``add -A`` makes of the same files, and
nothing is left to record after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from . import realdata
from .conftest import git
from .test_confine import _need_bwrap
from .test_fuse import require_fuse
from .test_overlay import require_overlay
from .test_record2 import FUSE_FILES, fuse_part_tarball

pytestmark = pytest.mark.slow

ID = ["-c", "user.name=t", "-c", "user.email=t@example.com"]


def _rchar(pid: int) -> int:
    with open(f"/proc/{pid}/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_an_exec_s_new_files_are_each_read_once_to_be_recorded(tmp_path: Path, backend: str) -> None:
    require_overlay() if backend == "overlay" else require_fuse()
    _need_bwrap()
    tgz = realdata.npm_tarball("es-abstract", "1.24.2")
    src = tmp_path / "src"
    src.mkdir()
    if backend == "fuse":  # (only overlay's reads are counted: the package's part, test_record2's)
        fuse_part_tarball(tgz, src / "es.tgz")
    else:
        (src / "es.tgz").write_bytes(tgz.read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(AVFS_HOME=str(tmp_path / "home"), AVFS_SERVER="off", AVFS_PROGRESS="never")

    def avfs(*args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=600, env=env
        )
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        return r

    avfs("vault", "create", "p", "--from", str(src))
    avfs("vault", "fork", "p", "f1")
    mounted = json.loads(avfs("--json", "mount", "--backend", backend, "p:f1").stdout)["mount"]
    mp, daemon = mounted["mountpoint"], int(mounted["pid"])
    try:
        before = _rchar(daemon)
        made = "tar xzf es.tgz && fallocate -l 48M package/big.bin"  # (48 MiB of zeros, none read)
        doc = json.loads(avfs("--json", "--vault", "p:f1", "proxy", "exec", "--", "sh", "-c", made).stdout)
        read = _rchar(daemon) - before
        assert doc["success"] and doc["mount"]["backend"] == backend, doc["error"]
        files = 2480 if backend == "overlay" else FUSE_FILES
        assert len(doc["changes"]) == files + 1 and {c["status"] for c in doc["changes"]} == {"added"}
        new_bytes = sum(p.stat().st_size for p in Path(mp, "package").rglob("*") if p.is_file())
        assert new_bytes > (50 << 20 if backend == "overlay" else 48 << 20)
        if backend == "overlay":
            # one full read of the new files (three of the large one before record3: the
            # status's, the capture's hash, its store); the rest is a few MB (the command's
            # own, counted once the daemon reaped it: the tarball; the pack read back for its
            # checksum, the zeros deflated to nothing). A pure-FUSE daemon reads the
            # command's writes from /dev/fuse and its database's pages again and again while
            # the command runs: hundreds of MB, not asked here.
            assert read < 1.5 * new_bytes, (read, new_bytes)

        # the commit is git's `add -A` of the same files, whole and sound
        repo = tmp_path / "plain"
        subprocess.run(["cp", "-a", str(src), str(repo)], check=True)
        git("init", "-q", cwd=repo)
        git("add", "-A", cwd=repo)
        git(*ID, "commit", "-qm", "init", cwd=repo)
        subprocess.run(["cp", "-a", str(Path(mp, "package")), str(repo)], check=True)
        git("add", "-A", cwd=repo)
        git(*ID, "commit", "-qm", "tar", cwd=repo)
        vault_git = tmp_path / "home" / "vaults" / "p.git"
        commit = doc["commit"]["commit"]
        assert git("rev-parse", f"{commit}^{{tree}}", cwd=vault_git) == git(
            "rev-parse", "HEAD^{tree}", cwd=repo
        )
        git("fsck", "--strict", "--no-dangling", cwd=vault_git)
        st = json.loads(avfs("--json", "--vault", "p:f1", "status").stdout)
        assert st["changes"] == [], st["changes"][:5]
        assert git("status", "--porcelain", cwd=mp) == ""
        # the record's pack is in place, and no temporary one is left beside it
        assert not [n for n in os.listdir(vault_git / "objects" / "pack") if n.startswith("tmp_")]
    finally:
        subprocess.run(
            [sys.executable, "-m", "avfs_git", "unmount", "p:f1"], capture_output=True, timeout=120, env=env
        )

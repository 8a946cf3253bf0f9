"""An exec that makes thousands of new files is recorded as git records them (record2, the
thirty-fifth round): a ``proxy exec -- cp -a package copy`` of es-abstract 1.24.2's npm
tarball (2,480 files; 735 of them on pure FUSE: ``FUSE_PART``) in a mounted fork, on each
mount backend, commits the tree that ``git add -A && git commit`` commits of the same files
in a plain clone; afterwards avfs's
own status and git's in the mount find nothing to record, and a second status of the same
files, their blob ids now kept (in one transaction, no longer one each), says the same.

What record2 changed is how the new files' ids are kept (core/workspace/overlayupper.py
``keeping_oids``) and how often the upper layer's root is listed (``upper_active``, once a
:meth:`remembering` block): this is the check that the commit still holds each new path's
content as git reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from . import realdata
from .conftest import git
from .test_confine import _need_bwrap
from .test_fuse import require_fuse
from .test_overlay import require_overlay

pytestmark = pytest.mark.slow

ID = ["-c", "user.name=t", "-c", "user.email=t@example.com"]

# On pure FUSE the package's two last editions, its helpers and its top (735 of its 2,480
# files, suitetime5): there the mount's daemon serves every byte and name the command
# writes, ~15 s of a test's CPU at 2,480 files, and the record takes the same code at 735,
# each query that reads by parts past its first part (the kept ids 400 a query, a pure-FUSE
# overlay's file ids 500, kept times one by one up to 256); overlay keeps the whole package.
FUSE_PART = ("2024", "2025", "helpers", "5", "operations")
FUSE_FILES = 735


def fuse_part(pkg: Path) -> Path:
    """``pkg`` (an extracted package) with only :data:`FUSE_PART`'s directories and its top."""
    for d in pkg.iterdir():
        if d.is_dir() and d.name not in FUSE_PART:
            shutil.rmtree(d)
    assert sum(1 for p in pkg.rglob("*") if not p.is_dir()) == FUSE_FILES
    return pkg


def fuse_part_tarball(tgz: Path, out: Path) -> Path:
    """``tgz`` (an npm tarball) rewritten to :data:`FUSE_PART`'s members and its top."""
    with tarfile.open(tgz) as src, tarfile.open(out, "w:gz") as dst:
        for m in src.getmembers():
            parts = m.name.split("/")
            if len(parts) == 2 or parts[1] in FUSE_PART:
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    return out


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_an_exec_of_thousands_of_new_files_commits_git_add_s_tree(tmp_path: Path, backend: str) -> None:
    require_overlay() if backend == "overlay" else require_fuse()
    _need_bwrap()
    src = tmp_path / "src"
    pkg = realdata.extract(realdata.npm_tarball("es-abstract", "1.24.2"), src)  # (src/package)
    files = 2480 if backend == "overlay" else FUSE_FILES
    if backend == "fuse":
        fuse_part(pkg)
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
    mp = json.loads(avfs("--json", "mount", "--backend", backend, "p:f1").stdout)["mount"]["mountpoint"]
    try:
        env_doc = json.loads(
            avfs("--json", "--vault", "p:f1", "proxy", "exec", "--", "cp", "-a", "package", "copy").stdout
        )
        assert env_doc["success"] and env_doc["mount"]["backend"] == backend, env_doc["error"]
        assert len(env_doc["changes"]) == files and {c["status"] for c in env_doc["changes"]} == {"added"}
        commit = env_doc["commit"]["commit"]

        # git's own record of the same new files, in a plain clone of the same tree
        repo = tmp_path / "plain"
        subprocess.run(["cp", "-a", str(src), str(repo)], check=True)
        git("init", "-q", cwd=repo)
        git("add", "-A", cwd=repo)
        git(*ID, "commit", "-qm", "init", cwd=repo)
        vault_git = tmp_path / "home" / "vaults" / "p.git"
        parent = env_doc["commit"]["parent"]
        assert git("rev-parse", f"{parent}^{{tree}}", cwd=vault_git) == git(
            "rev-parse", "HEAD^{tree}", cwd=repo
        )
        subprocess.run(["cp", "-a", "package", "copy"], cwd=repo, check=True)
        git("add", "-A", cwd=repo)
        git(*ID, "commit", "-qm", "copy", cwd=repo)
        assert git("rev-parse", f"{commit}^{{tree}}", cwd=vault_git) == git(
            "rev-parse", "HEAD^{tree}", cwd=repo
        )
        git("fsck", "--strict", "--no-dangling", cwd=vault_git)

        # nothing left to record, by avfs (twice: the second from the kept ids) or by git
        for _ in range(2):
            st = json.loads(avfs("--json", "--vault", "p:f1", "status").stdout)
            assert st["changes"] == [], st["changes"][:5]
        assert git("status", "--porcelain", cwd=mp) == ""
        # a new path's bytes changed after the record: seen, and committed as git reads it
        Path(mp, "copy", "package.json").write_text('{"name": "changed"}\n')
        st = json.loads(avfs("--json", "--vault", "p:f1", "status").stdout)
        assert [(c["path"], c["status"]) for c in st["changes"]] == [("copy/package.json", "modified")]
    finally:
        subprocess.run(
            [sys.executable, "-m", "avfs_git", "unmount", "p:f1"], capture_output=True, timeout=120, env=env
        )

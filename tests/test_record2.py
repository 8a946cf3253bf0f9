"""An exec that makes thousands of new files is recorded as git records them (record2, the
thirty-fifth round): a ``proxy exec -- cp -a package copy`` of es-abstract 1.24.2's npm
tarball (2,480 files) in a mounted fork, on each mount backend, commits the tree that
``git add -A && git commit`` commits of the same files in a plain clone; afterwards avfs's
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
import subprocess
import sys
from pathlib import Path

import pytest

from . import realdata
from .conftest import git
from .test_confine import _need_bwrap
from .test_fuse import require_fuse
from .test_overlay import require_overlay

pytestmark = pytest.mark.slow

ID = ["-c", "user.name=t", "-c", "user.email=t@example.com"]


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_an_exec_of_thousands_of_new_files_commits_git_add_s_tree(tmp_path: Path, backend: str) -> None:
    require_overlay() if backend == "overlay" else require_fuse()
    _need_bwrap()
    src = tmp_path / "src"
    realdata.extract(realdata.npm_tarball("es-abstract", "1.24.2"), src)  # (src/package)
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
        assert len(env_doc["changes"]) == 2480 and {c["status"] for c in env_doc["changes"]} == {"added"}
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

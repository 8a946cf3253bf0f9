"""An exec's record of thousands of new files, cut again (record4, the thirty-seventh round):
the status reads the kept blob ids of the paths it hashes a few hundred a query, the record's
sink reads the descriptor the status opened, the capture's holes check takes the stat the
capture notes, the index written ahead asks a recorded file's size only, and a whole diff
of two trees is made once where a record's commit asked it four times.

The first test holds what must not change: on each backend, the commits of two execs (a
real npm package's files beside every kind of entry git records: executable bits, empty
files, links to files, directories and nothing, a CRLF file, names with spaces and
non-ASCII; then some of them changed, made executable, removed) hold the trees git's own
``add -A && commit`` makes of the same files, nothing is left to record after either, and
``git fsck --strict`` passes. The second fails where a checkpoint diffs its base and its new
tree more than once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import treediff

from . import realdata
from .conftest import git
from .test_confine import _need_bwrap
from .test_fuse import require_fuse
from .test_overlay import require_overlay
from .test_record2 import FUSE_FILES, fuse_part

ID = ["-c", "user.name=t", "-c", "user.email=t@example.com"]

# every kind of entry git records, beside a real npm package's files
MAKE = (
    "mkdir -p mix/a/b mix/only-empty-dir && cp -a package mix/pkg"
    " && : > mix/empty && : > mix/a/b/empty-too"
    " && printf '#!/bin/sh\\necho hi\\n' > mix/a/b/run.sh && chmod 755 mix/a/b/run.sh"
    " && chmod +x mix/pkg/index.js"
    " && ln -s a/b/run.sh mix/link && ln -s nowhere mix/dangling && ln -s a mix/dirlink"
    " && printf 'one\\r\\ntwo\\r\\n' > mix/crlf.txt"
    " && printf 'x\\n' > 'mix/a name with spaces.txt' && printf 'y\\n' > 'mix/na\xc3\xafve.txt'"
)
# then some of them changed, made executable or not, removed, and new ones beside them
CHANGE = (
    "printf 'more\\n' >> mix/pkg/package.json && chmod -x mix/a/b/run.sh && chmod +x mix/empty"
    " && rm -r mix/pkg/helpers mix/link && ln -s pkg mix/link2 && printf 'z\\n' > mix/a/new.txt"
)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_an_exec_s_record_is_git_add_s_commit_of_every_kind_of_entry(tmp_path: Path, backend: str) -> None:
    require_overlay() if backend == "overlay" else require_fuse()
    _need_bwrap()
    src = tmp_path / "src"
    pkg = realdata.extract(realdata.npm_tarball("es-abstract", "1.24.2"), src)  # (src/package)
    many = 2400  # (the first exec's changes: more than this)
    if backend == "fuse":  # (the package's part: test_record2's)
        fuse_part(pkg)
        many = FUSE_FILES - 5
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
    repo = tmp_path / "plain"  # git's own record of the same files, in a plain repository
    subprocess.run(["cp", "-a", str(src), str(repo)], check=True)
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git(*ID, "commit", "-qm", "init", cwd=repo)
    vault_git = tmp_path / "home" / "vaults" / "p.git"
    try:
        for step, script in enumerate((MAKE, CHANGE)):
            doc = json.loads(
                avfs("--json", "--vault", "p:f1", "proxy", "exec", "--", "sh", "-c", script).stdout
            )
            assert doc["success"] and doc["mount"]["backend"] == backend, doc["error"]
            assert len(doc["changes"]) > (many if step == 0 else 5)
            subprocess.run(["sh", "-c", script], cwd=repo, check=True)
            git("add", "-A", cwd=repo)
            git(*ID, "commit", "-qm", f"step {step}", cwd=repo)
            commit = doc["commit"]["commit"]
            assert git("rev-parse", f"{commit}^{{tree}}", cwd=vault_git) == git(
                "rev-parse", "HEAD^{tree}", cwd=repo
            ), f"step {step}"
            git("fsck", "--strict", "--no-dangling", cwd=vault_git)
            for _ in range(2):  # (the second from the ids the first kept)
                st = json.loads(avfs("--json", "--vault", "p:f1", "status").stdout)
                assert st["changes"] == [], st["changes"][:5]
            assert git("status", "--porcelain", cwd=mp) == ""
    finally:
        subprocess.run(
            [sys.executable, "-m", "avfs_git", "unmount", "p:f1"], capture_output=True, timeout=120, env=env
        )


def test_a_checkpoint_diffs_its_base_and_its_new_tree_once(vault, ws, tmp_path: Path, monkeypatch) -> None:
    # a real tree of new files (es-abstract's), written into the workspace and checkpointed
    pkg = realdata.extract(realdata.npm_tarball("es-abstract", "1.24.2"), tmp_path / "src")
    for p in sorted(pkg.rglob("*")):
        if p.is_file() and not p.is_symlink():
            ws.write(f"pkg/{p.relative_to(pkg)}", p.read_bytes())
    base_tree = ws.base_tree
    whole: list[tuple[object, object]] = []
    run = treediff._run

    def counted(store, todo, out):  # (the differ itself, each whole diff of two trees noted)
        if len(todo) == 1 and todo[0][0] == treediff._TREES and not todo[0][3]:
            whole.append((todo[0][1], todo[0][2]))
        return run(store, todo, out)

    monkeypatch.setattr(treediff, "_run", counted)
    res = checkpoint.save(vault, message="new files")
    assert res.created
    new_tree = vault.store.commit_tree(res.checkpoint.commit)
    # asked by the capture's forms, its retire and the checkpoint's changes: made once
    assert whole.count((base_tree, new_tree)) == 1, whole

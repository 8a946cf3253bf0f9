"""A lazy vault (a partial clone whose blobs come from its promisor remote on first read),
from the attacker's side (docs/security.md, the eleventh round's candidates that held).

The host fetches missing blobs with git, in the vault, from the remote its config names:
the mount's daemon on a read through the mount, avfs's own reads, and the person's plain
git in the mount (git's own lazy fetch). A confined command in a lazy fork's mount tries
to steer that fetch: a remote's ``uploadpack`` and ``core.sshCommand`` in every config file
it can name (the vault's, the worktree's ``config.worktree``, a ``config`` beside it, which
git never reads for a linked worktree), ``objects/info/alternates``, a ``.promisor`` file
and a pack. The vault's config and ``config.worktree`` are read-only in the sandbox, the
objects it writes are its quarantine's (emptied after the run): the blobs the person then
reads come from the real remote, byte for byte, and no canary appears (``uploadpack`` runs
only for a local or ssh remote, ``sshCommand`` only for ssh: that the files stay unwritten
is what is checked).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from avfs_git.ops import mounts
from avfs_git.proxy.envelope import ExecRequest
from avfs_git.proxy.execute import execute

from .test_adv_mountfiles import _need_bwrap
from .test_fuse import require_fuse
from .test_lazy import blob_at, objects
from .test_lazy import lazy as lazy  # fixtures, used by name
from .test_lazy import server as server
from .test_overlay import require_overlay


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_what_a_command_plants_never_steers_the_host_s_lazy_fetch(
    lazy: Any, server: Any, tmp_path: Path, backend: str
) -> None:
    require_overlay() if backend == "overlay" else require_fuse()
    _need_bwrap()
    v = lazy.vault("p")
    src = server.base / "proj.git"
    canary = tmp_path / "ran"
    evil = (
        f'[remote "origin"]\\n\\tuploadpack = touch {canary}-up; git-upload-pack\\n'
        f"[core]\\n\\tsshCommand = touch {canary}-ssh\\n\\tfsmonitor = touch {canary}-fsm\\n"
        f"[protocol]\\n\\tallow = always\\n"
    )
    script = (
        "G=$(git rev-parse --git-dir); C=$(git rev-parse --git-common-dir); O=$(git rev-parse --git-path objects)\n"
        f'for f in "$C/config" "$G/config" "$G/config.worktree"; do (printf \'{evil}\' >> "$f") 2>/dev/null && echo "WROTE $f"; done\n'
        f"git config remote.origin.uploadpack 'touch {canary}-cfg' 2>/dev/null && echo CONFIG\n"
        'mkdir -p "$O/info" "$O/pack" && echo /tmp > "$O/info/alternates"\n'
        'touch "$O/pack/pack-0000000000000000000000000000000000000000.promisor"\n'
        'echo garbage > "$O/pack/pack-0000000000000000000000000000000000000000.pack"\n'
    )
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(lazy, v, "main", str(mp), backend=backend)
    try:
        (mp / "attack.sh").write_text(script)  # run as a file: the policy reads no script
        res = execute(lazy, v, "main", ExecRequest(shell="sh attack.sh"))
        assert res.confinement is not None and res.confinement.kind == "bwrap", res.to_dict()
        assert res.result is not None and res.result.exit_code == 0, res.to_dict()
        wrote = res.result.stdout.split()
        assert "CONFIG" not in wrote, res.result
        # only the worktree's own `config`, which git never reads for a linked worktree
        assert [w for w in wrote if w != "WROTE"] in (
            [],
            [os.path.join(v.path, "worktrees", "avfs-main", "config")],
        )
        before = objects(v.path)
        # the daemon's fetch (a read through the mount), the person's git (its own lazy fetch)
        rel = "avfs_git/core/store/promisor.py"
        assert (mp / rel).read_bytes() == blob_at(src, "main", rel)
        env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))
        shown = subprocess.run(
            ["git", "show", "HEAD:NOTES.md"], cwd=mp, env=env, capture_output=True, check=False, timeout=120
        )
        assert shown.returncode == 0 and shown.stdout == blob_at(src, "main", "NOTES.md"), shown.stderr
        subprocess.run(["git", "status", "--porcelain"], cwd=mp, env=env, capture_output=True, check=True)
        assert objects(v.path) > before  # fetched, from the real remote
        assert not list(tmp_path.glob("ran-*")), "planted code ran on the host"
        fsck = subprocess.run(
            ["git", "--git-dir", v.path, "fsck", "--connectivity-only"], capture_output=True
        )
        assert fsck.returncode == 0, fsck.stderr
    finally:
        mounts.unmount(lazy, v, "main", lazy=True)

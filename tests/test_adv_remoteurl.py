"""A remote's URL that is a relative path (twenty-first round, NAME=attack12).

`avfs vault clone up.git v` stored ``up.git`` as origin's URL (git clone stores the
absolute path), and avfs's push and fetch ran git in the caller's directory: the person's
`avfs push` from inside the fork's mount pushed to ``<mount>/up.git``, a bare repository a
confined command had written there, and git ran its ``pre-receive`` hook on the host, as
the person. Now a relative path is made absolute where the person gives it (clone, `remote
add`, `remote set-url`), and git reaches a remote from inside the vault, so a relative URL
an older avfs stored names a path in the vault (which no sandbox writes), never the mount.

One real confined `proxy exec` in a real mount plants the repository; then the person's
own commands, from the mount.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from avfs_git.ops import mounts

from .test_adv_mountfiles import _need_bwrap
from .test_fuse import require_fuse
from .waitingexec import exec_argv

_PLANT = """set -e
git init -q --bare up.git
for h in pre-receive update post-receive post-update; do
    # (refused at the write since plant2 on pure FUSE, set aside after the run on the overlay)
    {{ printf '#!/bin/sh\\ntouch {canary}-%s\\n' "$h" > "up.git/hooks/$h" && chmod +x "up.git/hooks/$h"; }} || true
done
git init -q decoy && git -C decoy -c user.name=a -c user.email=a@x commit -q --allow-empty -m planted
git -C decoy push -q ../up.git HEAD:refs/heads/planted
rm -rf decoy
"""


def _avfs(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "avfs_git", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert not check or proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()


def test_a_repository_planted_in_the_mount_never_takes_the_person_s_push(home: Any, tmp_path: Path) -> None:
    require_fuse()
    _need_bwrap()
    src = tmp_path / "src"
    src.mkdir()
    work = src / "w"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "README").write_text("upstream\n")
    subprocess.run(["git", "-C", str(work), "add", "README"], check=True)
    subprocess.run(
        ["git", "-C", str(work), "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qm", "up"],
        check=True,
    )
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(src / "up.git")], check=True)
    # the person's clone, by a path relative to where they are
    _avfs("vault", "clone", "up.git", "v", cwd=src)
    vault = home.vault("v")
    canary = tmp_path / "ran"
    info = mounts.mount(home, vault, "main", None, backend="fuse")
    mp = Path(info.mountpoint)
    try:
        (mp / "plant.sh").write_text(_PLANT.format(canary=canary))
        p = subprocess.run(
            [*exec_argv(vault="v:main"), "--", "sh", "plant.sh"], capture_output=True, timeout=300
        )
        doc = json.loads(p.stdout)
        assert doc["confinement"]["kind"] == "bwrap", doc
        assert doc["result"]["exit_code"] == 0, doc["result"]
        planted = _git("--git-dir", str(mp / "up.git"), "rev-parse", "planted")

        # the person's push and fetch, from the mount: the real upstream's, nothing planted runs
        pushed = _avfs("push", cwd=mp, check=False)
        assert not list(tmp_path.glob("ran-*")), "the planted repository's hook ran on the host"
        assert pushed.returncode == 0, pushed.stderr
        _avfs("fetch", cwd=mp)
        assert _git("--git-dir", str(src / "up.git"), "rev-parse", "main") == _git(
            "--git-dir", vault.path, "rev-parse", "main"
        )
        assert _git("--git-dir", vault.path, "config", "remote.origin.url") == str(src / "up.git")
        # `remote add` and `set-url` of a relative path: stored from where the person is
        _avfs("--vault", "v", "remote", "add", "second", "up.git", cwd=src)
        _avfs("--vault", "v", "remote", "set-url", "second", "./up.git", cwd=src)
        assert _git("--git-dir", vault.path, "config", "remote.second.url") == str(src / "up.git")

        # a relative URL an older avfs stored: read against the vault, not the mount
        subprocess.run(["git", "--git-dir", vault.path, "config", "remote.origin.url", "up.git"], check=True)
        for args in (("fetch",), ("push",)):
            got = _avfs("--json", *args, cwd=mp, check=False)
            assert got.returncode != 0, (args, got.stdout)
            assert json.loads(got.stdout)["error"]["details"]["reason"] == "not_a_repository", got.stdout
        assert not list(tmp_path.glob("ran-*")), "the planted repository's hook ran on the host"
        assert _git("--git-dir", str(mp / "up.git"), "for-each-ref", "--format=%(refname) %(objectname)") == (
            f"refs/heads/planted {planted}"
        )
        assert planted not in _git("--git-dir", vault.path, "for-each-ref", "--format=%(objectname)")
        # doctor names it (plain git in the mount still reads it there)
        doc = json.loads(_avfs("--json", "doctor", cwd=src, check=False).stdout)
        assert [(f["code"], f["severity"]) for f in doc["findings"] if f["check"] == "remotes"] == [
            ("relative_remote_url", "problem")
        ], doc
    finally:
        mounts.unmount(home, vault, "main", lazy=True)
    assert os.path.isdir(src / "up.git")


def test_only_a_relative_local_path_is_anchored(tmp_path: Path, monkeypatch: Any) -> None:
    """What git reads as a local path (no ``scheme://``, no ``:`` before the first ``/``)
    and is relative gets this directory; ssh's ``host:path``, URLs, absolute and ``~`` paths
    stay as given (git expands ``~`` itself)."""
    from avfs_git.core.store.transport import anchored

    monkeypatch.chdir(tmp_path)
    here = str(tmp_path)
    for url, want in (
        ("up.git", f"{here}/up.git"),
        ("./up.git", f"{here}/up.git"),
        ("../x/up.git", f"{os.path.dirname(here)}/x/up.git"),
        ("sub/a:b", f"{here}/sub/a:b"),  # (a slash before the colon: a path)
        ("a:b/c", "a:b/c"),  # ssh
        ("git@github.com:me/p.git", "git@github.com:me/p.git"),
        ("https://example.com/p.git", "https://example.com/p.git"),
        ("file:///srv/p.git", "file:///srv/p.git"),
        ("ext::sh -c x", "ext::sh -c x"),
        ("/srv/p.git", "/srv/p.git"),
        ("~/p.git", "~/p.git"),
    ):
        assert anchored(url) == want, url

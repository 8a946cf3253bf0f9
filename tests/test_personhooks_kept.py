"""git's answer for the person's ``core.hooksPath``, which every fork's mount looks up
(mount/personhooks.py), kept beside the vault by the stamps of the files git read it
from: a differential test against git itself, each answer taken from git and from the
kept file, and git asked again once any of those files changed or where one includes
another."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from avfs_git.core.store import gitrun
from avfs_git.mount import personhooks


def _gits_own(vault: Any, mountpoint: str) -> str:
    """What git says the hooks directory is (the last value of a person's scope, relative
    to the mount point), else the vault's hooks."""
    proc = subprocess.run(
        ["git", "--git-dir", vault.path, "config", "--get-all", "--show-scope", "--path", "core.hooksPath"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        check=False,
    )
    values = [
        line.split("\t", 1)[1]
        for line in proc.stdout.splitlines()
        if line.split("\t")[0] not in ("worktree", "command")
    ]
    if not values:
        return os.path.join(vault.path, "hooks")
    got = values[-1]
    return got if os.path.isabs(got) else os.path.join(mountpoint, got)


def test_the_kept_hooks_path_is_git_s_answer(vault: Any, tmp_path: Path, monkeypatch: Any) -> None:
    asked: list[object] = []
    real = personhooks.run

    def counted(*args: Any, **kw: Any) -> Any:
        asked.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(personhooks, "run", counted)
    # (a file changed within the last second is not kept, gitrun's rule and test: here each
    # is changed right before it is looked up)
    monkeypatch.setattr(gitrun, "CONFIG_RECENT_NS", 0)
    mp = str(tmp_path / "mnt")
    home_config = Path(os.environ["HOME"], ".gitconfig")

    def lookups(expect_asks: list[int]) -> None:
        for n in expect_asks:
            asked.clear()
            assert personhooks.persons_dir(vault.path, mp) == _gits_own(vault, mp)
            assert len(asked) == n, (n, asked)

    lookups([1, 0, 0])  # none set: asked once, then kept
    assert Path(vault.path, "avfs", personhooks.HOOKS_PATH_FILE).is_file()

    subprocess.run(["git", "--git-dir", vault.path, "config", "core.hooksPath", ".githooks"], check=True)
    lookups([1, 0])  # the vault's config changed: asked again

    home_config.write_text("[core]\n\thooksPath = /somewhere/hooks\n")
    lookups([1, 0])  # a global file came: asked again (the vault's still wins)
    subprocess.run(["git", "--git-dir", vault.path, "config", "--unset", "core.hooksPath"], check=True)
    lookups([1, 0])  # now the global one
    home_config.unlink()
    lookups([1, 0])  # gone: the vault's hooks again

    included = tmp_path / "included"
    included.write_text("[core]\n\thooksPath = /from/include\n")
    subprocess.run(["git", "--git-dir", vault.path, "config", "include.path", str(included)], check=True)
    lookups([1, 1])  # an include: git asked every time
    included.write_text("[core]\n\thooksPath = /changed/include\n")
    lookups([1])

    subprocess.run(["git", "--git-dir", vault.path, "config", "--unset", "include.path"], check=True)
    lookups([1, 0])

    # the kept file damaged or of another key: git asked, the answer right
    kept = Path(vault.path, "avfs", personhooks.HOOKS_PATH_FILE)
    for bad in ("", "{", '{"key": [], "values": {"core.hooksPath": "/forged"}}'):
        kept.write_text(bad)
        lookups([1])

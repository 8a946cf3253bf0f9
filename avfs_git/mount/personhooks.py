"""The person's own git hooks directory, as a mount's hooks directory reaches it.

A fork's mount names its own hooks directory as its worktree's ``core.hooksPath``
(mount/hookscripts.py: avfs's two guards, and every other hook name). Every other name
there is a link ``NAME -> persons/NAME``, and ``persons`` a link to the directory git
would use without the mount's setting: ``core.hooksPath`` of the system, global or vault
config (relative: from the mount's top, where git runs hooks), else the vault's
``hooks/``. A name whose hook the person has not is a dangling link, which git skips (no
process at all: a script at each name made `git status` 1.27 and `git commit` 1.59 times
as long, bench/hookchainab.py).

Where that directory is was looked up once, at the mount, so a `git config core.hooksPath
DIR` made in the mount after it was mounted (husky's install, a repository's set-up step)
was not followed: the person's hooks did not run until the next mount (gitmodel24). Now
``persons`` is pointed again (:func:`refresh`) where a config file git reads it from
changed since :data:`PERSONS_FILE` was written: by the mount's daemon as git's fsmonitor
hook asks (mount/hooksocket.py; git asks before it runs a commit's hooks), and the guards
read that file, or look up again while it is older than a config file. A file a config
includes is not watched."""

from __future__ import annotations

import contextlib
import os

from ..core.store.gitrun import git_config_files, git_env, run
from .ownfiles import write_file

PERSONS_LINK = "persons"  # in the mount's hooks directory: a link to the person's hooks directory
# beside it: the directory it names, the vault and the mount point, a line each; its time
# says when the link was last pointed
PERSONS_FILE = ".persons"


def persons_dir(vault_path: str, mountpoint: str) -> str:
    """The hooks directory git would use in this mount without avfs's: ``core.hooksPath``
    of the person's config (system, global, the vault's), else the vault's ``hooks/``."""
    env = git_env()
    env["GIT_DIR"] = vault_path
    proc = run(["config", "--path", "--get", "core.hooksPath"], env=env, check=False)
    got = proc.stdout.decode("utf-8", "surrogateescape").strip() if proc.returncode == 0 else ""
    if not got:
        return os.path.join(vault_path, "hooks")
    chain = got if os.path.isabs(got) else os.path.join(mountpoint, got)  # git runs hooks there
    # a mount's own hooks directory named as the person's (`git config core.hooksPath
    # "$(git rev-parse --git-path hooks)"` in a mount): its guards chained to themselves, a
    # fork bomb (the review of the thirty-fourth round); git's own hooks are the vault's
    own = os.path.realpath(os.path.join(vault_path, "avfs"))
    if os.path.realpath(chain).startswith(own + os.sep):
        return os.path.join(vault_path, "hooks")
    return chain


def _replace_link(target: str, path: str) -> None:
    tmp = f"{path}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    os.symlink(target, tmp)
    try:
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def point(hooks_dir: str, vault_path: str, mountpoint: str) -> str:
    """Point ``hooks_dir``'s :data:`PERSONS_LINK` at :func:`persons_dir` and write
    :data:`PERSONS_FILE` after it; the directory."""
    import time

    # (the file's time is the lookup's start: a config changed during the lookup is newer,
    # so looked up again; its own write's time hid it until the next change: the review)
    began = time.time_ns()
    chain = persons_dir(vault_path, mountpoint)
    _replace_link(chain, os.path.join(hooks_dir, PERSONS_LINK))
    lines = [chain, vault_path, mountpoint]
    if not any("\n" in ln for ln in lines):  # (else none: the guards look up at each run)
        text = "".join(ln + "\n" for ln in lines)
        write_file(hooks_dir, PERSONS_FILE, text.encode("utf-8", "surrogateescape"))
        with contextlib.suppress(OSError):
            os.utime(os.path.join(hooks_dir, PERSONS_FILE), ns=(began, began))
    return chain


def refresh(own: str) -> bool:
    """Point the link of the mount whose own directory is ``own`` again where a config
    file git reads the person's hooks directory from is as new as :data:`PERSONS_FILE` or
    newer (a few ``stat`` calls when none is). True where it was pointed again."""
    hooks_dir = os.path.join(own, "hooks")
    stamp = os.path.join(hooks_dir, PERSONS_FILE)
    try:
        at = os.stat(stamp).st_mtime_ns
    except FileNotFoundError:
        return False
    with open(stamp, "rb") as fh:
        lines = fh.read().decode("utf-8", "surrogateescape").split("\n")
    if len(lines) < 3:
        return False
    vault_path, mountpoint = lines[1], lines[2]
    for path in (os.path.join(vault_path, "config"), *git_config_files()):
        try:
            if os.stat(path).st_mtime_ns >= at:
                break
        except OSError:
            continue
    else:
        return False
    point(hooks_dir, vault_path, mountpoint)
    return True

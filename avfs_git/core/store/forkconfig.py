"""git's config as git in a fork's worktree reads it: one reader of a fork's settings,
where they can differ from the vault's.

git matches ``[includeIf "onbranch:PATTERN"]`` against the branch of the worktree it runs
in: in a fork's mount (and in a plain worktree on that branch) that is the fork's branch,
where avfs's own readers ran git (or libgit2) on the vault, whose HEAD is another branch:
a ``core.autocrlf`` or ``core.attributesFile`` included for one fork only was missed, a
checkpoint stored CRLF where ``git add`` in the mount stores LF and a status listed a
file git calls unchanged (found by gitmodel25, closed by gitmodel26).

:func:`settings` asks git once (``git config --list``) with ``GIT_DIR`` a small directory
of this process's that names the fork's branch as its ``HEAD`` and the vault as its
``commondir`` (a linked worktree's git dir, without its ``config.worktree``: what avfs
writes there is avfs's, as for the person's hooks), and keeps the answer by the stamps of
every config file git reads and of every file they include, and the environment's
``GIT_CONFIG_*``. Where no config file holds an ``includeIf`` at all (most homes) it
answers None at the cost of a few ``stat`` calls (:func:`.gitrun.config_text`): the
vault's reading is the fork's, and the callers read as before.

``gitdir:`` conditions are matched by git against the directory given, here this
process's own, not the mount's worktree's git dir (left: docs/git.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from .gitrun import (
    CONFIG_RECENT_NS,
    config_includes,
    config_text,
    git_config_env,
    git_config_files,
    git_env,
    run,
)

FOLLOWED_MAX = 32  # config files followed through includes (git: 10 levels deep)
_KEPT_MAX = 64

# (vault, branch, environment, every file's stamp) -> git's settings, names lower-cased
_kept: dict[tuple[object, ...], dict[str, str]] = {}
# (vault, branch) -> the directory git is pointed at
_dirs: dict[tuple[str, str], str] = {}


def _stamp(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _files(store_path: str) -> tuple[list[str], bool, bool]:
    """The config files git reads for the vault and every file they include (a superset:
    :func:`.gitrun.config_includes`), whether one of them holds an ``includeIf``, and
    whether every include was followed here."""
    todo = [os.path.join(store_path, "config"), *git_config_files()]
    seen: list[str] = []
    conditional = False
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        if len(seen) >= FOLLOWED_MAX:
            return seen, True, False
        seen.append(path)
        text = config_text(path)
        if text is None or b"include" not in text:
            continue
        conditional = conditional or b"includeif" in text
        more = config_includes(path)
        if more is None:
            return seen, True, False
        todo += more
    return seen, conditional, True


def fork_git_dir(store_path: str, branch: str) -> str:
    """A git dir of this process's whose ``HEAD`` is ``branch`` and whose ``commondir`` is
    the vault: what git reads config through as in a worktree on that branch."""
    key = (store_path, branch)
    got = _dirs.get(key)
    if got is not None and os.path.isdir(got):
        return got
    d = tempfile.mkdtemp(prefix="avfs-forkconfig-")
    with open(os.path.join(d, "HEAD"), "w") as fh:
        fh.write(f"ref: refs/heads/{branch}\n")
    with open(os.path.join(d, "commondir"), "w") as fh:
        fh.write(os.path.abspath(store_path) + "\n")
    if len(_dirs) >= _KEPT_MAX:
        for old in _dirs.values():
            shutil.rmtree(old, ignore_errors=True)
        _dirs.clear()
    _dirs[key] = d
    if len(_dirs) == 1:
        import atexit

        atexit.register(_remove_dirs)
    return d


def _remove_dirs() -> None:
    for d in _dirs.values():
        shutil.rmtree(d, ignore_errors=True)


def settings(store_path: str, branch: str | None) -> dict[str, str] | None:
    """Every setting git in a worktree of the vault at ``store_path`` on ``branch`` reads
    (its name lower-cased -> its last value; a key without ``=`` is ``"true"``, as git's
    boolean reads it), where a config file holds an ``includeIf`` (its answer may be the
    fork's own); None where none does, or ``branch`` is None: the vault's reading holds."""
    if branch is None:
        return None
    files, conditional, _ = _files(store_path)
    if not conditional:
        return None
    env_cfg = git_config_env()
    stamps = tuple((p, _stamp(p)) for p in files)
    key = (store_path, branch, tuple(sorted(env_cfg.items())), stamps)
    hit = _kept.get(key)
    if hit is not None:
        return hit
    env = {**git_env(), **env_cfg, "GIT_DIR": fork_git_dir(store_path, branch)}
    proc = run(["config", "-z", "--list"], env=env, check=False)
    values: dict[str, str] = {}
    if proc.returncode == 0:
        for item in proc.stdout.split(b"\0"):
            name, nl, value = item.partition(b"\n")
            if name:  # (git's order: the last wins)
                values[name.decode("utf-8", "replace").lower()] = (
                    value.decode("utf-8", "surrogateescape") if nl else "true"
                )
    # (a file changed within the last second may change again unseen by its stamp)
    now = time.time_ns()
    if all(s is None or now - max(s[2], s[3]) >= CONFIG_RECENT_NS for _, s in stamps):
        if len(_kept) >= _KEPT_MAX:
            _kept.clear()
        _kept[key] = values
    return values

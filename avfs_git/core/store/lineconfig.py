"""``core.autocrlf`` and ``core.eol`` as git reads them, where libgit2 would read others.

libgit2 reads its own config search path: the vault's config, ``~/.gitconfig``, the XDG
file and ``/etc/gitconfig``. git reads ``$GIT_CONFIG_GLOBAL`` and ``$GIT_CONFIG_SYSTEM``
in place of those and settings given as ``git -c`` (``GIT_CONFIG_PARAMETERS``,
``GIT_CONFIG_COUNT``). Where this process's environment says any of them, the two settings
that choose a file's end-of-line conversion are asked of git (one ``git config`` for the
pair, kept until the environment or a config file changes), and handed to libgit2's
filters in the handle's own config (:func:`.gitsmudge.no_own_global`) and to avfs's own
look at them (``wsattrs.autocrlf``): the mount shows, and a checkpoint records, what the
person's git with that environment checks out and stores (gitmodel11; before, a
``core.autocrlf=true`` in the file ``$GIT_CONFIG_GLOBAL`` names was not seen, and one in
``~/.gitconfig`` that git then does not read was). Elsewhere libgit2's reading is git's
(None here: nothing asked). The mount's daemon reads by the environment it started in,
as for git's attribute files (:mod:`.gitattrfiles`): a ``git -c`` of one command in the
mount reaches git alone.
"""

from __future__ import annotations

import os
import time

from .gitrun import CONFIG_RECENT_NS, git_config_env, git_config_files, git_env, run

KEYS = ("core.autocrlf", "core.eol")
EOLS = ("lf", "crlf", "native")  # the values of core.eol git reads (else: unset)

# (vault, config environment, the files' stamps) -> the values git read
_kept: dict[tuple[object, ...], dict[str, str]] = {}
_KEPT_MAX = 64


def _stamp(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def line_endings(store_path: str, branch: str | None = None) -> dict[str, str] | None:
    """git's ``core.autocrlf`` and ``core.eol`` for the vault at ``store_path`` (each key
    of :data:`KEYS` that git finds set, by its last value), where this process's
    environment names config libgit2 does not read, or (``branch``: the fork's) a config
    file holds an ``includeIf`` (:func:`.forkconfig.settings`: git in the fork's worktree
    matches ``onbranch:`` against the fork's branch, libgit2 on the vault against its
    HEAD); None where neither. A file an included one names is not watched here: a
    change there is seen when one of the config files, or the environment, changes (the
    fork's reader watches them all)."""
    from .forkconfig import settings

    fork = settings(store_path, branch)
    if fork is not None:
        return {k: fork[k] for k in KEYS if k in fork}
    env_cfg = git_config_env()
    if not (env_cfg.keys() - {"GIT_CONFIG_NOSYSTEM"}):
        return None
    stamps = tuple(_stamp(p) for p in (os.path.join(store_path, "config"), *git_config_files()))
    key = (store_path, tuple(sorted(env_cfg.items())), stamps)
    hit = _kept.get(key)
    if hit is not None:
        return hit
    env = {**git_env(), **env_cfg}
    proc = run(
        ["config", "-z", "--get-regexp", r"^core\.(autocrlf|eol)$"], git_dir=store_path, env=env, check=False
    )
    values: dict[str, str] = {}
    if proc.returncode == 0:  # (1: neither is set)
        for item in proc.stdout.split(b"\0"):
            name, nl, value = item.partition(b"\n")
            if name.decode("ascii", "replace").lower() in KEYS:  # (git's order: the last wins)
                # (a key without "=" is a true boolean: no newline after its name)
                values[name.decode("ascii").lower()] = value.decode("utf-8", "replace") if nl else "true"
    # (a file changed within the last second may change again unseen by its stamp)
    now = time.time_ns()
    if all(s is None or now - s[3] > CONFIG_RECENT_NS for s in stamps):
        if len(_kept) >= _KEPT_MAX:
            _kept.clear()
        _kept[key] = values
    return values


def handle_config(store_path: str, libgit2_eol: str | None = None, branch: str | None = None) -> str:
    """The lines of a libgit2 handle's own config (its highest level) that make its filters
    convert as git would: git's values where :func:`line_endings` has them (git's
    defaults, ``false`` and ``native``, where it finds a key unset, so that a value only
    libgit2 reads is not taken), else nothing but ``eol = native`` where the handle's own
    reading (``libgit2_eol``: ``core.eol`` as it read it, ``""`` for a key without
    ``=``) is a value git takes for unset.

    ``core.eol`` git reads as ``lf``, ``crlf`` or ``native`` (any case), and anything else
    (a key without ``=``, a word) as unset, which converts as ``native``
    (``config.c``: ``EOL_UNSET``); libgit2 converted a file with such a value to CRLF, the
    key alone read through git was ``true`` here: the mount showed CRLF where git's
    checkout writes LF (changes2, thirty-fourth round; git 2.39)."""
    values = line_endings(store_path, branch)
    if values is None:
        if libgit2_eol is not None and libgit2_eol.lower() not in EOLS:
            return "\teol = native\n"
        return ""
    eol = values.get("core.eol", "native")
    return f"\tautocrlf = {values.get('core.autocrlf', 'false')}\n\teol = {eol if eol.lower() in EOLS else 'native'}\n"

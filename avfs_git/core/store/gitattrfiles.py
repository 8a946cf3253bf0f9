"""The attribute files git reads beside a tree's ``.gitattributes`` and the vault's
``info/attributes`` (attr.c, ``bootstrap_attr_stack``): the system one
(``/etc/gitattributes``, unless ``$GIT_ATTR_NOSYSTEM``) and the global one
(``core.attributesFile`` of git's config, else ``$XDG_CONFIG_HOME/git/attributes`` or
``~/.config/git/attributes``), both below every ``.gitattributes`` of the tree.

libgit2 reads its own idea of them (its config search path: not ``$GIT_CONFIG_GLOBAL``,
``$GIT_CONFIG_SYSTEM`` nor ``git -c``), so avfs reads them as git does, by this process's
environment (the mount's daemon: the environment it was started in), and hands their text
to libgit2 as the first lines of the root's ``.gitattributes``, where their rules rank
below the tree's as in git (:func:`.gitsmudge.attributes_handle`). Found in gitmodel9: a
person's ``core.attributesFile`` naming ``eol=crlf`` made git's checkout write CRLF where
the mount showed LF.

libgit2 must then read no global file of its own (its idea: ``core.attributesFile`` of the
configs on its search path, else ``$XDG_CONFIG_HOME/git/attributes``): where git's differs
(``$GIT_CONFIG_GLOBAL``, ``git -c``, a file an ``[include]`` names) its rules applied beside
git's, so each handle is given ``core.attributesFile = /dev/null`` in a config of the highest
level (:func:`.gitsmudge.no_own_global`; found in the nineteenth round, review8, by
``tests/test_gitattrfiles_git.py`` against ``git check-attr``).

What it costs: a few ``stat``s and small reads; ``git config`` (~1 ms of CPU) only when one
of git's config files names ``attributesfile`` or includes another at all, and again only
once one of them (or a file one includes) changed.
"""

from __future__ import annotations

import os
import time

from .gitrun import (
    CONFIG_RECENT_NS,
    config_includes,
    config_text,
    git_attr_nosystem,
    git_config_env,
    git_config_files,
    git_env,
    git_user_path,
    git_xdg_file,
    run,
)
from .lineconfig import fork_settings

SYSTEM = "/etc/gitattributes"  # (git's ETC_GITATTRIBUTES for its prefix /usr)
MAX_FILE = 100 << 20  # git ignores a larger attributes file (attr.c ATTR_MAX_FILE_SIZE)


def _names_key(store_path: str) -> bool:
    """Whether the vault's config or git's global and system ones name ``attributesfile``
    or include another file (which may: git follows ``[include]`` and ``[includeIf]``)."""
    for path in (os.path.join(store_path, "config"), *git_config_files()):
        try:
            with open(path, "rb") as fh:
                text = fh.read(1 << 20).lower()
        except OSError:
            continue
        if b"attributesfile" in text or b"include" in text:
            return True
    return "attributesfile" in " ".join(git_config_env().values()).lower()


# (the config files' stat data and the variables naming them) -> git config's answer
_ASKED: dict[tuple[object, ...], str] = {}
_INCLUDES_MAX = 32  # config files a key follows includes into (git: 10 levels deep)


def _config_key(store_path: str) -> tuple[object, ...] | None:
    """What git config's answer depends on: the variables naming the config files, and
    each file's stat data (the files they include too); None when it cannot be kept: a
    file changed within :data:`.gitrun.CONFIG_RECENT_NS` (two writes within one tick of
    the file system's clock keep the same stamp), or an include not followed here."""
    key: list[object] = [*sorted(git_config_env().items())]
    todo = [os.path.join(store_path, "config"), *git_config_files()]
    now = time.time_ns()
    seen: set[str] = set()
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        if len(seen) >= _INCLUDES_MAX:
            return None
        seen.add(path)
        try:
            st = os.stat(path)
        except OSError:
            key.append((path, -1))
            continue
        if now - max(st.st_mtime_ns, st.st_ctime_ns) < CONFIG_RECENT_NS:
            return None
        key.append((path, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino))
        text = config_text(path)  # (kept by its stat: most configs include nothing)
        if text is not None and b"include" in text:
            more = config_includes(path)
            if more is None:
                return None
            todo += more
    return tuple(key)


def global_file(store_path: str, branch: str | None = None) -> str | None:
    """The global attributes file git reads for the vault at ``store_path``: ``git
    config``'s answer is kept while the config files, those they include and the
    variables stay the same (a status or a base move asks each time; ``git config`` is
    ~1 ms of CPU). ``branch``: as git in a worktree on the fork's branch reads it
    (:func:`.lineconfig.fork_settings`: an ``includeIf "onbranch:"`` for that fork)."""
    fork = fork_settings(store_path, branch)
    if fork is not None:
        named = fork.get("core.attributesfile", "")
        return git_user_path(named) if named else git_xdg_file("attributes")
    key = _config_key(store_path)
    value = None if key is None else _ASKED.get(key)
    if value is None:
        value = _ask(store_path)
        if key is not None:
            if len(_ASKED) > 64:
                _ASKED.clear()
            _ASKED[key] = value
    return value or git_xdg_file("attributes")


def _ask(store_path: str) -> str:
    """``core.attributesFile`` as git reads it ("" unset), git asked only where a config
    file names it."""
    if _names_key(store_path):
        env = git_env()
        env.update(git_config_env())
        proc = run(
            ["config", "--type=path", "--get", "core.attributesFile"],
            git_dir=store_path,
            env=env,
            check=False,
            text=True,
        )
        return proc.stdout.strip() if proc.returncode == 0 else ""
    return ""


def outer_attributes(store_path: str, branch: str | None = None) -> bytes:
    """The text of git's system and global attribute files, in git's order (the global's
    rules after the system's: they rank above them), empty when there are none
    (``branch``: the fork's, :func:`global_file`)."""
    out = b""
    paths = [] if git_attr_nosystem() else [SYSTEM]
    found = global_file(store_path, branch)
    if found is not None:
        paths.append(found)
    for path in paths:
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_FILE + 1)
        except OSError:
            continue
        if len(data) <= MAX_FILE:
            out += data if data.endswith(b"\n") or not data else data + b"\n"
    return out

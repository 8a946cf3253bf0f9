"""git's ``core.fileMode`` for a vault, and the mode a file is recorded with under it.

``core.fileMode false`` tells git the exec bit of the working tree is not to be trusted:
its status shows no change of the bit alone, and `git add` (so `git commit --only`, what
a checkpoint is) keeps the mode the index's entry has, the one of HEAD for a path
`commit --only` takes (100644 for a new path: git's ``ce_mode_from_stat``). A mount's
worktree reads the vault's config (its common config), so `git config core.fileMode
false` in the mount sets it for the vault, as for any linked worktree.

Read from the files a person owns: git's system and global config
(:func:`.gitrun.git_config_files`), the vault's ``config``, which the sandbox shows a
confined command read-only (docs/security.md, "Sealing the vault's git dir"), and since
gitmodel18 the fork's mount's ``config.worktree`` (`git config --worktree core.fileMode
false` in the mount), which git reads last where the vault's config turns
``extensions.worktreeConfig`` on (every mount does): the sandbox binds it read-only over
itself and puts it back after a run where it was replaced (proxy/gitstate.py
``PINNED``), so a command cannot make avfs drop or keep exec bits. Each file is read as
:func:`.gitrun.config_text` keeps it (by its ``stat``): a status pays a few ``stat``
calls; a file that names ``filemode`` is parsed here, and where it cannot be (an
include, a quoted value), git is asked (one ``git config``).
"""

from __future__ import annotations

import os

from ..types import MODE_BLOB, MODE_EXEC, MODE_LINK
from .gitrun import config_text, git_config_files

__all__ = ["recorded_mode", "trusts_exec_bit", "trusts_symlinks"]

_TRUE = (b"true", b"yes", b"on", b"1")
_FALSE = (b"false", b"no", b"off", b"0", b"")


def _filemode_in(text: bytes, want: tuple[bytes, bytes] = (b"core", b"filemode")) -> tuple[bool, bool | None]:
    """(read, the last ``core.filemode`` (``want``: another section and key, lower case)
    of config ``text`` (lower case) or None where it sets none); read False where this
    cannot say: an include, a quoted or continued value, a key after a section header on
    its line, a value that is no boolean."""
    section = b""
    found: bool | None = None
    for raw in text.split(b"\n"):
        line = raw.strip()
        if not line or line[:1] in b"#;":
            continue
        if line[:1] == b"[":
            end = line.find(b"]")
            if end < 0:
                return False, None
            section = line[1:end].strip()
            rest = line[end + 1 :].strip()
            if section.startswith(b"include") or (rest and rest[:1] not in b"#;"):
                return False, None
            continue
        if section.lower() != want[0]:
            continue
        key, eq, value = line.partition(b"=")
        if key.strip().lower() != want[1]:
            continue
        if not eq:
            found = True  # (a key without a value is a true boolean)
            continue
        if b'"' in value or b"\\" in value:
            return False, None
        value = value.split(b"#", 1)[0].split(b";", 1)[0].strip()
        if value in _TRUE:
            found = True
        elif value in _FALSE:
            found = False
        else:
            return False, None
    return True, found


def trusts_exec_bit(store_path: str, worktree_git_dir: str | None = None, branch: str | None = None) -> bool:
    """Whether git trusts the exec bit of the vault at ``store_path``'s working trees (with
    ``worktree_git_dir``: of that worktree, the fork's mount's, whose ``config.worktree``
    git reads last where ``extensions.worktreeConfig`` is on): its ``core.fileMode``, true
    where no file the person owns sets it (git's default). ``branch``: the fork's, where a
    config includes a file (:func:`_asked`)."""
    return _trusts(store_path, worktree_git_dir, b"filemode", branch)


def trusts_symlinks(store_path: str, worktree_git_dir: str | None = None, branch: str | None = None) -> bool:
    """:func:`trusts_exec_bit` for git's ``core.symlinks`` (gitmodel27): false, git takes a
    regular file at a path its index holds as a symbolic link for that link, its bytes the
    link's target (``read-cache.c``: ``ce_mode_from_stat``), as :func:`recorded_mode` does."""
    return _trusts(store_path, worktree_git_dir, b"symlinks", branch)


def _trusts(store_path: str, worktree_git_dir: str | None, key: bytes, branch: str | None) -> bool:
    trusted = True
    vault_config = os.path.join(store_path, "config")
    for path in (*git_config_files(), vault_config):
        text = config_text(path)
        if text is None or (key not in text and b"include" not in text):
            continue
        read, value = _filemode_in(text, (b"core", key))
        if not read:
            trusted = _asked(store_path, worktree_git_dir, key, branch)
            if worktree_git_dir is None or _linked(worktree_git_dir):
                return trusted  # (git read the worktree's config.worktree too)
            break  # (an unmounted fork's kept git dir: its config.worktree below)
        if value is not None:
            trusted = value
    if worktree_git_dir is None:
        return trusted
    text = config_text(os.path.join(worktree_git_dir, "config.worktree"))
    if text is None or (key not in text and b"include" not in text):
        return trusted
    read, value = _filemode_in(text, (b"core", key))
    if not read:
        return _asked(store_path, worktree_git_dir, key)
    if value is None or not _worktree_config_on(vault_config):
        return trusted
    return value


def _worktree_config_on(vault_config: str) -> bool:
    """Whether the vault's config turns ``extensions.worktreeConfig`` on (git reads a
    worktree's ``config.worktree`` only then); asked of git where it cannot be read here."""
    text = config_text(vault_config) or b""
    read, value = _filemode_in(text, (b"extensions", b"worktreeconfig"))
    if read:
        return bool(value)
    from .gitrun import run

    try:
        proc = run(
            ["config", "--type=bool", "--get", "extensions.worktreeConfig"],
            git_dir=os.path.dirname(vault_config),
            check=False,
        )
    except Exception:
        return False
    return proc.returncode == 0 and proc.stdout.strip() == b"true"


def _linked(git_dir: str) -> bool:
    """Whether ``git_dir`` is a linked worktree's git dir (a mount's: its ``commondir``
    names the vault), not the git dir an unmount kept (no ``commondir``: git takes it for
    no repository)."""
    return os.path.isfile(os.path.join(git_dir, "commondir"))


def _asked(
    store_path: str, worktree_git_dir: str | None = None, key: bytes = b"filemode", branch: str | None = None
) -> bool:
    """git's own answer (an include followed, a quoted value read): one ``git config``, in
    the worktree ``worktree_git_dir`` where it is a mount's (its ``config.worktree`` read),
    else where ``branch`` is given as in a worktree on the fork's branch
    (:func:`.lineconfig.fork_git_dir`: ``includeIf "onbranch:"`` matched as there; an
    unmounted fork's ``core.fileMode false`` in a file its config includes for it was
    read as the vault's HEAD's, or, through the kept git dir, as no repository's:
    gitmodel27), else on the vault."""
    from .gitrun import run

    try:
        if worktree_git_dir is not None and _linked(worktree_git_dir):
            git_dir = worktree_git_dir
        elif branch is not None:
            from .lineconfig import fork_git_dir

            git_dir = fork_git_dir(store_path, branch)
        else:
            git_dir = store_path
        proc = run(["config", "--type=bool", "--get", "core." + key.decode()], git_dir=git_dir, check=False)
    except Exception:  # (git cannot be run: git's default)
        return True
    return proc.returncode != 0 or proc.stdout.strip() != b"false"


def recorded_mode(mode: int, held: tuple[str, int] | None, trusted: bool, links: bool = True) -> int:
    """The mode a file of the live tree with ``mode`` is recorded (and compared) with where
    HEAD holds ``held`` (id, mode; None: nothing) at its path: its own where git trusts the
    exec bit or it is no regular file, else HEAD's regular file's, else 100644. Where git
    does not trust symbolic links (``links``: ``core.symlinks``) a regular file at HEAD's
    link is that link (:func:`trusts_symlinks`)."""
    if not links and mode in (MODE_BLOB, MODE_EXEC) and held is not None and held[1] == MODE_LINK:
        return MODE_LINK
    if trusted or mode not in (MODE_BLOB, MODE_EXEC):
        return mode
    if held is not None and held[1] in (MODE_BLOB, MODE_EXEC):
        return held[1]
    return MODE_BLOB

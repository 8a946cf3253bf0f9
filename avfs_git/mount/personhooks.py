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
read that file, or look up again while it is older than a config file.

Since gitmodel25 the files a config includes (``[include]``, ``[includeIf]``: every
``path`` whatever its condition, followed as git resolves them) are watched too: their
names are in :data:`PERSONS_FILE` after its first four lines (``+PATH`` a file there at the
lookup, ``-PATH`` one not, ``*`` an include not read here: look up every time), and a
change of any, or one made or removed, is a change (before, a ``core.hooksPath`` set in an
included file was missed until a remount). The value is looked up as git in the mount's
worktree reads it (``GIT_DIR`` its git dir: ``includeIf "onbranch:FORK"`` and
``gitdir:`` match there as in the mount), the worktree's own ``config.worktree`` (avfs's
``core.hooksPath``) left out.

And where nothing asks the daemon (the person's ``core.fsmonitor false`` for the worktree,
``git config --worktree``), the hooks that start a command's chain (:data:`GATES`:
``pre-commit``, ``pre-merge-commit``, ``pre-push``, and since plant5 the first hook of
each of git's other commands: ``prepare-commit-msg`` (the first of a `commit --no-verify`'s:
gitmodel27 too), ``post-index-change``...) are links
to small scripts of the mount's (:data:`GATES_DIR`) that make the same test and, where the
file is older than a change, ask the daemon to point the link again (:data:`QUESTION` over
its socket) before they run the person's hook: the rest of the chain (``commit-msg``,
``post-commit``) then follows the new link. The daemon makes them so, and back, as git
rewrites the worktree's ``config.worktree`` (an inotify watch of its git dir,
mount/hooksocket.py; :func:`fsmonitor_off`); while git asks the daemon they are links to the
person's hooks as every other name (a script there costs git a second read of the index
and of fsmonitor's answer in every commit: 1.2x a commit's time)."""

from __future__ import annotations

import contextlib
import os
import re

from ..core.store.gitrun import (
    CONFIG_READ_MAX,
    config_includes,
    config_text,
    git_config_files,
    git_env,
    keep_config,
    kept_config,
    run,
)
from .ownfiles import write_file

PERSONS_LINK = "persons"  # in the mount's hooks directory: a link to the person's hooks directory
# beside it: the directory it names, the vault and the mount point, a line each; its time
# says when the link was last pointed
PERSONS_FILE = ".persons"
# what a gate (mount/hookscripts.py) sends the daemon's socket in place of git's token:
# point the link again where it is out of date, answer nothing (mount/hooksocket.py)
QUESTION = "avfs-persons"
# the hooks that start a command's chain: while git's fsmonitor is off for the worktree, a
# link each to a script in GATES_DIR (beside the hooks directory), else to the person's hook
# as every other name (a hook of that name costs git a second read of the index, and of
# fsmonitor's answer, in every commit: 1.2x a commit's time, bench/hookchainab.py). Each is
# the first hook of one of git's commands that git runs before avfs's guards (a ref's move:
# the reference-transaction guard looks up itself), or the first where an option skips
# another: `git commit -n` skips pre-commit (then prepare-commit-msg), `git commit -a`, `git
# add`, `git reset`... write the index first (post-index-change), `git rebase` runs
# pre-rebase, `git am` sets ORIG_HEAD (a guard) before applypatch-msg, `git gc --auto`,
# `git push` (pre-push), `git send-email`, `git p4`, a push into the mount (pre-receive).
# Until plant5 only pre-commit, pre-merge-commit and pre-push were: with fsmonitor off the
# rest ran the person's old hooks directory, a `.githooks/` of the work tree the agent had
# written into after the person took that setting away (review38)
GATES = (
    "pre-commit",
    "pre-merge-commit",
    "pre-push",
    "prepare-commit-msg",
    "post-index-change",
    "pre-rebase",
    "applypatch-msg",
    "pre-auto-gc",
    "pre-receive",
    "sendemail-validate",
    "p4-changelist",
    "p4-prepare-changelist",
    "p4-post-changelist",
    "p4-pre-submit",
)
GATES_DIR = "gates"
WATCHED_MAX = 32  # config files followed through includes (git: 10 levels deep)


def persons_dir(vault_path: str, mountpoint: str, git_dir: str | None = None) -> str:
    """The hooks directory git would use in this mount without avfs's: ``core.hooksPath``
    of the person's config (system, global, the vault's, and the files they include), else
    the vault's ``hooks/``. Read as git in the mount's worktree reads it (``GIT_DIR``
    ``git_dir``, else the vault), the worktree's own config (avfs's value) left out."""
    env = git_env()
    env["GIT_DIR"] = git_dir if git_dir and os.path.isdir(git_dir) else vault_path
    key = _kept_key(vault_path, env)
    kept = kept_config(vault_path, HOOKS_PATH_FILE, key) if key is not None else None
    if kept is not None and isinstance(kept.get(HOOKS_PATH), str):
        got = str(kept[HOOKS_PATH])
    else:
        got = _asked(env, vault_path, key)
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


# git's answer for the person's ``core.hooksPath`` kept beside the vault (``avfs/``, as
# gitrun's kept config answers: the first of each mount's git processes, ~2-3 ms of CPU),
# by the stamps of the files git read it from, where none of them includes another
HOOKS_PATH_FILE = "hookspath-config"
HOOKS_PATH = "core.hooksPath"


def _kept_key(vault_path: str, env: dict[str, str]) -> list[list[str | int]] | None:
    """What the answer is kept by: the stamps (inode, size, mtime, ctime) of the files git
    reads it from with ``env`` (the vault's config and ``config.worktree``, the global and
    system ones) and ``$HOME`` (``--path`` expands ``~``); None where one of them includes
    another (``include``, ``includeIf``: git is asked every time, as before)."""
    out: list[list[str | int]] = []
    for path in [
        os.path.join(vault_path, "config"),
        os.path.join(vault_path, "config.worktree"),
        *git_config_files(env),
    ]:
        text = config_text(path)
        if text is not None and (b"include" in text or len(text) >= CONFIG_READ_MAX):
            return None  # (text: lower case; a file past what is read may include one further on)
        try:
            st = os.stat(path)
        except OSError:
            out.append([path])
            continue
        out.append([path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
    out.append([f"HOME={env.get('HOME', '')}"])
    return out


def _asked(env: dict[str, str], vault_path: str, key: list[list[str | int]] | None) -> str:
    """git's ``core.hooksPath`` of the person's scopes (the last wins), kept under ``key``."""
    proc = run(
        ["config", "-z", "--get-all", "--show-scope", "--path", "core.hooksPath"], env=env, check=False
    )
    got = ""
    if proc.returncode == 0:
        parts = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
        for scope, value in zip(parts[0::2], parts[1::2], strict=False):
            if scope not in ("worktree", "command"):  # (git's order: the last wins)
                got = value
    if key is not None and proc.returncode in (0, 1):  # (1: not set; else an error: not kept)
        with contextlib.suppress(OSError):
            keep_config(vault_path, HOOKS_PATH_FILE, key, {HOOKS_PATH: got})
    return got


def watched(vault_path: str) -> list[str]:
    """The config files the lookup read, as :data:`PERSONS_FILE` lists them: ``+PATH``
    (there) or ``-PATH`` (not there) for the vault's config, git's global and system ones
    and every file they include (:func:`.gitrun.config_includes`, a superset of what git
    reads), and ``*`` where an include is not read here."""
    todo = [os.path.join(vault_path, "config"), *git_config_files()]
    out: list[str] = []
    seen: set[str] = set()
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        if len(seen) >= WATCHED_MAX or "\n" in path:
            out.append("*")
            break
        seen.add(path)
        if not os.path.exists(path):
            out.append("-" + path)
            continue
        out.append("+" + path)
        more = config_includes(path)
        if more is None:
            out.append("*")
            break
        todo += more
    return out


def stale(at: int, lines: list[str]) -> bool:
    """Whether a lookup made at ``at`` (ns) of :data:`PERSONS_FILE`'s ``lines`` (what
    :func:`watched` listed) is out of date: a file listed there changed since (as new or
    newer), is gone, or has come."""
    for line in lines:
        if line == "*":
            return True
        path = line[1:]
        try:
            st = os.stat(path)
        except OSError:
            if line[:1] == "+":
                return True
            continue
        if line[:1] == "-" or st.st_mtime_ns >= at:
            return True
    return False


def _replace_link(target: str, path: str) -> None:
    tmp = f"{path}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
    os.symlink(target, tmp)
    try:
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def point(hooks_dir: str, vault_path: str, mountpoint: str, git_dir: str | None = None) -> str:
    """Point ``hooks_dir``'s :data:`PERSONS_LINK` at :func:`persons_dir` and write
    :data:`PERSONS_FILE` after it; the directory."""
    import time

    # (the file's time is the lookup's start: a config changed during the lookup is newer,
    # so looked up again; its own write's time hid it until the next change: the review)
    began = time.time_ns()
    files = watched(vault_path)  # (before the lookup: an include made during it is seen)
    chain = persons_dir(vault_path, mountpoint, git_dir)
    _replace_link(chain, os.path.join(hooks_dir, PERSONS_LINK))
    lines = [chain, vault_path, mountpoint, git_dir or "", *files]
    if not any("\n" in ln for ln in lines):  # (else none: the guards look up at each run)
        text = "".join(ln + "\n" for ln in lines)
        write_file(hooks_dir, PERSONS_FILE, text.encode("utf-8", "surrogateescape"))
        with contextlib.suppress(OSError):
            os.utime(os.path.join(hooks_dir, PERSONS_FILE), ns=(began, began))
    return chain


def refresh(own: str) -> bool:
    """Point the link of the mount whose own directory is ``own`` again where a config
    file git reads the person's hooks directory from, or one it includes, changed since
    :data:`PERSONS_FILE` was written (:func:`stale`: a few ``stat`` calls when none did).
    True where it was pointed again."""
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
    git_dir = lines[3] if len(lines) > 3 else ""
    files = [ln for ln in lines[4:] if ln]
    # (the files git reads by this process's environment too: the daemon's, as ever)
    known = {ln[1:] for ln in files}
    extra = [
        ("+" if os.path.exists(p) else "-") + p
        for p in (os.path.join(vault_path, "config"), *git_config_files())
        if p not in known
    ]
    if not stale(at, files + extra):
        return False
    point(hooks_dir, vault_path, mountpoint, git_dir or None)
    return True


def _wanted(gated: bool, name: str) -> str:
    return os.path.join("..", GATES_DIR, name) if gated else os.path.join(PERSONS_LINK, name)


def gate(own: str, gated: bool) -> None:
    """The :data:`GATES` of the mount whose own directory is ``own`` made links to its gate
    scripts (``gated``) or to the person's hooks, each replaced only where it names the other."""
    hooks_dir = os.path.join(own, "hooks")
    if not os.path.isdir(os.path.join(own, GATES_DIR)):
        return  # (a revision's mount: no hooks of its own)
    for name in GATES:
        path = os.path.join(hooks_dir, name)
        # (a mount made before a name was a gate has no script for it: a link to the person's)
        gated_here = gated and os.path.exists(os.path.join(own, GATES_DIR, name))
        want = _wanted(gated_here, name)
        try:
            if os.readlink(path) == want:
                continue
        except OSError:
            pass
        _replace_link(want, path)


def worktree_of(own: str) -> str | None:
    """The worktree git dir of the mount whose own directory is ``own`` (the fourth line of
    its :data:`PERSONS_FILE`), None for a mount without one (a revision's)."""
    try:
        with open(os.path.join(own, "hooks", PERSONS_FILE), "rb") as fh:
            lines = fh.read(1 << 16).decode("utf-8", "surrogateescape").split("\n")
    except OSError:
        return None
    return lines[3] if len(lines) > 3 and lines[3] else None


def fsmonitor_off(own: str) -> bool:
    """Whether git's fsmonitor is off for the worktree of the mount whose own directory is
    ``own``: its ``config.worktree`` (the stamp's fourth line names its git dir) names
    another ``core.fsmonitor`` than the mount's hook, or none (`git config --worktree
    core.fsmonitor false`, ``--unset``). Read by git as data (``--no-includes``): a
    confined command can write that file, and what it says chooses only between avfs's
    own scripts."""
    git_dir = worktree_of(own)
    if git_dir is None:
        return False
    ours = os.path.join(own, "fsmonitor-hook")  # (ownfiles.HOOK_FILE, as worktree.py names it)
    try:
        with open(os.path.join(git_dir, "config.worktree"), "rb", opener=_nofollow) as fh:
            text = fh.read(1 << 20).decode("utf-8", "surrogateescape")
    except OSError:
        return True
    # (no git asked where the file says it plainly, as the mount and `git config` write it:
    # the daemon's watch answers as the next git command starts; git asked where it does not)
    named: list[str] = _FSMONITOR.findall(text)
    if "include" not in text.lower() and len(named) <= 1:
        if not named:
            return True  # (unset for the worktree: avfs's hook is not git's)
        value = str(named[0]).partition("=")[2].strip()
        if not any(c in value for c in "\"'\\#;"):
            return value != ours
    env = git_env()
    proc = run(
        [
            "config",
            "--file",
            os.path.join(git_dir, "config.worktree"),
            "--no-includes",
            "--get",
            "core.fsmonitor",
        ],
        env=env,
        check=False,
    )
    value = proc.stdout.decode("utf-8", "surrogateescape").strip() if proc.returncode == 0 else ""
    return value not in (ours, "'" + ours + "'")


# a line of a config file that sets ``fsmonitor`` (of any section: git is asked where it is
# not the one line the mount wrote)
_FSMONITOR = re.compile(r"^[ \t]*fsmonitor[ \t]*(?:=.*)?$", re.IGNORECASE | re.MULTILINE)


def _nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)

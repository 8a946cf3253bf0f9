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

**A fork's own settings** (:func:`fork_settings`: the one reader every setting of a fork
is asked of where they can differ from the vault's; the end-of-line pair here, the global
attribute file, the excludes file, who a commit is by). git matches ``[includeIf
"onbranch:PATTERN"]`` against the branch of the worktree it runs in: in a fork's mount
(and in a plain worktree on that branch) the fork's branch, where avfs's own readers ran
git (or libgit2) on the vault, whose HEAD is another branch: a setting included for one
fork only was missed (a checkpoint stored CRLF and ``$Id: ...$`` where ``git add`` in the
mount stores LF and ``$Id$``, the status listed a file the fork's excludes file ignores,
a checkpoint's author was not the one git names; found by gitmodel25, closed by
gitmodel26).

:func:`fork_settings` asks git once (``git config --list``) with ``GIT_DIR`` a git dir
that names the fork's branch as its ``HEAD`` and the vault as its ``commondir``: the
fork's mount's own worktree git dir while the fork is mounted on its branch
(``<vault>/worktrees/avfs-<fork>``, its ``config.worktree`` read as git there reads it),
else ``<vault>/avfs/forkconfig/worktrees/avfs-<fork>`` (avfs's, two files), and keeps the
answer by the stamps of every config file git reads and of every file they include, and
the environment's ``GIT_CONFIG_*``. Where no config file holds an ``includeIf`` at all
(most homes) it answers None at the cost of a few ``stat`` calls
(:func:`.gitrun.config_text`): the vault's reading is the fork's, and the callers read as
before.

``gitdir:`` and ``gitdir/i:`` conditions are matched by git against that directory
(gitmodel27; before, against a directory of this process's under ``/tmp``): in the mount's
own while mounted, as git in the mount matches them; unmounted, a condition naming the
vault or a directory above it (``gitdir:~/.avfs/``, ``gitdir:<vault>/``), or the
worktree's name (``gitdir:**/avfs-<fork>``), is met as in the mount, one naming the
mount's ``worktrees/`` directory itself is not (docs/fuse.md "gitmodel27").
"""

from __future__ import annotations

import os
import time

from .gitrun import (
    CONFIG_RECENT_NS,
    config_files,
    git_config_env,
    git_config_files,
    git_env,
    run,
)

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
    file holds an ``includeIf`` (:func:`fork_settings`: git in the fork's worktree
    matches ``onbranch:`` against the fork's branch, libgit2 on the vault against its
    HEAD); None where neither. A file an included one names is not watched here: a
    change there is seen when one of the config files, or the environment, changes (the
    fork's reader watches them all)."""
    fork = fork_settings(store_path, branch)
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


# -- a fork's settings (see the module's text) --------------------------------------------

# (vault, branch, environment, every file's stamp) -> git's settings, names lower-cased
_fork_kept: dict[tuple[object, ...], dict[str, str]] = {}
# (vault, branch) -> the directory git is pointed at (not the mount's); the temp dir's made
_dirs: dict[tuple[str, str], str] = {}
_tmp_dirs: list[str] = []


def live_git_dir(store_path: str, branch: str) -> str | None:
    """The worktree git dir of the fork's mount (``<vault>/worktrees/avfs-<fork>``: what
    git in the mount names with ``rev-parse --git-dir``) where it is there and its ``HEAD``
    names the fork's branch; else None."""
    from .names import fs_name
    from .refs import fork_ref

    d = os.path.join(store_path, "worktrees", "avfs-" + fs_name(branch, at=True))
    try:
        fd = os.open(os.path.join(d, "HEAD"), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        head = os.read(fd, 4096)
    finally:
        os.close(fd)
    return d if head == f"ref: {fork_ref(branch)}\n".encode() else None


def fork_git_dir(store_path: str, branch: str) -> str:
    """The git dir git reads the fork's config through as in a worktree on ``branch``: the
    fork's mount's own (:func:`live_git_dir`) while it is mounted on its branch, where git
    matches an ``includeIf "gitdir:"`` against the directory git in the mount matches it
    against (gitmodel27; its ``config.worktree`` read as git there reads it: the sandbox
    pins that file, its ``commondir`` and ``gitdir``, proxy/gitstate.py ``PINNED``); else a
    git dir of this process's whose ``HEAD`` is ``branch`` and whose ``commondir`` is the
    vault."""
    live = live_git_dir(store_path, branch)
    return live if live is not None else _own_git_dir(store_path, branch)


OWN_DIR = ("avfs", "forkconfig", "worktrees")  # under the vault: the forks' own git dirs


def _own_git_dir(store_path: str, branch: str) -> str:
    """A git dir whose ``HEAD`` is ``branch`` and whose ``commondir`` is the vault, at
    ``<vault>/avfs/forkconfig/worktrees/avfs-<fork>`` (avfs's state, shared by every process:
    its two files are the same for all), so that a ``gitdir:`` condition naming the vault
    (``gitdir:~/.avfs/``, ``gitdir:<vault>/``) or the worktree's name (``**/avfs-<fork>``)
    is met for an unmounted fork as in its mount (gitmodel27); where the vault's cannot be
    made, one under the temp dir for this user, vault and fork (:func:`_tmp_git_dir`,
    gitmodel28), else one of this process's."""
    import shutil  # (only where a config holds an includeIf: a cold status never runs it)
    import tempfile

    key = (store_path, branch)
    got = _dirs.get(key)
    if got is not None and (_mine(got) if got == _tmp_name(store_path, branch) else os.path.isdir(got)):
        return got  # (the temp dir's checked again: removed, another user may have made it since, review41)
    from .names import fs_name
    from .refs import fork_ref

    want = {"HEAD": f"ref: {fork_ref(branch)}\n", "commondir": os.path.abspath(store_path) + "\n"}
    parent = os.path.join(store_path, *OWN_DIR)
    d = os.path.join(parent, "avfs-" + fs_name(branch, at=True))
    try:
        if not _holds(d, want):
            os.makedirs(parent, exist_ok=True)
            new = tempfile.mkdtemp(prefix=".new-", dir=parent)
            _fill(new, want)
            shutil.rmtree(d, ignore_errors=True)  # (another's, older: the vault moved)
            try:
                os.rename(new, d)
            except OSError:  # (another process's came first)
                shutil.rmtree(new, ignore_errors=True)
            if not _holds(d, want):
                raise OSError("not made")
        if len(_dirs) >= _KEPT_MAX:
            _dirs.clear()
        _dirs[key] = d
        return d
    except OSError:
        pass
    shared = _tmp_git_dir(store_path, branch, want)
    if shared is not None:
        _dirs[key] = shared
        return shared
    d = tempfile.mkdtemp(prefix="avfs-forkconfig-")  # (this process's alone, removed at its exit)
    _fill(d, want)
    if len(_tmp_dirs) >= _KEPT_MAX:
        for old in _tmp_dirs:
            shutil.rmtree(old, ignore_errors=True)
        _tmp_dirs.clear()
    if not _tmp_dirs:
        import atexit

        atexit.register(_remove_dirs)  # (again after a clear: removing twice is harmless)
    _tmp_dirs.append(d)
    _dirs[key] = d
    return d


def drop_own_git_dir(store_path: str, branch: str) -> None:
    """Remove the fork's own git dir :func:`_own_git_dir` made under the vault (the fork is
    gone: nothing reads it; made again alike if the fork comes back)."""
    import shutil

    d = os.path.join(store_path, *OWN_DIR, "avfs-" + _fs_name(branch))
    for one in (d, _tmp_name(store_path, branch)):
        if os.path.isdir(one) and not os.path.islink(one):
            shutil.rmtree(one, ignore_errors=True)
    _dirs.pop((store_path, branch), None)


def _fs_name(branch: str) -> str:
    from .names import fs_name

    return fs_name(branch, at=True)


def _tmp_name(store_path: str, branch: str) -> str:
    """Where :func:`_tmp_git_dir` makes the fork's git dir: one name for this user, vault and fork."""
    import hashlib
    import tempfile

    key = hashlib.sha1(f"{os.path.abspath(store_path)}\0{branch}".encode("utf-8", "surrogateescape"))
    return os.path.join(tempfile.gettempdir(), f"avfs-forkconfig-{os.getuid()}-{key.hexdigest()[:20]}")


def _tmp_git_dir(store_path: str, branch: str, want: dict[str, str]) -> str | None:
    """The fork's git dir under the temp dir where the vault's cannot be made (a vault this
    user cannot write): one for this user, vault and fork (:func:`_tmp_name`), made by the
    first process and used by every later one, so that a process killed before its exit
    leaves no new one (gitmodel28: each process made its own and removed it at its exit: a
    killed daemon's stayed). None where that directory is not this user's alone (a
    directory, not a link, owned by this user, mode 0700): the caller makes one of its own."""
    d = _tmp_name(store_path, branch)
    try:
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
        if not _mine(d):
            return None
        if not _holds(d, want):
            for name, text in want.items():  # (whole files by a rename: another process reads them)
                tmp = os.path.join(d, f".{name}.{os.getpid()}")
                with open(tmp, "w") as fh:
                    fh.write(text)
                os.replace(tmp, os.path.join(d, name))
        return d if _holds(d, want) else None
    except OSError:
        return None


def _mine(d: str) -> bool:
    """Whether ``d`` is a directory (not a link) of this user's alone (mode 0700 or less)."""
    import stat

    try:
        st = os.lstat(d)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def _fill(d: str, want: dict[str, str]) -> None:
    for name, text in want.items():
        with open(os.path.join(d, name), "w") as fh:
            fh.write(text)


def _holds(d: str, want: dict[str, str]) -> bool:
    """Whether the directory ``d`` holds the files ``want`` names, each as it says."""
    for name, text in want.items():
        try:
            fd = os.open(os.path.join(d, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            if os.read(fd, 4097) != text.encode("utf-8", "surrogateescape"):
                return False
        finally:
            os.close(fd)
    return True


def _remove_dirs() -> None:
    import shutil

    for d in _tmp_dirs:
        shutil.rmtree(d, ignore_errors=True)


def fork_settings(store_path: str, branch: str | None) -> dict[str, str] | None:
    """Every setting git in a worktree of the vault at ``store_path`` on ``branch`` reads
    (its name lower-cased -> its last value; a key without ``=`` is ``"true"``, as git's
    boolean reads it), where a config file holds an ``includeIf`` (its answer may be the
    fork's own); None where none does, or ``branch`` is None: the vault's reading holds."""
    if branch is None:
        return None
    files, conditional = config_files(store_path)
    if not conditional:
        return None
    env_cfg = git_config_env()
    live = live_git_dir(store_path, branch)
    git_dir = live if live is not None else _own_git_dir(store_path, branch)
    if live is not None:  # (the mount's: git reads its config.worktree; HEAD may move off the fork)
        files = [*files, os.path.join(live, "HEAD"), os.path.join(live, "config.worktree")]
    stamps = tuple((p, _stamp(p)) for p in files)
    key = (store_path, branch, git_dir, tuple(sorted(env_cfg.items())), stamps)
    hit = _fork_kept.get(key)
    if hit is not None:
        return hit
    env = {**git_env(), **env_cfg, "GIT_DIR": git_dir}
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
        if len(_fork_kept) >= _KEPT_MAX:
            _fork_kept.clear()
        _fork_kept[key] = values
    return values

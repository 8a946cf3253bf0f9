"""Running the git command as a subprocess, in one place: the environment it gets (no
``GIT_*`` of the caller's leaks into vault work, never a terminal prompt), what a missing
git or a failed command becomes (:class:`InternalError` with git's own message), and the
three shapes avfs needs: :func:`run` (wait for it; bytes or text), :func:`run_git` (its
output as text, raising on failure) and :func:`spawn` (a stream: ``fast-import``, a
transfer's progress).

Beside them, the config files git reads (:func:`git_config_files`) and their text as a
process last read it, kept by their ``stat`` (:func:`config_text`).

Remotes add their credentials and ssh settings to the environment (``transport.transport``);
the mounted worktree's index is rebuilt with an environment of its own (``worktree.py``).

A leaf of core (it imports only ``errors``), so that every module that runs git can import
it at the top without joining an import cycle through ``home``."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Literal, overload

from ..errors import AvfsError, InternalError, ObjectUnreadableError

if TYPE_CHECKING:
    import subprocess  # imported where git runs: `avfs status` never starts git

__all__ = [
    "config_files",
    "config_includes",
    "config_stamps",
    "config_text",
    "git_config_env",
    "git_config_files",
    "git_env",
    "keep_config",
    "kept_config",
    "run",
    "run_git",
    "spawn",
]

# options of git itself that take a value (what comes before the subcommand)
_VALUED = ("-C", "-c", "--git-dir", "--work-tree")


def git_env() -> dict[str, str]:
    """Environment for git subprocesses: no GIT_* from the caller leaks into vault work."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


# what git reads its config from beside the files themselves: where they are and settings
# given on its command line (``git -c`` passes them on in GIT_CONFIG_PARAMETERS); kept for
# ``git config`` when the rest of the caller's GIT_* is not (:func:`git_env`)
_CONFIG_ENV = re.compile(r"GIT_CONFIG_(GLOBAL|SYSTEM|NOSYSTEM|PARAMETERS|COUNT|KEY_\d+|VALUE_\d+)")


def git_config_env() -> dict[str, str]:
    """The caller's GIT_* that say which config git reads (see ``_CONFIG_ENV``)."""
    return {k: v for k, v in os.environ.items() if k.startswith("GIT_CONFIG_") and _CONFIG_ENV.fullmatch(k)}


def git_config_files(env: Mapping[str, str] | None = None) -> list[str]:
    """The config files git reads beside a repository's own (config.c): ``$GIT_CONFIG_SYSTEM``
    or /etc/gitconfig; ``$GIT_CONFIG_GLOBAL``, or ``$XDG_CONFIG_HOME/git/config``
    (``~/.config/git/config``) and ``~/.gitconfig``. (Not the files those include.)
    ``env``: the environment git runs with (default: this process's; avfs's own git
    processes run with :func:`git_env`, where no ``GIT_CONFIG_*`` is left)."""
    env = os.environ if env is None else env
    home = env.get("HOME", "")
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    paths = [env.get("GIT_CONFIG_SYSTEM") or "/etc/gitconfig"]
    if env.get("GIT_CONFIG_GLOBAL"):
        paths.append(env["GIT_CONFIG_GLOBAL"])
    else:
        paths += [os.path.join(xdg, "git", "config"), os.path.join(home, ".gitconfig")]
    return paths


# the config files :func:`config_text` read: path -> ((inode, size, mtime, ctime), its text)
_config_kept: dict[str, tuple[tuple[int, int, int, int], bytes]] = {}
CONFIG_RECENT_NS = 1_000_000_000  # a file whose last change is this recent is not kept
CONFIG_KEPT_MAX = 256  # files kept (a daemon or server of a home with many vaults)
CONFIG_READ_MAX = 1 << 20  # bytes of a file looked at


def config_text(path: str) -> bytes | None:
    """The first :data:`CONFIG_READ_MAX` bytes of the config file at ``path`` in lower case
    (None when it cannot be read), kept by this process under its ``stat``: what
    ``wsattrs.autocrlf`` looks for in the vault's config and git's global and system ones on
    every status, capture and base a mount shows. An open costs ~15-20 µs here, four of them
    75-100 µs a look, a ``stat`` of the four ~7 µs.

    Read again when the stamp moves: a rename over the file (git's and libgit2's lock
    file: another inode), a write (mtime, ctime, size), a ``touch`` or ``utime`` (ctime).
    What a stamp cannot tell is two writes of the same size within one tick of the file
    system's clock (Linux stamps files from a clock that moves every few ms): a file changed
    less than :data:`CONFIG_RECENT_NS` before it was read is read again at every look until
    it is older (git's "racy" index entries, by the same rule)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    kept = _config_kept.get(path)
    if kept is not None and kept[0] == (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns):
        return kept[1]
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())  # (the file read: a rename since the stat above)
            text = fh.read(CONFIG_READ_MAX).lower()
    except OSError:
        return None
    # (a change after the fstat moves the stamp: the next look reads again)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) >= CONFIG_RECENT_NS:
        if len(_config_kept) >= CONFIG_KEPT_MAX:
            _config_kept.clear()
        _config_kept[path] = ((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns), text)
    else:
        _config_kept.pop(path, None)
    return text


_SECTION = re.compile(rb"^\s*\[\s*([^\]\s]+)")
_INCLUDE_PATH = re.compile(rb"^\s*path\s*=\s*(.*?)\s*$", re.IGNORECASE)


def config_includes(path: str) -> list[str] | None:
    """The files the config file at ``path`` includes (``path =`` of its ``[include]`` and
    ``[includeIf ...]`` sections, whatever their condition: a superset of what git reads),
    as git resolves them: ``~/`` from ``$HOME``, else relative to the including file's
    directory; None when a value is not read here (quoted with escapes, a comment after
    it): the caller then asks git or libgit2, which follow them. Kept by the file's stat,
    as :func:`config_text` keeps its text (a status asks on every look)."""
    where = (path, os.environ.get("HOME", ""))  # (``~/`` is $HOME's)
    try:
        st = os.stat(path)
        kept = _includes_kept.get(where)
        if kept is not None and kept[0] == (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns):
            return kept[1]
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())  # (the file read: a rename since the stat above)
            text = fh.read(CONFIG_READ_MAX)
    except OSError:
        return []
    found = _includes_in(text, path)
    # (a change after the fstat moves the stamp: the next look reads again)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) >= CONFIG_RECENT_NS:
        if len(_includes_kept) >= CONFIG_KEPT_MAX:
            _includes_kept.clear()
        _includes_kept[where] = ((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns), found)
    return found


# the includes :func:`config_includes` found: (path, $HOME) -> ((inode, size, mtime, ctime), them)
_includes_kept: dict[tuple[str, str], tuple[tuple[int, int, int, int], list[str] | None]] = {}


def _includes_in(text: bytes, path: str) -> list[str] | None:
    if b"include" not in text.lower():
        return []
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        sec = _SECTION.match(line)
        if sec is not None:
            inside = sec.group(1).lower() in (b"include", b"includeif")
            line = line[line.index(b"]") + 1 :] if b"]" in line else b""
        m = _INCLUDE_PATH.match(line) if inside else None
        if m is None:
            continue
        value = m.group(1)
        if value[:1] == b'"' and value[-1:] == b'"' and len(value) > 1:
            value = value[1:-1]
        if not value or any(c in value for c in b'"\\#;'):
            return None
        out.append(os.path.join(os.path.dirname(path), git_user_path(os.fsdecode(value))))
    return out


def git_xdg_file(name: str) -> str | None:
    """git's default file ``name`` of its XDG directory (``$XDG_CONFIG_HOME/git/NAME``,
    else ``~/.config/git/NAME``), None without either variable."""
    home = os.environ.get("HOME", "")
    xdg = os.environ.get("XDG_CONFIG_HOME") or (os.path.join(home, ".config") if home else "")
    return os.path.join(xdg, "git", name) if xdg else None


def git_user_path(name: str) -> str:
    """A path of git's config as git reads it: ``~/`` (and ``~user/``) expanded from
    ``$HOME`` (the user's entry), anything else as it is."""
    return os.path.expanduser(name)


def git_attr_nosystem() -> bool:
    """Whether ``$GIT_ATTR_NOSYSTEM`` tells git not to read its system attribute file."""
    from .configtext import git_bool  # (git_env_bool: a number is true unless 0)

    return bool(git_bool(os.environ.get("GIT_ATTR_NOSYSTEM", "")))


def _argv(args: Sequence[str], git_dir: str | None) -> list[str]:
    return ["git", *(("--git-dir", git_dir) if git_dir is not None else ()), *args]


def _subcommand(args: Sequence[str]) -> str:
    """The git command ``args`` runs (``fetch`` in ``-C dir fetch -q``), for messages."""
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a in _VALUED:
            skip = True
        elif not a.startswith("-"):
            return a
    return args[0] if args else "git"


@overload
def run(
    args: Sequence[str],
    *,
    git_dir: str | None = ...,
    cwd: str | None = ...,
    input: bytes | None = ...,
    env: Mapping[str, str] | None = ...,
    check: bool = ...,
    ok: Sequence[int] = ...,
    details: Mapping[str, Any] | None = ...,
    text: Literal[False] = ...,
    timeout: float | None = ...,
    pass_fds: Sequence[int] = ...,
) -> subprocess.CompletedProcess[bytes]: ...


@overload
def run(
    args: Sequence[str],
    *,
    git_dir: str | None = ...,
    cwd: str | None = ...,
    input: str | None = ...,
    env: Mapping[str, str] | None = ...,
    check: bool = ...,
    ok: Sequence[int] = ...,
    details: Mapping[str, Any] | None = ...,
    text: Literal[True],
    timeout: float | None = ...,
    pass_fds: Sequence[int] = ...,
) -> subprocess.CompletedProcess[str]: ...


def run(
    args: Sequence[str],
    *,
    git_dir: str | None = None,
    cwd: str | None = None,
    input: bytes | str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    ok: Sequence[int] = (0,),
    details: Mapping[str, Any] | None = None,
    text: bool = False,
    timeout: float | None = None,
    pass_fds: Sequence[int] = (),
) -> subprocess.CompletedProcess[Any]:
    """Run ``git [--git-dir GIT_DIR] ARGS`` and wait for it.

    Args:
        args: git's arguments.
        git_dir: the repository (``--git-dir``), when the arguments do not say.
        cwd: where it runs.
        input: what it reads on stdin.
        env: its environment (default :func:`git_env`).
        check: raise when it exits with a status not in ``ok``.
        ok: the exit statuses that are not a failure (``check-ignore``'s 1: nothing ignored).
        details: facts for the error's ``details`` beside ``args``.
        text: output (and input) as text, not bytes.
        timeout: seconds git may take; past them git and everything it started (its own
            session) are killed and :class:`subprocess.TimeoutExpired` is raised.

    Raises:
        InternalError: git is not installed; or, with ``check``, it failed (its message).
        subprocess.TimeoutExpired: ``timeout`` passed (the caller says what timed out).
    """
    import subprocess

    argv = _argv(args, git_dir)
    if timeout is not None:
        return _run_bounded(argv, cwd, input, env, text, timeout, check, ok, args, details, pass_fds)
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            input=input,
            capture_output=True,
            env=dict(env) if env is not None else git_env(),
            text=text,
            check=False,
            pass_fds=tuple(pass_fds),
        )
    except FileNotFoundError as exc:
        raise InternalError("the git command is not installed", hint="install git") from exc
    if check and proc.returncode not in ok:
        err = proc.stderr if text else proc.stderr.decode(errors="replace")
        raise failed(args, err, details)
    return proc


def _run_bounded(
    argv: list[str],
    cwd: str | None,
    input: bytes | str | None,
    env: Mapping[str, str] | None,
    text: bool,
    timeout: float,
    check: bool,
    ok: Sequence[int],
    args: Sequence[str],
    details: Mapping[str, Any] | None,
    pass_fds: Sequence[int] = (),
) -> subprocess.CompletedProcess[Any]:
    """:func:`run` with a deadline: git runs in a session of its own, so that on timeout
    the processes it started (a remote helper, ssh) die with it and nothing keeps its
    pipes open (``subprocess.run``'s timeout kills git alone, then waits on the pipes)."""
    import signal
    import subprocess

    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else git_env(),
            text=text,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    except FileNotFoundError as exc:
        raise InternalError("the git command is not installed", hint="install git") from exc
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise
    done = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    if check and proc.returncode not in ok:
        raise failed(args, err if text else err.decode(errors="replace"), details)
    return done


# what git says when an object of the vault cannot be read (a zeroed or cut loose file, a pack
# cut short or disagreeing with its index, a tree a commit names gone), the object's id following
_UNREADABLE = re.compile(
    r"(?:unable to (?:unpack|read(?: tree)?|parse(?: object)?)|could not read(?: object)?|bad object|"
    # (`git grep`: "packed object ID (stored in PACK) is corrupt": was exit 70, internal)
    r"packed object|"
    r"missing (?:blob|tree|commit)(?: object)?|loose object|corrupt(?:ed)?(?: (?:object|packed object) (?:for )?)?)"
    r"[ :]*'?([0-9a-f]{40})\b",
    re.IGNORECASE,
)


def failed(args: Sequence[str], err: str, details: Mapping[str, Any] | None = None) -> AvfsError:
    """The error of a git command that failed with ``err`` on stderr: ``object_unreadable``
    naming the object when git could not read one of the vault's (as every reader of avfs
    says it), else :class:`InternalError` with git's own message."""
    facts = {"args": list(args), **(details or {})}
    hit = _UNREADABLE.search(err)
    if hit is not None:
        oid = hit.group(1).lower()
        return ObjectUnreadableError(
            f"object {oid} cannot be read: git {_subcommand(args)}: {err.strip()}",
            hint="run `avfs doctor --full` to list every unreadable object; restore them from a clone or remote",
            details={"oid": oid, **facts},
        )
    return InternalError(f"git {_subcommand(args)} failed: {err.strip()}", details=facts)


def run_git(args: list[str], *, cwd: str | None = None, input: bytes | None = None) -> str:
    """git's output as text (undecodable bytes kept as surrogates); raises on failure."""
    return run(args, cwd=cwd, input=input).stdout.decode("utf-8", "surrogateescape")


def spawn(
    args: Sequence[str],
    *,
    git_dir: str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: int | IO[Any] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    bufsize: int = -1,
    pass_fds: Sequence[int] = (),
    new_session: bool = False,
    cwd: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``git [--git-dir GIT_DIR] ARGS`` without waiting (a stream in or out), in
    ``cwd`` when given; ``new_session``: in a session of its own, so that the processes it
    starts can be killed with it (its process group).

    Raises:
        InternalError: git is not installed.
    """
    import subprocess

    try:
        return subprocess.Popen(
            _argv(args, git_dir),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=dict(env) if env is not None else git_env(),
            bufsize=bufsize,
            pass_fds=tuple(pass_fds),
            start_new_session=new_session,
            cwd=cwd,
        )
    except FileNotFoundError as exc:
        raise InternalError("the git command is not installed", hint="install git") from exc


def git_identity(env: dict[str, str]) -> bytes | None:
    """The ``git`` that :func:`run` starts with ``env``: its path and stamp (None
    when there is none: then nothing is kept, and git is asked, to fail as it does).
    Looked up at every call (~50 µs): a git put earlier on ``PATH`` is another git."""
    import shutil  # (only where asked)

    found = shutil.which("git", path=env.get("PATH", os.defpath))
    if found is None:
        return None
    try:
        real = os.path.realpath(found)
        st = os.stat(real)
    except OSError:
        return None
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return f"{real}\0{stamp}".encode("utf-8", "surrogateescape")


FOLLOWED_MAX = 32  # config files followed through includes (git: 10 levels deep)


def config_files(store_path: str) -> tuple[list[str], bool]:
    """The config files git reads for the vault and every file they include (a superset:
    :func:`config_includes`), and whether one of them holds an ``includeIf`` (or
    an include was not followed here: git is asked then)."""
    todo = [os.path.join(store_path, "config"), *git_config_files()]
    seen: list[str] = []
    conditional = False
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        if len(seen) >= FOLLOWED_MAX:
            return seen, True
        seen.append(path)
        text = config_text(path)
        if text is None or b"include" not in text:
            continue
        conditional = conditional or b"includeif" in text
        more = config_includes(path)
        if more is None:
            return seen, True
        todo += more
    return seen, conditional


# -- git's config answers kept for the next process --------------------------------------
# What a process that has not loaded libgit2 asked ``git config`` of the vault, kept beside
# the vault for the next process (h-gitspawn1): who a commit is by (:data:`IDENTITY_FILE`:
# a cold ``avfs checkpoint save``, ``vault create``, a first ``proxy exec`` that mounts,
# :meth:`.gitwrite.StoreWrites._identity_config`), and whether the vault turns on
# ``extensions.worktreeConfig`` (:data:`WORKTREE_CONFIG_FILE`: a mount's daemon started
# cold, :func:`.vaultconfig.worktree_config_enabled`). Each such command started a git of
# its own for it. Kept in ``<vault>/avfs/`` by the stamps (inode, size, mtime, ctime) of
# every file git reads for it -- the vault's config and ``config.worktree``, the system and
# global files, and every file they include, followed as :func:`config_files` follows them
# (a superset) -- and the environment's ``GIT_CONFIG_*``: a later process whose stamps are
# the same takes the answer; any other difference asks git again. Not kept where a file
# holds an ``includeIf`` or an include is not followed here (the answer may then depend on
# more: the fork's branch, :func:`.lineconfig.fork_settings`), nor while a file's last change is under
# :data:`CONFIG_RECENT_NS` old (a second write within its clock's tick would leave
# its stamp unchanged). The files are avfs's own (the vault's ``avfs/`` directory, which no
# confined command can write); anything in one that is not what was written is a miss.

IDENTITY_FILE = "identity-config"
WORKTREE_CONFIG_FILE = "worktree-config"
_KEPT_READ_MAX = 1 << 16


def config_stamps(store_path: str) -> list[list[str | int]] | None:
    """The key an answer of git's config for the vault at ``store_path`` is kept by, or
    None where none is kept (an ``includeIf``, an include not followed, one the
    environment's ``GIT_CONFIG_*`` give)."""
    files, conditional = config_files(store_path)
    env = git_config_env()
    if conditional or any("include" in v.lower() for v in env.values()):
        # (an include ``GIT_CONFIG_PARAMETERS`` or ``GIT_CONFIG_KEY_n`` give: the key would
        # hold the variable, never the included file's stamp: review39)
        return None
    out: list[list[str | int]] = []
    for path in [*files, os.path.join(store_path, "config.worktree")]:
        try:
            st = os.stat(path)
        except OSError:
            out.append([path])
            continue
        out.append([path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
    out += [[f"{k}={v}"] for k, v in sorted(env.items())]
    return out


def kept_config(store_path: str, name: str, key: list[list[str | int]]) -> dict[str, str | None] | None:
    """The answer kept as ``name`` under ``key``, or None (none kept, another key,
    unreadable, not what avfs writes)."""
    import json  # (only where one is asked: a status loads this module too)

    try:
        with open(os.path.join(store_path, "avfs", name), "rb") as fh:
            doc = json.loads(fh.read(_KEPT_READ_MAX))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key:
        return None
    values = doc.get("values")
    if not isinstance(values, dict) or not all(v is None or isinstance(v, str) for v in values.values()):
        return None
    return {str(k): v for k, v in values.items()}


def keep_config(
    store_path: str, name: str, key: list[list[str | int]], values: dict[str, str] | dict[str, str | None]
) -> None:
    """Keep ``values`` as ``name`` under ``key`` (replaced whole by a rename; nothing where
    the vault has no ``avfs/`` directory yet, or a file changed too recently)."""
    import json

    now = time.time_ns()
    if any(len(k) == 5 and now - max(int(k[3]), int(k[4])) < CONFIG_RECENT_NS for k in key):
        return
    keep_file(
        os.path.join(store_path, "avfs"), name, json.dumps({"key": key, "values": values}).encode("ascii")
    )


def keep_file(where: str, name: str, data: bytes) -> None:
    """Put ``data`` at ``where/name``, replaced whole by a rename (a reader finds the old
    file or the new one), as a kept answer: nothing where it cannot be written."""
    tmp = os.path.join(where, f".{name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(where, name))
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass

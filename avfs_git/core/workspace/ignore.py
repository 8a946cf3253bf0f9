"""Which paths git ignores, decided by git itself (one implementation for every caller).

Status, checkpoints, ``proxy exec``'s changes, ``apply``, ``export`` and imports all ask
here. The matching is git's own, never a re-implementation: ``git check-ignore --no-index
--stdin -z`` with ``GIT_DIR`` the vault (so its ``info/exclude`` and ``core.excludesFile``
apply, and the user's global excludes file, as git reads them) and a scratch work tree that
holds only the ``.gitignore`` files on the asked paths' directories, copied byte for byte
from the workspace view (a workspace has no checkout on disk: its base tree is in git
objects, its changes in the overlay). git therefore applies its precedence, negation,
directory patterns, invalid lines, CRLF and a UTF-8 BOM exactly as in a checkout. Importing
a real directory asks ``git ls-files --exclude-standard`` (:func:`list_files`), the same
matching on files that are on disk.

Cost: only new paths are asked about (a path of the base tree is tracked and never
ignored, as in git); nothing is run when no ``.gitignore`` lies on their directories and
neither exclude file has a pattern; otherwise one ``git`` process per question (the
workspace asks about new top directories, then about the files outside the ignored ones)
for the paths not already answered. Answers are kept per (``.gitignore`` contents on the path's
directories, global excludes, path), so a venv's thousands of ignored files are asked
about once per process (one fork's answer is every fork's of the vault where the
``.gitignore`` files are committed blobs: ``_shared``), and on disk in the vault's state (:mod:`.ignorekept`, under a key
of everything git's answer depends on), so a later process does not ask them again.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from ..errors import IgnoreTooSlowError, InternalError
from ..store.digests import sha1
from ..store.lineconfig import fork_git_dir, fork_settings
from ..store.names import ancestors_of_all, join, parent_of
from .ignorekept import KeptAnswers, config_key, content_key, question_base, question_key

GITIGNORE = ".gitignore"
# a directory's .gitignore as the workspace shows it: (a key that changes with its bytes,
# how to read them), or None when there is none (or it is not a regular file: git does not
# follow a symlinked .gitignore inside the tree)
Source = Callable[[str], tuple[str, Callable[[], bytes]] | None]
# git skips a pattern file of this size or more (dir.c ``PATTERN_MAX_FILE_SIZE``, newer
# git; 2.39 still reads it whole): so does avfs, as if it were empty, and never reads it
# (found in the twenty-seventh round, NAME=attack18: a confined command's sparse 1 GiB
# ``.gitignore`` took the mount's daemon from 29 MB to 1,057 MB in the exec's commit, one
# copy in memory per reader; the bytes quota, 10 GiB by default, was the only bound)
MAX_PATTERN_FILE = 100 << 20
_CACHE_MAX = 500_000
# how long one git asked about ignored paths may take is bounded (``$AVFS_IGNORE_WAIT``,
# settings.ignore_wait_s, 30 s by default): git's wildmatch backtracks over every way a
# pattern's ``**/`` segments can share a deep path's directories (2.39 here; 2.41's fix,
# 1f2e05f0b7, leaves ``**/`` x30 past a minute on a path 30 deep), so a confined command's
# one-line ``.gitignore`` held the exec's commit 234 s, the fork's exec lock with it
# (attack24). Past the bound git is killed and :class:`IgnoreTooSlowError` names the line.
# a question that timed out is answered by the same error, without git, for this long (the
# exec's record, its report of what stays and the fork's state ask it again in one call)
_SLOW_KEPT_S = 60.0
# paths this deep or deeper are asked without --verbose (git 2.39's crash is at 24)
_VERBOSE_DEPTH = 16
_slow: dict[tuple[object, ...], tuple[float, IgnoreTooSlowError]] = {}
_slow_lock = threading.Lock()
# answers whose ``.gitignore`` files are all named by their blob's id (their bytes), per
# vault: the same question for every fork of it, so one fork's answer is another's (a
# merge's source, a new fork holding the installed ``node_modules`` its source had, asked
# ``node_modules/`` anew through the kept answers' file: ~0.5 ms of a served merge; merge10).
# An overlay file's key names a file of one fork's overlay, not bytes: never shared
_shared: dict[str, dict[tuple[object, ...], bool]] = {}
_shared_lock = threading.Lock()
_HEX = frozenset("0123456789abcdef")


def _by_content(chain: tuple[object, ...]) -> bool:
    """Whether each ``.gitignore`` key of ``chain`` (dir, key, dir, key...) is a blob's id."""
    return all(isinstance(k, str) and len(k) in (40, 64) and _HEX.issuperset(k) for k in chain[1::2])


# while :func:`globals_kept` is entered: the vault's -> (git's environment, the globals' key,
# whether they hold a pattern), each vault's asked once (per thread and task: a context's own)
_kept_globals: contextvars.ContextVar[dict[str, tuple[dict[str, str], str, bool]] | None] = (
    contextvars.ContextVar("avfs_ignore_globals", default=None)
)


@contextlib.contextmanager
def globals_kept() -> Iterator[None]:
    """While it is entered, each vault's ignore globals (:meth:`IgnoreRules._globals`: the
    config git reads, ``info/exclude``, the user's excludes file, and git's environment) are
    read once, by every :class:`IgnoreRules` of the vault in this thread: an operation
    that asks which paths git ignores several times over (a merge into a fork an overlay
    mount left an upper layer in: both captures' checks, the writers held, the view moved,
    4-5 asks of ~0.3 ms each on minimist; h-merge6) takes the rules as they were when it
    first asked, as one ``git`` process would. Nested, the outermost keeps them; nothing is
    kept past its end (a change to them is seen by the next operation)."""
    if _kept_globals.get() is not None:
        yield
        return
    token = _kept_globals.set({})
    try:
        yield
    finally:
        _kept_globals.reset(token)


def _has_pattern(data: bytes) -> bool:
    """True when exclude-file bytes hold a line git could match (not blank, not a comment)."""
    for line in data.splitlines():
        line = line.strip().removeprefix(b"\xef\xbb\xbf")
        if line and not line.startswith(b"#"):
            return True
    return False


def bounded_pattern_file(fh: BinaryIO) -> bytes:
    """A ``.gitignore``'s bytes as newer git takes them: none when it is
    :data:`MAX_PATTERN_FILE` or more (its size asked first, so a sparse file of gigabytes
    is never read; one that grows meanwhile is read no further than the bound)."""
    if os.fstat(fh.fileno()).st_size >= MAX_PATTERN_FILE:
        return b""
    data = fh.read(MAX_PATTERN_FILE)
    return b"" if len(data) >= MAX_PATTERN_FILE else data


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def git_env() -> dict[str, str]:
    from ..store.gitrun import git_env as env

    return env()


def config_value(git_dir: str, key: str) -> str | None:
    """``key`` of ``git_dir``'s config as git reads it (the vault's, then the user's and the
    system's, includes followed), by ``git config``; None when unset or unreadable.

    No git process when no config file git reads names the key or an include (keys are
    case-insensitive; GIT_CONFIG_* are not passed to avfs's git processes): the common
    case costs a few small reads instead of ~5 ms."""
    env = git_env()
    home = env.get("HOME", "")
    xdg = env.get("XDG_CONFIG_HOME") or (os.path.join(home, ".config") if home else "")
    files = [os.path.join(git_dir, "config"), "/etc/gitconfig"]
    if xdg:
        files.append(os.path.join(xdg, "git", "config"))
    if home:
        files.append(os.path.join(home, ".gitconfig"))
    name = key.rpartition(".")[2].lower().encode()
    texts = [_read(f) for f in files]
    if not any(t is not None and (name in t.lower() or b"include" in t.lower()) for t in texts):
        return None
    from ..store.gitrun import run

    try:
        proc = run(["config", "--get", key], git_dir=git_dir, check=False)
    except (OSError, InternalError):  # git cannot be run: no value then
        return None
    value = proc.stdout.decode("utf-8", "surrogateescape").rstrip("\n")
    return value if proc.returncode == 0 and value else None


def user_excludes_file(config_value: str | None, env: dict[str, str]) -> str | None:
    """The global excludes file git reads: ``core.excludesFile`` (``~`` expanded), else
    ``$XDG_CONFIG_HOME/git/ignore`` or ``~/.config/git/ignore`` (git's default)."""
    home = env.get("HOME", "")
    if config_value:
        if config_value == "~" or config_value.startswith("~/"):
            return home + config_value[1:] if home else None
        return config_value
    xdg = env.get("XDG_CONFIG_HOME")
    if xdg:
        return os.path.join(xdg, "git", "ignore")
    return os.path.join(home, ".config", "git", "ignore") if home else None


class IgnoreRules:
    """git's ignore rules for one vault's workspaces (thread-safe; answers are cached).

    Args:
        git_dir: the vault (its ``info/exclude`` and config apply).
        excludes_setting: reads ``core.excludesFile`` as git would see it (vault config,
            then the user's); None when unset.
        branch: the fork's, whose config git in its worktree reads (``includeIf
            "onbranch:"``: git is run through :func:`.lineconfig.fork_git_dir` where a
            config holds one; before gitmodel26 a fork's own excludes file went unread).
    """

    def __init__(
        self,
        git_dir: str,
        excludes_setting: Callable[[], str | None],
        kept: str | None = None,
        branch: str | None = None,
    ) -> None:
        self.git_dir = git_dir
        self.branch = branch
        self._excludes_setting = excludes_setting
        self._cache: dict[tuple[object, ...], bool] = {}
        self._lock = threading.Lock()
        # answers earlier processes were given (:mod:`.ignorekept`), asked before git
        self._kept = None if kept is None else KeptAnswers(kept)

    def _globals(self, env: dict[str, str]) -> tuple[str, bool]:
        """A key for the vault's info/exclude and the user's excludes file, and whether
        either holds a pattern."""
        h = sha1()
        # the config git reads (core.ignoreCase, core.excludesFile): a long-lived process
        # kept its first answers across a change of it (review10)
        h.update(config_key(self.git_dir, env)[0])
        active = False
        data = _read(os.path.join(self.git_dir, "info", "exclude"))
        if data is not None:
            h.update(data)
            active = _has_pattern(data)
        h.update(b"\0")
        path = user_excludes_file(self._excludes_setting(), env)
        if path is not None:
            data = _read(path)
            if data is not None:
                h.update(path.encode("utf-8", "surrogateescape") + b"\0" + data)
                active = active or _has_pattern(data)
        return h.hexdigest(), active

    def _env_globals(self) -> tuple[dict[str, str], str, bool]:
        """(git's environment, :meth:`_globals`), read once while :func:`globals_kept` is
        entered."""
        kept = _kept_globals.get()
        # (each fork's where a config holds an includeIf: its excludes file may be its own,
        # an includeIf onbranch; else the vault's, read once for every fork of a merge)
        where = self.git_dir
        if self.branch is not None:
            from ..store.lineconfig import fork_settings

            if fork_settings(self.git_dir, self.branch) is not None:
                where = f"{self.git_dir}\0{self.branch}"
        got = None if kept is None else kept.get(where)
        if got is None:
            env = git_env()
            got = (env, *self._globals(env))
            if kept is not None:
                kept[where] = got
        return got

    def ignored(self, files: Iterable[str], source: Source, dirs: Iterable[str] = ()) -> set[str]:
        """Which of ``files`` (files or symlinks) and ``dirs`` (directories) git ignores.

        Paths are normalised workspace paths that are not tracked (not in the base tree):
        tracked paths are never ignored and must not be asked about. A file below an
        ignored directory is ignored (git checks every leading directory as a directory);
        an ignored directory stands for everything below it. ``dirs`` exist as directories
        in the scratch tree while git is asked (git's answer depends on it, ``build/``).
        """
        queries = [(p, False) for p in files] + [(p, True) for p in dirs]
        if not queries:
            return set()
        # the .gitignore files on every asked path's directories, each read once
        chains: dict[str, tuple[str, ...]] = {}
        gitignores: dict[str, tuple[str, Callable[[], bytes]]] = {}

        def chain(d: str) -> tuple[str, ...]:
            # (a loop, not a recursion: a confined command's directory 1,000 levels deep
            # raised RecursionError in every checkpoint of the fork after it)
            pending: list[str] = []
            x: str | None = d
            while x is not None and x not in chains:
                pending.append(x)
                x = parent_of(x) if x else None
            up = chains[x] if x is not None else ()
            for y in reversed(pending):
                src = source(y)
                if src is not None:
                    # (read once: the on-disk key and git's scratch tree are of one set of
                    # bytes, even when the file is written between the two)
                    src = gitignores[y] = (src[0], _once(src[1]))
                    up = (*up, y, src[0])
                chains[y] = up
            return chains[d]

        keyed = [(p, is_dir, chain(parent_of(p))) for p, is_dir in queries]
        env, gkey, active = self._env_globals()
        if not gitignores and not active:
            return set()
        out: set[str] = set()
        todo: list[tuple[str, bool, tuple[object, ...]]] = []
        with self._lock, _shared_lock:
            shared = _shared.get(self.git_dir)
            for p, is_dir, ch in keyed:
                key = (gkey, ch, p, is_dir)
                hit = self._cache.get(key)
                if hit is None and shared is not None and _by_content(ch):
                    hit = shared.get(key)
                if hit is None:
                    todo.append((p, is_dir, key))
                elif hit:
                    out.add(p)
        if todo:
            known, asked = self._from_kept(todo, gitignores, env, gkey)
            out |= {p for p, _is_dir, k in todo if known.get(k)}
            todo = [t for t in todo if t[2] not in known]
            got: set[str] = set()
            if todo:
                got = self._ask_git(todo, gitignores, env, gkey)
                if asked:
                    assert self._kept is not None
                    self._kept.keep({asked[k]: p in got for p, _is_dir, k in todo if k in asked})
            with self._lock:
                if len(self._cache) + len(todo) + len(known) > _CACHE_MAX:
                    self._cache.clear()
                for p, _is_dir, k in todo:
                    self._cache[k] = p in got
                self._cache.update(known)
            self._share({k: p in got for p, _is_dir, k in todo}, known)
            out |= got
        return out

    def _share(self, *answers: dict[tuple[object, ...], bool]) -> None:
        """Keep ``answers`` for every fork of the vault where their key names each
        ``.gitignore`` by its bytes (see ``_shared``)."""
        with _shared_lock:
            shared = _shared.setdefault(self.git_dir, {})
            for got in answers:
                for k, hit in got.items():
                    ch = k[1]
                    if isinstance(ch, tuple) and _by_content(ch):
                        if len(shared) >= _CACHE_MAX:
                            shared.clear()
                        shared[k] = hit

    def _from_kept(
        self,
        todo: list[tuple[str, bool, tuple[object, ...]]],
        gitignores: dict[str, tuple[str, Callable[[], bytes]]],
        env: dict[str, str],
        gkey: str,
    ) -> tuple[dict[tuple[object, ...], bool], dict[tuple[object, ...], str]]:
        """(the answers of ``todo`` kept on disk by their in-process keys, the on-disk key
        of each question not answered there): nothing when none are kept."""
        if self._kept is None:
            return {}, {}
        base = question_base(self.git_dir, env, gkey)
        if base is None:
            return {}, {}
        chains: dict[tuple[object, ...], list[str]] = {}
        keys: dict[tuple[object, ...], str] = {}
        for p, is_dir, k in todo:
            ch = k[1]
            assert isinstance(ch, tuple)
            parts = chains.get(ch)
            if parts is None:
                parts = chains[ch] = [
                    str(x) if i % 2 == 0 else content_key(str(x), gitignores[str(ch[i - 1])][1])
                    for i, x in enumerate(ch)
                ]
            keys[k] = question_key(base, parts, p, is_dir)
        found = self._kept.lookup(keys.values())
        known = {k: found[q] for k, q in keys.items() if q in found}
        return known, {k: q for k, q in keys.items() if q not in found}

    def _ask_git(
        self,
        todo: list[tuple[str, bool, tuple[object, ...]]],
        gitignores: dict[str, tuple[str, Callable[[], bytes]]],
        env: dict[str, str],
        gkey: str = "",
    ) -> set[str]:
        """One ``git check-ignore`` over ``todo`` in a scratch work tree holding the
        ``.gitignore`` files and the asked directories, nothing else: git reads the
        ``.gitignore`` files of the paths' directories; a missing path is no directory, as a
        file is not.

        Raises:
            IgnoreTooSlowError: git took more than :func:`ignore_wait_s` (killed then), or
                did for the same rules less than :data:`_SLOW_KEPT_S` ago (not asked again).
        """
        import subprocess
        import tempfile
        import time

        needed = ancestors_of_all(p for p, _, _ in todo)
        slow_key = (self.git_dir, gkey, frozenset((d, gitignores[d][0]) for d in needed if d in gitignores))
        with _slow_lock:
            seen = _slow.get(slow_key)
            if seen is not None and time.monotonic() - seen[0] < _SLOW_KEPT_S:
                raise seen[1]
        from ..settings import ignore_wait_s

        wait = ignore_wait_s()
        scratch = tempfile.mkdtemp(prefix="avfs-ignore-")
        try:
            made: set[str] = {""}

            def mkdirs(d: str) -> None:
                pending: list[str] = []  # (a loop: a path 1,000 levels deep, attack5)
                while d not in made:
                    pending.append(d)
                    d = parent_of(d)
                for x in reversed(pending):
                    os.mkdir(_fs(scratch, x))
                    made.add(x)

            for p, is_dir, _ in todo:
                if is_dir:
                    mkdirs(p)
            for d in sorted(needed):
                src = gitignores.get(d)
                if src is None:
                    continue
                mkdirs(d)
                with open(_fs(scratch, join(d, GITIGNORE)), "wb") as fh:
                    fh.write(src[1]())
            stdin = b"".join(p.encode("utf-8", "surrogateescape") + b"\0" for p, _, _ in todo)
            from ..store.gitrun import run

            base = ["--work-tree", scratch, "check-ignore", "--no-index", "--stdin", "-z"]
            # every path answered with the pattern that decided it: a path whose last match
            # is a negation is not ignored (git before 2.27 printed it among the ignored
            # ones without --verbose)
            # git 2.39's --verbose dies of SIGSEGV on a matched path 24 directories deep or
            # more: where a path is that deep the plain form is asked at once (a crash left a
            # general protection line in the kernel's log at every ask; the lead, ci39)
            deep = any(p.count("/") >= _VERBOSE_DEPTH for p, _, _ in todo)
            verbose = [] if deep else ["--verbose", "--non-matching"]

            run_dir = self.git_dir
            if fork_settings(self.git_dir, self.branch) is not None:
                assert self.branch is not None
                run_dir = fork_git_dir(self.git_dir, self.branch)  # (its info/exclude: the vault's)

            def ask(args: list[str]) -> subprocess.CompletedProcess[bytes]:
                return run(
                    args, git_dir=run_dir, input=stdin, cwd=scratch, env=env, check=False, timeout=wait
                )

            try:
                proc = ask(base + verbose)
                if proc.returncode < 0 and verbose:
                    # git 2.39's --verbose dies of SIGSEGV on a matched path 24 directories
                    # deep or more (a `*.pyc` in a deep tree failed every status, internal):
                    # its plain answer lists exactly the ignored ones (git 2.27+)
                    proc, verbose = ask(base), []
            except subprocess.TimeoutExpired:
                error = _too_slow(wait, len(todo), self._sources(gitignores, needed, env))
                with _slow_lock:
                    for gone in [q for q, v in _slow.items() if time.monotonic() - v[0] >= _SLOW_KEPT_S]:
                        del _slow[gone]
                    _slow[slow_key] = (time.monotonic(), error)
                raise error from None
            if proc.returncode not in (0, 1):  # 1: none of them is ignored
                from ..store.gitrun import failed

                raise failed(base + verbose, proc.stderr.decode(errors="replace"), {"git_dir": self.git_dir})
            fields = proc.stdout.split(b"\0")
            if not verbose:
                return {f.decode("utf-8", "surrogateescape") for f in fields if f}
            out: set[str] = set()
            for k in range(0, len(fields) - 3, 4):
                source, _line, pattern, path = fields[k : k + 4]
                if source and not pattern.startswith(b"!"):
                    out.add(path.decode("utf-8", "surrogateescape"))
            return out
        finally:
            _remove_tree(scratch)

    def _sources(
        self,
        gitignores: dict[str, tuple[str, Callable[[], bytes]]],
        needed: Iterable[str],
        env: dict[str, str],
    ) -> list[tuple[str, bytes]]:
        """(a name the person knows, the bytes) of every pattern file git read."""
        out = [(join(d, GITIGNORE), gitignores[d][1]()) for d in sorted(needed) if d in gitignores]
        for path in (
            os.path.join(self.git_dir, "info", "exclude"),
            user_excludes_file(self._excludes_setting(), env),
        ):
            data = _read(path) if path is not None else None
            if data:
                out.append((path or "", data))
        return out


def _too_slow(wait: float, asked: int, sources: list[tuple[str, bytes]]) -> IgnoreTooSlowError:
    """The error of a ``git check-ignore`` killed past ``wait`` seconds, naming the pattern
    line of ``sources`` with the most ``**`` (what git's matcher backtracks over)."""
    best: tuple[int, str, int, str] | None = None
    for name, data in sources:
        for n, raw in enumerate(data.splitlines(), 1):
            line = raw.strip()
            stars = line.count(b"**")
            if stars and not line.startswith(b"#") and (best is None or stars > best[0]):
                best = (stars, name, n, raw.decode("utf-8", "replace")[:200])
    details: dict[str, object] = {"seconds": wait, "paths": asked}
    if best is None:
        where = "the ignore rules on their directories (" + ", ".join(n for n, _ in sources[:5]) + ")"
    else:
        where = f"line {best[2]} of {best[1]} ({best[3]!r}: {best[0]} `**`)"
        details.update(file=best[1], line=best[2], pattern=best[3])
    return IgnoreTooSlowError(
        f"git took more than {wait:g} s to say which of {asked} path(s) are ignored, and was stopped:"
        f" its matcher backtracks exponentially over {where} against deep paths; nothing was recorded",
        hint="the paths stay in the fork, uncheckpointed: edit or remove that line (in the fork's mount, or"
        " `avfs proxy exec --no-commit`), then retry; AVFS_IGNORE_WAIT sets the bound (seconds)",
        details=details,
    )


def _once(load: Callable[[], bytes]) -> Callable[[], bytes]:
    """``load``, called at most once: its bytes again after."""
    got: list[bytes] = []

    def again() -> bytes:
        if not got:
            got.append(load())
        return got[0]

    return again


def _remove_tree(root: str) -> None:
    """Remove avfs's own scratch tree ``root``, whatever its depth: ``shutil.rmtree`` goes
    one Python call deeper per level (RecursionError past ~900 levels)."""
    stack = [root]
    opened: set[str] = set()  # (listed once: a directory left behind is not listed forever)
    while stack:
        d = stack[-1]
        below: list[str] = []
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        below.append(e.path)
                    else:
                        os.unlink(e.path)
        except OSError:
            stack.pop()
            continue
        if below and d not in opened:
            opened.add(d)
            stack += below  # (this one again once they are gone)
            continue
        stack.pop()
        with contextlib.suppress(OSError):
            os.rmdir(d)


def _fs(root: str, rel: str) -> bytes:
    return os.path.join(os.fsencode(root), rel.encode("utf-8", "surrogateescape"))


def list_files(src: str, git_dir: str) -> list[str]:
    """The files of directory ``src`` that git does not ignore (``.gitignore`` at every
    level, ``git_dir``'s ``info/exclude``, ``core.excludesFile``): what an import takes.
    Tracked files of a checkout at ``src`` count even when ignored, as in git."""
    from ..store.gitrun import run_git

    out = run_git(
        ["--git-dir", git_dir, "--work-tree", src, "ls-files", "-o", "-c", "--exclude-standard", "-z"],
        cwd=src,
    )
    return sorted({p for p in out.split("\0") if p and not p.endswith("/")})


def list_checkout_files(src: str) -> list[str]:
    """Like :func:`list_files` for a git checkout at ``src``, with its own repository
    (tracked files, even ignored ones, and untracked files git does not ignore)."""
    from ..store.gitrun import run_git

    out = run_git(["-C", src, "ls-files", "-z", "-c", "-o", "--exclude-standard"])
    return sorted({p for p in out.split("\0") if p and not p.endswith("/")})

"""Making vaults: empty ones, and imports of a directory or a git checkout.

An import streams the files into ``git fast-import``, which writes one pack (no loose
objects: 100k loose objects alone cost ~20 s here) and deflates in its own process while
this one reads files, so both cores work. ``.gitignore`` rules are honoured (git's own
``ls-files --exclude-standard`` decides which files count, through :mod:`.ignore`, the one
place avfs asks git about ignore rules), unless asked not to.

A git checkout brings its history (a `git clone --bare` of its branches and tags, moved in:
refs packed, a shallow checkout's boundary kept, as :mod:`.cloning`); what is not
committed there (modified, deleted and untracked-not-ignored files) becomes uncheckpointed
changes of the fork that matches its checked-out branch.
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Protocol

from ..errors import (
    AlreadyExistsError,
    InternalError,
    InvalidNameError,
    InvalidPathError,
    PathNotFoundError,
    UsageError,
)
from ..store import names, refs
from ..store.gitrun import git_config_env, git_env, run
from ..store.gitstore import GitStore
from ..store.identity import Signatures, resolve
from ..store.odbdirect import write_empty_tree
from ..workspace import ignore

if TYPE_CHECKING:
    from ..types import Stat

Progress = Callable[[int, int | None, str], None]
_BIG = 64 << 20


def overlay_template_ahead(avfs_dir: str) -> threading.Thread:
    """Make the empty overlay database a new vault's forks copy (their state dirs are in
    the vault: the layers file system is off) on a thread, started now: a clone makes it
    while its fetch waits on the server, and the first mount copies it instead of making
    it (with its sync: 4-5 ms of `vault clone --lazy` + `mount` here). A failure only
    leaves it to that mount."""
    from ..workspace.overlayschema import make_overlay_template

    def make() -> None:
        try:
            make_overlay_template(avfs_dir)
        except Exception:  # (the mount makes it)
            pass

    t = threading.Thread(target=make, name="avfs-overlay-template", daemon=True)
    t.start()
    return t


def move_into_place(tmp: str, final: str, name: str) -> None:
    """Publish a vault built in ``tmp`` (one rename: a vault exists whole or not at all)."""
    try:
        os.rename(tmp, final)
    except OSError as exc:
        if os.path.exists(final):
            raise AlreadyExistsError(f"vault {name!r} already exists") from exc
        raise


def init_vault(path: str, *, config: str = "", worktree_config: bool = False) -> None:
    """Initialise a bare repository with avfs' settings (reflogs on for every ref), and
    ``config`` (whole sections: a clone's ``origin``) in its config.

    Made as ``git init --bare --template=`` makes one (:mod:`.initbare`: its files, no git
    process; before it `git init` itself, 3-5 ms), not by libgit2: loading pygit2 costs a
    process that has not 100-200 ms here, and a lazy clone needs it for nothing else
    (docs/scale.md). No template (a user's ``init.templateDir`` would bring its hooks into
    every vault), SHA-1 whatever the user's default, HEAD on ``main``; the layout libgit2
    makes (``hooks/``, ``info/``). The settings are written into that config in one write
    (:mod:`.configtext`: no git process a key); ``worktree_config``: with
    ``extensions.worktreeConfig`` on, as the first mount would set it."""
    from ..store import configtext
    from ..store.initbare import init_bare

    init_bare(path, refs.fork_ref("main"))
    configtext.append_new_vault(
        path, "[core]\n\tlogAllRefUpdates = always\n" + config, worktree_config=worktree_config
    )
    for d in ("hooks", "info"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    # avfs keeps its own state beside git's; make sure git never packs or prunes it away
    os.makedirs(os.path.join(path, "avfs"), exist_ok=True)
    with open(os.path.join(path, "description"), "w", encoding="utf-8") as fh:
        fh.write("avfs vault\n")


def initial_commit(path: str, vault_name: str, author: Signatures | None) -> str:
    store = GitStore(path)
    tree = write_empty_tree(store)
    commit = store.create_commit(tree, [], f"avfs: create vault {vault_name}\n", author or store.signature())
    refs.cas_update(store, refs.fork_ref("main"), commit, None, "avfs: create vault")
    store.close()
    return commit


def _quote(path: str) -> bytes:
    raw = path.encode("utf-8", "surrogateescape")
    out = bytearray(b'"')
    for b in raw:
        if b in (0x22, 0x5C):
            out += b"\\" + bytes([b])
        elif b < 0x20 or b == 0x7F:
            out += b"\\%03o" % b
        else:
            out.append(b)
    out += b'"'
    return bytes(out)


def _list_files(src: str, use_gitignore: bool, git_dir: str) -> list[str]:
    if use_gitignore:
        # git's own matching, as for every ignore decision of avfs (see .ignore)
        return ignore.list_files(src, git_dir)
    paths = []
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if d != ".git"]
        rel = os.path.relpath(root, src)
        for fn in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            paths.append(fn if rel == "." else f"{rel}/{fn}")
    return sorted(set(paths))


def nested_repositories(src: str, git_dir: str) -> list[str]:
    """Directories of ``src`` that are git repositories of their own and that git does not
    ignore: an import leaves their files out, as git does (they are another repository's).
    git lists such a directory, not its files, with a trailing ``/``."""
    from ..store.gitrun import run_git

    top = git_toplevel(src)
    if top is not None and os.path.realpath(top) == os.path.realpath(src):
        args = ["-C", src, "ls-files", "-o", "--exclude-standard", "-z"]
    else:
        args = ["--git-dir", git_dir, "--work-tree", src, "ls-files", "-o", "--exclude-standard", "-z"]
    out = run_git(args, cwd=src)
    return sorted(p.rstrip("/") for p in out.split("\0") if p.endswith("/"))


def _stream_file(w: IO[bytes], full: str, st: os.stat_result) -> None:
    with open(full, "rb") as fh:
        if st.st_size <= _BIG:
            data = fh.read()
            w.write(b"data %d\n" % len(data))
            w.write(data)
        else:
            size = os.fstat(fh.fileno()).st_size
            w.write(b"data %d\n" % size)
            left = size
            while left:
                chunk = fh.read(min(left, 1 << 20))
                if not chunk:  # the file shrank while read: pad so the stream stays valid
                    chunk = b"\0" * left
                w.write(chunk)
                left -= len(chunk)
    w.write(b"\n")


def fast_import_dir(
    git_dir: str,
    src: str,
    paths: list[str],
    ref: str,
    message: str,
    author: Signatures | None,
    parent: str | None = None,
    progress: Progress | None = None,
) -> list[str]:
    """Commit the files ``paths`` of ``src`` as one commit on ``ref``; returns skipped paths."""
    from ..store.gitrun import spawn

    sigs = (author or resolve(None, lambda key: None)).now()
    proc = spawn(
        ["fast-import", "--quiet", "--done"],
        git_dir=git_dir,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        bufsize=1 << 20,
    )
    assert proc.stdin is not None
    w = proc.stdin
    skipped: list[str] = []
    try:
        msg = message.encode()
        w.write(b"feature done\ncommit " + ref.encode() + b"\n")
        w.write(f"author {sigs.author.line()}\ncommitter {sigs.committer.line()}\n".encode())
        w.write(b"data %d\n" % len(msg) + msg + b"\n")
        if parent:
            w.write(b"from " + parent.encode() + b"\n")
        total = len(paths)
        for i, rel in enumerate(paths):
            try:
                names.norm_path(rel)
            except (InvalidNameError, UsageError, Exception):
                skipped.append(rel)
                continue
            full = os.path.join(src, rel)
            try:
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    target = os.fsencode(os.readlink(full))
                    w.write(b"M 120000 inline " + _quote(rel) + b"\n")
                    w.write(b"data %d\n" % len(target) + target + b"\n")
                elif stat.S_ISREG(st.st_mode):
                    mode = b"100755" if st.st_mode & 0o111 else b"100644"
                    w.write(b"M " + mode + b" inline " + _quote(rel) + b"\n")
                    _stream_file(w, full, st)
                else:
                    skipped.append(rel)
            except (FileNotFoundError, PermissionError):
                skipped.append(rel)
            if progress and (i % 500 == 0 or i + 1 == total):
                progress(i + 1, total, rel)
        w.write(b"done\n")
        w.close()
    except BrokenPipeError:
        pass
    err = ""
    if proc.stderr is not None:
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
    if proc.wait() != 0:
        raise InternalError(f"git fast-import failed: {err.strip()}")
    return skipped


def check_not_holding_home(home_path: str, directory: str) -> None:
    """Refuse to import a directory that holds the home ``home_path`` (`avfs up ~` with the home
    ~/.avfs): the import would read the vault it is writing, without end; and one
    that cannot name a directory (a NUL: ``realpath`` raises ValueError)."""
    if "\x00" in directory:
        raise UsageError(f"{directory!r} cannot name a directory: it holds a NUL", details={"dir": directory})
    top = os.path.realpath(directory)
    here = os.path.realpath(home_path)
    if here == top or here.startswith(top.rstrip("/") + "/"):
        raise UsageError(
            f"{directory} holds the avfs home {home_path}: importing it would import the vaults too",
            hint="import the project's own directory, or keep the home elsewhere (--home, AVFS_HOME)",
            details={"dir": top, "home": home_path},
        )


def git_toplevel(src: str) -> str | None:
    """The top of the git checkout holding ``src``, or None: not in one, or below the root
    of a mounted fork. A repository in a fork (``.git`` dirs or files below its root) is
    the fork's content, which a confined command writes: its config (``core.fsmonitor``,
    filter drivers) is never given to a git avfs runs on the host, and such a directory is
    imported as a plain one (docs/security.md, "Fork content read by the host side"). The
    mount's root is its fork's checkout (its ``.git`` file and the worktree's config are
    avfs's, out of the command's reach)."""
    from ..store.gitrun import run
    from .mounttable import avfs_mount_of

    mount = avfs_mount_of(src)
    if mount is not None and os.path.realpath(src) != mount:
        return None
    try:
        proc = run(["-C", src, "rev-parse", "--show-toplevel"], check=False)
    except InternalError:  # no git installed: no checkout either
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.decode().strip()


def bare_repository(src: str) -> bool:
    """Whether ``src`` is itself a bare git repository (not a directory inside one, nor one
    inside a mounted fork: a fork's content is imported as plain files, as
    :func:`git_toplevel` says)."""
    from ..store.gitrun import run
    from .mounttable import avfs_mount_of

    if avfs_mount_of(src) is not None:
        return False
    try:
        proc = run(["-C", src, "rev-parse", "--is-bare-repository", "--absolute-git-dir"], check=False)
    except InternalError:
        return False
    out = proc.stdout.decode().split("\n")
    return (
        proc.returncode == 0
        and len(out) >= 2
        and out[0] == "true"
        and os.path.realpath(out[1]) == os.path.realpath(src)
    )


SIDE = "clone.tmp"  # where the clone is made, inside the new vault (its failure removes both)


def take_clone(side: str, git_dir: str) -> str | None:
    """Move what `git clone` made at ``side`` into the new vault ``git_dir`` (which has
    none of it yet): its objects (packs and their ``.promisor`` marks, anything else under
    ``objects/``), ``packed-refs``, ``shallow`` and any loose ref, then remove ``side``. Returns the ref
    the clone's ``HEAD`` names (the remote's HEAD branch; None when detached)."""
    import shutil

    try:
        with open(os.path.join(side, "HEAD"), encoding="utf-8") as fh:
            head = fh.read().strip()
    except OSError:
        head = ""
    objects = os.path.join(side, "objects")
    for entry in os.listdir(objects):
        src, dst = os.path.join(objects, entry), os.path.join(git_dir, "objects", entry)
        if os.path.isdir(dst):  # (pack/, info/: their files; the vault's are empty)
            for fn in os.listdir(src):
                os.rename(os.path.join(src, fn), os.path.join(dst, fn))
        else:
            os.rename(src, dst)
    for fn in ("packed-refs", "shallow"):  # (shallow: a shallow remote's clone is shallow, as git's)
        if os.path.exists(os.path.join(side, fn)):
            os.rename(os.path.join(side, fn), os.path.join(git_dir, fn))
    for dirpath, _dirs, files in os.walk(os.path.join(side, "refs")):  # (a clone writes none)
        for fn in files:
            rel = os.path.relpath(os.path.join(dirpath, fn), side)
            os.makedirs(os.path.dirname(os.path.join(git_dir, rel)), exist_ok=True)
            os.rename(os.path.join(dirpath, fn), os.path.join(git_dir, rel))
    shutil.rmtree(side)
    return head[5:] if head.startswith("ref: ") else None


def import_dir(
    git_dir: str,
    src: str,
    author: Signatures | None,
    *,
    progress: Progress | None = None,
    use_gitignore: bool = True,
) -> tuple[str, list[tuple[str, str]]] | None:
    """Fill the new vault at ``git_dir`` from ``src``.

    Returns (fork, worktree changes) to apply once the vault is in place when ``src`` is a
    git checkout with uncommitted changes, else None.
    """
    from ..store.gitrun import run_git

    src = os.path.abspath(src)
    if not os.path.isdir(src):
        raise _not_a_source(src)
    top = git_toplevel(src)
    checkout = top is not None and os.path.realpath(top) == os.path.realpath(src)
    if checkout and _has_commits(src):
        return _import_checkout(git_dir, src, run_git)
    if top is None and bare_repository(src):
        # its history, as a checkout's; its files (HEAD, config, objects/) are no project's
        if not _has_commits(src):
            raise UsageError(
                f"{src} is a bare git repository whose HEAD names no commit: nothing to import",
                hint=f"`avfs vault clone {src} NAME` takes its branches, if it has any; "
                "`avfs vault create NAME` makes an empty vault",
                details={"path": src},
            )
        return _import_checkout(git_dir, src, run_git, worktree=False)
    fork = _unborn_branch(src) if checkout else None
    paths = _list_files(src, use_gitignore, git_dir)
    if author is None:
        # the same identity checkpoints get: git's user.name / user.email, else avfs
        store = GitStore(git_dir)
        author = store.signature()
        store.close()
    skipped = fast_import_dir(
        git_dir,
        src,
        paths,
        refs.fork_ref(fork or "main"),
        f"avfs: import {os.path.basename(src)}\n",
        author,
        progress=progress,
    )
    del skipped  # special files (sockets, fifos) and unreadable ones are not imported
    if fork is not None:
        set_default_fork(git_dir, fork)
    return None


def _unborn_branch(src: str) -> str | None:
    """The branch a checkout without commits is on (``git init -b master``), when it is not
    ``main`` and avfs takes its name as a fork's: the import's fork is named after it."""
    from ..store.gitrun import run

    proc = run(["-C", src, "symbolic-ref", "-q", "--short", "HEAD"], check=False)
    branch = proc.stdout.decode().strip() if proc.returncode == 0 else ""
    if not branch or branch == "main":
        return None
    try:
        return names.check_fork_name(branch)
    except InvalidNameError:
        return None


def _has_commits(src: str) -> bool:
    from ..store.gitrun import run

    return run(["-C", src, "rev-parse", "--verify", "-q", "HEAD"], check=False).returncode == 0


def _import_checkout(
    git_dir: str, src: str, run_git: Callable[..., str], *, worktree: bool = True
) -> tuple[str, list[tuple[str, str]]] | None:
    """The checkout's (or, ``worktree=False``, a bare repository's) branches, tags and HEAD;
    a checkout's uncommitted changes are returned to apply once the vault is in place."""
    # its branches and tags by `git clone`, not a fetch: a clone writes every ref into one
    # packed-refs file where a fetch wrote each as a loose file with its reflog (a checkout
    # of 5,000 branches and 5,000 tags: 20,000 files, 37 s here against git clone's 1 s,
    # and every later read of the vault's refs paid for them: as cloning.clone_into does).
    # --no-local: read through upload-pack (no hard links into the person's repository).
    side = os.path.join(git_dir, SIDE)
    run_git(["clone", "-q", "--bare", "--no-local", "--template=", src, side])
    take_clone(side, git_dir)
    head = run_git(["-C", src, "rev-parse", "HEAD"]).strip()
    branch = run_git(["-C", src, "rev-parse", "--abbrev-ref", "HEAD"]).strip()
    if branch == "HEAD":  # a detached HEAD's commits, on no branch (the fork made at HEAD below)
        run_git(["--git-dir", git_dir, "fetch", "-q", "--no-auto-gc", "--no-write-fetch-head", src, "HEAD"])
    store = GitStore(git_dir)
    # the checked-out branch is the default fork (the person's `master` or feature branch,
    # with the uncommitted changes on it); no `main` is made beside it. A detached HEAD (or
    # a branch name avfs refuses) gets a fork of its own at HEAD, unless `main` is there.
    target = "main" if branch == "HEAD" else branch
    try:
        names.check_fork_name(target)
    except InvalidNameError:
        target = "main"
    if refs.read_ref(store, refs.fork_ref(target)) is None:
        refs.cas_update(store, refs.fork_ref(target), head, None, "avfs: import")
    elif refs.read_ref(store, refs.fork_ref(target)) != head:
        target = "imported-worktree"
        refs.cas_update(store, refs.fork_ref(target), head, None, "avfs: import worktree")
    # branches whose names avfs refuses stay in the vault as plain git branches
    store.close()
    if not worktree:
        set_default_fork(git_dir, target)
        return None
    # (in the person's checkout, with the config the person's git reads there: without
    # ``$GIT_CONFIG_GLOBAL`` a `core.attributesFile` it names went unread, and every file
    # its `ident` or end-of-line rules convert was taken for an uncommitted change: gitmodel9)
    env = {**git_env(), **git_config_env()}
    out = run(
        [
            "-C",
            src,
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--no-renames",
            "--ignore-submodules=all",
        ],
        env=env,
    ).stdout.decode("utf-8", "surrogateescape")
    items: list[tuple[str, str]] = []
    for rec in out.split("\0"):
        if len(rec) > 3:
            items.append((rec[:2], rec[3:]))
    _refuse_names_not_text(items)
    set_default_fork(git_dir, target)
    return (target, items) if items else None


def _refuse_names_not_text(items: list[tuple[str, str]]) -> None:
    """Refuse the import (before the vault is in place: nothing is made) when an
    uncommitted change of the checkout names a file whose name is not UTF-8 text (git's
    history may hold one, and the vault takes it as it is; a fork's workspace cannot: the
    import failed after the vault was made, half imported, when it met one)."""
    for _xy, rel in items:
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
            raise InvalidPathError(
                f"{shown}: the checkout's uncommitted file has a name that is not UTF-8 text,"
                " which a fork's files cannot hold; nothing was imported",
                hint="rename it, commit it with git (a commit may hold such a name), or list it"
                " in .gitignore, then import again",
                details={"path": rel},
            ) from None


def set_default_fork(git_dir: str, fork: str) -> None:
    """Record a new vault's default fork in its config, and point the bare repository's
    ``HEAD`` at it (what a `git clone` of the vault checks out)."""
    import json

    from ..store.gitrun import run_git

    with open(os.path.join(git_dir, "avfs", "config.json"), "w", encoding="utf-8") as fh:
        json.dump({"default_fork": fork}, fh)
    run_git(["--git-dir", git_dir, "symbolic-ref", "HEAD", refs.fork_ref(fork)])


class Target(Protocol):
    """What :func:`apply_worktree_changes` needs of the new vault's workspace
    (:class:`.workspace.Workspace` is one): the vault is made here, and used above."""

    def exists(self, path: str) -> bool: ...
    def remove(self, path: str, *, recursive: bool = False) -> None: ...
    def symlink(self, target: str, path: str) -> Stat: ...
    def write_from_file(self, path: str, src: str, *, mode: int | None = None) -> Stat: ...


def apply_worktree_changes(ws: Target, src: str, items: list[tuple[str, str]]) -> None:
    """Make the workspace of the fork that :func:`import_dir` named show what the checkout
    at ``src`` has not committed (``items``: its ``git status`` entries)."""
    for _xy, rel in items:
        full = os.path.join(src, rel)
        if os.path.islink(full):
            if ws.exists(rel):
                ws.remove(rel, recursive=True)
            ws.symlink(os.readlink(full), rel)
        elif os.path.isfile(full):
            mode = 0o100755 if os.stat(full).st_mode & 0o111 else 0o100644
            ws.write_from_file(rel, full, mode=mode)
        elif not os.path.lexists(full) and ws.exists(rel):
            ws.remove(rel, recursive=True)


def _not_a_source(src: str) -> PathNotFoundError:
    """The error for a ``from_dir`` that is no directory: missing, or a file (an sdist's
    tarball given as it was downloaded); nothing of the vault is made."""
    if not os.path.lexists(src):
        return PathNotFoundError(
            f"{src}: no such directory",
            hint="give the project's directory (`--from .` inside it); without --from the vault starts empty",
            details={"path": src},
        )
    archive = src.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip", ".whl"))
    return PathNotFoundError(
        f"{src}: not a directory",
        hint=(
            "unpack the archive first (`mkdir DIR && tar xf FILE -C DIR`, or `unzip`) and give --from DIR"
            if archive
            else "give the directory that holds the project's files"
        ),
        details={"path": src},
    )

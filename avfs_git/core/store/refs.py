"""Ref namespaces (the only place they are spelled) and compare-and-swap ref updates.

Refs are moved only by :func:`cas_update`: lock the ref (``<ref>.lock``, which libgit2 and
git both honour), read it, compare with the value the caller expected, then set or delete.
A ref someone else moved is never overwritten: the caller gets :class:`RefMovedError` naming
both commits. (One exception: gc's temporary :data:`KEEP`, which gc alone writes and removes
as a file while it holds every lock of the vault: ``ops/maintenance/collect.py``.)

Two ways to do it, with the same results and errors (``tests/test_refs.py`` runs both): through
libgit2 when this process has loaded it (an API caller, the mount daemon: a transaction costs
~0.1 ms), else through git (``git update-ref NAME NEW OLD``, git's own compare-and-swap, ~2 ms;
reads are git's files, :func:`read_ref_file`), so that a short-lived command that moves a ref
and never needs libgit2 otherwise (``avfs vault fork``, ``avfs checkpoint save``) does not pay
its ~40-80 ms import. The same choice as the store's reads (:func:`.gitlib.libgit2_loaded`).

Fork names may hold '/', like branch names. A segment '-' can never be part of a fork name
(segments may not start with '-'), so it separates the fork from what follows in avfs' own
namespaces without ambiguity.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ..errors import AlreadyExistsError, AvfsError, CorruptStateError, InternalError, RefMovedError, want_str
from . import packedrefs
from .gitlib import git_error, git_errors, libgit2_loaded
from .gitrun import run

if TYPE_CHECKING:
    from .gitstore import GitStore

REFS = "refs/"  # every ref: a full ref name starts so
HEADS = "refs/heads/"  # the forks (git's branches)
TAGS = "refs/tags/"
REMOTES = "refs/remotes/"  # a fetch's remote-tracking refs (:func:`remote_prefix`)
STASH = "refs/stash"  # git stash's (a sandboxed command's lives and dies with the run)
AVFS = "refs/avfs/"  # avfs's own: clones do not carry it unless asked, gc keeps what it names
CHECKPOINTS = AVFS + "checkpoints/"
RECOVERY = AVFS + "recovery/"
ORIGIN = AVFS + "origin"  # the commit the origin directory's files last matched (quickstart)
KEEP = AVFS + "keep"  # gc's temporary roots (``keep`` and ``keep/<oid>``) while git runs
HELD = AVFS + "held/"  # per fork: the objects its overlay names by id, for git's gc (heldref.py)
SEP = "/-/"
ZERO_ID = "0" * 40  # git update-ref's "must not exist" old value
# a branch no repository can have ("." may not start a component): the HEAD of a git run
# that must compare nothing with a commit (mount/untracked.py)
UNBORN = HEADS + ".avfs-unborn"

# what git's check_refname_format refuses (and libgit2's name check: a lookup of such a name
# fails there too): control characters, space, ~ ^ : ? * [ \, "..", "@{", an empty
# component, a component starting with "." or ending with ".lock", a trailing "." or "/"
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^/|/$|\.$|(?:^|/)\.|\.lock(?:/|$)")


def fork_ref(fork: str) -> str:
    return HEADS + want_str(fork, "fork")


def switch_back(vault_path: str, fork: str) -> str:
    """The git command that puts a mount's HEAD back on ``fork``: with
    ``--ignore-other-worktrees`` when the fork is the vault's own ``HEAD`` branch, which git
    (2.39) takes for checked out in the bare vault and refuses to switch to from a mount
    (docs/fuse.md, "Known limit")."""
    try:
        with open(os.path.join(vault_path, "HEAD"), encoding="utf-8") as fh:
            head = fh.read().strip()
    except OSError:
        head = ""
    flag = " --ignore-other-worktrees" if head == f"ref: {fork_ref(fork)}" else ""
    return f"git switch{flag} {fork}"


def checkpoint_ref(fork: str, name: str) -> str:
    return f"{CHECKPOINTS}{fork}{SEP}{name}"


def checkpoint_prefix(fork: str) -> str:
    return f"{CHECKPOINTS}{fork}{SEP}"


def recovery_ref(fork: str, tag: str) -> str:
    return f"{RECOVERY}{fork}{SEP}{tag}"


def held_ref(fork: str) -> str:
    """The ref that keeps what fork ``fork``'s overlay names by id reachable (:mod:`.heldref`)."""
    return f"{HELD}{fork}{SEP}objects"


def held_base_ref(fork: str) -> str:
    """The ref that keeps fork ``fork``'s workspace base (the commit a mount's lower layer
    shows) reachable while the fork is mounted, whatever git there does to the branch and
    its reflogs (:mod:`.heldref`)."""
    return f"{HELD}{fork}{SEP}base"


def held_git_ref(fork: str) -> str:
    """The ref that keeps what git's state of fork ``fork``'s last mount names by id
    reachable from its unmount to its next mount (the index's staged blobs, a detached
    HEAD, an open rebase's commits: mount/gitkeep.py keeps them outside the worktree git
    dirs git's gc reads; :mod:`.heldref`)."""
    return f"{HELD}{fork}{SEP}git"


def held_aside_ref(fork: str) -> str:
    """The ref that keeps what the git state a mount of fork ``fork`` set aside names by id
    reachable (``<vault>/avfs/gitkept/<fork>.set-aside``, kept until the fork goes: the
    branch had moved since the unmount; :mod:`.heldref`, gitmodel23)."""
    return f"{HELD}{fork}{SEP}aside"


def checkpoint_tag_ref(fork: str, name: str) -> str:
    """The tag a named checkpoint pushes as when pushed as tags (``avfs/<fork>/<name>``)."""
    return f"{TAGS}avfs/{fork}/{name}"


def remote_prefix(remote: str) -> str:
    """Where a fetch from ``remote`` puts the remote's branches."""
    return f"{REMOTES}{remote}/"


def tracking_ref(remote: str, branch: str) -> str:
    return remote_prefix(remote) + branch


def read_ref_file(git_dir: str, name: str, packed: Mapping[str, str] | None = None) -> str | None:
    """Read a direct ref from the files git keeps (loose, then packed-refs), without libgit2.

    The hot read paths (a workspace checking its fork's tip) use this so that a command
    that never touches objects never imports pygit2 (~85 ms). Writers replace loose refs
    by rename, so a read sees the old or the new value, never a torn one. ``packed``: the
    packed refs read once already (:func:`.packedrefs.under`), for a caller reading many.
    """
    if "\x00" in name or not _utf8(name):
        return None  # names no ref, and is no path to open (open() raises on a NUL)
    try:
        raw = _read_loose(os.path.join(git_dir, name)).strip()
        value = raw.decode("ascii", "replace")
        if value.startswith("ref: "):
            return read_ref_file(git_dir, value[5:])
        if _OID.fullmatch(raw) is None:
            raise _damaged_ref(git_dir, name, raw)
        return value
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass
    except OSError as exc:  # a component longer than a file name may be: no loose ref
        if exc.errno != errno.ENAMETOOLONG:
            raise
    if packed is not None and name in packed:
        return packed[name]
    # (a binary search of the sorted file; also for a name ``packed`` lacks: a `git
    # pack-refs` since it was read moved the loose ref there)
    return packedrefs.lookup(git_dir, name)


def packed_lines(git_dir: str) -> list[bytes]:
    """The lines of ``git_dir``'s ``packed-refs`` (none when there is none), read without
    waiting on a FIFO: a FIFO there held every command that lists refs for ever (git's
    own too), a directory was exit 70 (IsADirectoryError).

    Raises:
        CorruptStateError: something other than a regular file is there.
    """
    data = packedrefs.read(git_dir)
    return data.split(b"\n") if data else []


_OID = re.compile(rb"[0-9a-f]{40}(?:[0-9a-f]{24})?")


def _damaged_ref(git_dir: str, name: str, raw: bytes) -> CorruptStateError:
    """The error for a loose ref file that holds no commit id (emptied, overwritten): git
    ignores such a ref ("ignoring broken ref"); avfs took an empty one for a deleted branch
    and read other bytes as a commit id ("'ascii' codec can't encode ...")."""
    path = os.path.join(git_dir, name)
    return CorruptStateError(
        f"the ref {name} is damaged: its file {path} holds {raw[:60]!r} where a commit id belongs;"
        " nothing was changed",
        hint=f"put its commit back: `git --git-dir {git_dir} update-ref {name} COMMIT`"
        f" (`git --git-dir {git_dir} reflog {name}` names its last ones)",
        details={"ref": name, "path": path},
    )


def _read_loose(path: str) -> bytes:
    """The bytes of a loose ref file by the descriptor alone: ``open()``'s buffered file
    costs six more system calls a read (two ``fstat``, an ``isatty`` ``ioctl``, two
    ``lseek``) and its objects, on every fork's and workspace's look at a ref. Raises
    ``IsADirectoryError`` for a directory (a name that is a prefix of other refs)."""
    # (never waiting on a FIFO there: it held every command of the fork for ever; read, it
    # is empty, a damaged ref)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        data = os.read(fd, 256)  # a direct ref is 41 bytes, a symbolic one "ref: " + a name
        if len(data) == 256:
            chunks = [data]
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data
    finally:
        os.close(fd)


def _loose_names(git_dir: str, prefix: str) -> Iterator[str]:
    """The names of the loose ref files under directory ``prefix``, as git lists them
    (files-backend.c ``loose_fill_ref_dir``, libgit2 alike): a file or directory whose
    name starts with ``.`` is no ref, nor is a ``.lock``. libgit2's own test repositories
    keep a ``refs/.gitkeep`` (``revwalk.git``, ``shallow.git``...), and Finder leaves a
    ``.DS_Store`` in a directory it shows: avfs listed it as a ref (a fork named
    ``.DS_Store``; `vault info`, `gc` and `checkup` stopped on it as on a damaged ref)."""
    for dirpath, dirs, files in os.walk(os.path.join(git_dir, prefix)):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(dirpath, git_dir).replace(os.sep, "/")
        for fn in files:
            if not fn.startswith(".") and not fn.endswith(".lock"):
                yield f"{rel}/{fn}"


def list_refs_file(git_dir: str, prefix: str) -> list[str]:
    """Names of the refs under ``prefix`` (loose and packed), without libgit2."""
    found = set(_loose_names(git_dir, prefix))
    found.update(packedrefs.under(git_dir, prefix))
    return sorted(found)


def read_refs_file(git_dir: str, prefix: str) -> dict[str, str]:
    """The refs under ``prefix`` (a directory of refs) -> the ids they name, as
    :func:`read_ref_file` reads each, in one read of ``packed-refs`` (its range of names):
    what a listing of many refs reads (a fetch's remote-tracking refs, `vault info`'s
    branches), not the file once a ref."""
    out = packedrefs.under(git_dir, prefix)
    for name in _loose_names(git_dir, prefix):
        oid = read_ref_file(git_dir, name)  # (a loose ref is the ref; a packed one was)
        if oid is None:
            out.pop(name, None)
        else:
            out[name] = oid
    return out


def has_refs_under(git_dir: str, prefix: str) -> bool:
    """True when some ref's name starts with ``prefix`` + '/' (loose or packed)."""
    if next(_loose_names(git_dir, prefix), None) is not None:
        return True
    needle = b" " + prefix.encode() + b"/"
    return any(needle in line for line in packed_lines(git_dir) if not line.startswith((b"#", b"^")))


def ref_names(store: GitStore, prefix: str = "") -> list[str]:
    """Names of the refs whose name starts with ``prefix``: through libgit2 (in its order)
    when this process has loaded it, else from git's files (sorted; ``prefix`` a directory
    of refs, ending in ``/``), as :func:`read_ref` reads them: `avfs log` does not load
    libgit2 to name its checkpoints."""
    if (not libgit2_loaded() and prefix.endswith("/")) or _fifo(store.path, "packed-refs"):
        return list_refs_file(store.path, prefix)
    packedrefs.check_end(store.path)  # (libgit2 reads a file git refuses: refused as git does)
    try:
        return [r for r in store._repo.references if r.startswith(prefix)]
    except git_errors() as exc:
        raise _packed_refs_error(exc, store.path, f"cannot list the refs of {store.path}") from exc


def last_moved(store: GitStore, name: str) -> float:
    """When ref ``name`` last moved, as far as libgit2 can tell: the newest of its tip's
    commit time and its newest reflog entry (0.0 when it does not exist; what cannot be
    read is not counted)."""
    newest = 0.0
    repo = store._repo
    try:
        ref = repo.references[name]
        tip = repo.get(ref.resolve().target)
        if tip is not None:
            newest = max(newest, float(tip.commit_time))  # type: ignore[attr-defined]
        for entry in ref.log():
            newest = max(newest, float(entry.committer.time))
            break  # newest first
    except git_errors():
        pass
    return newest


def valid_name(name: str) -> bool:
    """Whether git would accept ``name`` as a ref's name (``git check-ref-format
    --allow-onelevel``: ``HEAD`` is one)."""
    return bool(name) and name != "@" and _BAD_REF.search(name) is None


def _utf8(name: str) -> bool:
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_packed_refs(git_dir: str) -> None:
    """Raise :class:`CorruptStateError` naming the first line of ``git_dir``'s
    ``packed-refs`` that is not one git reads (a header ``# ...``, ``<id> <name>``, or a
    peeled ``^<id>`` after one): git (``fatal: unexpected line``) and libgit2 ("corrupted
    packed references file") then refuse every listing and some ref writes, and a
    checkpoint named after its branch had moved failed (exit 70, no op log entry)."""
    packedrefs.check_end(git_dir)
    lines = packed_lines(git_dir)
    hexdigits = frozenset(b"0123456789abcdef")
    for number, line in enumerate(lines, 1):
        if not line or (line.startswith(b"#") and number == 1):
            continue
        body = line[1:] if line.startswith(b"^") else line
        oid, space, name = body[:40], body[40:41], body[41:]
        ok = len(oid) == 40 and set(oid) <= hexdigits
        if ok and ((line.startswith(b"^") and not space and not name) or (space == b" " and name)):
            continue
        shown = line[:80].decode("utf-8", "backslashreplace")
        raise CorruptStateError(
            f"the vault's packed-refs file has a line git cannot read (line {number}: {shown!r}),"
            " so its refs cannot be listed or some of them moved; nothing was changed",
            hint=f"fix or remove that line of {os.path.join(git_dir, 'packed-refs')}"
            " (git for-each-ref in the vault names it too), then run the command again",
            details={"line": number},
        )


def _packed_refs_error(exc: BaseException, git_dir: str, message: str) -> Exception:
    """libgit2's or git's refusal of a damaged ``packed-refs``, in words (the line named);
    any other failure as :func:`git_error` makes it."""
    text = str(exc)
    if "packed references" in text or "packed-refs" in text:
        try:
            check_packed_refs(git_dir)
        except CorruptStateError as err:
            return err
    return git_error(exc, message)


def read_ref(store: GitStore, name: str) -> str | None:
    """Return the commit id a ref points at (a symbolic one followed), or None when it does
    not exist. Through libgit2 when this process has loaded it, else from git's files."""
    if not valid_name(name) or not _utf8(name):
        # a malformed name names no ref (libgit2 says so too), and is never a path to open;
        # nor does one that is not UTF-8 (a lone surrogate: bytes from the command line)
        return None
    if not libgit2_loaded() or any(len(c.encode()) > 255 for c in name.split("/")):
        # (a component past NAME_MAX is no loose ref; libgit2 fails on its path, git's
        # files are read as they are: packed-refs may still hold it)
        return read_ref_file(store.path, name)
    loose = _loose_id(store.path, name)
    if loose is not None:
        return loose
    if _fifo(store.path, name, "packed-refs"):
        return read_ref_file(store.path, name)  # (it names the damage, waiting on nothing)
    if not os.path.lexists(os.path.join(store.path, name)):  # (git reads packed-refs then only)
        packedrefs.check_end(store.path)  # (libgit2 reads a file git refuses)
    try:
        ref = store._repo.references.get(name)
    except git_errors() as exc:  # a malformed name, a corrupt ref file
        if "corrupted loose reference" in str(exc):
            read_ref_file(store.path, name)  # names the file and what it holds (was internal)
        raise git_error(exc, f"cannot read ref {name}") from exc
    if ref is None:
        return None
    target = ref.resolve().target
    return str(target)


def _loose_id(git_dir: str, name: str) -> str | None:
    """The commit id a loose ref file of ``name`` holds as git writes one (the id, then a
    newline), read by the descriptor alone; None for anything else (no such file, a
    directory, a FIFO, a symbolic ref, damaged bytes: :func:`read_ref` asks libgit2 then,
    as before). A loose ref is the ref whatever ``packed-refs`` says, so the answer is
    libgit2's: without the two ``lstat``, the ``lexists``, and libgit2's own open, read and
    ``packed-refs`` stat (~0.07 ms a read; three a merge, one a ref's compare-and-swap)."""
    # (no symbolic link followed, nothing but a regular file read, at most 66 bytes: a link
    # to /dev/zero or a device is libgit2's to refuse, as before this shortcut)
    try:
        fd = os.open(os.path.join(git_dir, name), os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        raw = os.read(fd, 66) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        return None
    finally:
        os.close(fd)
    oid = raw[:-1] if raw.endswith(b"\n") else b""
    return oid.decode("ascii") if _OID.fullmatch(oid) else None


def _fifo(git_dir: str, *names: str) -> bool:
    """Whether one of ``names`` in ``git_dir`` is a FIFO (``packed-refs``: anything but a
    file): libgit2 opens a loose ref and
    ``packed-refs`` waiting on one (a resident server's thread held for ever, every later
    call of the fork's with it); git's files are read without waiting, and name it."""
    for name in names:
        try:
            mode = os.lstat(os.path.join(git_dir, name)).st_mode
        except (OSError, ValueError):
            continue
        # (packed-refs a directory: libgit2's "failed to read descriptor", exit 70)
        if stat.S_ISFIFO(mode) or (name == "packed-refs" and not stat.S_ISREG(mode)):
            return True
    return False


def _is_text(text: str) -> bool:
    """Whether ``text`` is UTF-8 text (no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def cas_update(store: GitStore, name: str, new: str | None, expected: str | None, message: str) -> None:
    """Move ref ``name`` from ``expected`` to ``new`` atomically.

    ``expected=None`` means the ref must not exist (create); ``new=None`` deletes it.
    Through libgit2 when this process has loaded it, else through ``git update-ref``.

    Raises:
        RefMovedError: the ref does not hold ``expected`` (or another process holds its lock).
        AlreadyExistsError: creating a ref that exists (expected None).
        InternalError: the ref cannot be written (a malformed name, a file in the way).
    """
    if not _is_text(message):
        # the reflog's note names a commit message's subject, which may hold bytes that
        # are not UTF-8 (`-m` of such bytes: kept as surrogates, written back into the
        # commit as they were); libgit2 takes text only: the commit was made and the
        # branch failed to move (exit 70, a dangling commit). A note is for people: U+FFFD
        message = message.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if libgit2_loaded():
        _cas_libgit2(store, name, new, expected, message)
    else:
        _cas_git(store, name, new, expected, message)


def _moved(name: str, expected: str | None, current: str | None) -> AvfsError:
    if expected is None:
        return AlreadyExistsError(
            f"{name} already exists (at {current})", details={"ref": name, "current": current}
        )
    return RefMovedError(
        f"{name} moved: expected {expected}, found {current}",
        hint="someone else changed this fork; look at `avfs log` and retry",
        details={"ref": name, "expected": expected, "current": current},
    )


def _cas_git(store: GitStore, name: str, new: str | None, expected: str | None, message: str) -> None:
    """:func:`cas_update` by git: ``update-ref`` locks the ref, compares and writes (or
    deletes) in one step; a failure is told apart by reading the ref afterwards."""
    if not valid_name(name):
        raise InternalError(f"cannot update {name}: invalid reference name {name!r}")
    if new is None and expected is None:
        if read_ref_file(store.path, name) is not None:
            raise _moved(name, None, read_ref_file(store.path, name))
        raise InternalError(f"cannot update {name}: the reference does not exist")
    if new is None:
        args = ["update-ref", "--no-deref", "-m", message, "-d", name, expected or ZERO_ID]
    else:
        args = ["update-ref", "--no-deref", "-m", message, name, new, expected or ZERO_ID]
    proc = run(args, git_dir=store.path, check=False, text=True)
    if proc.returncode == 0:
        return
    said = proc.stderr.strip().removeprefix("fatal: ").removeprefix("error: ")
    current = read_ref_file(store.path, name)
    if current != expected:
        raise _moved(name, expected, current)
    if ".lock" in said and "File exists" in said:
        raise RefMovedError(
            f"{name} is being updated by another process: {said}",
            hint="retry in a moment",
            details={"ref": name},
        )
    if "packed-refs" in said:
        check_packed_refs(store.path)
    raise InternalError(f"cannot update {name}: {said}")


def _cas_libgit2(store: GitStore, name: str, new: str | None, expected: str | None, message: str) -> None:
    import pygit2

    repo = store._repo
    if expected is None and new is not None:
        # creation: libgit2 refuses an existing ref atomically (its lock file), and this
        # path costs a third of a transaction
        try:
            repo.create_reference_direct(name, pygit2.Oid(hex=new), False, message=message)
            return
        except pygit2.AlreadyExistsError:
            raise _moved(name, None, read_ref(store, name)) from None
        except git_errors(OSError) as exc:  # OSError: a file in the ref's way
            raise _translate(exc, name, store.path) from exc
    try:
        with repo.transaction() as tx:
            tx.lock_ref(name)
            current = read_ref(store, name)
            if current != expected:
                raise _moved(name, expected, current)
            if new is None:
                tx.remove(name)
            else:
                tx.set_target(name, new, message=message)
    except git_errors(OSError) as exc:
        raise _translate(exc, name, store.path) from exc


def _translate(exc: Exception, name: str, git_dir: str) -> Exception:
    text = str(exc)
    if "lock" in text.replace(name, "").lower():  # not a name's own ".lock" (a bad name)
        return RefMovedError(
            f"{name} is being updated by another process: {text}",
            hint="retry in a moment",
            details={"ref": name},
        )
    return _packed_refs_error(exc, git_dir, f"cannot update {name}")


STALE_LOCK_S = 10.0  # a held ref's lock older than this was left by a killed writer


def set_unlogged(git_dir: str, name: str, new: str | None, expected: str | None) -> bool:
    """Move avfs's own bookkeeping ref ``name`` (:data:`HELD`'s) from ``expected`` (None:
    absent) to ``new`` (None: delete) by compare-and-swap, as git does (``<ref>.lock``
    created exclusively, the value compared under it, written and renamed over the name),
    with no reflog line: such a ref moves at every change of what it holds, and a line
    each would also keep every old value reachable for the reflog's retention. False,
    nothing changed, when the ref does not hold ``expected`` or another writer holds its
    lock (the caller reads it again and retries). A lock older than :data:`STALE_LOCK_S`
    was left by a killed writer (the write under it takes microseconds) and goes.
    A deletion of a ref ``pack-refs`` packed goes through ``git update-ref -d`` (git
    rewrites packed-refs). OSError as the file system raises it."""
    path = os.path.join(git_dir, *name.split("/"))
    lock = path + ".lock"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        try:
            if time.time() - os.lstat(lock).st_mtime < STALE_LOCK_S:
                return False
            os.unlink(lock)
        except FileNotFoundError:
            pass
        return False
    done = False
    try:
        if read_ref_file(git_dir, name) != expected:
            return False
        if new is None:
            packed = any(line.endswith(b" " + name.encode()) for line in packed_lines(git_dir))
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            if packed:
                os.unlink(lock)
                done = True
                proc = run(["update-ref", "-d", name, expected or ""], git_dir=git_dir, check=False)
                return proc.returncode == 0
            return True
        os.write(fd, f"{new}\n".encode("ascii"))
        os.close(fd)
        fd = -1
        os.rename(lock, path)
        done = True
        return True
    finally:
        if fd >= 0:
            os.close(fd)
        if not done:
            try:
                os.unlink(lock)
            except FileNotFoundError:
                pass


def reflog_path(git_dir: str, name: str) -> str:
    """Where git keeps the reflog of ref ``name`` (``core.logAllRefUpdates=always``: every
    move of a fork's branch, by avfs or by git, is a line there)."""
    return os.path.join(git_dir, "logs", *name.split("/"))


def reflog_entry(line: str, hexsz: int | None = None) -> tuple[str, str, float, str] | None:
    """One reflog line as git reads it: :func:`.refloglines.reflog_entry` (loaded only
    by what reads a reflog)."""
    from .refloglines import reflog_entry as read

    return read(line, hexsz)

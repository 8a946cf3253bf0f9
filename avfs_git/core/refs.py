"""Ref namespaces (the only place they are spelled) and compare-and-swap ref updates.

Refs are moved only by :func:`cas_update`: lock the ref (libgit2 writes ``<ref>.lock``, which
git itself honours), read it, compare with the value the caller expected, then set or delete.
A ref someone else moved is never overwritten: the caller gets :class:`RefMovedError` naming
both commits.

Fork names may hold '/', like branch names. A segment '-' can never be part of a fork name
(segments may not start with '-'), so it separates the fork from what follows in avfs' own
namespaces without ambiguity.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .errors import AlreadyExistsError, RefMovedError
from .gitstore import git_error, git_errors

if TYPE_CHECKING:
    import pygit2

HEADS = "refs/heads/"
CHECKPOINTS = "refs/avfs/checkpoints/"
RECOVERY = "refs/avfs/recovery/"
SEP = "/-/"


def fork_ref(fork: str) -> str:
    return HEADS + fork


def checkpoint_ref(fork: str, name: str) -> str:
    return f"{CHECKPOINTS}{fork}{SEP}{name}"


def checkpoint_prefix(fork: str) -> str:
    return f"{CHECKPOINTS}{fork}{SEP}"


def recovery_ref(fork: str, tag: str) -> str:
    return f"{RECOVERY}{fork}{SEP}{tag}"


def read_ref_file(git_dir: str, name: str) -> str | None:
    """Read a direct ref from the files git keeps (loose, then packed-refs), without libgit2.

    The hot read paths (a workspace checking its fork's tip) use this so that a command
    that never touches objects never imports pygit2 (~85 ms). Writers replace loose refs
    by rename, so a read sees the old or the new value, never a torn one.
    """
    try:
        with open(os.path.join(git_dir, name), "rb") as fh:
            value = fh.read().strip().decode("ascii", "replace")
        if value.startswith("ref: "):
            return read_ref_file(git_dir, value[5:])
        return value or None
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        pass
    try:
        with open(os.path.join(git_dir, "packed-refs"), "rb") as fh:
            target = b" " + name.encode()
            for line in fh:
                line = line.rstrip(b"\n")
                if line.endswith(target) and not line.startswith((b"#", b"^")):
                    return line[:40].decode("ascii")
    except FileNotFoundError:
        pass
    return None


def list_refs_file(git_dir: str, prefix: str) -> list[str]:
    """Names of the refs under ``prefix`` (loose and packed), without libgit2."""
    found: set[str] = set()
    root = os.path.join(git_dir, prefix)
    for dirpath, _dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, git_dir).replace(os.sep, "/")
        for fn in files:
            if not fn.endswith(".lock"):
                found.add(f"{rel}/{fn}")
    try:
        with open(os.path.join(git_dir, "packed-refs"), "rb") as fh:
            for line in fh:
                if line.startswith((b"#", b"^")):
                    continue
                parts = line.rstrip(b"\n").split(b" ", 1)
                if len(parts) == 2 and parts[1].startswith(prefix.encode()):
                    name = parts[1].decode("utf-8", "replace")
                    found.add(name)
    except FileNotFoundError:
        pass
    return sorted(found)


def has_refs_under(git_dir: str, prefix: str) -> bool:
    """True when some ref's name starts with ``prefix`` + '/' (loose or packed)."""
    path = os.path.join(git_dir, prefix)
    if os.path.isdir(path):
        for _root, _dirs, files in os.walk(path):
            if any(not f.endswith(".lock") for f in files):
                return True
    try:
        with open(os.path.join(git_dir, "packed-refs"), "rb") as fh:
            needle = b" " + prefix.encode() + b"/"
            return any(needle in line for line in fh if not line.startswith((b"#", b"^")))
    except FileNotFoundError:
        return False


def read_ref(repo: pygit2.Repository, name: str) -> str | None:
    """Return the commit id a direct ref points at, or None when it does not exist."""

    try:
        ref = repo.references.get(name)
    except git_errors() as exc:  # pragma: no cover - corrupt ref file
        raise git_error(exc, f"cannot read ref {name}") from exc
    if ref is None:
        return None
    target = ref.resolve().target
    return str(target)


def cas_update(
    repo: pygit2.Repository,
    name: str,
    new: str | None,
    expected: str | None,
    message: str,
) -> None:
    """Move ref ``name`` from ``expected`` to ``new`` atomically.

    ``expected=None`` means the ref must not exist (create); ``new=None`` deletes it.

    Raises:
        RefMovedError: the ref does not hold ``expected``.
        AlreadyExistsError: creating a ref that exists (expected None).
    """
    import pygit2

    if expected is None and new is not None:
        # creation: libgit2 refuses an existing ref atomically (its lock file), and this
        # path costs a third of a transaction
        try:
            repo.create_reference_direct(name, pygit2.Oid(hex=new), False, message=message)
            return
        except pygit2.AlreadyExistsError:
            current = read_ref(repo, name)
            raise AlreadyExistsError(
                f"{name} already exists (at {current})", details={"ref": name, "current": current}
            ) from None
        except git_errors() as exc:
            raise _translate(exc, name) from exc
    try:
        with repo.transaction() as tx:
            tx.lock_ref(name)
            current = read_ref(repo, name)
            if current != expected:
                if expected is None:
                    raise AlreadyExistsError(
                        f"{name} already exists (at {current})",
                        details={"ref": name, "current": current},
                    )
                raise RefMovedError(
                    f"{name} moved: expected {expected}, found {current}",
                    hint="someone else changed this fork; look at `avfs log` and retry",
                    details={"ref": name, "expected": expected, "current": current},
                )
            if new is None:
                tx.remove(name)
            else:
                tx.set_target(name, new, message=message)
    except git_errors() as exc:
        raise _translate(exc, name) from exc


def _translate(exc: Exception, name: str) -> Exception:
    text = str(exc)
    if "lock" in text.lower():
        return RefMovedError(
            f"{name} is being updated by another process: {text}",
            hint="retry in a moment",
            details={"ref": name},
        )
    return git_error(exc, f"cannot update {name}")

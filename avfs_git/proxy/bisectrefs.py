"""A bisect's refs, kept from one confined command to the next.

``git bisect`` keeps its state in the fork's worktree git dir: the ``BISECT_*`` files
(``BISECT_START``, ``BISECT_LOG``, ``BISECT_TERMS``...), which the sandbox writes in place,
and the refs ``refs/bisect/bad``, ``good-<id>``, ``skip-<id>`` (refs of that worktree
alone). The sandbox gives the worktree's ``refs/`` a scratch of the run's own (:mod:`.seal`:
so that no ref there names an object the vault never got; ``git fsck`` checks a worktree's
refs), so without this a bisect started in one ``proxy exec`` lost its refs before the next
(``git bisect good`` there: "You need to give me at least one good and one bad revision").

:func:`seed` copies the worktree's bisect refs into the run's scratch before it;
:func:`keep` makes what the command's git left there the worktree's own after it, each
only when it names an object the vault holds (any other is reported and dropped, as every
other ref of the run is). They live in ``<worktree git dir>/refs/bisect/``, where git in the
mount finds them: the person's ``git bisect log``, ``git status`` ("You are currently
bisecting") and ``git bisect reset`` there see the bisect the commands made, as in a clone.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from ..core.store import deeptree, refs
from ..core.workspace.untrusted import read_file

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault

BISECT = "bisect"  # below a worktree's refs/
_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_MAX_REF = 4096
MAX_REFS = 1024  # bisect refs carried from run to run: more are not a bisect's (docs/security.md)


def _read(refs_dir: str) -> dict[str, bytes] | None:
    """The bisect refs of a worktree's ``refs`` directory ``refs_dir`` (its ``bisect/``,
    never through a link): name -> the file's bytes (b"": not a regular file of a ref's
    size); None when it holds more than :data:`MAX_REFS` (none read)."""
    out: dict[str, bytes] = {}
    try:
        fd = os.open(
            os.path.join(refs_dir, BISECT), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        )
    except OSError:
        return out
    try:
        names = [n for n in os.listdir(fd) if not n.endswith(".lock")]
        if len(names) > MAX_REFS:
            return None
        for name in names:
            out[name] = read_file(name, _MAX_REF, dir_fd=fd) or b""
    finally:
        os.close(fd)
    return out


def _put(refs_dir: str, wanted: dict[str, bytes]) -> None:
    """Make ``refs_dir``'s ``bisect/`` hold exactly ``wanted`` (name -> bytes), or be
    absent when it is empty (a link or a file there is removed, never followed)."""
    d = os.path.join(refs_dir, BISECT)
    if os.path.islink(d) or (os.path.lexists(d) and not os.path.isdir(d)):
        os.unlink(d)
    if not wanted:
        deeptree.rmtree(d, ignore_errors=True)
        return
    os.makedirs(d, exist_ok=True)
    for name in set(os.listdir(d)) - set(wanted):
        p = os.path.join(d, name)
        if os.path.isdir(p) and not os.path.islink(p):
            deeptree.rmtree(p, ignore_errors=True)
        else:
            os.unlink(p)
    for name, data in wanted.items():
        if read_file(os.path.join(d, name)) == data:
            continue
        tmp = os.path.join(d, f".{name}.avfs-new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(d, name))


def seed(real: str, scratch: str) -> None:
    """Before the run: the worktree's bisect refs (of its ``refs`` directory ``real``, as
    the last run or the person's git in the mount left them) into the run's scratch
    ``refs`` directory ``scratch`` (emptied already)."""
    kept = {
        n: v for n, v in (_read(real) or {}).items() if _HEX.fullmatch(v.decode("ascii", "replace").strip())
    }
    if kept:
        _put(scratch, kept)


def keep(vault: Vault, scratch: str, git_dir: str) -> list[dict[str, Any]]:
    """After the run: the bisect refs the command's git left in ``scratch`` become the
    worktree's own (``git_dir``'s ``refs/bisect/``), each that names an object of the
    vault; a ``refs_refused`` entry for any other (dropped). O(1) when neither holds any."""
    now = _read(scratch)
    real = os.path.join(git_dir, "refs")
    if now == {} and (not os.path.lexists(os.path.join(real, BISECT)) or _read(real) is None):
        return []  # (none either side; or the person's own, too many to be seeded: never seen)
    refused: list[dict[str, Any]] = []
    kept: dict[str, bytes] = {}
    if now is None:
        why = f"more than {MAX_REFS} bisect refs: none kept"
        refused.append({"ref": f"{refs.REFS}{BISECT}/", "old": None, "new": None, "reason": why})
    for name, data in sorted((now or {}).items()):
        value = data.decode("ascii", "replace").strip()
        if _HEX.fullmatch(value) and vault.store.has_object(value):
            kept[name] = (value + "\n").encode()
            continue
        why = "it names no object of the vault" if _HEX.fullmatch(value) else "not an object id"
        shown = value[:200] or None
        refused.append({"ref": f"{refs.REFS}{BISECT}/{name}", "old": None, "new": shown, "reason": why})
    try:
        _put(real, kept)
    except OSError as exc:
        refused.append(
            {"ref": f"{refs.REFS}{BISECT}/", "old": None, "new": None, "reason": f"not kept: {exc}"}
        )
    return refused

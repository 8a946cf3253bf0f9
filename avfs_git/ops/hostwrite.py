"""Writing a fork's files into a plain directory of the host, for ``export`` and ``apply``
(:mod:`.quickstart`): what the host holds at a path, a file or symlink put in place by
rename, which paths a fork changed between two trees, why writing one would lose a change
made in the directory (:func:`conflict_reason`), and the copy of those changes, never
through a symlink of the directory.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from ..core.errors import AvfsError, InvalidPathError
from ..core.records import dataclass
from ..core.store import deeptree, names
from ..core.store.gitstore import GitStore, blob_id, file_blob_id
from ..core.types import MODE_BLOB, MODE_COMMIT, MODE_EXEC, MODE_LINK, MODE_TREE, NodeKind, kind_of_mode

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault
    from ..core.workspace.plantedrule import Reader


Entry = tuple[str, int]  # (blob id, git mode) of one file or symlink


@dataclass(frozen=True, slots=True)
class ApplyChange:
    """One path the fork changed since ``base``. ``applied``: False when the directory
    already held the fork's version (or, in patch mode, nothing is written)."""

    path: str
    status: str  # added | modified | deleted | type_changed
    applied: bool


@dataclass(frozen=True, slots=True)
class ApplyConflict:
    path: str
    reason: str


def host_entry(full: str) -> Entry | Literal["dir", "blocked"] | None:
    """What the host holds at ``full``: a (blob id, mode), None (nothing), "dir", or
    "blocked" (a parent is not a directory)."""
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return "blocked"
    if stat.S_ISLNK(st.st_mode):
        return blob_id(os.fsencode(os.readlink(full))), MODE_LINK
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISREG(st.st_mode):
        return file_blob_id(full), MODE_EXEC if st.st_mode & 0o111 else MODE_BLOB
    return "blocked"


def is_empty_dir(path: str) -> bool:
    with os.scandir(path) as it:
        return next(it, None) is None


def replace_with_file(full: str, data: bytes, mode: int, keep_perms: bool = False) -> None:
    """Put ``data`` at ``full`` (a file, or a symlink when ``mode`` is MODE_LINK) by rename."""
    parent = os.path.dirname(full)
    tmp = os.path.join(parent, f".avfs-tmp-{os.getpid()}-{time.monotonic_ns()}")  # short: NAME_MAX
    if os.path.isdir(full) and not os.path.islink(full):
        deeptree.rmtree(full)
    if mode == MODE_LINK:
        os.symlink(os.fsdecode(data), tmp)
        os.replace(tmp, full)
        return
    umask = os.umask(0)
    os.umask(umask)
    perms = 0o666 & ~umask
    if keep_perms:
        try:
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                perms = st.st_mode & 0o666
        except FileNotFoundError:
            pass
    if mode == MODE_EXEC:
        perms |= (perms & 0o444) >> 2  # x wherever r
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, perms)
        os.replace(tmp, full)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def fork_changes(
    store: GitStore, old_tree: str, new_tree: str
) -> dict[str, tuple[Entry | None, Entry | None]]:
    """Path -> (old, new) of every file or symlink that differs (no rename pairing)."""
    from ..core.store.treedeltas import tree_deltas

    out: dict[str, tuple[Entry | None, Entry | None]] = {}
    for a, b in tree_deltas(store, old_tree, new_tree):
        old: Entry | None = None
        new: Entry | None = None
        if a.mode not in (0, MODE_COMMIT, MODE_TREE) and a.oid is not None:
            old = (a.oid, a.mode)
        if b.mode not in (0, MODE_COMMIT, MODE_TREE) and b.oid is not None:
            new = (b.oid, b.mode)
        for path, o, n in ((a.path, old, None), (b.path, None, new)):
            if o is None and n is None:
                continue
            prev = out.get(path, (None, None))
            out[path] = (o or prev[0], n or prev[1])
    return out


def change_status(old: Entry | None, new: Entry | None) -> str:
    if old is None:
        return "added"
    if new is None:
        return "deleted"
    if (old[1] == MODE_LINK) != (new[1] == MODE_LINK):
        return "type_changed"
    return "modified"


def refuse_unsafe_paths(vault: Vault, fork: str, base: str, paths: Iterable[str]) -> None:
    """Refuse (before anything is written) a change whose path could leave the target or
    reach into its ``.git``: '..', '.git' in any case, control characters, an absolute or
    not normalised path. A fork's tree can hold such entries when they were made with git
    plumbing (a push into the vault, a clone or pull of an untrusted remote)."""
    bad: list[dict[str, str]] = []
    for path in sorted(paths):
        try:
            why = None if names.norm_path(path) == path else "not a normalised path"
        except AvfsError as exc:
            why = exc.message
        if why is not None:
            bad.append({"path": path, "reason": why})
    if bad:
        listing = "; ".join(repr(b["path"]) for b in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise InvalidPathError(
            f"fork {fork} of vault {vault.name} changes paths that cannot be written into a"
            f" directory: {listing}{more}; nothing was applied",
            hint="such entries ('..', '.git', control characters) come from git plumbing (a push,"
            " a clone of an untrusted remote): rewrite the fork's commits without them",
            details={"fork": fork, "base": base, "paths": bad},
        )


def refuse_planted(
    store: GitStore, target: str, fork: str, changes: dict[str, tuple[Entry | None, Entry | None]]
) -> None:
    """Refuse (before anything is written) changes that would complete, in ``target`` as
    it is now, a repository that runs a program in the person's git there (the rule of
    every avfs write, :mod:`..core.workspace.plantedrule`), looked at only where a changed
    path names git's own state. The fork holds half of one at most (its writes are
    checked), but the directory may hold the other: a bare-looking fixture of the
    person's (``HEAD``, ``objects/``, ``refs/``) made after the import, and the agent's
    ``src/config`` naming ``core.fsmonitor`` beside it ran at the person's next ``git
    status`` there (found in the thirty-fifth round, plant3). A deletion is not taken
    away from the directory's side (it refuses at most what git would not run)."""
    from ..core.workspace import plantedrule as rule

    written = {p: n for p, (_o, n) in changes.items() if n is not None}
    dirs = rule.dirs_of(written)
    if not dirs:
        return
    pending: dict[str, tuple[str, bytes | None]] = {}
    for path, (oid, mode) in written.items():
        pending[path] = (rule.LINK if mode == MODE_LINK else rule.FILE, rule.config_bytes(store, path, oid))
    reader = rule.with_pending(_directory_reader(target), pending)
    found = next((f for d in sorted(dirs) if (f := rule.why(reader, d)) is not None), None)
    if found is not None:
        raise InvalidPathError(
            f"fork {fork}: refused, writing its changes into {target} would make a git repository"
            f" there that runs a program in the person's git ({found}); nothing was applied",
            hint="git runs the config and hooks of a repository wherever it finds one: rename or"
            " remove the fork's files of it, or the directory's (HEAD, config, objects/, refs/, hooks/)",
            details={"fork": fork, "dir": target, "found": found},
        )


def refuse_planted_over(view: Any, target: str, fork: str, nodes: list[Any]) -> dict[str, bytes]:
    """Refuse (before anything is written) an export of ``view`` over the non-empty
    directory ``target`` (``--force``), where the two would make together a repository
    that runs a program in the person's git (the fork's files replace the directory's at
    the same paths, the rest of the directory stays): as :func:`refuse_planted` for an
    apply. ``nodes``: what the export writes, walked once; the fork's side is read from
    them, and the bytes read of its overlay files are returned, for the export to write as
    they were looked at (:func:`write_node`): it walked the view again to write, and a
    running command's ``src/config`` written between the walks went out unlooked at
    (review38, plant5)."""
    from ..core.workspace import plantedrule as rule

    dirs = rule.dirs_of([n.path for n in nodes])
    if not dirs:
        return {}
    top, pinned = _nodes_reader(view, nodes)
    below = _directory_reader(target)

    def kind(path: str) -> str | None:
        return top.kind(path) or below.kind(path)

    def read(path: str, limit: int) -> bytes | None:
        return top.read(path, limit) if top.kind(path) is not None else below.read(path, limit)

    def names(path: str) -> list[str]:
        return sorted({*(top.names(path) if top.kind(path) == rule.DIR else ()), *below.names(path)})

    both = rule.Reader(kind, read, names)
    found = next((f for d in sorted(dirs) if (f := rule.why(both, d)) is not None), None)
    if found is not None:
        raise InvalidPathError(
            f"fork {fork}: refused, writing it over {target} would make a git repository there"
            f" that runs a program in the person's git ({found}); nothing was written",
            hint="export into a new or empty directory, or remove the directory's files of that"
            " repository (HEAD, config, objects/, refs/, hooks/) first",
            details={"fork": fork, "dir": target, "found": found},
        )
    return pinned


def _nodes_reader(view: Any, nodes: list[Any]) -> tuple[Reader, dict[str, bytes]]:
    """A :class:`.plantedrule.Reader` of the fork's side as ``nodes`` (of ``view``, walked
    once) hold it, and the bytes it reads of each overlay file (filled as it reads)."""
    from ..core.workspace import plantedrule as rule

    by_path = {n.path: n for n in nodes}
    kids: dict[str, list[str]] = {}
    for p in by_path:
        parent, _, name = p.rpartition("/")
        kids.setdefault(parent, []).append(name)
    pinned: dict[str, bytes] = {}

    def kind(path: str) -> str | None:
        n = by_path.get(path)
        if n is None:
            return rule.DIR if not path else None
        return rule.DIR if n.mode == MODE_TREE else rule.LINK if n.mode == MODE_LINK else rule.FILE

    def read(path: str, limit: int) -> bytes | None:
        n = by_path.get(path)
        if n is None or n.mode in (MODE_TREE, MODE_LINK, MODE_COMMIT) or view.size(n) > limit:
            return None  # (its size first: a 10 GB file moved to a config is not read)
        data = bytes(view.read_node(n, limit + 1))
        if len(data) > limit:
            return None
        if n.materialized:  # (a blob is the same bytes when read again)
            pinned[path] = data
        return data

    def names(path: str) -> list[str]:
        return list(kids.get(path, ()))

    return rule.Reader(kind, read, names), pinned


def _is_text(path: str) -> bool:
    """Whether ``path`` is UTF-8 text: a name git recorded with bytes that are not (an
    imported history's) is no avfs path, so ``Workspace.read`` refuses it; the export reads
    it by its node and writes it under those bytes, as git checks it out."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def write_node(
    ws: Any, view: Any, forms: Any, tree: str, n: Any, full: str, pinned: dict[str, bytes] | None
) -> NodeKind | None:
    """Write node ``n`` of the fork's ``view`` (of workspace ``ws``, base tree ``tree``) at
    ``full``, for an export: a directory made (a link or a file there replaced), a symlink,
    a file served from git as `git checkout` (and the mount) writes it (``forms``), an
    overlay file as it is now. ``pinned`` (an export over a non-empty directory,
    :func:`refuse_planted_over`): an overlay file looked at is written with the bytes
    looked at, and one no longer of its node's kind (a running command's change since the
    walk) is not written. The kind written, None for none."""
    import functools

    kind = kind_of_mode(n.mode)
    if kind is NodeKind.DIR:
        if os.path.lexists(full) and (os.path.islink(full) or not os.path.isdir(full)):
            os.unlink(full)
        os.makedirs(full, exist_ok=True)
    elif kind is NodeKind.SYMLINK:
        replace_with_file(full, os.fsencode(view.link_target(n)), MODE_LINK)
    elif kind is NodeKind.FILE:
        oid, read = None if n.materialized else n.oid, [b""]
        kept = functools.partial(_kept, read, view, n)
        form = None if oid is None else forms.form(tree, n.path, oid, n.mode, kept)
        if form is not None or read[1:]:  # (the blob read for it: not read again)
            replace_with_file(full, read[-1] if form is None else form, n.mode)
        elif pinned is not None and n.path in pinned:
            replace_with_file(full, pinned[n.path], n.mode)
        elif _is_text(n.path):
            mode = ws.stat(n.path).mode
            if pinned is not None and kind_of_mode(mode) is not kind:
                return None
            replace_with_file(full, ws.read(n.path), mode)
        else:
            replace_with_file(full, view.read_node(n), n.mode)
    else:
        return None
    return kind


def _kept(read: list[bytes], view: Any, n: Any) -> bytes:
    read.append(bytes(view.read_node(n)))
    return read[-1]


def _directory_reader(root: str) -> Any:
    """A :class:`.plantedrule.Reader` of the host directory ``root`` (no link followed at
    the path's last name; a config read at most ``limit`` bytes)."""
    from ..core.workspace import plantedrule as rule

    def kind(path: str) -> str | None:
        try:
            st = os.lstat(os.path.join(root, path))
        except OSError:
            return None
        return rule.DIR if stat.S_ISDIR(st.st_mode) else rule.LINK if stat.S_ISLNK(st.st_mode) else rule.FILE

    def read(path: str, limit: int) -> bytes | None:
        try:
            fd = os.open(os.path.join(root, path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = os.read(fd, limit + 1)
        finally:
            os.close(fd)
        return data if len(data) <= limit else None

    def names(path: str) -> list[str]:
        try:
            return os.listdir(os.path.join(root, path))
        except OSError:
            return []

    return rule.Reader(kind, read, names)


def parent_problem(target: str, path: str, deleted: set[str]) -> tuple[str | None, bool]:
    """Check the directories above ``path`` in ``target`` without following a symlink.

    Returns (why writing ``path`` would go through something that is not a plain directory
    of the target, or None; whether ``path`` is absent because a parent is missing or is a
    file or symlink the fork deletes anyway). A symlink is never followed: like git ("beyond
    a symbolic link"), a parent that is a symlink (``cache -> /elsewhere``) is a conflict.
    """
    full = target
    rel = ""
    for comp in path.split("/")[:-1]:
        rel = f"{rel}/{comp}" if rel else comp
        full = os.path.join(full, comp)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            return None, True
        if stat.S_ISDIR(st.st_mode):
            continue
        if rel in deleted:
            return None, True  # the fork removes it (its own check covers a change there)
        if stat.S_ISLNK(st.st_mode):
            return f"beyond the symbolic link {rel} in the target", False
        return f"{rel} is not a directory in the target", False
    return None, False


def conflict_reason(
    target: str, path: str, cur: Entry | str | None, old: Entry | None, deleted: set[str]
) -> str | None:
    """Why writing the fork's version of ``path`` would lose a change made in ``target``."""
    if cur == old:
        return None
    if cur == "blocked":
        return "a parent is not a directory in the target"
    if cur == "dir":
        # a directory the fork replaced by a file: fine when it holds only files being deleted
        full = os.path.join(target, path)
        for root, dirnames, files in deeptree.walk(full):
            for fn in files + [d for d in dirnames if os.path.islink(os.path.join(root, d))]:
                rel = os.path.relpath(os.path.join(root, fn), target).replace(os.sep, "/")
                if rel not in deleted:
                    return "is a directory in the target holding other files"
        return None
    if cur is None:
        return "deleted in the target"
    if old is None:
        return "added in the target"
    return "changed in the target"


def compare_with_directory(
    target: str, changes: dict[str, tuple[Entry | None, Entry | None]]
) -> tuple[list[tuple[str, Entry | None, Entry | None]], list[ApplyChange], list[ApplyConflict]]:
    """A fork's ``changes`` (path -> (old, new)) against what ``target`` holds: (the changes
    to write, the ones the directory already holds, the ones it changed too: conflicts,
    also to write when forced). A missing ``target`` (a patch is written) holds ``old``."""
    deleted = {p for p, (_o, n) in changes.items() if n is None}
    conflicts: list[ApplyConflict] = []
    todo: list[tuple[str, Entry | None, Entry | None]] = []
    done: list[ApplyChange] = []
    has_dir = os.path.isdir(target)
    for path in sorted(changes):
        old, new = changes[path]
        why, absent = parent_problem(target, path, deleted) if has_dir else (None, False)
        if why is not None:
            conflicts.append(ApplyConflict(path, why))
            todo.append((path, old, new))
            continue
        cur = None if absent else host_entry(os.path.join(target, path)) if has_dir else old
        if cur == new:
            done.append(ApplyChange(path, change_status(old, new), False))
            continue
        why = conflict_reason(target, path, cur, old, deleted)
        if why is not None:
            conflicts.append(ApplyConflict(path, why))
        todo.append((path, old, new))
    return todo, done, conflicts


def _is_plain_dir(target: str, rel: str) -> bool:
    """True when ``rel`` and every directory above it in ``target`` is a plain directory
    (lstat: no symlink is followed); False when one is missing, a file or a symlink."""
    full = target
    for comp in rel.split("/") if rel else ():
        full = os.path.join(full, comp)
        try:
            if not stat.S_ISDIR(os.lstat(full).st_mode):
                return False
        except (FileNotFoundError, NotADirectoryError):
            return False
    return True


def _make_parents(target: str, path: str) -> None:
    """Make the directories above ``path`` in ``target``, never through a symlink: a file
    or symlink in the way (checked as a conflict before, or overridden by ``force``) is
    replaced by a directory."""
    full = target
    for comp in path.split("/")[:-1]:
        full = os.path.join(full, comp)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            os.mkdir(full)
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        os.unlink(full)  # the symlink itself, never what it points at
        os.mkdir(full)


def copy_changes(
    store: GitStore, target: str, todo: list[tuple[str, Entry | None, Entry | None]]
) -> list[ApplyChange]:
    """Write ``todo`` into ``target``. Paths were checked by :func:`refuse_unsafe_paths`;
    no symlink in the target is followed (a deletion beneath one deletes nothing, a write
    beneath one replaces it by a directory: only reached with ``force``)."""

    out: list[ApplyChange] = []
    # deletions first (deepest first), then empty parent directories, then writes
    for path, old, new in sorted(todo, key=lambda t: t[0], reverse=True):
        if new is not None:
            continue
        full = os.path.join(target, path)
        if _is_plain_dir(target, os.path.dirname(path)):
            if os.path.isdir(full) and not os.path.islink(full):
                deeptree.rmtree(full)
            elif os.path.lexists(full):
                os.unlink(full)
        out.append(ApplyChange(path, change_status(old, new), True))
        parent = os.path.dirname(path)
        while parent and _is_plain_dir(target, parent) and is_empty_dir(os.path.join(target, parent)):
            os.rmdir(os.path.join(target, parent))
            parent = os.path.dirname(parent)
    for path, old, new in sorted(todo, key=lambda t: t[0]):
        if new is None:
            continue
        _make_parents(target, path)
        replace_with_file(os.path.join(target, path), store.blob_data(new[0]), new[1], keep_perms=True)
        out.append(ApplyChange(path, change_status(old, new), True))
    return out

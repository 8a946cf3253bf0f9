"""Public result types: frozen dataclasses, typed ids, string enums."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Any, NewType

from .records import dataclass

CommitId = NewType("CommitId", str)
TreeId = NewType("TreeId", str)
BlobId = NewType("BlobId", str)

# git file modes as ints (pygit2.enums.FileMode values), kept here so that modules which
# only need the numbers do not import pygit2.
MODE_TREE = 0o040000
# a workspace's open merge (conflicts written), in its state dir: see mergestate.merge_state
MERGE_STATE_FILE = "merge.json"
# what proxy exec set aside of repositories planted in the fork, in its state dir (.planted)
PLANTED_FILE = "planted-git.json"
# the side file a swap through a live overlay mount makes beside a path (core/workspace/
# liveswap.py: ".avfs-adopt-" and 12 hex digits, then 16 of a check where the workspace has
# a key: core/workspace/sidekey.py; only a checked one is avfs's own, never a change)
SWAP_SIDE_PREFIX = ".avfs-adopt-"


def is_swap_side(name: str) -> bool:
    """Whether ``name`` (a file name, no directory) is shaped like a swap's side file's
    (:data:`SWAP_SIDE_PREFIX` and 12 or 28 lowercase hex digits, as ``liveswap.side_name``
    makes). The shape only: anyone can make such a name (``sidekey.owns`` tells avfs's)."""
    tail = name[len(SWAP_SIDE_PREFIX) :]
    return name.startswith(SWAP_SIDE_PREFIX) and len(tail) in (12, 28) and not tail.strip("0123456789abcdef")


# the overlay's count of views set wholesale (wsbase.set_base without keep_view: a restore,
# an undo, a merge's conflicts written, an abort): an open merge ends at the next one
VIEW_RESETS = "view_resets"
MODE_BLOB = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000
MODE_COMMIT = 0o160000  # a submodule (gitlink): shown, never followed


class NodeKind(enum.StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    SUBMODULE = "submodule"


def kind_of_mode(mode: int) -> NodeKind:
    if mode == MODE_TREE:
        return NodeKind.DIR
    if mode == MODE_LINK:
        return NodeKind.SYMLINK
    if mode == MODE_COMMIT:
        return NodeKind.SUBMODULE
    return NodeKind.FILE


class ChangeStatus(enum.StrEnum):
    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"
    RENAMED = "renamed"
    TYPE_CHANGED = "type_changed"


SCHEMA_VERSION = 1  # of every --json document


def json_document(kind: str, data: dict[str, Any]) -> str:
    """The text of one ``--json`` document (one line, newline-terminated)."""
    import json

    doc: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "kind": kind}
    doc.update(to_json(data))
    text = json.dumps(doc, ensure_ascii=False, sort_keys=False) + "\n"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a name or argument that is not UTF-8: escape, stay valid JSON
        text = json.dumps(doc, ensure_ascii=True, sort_keys=False) + "\n"
    return text


def to_json(value: Any) -> Any:
    """Turn result dataclasses (and lists/dicts of them) into JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple, Sequence)) and not isinstance(value, (str, bytes)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class Stat:
    """What the workspace knows about one path."""

    path: str
    kind: NodeKind
    mode: int
    size: int
    oid: str | None  # git object id when the path is unchanged (not materialized)
    materialized: bool  # content lives in the overlay
    target: str | None = None  # symlink target


@dataclass(frozen=True, slots=True)
class DirEntry:
    name: str
    path: str
    kind: NodeKind
    mode: int
    size: int | None


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    status: ChangeStatus
    old_path: str | None = None
    old_mode: int | None = None
    new_mode: int | None = None
    old_oid: str | None = None
    new_oid: str | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """Another hand's commit a mounted fork did not adopt for paths both changed
    (core/workspace/wsadopt.py; `avfs status`'s ``unadopted``): ``head`` the commit,
    ``conflicts`` those paths."""

    head: str
    conflicts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CommitInfo:
    id: CommitId
    parents: list[str]
    tree: TreeId
    author: str
    author_email: str
    time: str  # the committer's, RFC 3339 UTC
    message: str
    checkpoints: list[str] = dataclasses.field(default_factory=list)
    author_time: str = ""  # the author's (git log's ``Date:``), RFC 3339 UTC


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    vault: str
    fork: str
    name: str | None
    commit: CommitId
    parent: str | None
    time: str
    message: str
    changes: int | None  # files changed from the parent (None: not counted, e.g. in lists)


@dataclass(frozen=True, slots=True)
class ForkInfo:
    vault: str
    name: str
    head: CommitId  # (None only with ``error``: a branch file of junk)
    base: CommitId
    dirty: bool
    is_default: bool
    # a listing's fork that cannot be read (its branch damaged, its commit missing): the
    # error it gave (:meth:`AvfsError.to_dict`), the others listed around it
    error: dict[str, Any] | None = None


class IgnoredMode(enum.StrEnum):
    """How a new fork got the source's paths git ignores (node_modules, .venv, caches)."""

    SNAPSHOT = "snapshot"  # copy-on-write: the source's state dir snapshotted (btrfs), O(1)
    COPIED = "copied"  # captured as git objects into the fork's starting tree (not on a ref)
    NONE = "none"  # left out (``--no-ignored``): a clean fork


class MergeDiff(enum.StrEnum):
    """What a merge's diff is in each way avfs prints commits (git's rules:
    core/operations/showdiff.py). Here, where `log` finds them without loading the git
    runner that module imports (tests/test_coldstart.py)."""

    COMBINED = "combined"  # `show`: git's --cc
    FIRST_PARENT = "first-parent"  # `log -p` of a fork's first-parent line, `show --stat`
    NONE = "none"  # `log -p`/`--stat` of a walk through every parent (`--all`, `A..B`)


@dataclass(frozen=True, slots=True)
class IgnoredCarry:
    mode: IgnoredMode
    reason: str | None = None  # why not a snapshot (None when it is one)


@dataclass(frozen=True, slots=True)
class ForkCreated:
    """What ``Vault.fork`` made: the fork, and how it got what git does not hold."""

    fork: ForkInfo
    ignored: IgnoredCarry


@dataclass(frozen=True, slots=True)
class VaultInfo:
    name: str
    path: str
    forks: list[str]
    default_fork: str
    head: CommitId | None
    quota_bytes: int
    is_default: bool
    # `vault list`'s vault that cannot be read (its default branch damaged, its config a
    # FIFO): the error it gave (:meth:`AvfsError.to_dict`), the others listed around it
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    id: int
    time: str
    kind: str
    fork: str | None
    summary: str
    refs: list[dict[str, str | None]]
    undone_by: int | None
    undoes: int | None
    # files of a live overlay mount the operation left at their path, a process holding them
    # open for writing (its details' ``kept_open``; livewrite2): not what it made them
    kept_open: tuple[str, ...] = ()
    exec_id: str | None = None  # an ``exec``'s call (``audit:OFFSET``, as `avfs audit` names it)

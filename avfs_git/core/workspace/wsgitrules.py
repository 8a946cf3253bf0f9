"""Where git takes a workspace's path otherwise than as its file, shared by a status
(:mod:`.wsstatus`) and a checkpoint's capture (:mod:`.wscapture`): the ``.gitmodules`` and
``.gitattributes`` contents ``git fsck`` refuses (:class:`FsckRead`, :func:`fsck_read`,
:func:`content_check`: left out, reported as not recorded), and a submodule's checkout that
git's index in the fork's mount stages as a gitlink (:func:`staged_submodules`: taken as
that gitlink, not its files).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..records import dataclass
from ..store import gitattributes, gitmodules, gitnames
from ..store.gitstore import GitStore, blob_id
from ..types import MODE_BLOB, MODE_EXEC
from . import overlayentry
from .overlay import Overlay
from .overlayentry import DELETED, FILE, Entry


@dataclass(frozen=True, slots=True)
class FsckRead:
    """A file ``git fsck`` reads and may refuse for its contents, not its name: how large it
    reads one (past ``large``: refused as ``too_large``) and what it refuses in it."""

    name: str
    large: int
    too_large: tuple[str, str]
    refusal: Callable[[bytes], tuple[str, str] | None]


GITMODULES = FsckRead(".gitmodules", gitmodules.LARGE, gitmodules.TOO_LARGE, gitmodules.refusal)
GITATTRIBUTES = FsckRead(
    ".gitattributes", gitattributes.LARGE, gitattributes.TOO_LARGE, gitattributes.refusal
)


def fsck_read(name: str, e: Entry) -> FsckRead | None:
    """What ``git fsck`` checks in the contents of ``e`` (named ``name``): a regular file
    named ``.gitmodules`` (read as git config) or ``.gitattributes`` (its lines), or an
    NTFS/HFS+ synonym; None for any other entry (see :func:`content_check`)."""
    if e.kind == DELETED or e.mode not in (MODE_BLOB, MODE_EXEC):
        return None
    if gitnames.is_gitmodules(name):
        return GITMODULES
    if gitnames.is_gitattributes(name):
        return GITATTRIBUTES
    return None


def content_check(
    store: GitStore, overlay: Overlay, e: Entry, under: str | None, rule: FsckRead
) -> tuple[bytes | None, tuple[str, str] | None]:
    """(the bytes entry ``e`` holds, (kind, reason) when ``git fsck`` refuses them under
    ``rule``, see :mod:`.gitmodules` and :mod:`.gitattributes`), for an entry
    :func:`fsck_read` gave ``rule`` for. Contents equal to ``under`` (the blob the tree
    holds there without the entry) are taken: nothing new is recorded. The bytes are None
    when too large to check (refused: ``rule.too_large``). Raises FileNotFoundError for an
    overlay file gone since ``e`` was read."""
    if e.kind == FILE:
        assert e.fileid is not None
        with os.fdopen(overlay.open_regular(e.fileid), "rb") as fh:
            if os.fstat(fh.fileno()).st_size > rule.large:
                return None, rule.too_large
            data = fh.read()
    else:
        assert e.oid is not None
        if e.oid == under:
            return None, None
        data = store.read_object(e.oid, "blob")[1]
    got = rule.refusal(data)
    if got is not None and under is not None and blob_id(data) == under:
        got = None
    return data, got


def staged_submodules(
    store: GitStore, base_tree: str, staged: Callable[[list[str]], dict[str, str]], paths: list[str]
) -> dict[str, str]:
    """The directories of ``paths`` (new paths the view shows) where the base tree holds
    nothing and git's index in the fork's mount holds a gitlink (``staged``: of the
    directories it is given, those; path -> commit), which a status and a checkpoint take
    as git would record them: the view's directory there is that submodule's checkout
    (`git submodule add` staged it; `git commit` and `git add -A` record the gitlink, not
    the files: gitmodel13). Where the base holds something there, the view's paths are
    recorded as before (a gitlink of the base stays: :func:`.wscapture._leave_out_submodules`)."""
    dirs: set[str] = set()
    for p in paths:  # (from the deepest up, to the first known: O(new directories), record6)
        d = p.rpartition("/")[0]
        while d and d not in dirs:
            dirs.add(d)
            d = d.rpartition("/")[0]
    new = sorted(d for d in dirs if store.tree_lookup(base_tree, d) is None)
    if not new:
        return {}
    got = staged(new)
    # (the shallowest: a gitlink below another's path is that submodule's business)
    tops = frozenset(got)
    return {d: o for d, o in got.items() if d in dirs and overlayentry.cover_of(d, tops) == d}

"""An overlay entry: the absolute state of one path of a workspace's overlay, and the
values its fields take (its kinds, the file ids that name files outside ``files/``, the
empty tree).

An entry describes the *absolute* state of one path, never a delta:

    DELETED  the path is gone (a whiteout over what the base or an ancestor entry has)
    FILE     a materialized file (or symlink, mode 120000) whose bytes are ``files/<fileid>``
    OBJECT   a git object by id: a blob (unchanged content moved or restored) or a tree
             (a renamed directory, an empty new directory, a restored subtree). Nothing is
             copied; deeper entries apply on top of the tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..records import dataclass
from ..store import names
from ..types import MODE_TREE

DELETED = 0
FILE = 1
OBJECT = 2

EMPTY_TREE_ID = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
UPPER_FILE = "u:"  # a file id naming a file of the upper layer by its path
LINK_FILE = "l:"  # a file id naming a side file that holds a symlink's target
SPECIAL_ORIGIN = "special:"  # the origin of the deletion entry a fifo, socket or device makes


def special_why(kind: str) -> str:
    """Why the upper layer's special entry of ``kind`` is not recorded (``path_too_long``:
    a tree deeper than the host's paths reach, :data:`.upper.TOO_LONG`)."""
    if kind == "path_too_long":
        return "avfs records no tree deeper than the host's paths reach: it stays in the live tree"
    return f"git records no {kind.replace('_', ' ')}: it stays in the live tree"


@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    kind: int
    mode: int
    oid: str | None = None
    fileid: str | None = None
    origin: str | None = None
    size: int = 0
    seq: int = 0


# -- where entries lie: at or below directories (ignored ones: a venv, a node_modules) --
def covered(path: str, dirs: frozenset[str]) -> bool:
    """True when ``path`` is one of ``dirs`` or lies below one."""
    if path in dirs:
        return True
    i = path.find("/")
    while i >= 0:
        if path[:i] in dirs:
            return True
        i = path.find("/", i + 1)
    return False


def cover_of(path: str, dirs: frozenset[str]) -> str | None:
    """The one of ``dirs`` that ``path`` is or lies below (the shallowest), else None."""
    i = path.find("/")
    while i >= 0:
        if path[:i] in dirs:
            return path[:i]
        i = path.find("/", i + 1)
    return path if path in dirs else None


def outside(entries: list[Entry], dirs: frozenset[str]) -> list[Entry]:
    """The entries neither at nor below one of ``dirs`` (:func:`split_at`'s first half)."""
    return split_at(entries, dirs)[0] if dirs else entries


def split_at(entries: list[Entry], dirs: frozenset[str]) -> tuple[list[Entry], list[Entry]]:
    """(the entries neither at nor below one of ``dirs``, those at or below one). In path
    order (the overlay's), a run of entries below one is passed by one prefix test each: a
    ``node_modules`` of 15,000 entries costs its first entry's question and a string
    compare per other."""
    out: list[Entry] = []
    inside: list[Entry] = []
    below = "\0"
    for e in entries:
        p = e.path
        if p.startswith(below):
            inside.append(e)
            continue
        top = cover_of(p, dirs) if dirs else None
        if top is None:
            out.append(e)
        else:
            inside.append(e)
            below = top + "/"
    return out, inside


@dataclass(frozen=True, slots=True)
class Ignored:
    """The new paths of a workspace that git ignores.

    ``files``: every ignored file and symlink (what is counted); ``tops``: the fewest paths
    that hold them all (a new directory whose new paths are all ignored stands for
    everything below it).
    """

    files: tuple[str, ...] = ()
    tops: frozenset[str] = frozenset()

    def covers(self, path: str) -> bool:
        """True when ``path`` is an ignored path or lies below an ignored directory."""
        return bool(self.tops) and covered(path, self.tops)

    def listed(self, lookup: Callable[[str], Any]) -> list[str]:
        """What `status --ignored` lists: git's ``!!`` lines, one a top, a directory with a
        ``/`` (``.venv/``), sorted; the same whatever avfs walked of an ignored directory
        (``lookup``: the view's node at a top no file was found below, its ``is_dir``). It
        listed the files, so a venv was ``.venv`` or its 2,459 files after a walk (h-polish3)."""
        dirs = {t for f in self.files if f not in self.tops for t in names.ancestors(f) if t in self.tops}
        return sorted(
            f"{t}/" if t in dirs or ((n := lookup(t)) is not None and n.is_dir) else t for t in self.tops
        )


NO_IGNORED = Ignored()


def ignored_count(ignored: Ignored, touched: Iterable[str] | None = None) -> int:
    """How many paths git ignores: the one count that `status`, `checkpoint save` and `proxy
    exec` report (``ignored``), and the number of ``!!`` lines `git status --ignored` prints
    for the same tree: a new directory whose new paths git all ignores (a venv, a
    node_modules) is one path, as is each other ignored file (:attr:`Ignored.tops`). It
    does not depend on how much of an ignored directory avfs happened to walk.
    ``touched``: only those a command wrote (`proxy exec`): a path at or below one of them,
    or one holding one (pip writing into an ignored venv counts that venv)."""
    if touched is None:
        return len(ignored.tops)
    roots = frozenset(touched)
    if not roots:
        return 0
    if "" in roots:
        return len(ignored.tops)
    above = names.ancestors_of_all(roots) - {""}
    return sum(1 for p in ignored.tops if p in above or covered(p, roots))


def unignored_rows(overlay: Any, prune: Callable[[list[str], list[Entry]], set[str]]) -> list[Entry]:
    """The database's entries of ``overlay`` (an :class:`.overlay.Overlay`) in path order,
    less those strictly below a new directory git ignores: ``prune`` (the upper layer's
    walk's, :meth:`.Overlay.pruning`) asked of each directory entry no directory entry
    above it was asked about (one question per new top directory; the pruned directory's
    own entry stays: shown empty, as the walk shows one). A status of an overlay mount over a fork whose installed
    ``node_modules`` had been folded into the database (an unmounted merge's fold) read
    its 14,000 rows and asked the upper layer about each, three times a merge (~130 ms of
    CPU a status): now one row and one question each time."""
    asked: dict[str, bool] = {}  # directory -> git ignores it (its rows below not read)

    def top(e: Entry) -> str | None:
        p = e.path
        i = p.find("/")
        while i >= 0:  # (the ancestors, shallowest first: one asked answers for its range)
            got = asked.get(p[:i])
            if got is not None:
                return p[:i] if got else None
            i = p.find("/", i + 1)
        if p and e.kind != DELETED and e.mode == MODE_TREE:
            asked[p] = p in prune([p], [])
        return None

    got: list[Entry] = overlay.pruned(top)
    return got

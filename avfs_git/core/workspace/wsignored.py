"""The new directories git ignores, found while the overlay is read in path order, so that
what is below one is never read (:meth:`.overlay.Overlay.pruned`): git's status never
looks into an ignored directory, and a fork holding an installed ``node_modules`` (15,000
entries) is asked whether it is dirty three times per merge; and how many paths git
ignores, the count every command reports."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from ..store import names
from ..types import MODE_TREE
from .overlayentry import DELETED, Entry, covered

if TYPE_CHECKING:
    from ..store.gitstore import GitStore
    from .ignore import IgnoreRules
    from .overlay import Overlay


@dataclasses.dataclass(frozen=True, slots=True)
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


NO_IGNORED = Ignored()


class ReadThrough(Mapping[str, Entry]):
    """The overlay entries a pruned read has read so far, by path; another is read from
    the database when asked for (a ``.gitignore``, or its directories, sorting after)."""

    def __init__(self, overlay: Overlay) -> None:
        self.here: dict[str, Entry] = {}
        self.overlay = overlay

    def __getitem__(self, path: str) -> Entry:
        got = self.here.get(path)
        if got is None:
            got = self.overlay.get(path)
            if got is None:
                raise KeyError(path)
        return got

    def __iter__(self) -> Iterator[str]:
        return iter(self.here)

    def __len__(self) -> int:
        return len(self.here)


def ignored_top(
    store: GitStore,
    base: str,
    overlay: Overlay,
    found: set[str],
    rules: IgnoreRules,
    source: Callable[[Mapping[str, Entry], str], tuple[str, Callable[[], bytes]] | None],
) -> Callable[[Entry], str | None]:
    """For :meth:`.Overlay.pruned`, asked of the entries in path order: the new directory
    (absent from commit ``base``'s tree, its parent not) at or above an entry when git
    ignores it (``rules``, asked once per directory, its ``.gitignore`` files from
    ``source(entries read, directory)``; ``found`` collects those), else None: the
    question ``Changes._ignored_dirs`` asks of every entry at once, here one directory
    at a time, as the read meets it."""
    base_tree = store.commit_tree(base)
    is_tree: dict[str, bool] = {"": True}
    decided: dict[str, bool] = {}
    seen = ReadThrough(overlay)

    def top(e: Entry) -> str | None:
        seen.here[e.path] = e
        if e.kind == DELETED or not e.path:
            return None
        parts = e.path.split("/")
        d = ""
        for i, comp in enumerate(parts):
            d = f"{d}/{comp}" if d else comp
            if i == len(parts) - 1 and e.mode != MODE_TREE:
                return None
            got = is_tree.get(d)
            if got is None:
                hit = store.tree_lookup(base_tree, d)
                got = is_tree[d] = hit is not None and hit[1] == MODE_TREE
            if not got:
                ign = decided.get(d)
                if ign is None:
                    ign = decided[d] = d in rules.ignored((), lambda x: source(seen, x), dirs=[d])
                if ign:
                    found.add(d)
                    return d
                return None
        return None

    return top


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

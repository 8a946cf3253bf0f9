"""The new directories git ignores, found while the overlay is read in path order, so that
what is below one is never read (:meth:`.overlay.Overlay.pruned`): git's status never
looks into an ignored directory, and a fork holding an installed ``node_modules`` (15,000
entries) is asked whether it is dirty three times per merge. (What git ignores, and the
count every command reports, are :mod:`.overlayentry`'s: a status imports no more.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from ..types import MODE_TREE
from .overlayentry import DELETED, Entry

if TYPE_CHECKING:
    from ..store.gitstore import GitStore
    from .ignore import IgnoreRules
    from .overlay import Overlay


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

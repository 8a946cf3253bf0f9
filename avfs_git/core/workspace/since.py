"""What changed in a workspace since a moment: one value marks the moment (:class:`Mark`:
the clock, the overlay journal's position, the upper layer's journal position where this
process keeps it), and one object answers from it (:class:`Since`): the paths changed since
a mark, whether nothing was written at all, whether there are uncheckpointed changes and how
many. ``proxy exec`` asks it before and after its command (one question, not four helpers).

The count of uncheckpointed changes is kept, per workspace handle, where this process keeps
the upper layer's journal (the warm exec server in an overlay mount's daemon): while the
fork's ref, the base and the overlay database stay as they were and the journal says nothing
changed in the upper layer since, the count stands, and a command that writes nothing costs
no walk of the upper layer (with a 50,000-file node_modules, a status is seconds). What it
does not see: git's global excludes or the vault's info/exclude edited meanwhile (a status
then counts by the old rules once).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

from ..records import dataclass

if TYPE_CHECKING:
    from ..types import Change
    from .overlay import Overlay
    from .upperwatch import UpperWatch

# how much earlier than the clock a file's ctime may read: the kernel stamps inodes from a
# coarse clock (a tick, 1-10 ms), so a write just after a time.time_ns() can carry a ctime
# just before it; a walk by ctime looks back that far
CTIME_SLACK_NS = 50_000_000


@dataclass(frozen=True, slots=True)
class Mark:
    """A moment of a workspace: ``t_ns`` the clock, ``seq`` the overlay journal's position,
    ``jseq`` the upper layer's journal position (None where this process keeps none)."""

    t_ns: int
    seq: int
    jseq: int | None
    # the names in the upper layer's root (for when no journal answers): a removal there
    # that left no whiteout changes no inode the walk by times reads
    upper_root: frozenset[str] = frozenset()


class Watched(Protocol):
    """What :class:`Since` needs of its workspace (:class:`.workspace.Workspace` is one)."""

    overlay: Overlay

    @property
    def base(self) -> str: ...
    def tip(self) -> str | None: ...
    def status(self) -> list[Change]: ...
    def is_dirty(self) -> bool: ...


class Since:
    """A workspace's answers to "what changed since" (one per workspace handle)."""

    def __init__(self, ws: Watched) -> None:
        self.ws = ws
        # (fork ref, base, overlay seq, upper journal instance, upper journal seq, count)
        self._counted: tuple[str | None, str, int, str, int, int] | None = None

    def _journal(self) -> UpperWatch | None:
        return self.ws.overlay.upper_journal()

    def mark(self) -> Mark:
        """Now, as a :class:`Mark`."""
        journal = self._journal()
        jseq = None if journal is None else journal.changed_since(None)[0]
        return Mark(time.time_ns(), self.ws.overlay.last_seq(), jseq, self.ws.overlay.upper_root_names())

    def upper_paths(self, mark: Mark, slack_ns: int = 0) -> list[str]:
        """The paths of the upper layer changed since ``mark``: from the journal when this
        process keeps it, else a walk of the upper layer comparing ctimes (``slack_ns``
        earlier than the mark) and the names gone from its root since (a removal there
        that left no whiteout moves no inode the walk reads)."""
        journal = self._journal()
        if journal is not None and mark.jseq is not None:
            _, paths = journal.changed_since(mark.jseq)
            if paths is not None:
                return [p.rstrip("/") for p in paths]  # "dir/" (what is below) is under "dir"
        gone = sorted(mark.upper_root - self.ws.overlay.upper_root_names()) if mark.upper_root else []
        return gone + self.ws.overlay.upper_changed_since(mark.t_ns - slack_ns)

    def paths(self, mark: Mark, *, but: frozenset[str] = frozenset()) -> set[str]:
        """Every path changed since ``mark``: the overlay journal's (``but``: not by these
        operations) and the upper layer's."""
        _, touched = self.ws.overlay.changes_since(mark.seq, but=but)
        return set(touched) | set(self.upper_paths(mark))

    def untouched(self, mark: Mark) -> bool:
        """Whether nothing was written in the workspace since ``mark`` (no status taken)."""
        return not self.ws.overlay.changes_since(mark.seq)[1] and not self.upper_paths(mark, CTIME_SLACK_NS)

    def count(self) -> int:
        """How many uncheckpointed changes (``len(status())``), kept while it stands."""
        journal = self._journal()
        hit = self._counted
        stands = journal is not None and hit is not None and hit[3] == journal.instance
        if (
            stands
            and hit is not None
            and hit[:3] == (self.ws.tip(), self.ws.base, self.ws.overlay.last_seq())
        ):
            assert journal is not None
            _, changed = journal.changed_since(hit[4])
            if changed == []:
                return hit[5]
        key = None
        if journal is not None:  # taken before the status: a change while it runs is newer
            jseq, _ = journal.changed_since(None)
            key = (self.ws.tip(), self.ws.base, self.ws.overlay.last_seq(), journal.instance, jseq)
        n = len(self.ws.status())
        if key is not None:
            self._counted = (*key, n)
        return n

    def dirty(self) -> bool:
        """Uncheckpointed changes? (Where this process keeps the upper layer's journal that
        is a status: counted, and kept.)"""
        if self._journal() is None:
            return self.ws.is_dirty()
        return self.count() > 0

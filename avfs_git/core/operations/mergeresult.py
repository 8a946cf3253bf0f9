"""What a merge answers (:class:`MergeResult`) and the paths it changes in the target,
listed when first read (:class:`ChangedPaths`): :mod:`.merge`'s results, kept apart from
its machinery."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

from ..records import dataclass
from ..store.gitstore import GitStore
from ..types import CommitId, to_json
from .mergeconflicts import Conflict, _changed


@dataclass(frozen=True, slots=True)
class MergeResult:
    """``status``: up_to_date, fast_forward, merged, conflicts (nothing moved),
    conflicts_written (the target's workspace holds them), aborted; ``would_*`` for a
    dry run (fast_forward, merge, conflict). ``commit`` of a dry run that would merge is
    a preview: the merge commit it would make, referenced by nothing (`avfs diff TARGET
    PREVIEW` shows what the merge brings; gc removes it)."""

    vault: str
    source: str
    target: str
    status: str
    ours: CommitId
    theirs: CommitId
    base: CommitId | None
    commit: CommitId | None  # the target's tip afterwards (the merge commit when one was made)
    conflicts: tuple[Conflict, ...]
    changed: Sequence[str]  # paths the merge changes in the target (ChangedPaths: listed when read)
    captured: tuple[dict[str, str], ...]  # checkpoints taken of uncheckpointed changes first
    op_id: int | None
    dry_run: bool = False
    # files of the target's live overlay mount left at their path, a process holding them
    # open for writing: not what the merge made them (livewrite2)
    kept_open: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The result as `avfs --json merge` shows it in ``results`` (``changed`` listed)."""
        return dict(to_json(self))


class ChangedPaths(Sequence[str]):
    """The paths a merge changes in the target, found when first read (a diff of the
    target's tree and the merged one, as ``git diff --name-only``). The merge itself does
    not need them: at 100k files listing them is a third of the trees a merge reads."""

    __slots__ = ("_paths", "_store", "_trees")

    def __init__(
        self, store: GitStore, old_tree: str, new_tree: str, paths: tuple[str, ...] | None = None
    ) -> None:
        self._store = store
        self._trees = (old_tree, new_tree)
        self._paths = paths  # (listed already: the merge's own look at them)

    def _get(self) -> tuple[str, ...]:
        if self._paths is None:
            self._paths = _changed(self._store, *self._trees)
        return self._paths

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        return self._get()[i]

    def __len__(self) -> int:
        return len(self._get())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and not isinstance(other, str) and self._get() == tuple(other)

    def __hash__(self) -> int:
        return hash(self._get())

    def __repr__(self) -> str:
        return repr(self._get())

"""Asking an overlay mount's journal (:mod:`.upperwatch`) what changed in its upper layer:
the watch this process keeps (a mount's daemon) or the daemon's over its socket in the
mount's worktree git dir (:func:`.hookwire.ask`)."""

from __future__ import annotations

from .hookwire import UNKNOWN, ask
from .upperwatch import EVERYTHING, SINCE_PREFIX, live


def journal(
    upper_dir: str, git_dir: str | None, mark: tuple[str, int] | None
) -> tuple[str, int, list[str] | None, list[str]] | None:
    """What changed in an overlay mount's upper layer since ``mark`` (a journal's
    (instance, seq), from an earlier answer; None: none yet), asked of the journal this
    process keeps (:func:`live`) or of the mount daemon's over its socket in ``git_dir``
    (the mount's worktree): (the journal's instance, its seq now, the paths changed since
    ``mark``, None when it cannot say: another daemon's mark, one too old; the journal's
    suspects, among those paths: :meth:`.UpperWatch.suspects`). None when no journal
    answers (no live daemon)."""
    w = live(upper_dir)
    if w is not None:
        seq, paths = w.changed_since(mark[1] if mark is not None and mark[0] == w.instance else None)
        return w.instance, seq, paths, w.suspects()
    if git_dir is None:
        return None
    got = ask(git_dir, f"{SINCE_PREFIX}:{mark[0]}:{mark[1]}" if mark is not None else f"{SINCE_PREFIX}:-:0")
    if got is not None and got[:2] == [UNKNOWN, EVERYTHING] and len(got) > 2:
        got = got[2:]  # (framed as an answer to avfs's own question since plant5)
    if not got:
        return None
    head = got[0].split(":")
    if len(head) not in (3, 4) or head[0] != SINCE_PREFIX or not all(h.isdigit() for h in head[2:]):
        return None
    n = int(head[3]) if len(head) == 4 else 0  # (the last n paths: the suspects)
    if n > len(got) - 1:
        return None
    paths, suspects = got[1 : len(got) - n], got[len(got) - n :]
    if paths == [EVERYTHING] or mark is None or mark[0] != head[1]:
        return head[1], int(head[2]), None, suspects
    return head[1], int(head[2]), list(dict.fromkeys([*paths, *suspects])), suspects

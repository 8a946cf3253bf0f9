"""git's renames by similar content (``R085``, ``similarity index 85%``), asked of git.

avfs pairs a deleted and an added file of the same content itself
(:func:`.treediff.pair_renames`: O(changes), no process). git also pairs a deleted and an
added file at 50 % similar content or more (``diffcore-rename.c``: span hashes of
64-byte chunks or lines, ``diffcore-delta.c``), and its diff, `--stat` and
`--name-status` then show one rename. libgit2's ``git_diff_find_similar`` pairs the same
files on libgit2's own test repositories, but not with git's score: of the 9 inexact
renames among the fixtures' diffs, 6 had another (``cherrypick``'s R085 was R086,
``diff_format_email``'s R064/R054 were R072/R066, ``renames``' R096 was R100: libgit2's
signature skips whitespace). So git itself answers, and only where it can matter: a
diff with a deleted and an added file left unpaired after the exact pairing (one
``git diff-tree`` process; a lazy vault fetches the blobs it compares first, in one
batch).
"""

from __future__ import annotations

from ..types import Change, ChangeStatus
from .gitrun import run
from .gitstore import GitStore

_FILE = 0o170000
_KINDS = (0o100000, 0o120000)  # (a regular file's and a symlink's: git pairs no other)


def _unpaired(changes: list[Change]) -> tuple[dict[str, Change], dict[str, Change]]:
    gone = {
        c.path: c
        for c in changes
        if c.status is ChangeStatus.DELETED and c.old_mode is not None and c.old_mode & _FILE in _KINDS
    }
    made = {
        c.path: c
        for c in changes
        if c.status is ChangeStatus.ADDED and c.new_mode is not None and c.new_mode & _FILE in _KINDS
    }
    return gone, made


def git_renames(store: GitStore, old_tree: str, new_tree: str) -> list[tuple[str, str, int]]:
    """git's renames between trees ``old_tree`` and ``new_tree``: (old path, new path,
    similarity in percent), as ``git diff -M`` pairs them (``git diff-tree -r -M``)."""
    out = run(["diff-tree", "-r", "-z", "-M", "--raw", old_tree, new_tree], git_dir=store.path).stdout
    fields = out.split(b"\0")
    found: list[tuple[str, str, int]] = []
    i = 0
    while i < len(fields) - 1:
        status = fields[i].split(b" ")[-1].decode()
        if status[:1] in ("R", "C"):
            old, new = (f.decode("utf-8", "surrogateescape") for f in fields[i + 1 : i + 3])
            if status[0] == "R":
                found.append((old, new, int(status[1:] or 100)))
            i += 3
        else:
            i += 2
    return found


def pair_similar(
    store: GitStore, old_tree: str | None, new_tree: str, changes: list[Change]
) -> tuple[list[Change], dict[str, int]]:
    """``changes`` (a diff of trees ``old_tree`` and ``new_tree``, exact renames paired)
    with git's renames by similar content paired as well, and each such rename's
    similarity in percent by its new path. Asks git only where a deleted and an added
    file are left."""
    gone, made = _unpaired(changes)
    if old_tree is None or not gone or not made:
        return changes, {}
    # a lazy vault: what git compares fetched in one batch first (git's own lazy fetches
    # would go one by one, and offline fail inside git with its message, not avfs's)
    wanted = {c.old_oid: p for p, c in gone.items() if c.old_oid} | {
        c.new_oid: p for p, c in made.items() if c.new_oid
    }
    store.prefetch(wanted)
    pairs = [(o, n, s) for o, n, s in git_renames(store, old_tree, new_tree) if o in gone and n in made]
    if not pairs:
        return changes, {}
    taken = {o for o, _, _ in pairs} | {n for _, n, _ in pairs}
    out = [c for c in changes if not _taken(c, gone, made, taken)]
    for old, new, _ in pairs:
        d, a = gone[old], made[new]
        out.append(
            Change(
                new,
                ChangeStatus.RENAMED,
                old_path=old,
                old_mode=d.old_mode,
                new_mode=a.new_mode,
                old_oid=d.old_oid,
                new_oid=a.new_oid,
            )
        )
    return sorted(out, key=lambda c: c.path), {n: s for _, n, s in pairs}


def _taken(c: Change, gone: dict[str, Change], made: dict[str, Change], taken: set[str]) -> bool:
    return c.path in taken and (gone.get(c.path) is c or made.get(c.path) is c)

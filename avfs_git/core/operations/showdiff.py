"""Which diff `avfs show` and `avfs log -p`/`--stat` print for a commit, as git decides it.

A commit with one parent shows its diff against it (:func:`.history.commit_diff`). Two
cases are git's own rules, read in git 2.39's ``builtin/log.c`` and ``diff-merges.c`` and
held against git on real histories (tests/test_realdata7.py):

- A root commit shows its whole tree as added only while ``log.showroot`` is on (git's
  default; git's t4013 sets it false, and `git show` of its root commit prints the header
  alone): :func:`show_root`.
- A merge: `git show` prints its dense combined diff (``--cc``: only the files whose
  result differs from every parent, only the hunks that differ from every parent; nothing
  when the merge took each file from one side); `git log -p` and `--stat` print nothing
  for it, unless the walk is ``--first-parent`` (avfs's `log` of one fork is: git then
  shows it against its first parent, as avfs does); `show --stat` counts it against the
  first parent. The combined diff is git's own (:func:`combined_patch`: one `git
  diff-tree --cc` process, with the config git's plumbing reads: the indent heuristic,
  ``core.quotePath``), never textconv or an external diff, as avfs's own patches.

Which of these a printer wants is a :class:`~..types.MergeDiff`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..store.gitrun import run

if TYPE_CHECKING:
    from ..store.gitstore import GitStore
    from ..vaults.vault import Vault


def show_root(store: GitStore) -> bool:
    """git's ``log.showroot`` in the vault's and the person's config: whether a root
    commit's diff is shown (on unless set false). Asked only for a root commit."""
    from ..store.vaultconfig import config_bool

    return config_bool(store, "log.showroot", True)


# the most of git's argv the paths left out of a combined diff take (its arguments and
# environment share ARG_MAX, 2 MiB on Linux by default): what does not fit is cut from its output
EXCLUDE_BYTES = 64 * 1024


def combined_patch(vault: Vault, commit: str, fork: str | None = None) -> str:
    """Merge ``commit``'s dense combined diff, as `git show` prints it (empty when the
    merge took each file from one of its parents); the paths ``fork`` hides left out.

    git leaves out what :func:`excludes` names (a hidden ``node_modules``: one pathspec)
    and its output's sections of the other hidden paths are cut (git's ``diff-tree`` takes
    no ``--pathspec-from-file``). Found in the thirty-third round (tidy2, from the
    review): a pathspec a hidden path, and `show` of a merge that brought in ~100,000
    hidden files failed: the argv past ARG_MAX (``E2BIG``)."""
    from ..store.treediff import diff_trees
    from ..types import Change
    from . import history, patchheads

    store = vault.store
    c = store.commit(commit)
    changed: list[Change] = []  # (every path --cc shows differs from the first parent)
    diff_trees(store, store.commit_tree(str(c.parent_ids[0])), str(c.tree_id), "", changed)
    hiding = history._hidden(vault, fork)
    hidden = {x.path for x in changed if hiding is not None and hiding(x.path)}
    if store.promisor.remote() is not None:  # a lazy vault: what git compares, fetched in one batch
        _prefetch_sides(vault, commit, [x.path for x in changed])
    spec = excludes([x.path for x in changed], hidden)
    out = run(
        [
            "diff-tree",
            "--cc",
            "-p",
            "--no-commit-id",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            commit,
            "--",
            *spec,
        ],
        git_dir=store.path,
    ).stdout.decode("utf-8", "surrogateescape")
    if not hidden:
        return out
    quote = patchheads.path_quoting(store)  # (git's header names each path as --stat does)
    heads = {f"diff --cc {quote(p)}\n" for p in hidden}
    kept: list[str] = []
    keep = True
    # a section a path, each from its header line: a line of a hunk starts with a column
    # of ' ', '+' or '-' a parent, never with "diff"
    for line in out.splitlines(keepends=True):
        if line.startswith("diff --cc "):
            keep = line not in heads
        if keep:
            kept.append(line)
    return "".join(kept)


def excludes(paths: list[str], hidden: set[str], most: int = EXCLUDE_BYTES) -> list[str]:
    """git pathspecs leaving out of a diff the ``hidden`` ones of the changed ``paths``,
    at most ``most`` bytes of them: a directory whose changed paths are all hidden stands
    for them all (a hidden ``node_modules``: one pathspec), the others one each."""
    shown: set[str] = set()  # the directories that hold a changed path not hidden
    for p in paths:
        if p in hidden:
            continue
        while "/" in p:
            p = p.rsplit("/", 1)[0]
            if p in shown:
                break  # (and every directory above it)
            shown.add(p)
    dirs: dict[str, None] = {}
    files: list[str] = []
    for p in sorted(hidden):
        at = p.find("/")
        while at >= 0 and p[:at] in shown:
            at = p.find("/", at + 1)
        if at < 0:
            files.append(p)
        else:
            dirs[p[:at]] = None
    out: list[str] = []
    size = 0
    for p in [*dirs, *files]:  # (a directory first: it stands for more)
        arg = f":(exclude,literal){p}"
        size += len(arg.encode("utf-8", "surrogateescape")) + 1
        if size > most:
            break
        out.append(arg)
    return out


def _prefetch_sides(vault: Vault, commit: str, paths: list[str]) -> None:
    """In a lazy vault, the blobs at ``paths`` in ``commit`` and each of its parents."""
    store = vault.store
    c = store.commit(commit)
    wanted: dict[str, str] = {}
    for tree in [str(c.tree_id), *(store.commit_tree(str(p)) for p in c.parent_ids)]:
        for p in paths:
            hit = store.tree_lookup(tree, p)
            if hit is not None and hit[1] & 0o170000 in (0o100000, 0o120000):
                wanted.setdefault(hit[0], p)
    store.prefetch(wanted)

"""The blobs git needs before a confined command writes a tree from its index, on a lazy
fork (docs/lazy.md, "git inside `proxy exec`'s sandbox").

git writes a tree from its index (``git commit``, ``stash``, ``merge``, ``rebase``...)
only once every blob the index names is in the repository: in a partial clone it first
fetches, in one batch, each one the repository lacks (``cache_tree_update``'s prefetch),
whether or not the commit changes it. In a mount of a lazy fork that is most of the tree;
in ``proxy exec``'s sandbox, which has no network unless the policy gives it one, that
fetch cannot reach the server, so the agent's ``git add -A && git commit`` failed (exit
128) and the run's own record took its changes under avfs's message (found by the
realproj9 trial: two agents committing through ``proxy exec`` on lazy clones).

So, before such a command runs, the host fetches the fork's missing blobs through the
vault's promisor (``avfs vault hydrate``'s batches, its credentials and timeout): what
git on the host would have fetched itself for the same commit. Only a command line in
which the policy's parser finds ``git`` with one of :data:`WRITES_TREE` does it; a
program that runs git itself (a script) is not seen. A server out of reach fetches
nothing and the command runs anyway: git then fails with its own message, as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..core.errors import BlobNotLocalError
from ..core.store.gitrun import git_env, run
from ..policy.programs import subcommand

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault
    from ..policy.model import CommandInfo

# git's commands that write a tree from the index (through cache_tree_update), directly or
# through the sequencer
WRITES_TREE = frozenset(
    {"commit", "write-tree", "stash", "merge", "pull", "rebase", "cherry-pick", "revert", "am"}
)


def writes_tree(commands: Iterable[CommandInfo]) -> bool:
    """Whether one of the request's commands is git writing a tree from its index."""
    for c in commands:
        if os.path.basename(c.program) == "git" and subcommand("git", list(c.argv[1:])) in WRITES_TREE:
            return True
    return False


def fetch_for_git(vault: Vault, fork: str) -> int | None:
    """Fetch ``fork``'s blobs the lazy vault lacks; how many came (None: a whole vault, or
    the server did not give them, and the command's git will say so itself). Whether any
    is missing git says first (``rev-list --objects --missing=print`` of the tree, which
    fetches nothing: 0.01 s of CPU on 6,809 files where avfs's own walk of the same took
    0.22 s); the fetch is ``avfs vault hydrate``'s."""
    if vault.store.promisor.remote() is None:
        return None
    from ..core.operations.hydrate import fork_tree, hydrate

    tree = fork_tree(vault, fork)[1]
    if tree is None:
        return 0
    listed = run(
        ["rev-list", "--objects", "--missing=print", "--no-object-names", tree],
        git_dir=vault.path,
        env={**git_env(), "GIT_NO_LAZY_FETCH": "1"},
        check=False,
    )
    if listed.returncode == 0 and b"\n?" not in b"\n" + listed.stdout:
        return 0
    try:
        return hydrate(vault, fork, []).fetched_blobs
    except BlobNotLocalError:
        return None

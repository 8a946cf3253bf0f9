"""What the mount's index names after a run (:func:`.seal.carry_back`): every staged blob
is one the vault holds, so the person's `git commit` in the mount can write its tree.

The command's ``git add`` writes blobs into the run's object quarantine, which is emptied
after it; the index it leaves names them. Those the carry-back may take
(:func:`.sealobjects.import_objects`: checked, and bounded in size) go into the vault. An
entry whose blob the vault still lacks (one bigger than avfs takes, one the command staged
with ``git update-index --info-only``, or whose object it never wrote) is put back to what
the worktree's ``HEAD`` holds at that path, or taken out of the index, and said: before
the fifteenth round (NAME=attack6) it stayed, and every `git commit` of the person's in
the mount failed ("invalid object ... Error building trees") until they found it and ran
`git rm --cached`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.store.gitrun import git_env, run
from . import sealobjects

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault

_NULL = "0" * 40
_CFG = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null")
_SHOWN = 10  # paths named in the report


def keep_staged(vault: Vault, git_dir: str, od: str) -> list[dict[str, Any]]:
    """Take the blobs the index of ``git_dir`` stages that the vault lacks from the
    quarantine ``od``; put back the entries whose blob is still not there. Returns the
    ``refs_refused`` entries that say so (none when every staged blob is the vault's)."""
    env = git_env()
    env["GIT_DIR"] = git_dir
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    # only what differs from HEAD (what HEAD names is the vault's): the index's cache-tree
    # makes this ~40 ms at 100,000 files, where asking about every entry took seconds
    diff = run([*_CFG, "diff-index", "--cached", "-z", "--no-renames", "HEAD"], env=env, check=False)
    if diff.returncode != 0:
        return []  # no HEAD to compare with (an unborn branch): nothing avfs can put back
    staged: dict[str, tuple[str, str, str]] = {}  # path -> (HEAD's mode, HEAD's id, staged id)
    unmerged = False
    parts = diff.stdout.split(b"\0")
    for head, path in zip(parts[::2], parts[1::2], strict=False):
        f = head[1:].decode("ascii", "replace").split(" ")
        if len(f) < 5 or f[1] in ("000000", "160000"):
            continue  # taken out, or a gitlink (:mod:`.gitlinks`)
        if f[4] == "U":
            unmerged = True
        elif f[3] != _NULL:
            staged[path.decode("utf-8", "surrogateescape")] = (f[0], f[2], f[3])
    ids = {new for _m, _o, new in staged.values()}
    if unmerged:  # a conflict's stages: their blobs are kept too (they are never put back)
        listed = run([*_CFG, "ls-files", "-u", "-z"], env=env, check=False)
        ids.update(
            r.split(b" ")[1].decode("ascii", "replace")
            for r in listed.stdout.split(b"\0")
            if r.count(b" ") >= 2
        )
    lacking = _absent(vault, sorted(ids), None) if ids else set()
    if not lacking:
        return []
    held = sorted(lacking - _absent(vault, sorted(lacking), od))
    why = sealobjects.import_objects(vault, od, None, held) if held else None
    gone = _absent(vault, sorted(lacking), None)
    paths = sorted(p for p, (_m, _o, new) in staged.items() if new in gone)
    if not paths:
        return []
    lines = []
    for p in paths:
        mode, old, _new = staged[p]
        name = p.encode("utf-8", "surrogateescape")
        lines.append(b"0 " + _NULL.encode() + b"\t" + name + b"\0")
        if mode != "000000":
            lines.append(f"{mode} {old}\t".encode() + name + b"\0")
    run([*_CFG, "update-index", "-z", "--index-info"], env=env, input=b"".join(lines), check=False)
    named = ", ".join(paths[:_SHOWN]) + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")
    reason = (
        f"{len(paths)} staged file(s) whose content the vault does not hold"
        f" ({why or 'the command wrote no such object'}): put back to HEAD's in git's index"
        f" (the work tree keeps what it has): {named}"
    )
    return [{"ref": "index", "old": None, "new": None, "reason": reason}]


def _absent(vault: Vault, ids: list[str], od: str | None) -> set[str]:
    """Which of ``ids`` the vault (and, with ``od``, the quarantine) does not hold."""
    env = git_env()
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    if od is not None:
        env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = od
    got = run(
        ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
        git_dir=vault.path,
        env=env,
        input=("\n".join(ids) + "\n").encode(),
        check=False,
    )
    if got.returncode != 0:
        return set(ids)
    out = set()
    for line in got.stdout.decode("ascii", "replace").splitlines():
        oid, _, kind = line.partition(" ")
        if kind != "blob":  # "missing", or an object a file's entry cannot name
            out.add(oid)
    return out

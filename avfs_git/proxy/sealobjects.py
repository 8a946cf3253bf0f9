"""What the carry-back (:mod:`.seal`) takes into the vault from a run's object quarantine:
only the objects the fork's new commit (or the index's staged blobs) need, packed by git and
indexed again by ``git index-pack --strict`` where the sandbox never sees, and only commits
that add no gitlink and no name git refuses."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from typing import TYPE_CHECKING

from ..core.store import deeptree, gitnames
from ..core.store.gitrun import git_env, run, spawn
from . import packcost

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..core.vaults.vault import Vault

_LOOSE = re.compile(r"[0-9a-f]{2}")
GITLINK = 0o160000
# what the carry-back inflates at most (docs/security.md "the fifteenth round"): one object
# (git itself holds no larger one in memory: core.bigFileThreshold), and all of a run's
MAX_OBJECT_BYTES = 512 << 20
MAX_TOTAL_BYTES = 2 << 30
# and what git inflates to read them, the bases of their deltas' chains each counted
# (packcost: the twenty-eighth round)
MAX_INFLATED = 2 * MAX_TOTAL_BYTES


def clean_quarantine(od: str) -> None:
    """Leave in the quarantine only what git's object store is made of, as regular files:
    ``xx/<38 hex>`` and ``pack/pack-*.{pack,idx}`` (no ``info/alternates`` naming another
    store, no symbolic link to a file of the host)."""
    with os.scandir(od) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False) and (_LOOSE.fullmatch(e.name) or e.name == "pack"):
                with os.scandir(e.path) as inner:
                    for f in inner:
                        ok = f.is_file(follow_symlinks=False) and (
                            re.fullmatch(r"[0-9a-f]{38}|[0-9a-f]{62}", f.name)
                            if e.name != "pack"
                            else re.fullmatch(r"pack-[0-9a-f]+\.(pack|idx)", f.name)
                        )
                        if not ok:
                            if f.is_dir(follow_symlinks=False):
                                deeptree.rmtree(f.path, ignore_errors=True)
                            else:
                                os.unlink(f.path)
            elif e.is_dir(follow_symlinks=False):
                deeptree.rmtree(e.path, ignore_errors=True)
            else:
                os.unlink(e.path)


def import_objects(
    vault: Vault, od: str, new: str | Sequence[str] | None, blobs: Sequence[str] = ()
) -> str | None:
    """Bring the objects ``new`` needs (a commit, or several) that the vault lacks (or the
    ``blobs`` named) from the
    quarantine ``od`` into the vault: packed by git, indexed again by ``git index-pack
    --strict`` (each object hashed anew and checked as ``git fsck --strict`` does). Returns
    why not, or None."""
    clean_quarantine(od)
    why = packcost.refusal(od, MAX_OBJECT_BYTES, MAX_INFLATED)
    if why is not None:
        return why
    env = git_env()
    env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = od
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    if new is not None:
        tips = [new] if isinstance(new, str) else list(new)
        listed = run(
            ["rev-list", "--objects", *tips, "--not", "--all"], git_dir=vault.path, env=env, check=False
        )
        if listed.returncode != 0:
            return "its objects are not all there: " + listed.stderr.decode(errors="replace").strip()[:300]
        ids = b"\n".join(line.split(b" ", 1)[0] for line in listed.stdout.splitlines() if line)
    else:
        ids = "\n".join(blobs).encode()
    if not ids:
        return None  # all in the vault already (a reset to a commit it has)
    why = _too_large(vault, env, ids)
    if why is not None:
        return why
    packed = run(
        ["pack-objects", "--stdout", "-q"], git_dir=vault.path, env=env, input=ids + b"\n", check=False
    )
    if packed.returncode != 0:
        return "its objects cannot be read: " + packed.stderr.decode(errors="replace").strip()[:300]
    # indexed where the sandbox cannot see, and moved into the vault only when git takes it
    # (index-pack writes its pack before its last checks: .gitmodules that are not files)
    incoming = os.path.join(os.path.dirname(od), "incoming")
    deeptree.rmtree(incoming, ignore_errors=True)
    os.makedirs(incoming)
    try:
        pack = os.path.join(incoming, "in.pack")
        with open(pack, "wb") as fh:
            fh.write(packed.stdout)
        env = git_env()
        env["GIT_NO_REPLACE_OBJECTS"] = "1"
        indexed = run(["index-pack", "--strict", pack], git_dir=vault.path, env=env, check=False)
        if indexed.returncode != 0:
            return "git refuses its objects: " + indexed.stderr.decode(errors="replace").strip()[:300]
        name = "pack-" + indexed.stdout.decode("ascii", "replace").split()[-1]
        dest = os.path.join(vault.path, "objects", "pack")
        for ext in ("pack", "rev", "idx"):  # the index last: git looks for packs by it
            if os.path.exists(os.path.join(incoming, f"in.{ext}")):
                os.replace(os.path.join(incoming, f"in.{ext}"), os.path.join(dest, f"{name}.{ext}"))
    finally:
        deeptree.rmtree(incoming, ignore_errors=True)
    return None


def _too_large(vault: Vault, env: dict[str, str], ids: bytes) -> str | None:
    """Why the objects ``ids`` are too large to take (None: they are not): their sizes as
    git reads them from the objects' headers (a delta's from its own header: nothing is
    inflated), each at most :data:`MAX_OBJECT_BYTES`, all at most :data:`MAX_TOTAL_BYTES`.
    Neither ``git pack-objects`` nor ``git index-pack`` bounds what an object inflates to:
    a pack of a few hundred bytes can hold a blob of gigabytes, each of them holds it in
    memory whole, and so does every later reader of the vault (found in the fifteenth
    round)."""
    sized = run(
        ["cat-file", "--batch-check=%(objectname) %(objectsize)"],
        git_dir=vault.path,
        env=env,
        input=ids + b"\n",
        check=False,
    )
    if sized.returncode != 0:
        return "its objects cannot be read: " + sized.stderr.decode(errors="replace").strip()[:300]
    total = 0
    for line in sized.stdout.decode("ascii", "replace").splitlines():
        oid, _, size = line.partition(" ")
        if not size.isdigit():
            return f"its object {oid} is not there ({size or 'missing'})"
        total += int(size)
        if int(size) > MAX_OBJECT_BYTES:
            return (
                f"its object {oid} ({int(size)} bytes once inflated) is bigger than avfs takes from a run"
                f" ({MAX_OBJECT_BYTES} bytes): write the file in the fork, or commit it on the host"
            )
    if total > MAX_TOTAL_BYTES:
        return (
            f"its objects ({total} bytes once inflated) are more than avfs takes from a run"
            f" ({MAX_TOTAL_BYTES} bytes): `avfs fetch`, or a commit on the host"
        )
    return None


NOT_TEXT = "a name that is not UTF-8 text, or holds a control character (avfs's paths are text)"


def _text_path(path: bytes) -> bool:
    """Whether ``path`` is a workspace path avfs can hold (``names.norm_path``'s text: UTF-8,
    no control character). Found in the twentieth round (NAME=attack11): a command's
    ``git update-index --cacheinfo`` of a name holding ``\\xff``, then ``git commit``, was
    carried onto the fork's branch, and every later ``avfs status``, checkpoint and
    ``proxy exec`` of the fork failed (exit 70, ``UnicodeEncodeError``)."""
    try:
        text = path.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(ord(c) < 32 or ord(c) == 127 for c in text)


def new_commits_refusal(vault: Vault, old: str | None, new: str) -> str | None:
    """Why the commits ``new`` brings (those no ref of the vault reaches yet) must not be
    carried: a gitlink they add (a nested repository: git runs ``git status`` inside it,
    with its own config) or a name git refuses in a tree; None when they may."""
    env = git_env()
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    kind = run(["cat-file", "-t", new], git_dir=vault.path, env=env, check=False)
    if kind.stdout.strip() != b"commit":
        return f"{new} is not a commit"
    listed = run(["rev-list", new, "--not", "--all"], git_dir=vault.path, env=env, check=False)
    if listed.returncode != 0:
        return "its history cannot be read"
    if not listed.stdout.strip():
        return None
    dirs: set[str] = set()
    return _diff_refusal(vault, env, listed.stdout, dirs) or _planted_refusal(vault, listed.stdout, dirs)


# the new commits a run's candidate repositories are looked at in, at most (each a look
# at a few paths of its tree; more: refused)
MAX_PLANTED_LOOKS = 4096


def _planted_refusal(vault: Vault, commits: bytes, dirs: set[str]) -> str | None:
    """Why the new ``commits`` must not be carried: one of them holds, at a directory
    ``dirs`` names (where their diff wrote a name of git's own state), a repository whose
    config or hooks would run a program in the person's git there, once they check that
    commit out (:mod:`..core.workspace.plantedrule`; found in the thirty-fourth round,
    NAME=plant2). None when none does."""
    if not dirs:
        return None
    from ..core.workspace import plantedrule
    from ..core.workspace.wsview import View

    ids = commits.split()
    if len(ids) * len(dirs) > MAX_PLANTED_LOOKS:
        return (
            f"its commits write git's own state names (HEAD, config, hooks...) in more places than"
            f" avfs checks from a run ({len(ids)} commits, {len(dirs)} directories)"
        )
    for commit in ids:
        reader = plantedrule.of_view(View.of_commit(vault.store, commit.decode()))
        for d in sorted(dirs):
            found = plantedrule.why(reader, d)
            if found is not None:
                return (
                    f"a commit records a repository at {d} that runs a program in the person's git"
                    f" there once checked out ({found})"
                )
    return None


# the diff of a run's new commits read at most (git's `diff-tree -m` makes one of each
# commit against each of its parents: a commit of 200 parents, or commits going back and
# forth between an empty tree and one of 100,000 files, make gigabytes of it from a few MB
# of objects; the twenty-eighth round)
MAX_DIFF_BYTES = 256 << 20


def _diff_refusal(vault: Vault, env: dict[str, str], commits: bytes, dirs: set[str]) -> str | None:
    """:func:`new_commits_refusal`'s look at what ``commits`` change: read as git writes
    it, at most :data:`MAX_DIFF_BYTES` (more: refused, git stopped)."""
    with tempfile.TemporaryFile() as listed:
        listed.write(commits)
        listed.seek(0)
        proc = spawn(
            ["diff-tree", "--stdin", "-r", "--root", "-m", "--no-renames", "--no-commit-id", "-z"],
            git_dir=vault.path,
            env=env,
            stdin=listed,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    assert proc.stdout is not None
    seen, rest, why = 0, b"", None
    try:
        while why is None:
            chunk = proc.stdout.read(1 << 20)
            if not chunk:
                break
            seen += len(chunk)
            if seen > MAX_DIFF_BYTES:
                why = (
                    f"its commits change more than avfs checks from a run ({MAX_DIFF_BYTES} bytes of"
                    " `git diff-tree -m`, each commit against each of its parents)"
                )
                break
            parts = (rest + chunk).split(b"\0")
            why, used = _records_refusal(parts[:-1], dirs)
            rest = b"\0".join(parts[used:])  # (a record cut by the chunk's end)
    finally:
        if why is not None:
            proc.kill()
        proc.stdout.close()
        code = proc.wait()
    if why is None and (code != 0 or rest):
        return "its commits cannot be read"
    return why


def _records_refusal(parts: list[bytes], dirs: set[str]) -> tuple[str | None, int]:
    """Why one of ``diff-tree -z``'s records (head, path, head, path...) must not be
    carried (a gitlink added, a name git refuses or avfs cannot hold), and how many of
    ``parts`` were read (a head whose path is not there yet is left); the directories a
    name of git's own state was written in are added to ``dirs``."""
    from ..core.workspace.plantedrule import dirs_of

    i = 0
    while i + 1 < len(parts):
        head, path = parts[i], parts[i + 1]
        i += 2
        if not head.startswith(b":"):
            i -= 1  # not a record (a commit id line): resynchronise
            continue
        fields = head[1:].split(b" ")
        if len(fields) < 5:
            continue
        old_mode, new_mode = int(fields[0], 8), int(fields[1], 8)
        name = path.decode("utf-8", "surrogateescape")
        if new_mode == GITLINK and old_mode != GITLINK:
            return f"a commit adds a gitlink (a nested repository) at {name}", i
        if new_mode and not _text_path(path):
            return f"a commit records {path.decode('utf-8', 'replace')!r}: {NOT_TEXT}", i
        if new_mode:
            got = gitnames.path_refusal(name, new_mode)
            if got is not None:
                return f"a commit records {got.path}: {got.reason}", i
            dirs.update(dirs_of((name,)))
    return None, i

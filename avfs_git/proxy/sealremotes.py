"""The remote-tracking refs a confined command's ``git fetch`` (``git pull``, ``git remote
update``) moved: kept in the vault only as what the remote itself says (:mod:`.seal`).

In the sandbox ``refs/remotes`` is a scratch copy of the vault's (its loose refs as files,
its packed ones lines of the sandbox's ``packed-refs``), so git can move them; what a fetch
downloads lands in the run's object quarantine. After the run, :func:`carry` takes a
changed ``refs/remotes/<remote>/<branch>`` into the vault when all of this holds, and lists
every other change in ``refs_refused`` with why:

- the command had a network (the policy let it be ``networked``): without one, no fetch
  moved it;
- ``<remote>`` is a remote of the vault's own config (which the sandbox cannot write: a
  ``git remote add`` in there fails), and ``<branch>`` a name git takes;
- at most :data:`MAX_CARRIED` such changes in one run (more: none kept);
- the remote, asked by avfs on the host (``git ls-remote``, with the credentials ``avfs
  fetch`` uses, which the sandbox never has), names that very commit for ``<branch>``
  (or no longer has the branch, for a ref the command deleted: ``git fetch --prune``). So
  a command cannot plant ``origin/main`` at a commit of its own for the person's (or
  another fork's) ``git rebase origin/main``: a remote-tracking ref says what the
  remote said;
- the fetched objects fit in the vault's bytes quota (what the quarantine holds, counted
  before anything is taken), are a commit's, are all there (``git rev-list --objects``
  from the new ids to what the vault has), and ``git index-pack --strict`` takes them
  (:func:`.sealobjects.import_objects`: each hashed again, checked as ``git fsck
  --strict`` checks);
- and the vault's ref is still what the command saw (compare-and-swap).

The worktree's ``FETCH_HEAD`` a run changed (:func:`fetch_head_back`) stays only when
every id it names is one a remote-tracking ref (or a tag) of the vault holds after the
carry-back: it says "branch 'main' of <URL>" of whatever id it holds, and the person's `git
merge FETCH_HEAD` takes it for the remote's.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from ..core.store import deeptree, refs
from ..core.store.gitrun import git_env, run
from ..core.store.vaultconfig import config_values
from ..core.workspace.untrusted import read_file
from . import sealobjects

if TYPE_CHECKING:
    from ..core.vaults.vault import Vault

MAX_CARRIED = 1024  # remote-tracking refs kept from one run (docs/security.md)
_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_REMOTE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # what `avfs remote add` takes
NO_NETWORK = "the command had no network: no fetch moved it (`avfs fetch` on the host does)"
Change = tuple[str, bytes | None, bytes | None]  # (ref, before, after: the ref file's bytes)


def is_remote(name: str) -> bool:
    return name.startswith(refs.REMOTES)


def _value(data: bytes | None) -> str | None:
    return None if data is None else data.strip().decode("ascii", "replace")


def _refuse(out: list[dict[str, Any]], name: str, old: str | None, new: str | None, why: str) -> None:
    out.append({"ref": name, "old": old, "new": new, "reason": why})


def carry(
    vault: Vault, od: str, changes: list[Change], network: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Keep the remote-tracking refs of ``changes`` the rules above allow (``od``: the
    run's object quarantine; ``network``: the sandbox's, none | host | filtered). Returns
    (kept: {ref, old, new}, refused: {ref, old, new, reason})."""
    kept: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    if not changes:
        return kept, refused
    if network in (None, "none"):
        for ref, was, now in changes[:MAX_CARRIED]:
            _refuse(refused, ref, _value(was), _value(now), NO_NETWORK)
        return kept, refused
    if len(changes) > MAX_CARRIED:
        many = f"{len(changes)} remote-tracking refs moved, more than {MAX_CARRIED}: none kept (`avfs fetch` on the host)"
        _refuse(refused, refs.REMOTES, None, None, many)
        return kept, refused
    # (ref, old id, new id) the rules let through, remote by remote
    asked: dict[str, dict[str, str] | str] = {}
    wanted: list[tuple[str, str | None, str | None]] = []
    why: str | None
    for ref, was, now in changes:
        old, new = _value(was), _value(now)
        why = _why_not(vault, ref, old, new, asked)
        if why is not None:
            _refuse(refused, ref, old, new, why)
        else:
            wanted.append((ref, old, new))
    tips = sorted({new for _n, _o, new in wanted if new is not None})
    if tips:
        sealobjects.clean_quarantine(od)  # (its info/alternates is the command's to write)
        why = _too_big(vault, od) or _not_commits(vault, od, tips)
        why = why or sealobjects.import_objects(vault, od, tips)
        if why is not None:
            for name, old, new in wanted:
                _refuse(refused, name, old, new, why)
            return kept, refused
    for name, old, new in wanted:
        try:
            refs.cas_update(vault.store, name, new, old, "avfs proxy exec: the command's git fetch")
        except Exception as exc:  # moved meanwhile (an `avfs fetch`), locked: said, not applied
            _refuse(refused, name, old, new, str(getattr(exc, "message", exc)))
            continue
        kept.append({"ref": name, "old": old, "new": new})
    return kept, refused


def _why_not(
    vault: Vault, name: str, old: str | None, new: str | None, asked: dict[str, dict[str, str] | str]
) -> str | None:
    """Why the change of ``name`` from ``old`` to ``new`` is not kept (None: it may be, its
    objects aside); ``asked``: each remote's branches as its server said them, or why it
    could not be asked (filled as remotes come)."""
    remote, _, branch = name[len(refs.REMOTES) :].partition("/")
    if new is not None and not _HEX.fullmatch(new):
        return "not a full commit id (a symbolic ref, or not what git writes: only ids are carried)"
    if old is not None and not _HEX.fullmatch(old):
        return "the vault's ref is not an id"
    if not _REMOTE.fullmatch(remote) or remote.endswith(".lock") or not branch or branch == "HEAD":
        return "not a remote-tracking ref of a remote's branch"
    if not refs.valid_name(name):
        return "not a name git takes"
    if remote not in asked:
        if not config_values(vault.store, f"remote.{remote}.url"):
            asked[remote] = (
                f"the vault has no remote {remote!r}: `avfs remote add {remote} URL` on the host"
                " (the vault's config is read-only in the sandbox)"
            )
        else:
            from ..core.errors import AvfsError
            from ..core.operations import remote as remote_ops

            try:
                asked[remote] = remote_ops.heads(vault, remote, vault.store.promisor.timeout())
            except AvfsError as exc:
                asked[remote] = f"the remote could not be asked what it holds: {exc.message}"
    said = asked[remote]
    if isinstance(said, str):
        return said
    there = said.get(refs.HEADS + branch)
    if there != new:
        return (
            f"the remote {'has no branch ' + branch if there is None else 'names ' + there + ' for ' + branch}:"
            " a remote-tracking ref keeps what the remote says"
        )
    return None


def _quarantine_bytes(od: str) -> int:
    total = 0
    for dirpath, _dirs, files in deeptree.walk(od):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def _too_big(vault: Vault, od: str) -> str | None:
    """Why the fetched objects do not fit in the vault's bytes quota (None: they do, or
    there is none)."""
    if vault.quota.limits()[0] is None:
        return None
    size = _quarantine_bytes(od)
    use = vault.quota.recount()
    if use.quota_bytes is None or use.used_bytes + size <= use.quota_bytes:
        return None
    return (
        f"the fetched objects ({size} bytes) would take the vault past its quota"
        f" ({use.used_bytes} of {use.quota_bytes} bytes used): `avfs quota set --bytes SIZE`"
    )


def _not_commits(vault: Vault, od: str, tips: list[str]) -> str | None:
    """Why ``tips`` are not all commits the quarantine or the vault holds (None: they are)."""
    env = git_env()
    env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = od
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    got = run(
        ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
        git_dir=vault.path,
        env=env,
        input=("\n".join(tips) + "\n").encode(),
        check=False,
    )
    for line in got.stdout.decode("ascii", "replace").splitlines():
        oid, _, kind = line.partition(" ")
        if kind != "commit":
            return f"{oid} is not a commit the fetch brought ({kind or 'missing'})"
    return None


FETCH_HEAD = "FETCH_HEAD"
_FETCH_HEAD_MAX = 1 << 20  # 10,000 lines of a fetch's branches
Stat = tuple[int, int, int, int]


def fetch_head_stat(git_dir: str) -> Stat | None:
    """What the worktree's ``FETCH_HEAD`` is before a run (inode, size, mtime, ctime)."""
    try:
        st = os.lstat(os.path.join(git_dir, FETCH_HEAD))
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def fetch_head_back(vault: Vault, git_dir: str, before: Stat | None) -> list[dict[str, Any]]:
    """After a run: a ``FETCH_HEAD`` it changed that names an id no remote-tracking ref or
    tag of the vault holds is removed, and said (found in the fifteenth round: a command
    wrote its own commit there as "branch 'main' of" the remote's URL, and the person's
    `git log FETCH_HEAD` and `git merge FETCH_HEAD` took it for upstream's). One the run
    left alone (the person's) stays."""
    if fetch_head_stat(git_dir) in (None, before):
        return []
    path = os.path.join(git_dir, FETCH_HEAD)
    data = read_file(path, _FETCH_HEAD_MAX)
    why = _fetch_head_refusal(vault, data)
    if why is None:
        return []
    try:
        os.unlink(path)  # (a link: never followed)
    except IsADirectoryError:
        deeptree.rmtree(path, ignore_errors=True)
    except FileNotFoundError:
        pass
    why += ": removed (`git fetch` in the mount writes the remote's)"
    return [{"ref": FETCH_HEAD, "old": None, "new": None, "reason": why}]


def _fetch_head_refusal(vault: Vault, data: bytes | None) -> str | None:
    """Why the ``FETCH_HEAD`` holding ``data`` may not stay (None: it may)."""
    if data is None:
        return (
            f"the command's FETCH_HEAD is not a file git writes, or holds more than {_FETCH_HEAD_MAX} bytes"
        )
    lines: list[tuple[str, bytes]] = []
    for line in data.splitlines():
        raw, tab, rest = line.partition(b"\t")
        text = raw.decode("ascii", "replace")
        marker, tab2, said = rest.partition(b"\t")
        if not tab or not tab2 or marker not in (b"", b"not-for-merge") or not _HEX.fullmatch(text):
            return "the command's FETCH_HEAD holds a line git does not write"
        lines.append((text, said))
    if not lines:
        return None
    held = run(
        ["for-each-ref", "--format=%(objectname) %(refname)", refs.REMOTES, refs.TAGS],
        git_dir=vault.path,
        check=False,
    )
    holders: dict[str, set[str]] = {}  # id -> the refs holding it
    for row in held.stdout.decode("utf-8", "surrogateescape").splitlines():
        held_id, _, name = row.partition(" ")
        holders.setdefault(held_id, set()).add(name)
    urls = _fetch_urls(vault)
    for oid, said in lines:
        if oid not in holders:
            return (
                f"the command's FETCH_HEAD names {oid} as a remote's, which no remote-tracking ref"
                " of the vault holds (no remote was seen to name it)"
            )
        why = _text_refusal(said, holders[oid], urls)
        if why is not None:
            return f"the command's FETCH_HEAD says of {oid} {why}"
    return None


# what git's fetch writes after the id and the merge marker: "<kind> '<name>' of <URL>"
# (kind "branch", "tag", "remote-tracking branch" or none: a full ref name), or the URL alone
# (the remote's HEAD): fetch.c ``append_fetch_head``
_SAID = re.compile(rb"(?:(branch|tag|remote-tracking branch) )?'([^'\x00-\x1f\x7f]+)' of (.+)")


def _text_refusal(said: bytes, holders: set[str], urls: dict[bytes, set[str]]) -> str | None:
    """Why ``said`` is not what git's fetch of a remote of the vault writes for an id
    ``holders`` (ref names) hold; ``urls``: each remote's URL as git writes it -> its
    remotes. Found in the sixteenth round (NAME=attack7): the text went unchecked, and the
    person's `git merge FETCH_HEAD` made it its commit's message, which `git log` prints as
    it is: terminal escapes, another branch's or URL's name."""
    if any(b < 0x20 or b == 0x7F for b in said):
        return "in a text holding control characters, which git's fetch never writes"
    m = _SAID.fullmatch(said)
    url = m.group(3) if m else said
    remotes = urls.get(url)
    if not remotes:
        return "with a URL that is no remote's of the vault"
    if m is None or m.group(1) is None:
        return None  # the remote's HEAD, or another of its refs: held by a ref of the vault's
    name = m.group(2).decode("utf-8", "surrogateescape")
    if m.group(1) == b"branch":
        if not {f"{refs.REMOTES}{r}/{name}" for r in remotes} & holders:
            return f"that it is branch {name!r} of the remote, whose remote-tracking ref holds another commit"
    elif m.group(1) == b"tag":
        if f"{refs.TAGS}{name}" not in holders:
            return f"that it is tag {name!r}, which the vault's tag of that name is not"
    else:
        return "that it is a remote-tracking branch of the remote's, which avfs does not carry"
    return None


def _fetch_urls(vault: Vault) -> dict[bytes, set[str]]:
    """Each URL of the vault's remotes as git's fetch writes it into ``FETCH_HEAD``
    (``transport_anonymize_url``: no user or password; no trailing ``/`` or ``.git``; a
    newline as ``\\n``) -> the remotes that have it. From the vault's own config, which the
    sandbox cannot write."""
    got = run(["config", "--get-regexp", r"^remote\..*\.url$"], git_dir=vault.path, check=False)
    out: dict[bytes, set[str]] = {}
    for row in got.stdout.split(b"\n"):
        key, _, url = row.partition(b" ")
        if not key.startswith(b"remote.") or not key.endswith(b".url"):
            continue
        name = key[len(b"remote.") : -len(b".url")].decode("utf-8", "surrogateescape")
        out.setdefault(_as_fetch_writes(url), set()).add(name)
    return out


def _as_fetch_writes(url: bytes) -> bytes:
    """``url`` as git 2.39's fetch writes it in ``FETCH_HEAD``."""
    at = url.find(b"@")
    colon, slash = url.find(b":"), url.find(b"/")
    local = colon < 0 or 0 <= slash < colon  # git's url_is_local_not_ssh
    if at >= 0 and not local:
        scheme = url.find(b"://")
        if scheme < 0:
            if b":" in url[at + 1 :]:
                url = url[at + 1 :]
        elif re.fullmatch(rb"[A-Za-z0-9+.-]+", url[:scheme]):
            slash = url.find(b"/", scheme + 3)
            if slash < 0 or slash > at:
                url = url[: scheme + 3] + url[at + 1 :]
    url = url.rstrip(b"/") or url[:1]
    if len(url) > 5 and url.endswith(b".git"):
        url = url[:-4]
    return url.replace(b"\n", b"\\n")


def local_remotes(vault: Vault) -> tuple[str, ...]:
    """The directories of the vault's remotes that are local paths (``/srv/x.git``,
    ``file:///srv/x.git``), for a sandbox with a network to show read-only: a local remote
    is reached as the network is (``git fetch`` of it needs its directory there). From the
    vault's own config, which the sandbox cannot write."""
    import sys
    from urllib.parse import unquote, urlsplit

    if "pygit2" in sys.modules:
        from ..core.store.vaultconfig import remotes

        urls = [r.url for r in remotes(vault.store)]
    else:  # (a cold CLI call: one `git config`, no pygit2 import)
        got = run(
            ["config", "--get-regexp", r"^remote\..*\.url$"], git_dir=vault.path, check=False, text=True
        )
        urls = [line.partition(" ")[2] for line in got.stdout.splitlines()]
    out = []
    for url in urls:
        path = unquote(urlsplit(url).path) if url.startswith("file://") else url
        if os.path.isabs(path) and os.path.isdir(path):
            out.append(os.path.realpath(path))
    return tuple(out)

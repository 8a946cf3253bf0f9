"""The one rule for git's own state written as a fork's content: a directory git's discovery
takes for a repository whose config or hooks would run a program in the person's plain
``git`` there (docs/security.md, "Planted git state from every writer, and history").

git looks for a repository in the directory it runs in before its parents (setup.c
``setup_git_directory_gently``); a directory holding ``HEAD``, ``objects/`` and ``refs/``
(or ``HEAD`` and a ``commondir``) is one (``is_git_directory``), and its ``config`` decides
what git runs: ``core.fsmonitor`` at every ``git status``, ``core.hooksPath``, a pager,
``!`` aliases, drivers, includes, and more every release; its ``hooks/`` too. ``.git``
names never get here: every avfs write refuses them (``names.norm_path``) and every tree
avfs writes or carries leaves them out or refuses them (``gitnames``: git's ``hasDotgit``,
its NTFS and HFS+ spellings).

:func:`.names.git_dir_of` names the directory a write of a path could complete such a
repository in (cheap: a look at the path's last two names); :func:`why` reads that
directory through a :class:`Reader` (the workspace's view as a write would leave it, a
commit's tree) and says what of it would run. Where it applies: :func:`refuse`, every
workspace write (``wswrite.py``); ``proxy/sealobjects.py``, the commits a run's own git
brings; :func:`refuse_unreached`, a restore or checkout of a commit no ref reaches (a
remote-tracking ref reaches nothing); :func:`refuse_merged`, a merge's result (and
``operations/mergeplanted.py``: conflicts written, ``--continue``, a remote's branch);
``proxy/sealstaged.py``, what a run leaves staged; ``ops/hostwrite.py``, ``avfs apply``
and ``export --force`` into a person's directory (docs/security.md, "Every writer of a
fork's tree, and where it is checked"). Writes
avfs does not make (the kernel's, in an overlay mount) are looked at after them by
``proxy/plantedgit.py``: after a ``proxy exec``, and after an agent CLI's file tool
(``hooks/events.py``). The config is read by git itself (``git config --file - -l``), and
judged by an allow-list of what ``git init``, ``git clone``, ``git remote add`` and ``git
submodule init`` write (nothing there runs a program): the same list the record of a
``proxy exec`` uses (``proxy/plantedgit.py``) to set aside what a confined command planted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import IO, Any

from ..errors import InvalidPathError
from ..records import dataclass
from ..store.gitstore import EMPTY_TREE
from ..store.names import git_dir_of, git_state_name, git_state_names

MAX_CONFIG = 1 << 20

# config keys a real `git clone`/`git init`/`git remote add`/`git submodule init` writes,
# none of which has git run a program (section.key, no subsection)
PLAIN = frozenset({
    "core.repositoryformatversion", "core.filemode", "core.bare", "core.logallrefupdates",
    "core.ignorecase", "core.precomposeunicode", "core.symlinks", "core.sparsecheckout",
    "core.sparsecheckoutcone", "core.autocrlf", "core.eol", "core.safecrlf", "core.checkstat",
    "core.trustctime", "core.untrackedcache", "core.splitindex", "index.version",
    "init.defaultbranch", "extensions.objectformat", "extensions.worktreeconfig",
    "extensions.partialclone", "extensions.preciousobjects", "lfs.repositoryformatversion",
    "user.name", "user.email", "pull.rebase", "pull.ff", "push.default", "fetch.prune",
})  # fmt: skip
# (section, key) with any subsection: a remote's and a branch's, a submodule's url
# (``submodule.NAME.update`` can be ``!command``: not listed)
PLAIN_SUB = frozenset({
    ("remote", "url"), ("remote", "pushurl"), ("remote", "fetch"), ("remote", "push"),
    ("remote", "promisor"), ("remote", "partialclonefilter"), ("remote", "tagopt"),
    ("remote", "mirror"), ("remote", "prune"), ("branch", "remote"), ("branch", "merge"),
    ("branch", "rebase"), ("branch", "pushremote"), ("branch", "description"),
    ("submodule", "url"), ("submodule", "active"), ("submodule", "branch"),
})  # fmt: skip

FILE, DIR, LINK = "file", "dir", "link"


@dataclass(frozen=True, slots=True)
class Reader:
    """What :func:`why` asks of a tree: the kind of a path (:data:`FILE`, :data:`DIR`,
    :data:`LINK` or None), a file's bytes (None past ``limit``), a directory's names."""

    kind: Callable[[str], str | None]
    read: Callable[[str, int], bytes | None]
    names: Callable[[str], list[str]]


def _join(d: str, name: str) -> str:
    return f"{d}/{name}" if d else name


def entries(text: bytes) -> list[tuple[str, str | None]] | None:
    """The config's entries as git reads them (its key lower-cased but the subsection),
    None when git refuses the file."""
    from ..store import gitrun

    done = gitrun.run(
        ["config", "--file", "-", "--no-includes", "-l", "-z"], input=text, check=False, cwd="/"
    )
    if done.returncode != 0:
        return None
    out: list[tuple[str, str | None]] = []
    for item in done.stdout.split(b"\0"):
        if not item:
            continue
        key, nl, val = item.decode("utf-8", "surrogateescape").partition("\n")
        out.append((key, val if nl else None))
    return out


def unsafe(key: str, val: str | None) -> bool:
    """Whether config key ``key`` (= ``val``) is off the plain list (could run a program)."""
    section, _, rest = key.partition(".")
    sub, _, name = rest.rpartition(".")
    if not sub:
        return key.lower() not in PLAIN
    if (section.lower(), name.lower()) not in PLAIN_SUB:
        return True
    # a remote's `ext::` URL runs its command at the person's next fetch
    return name.lower() in ("url", "pushurl") and (val or "").lower().startswith(("ext::", "fd::"))


def state_names(r: Reader, d: str) -> dict[str, list[str]]:
    """The entries of directory ``d`` that are names of git's own state, by the name each
    is to git on some file system (:func:`.names.git_state_names`: ``head`` and ``HEAD``
    are both ``HEAD``, a case-insensitive clone takes either): {state name: [entries]}."""
    return git_state_names(r.names(d)) if r.kind(d) == DIR else {}


def is_git_dir(r: Reader, d: str, state: dict[str, list[str]] | None = None) -> bool:
    """``d`` is a repository to git's discovery (``is_git_directory``; ``commondir``'s
    target is not followed: its ``HEAD`` alone with one is taken as a repository), on any
    file system a clone may be checked out on (names as :func:`state_names` folds them).
    git asks ``access(objects, X_OK)`` and ``access(refs, X_OK)``, which follow a link and
    take an executable file: any entry of those names counts (the review of the
    thirty-fourth round: an executable file `objects` and a link `refs -> .` made one past
    the check). ``state``: :func:`state_names` of ``d``, where the caller has it."""
    got = state_names(r, d) if state is None else state
    if not any(r.kind(_join(d, n)) in (FILE, LINK) for n in got.get("HEAD", ())):
        return False
    return "commondir" in got or ("objects" in got and "refs" in got)


def why(r: Reader, d: str) -> str | None:
    """What of repository ``d`` would run a program in the person's git there (its
    config's keys off the plain list, a config that is a link or that git cannot read,
    a hook), or None: not a repository, or a plain one. Every entry a clone could take
    for ``config``, ``config.worktree`` or ``hooks`` is judged (``Config`` beside
    ``config``: which one a case-insensitive checkout keeps is not known here)."""
    if not d:
        return None
    state = state_names(r, d)
    if not is_git_dir(r, d, state):
        return None
    for name in sorted(n for s in ("config", "config.worktree") for n in state.get(s, ())):
        path = _join(d, name)
        kind = r.kind(path)
        if kind is None:
            continue
        text = r.read(path, MAX_CONFIG) if kind == FILE else None
        got = entries(text) if text is not None else None
        if got is None:
            return f"{path}: not a config file git reads as plain (a link, unparsed, or past 1 MiB)"
        bad = sorted({k for k, v in got if unsafe(k, v)})
        if bad:
            return f"{path}: {', '.join(bad[:8])}{', …' if len(bad) > 8 else ''}"
    for name in sorted(state.get("hooks", ())):
        hooks = _join(d, name)
        kind = r.kind(hooks)
        if kind == LINK:
            return f"{hooks}: a link"
        if kind == DIR:
            for hook in sorted(r.names(hooks)):
                if not hook.endswith(".sample"):
                    return f"{hooks}/{hook}: a hook"
    return None


def with_pending(r: Reader, pending: dict[str, tuple[str, bytes | None]]) -> Reader:
    """``r`` as a write of ``pending`` (path: (kind, bytes of a file)) would leave it: the
    paths and every directory above them there."""
    above = set()
    for p in pending:
        while "/" in p:
            p = p.rpartition("/")[0]
            above.add(p)

    def kind(path: str) -> str | None:
        got = pending.get(path)
        if got is not None:
            return got[0]
        return DIR if path in above else r.kind(path)

    def read(path: str, limit: int) -> bytes | None:
        got = pending.get(path)
        if got is not None:
            return got[1] if got[1] is not None and len(got[1]) <= limit else None
        return r.read(path, limit)

    def names(path: str) -> list[str]:
        out = set(r.names(path)) if r.kind(path) == DIR else set()
        pre = f"{path}/"
        out.update(p[len(pre) :].partition("/")[0] for p in pending if p.startswith(pre))
        return list(out)

    return Reader(kind, read, names)


def of_view(view: Any) -> Reader:
    """A :class:`Reader` of a :class:`.wsview.View` (a workspace's, a commit's tree), no
    link followed."""
    from ..types import MODE_LINK, MODE_TREE

    def kind(path: str) -> str | None:
        node = view.lookup(path)
        if node is None:
            return None
        return DIR if node.mode == MODE_TREE else LINK if node.mode == MODE_LINK else FILE

    def read(path: str, limit: int) -> bytes | None:
        node = view.lookup(path)
        if node is None or node.is_dir or node.is_link or view.size(node) > limit:
            return None  # (its size first: a 10 GB file moved to a config is not read)
        data: bytes = view.read_node(node, limit + 1)  # (a file a mount's writer grows: bounded)
        return data if len(data) <= limit else None

    def names(path: str) -> list[str]:
        node = view.lookup(path)  # (names only: a listing's entries cost 20x, 2,000 of them 5 ms)
        return view.child_names(node) if node is not None and node.is_dir else []

    return Reader(kind, read, names)


def refuse(
    view: Any, p: str, kind: str, data: bytes | IO[bytes] | None = None, src: Any = None
) -> bytes | IO[bytes] | None:
    """The check of every write of a workspace (:mod:`.wswrite`, where ``names.git_dir_of``
    names a directory ``p`` could complete a repository in): one that would complete, in
    the fork's content (``view``), a repository that runs a program in the person's git
    is refused before anything is written (``invalid_path``, as a ``.git`` name is:
    ``details`` name the ``git_dir`` and what was ``found``).

    ``p``: of ``kind``, a file's ``data``, ``src`` the node a move or copy takes there.
    Returns ``data``: a stream whose bytes had to be looked at gives the same bytes again
    (:func:`_head`: at most ``MAX_CONFIG + 1`` of it read here; a ``config`` past that in
    a repository is refused, as one git could not be asked about, and a hook is refused
    whatever its size: only ``config`` and ``config.worktree`` are read)."""
    d = git_dir_of(p)
    if d is None:
        return data
    pending: dict[str, tuple[str, bytes | None]] = {}
    if src is not None:  # a move or a copy: what it takes there, a directory's names too
        kind = DIR if src.is_dir else LINK if src.is_link else FILE
        if kind == DIR:
            for e in view.listdir(src.path):
                pending[f"{p}/{e.name}"] = (DIR if e.kind == "dir" else FILE, None)
    pending[p] = (kind, None)
    base = of_view(view)
    if not is_git_dir(with_pending(base, pending), d):
        return data  # (most writes of these names: no repository there, no bytes read)
    raw: bytes | None = None
    if kind == FILE and src is not None:
        raw = view.read_node(src, MAX_CONFIG + 1) if view.size(src) <= MAX_CONFIG else None
    elif kind == FILE and data is not None:
        if isinstance(data, bytes | bytearray | memoryview):
            raw = bytes(data)
        else:
            raw, data = _head(data)
    pending[p] = (kind, raw if raw is None or len(raw) <= MAX_CONFIG else None)
    found = why(with_pending(base, pending), d)
    if found is not None:
        raise InvalidPathError(
            f"{p}: refused, it would make {d} a git repository that runs a program in the"
            f" person's git there ({found})",
            hint="git runs the config and hooks of a repository wherever it finds one: keep"
            " such files under other names",
            details={"path": p, "git_dir": d, "found": found},
        )
    return data


class _Again:
    """A stream's bytes again (what :func:`refuse` hands on): those read to look at, then
    the rest of the stream."""

    __slots__ = ("head", "rest")

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head, self.rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self.rest.read(n)
        if n is None or n < 0:
            out, self.head = self.head + self.rest.read(), b""
        else:
            out, self.head = self.head[:n], self.head[n:]
        return out


def _head(data: IO[bytes]) -> tuple[bytes, bytes | IO[bytes]]:
    """The first ``MAX_CONFIG + 1`` bytes of stream ``data`` (enough to know a config is
    past the bound; a writer of stdin, a pipe, had every byte read into memory before,
    the review of the thirty-fourth round, review35) and what to write from: its bytes,
    where that was all of it (never the stream read again); else ``data`` itself, put back
    where it was, where it can seek (a local file: its size still known to the quota's
    check), or a stream giving those bytes first, then the rest (:class:`_Again`)."""
    try:
        at = data.tell() if data.seekable() else None
    except (AttributeError, OSError, ValueError):
        at = None
    parts: list[bytes] = []
    got = 0
    while got <= MAX_CONFIG and (chunk := data.read(MAX_CONFIG + 1 - got)):
        parts.append(chunk)  # (a raw stream's read may give less than asked: not its end)
        got += len(chunk)
    head = b"".join(parts)
    if got <= MAX_CONFIG:
        # the bytes looked at, even from a file that can seek: read again, the file (one a
        # running command writes) could give others than those checked (the review of the
        # thirty-fifth round, review37: a config swapped for an fsmonitor one between them)
        return head, head
    if at is not None:  # (past the bound: never judged, refused as a config or a hook)
        data.seek(at)
        return head, data
    from typing import cast

    return head, cast("IO[bytes]", _Again(head, data))


def config_bytes(store: Any, path: str, oid: str) -> bytes | None:
    """The bytes of blob ``oid`` written at ``path`` as :func:`with_pending` wants them: a
    ``config``'s (None past :data:`MAX_CONFIG`, its size asked first: a 10 GB blob staged
    at ``src/config`` is not loaded, the review of the thirty-fifth round), None for any
    other name (:func:`why` reads no other file)."""
    if git_state_name(path.rpartition("/")[2]) not in ("config", "config.worktree"):
        return None
    if store.blob_size(oid) > MAX_CONFIG:
        return None
    data: bytes = store.blob_data(oid)
    return data


def dirs_of(paths: Iterable[str]) -> set[str]:
    """The directories a change of ``paths`` could complete a repository in: each one's
    :func:`.names.git_dir_of`, and the directory above an ``objects`` or ``refs`` on its way
    (names as :func:`.names.git_state_name` folds them)."""
    out: set[str] = set()
    parents: set[str] = set()  # (the names above a path: looked at once for all its siblings)
    for name in paths:
        d = git_dir_of(name)
        if d is not None:
            out.add(d)
        parent = name.rpartition("/")[0]
        if parent in parents:
            continue
        parents.add(parent)
        comps = parent.split("/")
        out.update(
            "/".join(comps[:k])
            for k in range(1, len(comps))
            if git_state_name(comps[k]) in ("objects", "refs")
        )
    return out


# the directories a commit brought in is looked at in, at most (more: refused)
MAX_LOOKS = 4096


def refuse_unreached(
    store: Any, git_dir: str, rev: str, commit: str, old_tree: str | None, under: str = ""
) -> None:
    """Refuse bringing ``commit`` (named ``rev``) into a fork whose tree is ``old_tree`` (a
    restore; a checkout of path ``under`` from it) where no fork or checkpoint reaches it
    and it holds such a repository at a directory it changes. A commit the carry-back
    refused has its objects in the vault (they were taken in to be checked) and the agent
    knows its id (found in the thirty-fourth round, NAME=plant2: MCP ``checkpoint_restore``
    to it made it the fork's tree). The caller asks only for a revision no fork's or
    checkpoint's ref names (those are history, which the carry-back keeps such commits
    out of). Only the forks (``refs/heads/*``) and the checkpoints reach: a remote's branch
    or tag came from anyone who can push there, the agent's own ``git push`` included (the
    thirty-fifth round, plant3; a tag ``avfs fetch`` brought with the fetched history, and
    ``remotes/origin/agent``, in its review38), and avfs's other refs (``refs/avfs/held``)
    hold what nobody checked either."""
    from ..store import gitrun, refs

    env = gitrun.git_env()
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    reach = ["rev-list", "-n", "1", commit, "--not", "--branches", f"--glob={refs.CHECKPOINTS}*"]
    out = gitrun.run(reach, git_dir=git_dir, env=env, check=False)
    if out.returncode == 0 and not out.stdout.strip():
        return  # reached by a fork or a checkpoint
    new_tree = store.commit_tree(commit)
    args = ["diff-tree", "-r", "-z", "--name-only", "--no-renames", old_tree or EMPTY_TREE, new_tree]
    diff = gitrun.run([*args, "--", under] if under else args, git_dir=git_dir, env=env, check=False)
    names = [n.decode("utf-8", "surrogateescape") for n in diff.stdout.split(b"\0") if n]
    dirs = dirs_of(names) if diff.returncode == 0 else {under}
    found = None
    if len(dirs) > MAX_LOOKS:
        found = f"it changes git's own state names in {len(dirs)} directories"
    else:
        from .wsview import View

        reader = of_view(View.of_commit(store, commit))
        found = next((f for d in sorted(dirs) if (f := why(reader, d)) is not None), None)
    if found is not None:
        raise InvalidPathError(
            f"{rev}: refused, a commit no fork or checkpoint holds that would bring a git repository"
            f" running a program in the person's git there ({found})",
            hint="a commit a `proxy exec` made and avfs refused to carry back: restore a checkpoint instead",
            details={"revision": rev, "found": found},
        )


def refuse_merged(
    store: Any, commit: str, dirs: Iterable[str], what: str, details: dict[str, Any], *, tree: bool = False
) -> None:
    """Refuse a merge result ``commit`` (not yet on any ref: a merge of forks, a pull, a checkpoint rebased onto
    its moved fork) holding, at one of ``dirs`` (where the merge joined a name of git's own
    state from one side to the other's: :func:`dirs_of` of the paths it brought, or the
    trivial merge's ``state_dirs``), a repository that runs a program in the person's git.
    Two forks each holding half of one (a bare ``HEAD``/``objects``/``refs``, and a
    ``config`` naming ``core.fsmonitor``: neither a repository, each write let through)
    made it in the merged tree (found in the thirty-fourth round, NAME=attack26).
    ``what`` names the merge in the message; nothing has moved when this raises.
    ``tree``: ``commit`` is the result's tree id (no commit made for it)."""
    dirs = sorted(set(dirs))
    if not dirs:
        return
    from .wsview import View

    found = None
    if len(dirs) > MAX_LOOKS:
        found = f"it joins git's own state names in {len(dirs)} directories"
    else:
        reader = of_view(View.of_tree(store, commit) if tree else View.of_commit(store, commit))
        found = next((f for d in dirs if (f := why(reader, d)) is not None), None)
    if found is not None:
        raise InvalidPathError(
            f"{what}: refused, the merged tree would hold a git repository that runs a program"
            f" in the person's git there ({found}); nothing moved",
            hint="git runs the config and hooks of a repository wherever it finds one: rename or"
            " remove one side's files of it (HEAD, config, objects/, refs/, hooks/) and merge again",
            details={**details, "found": found},
        )

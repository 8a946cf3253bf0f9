"""Real projects, every file, every read path.

Synthetic trees missed a pack-reader bug that the first real project hit (issue 14), so
this tier imports released projects (tests/realdata.py fetches and caches them) and reads
every file back through each way avfs offers to read one: ``avfs cat`` (raw and --json),
``avfs ls -l``, ``avfs stat``, the Python API, a real FUSE mount (with ``git status`` in
it), ``git clone`` of the vault (with ``git fsck --strict``) and ``avfs export``. It also
unpacks each release with ``tar`` inside a mount and checkpoints it. Then it forks, changes
the fork the way a person would (edit, add a binary file, delete, chmod, symlink),
checkpoints, runs ``avfs gc`` (which rewrites the packs: deltas everywhere) and reads
everything again, through the MCP server's tools too. For attrs it also runs the project's
own test suite in a mount through ``avfs proxy exec``, and merges two of its release lines
(a real history) to compare with ``git merge-tree``. The corpus and why: docs/testing.md.

The oracle is real git on the source directory: which paths count (``git ls-files -o
--exclude-standard``, as the import decides) and the tree id git computes from the raw
bytes (``update-index`` + ``write-tree``), so the vault's tree must be the very tree git
would write. Each check gathers every path that disagrees before failing, so one run
shows the whole extent of a bug, not its first path.

Cost: one vault per project shared by the module (a module-scoped fixture), CLI processes
where a process matters (import, cat, mount, clone, export, the changes, gc, exec, MCP), and the
in-process CLI for the per-path ``ls -l`` and ``stat`` calls (thousands of them).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import os
import posixpath
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts

from . import mcpwarm, realdata
from .conftest import AUTHOR, IN_CI, LAYERS

pytestmark = pytest.mark.slow

MODE_FILE, MODE_EXEC, MODE_LINK, MODE_DIR = 0o100644, 0o100755, 0o120000, 0o040000
_KIND = {MODE_FILE: "file", MODE_EXEC: "file", MODE_LINK: "symlink", MODE_DIR: "dir"}


# -- the corpus ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str  # the vault's name
    fetch: Callable[[], Path]  # the release archive
    why: str


CORPUS = [
    Spec(
        "tzdata",
        lambda: realdata.pypi_sdist("tzdata", "2024.1"),
        "binary files (compiled zoneinfo) in a deep tree (tzdata/zoneinfo/America/Argentina/...)",
    ),
    Spec(
        "attrs",
        lambda: realdata.pypi_sdist("attrs", "24.2.0"),
        "the issue's reproduction (its import makes deltified blobs); its own pytest suite runs",
    ),
    Spec(
        "lodash",
        lambda: realdata.npm_tarball("lodash", "4.17.21"),
        "an npm tarball: 1,054 files, nearly all in one flat directory",
    ),
    Spec(
        "wheel",
        lambda: realdata.pypi_sdist("wheel", "0.36.2"),
        "a non-ASCII file name (tests/testdata/unicode.dist/unicodedist/åäö_日本語.py)",
    ),
    Spec(
        "twisted",
        lambda: realdata.pypi_sdist("twisted", "24.10.0"),
        "executable bits (64 files: scripts, test helpers) and CRLF files (15, Windows batch"
        " and test data) in a 1,407-file tree with no .gitattributes",
    ),
]


# -- the expected tree: what git makes of the source directory -----------------------------------


@dataclasses.dataclass(frozen=True)
class Node:
    mode: int
    data: bytes  # a file's bytes, or a symlink's target

    @property
    def oid(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


Tree = dict[str, Node]  # path -> file or symlink (directories follow from the paths)


def dirs_of(tree: Tree) -> dict[str, dict[str, int]]:
    """Each directory ("" is the root) -> {child name: git mode}."""
    out: dict[str, dict[str, int]] = {"": {}}
    for path, node in tree.items():
        parent, _, name = path.rpartition("/")
        out.setdefault(parent, {})[name] = node.mode
        while parent:
            up, _, dname = parent.rpartition("/")
            out.setdefault(up, {})[dname] = MODE_DIR
            out.setdefault(parent, {})
            parent = up
    return out


def resolved(tree: Tree, path: str) -> bytes | None:
    """What reading ``path`` gives when symlinks are followed (None: dangling or outside)."""
    for _ in range(40):
        node = tree.get(path)
        if node is None:
            return None
        if node.mode != MODE_LINK:
            return node.data
        target = node.data.decode("utf-8", "surrogateescape")
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return None


def git_run(*args: str, env: dict[str, str], cwd: str | Path | None = None, stdin: bytes = b"") -> str:
    proc = subprocess.run(["git", *args], input=stdin, env=env, cwd=cwd, capture_output=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr.decode(errors='replace')}"
    return proc.stdout.decode("utf-8", "surrogateescape")


def source_tree(src: Path, scratch: Path, env: dict[str, str]) -> Tree:
    """The files the import should take: git's own choice (``ls-files -o --exclude-standard``,
    so .gitignore counts), with git's modes and the raw bytes (no filters)."""
    if not scratch.exists():
        git_run("init", "-q", "--bare", str(scratch), env=env)
    listing = git_run(
        "--git-dir",
        str(scratch),
        "--work-tree",
        str(src),
        "ls-files",
        "-o",
        "--exclude-standard",
        "-z",
        env=env,
    )
    tree: Tree = {}
    for rel in filter(None, listing.split("\0")):
        full = src / rel
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            tree[rel] = Node(MODE_LINK, os.fsencode(os.readlink(full)))
        else:
            tree[rel] = Node(MODE_EXEC if st.st_mode & stat.S_IXUSR else MODE_FILE, full.read_bytes())
    return tree


def tree_id(tree: Tree, scratch: Path, env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The id git gives ``tree``, and each directory's tree id (computed by git, from the
    blob ids; the blobs need not exist)."""
    index = scratch / f"index-{os.getpid()}"
    index.unlink(missing_ok=True)
    genv = {**env, "GIT_INDEX_FILE": str(index)}
    lines = b"".join(
        b"%o %s\t%s\0" % (n.mode, n.oid.encode(), os.fsencode(p)) for p, n in sorted(tree.items())
    )
    git_run("--git-dir", str(scratch), "update-index", "-z", "--index-info", env=genv, stdin=lines)
    root = git_run("--git-dir", str(scratch), "write-tree", "--missing-ok", env=genv).strip()
    index.unlink()
    sub = {"": root}
    for line in git_run("--git-dir", str(scratch), "ls-tree", "-r", "-t", "-z", root, env=env).split("\0"):
        if line:
            meta, path = line.split("\t", 1)
            _mode, kind, oid = meta.split()
            if kind == "tree":
                sub[path] = oid
    return root, sub


# -- the environment of the CLI processes ---------------------------------------------------------


def make_env(root: Path) -> dict[str, str]:
    """What tests/conftest.py's hermetic fixture gives a test, for processes a module-scoped
    fixture starts (that fixture is function-scoped, so it is not active yet). Not its
    ``AVFS_SERVER=off``: here the home's resident CLI server serves the CLI calls, which
    costs less (suitetime16, interleaved with ``AVFS_SERVER=off`` on tzdata, attrs and
    wheel, 55 tests: 60.7 against 73.0 s of CPU; each cold call ~0.2 s more, a mount's
    daemon exec'd cold, the fork fixture's seven calls 0.8 against 2.5 s)."""
    user = root / "userhome"
    user.mkdir(parents=True, exist_ok=True)
    (user / ".gitconfig").write_text(
        f"[user]\n\tname = {AUTHOR[0]}\n\temail = {AUTHOR[1]}\n[init]\n\tdefaultBranch = main\n"
        '[protocol "file"]\n\tallow = always\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "AVFS_"))}
    env.update(
        HOME=str(user),
        XDG_CONFIG_HOME=str(user / ".config"),
        AVFS_HOME=str(root / "avfs-home"),
        AVFS_LOCK_WAIT="5",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME=AUTHOR[0],
        GIT_AUTHOR_EMAIL=AUTHOR[1],
        GIT_COMMITTER_NAME=AUTHOR[0],
        GIT_COMMITTER_EMAIL=AUTHOR[1],
    )
    if not LAYERS:  # as conftest.layers_switch (its CLI processes' homes)
        env["AVFS_LAYERS"] = "off"
    return env


@dataclasses.dataclass
class Project:
    spec: Spec
    root: Path  # the module's scratch directory for this project
    src: Path  # the unpacked release
    env: dict[str, str]
    tree: Tree
    tree_id: str
    subtrees: dict[str, str]
    scratch: Path  # a bare repo: the oracle's index and trees

    @property
    def home(self) -> str:
        return self.env["AVFS_HOME"]

    @property
    def vault_path(self) -> str:
        return os.path.join(self.home, "vaults", f"{self.spec.name}.git")

    def avfs(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[bytes]:
        """``avfs --home HOME ARGS`` as a real process."""
        proc = subprocess.run(
            [sys.executable, "-m", "avfs_git", "--home", self.home, *args],
            env=self.env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert proc.returncode == 0, (
                f"avfs {' '.join(args[:6])}… exited {proc.returncode}: "
                f"{proc.stderr.decode(errors='replace')}{proc.stdout[:2000].decode(errors='replace')}"
            )
        return proc


def make_project(spec: Spec, root: Path) -> Project:
    """A release unpacked and imported with ``avfs vault create NAME --from DIR`` (a real
    process), with git's view of the same directory as the oracle."""
    env = make_env(root)
    src = realdata.extract(spec.fetch(), root / "src")
    scratch = root / "oracle.git"
    tree = source_tree(src, scratch, env)
    tid, sub = tree_id(tree, scratch, env)
    proj = Project(spec, root, src, env, tree, tid, sub, scratch)
    doc = json.loads(proj.avfs("--json", "vault", "create", spec.name, "--from", str(src)).stdout)
    assert doc["kind"] == "vault_create" and doc["vault"]["name"] == spec.name
    return proj


@pytest.fixture(scope="module", params=CORPUS, ids=lambda s: s.name)
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Project:
    spec: Spec = request.param
    return make_project(spec, tmp_path_factory.mktemp(f"real-{spec.name}"))


# -- the read paths: each returns every disagreement it found --------------------------------------

Problems = list[str]


def _verdict(what: str, problems: Problems, total: int) -> None:
    shown = "\n  ".join(problems[:30])
    more = f"\n  … and {len(problems) - 30} more" if len(problems) > 30 else ""
    assert not problems, f"{what}: {len(problems)} problem(s) over {total} paths:\n  {shown}{more}"


def _batches(paths: list[str], limit: int = 60_000) -> Iterator[list[str]]:
    batch: list[str] = []
    size = 0
    for p in paths:
        if batch and size + len(p) + 1 > limit:
            yield batch
            batch, size = [], 0
        batch.append(p)
        size += len(p) + 1
    if batch:
        yield batch


def check_cat(proj: Project, fork: str, tree: Tree) -> Problems:
    """``avfs cat`` of every file and symlink (raw bytes, in a few real processes), and
    ``avfs --json cat`` of every file that is not UTF-8 text or has a non-ASCII name
    (the base64 and name-encoding paths)."""
    problems: Problems = []
    spec = f"{proj.spec.name}:{fork}"
    readable = sorted(p for p in tree if resolved(tree, p) is not None)
    for batch in _batches(readable):
        proc = proj.avfs("--vault", spec, "cat", "--", *batch, check=False)
        want = b"".join(resolved(tree, p) or b"" for p in batch)
        if proc.returncode != 0:
            problems.append(
                f"cat of {len(batch)} paths exited {proc.returncode}: {proc.stderr.decode()[:500]}"
            )
        elif proc.stdout != want:
            # name the first file whose bytes differ
            at = 0
            for p in batch:
                data = resolved(tree, p) or b""
                if proc.stdout[at : at + len(data)] != data:
                    problems.append(f"{p}: cat bytes differ (batch of {len(batch)})")
                    break
                at += len(data)
            else:
                problems.append(f"cat printed {len(proc.stdout)} bytes, the files hold {len(want)}")
    special = []
    for p in readable:
        data = resolved(tree, p) or b""
        try:
            data.decode("utf-8")
            if not p.isascii():
                special.append(p)
        except UnicodeDecodeError:
            special.append(p)
    for batch in _batches(special):
        proc = proj.avfs("--json", "--vault", spec, "cat", "--", *batch, check=False)
        if proc.returncode != 0:
            problems.append(f"--json cat exited {proc.returncode}: {proc.stdout.decode()[:500]}")
            continue
        files = json.loads(proc.stdout)["files"]
        if [f["path"] for f in files] != batch:
            problems.append(f"--json cat named {[f['path'] for f in files][:5]}…, asked {batch[:5]}…")
            continue
        for f in files:
            got = (
                base64.b64decode(f["content"]) if f["encoding"] == "base64" else f["content"].encode("utf-8")
            )
            want = resolved(tree, f["path"])
            if got != want or f["size"] != len(got):
                problems.append(f"{f['path']}: --json cat ({f['encoding']}) differs")
    return problems


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "K", "M", "G"):
        if size < 1024:
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}T"


def _expected_entry(tree: Tree, d: str, name: str, mode: int) -> dict[str, Any]:
    path = f"{d}/{name}" if d else name
    size = None if mode == MODE_DIR else len(tree[path].data)
    return {"name": name, "path": path, "kind": _KIND[mode], "mode": mode, "size": size}


def check_ls(cli: Any, proj: Project, fork: str, tree: Tree) -> Problems:
    """``avfs ls -l`` of every directory, --json (names, kinds, modes, sizes) and human
    (each line as the listing documents it, symlink targets included)."""
    problems: Problems = []
    spec = f"{proj.spec.name}:{fork}"
    for d, children in sorted(dirs_of(tree).items()):
        want = [_expected_entry(tree, d, n, m) for n, m in sorted(children.items())]
        r = cli("--home", proj.home, "--json", "--vault", spec, "ls", "-l", d)
        if r.code != 0:
            problems.append(f"{d or '/'}: ls -l exited {r.code}: {r.out.strip()[:300]}")
            continue
        got = r.json()["entries"]
        if got != want:
            diff = [e for e in got if e not in want] + [e for e in want if e not in got]
            problems.append(f"{d or '/'}: ls -l --json differs: {diff[:4]}")
        r = cli("--home", proj.home, "--vault", spec, "ls", "-l", d)
        lines = []
        for e in want:
            node = tree.get(e["path"])
            extra = (
                f" -> {node.data.decode('utf-8', 'surrogateescape')}"
                if e["mode"] == MODE_LINK and node
                else ""
            )
            size = "-" if e["size"] is None else _human_size(e["size"])
            slash = "/" if e["mode"] == MODE_DIR else ""
            lines.append(f"{e['mode']:06o} {e['kind']:<8} {size:>7} {e['name']}{slash}{extra}")
        if r.code != 0 or r.out.splitlines() != lines:
            got_lines = r.out.splitlines()
            diff = [x for x in got_lines if x not in lines][:2] + [x for x in lines if x not in got_lines][:2]
            problems.append(f"{d or '/'}: ls -l exited {r.code}, lines differ: {diff} {r.err.strip()[:200]}")
    return problems


# The per-path passes through a door that adds only its own handling per path (``avfs
# stat``, the MCP server's ``read_file``) ask about every path whose handling there differs
# (a symlink, an executable, a name that is not plain ASCII, a fork's change, the deepest
# path and the biggest file) and, of each class of the rest (empty, UTF-8 text, text with CR
# bytes, not UTF-8), every EVERY-th path, its first and last included. What the library
# answers for every path is the ``api`` pass's (the same stat, read and listing, every path,
# both states), every file's bytes the cat, mount, clone and export passes'. (Every path
# through both doors was ~70 s of the file's ~130 s of CPU: ~6 ms a stat in process, ~10 ms
# an MCP call; suitetime16.)
EVERY = 8
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.+/][A-Za-z0-9_.+/-]*")


def interface_sample(tree: Tree, base: Tree) -> list[str]:
    """The files and symlinks a per-path pass through ``avfs stat`` or the MCP server asks
    about (see :data:`EVERY`), sorted; each one that differs from ``base`` (the import's: a
    fork's changes) too."""
    classes: dict[tuple[object, ...], list[str]] = {}
    for p in sorted(tree):
        n = tree[p]
        try:
            n.data.decode("utf-8")
            text = "empty" if not n.data else "crlf" if b"\r" in n.data else "text"
        except UnicodeDecodeError:
            text = "binary"
        plain = n.mode == MODE_FILE and _PLAIN_NAME.fullmatch(p) is not None and base.get(p) == n
        classes.setdefault((plain, text, n.mode), []).append(p)
    out = (
        [
            max(tree, key=lambda p: (p.count("/"), len(p), p)),  # the deepest
            max(tree, key=lambda p: (len(tree[p].data), p)),  # the biggest
        ]
        if tree
        else []
    )
    for (plain, _text, _mode), paths in classes.items():
        if not plain:
            out += paths  # every one
        else:
            out += {*paths[::EVERY], paths[-1]}
    return sorted(set(out))


def check_stat(cli: Any, proj: Project, fork: str, tree: Tree, subtrees: dict[str, str]) -> Problems:
    """``avfs --json stat`` of every directory and of :func:`interface_sample`'s files and
    symlinks: kind, mode, size, the git object id (git's own), the symlink target."""
    problems: Problems = []
    spec = f"{proj.spec.name}:{fork}"
    want: dict[str, dict[str, Any]] = {}
    for p in interface_sample(tree, proj.tree):
        n = tree[p]
        target = n.data.decode("utf-8", "surrogateescape") if n.mode == MODE_LINK else None
        want[p] = {"kind": _KIND[n.mode], "mode": n.mode, "size": len(n.data), "oid": n.oid, "target": target}
    for d in dirs_of(tree):
        if d:
            want[d] = {"kind": "dir", "mode": MODE_DIR, "size": 0, "oid": subtrees[d], "target": None}
    for p, w in sorted(want.items()):
        r = cli("--home", proj.home, "--json", "--vault", spec, "stat", p)
        if r.code != 0:
            problems.append(f"{p}: stat exited {r.code}: {r.out.strip()[:300]}")
            continue
        st = r.json()["stat"]
        got = {k: st[k] for k in w}
        if got != w or st["path"] != p or st["materialized"]:
            problems.append(f"{p}: stat {st} != {w}")
    return problems


def check_api(proj: Project, fork: str, tree: Tree, subtrees: dict[str, str]) -> Problems:
    """The Python API in this process: read, stat, read_link of every path, listdir (with
    sizes) of every directory, and walk of the whole tree."""
    problems: Problems = []
    with Home(proj.home, author=AUTHOR, mounts=MOUNT_SIDE) as home:
        ws = home.vault(proj.spec.name).workspace(fork)
        for p, n in sorted(tree.items()):
            try:
                st = ws.stat(p)
                if (st.mode, st.size, st.oid, st.path) != (n.mode, len(n.data), n.oid, p):
                    problems.append(f"{p}: stat gives mode {st.mode:o} size {st.size} oid {st.oid}")
                if n.mode == MODE_LINK and (
                    os.fsencode(ws.read_link(p)) != n.data or st.target != ws.read_link(p)
                ):
                    problems.append(f"{p}: read_link gives {ws.read_link(p)!r}")
                want = resolved(tree, p)
                if want is not None and bytes(ws.read(p)) != want:
                    problems.append(f"{p}: read gives other bytes")
            except Exception as exc:  # every path's failure is recorded, not only the first
                problems.append(f"{p}: {type(exc).__name__}: {exc}")
        for d, children in sorted(dirs_of(tree).items()):
            want_entries = [_expected_entry(tree, d, n, m) for n, m in sorted(children.items())]
            try:
                got = [
                    {"name": e.name, "path": e.path, "kind": str(e.kind), "mode": e.mode, "size": e.size}
                    for e in ws.listdir(d, sizes=True)
                ]
                if got != want_entries:
                    problems.append(f"{d or '/'}: listdir differs")
                if d and ws.stat(d).oid != subtrees[d]:
                    problems.append(f"{d}: tree id {ws.stat(d).oid}, git says {subtrees[d]}")
            except Exception as exc:
                problems.append(f"{d or '/'}: listdir: {type(exc).__name__}: {exc}")
        try:
            walked = {e.path: e.mode for e in ws.walk()}
            want_walk = {**{p: n.mode for p, n in tree.items()}, **{d: MODE_DIR for d in dirs_of(tree) if d}}
            if walked != want_walk:
                problems.append(f"walk differs: {sorted(set(walked) ^ set(want_walk))[:5]}")
        except Exception as exc:
            problems.append(f"walk: {type(exc).__name__}: {exc}")
    return problems


def require_fuse() -> None:
    why = mounts.fuse_available()
    if why is not None:
        if IN_CI:
            pytest.fail(f"FUSE must be available in CI: {why}")
        pytest.skip(f"requires FUSE: {why}")


def mounted_tree(mp: str) -> tuple[Problems, dict[str, tuple[int, int, bytes]]]:
    """os.walk of a mount (its own .git left out): path -> (lstat mode, size, bytes or
    link target), every file read whole."""
    problems: Problems = []
    seen: dict[str, tuple[int, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(mp, onerror=lambda e: problems.append(f"walk: {e}")):
        rel_dir = os.path.relpath(dirpath, mp)
        rel_dir = "" if rel_dir == "." else rel_dir
        if not rel_dir and ".git" in dirnames + filenames:
            (dirnames if ".git" in dirnames else filenames).remove(".git")
        for name in dirnames + filenames:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    seen[rel] = (st.st_mode, st.st_size, os.fsencode(os.readlink(full)))
                elif stat.S_ISDIR(st.st_mode):
                    seen[rel] = (st.st_mode, 0, b"")
                else:
                    with open(full, "rb") as fh:
                        seen[rel] = (st.st_mode, st.st_size, fh.read())
            except OSError as exc:
                problems.append(f"{rel}: {exc}")
        # a symlink to a directory is listed in dirnames but not walked into: fine
    return problems, seen


def compare_checkout(seen: dict[str, tuple[int, int, bytes]], tree: Tree, where: str) -> Problems:
    problems: Problems = []
    dirs = {d for d in dirs_of(tree) if d}
    want_paths = set(tree) | dirs
    for p in sorted(set(seen) - want_paths)[:20]:
        problems.append(f"{p}: in the {where}, not in the source")
    for p in sorted(want_paths - set(seen))[:20]:
        problems.append(f"{p}: in the source, missing from the {where}")
    for p in sorted(want_paths & set(seen)):
        mode, size, data = seen[p]
        if p in dirs:
            if not stat.S_ISDIR(mode):
                problems.append(f"{p}: not a directory in the {where} (mode {mode:o})")
            continue
        n = tree[p]
        if n.mode == MODE_LINK:
            if not stat.S_ISLNK(mode) or data != n.data:
                problems.append(f"{p}: {where} has mode {mode:o} target {data!r}, want a link to {n.data!r}")
        elif not stat.S_ISREG(mode):
            problems.append(f"{p}: not a regular file in the {where} (mode {mode:o})")
        elif bool(mode & stat.S_IXUSR) != (n.mode == MODE_EXEC):
            problems.append(f"{p}: exec bit {mode & 0o777:o} in the {where}, git mode {n.mode:o}")
        elif size != len(n.data) or data != n.data:
            problems.append(f"{p}: {where} holds {size} bytes that differ (want {len(n.data)})")
    return problems


def check_mount(proj: Project, fork: str, tree: Tree, mp: Path) -> Problems:
    """A real mount (``avfs mount``, a real daemon): os.walk equals the source's listing,
    lstat gives types, exec bits, sizes and link targets, every file reads back whole, and
    ``git status`` in the mount (git's own view through the mount's worktree) is clean."""
    require_fuse()
    mp.mkdir()
    spec = f"{proj.spec.name}:{fork}"
    proc = proj.avfs("--json", "mount", spec, str(mp), check=False)
    if proc.returncode != 0:
        return [
            f"avfs mount exited {proc.returncode}: {proc.stdout.decode()[:500]} {proc.stderr.decode()[:500]}"
        ]
    try:
        problems, seen = mounted_tree(str(mp))
        problems += compare_checkout(seen, tree, "mount")
        st = subprocess.run(
            ["git", "status", "--porcelain", "-z"], cwd=mp, env=proj.env, capture_output=True, check=False
        )
        out = st.stdout.decode("utf-8", "surrogateescape")
        # git status exits 0 with a clean listing when it cannot lstat files (it says so on
        # stderr only): a clean mount is silent on both
        if st.returncode != 0 or out or st.stderr:
            listed = [x for x in out.split("\0") if x]
            problems.insert(  # first: it names the mount-wide symptom
                0,
                f"git status in the mount exited {st.returncode}, lists {len(listed)} paths: "
                f"{listed[:5]} {st.stderr.decode(errors='replace')[:300]}",
            )
    finally:
        un = proj.avfs("unmount", spec, check=False)
        if mounts.mounted_at(str(mp)):
            mounts.force_unmount(str(mp))
        assert un.returncode == 0, f"avfs unmount: {un.stderr.decode()}"
    return problems


def check_clone(proj: Project, fork: str, tree: Tree, tid: str, dest: Path) -> Problems:
    """``git clone -b FORK`` of the vault: the checked-out tree equals the source, the
    commit's tree is git's id of the source, and ``git fsck --strict`` finds nothing."""
    problems: Problems = []
    fsck = subprocess.run(
        ["git", "--git-dir", proj.vault_path, "fsck", "--strict", "--no-dangling", "--no-progress"],
        env=proj.env,
        capture_output=True,
        check=False,
    )
    if fsck.returncode != 0 or fsck.stdout.strip():
        problems.append(
            f"git fsck --strict of the vault: {fsck.stdout.decode()[:500]}{fsck.stderr.decode()[:500]}"
        )
    clone = subprocess.run(
        ["git", "-c", "core.autocrlf=false", "clone", "-q", "-b", fork, proj.vault_path, str(dest)],
        env=proj.env,
        capture_output=True,
        check=False,
    )
    if clone.returncode != 0:
        return [*problems, f"git clone -b {fork} failed: {clone.stderr.decode()[:500]}"]
    head_tree = git_run("-C", str(dest), "rev-parse", "HEAD^{tree}", env=proj.env).strip()
    if head_tree != tid:
        problems.append(f"the clone's tree is {head_tree}, git makes {tid} of the source")
    walk_problems, seen = mounted_tree(str(dest))
    return problems + walk_problems + compare_checkout(seen, tree, "clone")


def check_export(proj: Project, fork: str, tree: Tree, dest: Path) -> Problems:
    """``avfs export VAULT:FORK DIR`` (what ``apply`` and a person taking the work out use):
    the directory written equals the source, modes and symlinks included."""
    proc = proj.avfs("export", f"{proj.spec.name}:{fork}", str(dest), check=False)
    if proc.returncode != 0:
        return [f"avfs export exited {proc.returncode}: {proc.stderr.decode()[:500]}"]
    problems, seen = mounted_tree(str(dest))
    return problems + compare_checkout(seen, tree, "export")


def check_mcp(proj: Project, fork: str, tree: Tree) -> Problems:
    """The MCP server (``avfs mcp``, a real process driven by the MCP SDK's client, which
    also checks each result against the tool's output schema): ``read_file`` of
    :func:`interface_sample`'s files and symlinks, ``list_files`` of every directory."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    problems: Problems = []
    target = {"vault": proj.spec.name, "fork": fork}

    async def body(s: ClientSession) -> None:
        for p in interface_sample(tree, proj.tree):
            want = resolved(tree, p)
            if want is None:
                continue
            r = await s.call_tool("read_file", {**target, "path": p})
            doc = json.loads(r.content[0].text)  # type: ignore[union-attr]
            if r.is_error:
                problems.append(f"{p}: read_file: {doc.get('error')}")
                continue
            (f,) = doc["files"]
            got = base64.b64decode(f["content"]) if f["encoding"] == "base64" else f["content"].encode()
            if got != want or f["path"] != p:
                problems.append(f"{p}: read_file gives {f['path']!r}, {len(got)} bytes that differ")
        for d, children in sorted(dirs_of(tree).items()):
            r = await s.call_tool("list_files", {**target, "path": d})
            doc = json.loads(r.content[0].text)  # type: ignore[union-attr]
            want_entries = [_expected_entry(tree, d, n, m) for n, m in sorted(children.items())]
            if r.is_error:
                problems.append(f"{d or '/'}: list_files: {doc.get('error')}")
            elif doc["entries"] != want_entries:
                problems.append(f"{d or '/'}: list_files differs")

    async def main() -> None:
        # a fork of this process's warm process running `python -m avfs_git mcp` (tests/mcpwarm.py)
        command, *args = mcpwarm.command("mcp", "--home", proj.home)
        params = StdioServerParameters(command=command, args=args, env=proj.env)
        async with (
            stdio_client(params, errlog=sys.stderr) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await asyncio.wait_for(body(session), timeout=240)

    asyncio.run(main())
    return problems


# every read path on the import; after the fork, change and gc, the MCP server's tools too
# (its start-up and per-call cost keep it to that one pass, the one with deltas everywhere)
READS = ("cat", "ls", "stat", "api", "mount", "clone", "export")
READS_AFTER_GC = (*READS, "mcp")


def check(
    how: str, cli: Any, proj: Project, fork: str, tree: Tree, tid: str, sub: dict[str, str], tmp: Path
) -> None:
    if how == "cat":
        problems = check_cat(proj, fork, tree)
    elif how == "ls":
        problems = check_ls(cli, proj, fork, tree)
    elif how == "stat":
        problems = check_stat(cli, proj, fork, tree, sub)
    elif how == "api":
        problems = check_api(proj, fork, tree, sub)
    elif how == "mount":
        problems = check_mount(proj, fork, tree, tmp / "mnt")
    elif how == "mcp":
        problems = check_mcp(proj, fork, tree)
    elif how == "clone":
        problems = check_clone(proj, fork, tree, tid, tmp / "clone")
    else:
        problems = check_export(proj, fork, tree, tmp / "export")
    _verdict(f"{proj.spec.name}:{fork} through {how}", problems, len(tree))


# -- the tests -----------------------------------------------------------------------------------------


def test_import_is_the_tree_git_makes_of_the_source(project: Project) -> None:
    """The fork's tree is exactly git's tree of the source directory (same paths, modes,
    bytes), and its commit is the fork's only checkpoint."""
    head = git_run("--git-dir", project.vault_path, "rev-parse", "refs/heads/main^{tree}", env=project.env)
    assert head.strip() == project.tree_id
    assert len(project.tree) > 0


@pytest.mark.parametrize("how", READS)
def test_every_file_reads_back(project: Project, how: str, cli: Any, tmp_path: Path) -> None:
    check(how, cli, project, "main", project.tree, project.tree_id, project.subtrees, tmp_path)


def test_release_untarred_in_a_mount_checkpoints_to_the_tree_git_makes(
    project: Project, tmp_path: Path
) -> None:
    """The other way in: ``tar x`` of the release inside a mount of an empty vault (a real
    tool writing through the mount), then ``avfs checkpoint save``: the unpacked directory's
    tree in the commit is git's tree of the source, and nothing is left unrecorded."""
    require_fuse()
    name = f"{project.spec.name}-tarx"
    project.avfs("vault", "create", name)
    mp = tmp_path / "mnt"
    mp.mkdir()
    project.avfs("mount", f"{name}:main", str(mp))
    try:
        tar = subprocess.run(
            ["tar", "-xf", str(project.spec.fetch()), "--no-same-owner", "-C", str(mp)],
            capture_output=True,
            check=False,
        )
        assert tar.returncode == 0, tar.stderr.decode(errors="replace")
        saved = json.loads(project.avfs("--json", "--vault", f"{name}:main", "checkpoint", "save").stdout)
    finally:
        project.avfs("unmount", f"{name}:main", check=False)
        if mounts.mounted_at(str(mp)):
            mounts.force_unmount(str(mp))
    assert not saved.get("not_recorded"), saved
    top = os.path.relpath(project.src, project.root / "src")
    vault = os.path.join(project.home, "vaults", f"{name}.git")
    got = git_run("--git-dir", vault, "rev-parse", f"refs/heads/main:{top}", env=project.env).strip()
    assert got == project.tree_id


# -- after a fork, a change, a checkpoint and gc ----------------------------------------------------------


@dataclasses.dataclass
class Changed:
    proj: Project
    fork: str
    tree: Tree
    tree_id: str
    subtrees: dict[str, str]


@pytest.fixture(scope="module")
def changed(project: Project) -> Changed:
    """Fork ``main`` to ``edit``; there edit the biggest file, add a binary file, delete a
    file, make one executable and add a symlink (each a real ``avfs`` process); checkpoint;
    then ``avfs gc``, which repacks the vault (deltas of every kind)."""
    proj, name = project, project.spec.name
    tree = dict(proj.tree)
    files = sorted(p for p, n in tree.items() if n.mode != MODE_LINK)
    biggest = max(files, key=lambda p: (len(tree[p].data), p))
    doomed = next(p for p in files if p != biggest and "/" in p)
    plain = next(p for p in files if tree[p].mode == MODE_FILE and p not in (biggest, doomed))
    blob = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(4096))  # 128 KiB, no text
    edited = tree[biggest].data + b"\n\x00edited in a fork\n"
    link_dir = posixpath.dirname(biggest)
    link = f"{link_dir}/link-to-biggest" if link_dir else "link-to-biggest"
    staged = proj.root / "staged"
    staged.mkdir()
    (staged / "edited").write_bytes(edited)
    (staged / "blob").write_bytes(blob)
    spec = f"{name}:edit"
    proj.avfs("vault", "fork", f"{name}:main", "edit")
    proj.avfs("--vault", spec, "write", biggest, "--file", str(staged / "edited"))
    proj.avfs("--vault", spec, "write", "corpus-added/data.bin", "--file", str(staged / "blob"))
    proj.avfs("--vault", spec, "rm", doomed)
    proj.avfs("--vault", spec, "chmod", "+x", plain)
    proj.avfs("--vault", spec, "ln", "-s", posixpath.basename(biggest), link)
    proj.avfs("--vault", spec, "checkpoint", "save", "-m", "edit: a change of every kind")
    tree[biggest] = Node(tree[biggest].mode, edited)
    tree["corpus-added/data.bin"] = Node(MODE_FILE, blob)
    del tree[doomed]
    tree[plain] = Node(MODE_EXEC, tree[plain].data)
    tree[link] = Node(MODE_LINK, posixpath.basename(biggest).encode())
    tid, sub = tree_id(tree, proj.scratch, proj.env)
    proj.avfs("--vault", name, "gc")
    return Changed(proj, "edit", tree, tid, sub)


def test_fork_checkpoint_is_the_tree_git_makes_and_main_is_untouched(changed: Changed) -> None:
    p = changed.proj
    heads = git_run(
        "--git-dir", p.vault_path, "rev-parse", "refs/heads/edit^{tree}", "refs/heads/main^{tree}", env=p.env
    ).split()
    assert heads == [changed.tree_id, p.tree_id]
    packs = list(Path(p.vault_path, "objects", "pack").glob("*.pack"))
    assert len(packs) == 1, f"gc leaves one pack, found {packs}"


@pytest.mark.parametrize("how", READS_AFTER_GC)
def test_every_file_reads_back_after_fork_checkpoint_and_gc(
    changed: Changed, how: str, cli: Any, tmp_path: Path
) -> None:
    c = changed
    check(how, cli, c.proj, c.fork, c.tree, c.tree_id, c.subtrees, tmp_path)
    if how == "api":  # main shares every object but the changed ones: read it whole again
        check("api", cli, c.proj, "main", c.proj.tree, c.proj.tree_id, c.proj.subtrees, tmp_path)


# -- a project's own test suite, run in a mount through proxy exec ----------------------------------------

# attrs 24.2.0's one test that fails outside avfs too, on this Python (3.11.7): it checks
# the return annotation a wrapped converter reports (a CPython detail, not a file-system one).
_ATTRS_FAILS_NATIVELY = "tests/test_converters.py::TestPipe::test_wrapped_annotation"
# Its two hypothesis-heavy modules are 30 s of CPU of the suite's 33 and add nothing a mount
# could get wrong that the other 1,015 tests (hypothesis ones included) do not exercise.
_ATTRS_HEAVY = ("tests/test_make.py", "tests/test_funcs.py")


def test_attrs_own_test_suite_passes_in_a_mount_through_proxy_exec(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """attrs's own command (``pytest``: 1,015 of its tests, hypothesis ones included) in a
    fresh import through ``avfs proxy exec``: one envelope, exit 0, the suite's own files
    left as they were, and the commit holds only what the run made (caches, bytecode)."""
    require_fuse()
    proj = make_project(next(s for s in CORPUS if s.name == "attrs"), tmp_path)
    # the suite runs on this interpreter and its venv, which the sandbox shows (read-only)
    # only where the policy names them
    Path(proj.home, "policy.toml").write_text(
        f"version = 1\n[defaults]\nreadable = {json.dumps([sys.prefix, sys.base_prefix])}\n"
    )
    proc = proj.avfs(
        "--json",
        "--vault",
        "attrs:main",
        "proxy",
        "exec",
        "--mode",
        "fuse",
        "--timeout-ms",
        "240000",
        "--env",
        "PYTHONPATH=src",
        "--",
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "--deselect",
        _ATTRS_FAILS_NATIVELY,
        *(f"--ignore={m}" for m in _ATTRS_HEAVY),
        check=False,
    )
    docs = [line for line in proc.stdout.decode().splitlines() if line.strip()]
    assert len(docs) == 1, f"one envelope on stdout, got {len(docs)}: {proc.stderr.decode()[-2000:]}"
    env = json.loads(docs[0])
    res = env["result"] or {}
    assert env["kind"] == "proxy_exec_result" and env["error"] is None, env["error"]
    assert proc.returncode == 0 and env["success"] and res["exit_code"] == 0 and not res["timed_out"], (
        f"exit {proc.returncode}: {res.get('stdout', '')[-3000:]}{res.get('stderr', '')[-2000:]}"
    )
    assert " passed" in res["stdout"] and " failed" not in res["stdout"], res["stdout"][-2000:]
    # the run added files; it changed none of the project's
    changes = env["changes"]
    touched = [c for c in changes if c["path"] in proj.tree or c["status"] != "added"]
    assert not touched, f"the suite changed the project's own files: {touched[:10]}"
    head = git_run("--git-dir", proj.vault_path, "rev-parse", "refs/heads/main", env=proj.env).strip()
    if changes:  # what the run made is one commit, the fork's new head
        assert env["commit"] is not None and head == env["commit"]["commit"]
    else:  # nothing to record (once the caches are ignored): no commit
        assert env["commit"] is None and env["state"]["base"] == head
    listing = git_run("--git-dir", proj.vault_path, "ls-tree", "-r", "-z", head, env=proj.env)
    in_commit = {}
    for line in filter(None, listing.split("\0")):
        meta, path = line.split("\t", 1)
        mode, _, oid = meta.split()
        in_commit[path] = (int(mode, 8), oid)
    assert {p: in_commit.get(p) for p in proj.tree} == {p: (n.mode, n.oid) for p, n in proj.tree.items()}
    # git's ignore rules (the project's .gitignore) keep the suite's caches out of the commit:
    # nothing it added is ignored by git, and the envelope counts what was left out
    added = sorted(set(in_commit) - set(proj.tree))
    check = subprocess.run(
        [
            "git",
            "--git-dir",
            str(proj.scratch),
            "--work-tree",
            str(proj.src),
            "check-ignore",
            "--no-index",
            "-z",
            "--stdin",
        ],
        input="\0".join(added).encode() + b"\0",
        env=proj.env,
        capture_output=True,
        check=False,
    )
    ignored = [p for p in check.stdout.decode().split("\0") if p]
    assert not ignored, f"the exec commit holds paths .gitignore ignores: {ignored[:20]}"
    assert env["ignored"] > 0, "pytest's caches (__pycache__, .pytest_cache) are counted as ignored"
    record_property("exec_committed_paths", len(added))
    record_property("exec_envelope_ignored", env["ignored"])


# -- a real history: an imported checkout, and a merge of two release lines ----------------------------


def test_merge_of_two_real_release_lines_is_what_git_merge_tree_makes(tmp_path: Path) -> None:
    """attrs's releases 23.1.0 → 24.2.0 as a git history (``git gc --aggressive``: deep delta
    chains), imported from the checkout (which brings the history); a fork from 23.2.0 and
    one from 24.1.0, each with a change of its own, merged: the same result as
    ``git merge-tree`` on the vault (the same tree when clean, the same paths in conflict)."""
    proj = Project(CORPUS[0], tmp_path, tmp_path, make_env(tmp_path), {}, "", {}, tmp_path)
    work = realdata.history("attrs", ["23.1.0", "23.2.0", "24.1.0", "24.2.0"], tmp_path)
    proj.avfs("vault", "create", "hist", "--from", str(work))
    vault = os.path.join(proj.home, "vaults", "hist.git")
    for fork, tag, path in (("old", "v23.2.0", "OLD-SIDE"), ("new", "v24.1.0", "NEW-SIDE")):
        proj.avfs("vault", "fork", "hist:main", fork)
        proj.avfs("--vault", f"hist:{fork}", "checkpoint", "restore", tag)
        proj.avfs("--vault", f"hist:{fork}", "write", path, f"{fork}\n")
        readme = git_run("--git-dir", vault, "show", f"{tag}:README.md", env=proj.env)
        # one side adds a line at the top of README.md, the other at its end: both merge
        edited = f"<!-- {fork} -->\n{readme}" if fork == "old" else f"{readme}<!-- {fork} -->\n"
        (tmp_path / f"{fork}.md").write_text(edited)
        proj.avfs("--vault", f"hist:{fork}", "write", "README.md", "--file", str(tmp_path / f"{fork}.md"))
        proj.avfs("--vault", f"hist:{fork}", "checkpoint", "save", "-m", f"{fork}: a change")
    mt = subprocess.run(
        ["git", "--git-dir", vault, "merge-tree", "--write-tree", "--name-only", "-z", "old", "new"],
        env=proj.env,
        capture_output=True,
        check=False,
    )
    assert mt.returncode in (0, 1), mt.stderr.decode()
    git_tree, *rest = mt.stdout.decode().split("\0")
    merged = proj.avfs("--json", "--vault", "hist:old", "merge", "new", check=False)
    doc = json.loads(merged.stdout)
    if mt.returncode == 0:
        assert merged.returncode == 0, doc
        got = git_run("--git-dir", vault, "rev-parse", "old^{tree}", "old^1", "old^2", "new", env=proj.env)
        tree, _, second, new = got.split()
        assert tree == git_tree and second == new
    else:
        git_conflicts = set(rest[: rest.index("")] if "" in rest else rest)
        assert merged.returncode == 3, doc
        assert {c["path"] for c in doc["results"][0]["conflicts"]} == git_conflicts
    fsck = subprocess.run(
        ["git", "--git-dir", vault, "fsck", "--strict", "--no-dangling", "--no-progress"],
        env=proj.env,
        capture_output=True,
        check=False,
    )
    assert fsck.returncode == 0 and not fsck.stdout.strip(), fsck.stdout.decode() + fsck.stderr.decode()

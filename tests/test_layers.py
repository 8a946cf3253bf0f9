"""The layers hold: every import in avfs_git (function-level and TYPE_CHECKING-guarded ones
included) goes down or sideways, never up, and no two packages import each other.

The layers, lowest first (docs/architecture.md):

    0  core, policy            core in tiers (below); the policy model
    0.5 mount                  what only a mount needs: the worktree git dir, the fsmonitor hook
                                and its socket, the untracked cache (ops, fuse and proxy use it)
    1  ops                     workflows over core: up/down/apply, stats/gc/prune/doctor, mounts
    2  proxy                   the execution boundary: classify, confine, run, commit
    2.5 fuse                   the FUSE adapter and the mount daemon. One tier with proxy in
                                DESIGN.md; ordered inside it because the daemon hosts proxy's
                                warm exec server (fuse/daemon.py -> proxy/server.py) while proxy
                                reaches mounts through ops/mounts.py only: proxy never imports fuse
    2.9 avfs_git/__init__.py   the public Python API: it imports nothing of avfs_git when it
                                loads (it runs first under every avfs_git module, so it must not);
                                its lazy table names core and proxy (exec_in) and resolves on
                                attribute access. Only front ends may import it
    3  mcp, hooks              front ends: the MCP server; agent and git hooks
    3.5 cli, __main__          the command line (cli/execopts.py, the console script and its
                                fast path, is a front end like the rest of cli/); it starts the MCP server and answers hook events, so
                                it sits above them: mcp and hooks never import cli, nor each other

Inside core, the tiers, lowest first (each a package; the four modules at core's root are the
vocabulary every tier shares):

    0  core/errors.py, core/types.py, core/settings.py, core/records.py
    1  core/store/             objects, packs, refs, running git, names, transport, tree differ
    2  core/workspace/         overlay, upper layer, watch, journal, merged view, writes, commits
    3  core/vaults/            home, vault, registry, op log, audit, quota, layers, importer
    4  core/operations/        checkpoint, merge, history, remotes, search

An import of a module in a higher layer or tier fails the test; so does any cycle between packages.
Cycles among the modules of one package (through function-level imports) are debt: the edges
that close them are listed below, and the test fails if one is added or if one disappears while still listed
(so the list can only shrink).
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "avfs_git"

LAYER: dict[str, float] = {
    "core": 0,
    "policy": 0,
    "mount": 0.5,
    "ops": 1,
    "proxy": 2,
    "fuse": 2.5,
    "": 2.9,  # avfs_git/__init__.py
    "mcp": 3,
    "hooks": 3,
    "cli": 3.5,
    "__main__": 3.5,
}

# imports between two packages of one rank (each other's modules: a cycle would fail anyway).
# Only these: policy uses core's error hierarchy and its dataclass (core/records.py: the
# standard library's, its generated methods compiled once) and nothing else of core; `python -m
# avfs_git` is the CLI. Two front ends (mcp, hooks) never import each other.
SIDEWAYS = {("policy", "core"), ("__main__", "cli")}
POLICY_USES_OF_CORE = {"avfs_git.core.errors", "avfs_git.core.records"}

# Below the front ends, the process environment is read for avfs's settings in one module,
# core/settings.py (the front ends build a Settings and pass it down: home.settings). The
# other reads are not settings of avfs; each says what it is. A new one fails the test.
FRONT_ENDS = {"cli", "mcp", "hooks", "__main__"}
ENVIRONMENT_READS = {
    "core/settings.py": "the one reader of avfs's settings (AVFS_*, XDG_CACHE_HOME, HOME), called by the front ends only (FROM_ENVIRON_CALLS)",
    "core/store/identity.py": "git's GIT_AUTHOR_*/GIT_COMMITTER_*: git semantics, in one place",
    "core/store/gitrun.py": "the environment a git process is given: the caller's, without GIT_* but for where git's config is",
    "core/store/transport.py": "the user's ssh settings (GIT_SSH*) for the git process that reaches a remote",
    "proxy/placement.py": "the environment a command inherits when the request carries none",
    "proxy/netdir.py": "TMPDIR: where the network forwarder's socket directory is made",
    "proxy/confine.py": "PATH: where bwrap is, looked up per PATH (a call the resident server forks runs with its caller's)",
    "ops/mounts.py": "PATH: is fusermount3 there",
    "ops/daemonstart.py": "the environment the mount daemon is started with",
    "fuse/daemon.py": "sets FUSE_LIBRARY_NAME/FUSE_LIBRARY_PATH for mfusepy (fuse/libs.py; a write, for the library)",
    "fuse/forked.py": "a daemon forked from the warm server takes the environment its starter made (a write)",
    "fuse/zygote.py": "the environment a zygote started with: it forks only daemons whose start-up variables are the same",
}

# Below the front ends, nothing calls ``from_environ`` (``Settings.from_environ``: avfs's
# settings; ``identity.from_environ``: git's GIT_AUTHOR_*/GIT_COMMITTER_*): the front ends do,
# and pass a Settings (and an Identity) down. These are front ends in all but their package,
# or read an environment they were handed; each says which. A new caller fails the test.
FROM_ENVIRON_CALLS = {
    "mount/side.py": "open_home, the Python API's entry (avfs_git.open_home): a caller need not build Settings",
    "fuse/daemon.py": "the mount daemon's entry: its command line and environment are a front end's",
    "proxy/execute.py": "identity.from_environ of the environment a request carries (a client's), not this process's",
}

# The modules that import pygit2 (function-level and TYPE_CHECKING imports included): all in
# core/store, the one door to libgit2. Every module above the store reaches it through the
# store's methods and functions, which translate pygit2's errors into AvfsError; the
# repository itself (GitStore._repo) is the store's too (test_the_repository_stays_in_the_store).
# A new importer fails the test.
PYGIT2_IMPORTERS = {
    "core/store/gitstore.py": "the store: objects, commits, the commit graph, revisions, tree diffs, blob ids and patches",
    "core/store/gitwrite.py": "the store's writes (a part of GitStore): blobs, commits, the identity from libgit2's config",
    "core/store/gitlib.py": "what libgit2 raises (git_errors), the one list every store module catches",
    "core/store/refs.py": "reference transactions: compare-and-swap of refs, libgit2's ref locks",
    "core/store/gitpatch.py": "patches and line counts of two blobs' bytes (libgit2's Patch)",
    "core/store/mergetrees.py": "libgit2's merge machinery: merge_trees and reverts, their index, conflict entries, merge favour",
    "core/store/odbdirect.py": "the object database read directly: a thread's database of the vault's packs alone",
    "core/store/gitclean.py": "libgit2's filters: what `git add` stores for a file under the view's .gitattributes",
    "core/store/gitsmudge.py": "libgit2's filters the other way: what `git checkout` writes for a blob under a tree's .gitattributes",
}

# (importer, imported) edges between modules of one package that lie on an import cycle
# (function-level imports break the cycle at import time, but the modules still cannot be
# understood apart). None is left. In core, a home makes its vaults and a vault its
# workspaces, and each names its maker back as a type parameter bound by a Protocol of what
# it uses (``Vault[H: VaultHome]``, ``Workspace[V: WsVault]``), so ``home.vault(n)`` is a
# ``Vault[Home]`` and ``ws.vault.home`` a ``Home`` to a caller's type checker while vault.py
# and workspace.py never import the module above them. (gitstore, packwriter, treediff,
# oplog and ignore left the component when running git moved out of home into
# core/store/gitrun.py; checkpoint, history, importer, merge, remote and worktree when an open
# merge's state, recovery refs and reaching a git server moved down, and the worktree and
# the importer typed the workspace as a Protocol.) In cli, the console script (execopts.main)
# runs the fast path and then the click CLI (cli/main), whose command modules take App and
# pass_app from cli/app.py and render `proxy exec` with cli/execrender.py: none imports
# main or execopts back.
KNOWN_MODULE_CYCLE_EDGES: set[tuple[str, str]] = set()


CORE_TIER: dict[str, int] = {"": 0, "store": 1, "workspace": 2, "vaults": 3, "operations": 4}

# Upward edges still to be removed (each a debt that can only shrink). None is left: the
# workspace reaches a live mount through the MountSide its home was given (mount/side.py),
# and asks a mount's daemon over the wire format of core/workspace/hookwire.py.
KNOWN_UPWARD: set[tuple[str, str]] = set()


@functools.cache
def _parsed(source: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse``, once a source in a process: most checks here walk every module (273,
    1.9 s of CPU to parse them all), and none changes a tree."""
    return ast.parse(source, filename)


@functools.cache
def _walked(source: str, filename: str = "<unknown>") -> tuple[ast.AST, ...]:
    """Every node of ``source``'s tree in ``ast.walk``'s order, walked once a source in a
    process: the checks here walk each module ~14 times (the import graph alone seven),
    and ``ast.walk`` (``iter_child_nodes`` a node) was ~2/3 of this file's CPU
    (suitetime25: 13.2 s in ci26)."""
    return tuple(ast.walk(_parsed(source, filename)))


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """Every avfs_git module ``name`` imports, wherever the import statement is."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    for node in _walked(path.read_text(), str(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "avfs_git":
                    yield _nearest(alias.name, known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "avfs_git":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield sub if sub in known else _nearest(target, known)
        elif name == "avfs_git" and isinstance(node, ast.Constant) and node.value in known:
            # the public API's lazy table (importlib by name); elsewhere a module name in a
            # string is a process to start (``-m avfs_git.fuse.daemon``), not an import
            yield str(node.value)


def _nearest(target: str, known: set[str]) -> str:
    while target not in known and "." in target:
        target = target.rpartition(".")[0]
    return target


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: {t for t in imports_of(name, path, known) if t != name} for name, path in mods.items()}


def full(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(f"avfs_git.{a}", f"avfs_git.{b}") for a, b in edges}


def core_tier(module: str) -> str:
    parts = module.split(".")
    return parts[2] if len(parts) >= 3 and parts[2] in CORE_TIER else ""


def upward_edges(g: dict[str, set[str]]) -> set[tuple[str, str]]:
    bad = set()
    for src, targets in g.items():
        for dst in targets:
            a, b = package_of(src), package_of(dst)
            up_tier = a == b == "core" and CORE_TIER[core_tier(dst)] > CORE_TIER[core_tier(src)]
            if LAYER[b] > LAYER[a] or up_tier:
                bad.add((src, dst))
    return bad - full(KNOWN_UPWARD)


def sccs(g: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components with more than one member."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def package_graph(g: dict[str, set[str]]) -> dict[str, set[str]]:
    pg: dict[str, set[str]] = {}
    debt = full(KNOWN_UPWARD)
    for src, targets in g.items():
        a = package_of(src)
        for dst in targets:
            if (src, dst) in debt:
                continue
            b = package_of(dst)
            if a != b:
                pg.setdefault(a, set()).add(b)
    return pg


def module_cycle_edges(g: dict[str, set[str]]) -> set[tuple[str, str]]:
    """The import edges that lie on a cycle among the modules of one package."""
    edges = set()
    for pkg in {package_of(m) for m in g}:
        sub = {m: {t for t in ts if package_of(t) == pkg} for m, ts in g.items() if package_of(m) == pkg}
        for comp in sccs(sub):
            for src in comp:
                edges |= {(src, dst) for dst in sub[src] if dst in comp}
    return edges


def short(edges: set[tuple[str, str]]) -> list[str]:
    return sorted(f"{a.removeprefix('avfs_git.')} -> {b.removeprefix('avfs_git.')}" for a, b in edges)


def test_every_module_has_a_layer() -> None:
    assert {package_of(m) for m in modules()} <= set(LAYER)


def test_the_walk_sees_function_level_and_guarded_imports() -> None:
    g = graph()
    # a TYPE_CHECKING-guarded import and one inside a function body
    assert "avfs_git.core.vaults.home" in g["avfs_git.proxy.server"]
    assert "avfs_git.proxy.execute" in g["avfs_git.proxy.server"]


def test_the_package_root_loads_nothing() -> None:
    # it runs before any avfs_git module: one eager import there would sit under everything
    code = "import sys, avfs_git; print(sorted(m for m in sys.modules if m.startswith('avfs_git.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_console_script_loads_only_its_fast_path() -> None:
    # `proxy exec` and the agent hooks run before click or the click CLI (cli/main) is loaded
    code = (
        "import sys, avfs_git.cli.execopts; "
        "print(sorted(m for m in sys.modules if m == 'click' or m.startswith(('click.', 'avfs_git.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['avfs_git.cli', 'avfs_git.cli.execclient', 'avfs_git.cli.execopts']"


def test_no_import_goes_up() -> None:
    found = upward_edges(graph())
    assert short(found) == [], "imports from a lower layer (or core tier) to a higher one"


def test_known_upward_edges_only_shrink() -> None:
    g = graph()
    gone = {(a, b) for a, b in full(KNOWN_UPWARD) if b not in g.get(a, set())}
    assert short(gone) == [], "gone: take them off KNOWN_UPWARD"


def test_every_core_module_has_a_tier() -> None:
    # nothing new at core's root: a module there is shared vocabulary, and there are four
    root = {m for m in modules() if package_of(m) == "core" and core_tier(m) == "" and m.count(".") == 2}
    assert sorted(root) == [
        "avfs_git.core.errors",
        "avfs_git.core.records",
        "avfs_git.core.settings",
        "avfs_git.core.types",
    ]


def test_sideways_imports_are_the_known_ones() -> None:
    pg = package_graph(graph())
    found = {(a, b) for a, targets in pg.items() for b in targets if LAYER[a] == LAYER[b]}
    assert sorted(found) == sorted(SIDEWAYS)


def test_policy_uses_only_the_errors_of_core() -> None:
    g = graph()
    used = {t for m, ts in g.items() if package_of(m) == "policy" for t in ts if package_of(t) == "core"}
    assert sorted(used) == sorted(POLICY_USES_OF_CORE)


def _reads_environment(path: Path) -> bool:
    for node in _walked(path.read_text(), str(path)):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "expanduser"):
            return True
    return False


def test_the_environment_is_read_at_the_edges() -> None:
    found = {
        str(path.relative_to(PKG))
        for name, path in modules().items()
        if package_of(name) not in FRONT_ENDS and _reads_environment(path)
    }
    assert sorted(found) == sorted(ENVIRONMENT_READS)


def _calls_from_environ(path: Path) -> bool:
    for node in _walked(path.read_text(), str(path)):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Attribute) and f.attr == "from_environ") or (
                isinstance(f, ast.Name) and f.id == "from_environ"
            ):
                return True
    return False


def test_settings_are_read_by_the_front_ends() -> None:
    found = {
        str(path.relative_to(PKG))
        for name, path in modules().items()
        if package_of(name) not in FRONT_ENDS and _calls_from_environ(path)
    }
    assert sorted(found) == sorted(FROM_ENVIRON_CALLS)


def _imports_pygit2(path: Path) -> bool:
    for node in _walked(path.read_text(), str(path)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "pygit2" for a in node.names):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and not node.level
            and (node.module or "").split(".")[0] == "pygit2"
        ):
            return True
    return False


def test_pygit2_is_reached_through_the_store() -> None:
    found = {str(path.relative_to(PKG)) for path in modules().values() if _imports_pygit2(path)}
    assert sorted(found) == sorted(PYGIT2_IMPORTERS), "import pygit2 only in the listed modules"
    assert all(p.startswith("core/store/") for p in PYGIT2_IMPORTERS), "libgit2 has one door: the store"


def _reaches_the_repository(path: Path) -> bool:
    return any(
        isinstance(node, ast.Attribute) and node.attr == "_repo"
        for node in _walked(path.read_text(), str(path))
    )


def test_the_repository_stays_in_the_store() -> None:
    # GitStore._repo, the raw pygit2.Repository, is for core/store's modules only: above the
    # store, libgit2 is reached through what the store's methods and functions say they do
    found = {
        str(path.relative_to(PKG))
        for name, path in modules().items()
        if not name.startswith("avfs_git.core.store.") and _reaches_the_repository(path)
    }
    assert sorted(found) == []


def test_no_cycle_between_packages() -> None:
    cycles = sccs(package_graph(graph()))
    assert [sorted(c) for c in cycles] == []


def test_module_cycles_only_shrink() -> None:
    found = module_cycle_edges(graph())
    known = full(KNOWN_MODULE_CYCLE_EDGES)
    assert short(found - known) == [], "a new import cycle among the modules of a package"
    assert short(known - found) == [], "gone: take them off KNOWN_MODULE_CYCLE_EDGES"


# Starting a process: the functions that do, by module (subprocess's, os's exec/spawn family
# and shell ones, asyncio's).
_OS_EXEC = {f"{k}{v}" for k in ("exec", "spawn") for v in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")}
_PROCESS_FUNCTIONS = {
    "subprocess": {"run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput"},
    "os": {"system", "popen", "posix_spawn", "posix_spawnp", *_OS_EXEC},
    "asyncio": {"create_subprocess_exec", "create_subprocess_shell"},
}


def _names_git(node: ast.AST, bound: dict[str, list[ast.AST]], seen: frozenset[str] = frozenset()) -> bool:
    """Whether ``node`` (a process call's argument) is, or is a command line starting with, the
    git program: ``"git"``, ``"git status"``, ``["git", ...]``, ``("git",) + args``,
    ``shutil.which("git")``, or a name assigned one of those anywhere in the module."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.split(" ")[0] in ("git", "/usr/bin/git")
    if isinstance(node, (ast.List, ast.Tuple)):
        return bool(node.elts) and _names_git(node.elts[0], bound, seen)
    if isinstance(node, ast.Starred):
        return _names_git(node.value, bound, seen)
    if isinstance(node, ast.BinOp):  # ["git"] + args
        return _names_git(node.left, bound, seen)
    if isinstance(node, ast.Call):  # shutil.which("git"), list(("git", ...))
        return any(_names_git(a, bound, seen) for a in node.args)
    if isinstance(node, ast.Name) and node.id not in seen:
        return any(_names_git(v, bound, seen | {node.id}) for v in bound.get(node.id, ()))
    return False


def git_process_calls(source: str) -> list[int]:
    """The lines of ``source`` that start a process running git (any scope: a name bound
    anywhere in the module counts where it is used)."""
    nodes = _walked(source)
    modules_as: dict[str, str] = {}  # local name -> module (import subprocess as sp)
    functions_as: dict[str, str] = {}  # local name -> module (from subprocess import run)
    bound: dict[str, list[ast.AST]] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in _PROCESS_FUNCTIONS:
                    modules_as[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module in _PROCESS_FUNCTIONS:
            for alias in node.names:
                if alias.name in _PROCESS_FUNCTIONS[node.module]:
                    functions_as[alias.asname or alias.name] = node.module
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    bound.setdefault(target.id, []).append(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            bound.setdefault(node.target.id, []).append(node.value)
    lines = []
    for node in nodes:
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        starts = (
            isinstance(f, ast.Attribute)
            and isinstance(f.value, ast.Name)
            and f.attr in _PROCESS_FUNCTIONS.get(modules_as.get(f.value.id, ""), ())
        ) or (isinstance(f, ast.Name) and f.id in functions_as)
        argv = [
            *node.args,
            *(k.value for k in node.keywords if k.arg in ("args", "argv", "cmd", "path", "file")),
        ]
        if starts and any(_names_git(a, bound) for a in argv):
            lines.append(node.lineno)
    return lines


def test_the_detector_sees_git_started_directly() -> None:
    # the shapes avfs used before every git process went through gitrun
    cases = [
        'import subprocess\nsubprocess.run(["git", "read-tree", c], env=env, check=False)',
        'import subprocess\nargs = [\n    "git", "-c", "x=1", "status"]\nsubprocess.run(args, cwd=root)',
        'import subprocess as sp\nsp.Popen(("git",) + tuple(a))',
        'from subprocess import check_output\ncheck_output(["git", *a])',
        'import os, shutil\ngit = shutil.which("git")\nos.execv(git, [git, "status"])',
        'import subprocess\nsubprocess.run("git gc", shell=True)',
    ]
    assert [bool(git_process_calls(c)) for c in cases] == [True] * len(cases)
    others = [
        'import subprocess\nsubprocess.run(["umount", "-l", p])',
        'import subprocess, sys\nsubprocess.Popen([sys.executable, "-m", "avfs_git.core.store.packwriter"])',
        'x = ["git", "status"]\nprint(x)',
    ]
    assert [bool(git_process_calls(c)) for c in others] == [False] * len(others)


def test_git_runs_through_gitrun() -> None:
    # core/store/gitrun.py is the one place git is started (its environment, what a missing
    # or failing git becomes); every other module calls run, run_git or spawn
    found = {
        f"{path.relative_to(PKG)}:{line}"
        for path in modules().values()
        if path.relative_to(PKG).as_posix() != "core/store/gitrun.py"
        for line in git_process_calls(path.read_text())
    }
    assert sorted(found) == [], "start git through core/store/gitrun.py (run, run_git, spawn)"


# A ref namespace avfs uses is spelled in core/store/refs.py only (HEADS, TAGS, REMOTES,
# STASH, AVFS and its CHECKPOINTS, RECOVERY, ORIGIN, KEEP; fork_ref, tracking_ref...).
_REF_STARTS = ("refs/", "+refs/", "ref: refs/")


def ref_literals(source: str) -> list[tuple[int, str]]:
    """The string literals of ``source`` (docstrings aside; an f-string by its first part)
    that begin with a ref name, a refspec or a symbolic ref's ``ref: refs/``."""
    nodes = _walked(source)
    docstrings = {
        id(n.value)
        for n in nodes
        if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
    }
    in_fstring = {id(v) for n in nodes if isinstance(n, ast.JoinedStr) for v in n.values}
    found = []
    for node in nodes:
        text = None
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            text = node.values[0].value
        elif isinstance(node, ast.Constant) and id(node) not in docstrings | in_fstring:
            text = node.value
        if isinstance(text, str) and text.startswith(_REF_STARTS):
            found.append((node.lineno, text))
    return found


def test_the_detector_sees_ref_literals() -> None:
    source = (
        '"""refs/avfs/ in a docstring is prose"""\n'
        'KEEP = "refs/avfs/keep"\n'
        'b = f"refs/heads/{fork}"\n'
        'spec = "+refs/avfs/checkpoints/*:refs/avfs/checkpoints/*"\n'
        'head = f"ref: refs/heads/{fork}\\n"\n'
        'msg = f"push the checkpoints (refs/avfs/checkpoints/...) too"\n'
    )
    assert [line for line, _ in ref_literals(source)] == [2, 3, 4, 5]


def test_ref_namespaces_are_named_in_refs() -> None:
    found = {
        f"{path.relative_to(PKG)}:{line}: {text}"
        for path in modules().values()
        if path.relative_to(PKG).as_posix() != "core/store/refs.py"
        for line, text in ref_literals(path.read_text())
    }
    assert sorted(found) == [], "name ref namespaces with core/store/refs.py's constants and functions"


def test_the_fuse_operations_ask_the_workspace_never_the_store() -> None:
    # fuse/ holds no git logic: an unchanged file's bytes come through the workspace
    # (Workspace.blob_data/blob_stream/blob_size), never through its GitStore; the same for
    # every module there (the operations' parts, the libfuse adapter, the daemon)
    reads = [
        f"{path.relative_to(PKG)}:{node.lineno}"
        for path in sorted((PKG / "fuse").glob("*.py"))
        for node in _walked(path.read_text(), str(path))
        if isinstance(node, ast.Attribute) and node.attr in ("store", "_repo")
    ]
    assert reads == [], "a module of fuse/ reaches the object store itself"

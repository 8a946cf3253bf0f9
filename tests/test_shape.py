"""The shape a newcomer can read (docs/architecture.md, "Shape"): no module of the package
over ~600 lines, no function over ~100, and no state a module keeps for the whole process
but the few that say why. Each limit has a little slack, so a line of docstring does not
fail it; a module or function past it is split along a seam it has, not trimmed."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "avfs_git"

MAX_MODULE_LINES = 620
MAX_FUNCTION_LINES = 110

# Module-level containers that code mutates at run time: process-wide state. Each says why
# no object can own it; a new one fails the test.
PROCESS_STATE = {
    "core/store/lineconfig.py:_fork_kept": "a fork's settings as git read them, kept by every config file's stamp and the environment: the same in every thread (bounded)",
    "core/store/lineconfig.py:_dirs": "the git dir each fork's settings are asked through where the fork is not mounted (the vault's avfs/forkconfig, HEAD and commondir: the same for every thread)",
    "core/store/lineconfig.py:_tmp_dirs": "those of them made under the temp dir where the vault's could not be (removed at exit; bounded)",
    "mount/stagedplant.py:PUT_BACK": "what an index's patch put back, by the mount's git dir, for the run's report: cleared before the record and taken after it, under the fork's exec lock",
    "core/store/gitattrfiles.py:_ASKED": "git config's answer for core.attributesFile, kept by the config files' stat data: the same in every thread",
    "core/store/locks.py:_held": "the locks this thread holds (fcntl locks are per process, re-entry per thread)",
    "core/store/threads.py:_FORKED": "fork() is process-wide: every object whose locks a forked child must make anew",
    "core/store/gitrun.py:_config_kept": "git's config files are the machine's: read again only when their stat moves",
    "core/store/lineconfig.py:_kept": "git's core.autocrlf and core.eol where the environment names config libgit2 does not read: kept by that environment and the config files' stat data, the same in every thread",
    "core/store/gitrun.py:_includes_kept": "the files git's config files include, as _config_kept: read again only when their stat moves",
    "core/store/heldref.py:_held": "what a held-objects commit names, by (vault, commit): a commit never changes, so the cache is right for every thread (bounded)",
    "core/workspace/wsheld.py:_trees": "a commit's tree by (vault, commit): a commit never changes, so the cache is right for every thread (bounded)",
    "core/store/objects.py:_mapped": "the packs whose files the pure reader has mapped, first mapped first, so that past MAPPED_PACKS the oldest let their maps go: one bound for the process, whatever the vaults and threads (weak: a pack collected leaves it)",
    "core/store/packedrefs.py:_checked": "a packed-refs file found to end as git requires, by vault and the file's stat data: a new version is checked again, the same in every thread",
    "core/store/packwriter.py:FINISH_HOOKS": "a pack lands in a vault whichever object wrote it; quota listens once",
    "core/workspace/ignore.py:_shared": "git's ignore answers whose .gitignore files are committed blobs, by vault and a key of the rules' contents: the same question for every fork of the vault (a merge's new source asked what the last one was answered); bounded as each workspace's own",
    "core/workspace/ignore.py:_slow": "a git check-ignore killed at the bound, by vault and the rules' contents: one call of the process asks again through several workspaces (an exec's record, its report, the fork's state) and must not wait the bound each time; kept 60 s",
    "core/workspace/upperwatch.py:_live": "the inotify watch belongs to the daemon process; workspaces find it by directory",
    "proxy/refwatch.py:_live": "the inotify watch of a vault's branches belongs to the daemon serving proxy exec; seal finds it by path",
    "mount/indexguard.py:_held": "the index guards this thread holds (flock locks are per open file: a writer in the same thread takes the held one)",
    "mount/ownfiles.py:_owner_cache": "registry records' contents, checked against the file at every use",
    "core/vaults/forkspare.py:_making_here": "the spares this process's makers are taking (a mark names a process, not a thread): one maker a source in a process",
    "core/vaults/registry.py:_KEPT": "the mount table a process keeps open (a daemon's); the kernel marks it per open file",
    "ops/daemonstart.py:_SPAWNED": "the daemons this process spawned (its children) and has not collected yet",
    "ops/warmstart.py:_ZYGOTE": "the process's zygote is its child, on a socket pair only it holds: a forked child forgets it",
    "ops/warmstart.py:_WANTED": "a zygote this process's mount wants started once that mount's daemon is ready (the process's, as the zygote)",
    "ops/warmstart.py:_USERS": "who the process's zygote is kept for (its homes, a test session): the last to let go ends it; a forked child has none",
    "ops/warmstart.py:_STARTING": "one zygote started at a time in a process; made anew in a forked child (a thread of the parent may have held it)",
    "mount/hookscripts.py:_FOUND": "what a git binary said its version was: the binary is the machine's, keyed by its path and stat data",
    "proxy/sealpack.py:_tidied": "the lstat of the sandbox's top directory (and the vault's) when avfs last tidied it, per process: a mount's daemon serves the fork's execs one at a time (the exec lock), and another process only tidies once more",
    "proxy/apidoor.py:_done": "whether the API's door wrapped the documented calls: once per process, the same for every thread",
    "proxy/apidoor.py:_compiled": "the hint table's patterns, compiled on the first hint fitted: the same for every thread",
    "proxy/keeper.py:_kept": "the keeper of this process's sandboxes ends them once the process has ended: one per process (a forked child's own)",
    "proxy/keeper.py:_lock": "one start of the process's keeper at a time (made anew in a forked child: a thread of the parent may have held it)",
    "proxy/reaping.py:_WANTED": "whether this process is a CLI call's own, to make itself the reaper of its sandboxes once it runs one: the process's",
    "proxy/seccomp.py:_made": "the sandbox's seccomp filter: a pure function of the machine and avfs's rules, the same for every sandbox of the process (kept in the home too)",
    "proxy/sysview.py:_last": "the view of the host's /etc every sandbox shows, checked against every directory's stamp before each use: the machine's, the same in every thread",
    "proxy/sysview.py:_where": "the home's run/ where the filter and the view are kept between processes: set once by the process that serves that home",
    "proxy/standby.py:_api": "a sandbox kept ready for exec_in belongs to the process: its thread made it, and it dies with it",
    "policy/config.py:_SHIPPED": "the shipped policy's rules: package data, the same for every home; made once by the CLI server before it forks",
}

_MUTATORS = {
    "append",
    "add",
    "update",
    "pop",
    "popitem",
    "setdefault",
    "clear",
    "extend",
    "insert",
    "remove",
    "discard",
}
_CONTAINERS = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)
_FACTORIES = {
    "dict",
    "list",
    "set",
    "defaultdict",
    "OrderedDict",
    "deque",
    "local",
    "WeakValueDictionary",
    "WeakSet",
}


@functools.cache
def _sources() -> dict[str, ast.Module]:
    return {str(p.relative_to(PKG)): ast.parse(p.read_text()) for p in sorted(PKG.rglob("*.py"))}


def _module_containers(tree: ast.Module) -> set[str]:
    out = set()
    for node in tree.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if not isinstance(target, ast.Name) or value is None:
            continue
        made = (
            isinstance(value, ast.Call)
            and getattr(value.func, "id", getattr(value.func, "attr", "")) in _FACTORIES
        )
        if isinstance(value, _CONTAINERS) or made:
            out.add(target.id)
    return out


def _mutated(tree: ast.Module, names: set[str]) -> set[str]:
    """Which of ``names`` the module changes: an item or attribute stored or deleted, a
    mutating method called, or rebound through ``global``."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            out.update(node.names)
        elif isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(node.ctx, (ast.Store, ast.Del)):
            base = node.value
            if isinstance(base, ast.Name) and base.id in names:
                out.add(base.id)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            if isinstance(base, ast.Name) and base.id in names and node.func.attr in _MUTATORS:
                out.add(base.id)
    return out


def test_no_module_is_over_the_limit() -> None:
    long = {
        rel: n
        for rel, n in ((str(p.relative_to(PKG)), len(p.read_text().splitlines())) for p in PKG.rglob("*.py"))
    }
    assert {rel: n for rel, n in long.items() if n > MAX_MODULE_LINES} == {}


def test_no_function_is_over_the_limit() -> None:
    over = {}
    for rel, tree in _sources().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    over[f"{rel}:{node.name}"] = n
    assert over == {}


def test_process_wide_state_is_only_what_says_why() -> None:
    sources = _sources()
    owned = {rel: _module_containers(tree) for rel, tree in sources.items()}
    found = set()
    for rel, tree in sources.items():
        found |= {f"{rel}:{name}" for name in _mutated(tree, owned[rel] | _globals(tree))}
        # another module's: `module.NAME.append(...)`, `module.NAME[k] = v`
        for name in _mutated_elsewhere(tree):
            found |= {f"{home}:{name}" for home, names in owned.items() if name in names}
    assert sorted(found) == sorted(PROCESS_STATE)


def _mutated_elsewhere(tree: ast.Module) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        target = None
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _MUTATORS
        ):
            target = node.func.value
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
            target = node.value
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            out.add(target.attr)
    return out


def _globals(tree: ast.Module) -> set[str]:
    return {name for node in ast.walk(tree) if isinstance(node, ast.Global) for name in node.names}


def test_the_state_check_sees_each_kind_of_change() -> None:
    """The check above is not blind: each way of changing a module's container is seen."""
    code = (
        "A = {}\nB = []\nC = set()\nD = {}\nE = 0\nF = {}\n"
        "def f():\n    global E\n    A['k'] = 1\n    B.append(1)\n    C.add(1)\n    E = 1\n    return F.get('k')\n"
        "del D['x']\n"
    )
    tree = ast.parse(code)
    assert _mutated(tree, _module_containers(tree) | _globals(tree)) == {"A", "B", "C", "D", "E"}

"""The Python API's door: what a program of the builder's meets that the CLI and MCP had
and the API lacked (h-polish5, polish4's leftovers).

``avfs_git.open_home``, ``avfs_git.checkpoint``, ``avfs_git.exec_in`` and the other names of
the package's lazy table (avfs_git/__init__.py) call :func:`install` once, which wraps the
documented calls of docs/api.md (module functions and the methods of ``Home``, ``Vault``
and ``Workspace``). What a wrapper does, only for a caller outside avfs (the CLI, MCP, the
hooks and avfs's own modules call the same functions and get what they always got):

- a keyword the call does not take (``exec_in(ws, argv, timeout=60)``) is a ``TypeError``
  that names the one meant (``did you mean timeout_ms=?``) and what the call takes, as the
  CLI's "did you mean" does for an option; Python's own named the wrong one only;
- an ``AvfsError`` whose hint names a CLI command (`avfs merge --continue`) names the
  API's call instead (``merge.merge_continue(vault, fork)``): :func:`fit_hint`, whose table
  MCP's tools use as well, for their own names;
- ``Workspace.write``/``remove``/``rename``/``copy`` (and ``write_from_file``,
  ``symlink``) put back what git staged at a name of git's own state that the work tree
  no longer shows (mount/stagedplant.py ``keep_shown``), as ``avfs write``/``rm``/``mv``/
  ``cp`` and MCP's ``write_file`` do (gitmodel29 left the API's path out).

Nothing is wrapped in a process that never opens the door: the CLI's cold paths import
none of this.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from ..core.errors import AvfsError

F = TypeVar("F", bound=Callable[..., Any])

# another name for a keyword, as a builder guesses it (the CLI's option or MCP's argument)
ALIASES: dict[str, tuple[str, ...]] = {
    "timeout": ("timeout_ms",),
    "timeout_s": ("timeout_ms",),
    "cmd": ("argv", "shell"),
    "command": ("argv", "shell"),
    "args": ("argv",),
    "text": ("data",),
    "content": ("data",),
    "contents": ("data",),
    "from_": ("source",),
    "src": ("source", "from_dir"),
    "source_dir": ("from_dir",),
    "directory": ("from_dir",),
    "path": ("from_dir",),
    "from_path": ("from_dir",),
    "checkpoint_name": ("name",),
    "msg": ("message",),
    "into": ("target",),
    "ours": ("favor",),
    "theirs": ("favor",),
    "name": ("rev",),
    "recursive": ("recursive",),
    "max_count": ("limit",),
    "n": ("limit",),
    "all": ("all_forks", "all_commits"),
    "executable": ("mode",),
    "no_commit": ("commit",),
    "isolate": ("confine",),
}

_done: list[bool] = []


def _outside(frame_depth: int = 2) -> bool:
    """Whether the call being wrapped came from outside the avfs_git package."""
    try:
        caller = sys._getframe(frame_depth)
    except ValueError:
        return True
    return not str(caller.f_globals.get("__name__", "")).startswith("avfs_git.")


def keyword_error(fn: Callable[..., Any], kwargs: dict[str, Any], called: str = "") -> TypeError | None:
    """The ``TypeError`` for a keyword ``fn`` does not take, naming the close one; None
    when every keyword is one it takes (the call failed for another reason)."""
    import difflib
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    takes = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL and n != "self"]
    bad = [k for k in kwargs if k not in params]
    if not bad:
        return None
    given = bad[0]
    close = [a for a in ALIASES.get(given, ()) if a in takes and a != given]
    close = close or [a for a in takes if a.startswith(given) or given.startswith(a + "_")]
    close = close or difflib.get_close_matches(given, takes, n=2, cutoff=0.6)
    meant = f"did you mean {' or '.join(c + '=' for c in close)}? " if close else ""
    name = called or getattr(fn, "__qualname__", "the call")
    return TypeError(
        f"{name}() got an unexpected keyword argument {given!r}: {meant}it takes {', '.join(takes)}"
    )


def checked(fn: F, called: str = "") -> F:
    """``fn`` as the API door gives it (the module docstring): a keyword it does not take
    named with the one meant (``called``: its name as the builder calls it), a hint that
    names a CLI command fitted to the API."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TypeError as exc:
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            # raised binding the call (no frame of ``fn`` below ours), for a caller outside avfs
            if kwargs and tb is not None and tb.tb_frame.f_globals.get("__name__") == __name__ and _outside():
                bad = keyword_error(fn, kwargs, called)
                if bad is not None:
                    raise bad from None
            raise
        except AvfsError as err:
            if _outside():
                fit_error(err, "api")
            raise

    return call  # type: ignore[return-value]


# -- what a hint naming a CLI command says to the API and to MCP ------------------------------
# (pattern over the hint, the API's words, MCP's words; None: left as the CLI's, which a
# shell still runs). Compiled on the first hint fitted.
_FITS: tuple[tuple[str, str | None, str | None], ...] = (
    (r"`avfs merge --continue`", "`merge.merge_continue(vault, fork)`", "the `merge_continue` tool"),
    (r"`avfs merge --abort`", "`merge.merge_abort(vault, fork)`", "`merge_continue` with `abort: true`"),
    (r"`avfs --vault (\S+?) vault info`", r"`home.vault('\1').forks()`", "the `fork_list` tool"),
    (
        r"`avfs --vault ([^:`\s]+):(\S+?) status`",
        r"`home.vault('\1').workspace('\2').status()`",
        "the `status` tool",
    ),
    (r"`avfs --vault (\S+?) status`", r"`home.vault('\1').workspace().status()`", "the `status` tool"),
    (r"`avfs status`", "`workspace.status()`", "the `status` tool"),
    (r"`avfs log(?: -n 1)?`", "`history.log(vault, fork)`", "the `log` tool"),
    (r"`avfs log --all`", "`history.log(vault, all_forks=True)`", "the `log` tool with `all: true`"),
    (
        r"`avfs checkpoint restore (\S+?)`",
        r"`checkpoint.restore(vault, fork, '\1')`",
        r"`checkpoint_restore` with `rev: \1`",
    ),
    (r"`avfs checkpoint save`", "`checkpoint.save(vault, fork)`", "the `checkpoint_save` tool"),
    (r"`avfs checkpoint list`", "`checkpoint.list_checkpoints(vault, fork)`", "the `checkpoint_list` tool"),
    (r"`avfs checkpoint delete`", "`checkpoint.delete_checkpoint(vault, fork, name)`", None),
    (r"`avfs undo`", "`checkpoint.undo(vault)`", "the `undo` tool"),
    (r"`avfs op log`", "`vault.oplog.recent()`", None),
    (r"`avfs quota set --bytes SIZE`", "`vault.set_quota(max_bytes=SIZE)`", None),
    (r"`avfs quota set --files N`", "`vault.set_quota(max_files=N)`", None),
    (r"`avfs vault list`", "`home.list_vaults()`", "the `vault_list` tool"),
    (r"`avfs vault create NAME --from DIR`", "`home.create_vault(NAME, from_dir=DIR)`", None),
    (r"`avfs vault create NAME`", "`home.create_vault(NAME)`", None),
    (r"`avfs vault delete ([^:`\s]+):(\S+?) --force`", r"`home.vault('\1').delete_fork('\2')`", None),
    (r"`avfs vault delete (\S+?) --force`", r"`home.delete_vault('\1', force=True)`", None),
    (r"`avfs vault restore (\S+?)`", r"`home.restore_vault('\1')`", None),
    (r"`avfs vault use VAULT:FORK`", "`vault.set_default_fork(FORK)`", None),
    (r"`avfs rm PATH`", "`workspace.remove(PATH)`", None),
    (r"`avfs rm`", "`workspace.remove(PATH)`", None),
    (r"`avfs checkout (\S+?) --from HEAD`", r"`checkpoint.checkout(vault, fork, '\1', 'HEAD')`", None),
    (r"`avfs checkout PATH --from HEAD`", "`checkpoint.checkout(vault, fork, PATH, 'HEAD')`", None),
    (r"`avfs pull`", "`remote.pull(vault, REMOTE, fork)`", None),
    (r"`avfs fetch`", "`remote.fetch(vault, REMOTE)`", None),
    (
        r"`avfs stat --json PATH` or `avfs cat --json PATH` gives the blob id \(as `blob`\)",
        "`workspace.blob_of(PATH)` gives the blob id",
        "`read_file` gives the blob id (as `blob`)",
    ),
)
_compiled: list[tuple[re.Pattern[str], str | None, str | None]] = []


def fit_hint(hint: str, caller: str) -> str:
    """``hint`` (the CLI's words) with each CLI command the table knows named as ``caller``
    (``api`` or ``mcp``) calls it; the rest as it was."""
    if "`avfs " not in hint:
        return hint
    if not _compiled:
        _compiled.extend((re.compile(p), api, mcp) for p, api, mcp in _FITS)
    for pattern, api, mcp in _compiled:
        to = api if caller == "api" else mcp
        if to is not None:
            hint = pattern.sub(to, hint)
    return hint


def fit_error(err: AvfsError, caller: str) -> None:
    """:func:`fit_hint` of ``err``'s hint and message (`finish it with avfs merge --continue`)."""
    if err.hint and "`avfs " in err.hint:
        err.hint = fit_hint(err.hint, caller)
    if "`avfs " in err.message:
        err.message = fit_hint(err.message, caller)
        err.args = (err.message, *err.args[1:])


def _git_state(path: str) -> bool:
    """A name on ``path`` is one of git's own state (cli/filecmds.py ``git_state``)."""
    from ..core.store import names

    return any(names.git_state_name(c) is not None for c in path.split("/"))


def _is_dir(ws: Any, path: str) -> bool:
    """The fork shows a directory at ``path`` (cli/filecmds.py ``is_dir``)."""
    from ..core.store import names

    try:
        node = ws.view.lookup(names.norm_path(path))
    except AvfsError:
        return False
    return node is not None and bool(node.is_dir)


def _shown(method: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """A ``Workspace`` method whose change may leave staged, at a name of git's own state, what
    the work tree no longer shows: put back after it (:func:`.stagedplant.keep_shown`)."""

    @functools.wraps(method)
    def call(ws: Any, *args: Any, **kwargs: Any) -> Any:
        if not _outside(3):  # (its caller is :func:`checked`'s)
            return method(ws, *args, **kwargs)
        from ..mount.stagedplant import keep_shown

        first = args[0] if args else kwargs.get("path", kwargs.get("src", ""))
        was_dir = kind in ("remove", "rename") and isinstance(first, str) and _is_dir(ws, first)
        out = method(ws, *args, **kwargs)
        if kind in ("rename", "copy"):
            whole = was_dir or (kind == "copy" and bool(kwargs.get("recursive")))
            look = [p for p in (first, out) if isinstance(p, str) and (whole or _git_state(p))]
        else:
            path = getattr(out, "path", None) if kind == "write" else first
            look = [path] if isinstance(path, str) and (was_dir or _git_state(path)) else []
        if look:
            keep_shown(ws, look)
        return out

    return call


_MODULE_CALLS = {
    "avfs_git.core.operations.checkpoint": (
        "save",
        "list_checkpoints",
        "delete_checkpoint",
        "restore",
        "revert",
        "checkout",
        "undo",
    ),
    "avfs_git.core.operations.history": ("resolve", "log", "diff", "patch_text", "diff_stat"),
    "avfs_git.core.operations.merge": ("merge", "merge_continue", "merge_abort"),
    "avfs_git.core.operations.remote": ("add", "set_url", "remove", "list_remotes", "push", "fetch", "pull"),
    "avfs_git.core.vaults.changes": ("changes_since",),
    "avfs_git.proxy.execute": ("exec_in",),
    "avfs_git.mount.side": ("open_home",),
}
_TOP = ("avfs_git.proxy.execute", "avfs_git.mount.side", "avfs_git.core.vaults.changes")
_METHODS = {
    "avfs_git.core.vaults.home:Home": (
        "create_vault",
        "vault",
        "resolve",
        "use",
        "delete_vault",
        "restore_vault",
        "clone_vault",
        "info",
    ),
    "avfs_git.core.vaults.vault:Vault": (
        "workspace",
        "fork",
        "create_fork",
        "delete_fork",
        "set_quota",
        "fork_info",
    ),
    "avfs_git.core.workspace.workspace:Workspace": (
        "read",
        "read_link",
        "stat",
        "blob_of",
        "exists",
        "listdir",
        "walk",
        "mkdir",
        "rmdir",
        "chmod",
        "materialize_to",
    ),
}
_SHOWN = {
    "write": "write",
    "write_from_file": "write",
    "symlink": "write",
    "remove": "remove",
    "rename": "rename",
    "copy": "copy",
}


def install() -> None:
    """Wrap the documented calls once (the module docstring); called by the package's door."""
    if _done:
        return
    _done.append(True)
    import importlib

    for modname, calls in _MODULE_CALLS.items():
        mod = importlib.import_module(modname)
        for name in calls:
            # (`avfs_git.exec_in`, `open_home`, `changes_since`: the package's own names)
            prefix = "" if modname in _TOP else modname.rpartition(".")[2] + "."
            setattr(mod, name, checked(getattr(mod, name), prefix + name))
    for where, methods in _METHODS.items():
        modname, _, clsname = where.partition(":")
        cls = getattr(importlib.import_module(modname), clsname)
        for name in methods:
            setattr(cls, name, checked(getattr(cls, name), f"{clsname}.{name}"))
    from ..core.workspace.workspace import Workspace

    for name, kind in _SHOWN.items():
        setattr(Workspace, name, checked(_shown(getattr(Workspace, name), kind), f"Workspace.{name}"))

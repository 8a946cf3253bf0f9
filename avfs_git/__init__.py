"""avfs: git-compatible workspaces for AI agents.

The Python API (everything the CLI does, in process)::

    import avfs_git
    home = avfs_git.open_home()            # $AVFS_HOME or ~/.avfs
    vault = home.create_vault("proj", from_dir="./proj")
    ws = vault.workspace("main")
    ws.write("notes.txt", b"hello")
    avfs_git.checkpoint.save(vault, "main", name="first")
    res = avfs_git.exec_in(ws, ["make", "test"])   # proxy exec: policy, mount, one commit

Heavy modules (pygit2) load on first use, so ``import avfs_git`` stays cheap.
"""

# no `from __future__ import annotations` and no importlib here: the CLI's `proxy exec`
# fast path imports this package and little else (see avfs_git/cli/execopts.py)
# not `from typing import TYPE_CHECKING`: importing typing costs ~10 ms, and the CLI's
# `proxy exec` fast path imports this package before anything else (mypy knows the idiom)
TYPE_CHECKING = False

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .core.errors import AvfsError
    from .core.operations import checkpoint, history
    from .core.vaults.changes import changes_since
    from .core.vaults.home import Home
    from .core.vaults.vault import Vault
    from .core.workspace.workspace import Workspace
    from .mount.side import open_home
    from .proxy.execute import exec_in

_LAZY = {
    "AvfsError": ("avfs_git.core.errors", "AvfsError"),
    "Home": ("avfs_git.core.vaults.home", "Home"),
    "open_home": ("avfs_git.mount.side", "open_home"),
    "Vault": ("avfs_git.core.vaults.vault", "Vault"),
    "Workspace": ("avfs_git.core.workspace.workspace", "Workspace"),
    "checkpoint": ("avfs_git.core.operations.checkpoint", None),
    "history": ("avfs_git.core.operations.history", None),
    "exec_in": ("avfs_git.proxy.execute", "exec_in"),
    "changes_since": ("avfs_git.core.vaults.changes", "changes_since"),
}

__all__ = [
    "AvfsError",
    "Home",
    "Vault",
    "Workspace",
    "__version__",
    "changes_since",
    "checkpoint",
    "exec_in",
    "history",
    "open_home",
]


def __getattr__(name: str) -> object:
    spec = _LAZY.get(name)
    if spec is None:
        raise AttributeError(f"module 'avfs_git' has no attribute {name!r}")
    import importlib

    # the Python API's door: a builder's wrong keyword named, hints in the API's words,
    # what git staged kept shown (proxy/apidoor.py); the CLI never comes this way
    importlib.import_module("avfs_git.proxy.apidoor").install()
    mod = importlib.import_module(spec[0])
    return mod if spec[1] is None else getattr(mod, spec[1])

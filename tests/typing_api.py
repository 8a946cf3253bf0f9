"""What a caller's type checker sees of the public handles: checked by ``make typecheck``
(mypy's ``files`` in pyproject.toml), never run.

A vault and a workspace name their maker back through a type parameter (core/vaults/vault.py,
core/workspace/workspace.py: the lower module knows the higher one by a Protocol only), so the
handles the API gives out still carry the concrete classes.
"""

from typing import assert_type

from avfs_git import Home
from avfs_git.core.vaults.vault import Vault, VaultHome
from avfs_git.core.workspace.workspace import Workspace, WsVault


def handles(home: Home) -> None:
    vault = home.vault("v")
    assert_type(vault, Vault[Home])
    assert_type(vault.home, Home | None)
    ws = vault.workspace("main")
    assert_type(ws, Workspace[Vault[Home]])
    assert_type(ws.vault, Vault[Home])
    assert_type(ws.vault.home, Home | None)
    assert_type(home.resolve("v:main")[0].workspace().vault.home, Home | None)


def bare(vault: Vault, ws: Workspace) -> None:
    # a bare annotation is a handle of some VaultHome / WsVault (the parameters' defaults)
    assert_type(vault.home, VaultHome | None)
    assert_type(ws.vault, WsVault)
    assert_type(vault.workspace().vault, Vault[VaultHome])

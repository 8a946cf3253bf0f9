"""The git ``pre-receive`` hook avfs installs into a vault (``avfs hooks install --for git``).

It refuses a push that rewrites or deletes a fork while it is mounted. The text is kept
here because the repository's top-level ``hooks/`` directory is not part of the installed
package; ``tests/test_hooks.py`` checks that ``hooks/git/pre-receive`` is identical to it.
"""

from __future__ import annotations

from typing import Final

from ..core.store.names import SHELL_FS_NAME
from ..core.vaults.registry import RECORDS

__all__ = ["PRE_RECEIVE", "PRE_RECEIVE_MARK"]

PRE_RECEIVE_MARK: Final = "# avfs-managed: pre-receive"
_TEMPLATE: Final = r"""#!/bin/sh
# avfs-managed: pre-receive
#
# Installed into an avfs vault by `avfs hooks install --for git`; `avfs hooks uninstall
# --for git` removes it. Refuses a push that rewrites (non-fast-forward) or deletes a fork
# while avfs has it mounted: the mount's workspace is based on the fork's tip, and an agent
# working there should not have its history pulled out from under it. Fast-forward pushes
# are accepted (avfs rebases a mounted workspace's changes onto the new tip when it
# checkpoints). Unmount the fork (`avfs unmount VAULT:FORK`) to force a rewrite.
#
# A fork is mounted while <vault>/avfs/mounts/<fork>.json names a live process.

zero=0000000000000000000000000000000000000000
status=0
while read -r old new ref; do
    case "$ref" in
        refs/heads/*) fork=${ref#refs/heads/} ;;
        *) continue ;;
    esac
    # the registry file's name: % -> %25, / -> %2F (as avfs writes it)
    key=$(printf '%s' "$fork" | @FS_NAME@)
    reg="avfs/@RECORDS@/$key.json"
    [ -f "$reg" ] || continue
    pid=$(sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p' "$reg")
    [ -n "$pid" ] || continue
    if [ -d /proc ]; then
        [ -d "/proc/$pid" ] || continue
    else
        kill -0 "$pid" 2>/dev/null || continue
    fi
    if [ "$new" = "$zero" ]; then
        echo "avfs: refusing to delete fork '$fork': it is mounted (unmount it first: avfs unmount VAULT:$fork)" >&2
        status=1
        continue
    fi
    [ "$old" = "$zero" ] && continue
    if ! git merge-base --is-ancestor "$old" "$new" 2>/dev/null; then
        echo "avfs: refusing a non-fast-forward push to fork '$fork': it is mounted and would lose commits (unmount it first: avfs unmount VAULT:$fork)" >&2
        status=1
    fi
done
exit $status
"""
# the registry's layout and file names from the modules that define them (core/vaults/registry.py,
# core/store/names.py), so the script and avfs cannot drift apart
PRE_RECEIVE: Final = _TEMPLATE.replace("@FS_NAME@", SHELL_FS_NAME).replace("@RECORDS@", RECORDS)

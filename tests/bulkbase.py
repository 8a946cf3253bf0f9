"""A fork's base of thousands of files, made by git in one commit (suitetime11).

The soak and the teardown tests need a base of more files than libfuse's node tables hold
unmapped (> 4,096), not avfs's writes of them: 8,000 ``ws.write`` calls and a checkpoint
were ~9 s of CPU a test (~1 ms a write: a SQLite transaction each), where one `git
fast-import` of the same files, on the fork's branch, is a fraction of a second. The fork
then follows its moved branch (``sync_base``: its overlay is empty), as it does after git
moved it in a mount."""

from __future__ import annotations

import subprocess

from avfs_git.core.vaults.vault import Vault


def commit_files(vault: Vault, fork: str, files: dict[str, bytes], message: str = "base") -> str:
    """Commit ``files`` (path -> bytes, mode 100644) over fork ``fork``'s tip on its branch
    with real git, and settle the fork on it; returns the commit."""
    ws = vault.workspace(fork)
    assert ws.overlay.is_empty(), "the fork has uncheckpointed changes: they would be dropped"
    tip = ws.tip()
    ref = f"refs/heads/{fork}"
    stream = [b"feature done\ncommit %s\n" % ref.encode()]
    stream.append(b"committer Test Author <test@example.invalid> 1700000000 +0000\n")
    msg = message.encode()
    stream.append(b"data %d\n%s\n" % (len(msg), msg))
    if tip is not None:
        stream.append(b"from %s\n" % tip.encode())
    for path, data in files.items():
        stream.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data))
    stream.append(b"done\n")
    subprocess.run(
        ["git", "--git-dir", vault.path, "fast-import", "--quiet", "--done"],
        input=b"".join(stream),
        check=True,
        capture_output=True,
    )
    commit = subprocess.run(
        ["git", "--git-dir", vault.path, "rev-parse", ref], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert ws.sync_base() and ws.base == commit, (ws.base, commit)
    return commit

"""The config files :func:`.wsattrs.autocrlf` reads, kept by their stat (core/store/gitrun.py ``config_text``):
each kind of change between two looks in one process is seen (a rename over the file, a
write of another size, a write of the same size with its mtime put back, a change too
recent to keep), and in the resident server's calls; a file not changed is not read again."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from avfs_git.core.store import gitrun
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.core.workspace.wsattrs import autocrlf

from .test_cliserver import _answers, _run, _stop_server, _wait_for

ON = b"[core]\n\tautocrlf = true\n"
OFF = b"[core]\n\tautocrlx = true\n"  # (the same size, without the word)


def _aged(path: Path) -> None:
    """Wait until the file's last change is older than what is kept (its ctime cannot be
    set back)."""
    st = path.stat()
    while time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < gitrun.CONFIG_RECENT_NS:
        time.sleep(0.05)


def _kept(path: Path) -> bool:
    return str(path) in gitrun._config_kept


def test_each_change_of_a_config_file_is_seen_in_one_process(vault: Vault) -> None:
    store = vault.store
    for path in (Path(vault.path, "config"), Path(os.environ["HOME"], ".gitconfig")):
        original = path.read_bytes() if path.exists() else None
        path.write_bytes((original or b"") + OFF)
        _aged(path)
        assert autocrlf(store) is None
        assert _kept(path)
        read = gitrun._config_kept[str(path)]
        assert autocrlf(store) is None and gitrun._config_kept[str(path)] is read  # not read again
        # a rename over it (git's lock file): another inode, the same size
        tmp = path.with_name(path.name + ".lock")
        tmp.write_bytes((original or b"") + ON[:-1] + b"\n")
        assert len(tmp.read_bytes()) == path.stat().st_size
        os.replace(tmp, path)
        assert autocrlf(store) == "true", path
        # a write in place of the same size, its mtime put back: its ctime moved
        _aged(path)
        assert autocrlf(store) == "true" and _kept(path)
        before = path.stat()
        with open(path, "r+b") as fh:
            fh.write((original or b"") + OFF)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        after = path.stat()
        assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
            before.st_ino,
            before.st_size,
            before.st_mtime_ns,
        )
        assert autocrlf(store) is None, path
        # another size, in place
        _aged(path)
        assert autocrlf(store) is None and _kept(path)
        with open(path, "ab") as fh:
            fh.write(ON)
        assert autocrlf(store) == "true", path
        # a change too recent to keep is read at every look: a second write of the same
        # size within the file system's clock tick is seen
        assert not _kept(path)
        with open(path, "r+b") as fh:
            fh.seek(-len(ON), os.SEEK_END)
            fh.write(OFF)
        assert autocrlf(store) is None, path
        # gone: nothing kept answers for it
        path.unlink()
        assert autocrlf(store) is None
        if original is not None:
            path.write_bytes(original)


def test_a_changed_global_config_is_seen_by_the_resident_servers_calls(home: Home, vault: Vault) -> None:
    """A served status converts by ``~/.gitconfig`` as it is at the call (a file with CRLF
    lines, its blob's LF: modified without ``core.autocrlf``, clean with it), whichever way
    the file changed between two calls."""
    ws = vault.workspace("main")
    ws.write("b.txt", b"x\ny\n")
    from avfs_git.core.operations import checkpoint

    checkpoint.save(vault)
    ws.write("b.txt", b"x\r\ny\r\n")
    gitconfig = Path(os.environ["HOME"], ".gitconfig")
    gitconfig.write_bytes(OFF)
    on = {**os.environ, "AVFS_SERVER": "auto", "AVFS_VAULT": "v:main"}
    off = {**os.environ, "AVFS_SERVER": "off", "AVFS_VAULT": "v:main"}
    _run("status", env=on)  # direct, and starts a server for the next call
    _wait_for(lambda: _answers(home.path))

    def changes(env: dict[str, Any]) -> list[str]:
        code, out, err = _run("--json", "status", env=env)
        assert code == 0, err
        return [c["path"] for c in json.loads(out)["changes"]]

    try:
        _aged(gitconfig)
        assert changes(on) == changes(off) == ["b.txt"]
        tmp = gitconfig.with_name(".gitconfig.lock")
        tmp.write_bytes(ON)
        os.replace(tmp, gitconfig)  # another inode
        assert changes(on) == changes(off) == []
        _aged(gitconfig)
        assert changes(on) == []
        before = gitconfig.stat()
        gitconfig.write_bytes(OFF)  # in place, the same size, its mtime put back
        os.utime(gitconfig, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert changes(on) == changes(off) == ["b.txt"]
        with open(gitconfig, "ab") as fh:  # another size
            fh.write(ON)
        assert changes(on) == changes(off) == []
    finally:
        _stop_server(home.path)

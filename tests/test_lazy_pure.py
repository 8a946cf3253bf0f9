"""A lazy vault's first reads without libgit2 (core/store/gitstore.py ``_promised_only``):
a blob the pure reader finds nowhere, where it read every pack and nothing is borrowed, is
fetched without importing pygit2 to hear libgit2 say it is missing (a cold task in a lazy
mount waited ~85 ms, more under load, for that import at its first miss, and its daemon
read through libgit2 from then on). Against a real `git daemon` on 127.0.0.1
(tests/test_lazy.py's fixture), in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from avfs_git.core.vaults.home import Home

from .test_lazy import Server, blob_at
from .test_lazy import server as server

FILES = ("avfs_git/core/store/gitstore.py", "avfs_git/cli/output.py")

# reads each file (each a miss: fetched), then says whether pygit2 was imported
READ = (
    "import sys\n"
    "from avfs_git.cli.main import main\n"
    "for f in sys.argv[2:]:\n"
    "    assert main(['--vault', 'p', 'cat', f]) == 0, f\n"
    "    sys.stdout.flush()\n"
    "sys.stderr.write('pygit2:' + str('pygit2' in sys.modules))\n"
)


def _read(home: Home, *files: str) -> tuple[bytes, str]:
    proc = subprocess.run([sys.executable, "-c", READ, home.path, *files], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return proc.stdout, proc.stderr.decode().rsplit("pygit2:", 1)[-1]


def test_a_lazy_vaults_misses_are_fetched_without_pygit2(home: Home, server: Server) -> None:
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    src = server.base / "proj.git"
    out, imported = _read(home, *FILES)
    assert out == b"".join(blob_at(src, "main", f) for f in FILES)
    assert imported == "False"
    assert all(v.store.is_local(blob_at_oid(src, f)) for f in FILES)


def test_a_miss_in_a_vault_that_borrows_objects_still_asks_libgit2(home: Home, server: Server) -> None:
    """``info/alternates``: a layout the pure reader does not read, so its "not found" is
    not the vault's: libgit2 is asked before anything is fetched (as before)."""
    v = home.clone_vault(server.url("proj.git"), "p", lazy=True)
    info = Path(v.path) / "objects" / "info"
    info.mkdir(exist_ok=True)
    borrowed = home.path + "-borrowed"
    subprocess.run(["git", "init", "-q", "--bare", borrowed], check=True)
    (info / "alternates").write_text(os.path.join(borrowed, "objects") + "\n")
    out, imported = _read(home, FILES[0])
    assert out == blob_at(server.base / "proj.git", "main", FILES[0])
    assert imported == "True"


def test_a_packed_read_does_not_open_a_loose_file_it_just_found_absent(home: Home, server: Server) -> None:
    """The read checked for a loose file (``has_loose``) before the pure reader's read:
    the reader then looks only in the packs (one failed ``open`` and its exception less a
    read; a lazy mount's daemon reads ~2,700 objects in a cold task)."""
    home.clone_vault(server.url("proj.git"), "p", lazy=True)
    script = (
        "import io, sys\n"
        "from avfs_git.cli.main import main\n"
        "from avfs_git.core.store import objreader\n"
        "assert main(['--vault', 'p', 'cat', sys.argv[2]]) == 0\n"  # a miss: fetched, read from what the fetch checked
        "opened = []\n"
        "real = objreader._read_loose\n"
        "objreader._read_loose = lambda path: (opened.append(path), real(path))[1]\n"
        "assert main(['--vault', 'p', 'cat', sys.argv[2]]) == 0\n"  # from the fetch's pack now
        "assert 'pygit2' not in sys.modules\n"
        "print('opened', len(opened))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, home.path, FILES[0]], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == "opened 0"


def blob_at_oid(repo: Path, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), "rev-parse", f"main:{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

"""The sandbox's seccomp filter made once and kept in the avfs home (the thirty-fourth round,
NAME=first9; docs/security.md, "The kernel's keyrings"), and no confined command where it
cannot be made.

The filter (``proxy/seccomp.py``: the kernel's keyrings and audit socket refused) is a pure
function of the machine and avfs's rules; each cold ``proxy exec`` made it again through
``ctypes`` and libseccomp. Now the first keeps it in ``<home>/run/seccomp-filter`` with
what it was made from, and later processes hand those bytes to bubblewrap. Checked: the
kept program is the one libseccomp makes (a differential test), the keyring and audit
attacks fail in a command run with the kept one, a kept file of another recipe is made
again, and where libseccomp is missing (hidden from the call's process by a mount
namespace of its own) the command is refused, as where bubblewrap is missing (it ran
unfiltered, silently)."""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from avfs_git.proxy import seccomp

from .test_adv_keyring import _ATTACK, _calls, _holds
from .test_adv_keyring import secret as secret  # the fixture: a key of the person's
from .test_confine import _need_bwrap

AUDIT = """import socket
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9)
    print("AUDIT opened")
except OSError as e:
    print("AUDIT", e.strerror)
"""


def _call(*argv: str, env: dict[str, str] | None = None, wrap: tuple[str, ...] = ()) -> dict[str, Any]:
    """A cold ``proxy exec`` (no resident server: a process of its own) of a fork that is
    not mounted, its mount released afterwards."""
    base = [sys.executable, "-m", "avfs_git", "--vault", "v:main"]
    r = subprocess.run(
        [*wrap, *base, "--json", "proxy", "exec", "--", *argv],
        capture_output=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    subprocess.run([*wrap, *base, "unmount"], capture_output=True, timeout=120, check=False, env=env)
    doc = json.loads(r.stdout)
    assert r.returncode == doc["exit_code"], (r.returncode, doc)
    return dict(doc)


def _kept(home: Any) -> Path:
    return Path(home.path, "run", seccomp.FILTER_FILE)


def test_the_kept_filter_is_libseccomp_s_own_and_holds_the_attacks(
    home: Any, vault: Any, secret: tuple[str, str, str]
) -> None:
    """The first call keeps the program; it is byte for byte what libseccomp makes now, for
    this recipe; the next call reads it (the file is not written again) and its command's
    keyring search, read and plant and its audit socket all fail."""
    _need_bwrap()
    ws = vault.workspace("main")
    ws.write("keys.py", _ATTACK.format(calls=_calls()).encode())
    ws.write("audit.py", AUDIT.encode())
    assert _call("true")["exit_code"] == 0
    kept = _kept(home)
    assert kept.is_file(), "the first call kept no filter in the home"
    assert kept.stat().st_mode & 0o077 == 0, oct(kept.stat().st_mode)
    made_from, data = marshal.loads(kept.read_bytes())
    assert made_from == seccomp.recipe()
    fresh = seccomp.build()
    assert fresh is not None and data == fresh, "the kept program is not the one libseccomp makes"
    before = kept.stat()
    doc = _call("python3", "keys.py", secret[0], secret[2])
    assert doc["confinement"]["kind"] == "bwrap" and doc["exit_code"] == 0, doc
    _holds(doc["result"]["stdout"], secret)
    assert "ADD -1 Function not implemented" in doc["result"]["stdout"], doc["result"]
    doc = _call("python3", "audit.py")
    assert doc["exit_code"] == 0, doc
    assert "AUDIT Protocol not supported" in doc["result"]["stdout"], doc["result"]
    after = kept.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # read, not made again


def test_a_kept_filter_of_another_recipe_is_made_again(
    home: Any, vault: Any, secret: tuple[str, str, str]
) -> None:
    """A kept file made from other rules (an older avfs's, another machine's home copied
    here): not used; the call makes the program again, keeps it, and the keyrings stay
    refused. A file cut short is the same."""
    _need_bwrap()
    vault.workspace("main").write("keys.py", _ATTACK.format(calls=_calls()).encode())
    kept = _kept(home)
    kept.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    allow_all = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # BPF_RET SECCOMP_RET_ALLOW: refuses nothing
    for junk in (
        marshal.dumps(("another recipe", allow_all)),
        marshal.dumps((seccomp.recipe(), allow_all))[:-3],
    ):
        kept.write_bytes(junk)
        doc = _call("python3", "keys.py", secret[0], secret[2])
        assert doc["confinement"]["kind"] == "bwrap" and doc["exit_code"] == 0, doc
        _holds(doc["result"]["stdout"], secret)
        assert marshal.loads(kept.read_bytes()) == (seccomp.recipe(), seccomp.build())


def _libseccomp() -> str:
    """The file the dynamic loader opens for ``libseccomp.so.2``."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.strip().startswith("libseccomp.so.2 ") and "=>" in line:
            return os.path.realpath(line.split("=>", 1)[1].strip())
    raise AssertionError(f"no libseccomp.so.2 known to ldconfig:\n{out}")


def test_no_confined_command_runs_where_libseccomp_is_missing(home: Any, vault: Any, tmp_path: Path) -> None:
    """The call's processes in a mount namespace of their own where the library reads as
    an empty file (no filter can be made; nothing kept in the home): the command is
    refused (exit 125, ``sandbox_unavailable`` naming libseccomp and its package), it does
    not run; ``--host writable`` (asked unconfined) still runs. (One namespace for both
    calls and the unmount: the mount the first call starts is that namespace's.)"""
    _need_bwrap()
    if os.geteuid() != 0:
        from .conftest import skip_outside_ci

        skip_outside_ci("hiding a library by a bind mount needs root", "CI runs as root")
    out = (tmp_path / "refused.json", tmp_path / "unconfined.json")
    script = (
        'lib=$1; shift; mount --bind /dev/null "$lib" || exit 99\n'
        f'"$@" --json proxy exec -- touch ran > {out[0]}\n'
        f'"$@" --json proxy exec --host writable -- true > {out[1]}\n'
        '"$@" unmount\n'
    )
    avfs = (sys.executable, "-m", "avfs_git", "--vault", "v:main")
    r = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", _libseccomp(), *avfs],
        capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(out[0].read_text())
    assert doc["exit_code"] == 125, doc
    assert doc["error"]["code"] == "sandbox_unavailable", doc["error"]
    assert doc["error"]["details"]["missing"] == "libseccomp", doc["error"]
    assert "libseccomp2" in doc["error"]["hint"], doc["error"]
    assert doc["confinement"]["kind"] == "none" and doc["result"] is None, doc
    assert not vault.workspace("main").exists("ran")
    assert not _kept(home).exists()
    assert json.loads(out[1].read_text())["exit_code"] == 0, out[1].read_text()

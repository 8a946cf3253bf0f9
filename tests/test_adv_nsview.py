"""The hand-made namespace view (``proxy exec --readonly-host``/``--hide-host``, and a
confined command's fallback where a policy says ``confine = "namespace"``) under the
attacks the sandbox's seccomp filter stops (the thirty-sixth round, attack28;
docs/security.md, "The hand-made view's filter, and socketcall").

bubblewrap loads the filter (``--seccomp``); the view avfs makes itself
(``proxy/isolate.py``: unshare, binds, pivot_root, the capabilities dropped) loaded none.
Found: in such a view a command searched the person's user keyring and read their key,
planted a key of its own there, and made set-id files in the worktree's git dir (a host
directory the view binds writable) and in the fork: ``Seccomp: 0`` in its status. Now
the view loads the same program as it is made (by its init too), with ``no_new_privs``.

Each from inside a real `proxy exec` with a view: a mounted fork (the mount's daemon
serves it, both backends), and a fork with no mount (the CLI makes the view itself).
Then the person looks: their keyring, set-id files under the home and the mount."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .test_adv_gitseal import _avfs, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .test_adv_keyring import _ATTACK as _KEYS
from .test_adv_keyring import _calls
from .test_adv_keyring import _holds as _keys_hold
from .test_adv_keyring import secret as secret  # a key of the person's; the planted one's name
from .test_adv_setid import _ATTACK as _SETID
from .test_adv_setid import _holds as _setid_holds
from .test_adv_setid import _set_id_files
from .test_isolate import _need_namespaces

# the two attacks in one command, then the filter as the kernel reports it
_ATTACK = "python3 keys.py {desc} {planted}; python3 setid.py; grep Seccomp: /proc/self/status"


def _in_view(run: Any, flag: str, at: Path, secret: tuple[str, str, str]) -> dict[str, Any]:
    r = run("--json", "proxy", "exec", flag, "--at", str(at), "--shell",
            _ATTACK.format(desc=secret[0], planted=secret[2]))  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["confinement"]["kind"] == "namespace", doc["confinement"]
    assert doc["exit_code"] == 0, doc
    return dict(doc)


def _holds(doc: dict[str, Any], secret: tuple[str, str, str], *tops: str) -> None:
    out = doc["result"]["stdout"]
    _keys_hold(out, secret)  # the person's key neither found nor read, none planted
    assert "ADD -1 Function not implemented" in out, out
    _setid_holds(out)  # every set-id spelling refused, openat2 and io_uring too
    found = _set_id_files(*tops)
    assert found == [], f"set-id files the command made: {found}"
    assert "Seccomp:\t2" in out.splitlines(), out  # (filtered: the mode the kernel shows)


@pytest.mark.parametrize("flag", ["--hide-host", "--readonly-host"])
def test_a_mounted_fork_s_view_is_filtered_as_the_sandbox_is(
    live: Any, home: Any, tmp_path: Path, secret: tuple[str, str, str], flag: str
) -> None:
    """The mount's daemon runs the command in the view: the person's keys, set-id files."""
    _need_namespaces()
    _script(live, "keys.py", _KEYS.format(calls=_calls()))
    _script(live, "setid.py", _SETID)
    at = tmp_path / "project"
    at.mkdir()
    doc = _in_view(_avfs, flag, at, secret)
    _holds(doc, secret, home.path, live.mountpoint)


def test_an_unmounted_fork_s_view_is_filtered_as_the_sandbox_is(
    home: Any, vault: Any, tmp_path: Path, secret: tuple[str, str, str]
) -> None:
    """No mount: the CLI's own process makes the view (a mount for the call)."""
    _need_namespaces()
    w = vault.workspace("main")
    w.write("keys.py", _KEYS.format(calls=_calls()).encode())
    w.write("setid.py", _SETID.encode())
    at = tmp_path / "project"
    at.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "avfs_git", "--vault", "v:main", *args],
                              capture_output=True, timeout=300, check=False)  # fmt: skip

    doc = _in_view(run, "--hide-host", at, secret)
    _holds(doc, secret, home.path, str(tmp_path))

"""The kernel's keyrings from inside a confined `proxy exec` (the thirty-third round,
NAME=attack24; docs/security.md, "Keyrings").

The kernel keeps a user's keys (Kerberos tickets where ``KRB5CCNAME`` is a ``KEYRING:``
cache, as Fedora's and RHEL's default is; tokens a person or a tool put there with
``keyctl add user ... @u``) by user and by session, not by mount namespace: bubblewrap's
namespaces leave them shared. Found: a command in the sandbox (the same user, and for
root the same user namespace) searched the person's user keyring and read a key's secret
out of it, and could add keys of its own there for the person's later programs to find.
Now the sandbox's seccomp filter answers ``keyctl``, ``add_key`` and ``request_key`` with
``ENOSYS`` (flatpak's filter does the same; docker's default profile refuses them too).

Each from inside a real confined `proxy exec`: in a real mount (the mount's daemon serves
it, both backends), and on a fork with no mount (the CLI runs bubblewrap itself)."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .test_adv_gitseal import _exec, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .test_confine import _need_bwrap

# (add_key, keyctl) by machine: the host's and the sandbox's are the same kernel's
_CALLS = {"x86_64": (248, 250), "aarch64": (217, 219)}
_KEYCTL_SEARCH, _KEYCTL_READ, _KEYCTL_REVOKE, _KEYCTL_UNLINK = 10, 11, 3, 9
_USER_KEYRING = -4  # KEY_SPEC_USER_KEYRING: every process of the user shares it

# what the command runs: search its session, user and user-session keyrings for the key,
# read what it finds, then plant a key of its own in the user keyring
_ATTACK = """import ctypes, os, sys
ADD, KEYCTL = {calls}
libc = ctypes.CDLL(None, use_errno=True)
c, L = ctypes.c_char_p, ctypes.c_long
for ring in (-3, -4, -5):
    kid = libc.syscall(L(KEYCTL), L(10), L(ring), c(b"user"), c(sys.argv[1].encode()), L(0))
    err = ctypes.get_errno()
    if kid > 0:
        buf = ctypes.create_string_buffer(256)
        n = libc.syscall(L(KEYCTL), L(11), L(kid), buf, L(256))
        print("READ", ring, buf.raw[: max(n, 0)].decode(errors="replace"))
    else:
        print("SEARCH", ring, os.strerror(err))
kid = libc.syscall(L(ADD), c(b"user"), c(sys.argv[2].encode()), c(b"planted"), L(7), L(-4))
print("ADD", kid, os.strerror(ctypes.get_errno()))
"""


def _calls() -> tuple[int, int]:
    machine = os.uname().machine
    assert machine in _CALLS, f"no system call numbers for {machine}: add them"
    return _CALLS[machine]


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _search(desc: str) -> int:
    """The id of the user key ``desc`` in the host's user keyring, or 0."""
    kid = _libc().syscall(
        ctypes.c_long(_calls()[1]), ctypes.c_long(_KEYCTL_SEARCH), ctypes.c_long(_USER_KEYRING),
        ctypes.c_char_p(b"user"), ctypes.c_char_p(desc.encode()), ctypes.c_long(0),
    )  # fmt: skip
    return max(int(kid), 0)


def _drop(kid: int) -> None:
    libc = _libc()
    libc.syscall(ctypes.c_long(_calls()[1]), ctypes.c_long(_KEYCTL_REVOKE), ctypes.c_long(kid))
    libc.syscall(
        ctypes.c_long(_calls()[1]),
        ctypes.c_long(_KEYCTL_UNLINK),
        ctypes.c_long(kid),
        ctypes.c_long(_USER_KEYRING),
    )


@pytest.fixture
def secret() -> Iterator[tuple[str, str, str]]:
    """A key of the person's in their user keyring (description, its secret), and the
    description the command's planted key would have; both gone afterwards."""
    tag = uuid.uuid4().hex[:12]
    desc, value, planted = f"avfs-test-{tag}", f"SECRET-{tag}", f"avfs-planted-{tag}"
    data = value.encode()
    kid = _libc().syscall(
        ctypes.c_long(_calls()[0]), ctypes.c_char_p(b"user"), ctypes.c_char_p(desc.encode()),
        ctypes.c_char_p(data), ctypes.c_long(len(data)), ctypes.c_long(_USER_KEYRING),
    )  # fmt: skip
    assert kid > 0, f"add_key on the host: {os.strerror(ctypes.get_errno())}"
    try:
        yield desc, value, planted
    finally:
        _drop(int(kid))
        left = _search(planted)
        if left:
            _drop(left)


def _holds(stdout: str, secret: tuple[str, str, str]) -> None:
    """What the command printed: no secret read, no key planted."""
    desc, value, planted = secret
    assert value not in stdout, f"the command read the person's key: {stdout}"
    assert "READ" not in stdout, stdout
    assert stdout.count("SEARCH") == 3, stdout
    assert _search(planted) == 0, f"the command planted a key in the person's keyring: {stdout}"
    assert _search(desc) > 0  # the person's key is still theirs


def test_a_mounted_fork_s_command_reads_and_plants_no_key(live: Any, secret: tuple[str, str, str]) -> None:
    """The mount's daemon runs the command (warm): the person's key is neither found nor
    read, and the command's `add_key` into the user keyring fails."""
    _script(live, "keys.py", _ATTACK.format(calls=_calls()))
    doc = _exec("python3", "keys.py", secret[0], secret[2])
    assert doc["exit_code"] == 0, doc["result"]
    _holds(doc["result"]["stdout"], secret)
    assert "ADD -1 Function not implemented" in doc["result"]["stdout"], doc["result"]


def test_an_unmounted_fork_s_command_reads_and_plants_no_key(
    home: Any, vault: Any, tmp_path: Any, secret: tuple[str, str, str]
) -> None:
    """No mount: the CLI's own process starts bubblewrap (a mount for the call, or a
    materialized copy); the same filter holds."""
    _need_bwrap()
    vault.workspace("main").write("keys.py", _ATTACK.format(calls=_calls()).encode())
    r = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--vault", "v:main", "--json", "proxy", "exec", "--",
         "python3", "keys.py", secret[0], secret[2]],
        capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    doc = json.loads(r.stdout)
    assert doc["confinement"]["kind"] == "bwrap", doc["confinement"]
    assert doc["exit_code"] == 0, doc
    _holds(doc["result"]["stdout"], secret)


def test_the_names_of_the_person_s_keys_are_not_listed(live: Any, secret: tuple[str, str, str]) -> None:
    """``/proc/keys`` (and ``/proc/key-users``) in the sandbox listed every key the user may
    view by its description (a Kerberos cache's principal, a tool's token's name), the
    keyctl calls refused or not; now both are shown empty, as docker masks them."""
    _script(live, "names.sh", "cat /proc/keys; echo; cat /proc/key-users; echo END\n")
    doc = _exec("sh", "names.sh")
    assert doc["exit_code"] == 0, doc["result"]
    assert secret[0] not in doc["result"]["stdout"], doc["result"]["stdout"]
    assert doc["result"]["stdout"].strip() == "END", doc["result"]
    with open("/proc/keys", encoding="utf-8") as fh:
        assert secret[0] in fh.read()  # (the host lists it: the test's key is there)

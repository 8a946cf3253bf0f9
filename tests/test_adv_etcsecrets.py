"""What of ``/etc`` a root command reads in the sandbox (the thirty-third round,
NAME=attack24; docs/security.md, "Kernel state and host files no namespace separates").

The sandbox shows the host's ``/etc`` read-only with a list of its secrets shown empty
(``/etc/shadow``, SSH host keys, ``sudoers``, NetworkManager's and WireGuard's keys...).
A command running as root is the owner of every other root-only file there, and read
them: a database's root password (``/etc/mysql/debian.cnf``, mode 0600), an apt
repository's credentials (``/etc/apt/auth.conf.d/``), a cluster's ``admin.conf``, a CI
runner's token. Now whatever in ``/etc`` another user cannot read is shown empty too:
the command finds what a command of any other user finds.

From inside a real confined `proxy exec` (bubblewrap, a mount for the call), run as root,
with a root-only file and a root-only directory of the test's own made in ``/etc``."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from avfs_git.proxy.envelope import ExecRequest
from avfs_git.proxy.execute import execute

from .etclock import held as etc_held
from .test_adv_hostnet import _root
from .test_confine import fork as fork  # a fork to run in (real bwrap, a real mount)

READ = """import sys
for p in sys.argv[1:]:
    try:
        with open(p) as fh:
            print("READ", p, fh.read().strip())
    except OSError as e:
        print("DENIED", p, e.strerror)
"""


@pytest.fixture(autouse=True)
def _etc_changed() -> Iterator[None]:
    """This module's tests change /etc: alone (tests/etclock.py)."""
    with etc_held(alone=True):
        yield


@pytest.fixture
def planted() -> Iterator[dict[str, str]]:
    """In the host's /etc: a root-only file, a root-only directory holding a file any
    user could read were the directory open, and a file every user reads."""
    _root()
    tag = uuid.uuid4().hex[:12]
    paths = {
        "file": f"/etc/avfs-test-{tag}.conf",
        "dir": f"/etc/avfs-test-{tag}.d",
        "public": f"/etc/avfs-test-{tag}.pub",
    }
    made: list[str] = []
    try:
        fd = os.open(paths["file"], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        made.append(paths["file"])
        os.write(fd, f"password=ROOT-ONLY-{tag}\n".encode())
        os.close(fd)
        os.mkdir(paths["dir"], 0o700)
        made.append(paths["dir"])
        with open(os.path.join(paths["dir"], "token"), "w") as fh:
            fh.write(f"IN-A-ROOT-ONLY-DIR-{tag}\n")
        with open(paths["public"], "x") as fh:
            fh.write(f"public-{tag}\n")
        made.append(paths["public"])
        os.chmod(paths["public"], 0o644)
        yield {**paths, "tag": tag}
    finally:
        for p in made:
            if os.path.isdir(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)


def test_a_root_command_reads_nothing_in_etc_another_user_cannot(
    home: Any, fork: Any, planted: dict[str, str]
) -> None:
    """The root-only file and the file in the root-only directory read empty or not at
    all; the file every user reads is read as it is."""
    tag = planted["tag"]
    fork.workspace("main").write("read.py", READ.encode())
    inner = os.path.join(planted["dir"], "token")
    argv = ("python3", "read.py", planted["file"], inner, planted["public"])
    res = execute(home, fork, "main", ExecRequest(argv=argv, commit=False))
    assert res.confinement.kind == "bwrap", res.confinement
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    out = res.result.stdout
    assert f"ROOT-ONLY-{tag}" not in out and f"IN-A-ROOT-ONLY-DIR-{tag}" not in out, out
    assert f"READ {planted['public']} public-{tag}" in out, out  # the rest of /etc as it is


def test_a_masked_file_deeper_in_etc_removed_leaves_every_command_running(home: Any, fork: Any) -> None:
    """A root-only file in a directory of /etc, shown empty to a command, is removed (its
    directory changes, not /etc): the next command of the same serving process runs (the
    round's review: the view kept its bind of the gone file, bubblewrap could not make its
    mount point in the read-only /etc, and every later command failed)."""
    _root()
    tag = uuid.uuid4().hex[:12]
    top = f"/etc/avfs-test-{tag}.deep"
    secret = os.path.join(top, "secret.conf")
    os.mkdir(top, 0o755)
    try:
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, f"ROOT-ONLY-{tag}\n".encode())
        os.close(fd)
        fork.workspace("main").write("read.py", READ.encode())
        first = execute(home, fork, "main", ExecRequest(argv=("python3", "read.py", secret), commit=False))
        assert first.result is not None and first.result.exit_code == 0, first.to_dict()
        assert f"ROOT-ONLY-{tag}" not in first.result.stdout, first.result.stdout
        os.unlink(secret)
        again = execute(home, fork, "main", ExecRequest(argv=("python3", "read.py", secret), commit=False))
        assert again.confinement.kind == "bwrap", again.confinement
        assert again.result is not None and again.result.exit_code == 0, again.to_dict()
        assert f"DENIED {secret}" in again.result.stdout, again.result.stdout
    finally:
        shutil.rmtree(top, ignore_errors=True)

"""`avfs mount` / `avfs unmount` name what they could not find, with real mounts.

A ``VAULT:FORK`` whose vault does not exist is never taken for a directory (it used to
mount the default vault, or ask for a mount point ``./wrok:agent-1``); close names are
suggested; `unmount` takes a mount point as `umount` does; a bare `unmount` with several
mounts live refuses and lists them. Real processes (`python -m avfs_git`), real FUSE mounts.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.ops import mounts

from .conftest import CliResult
from .test_fuse import require_fuse
from .test_json_schemas import validate


@pytest.fixture
def two(home: Home) -> Iterator[Home]:
    """Vaults `attrs` (the default) and `work` (with fork agent-1); every mount a test makes
    is gone afterwards."""
    require_fuse()
    home.create_vault("attrs")
    home.use("attrs")
    home.create_vault("work").create_fork("main", "agent-1")
    try:
        yield home
    finally:
        for m in mounts.list_mounts(home):
            mounts.unmount(home, home.vault(m.vault), m.fork, revision=m.revision, lazy=True)


def _avfs(*args: str, env: dict[str, str] | None = None, cwd: str | None = None) -> CliResult:
    proc = subprocess.run(
        [sys.executable, "-m", "avfs_git", *args],
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    return CliResult(proc.returncode, proc.stdout.decode(), proc.stderr.decode(), proc.stdout)


def _error(r: CliResult, code: str, exit_code: int = 1) -> dict[str, Any]:
    doc = r.json()
    assert validate(doc) == "error" and r.code == exit_code and doc["error"]["code"] == code, r
    return doc["error"]


def _live(home: Home) -> list[tuple[str, str]]:
    return sorted((m.vault, m.fork) for m in mounts.list_mounts(home))


def test_a_mistyped_vault_is_named_never_taken_for_a_directory(two, tmp_path):
    (tmp_path / "cwd").mkdir()
    cwd = str(tmp_path / "cwd")
    err = _error(_avfs("--json", "mount", "attr:a1", cwd=cwd), "vault_not_found")
    assert err["message"] == f"no vault named 'attr' in {two.path}"
    assert err["details"]["suggestions"] == ["attrs"] and err["hint"].startswith("did you mean 'attrs'?")
    # AVFS_VAULT selects another vault: the argument is still read as VAULT:FORK
    err = _error(
        _avfs("--json", "mount", "wrok:agent-1", env={"AVFS_VAULT": "work"}, cwd=cwd), "vault_not_found"
    )
    assert err["details"] == {"vault": "wrok", "home": two.path, "suggestions": ["work"]}
    r = _avfs("mount", "wrok:agent-1", env={"AVFS_VAULT": "work"}, cwd=cwd)
    assert (
        r.code == 1
        and r.out == ""
        and r.err
        == (
            f"avfs: error: no vault named 'wrok' in {two.path}\n"
            "  hint: did you mean 'work'? `avfs vault list` shows the vaults; `avfs vault create NAME` makes one\n"
        )
    )
    # @REV too, and a fork that does not exist (its vault does)
    _error(_avfs("--json", "mount", "attr@main", cwd=cwd), "vault_not_found")
    err = _error(_avfs("--json", "mount", "work:agent-2", cwd=cwd), "fork_not_found")
    assert err["details"]["suggestions"] == ["agent-1"]
    # a bare word that is neither a vault nor a directory: both readings named
    err = _error(_avfs("--json", "mount", "attr", cwd=cwd), "vault_not_found")
    assert err["message"] == "no vault named 'attr', and no directory 'attr' to mount on"
    assert err["details"]["suggestions"] == ["attrs"]
    assert _live(two) == [] and os.listdir(cwd) == []


def test_an_existing_directory_or_a_path_is_a_mount_point(two, tmp_path):
    (tmp_path / "attr").mkdir()
    r = _avfs("--json", "mount", "attr", cwd=str(tmp_path))  # a directory: the default vault there
    assert r.code == 0, r
    assert r.json()["mount"]["mountpoint"] == str(tmp_path / "attr") and _live(two) == [("attrs", "main")]
    r = _avfs("--json", "unmount", "./attr", cwd=str(tmp_path))  # by its mount point, relative
    assert r.code == 0 and r.json()["mount"]["mountpoint"] == str(tmp_path / "attr"), r
    assert _live(two) == []


def test_unmount_by_mount_point_and_refusing_to_pick(two, tmp_path):
    a = _avfs("mount", "attrs:main").out.strip()
    w = _avfs("mount", "work:agent-1").out.strip()
    assert _live(two) == [("attrs", "main"), ("work", "agent-1")]
    # bare unmount with two live: refuses, lists both, unmounts nothing
    r = _avfs("--json", "unmount")
    err = _error(r, "usage", exit_code=2)
    assert err["details"]["mounts"] == [
        {"vault": "attrs", "fork": "main", "mountpoint": a},
        {"vault": "work", "fork": "agent-1", "mountpoint": w},
    ]
    r = _avfs("unmount")
    assert r.code == 2 and f"attrs:main at {a}" in r.err and f"work:agent-1 at {w}" in r.err
    assert _live(two) == [("attrs", "main"), ("work", "agent-1")]
    # a mount point where avfs mounted nothing is an error; a mistyped VAULT:FORK too
    _error(_avfs("--json", "unmount", str(tmp_path)), "not_found")
    _error(_avfs("--json", "unmount", "wrok:agent-1"), "vault_not_found")
    assert _live(two) == [("attrs", "main"), ("work", "agent-1")]
    # by mount point, as umount
    r = _avfs("--json", "unmount", w)
    doc = r.json()
    assert r.code == 0 and validate(doc) == "unmount" and (doc["vault"], doc["fork"]) == ("work", "agent-1")
    assert not mounts.mounted_at(w) and _live(two) == [("attrs", "main")]
    # one live: a bare unmount takes it, whichever vault it is of
    r = _avfs("unmount", env={"AVFS_HOME": two.path})
    assert r.code == 0 and r.err == f"unmounted {a}\n", r
    assert _live(two) == []
    # nothing live: the selected fork, harmlessly
    r = _avfs("--json", "unmount")
    assert r.code == 0 and json.loads(r.out)["mount"] is None


def test_a_read_only_revision_mount_unmounts_by_its_path(two, tmp_path):
    mp = tmp_path / "rev"
    mp.mkdir()
    r = _avfs("--json", "mount", "attrs@main", str(mp))
    assert r.code == 0 and r.json()["mount"]["read_only"], r
    r = _avfs("--json", "unmount", str(mp))
    assert r.code == 0 and r.json()["mount"]["revision"], r
    assert _live(two) == [] and not mounts.mounted_at(str(mp))


def test_other_commands_suggest_close_names(two):
    err = _error(_avfs("--json", "--vault", "atrs", "status"), "vault_not_found")
    assert err["details"]["suggestions"] == ["attrs"]
    err = _error(_avfs("--json", "--vault", "work:agent1", "ls"), "fork_not_found")
    assert err["details"]["suggestions"] == ["agent-1"]
    # proxy exec's envelope carries the same error
    r = _avfs("--json", "--vault", "wrk:agent-1", "proxy", "exec", "--", "true")
    doc = r.json()
    assert r.code == 125 and validate(doc) == "proxy_exec_result", r
    assert doc["error"]["details"]["suggestions"] == ["work"]
    # nothing close: no suggestion
    err = _error(_avfs("--json", "--vault", "zzzzzz", "status"), "vault_not_found")
    assert "suggestions" not in err["details"]


def test_mount_point_paths_resolve_symlinks(two, tmp_path):
    mp = tmp_path / "real"
    mp.mkdir()
    link = Path(tmp_path / "link")
    link.symlink_to(mp)
    assert _avfs("mount", "work:agent-1", str(mp)).code == 0
    r = _avfs("--json", "unmount", str(link))
    assert r.code == 0 and r.json()["fork"] == "agent-1", r
    assert _live(two) == []


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_mounted_fork_or_its_vault_is_not_deleted(two, tmp_path, backend):
    """Deleting a fork that is mounted (or its vault) would pull the upper layer and the
    workspace's state from under the processes in the mount (it did: the fork's files
    vanished from the live mount). It is refused, like git refuses to delete a branch
    checked out in a worktree, and nothing changes; once unmounted, it deletes."""
    w = _avfs("mount", "--backend", backend, "work:agent-1").out.strip()
    assert w and mounts.mounted_at(w), w  # (else mine.txt would be written where the tests run)
    with open(os.path.join(w, "mine.txt"), "w") as fh:
        fh.write("in the mount\n")
    err = _error(_avfs("--json", "vault", "delete", "work:agent-1", "--force"), "fork_mounted")
    assert err["details"]["mountpoints"] == [w] and "avfs unmount work:agent-1" in err["hint"]
    err = _error(_avfs("--json", "vault", "delete", "work", "--force"), "fork_mounted")
    assert err["details"] == {"vault": "work", "fork": None, "mountpoints": [w]}
    r = _avfs("vault", "delete", "work:agent-1", "--force")
    assert r.code == 1 and f"is mounted at {w}" in r.err
    # nothing changed: the fork, its vault, its mount and what was written there
    assert _live(two) == [("work", "agent-1")]
    assert two.vault("work").has_fork("agent-1")
    with open(os.path.join(w, "mine.txt")) as fh:
        assert fh.read() == "in the mount\n"
    assert sorted(os.listdir(w)) == [".git", "mine.txt"]
    assert (
        _avfs("--json", "--vault", "work:agent-1", "cat", "mine.txt").json()["files"][0]["content"]
        == "in the mount\n"
    )
    assert _avfs("unmount", "work:agent-1").code == 0
    assert _avfs("--json", "vault", "delete", "work:agent-1", "--force").code == 0
    assert not two.vault("work").has_fork("agent-1")
    assert _avfs("--json", "vault", "delete", "work", "--force").code == 0


def test_a_command_inside_a_mounted_fork_acts_on_that_fork(two, tmp_path):
    """As git acts on the repository it runs in: with no --vault (nor AVFS_VAULT), a command
    run inside a fork's live mount acts on that fork, and `proxy exec` runs its command in
    the same directory of the fork; elsewhere, and in a read-only revision mount, the
    home's default (`vault use`) as before."""
    mp, outside = tmp_path / "m", tmp_path / "out"
    mp.mkdir(), outside.mkdir()
    assert _avfs("mount", "work:agent-1", str(mp)).code == 0
    (mp / "src").mkdir()
    (mp / "src" / "a.txt").write_text("x\n")
    src = str(mp / "src")

    def where(*args: str, cwd: str, env: dict[str, str] | None = None) -> tuple[str, str]:
        r = _avfs("--json", *args, "status", cwd=cwd, env=env)
        assert r.code == 0, r
        return r.json()["vault"], r.json()["fork"]

    assert where(cwd=str(outside)) == ("attrs", "main")
    assert where(cwd=src) == ("work", "agent-1") == where(cwd=str(mp))
    assert where("--vault", "attrs", cwd=src) == ("attrs", "main")  # an explicit choice wins
    assert where(cwd=src, env={"AVFS_VAULT": "attrs"}) == ("attrs", "main")
    r = _avfs("--json", "checkpoint", "save", "from-inside", cwd=src)
    assert r.code == 0, r
    assert [c.name for c in checkpoint.list_checkpoints(two.vault("work"), "agent-1")] == ["from-inside"]
    assert checkpoint.list_checkpoints(two.vault("attrs"), "main") == []

    def run(*args: str, cwd: str) -> dict[str, Any]:
        r = _avfs("--json", *args, "proxy", "exec", "--host", "writable", "--", "pwd", cwd=cwd)
        doc = r.json()
        assert validate(doc) == "proxy_exec_result" and doc["success"], r
        return doc

    real = os.path.realpath(mp)
    for args in [(), ("--vault", "work:agent-1")]:  # found from the directory, or named
        doc = run(*args, cwd=src)
        assert (doc["request"]["fork"], doc["request"]["cwd"]) == ("agent-1", "src")
        assert doc["result"]["stdout"] == real + "/src\n"
    doc = run(cwd=str(mp))
    assert doc["request"]["cwd"] == "" and doc["result"]["stdout"] == real + "\n"
    r = _avfs("--json", "proxy", "exec", "--cwd", "", "--host", "writable", "--", "pwd", cwd=src)
    assert r.json()["request"]["cwd"] == "" and r.json()["result"]["stdout"] == real + "\n", r

    rev = tmp_path / "rev"
    rev.mkdir()
    assert _avfs("mount", "work:agent-1@main", str(rev)).code == 0
    assert where(cwd=str(rev)) == ("attrs", "main")  # a revision is not a fork to act on


def _has_open(pid: int, path: str) -> bool:
    """Whether process ``pid`` has ``path`` open (a lock file it holds or waits for)."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == path for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def _holds(pid: int, path: str) -> bool:
    """Whether process ``pid`` holds the ``flock`` of ``path`` (``/proc/locks``)."""
    ino = os.stat(path).st_ino
    with open("/proc/locks") as fh:
        for line in fh:
            f = line.split()
            if "->" not in f and f[1] == "FLOCK" and f[4] == str(pid) and f[5].endswith(f":{ino}"):
                return True
    return False


def _until(what: Any, why: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.02)


def test_a_mount_starting_as_its_fork_is_deleted_is_refused_or_fails_never_outlives_it(two, tmp_path):
    """`vault delete VAULT:FORK` checked the fork's mounts before it took any lock, then
    waited for the fork's lock (a checkpoint holding it): an `avfs mount` of the fork made
    in that wait came up, and the delete went on and deleted the fork under the mount
    (tidy2, from the thirty-second round's review). Now the delete takes the fork's mount
    lock (which a mount's start holds until its record is written) and the fork's lock,
    then checks; a mount's start checks the fork again under its lock. The processes are
    ordered by the locks they hold and wait for, seen in ``/proc``: the test holds the
    fork's lock, the delete reaches it, the mount comes up or waits, the test lets go."""
    from avfs_git.core.store.locks import mount_lock_path

    vault = two.vault("work")
    vault.workspace("agent-1").write("dirty.txt", b"not checkpointed\n")
    fork_lock = os.path.join(vault.state_dir, "locks", "agent-1.lock")
    mount_lock = mount_lock_path(vault.state_dir, "agent-1")
    os.makedirs(os.path.dirname(fork_lock), exist_ok=True)
    mp = tmp_path / "mp"
    mp.mkdir()
    env = {**os.environ, "AVFS_LOCK_WAIT": "120"}  # (the delete waits for the test, not 10 s)
    argv = [sys.executable, "-m", "avfs_git", "--json"]
    held = os.open(fork_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)  # as a checkpoint of the fork holds it
    try:
        delete = subprocess.Popen(
            [*argv, "vault", "delete", "work:agent-1", "--force"], env=env, stdout=subprocess.PIPE
        )
        _until(
            lambda: _has_open(delete.pid, fork_lock) or delete.poll() is not None,
            "the delete never reached the fork's lock",
        )
        mount = subprocess.Popen([*argv, "mount", "work:agent-1", str(mp)], stdout=subprocess.PIPE)
        # the mount is up, or waits for the mount lock the delete holds
        _until(
            lambda: (
                mount.poll() is not None
                or (
                    os.path.exists(mount_lock)
                    and _has_open(mount.pid, mount_lock)
                    and _holds(delete.pid, mount_lock)
                )
            ),
            "the mount neither came up nor waited",
        )
    finally:
        os.close(held)
    d = json.loads(delete.communicate(timeout=120)[0])
    m = json.loads(mount.communicate(timeout=120)[0])
    deleted, mounted = not vault.has_fork("agent-1"), _live(two) != []
    assert not (deleted and mounted), (d, m)  # (main: both, the mount's fork gone under it)
    if deleted:  # the delete went first: the mount fails, naming the fork
        assert d["kind"] == "vault_delete" and delete.returncode == 0, d
        assert m["kind"] == "error" and m["error"]["code"] == "fork_not_found", m
        assert mount.returncode == 1 and "no fork 'agent-1'" in m["error"]["message"], m
        assert not mounts.mounted_at(str(mp))
    else:  # the mount went first: the delete is refused, nothing changed
        assert d["kind"] == "error" and d["error"]["code"] == "fork_mounted", d
        assert m["kind"] == "mount", m
        assert (mp / "dirty.txt").read_bytes() == b"not checkpointed\n"


def test_a_vault_s_delete_waits_for_a_mount_being_started_and_then_sees_it(two, tmp_path):
    """`vault delete VAULT --force` checked the vault's mounts with no lock: a mount whose
    start was under way (its daemon being launched, not yet recorded) was not seen, the
    vault went to the trash and the mount came up on it (the thirty-fourth round). Now every
    mount's start holds the vault's mount gate shared until its daemon is recorded, and the
    delete takes it alone and checks again. The test holds the gate as a start does: the
    delete waits (here past a one-second bound: busy, nothing changed), then, the gate let
    go, goes on; a mount made meanwhile is seen and refuses it."""
    from avfs_git.core.store.locks import mount_gate_path

    vault = two.vault("work")
    before = sorted(vault.fork_names())
    gate = mount_gate_path(vault.state_dir)
    os.makedirs(os.path.dirname(gate), exist_ok=True)
    held = os.open(gate, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(held, fcntl.LOCK_SH)  # as a mount's start holds it
    try:
        r = _avfs("--json", "vault", "delete", "work", "--force", env={"AVFS_LOCK_WAIT": "1"})
    finally:
        os.close(held)
    err = _error(r, "busy", 75)  # (main: deleted, a mount of it being started)
    assert err["details"]["lock"] == gate and "the mounts of vault work" in err["message"], err
    assert two.exists("work") and sorted(two.vault("work").fork_names()) == before
    mp = tmp_path / "mp"
    mp.mkdir()
    assert _avfs("mount", "work:agent-1", str(mp)).code == 0
    _error(_avfs("--json", "vault", "delete", "work", "--force"), "fork_mounted")
    assert two.exists("work") and mounts.mounted_at(str(mp))
    assert _avfs("unmount", str(mp)).code == 0
    assert _avfs("--json", "vault", "delete", "work", "--force").code == 0
    assert not two.exists("work")


def test_a_vault_of_many_branches_is_deleted_with_few_descriptors(two):
    """The first form of the fix above took every fork's mount lock at once, a descriptor
    each: a vault of 1,500 branches was `internal` ("Too many open files", exit 70) under
    `ulimit -n 1024` (the review of the thirty-fourth round). One gate, one descriptor."""
    import resource

    vault = two.vault("work")
    tip = subprocess.run(
        ["git", "-C", vault.path, "rev-parse", "refs/heads/main"], capture_output=True, text=True, check=True
    ).stdout.strip()
    lines = "".join(f"create refs/heads/b{n} {tip}\n" for n in range(1500))
    subprocess.run(["git", "-C", vault.path, "update-ref", "--stdin"], input=lines, text=True, check=True)
    subprocess.run(["git", "-C", vault.path, "pack-refs", "--all"], check=True)

    def few() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    proc = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--json", "vault", "delete", "work", "--force"],
        capture_output=True,
        env={**os.environ, "AVFS_SERVER": "off"},
        preexec_fn=few,
        timeout=120,
    )
    assert proc.returncode == 0 and json.loads(proc.stdout)["kind"] == "vault_delete", proc
    assert not two.exists("work")


def test_a_mount_that_waited_for_a_deleted_vault_s_lock_says_the_vault_was_deleted(two, tmp_path):
    """A mount whose start waited for its vault's mount gate while the vault's delete held
    it (and moved it, with the vault, to the trash) said `unusable_path` of the lock file,
    with a hint about AVFS_HOME, and one a moment later made the vault's locks directory
    again: a vault that `vault restore` could not bring back (`Directory not empty`) nor
    `vault create` make. Now: `vault_not_found`, naming the vault and how to restore it,
    and nothing made. The test holds the gate and moves the vault as the delete does."""
    from avfs_git.core.store.locks import mount_gate_path

    vault = two.vault("work")
    gate = mount_gate_path(vault.state_dir)
    os.makedirs(os.path.dirname(gate), exist_ok=True)
    mp = tmp_path / "mp"
    mp.mkdir()
    held = os.open(gate, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        argv = [sys.executable, "-m", "avfs_git", "--json", "mount", "work:agent-1", str(mp)]
        mount = subprocess.Popen(argv, stdout=subprocess.PIPE)
        _until(lambda: _held_or_waited(gate) or mount.poll() is not None, "the mount never asked")
        os.makedirs(two.trash_dir, exist_ok=True)
        os.rename(vault.path, os.path.join(two.trash_dir, "work.20261128T000000.000000.git"))
    finally:
        os.close(held)
    err = json.loads(mount.communicate(timeout=120)[0])["error"]
    assert err["code"] == "vault_not_found" and "was deleted" in err["message"], err
    assert not mounts.mounted_at(str(mp)) and not os.path.exists(vault.path)
    r = _avfs("--json", "mount", "work:agent-1", str(mp))  # (a mount after: nothing made either)
    assert r.json()["error"]["code"] == "vault_not_found" and not os.path.exists(vault.path), r
    assert _avfs("--json", "vault", "restore", "work").code == 0 and two.exists("work")


def _held_or_waited(path: str) -> bool:
    """Whether a process other than this one has the lock file ``path`` open (a mount's
    start, served by whichever process, waiting for it)."""
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid() and _has_open(int(pid), path):
            return True
    return False

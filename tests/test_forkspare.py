"""A fork's snapshot made ahead (core/vaults/forkspare.py): taken by the next fork of an
unchanged source instead of a snapshot on its path, never by a fork of a source that changed
since, and nothing lost or shared when a maker or a fork is killed at any step."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.types import IgnoredMode
from avfs_git.core.vaults import forkspare, layers, registry
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.core.workspace import changelog
from avfs_git.core.workspace.changelog import ChangeLog
from avfs_git.ops.maintenance import doctor, gc

from .test_share import lhome  # noqa: F401  (the fixture)

_ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


@pytest.fixture
def snapshots(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sources the forks' path snapshotted (a spare's own snapshot is not counted)."""
    made: list[str] = []
    real = layers.snapshot_state_dir

    def counted(home: str, src: str, *a: Any, **k: Any) -> str:
        made.append(src)
        return real(home, src, *a, **k)

    monkeypatch.setattr(layers, "snapshot_state_dir", counted)
    return made


def _source(home: Home) -> Vault:
    vault = home.create_vault("v")
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    ws.write("node_modules/m.js", b"m\n")  # (ignored only with a .gitignore; carried either way)
    time.sleep(0.03)  # past the clock's tick: a spare is not made of a file as new as it
    return vault


def _changed(ws: Any) -> list[str]:
    return sorted(c.path for c in ws.status())


def _meta(state_dir: str) -> dict[str, str]:
    conn = sqlite3.connect(os.path.join(state_dir, changelog.FILE))
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()


def test_the_next_fork_of_an_unchanged_source_takes_its_spare(
    lhome: Home,  # noqa: F811
    snapshots: list[str],
) -> None:
    vault = _source(lhome)
    at = vault.workspace("main").overlay.last_seq()
    spare = forkspare.make(vault, "main")
    assert spare is not None and layers.is_subvolume(spare)
    assert forkspare.make(vault, "main") == spare  # still the source's: kept, not made again
    made = vault.fork("main", "f")
    assert made.ignored.mode == IgnoredMode.SNAPSHOT and snapshots == []
    assert vault.ws_dir("f") == spare and forkspare.spares(vault) == {}
    f = vault.workspace("f")
    assert f.read("a.txt") == b"a\n" and f.read("node_modules/m.js") == b"m\n"
    # the fork's own history starts where the source's journal was, under an id of its own
    # (its log carried into the spare, put in place by its first reader)
    assert [n for n in os.listdir(spare) if n.startswith(changelog.CARRIED)]
    with ChangeLog(vault.ws_link("f")) as log:
        got = log.identity("f", at + 9)
    meta = _meta(spare)
    assert got == (meta["id"], at, 0) and meta["fork"] == "f"
    assert not [
        n for n in os.listdir(vault.ws_dir("main")) if n.startswith((forkspare.RECORD, changelog.CARRIED))
    ]
    with ChangeLog(vault.ws_dir("main")) as log:
        assert log.identity("main", 0)[0] != meta["id"]
    # the two are apart from here on
    f.write("b.txt", b"b\n")
    vault.workspace("main").write("c.txt", b"c\n")
    assert not vault.workspace("main").exists("b.txt") and not f.exists("c.txt")
    # a fork of the fork snapshots it (its spare's record does not make it a spare)
    vault.fork("f", "g")
    assert snapshots == [spare]
    assert vault.workspace("g").read("b.txt") == b"b\n"


def _in_place(vault: Vault) -> None:
    ws = vault.workspace("main")
    e = ws.overlay.get("a.txt")
    assert e is not None and e.fileid is not None
    with open(ws.overlay.file_path(e.fileid), "r+b") as fh:  # as a mount's open descriptor
        fh.write(b"A")


def _merge_state(vault: Vault) -> None:
    with open(os.path.join(vault.ws_dir("main"), "merge-state.json"), "w") as fh:
        fh.write("{}")


CHANGES = {
    "write": lambda v: v.workspace("main").write("d.txt", b"d\n"),
    "rewrite": lambda v: v.workspace("main").write("a.txt", b"z\n"),
    "delete": lambda v: v.workspace("main").remove("a.txt"),
    "in_place": _in_place,
    "checkpoint": lambda v: checkpoint.save(v, "main", message="m"),
    "state_file": _merge_state,
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_source_changed_since_its_spare_is_snapshotted(
    lhome: Home,  # noqa: F811
    snapshots: list[str],
    change: str,
) -> None:
    vault = _source(lhome)
    spare = forkspare.make(vault, "main")
    assert spare is not None
    CHANGES[change](vault)
    made = vault.fork("main", "f")
    assert made.ignored.mode == IgnoredMode.SNAPSHOT
    assert snapshots == [vault.ws_dir("main")] and vault.ws_dir("f") != spare
    src, f = vault.workspace("main"), vault.workspace("f")
    assert _changed(f) == _changed(src)
    for p in _changed(src):
        assert not src.exists(p) or f.read(p) == src.read(p)
    # the stale spare is left for the next maker, which replaces it
    assert forkspare.spares(vault) == {"main": spare}
    fresh = forkspare.make(vault, "main")
    assert fresh is not None and fresh != spare and not os.path.exists(spare)


def test_no_spare_is_made_or_taken_while_the_source_has_a_mount_record(
    lhome: Home,  # noqa: F811
    snapshots: list[str],
) -> None:
    vault = _source(lhome)
    rec = registry.record_path(vault.state_dir, "main")
    os.makedirs(os.path.dirname(rec), exist_ok=True)
    with open(rec, "w") as fh:
        fh.write("{}")
    assert forkspare.make(vault, "main") is None
    os.unlink(rec)
    spare = forkspare.make(vault, "main")
    assert spare is not None
    with open(rec, "w") as fh:  # a mount on its way: the kernel may write its upper layer
        fh.write("{}")
    vault.fork("main", "f")
    assert vault.ws_dir("f") != spare and len(snapshots) == 1


def test_no_spare_is_made_of_a_source_with_a_file_as_new_as_the_clock(
    lhome: Home,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write in the same clock tick as the snapshot would leave the file's stat data as
    it was: the maker waits a tick once, then gives up."""
    vault = _source(lhome)
    real = forkspare._clock
    monkeypatch.setattr(forkspare, "_clock", lambda d: 0)  # every timestamp is "now"
    assert forkspare.make(vault, "main") is None and forkspare.spares(vault) == {}
    monkeypatch.setattr(forkspare, "_clock", real)
    assert forkspare.make(vault, "main") is not None


def test_a_source_with_more_entries_than_a_key_should_read_keeps_snapshotting(
    lhome: Home,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vault = _source(lhome)
    monkeypatch.setattr(forkspare, "MAX_ENTRIES", 1)  # (two entries, and their directories)
    assert forkspare.make(vault, "main") is None and forkspare.spares(vault) == {}


def test_a_vault_with_a_bytes_quota_keeps_no_spares(lhome: Home) -> None:  # noqa: F811
    vault = _source(lhome)
    vault.set_config(layers_qgroup=7)  # (as a quota sets it; the qgroup itself is not needed)
    assert forkspare.make(vault, "main") is None and forkspare.spares(vault) == {}


def test_a_deleted_source_takes_its_spare_with_it_and_a_new_one_of_its_name_never_gets_it(
    lhome: Home,  # noqa: F811
    snapshots: list[str],
) -> None:
    vault = _source(lhome)
    vault.fork("main", "s")
    spare = forkspare.make(vault, "s")
    assert spare is not None
    vault.delete_fork("s")
    assert forkspare.spares(vault) == {} and not os.path.exists(spare)
    # deleted with plain git: the spare stays until doctor's repair (or gc), and a fork
    # made again under that name never takes it (a state dir of its own: another key)
    vault.fork("main", "s")
    spare = forkspare.make(vault, "s")
    assert spare is not None
    subprocess.run(["git", "--git-dir", vault.path, "branch", "-D", "s"], check=True, capture_output=True)
    vault.close()
    vault = lhome.vault("v")
    vault.discard_workspace("s")
    vault.fork("main", "s")
    snapshots.clear()
    vault.fork("s", "t")
    assert snapshots == [vault.ws_dir("s")] and vault.ws_dir("t") != spare
    vault.delete_fork("t")
    subprocess.run(["git", "--git-dir", vault.path, "branch", "-D", "s"], check=True, capture_output=True)
    found = [f for f in doctor(lhome).findings if f.code == "stale_spare"]
    assert [f.path for f in found] == [forkspare.spares(vault)["s"]]
    doctor(lhome, repair=True)
    assert forkspare.spares(vault) == {}


def test_doctor_counts_a_spare_as_named_and_gc_drops_it(lhome: Home) -> None:  # noqa: F811
    vault = _source(lhome)
    spare = forkspare.make(vault, "main")
    assert spare is not None
    late = doctor(lhome, now=time.time() + 10 * 86400).findings
    assert not [f for f in late if f.code in ("orphan_subvolume", "stale_spare")]
    gc(vault)
    assert forkspare.spares(vault) == {} and not os.path.exists(spare)
    assert vault.workspace("main").read("a.txt") == b"a\n"


def test_a_served_fork_leaves_a_spare_for_the_next_and_one_of_its_own_process_does_not(
    lhome: Home,  # noqa: F811
    cli: Any,
) -> None:
    vault = _source(lhome)
    vault.close()
    # a process of the caller's own: its caller would wait for the snapshot
    r = cli("--home", lhome.path, "--json", "vault", "fork", "v:main", "e")
    assert r.code == 0, r.out + r.err
    assert forkspare.spares(lhome.vault("v")) == {}
    env = {**_ENV, "AVFS_SERVER": "auto"}
    avfs = [sys.executable, "-m", "avfs_git", "--home", lhome.path]
    subprocess.run([*avfs, "server", "start"], env=env, check=True, capture_output=True)
    try:
        r2 = subprocess.run([*avfs, "--json", "vault", "fork", "v:main", "f"], env=env, capture_output=True)
        assert r2.returncode == 0, r2.stderr
        end = time.monotonic() + 30
        while "main" not in forkspare.spares(lhome.vault("v")):  # made once the answer is out
            assert time.monotonic() < end, "no spare"
            time.sleep(0.05)
        spare = forkspare.spares(lhome.vault("v"))["main"]
        r2 = subprocess.run([*avfs, "--json", "vault", "fork", "v:main", "g"], env=env, capture_output=True)
        assert r2.returncode == 0, r2.stderr
        vault = lhome.vault("v")
        assert vault.ws_dir("g") == spare and vault.workspace("g").read("a.txt") == b"a\n"
    finally:
        subprocess.run([*avfs, "server", "stop"], env=env, capture_output=True)


_KILL_AT = """
import os, signal, sys
from avfs_git.core.store import refs
from avfs_git.core.vaults import forkspare, layers
from avfs_git.core.workspace import changelog
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
home = Home(sys.argv[1], author=("A", "a@example.invalid"), mounts=MOUNT_SIDE)
vault = home.vault("v")
where = sys.argv[2]
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def after(mod, name, at):
    real = getattr(mod, name)
    def call(*a, **k):
        got = real(*a, **k)
        if where == at:
            die()
        return got
    setattr(mod, name, call)
after(changelog, "carry_claim", "carried")  # its log made in the source, not yet snapshotted
after(layers, "snapshot", "snapshot")  # the spare made, its carried files still in the source
real_replace = os.replace
def replace(src, dst, *a, **k):
    got = real_replace(src, dst, *a, **k)
    if where == "linked" and os.path.dirname(str(dst)).endswith(forkspare.SPARES):
        die()  # named, the stale one not yet removed
    return got
os.replace = replace
real_cas = refs.cas_update
def cas(*a, **k):
    if where == "claimed":
        die()  # the spare renamed to the fork's name, no ref yet
    return real_cas(*a, **k)
refs.cas_update = cas
if where == "claimed":
    vault.fork("main", "f")
else:
    forkspare.make(vault, "main")
"""


@pytest.mark.parametrize("where", ["carried", "snapshot", "linked", "claimed"])
def test_a_maker_or_a_fork_killed_at_each_step_loses_nothing(
    lhome: Home,  # noqa: F811
    where: str,
) -> None:
    vault = _source(lhome)
    first = forkspare.make(vault, "main") if where in ("linked", "claimed") else None
    if where == "linked":  # a stale one to be replaced
        vault.workspace("main").write("d.txt", b"d\n")
        time.sleep(0.03)
    vault.close()
    p = subprocess.run([sys.executable, "-c", _KILL_AT, lhome.path, where], env=_ENV, capture_output=True)
    assert p.returncode == -9, p.stderr.decode()
    vault = lhome.vault("v")
    spares = forkspare.spares(vault)
    if where in ("carried", "snapshot"):
        assert spares == {}  # a half-made spare is never named (an orphan, for doctor)
    elif where == "linked":
        assert spares["main"] != first and os.path.exists(first)  # (left to doctor)
    else:
        assert spares == {} and not vault.has_fork("f")  # taken, no ref: no fork
    made = vault.fork("main", "f")
    f = vault.workspace("f")
    assert made.ignored.mode == IgnoredMode.SNAPSHOT and f.read("a.txt") == b"a\n"
    assert _changed(f) == _changed(vault.workspace("main"))
    with ChangeLog(vault.ws_link("f")) as log:
        log.identity("f", 0)
    assert _meta(vault.ws_dir("f"))["fork"] == "f"
    f.write("e.txt", b"e\n")
    assert not vault.workspace("main").exists("e.txt")
    # an hour on, doctor's repair removes what no link names; the forks keep theirs
    doctor(lhome, repair=True, now=time.time() + 7200)
    assert vault.workspace("main").read("a.txt") == b"a\n" and f.read("e.txt") == b"e\n"
    named = {vault.ws_dir("main"), vault.ws_dir("f"), *forkspare.spares(vault).values()}
    assert set(layers.subvolumes(lhome.path)) == named
    # nothing a killed maker carried is left in the source once the next one has run
    time.sleep(0.03)
    assert forkspare.make(vault, "main") is not None
    assert not [
        n for n in os.listdir(vault.ws_dir("main")) if n.startswith((forkspare.RECORD, changelog.CARRIED))
    ]


_RACE = """
import sys
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
home = Home(sys.argv[1], author=("A", "a@example.invalid"), mounts=MOUNT_SIDE)
home.vault("v").fork("main", sys.argv[2])
"""


def test_two_forks_racing_for_one_spare_get_one_each_of_their_own(lhome: Home) -> None:  # noqa: F811
    vault = _source(lhome)
    spare = forkspare.make(vault, "main")
    vault.close()
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACE, lhome.path, n], env=_ENV, stderr=subprocess.PIPE)
        for n in ("x", "y")
    ]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    vault = lhome.vault("v")
    dirs = {vault.ws_dir("x"), vault.ws_dir("y")}
    assert len(dirs) == 2 and spare in dirs
    vault.workspace("x").write("x.txt", b"x\n")
    assert not vault.workspace("y").exists("x.txt")
    assert vault.workspace("y").read("a.txt") == b"a\n"


_FORK_OR_MAKE = """
import sys
from avfs_git.core.vaults import forkspare
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
home = Home(sys.argv[1], author=("A", "a@example.invalid"), mounts=MOUNT_SIDE)
vault = home.vault("v")
if sys.argv[2] == "make":
    print(forkspare.make(vault, "main"))
elif sys.argv[2] == "write":
    vault.workspace("main").write("d.txt", b"d\\n")
else:
    made = vault.fork("main", sys.argv[2])
    print(made.ignored.mode, made.ignored.reason)
"""


def _during_the_spares_snapshot(monkeypatch: pytest.MonkeyPatch, home: Home, *steps: str) -> list[str]:
    """Run ``steps`` (each a process of its own: ``make``, ``write`` or a fork's name) while
    the maker's snapshot is being taken, its source's lock let go (the first snapshot taken
    after this call); their outputs."""
    outs: list[str] = []
    real = layers.snapshot

    def during(src: str, dst: str, *a: Any, **k: Any) -> Any:
        monkeypatch.setattr(layers, "snapshot", real)
        for step in steps:
            p = subprocess.run(
                [sys.executable, "-c", _FORK_OR_MAKE, home.path, step],
                env=_ENV,
                capture_output=True,
                timeout=60,
            )
            assert p.returncode == 0, p.stderr.decode()
            outs.append(p.stdout.decode().strip())
        return real(src, dst, *a, **k)

    monkeypatch.setattr(layers, "snapshot", during)
    return outs


def test_a_fork_while_a_spare_is_snapshotted_copies_and_the_spare_is_kept_for_the_next(
    lhome: Home,  # noqa: F811
    snapshots: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vault = _source(lhome)
    outs = _during_the_spares_snapshot(monkeypatch, lhome, "f", "make")
    spare = forkspare.make(vault, "main")
    # the fork that came meanwhile did not wait for the maker's commit, nor snapshot behind
    # it: it copied the source's changes; a second maker made nothing
    assert outs[0].startswith("copied a snapshot of fork main was being taken"), outs
    assert outs[1] == "None" and snapshots == []
    f = vault.workspace("f")
    assert f.read("a.txt") == b"a\n" and f.read("node_modules/m.js") == b"m\n"
    assert _changed(f) == _changed(vault.workspace("main"))
    # the fork changed nothing of the source: the spare is named and the next fork takes it
    assert spare is not None and forkspare.spares(vault) == {"main": spare}
    assert not os.listdir(os.path.join(vault.state_dir, forkspare.SPARES, forkspare.MAKING))
    made = vault.fork("main", "g")
    assert made.ignored.mode == IgnoredMode.SNAPSHOT and vault.ws_dir("g") == spare and snapshots == []
    g = vault.workspace("g")
    with ChangeLog(vault.ws_link("g")) as log:
        log.identity("g", 0)
    assert g.read("a.txt") == b"a\n" and _meta(spare)["fork"] == "g"
    g.write("g.txt", b"g\n")
    assert not f.exists("g.txt") and not vault.workspace("main").exists("g.txt")


def test_a_write_while_a_spare_is_snapshotted_leaves_no_spare(
    lhome: Home,  # noqa: F811
    snapshots: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vault = _source(lhome)
    _during_the_spares_snapshot(monkeypatch, lhome, "write")
    assert forkspare.make(vault, "main") is None
    # the snapshot that may hold the write (or not) is never named, and is gone
    assert forkspare.spares(vault) == {} and set(layers.subvolumes(lhome.path)) == {vault.ws_dir("main")}
    made = vault.fork("main", "f")
    assert made.ignored.mode == IgnoredMode.SNAPSHOT and snapshots == [vault.ws_dir("main")]
    assert vault.workspace("f").read("d.txt") == b"d\n"
    assert _changed(vault.workspace("f")) == _changed(vault.workspace("main"))


def _reuse_pid(pid: int) -> subprocess.Popen[bytes] | None:
    """A process of this test's given ``pid`` (a dead one's), as the kernel hands out a
    freed pid again: the next pid set to it through ``ns_last_pid`` (root), then a fork;
    None when another process took it first, every try."""
    for _ in range(3):
        with open("/proc/sys/kernel/ns_last_pid", "w") as fh:
            fh.write(str(pid - 1))
        p = subprocess.Popen(["sleep", "60"])
        if p.pid == pid:
            return p
        p.kill()
        p.wait()
    return None


def test_a_killed_makers_mark_whose_pid_is_reused_stops_no_spare(lhome: Home) -> None:  # noqa: F811
    """A maker killed mid-snapshot leaves its mark; its pid handed to another, long-lived
    process (not a maker) must not keep the source from spares, nor its forks copying, for
    as long as that process lives. Before (review10) the mark named a pid only: no spare
    was made while the pid's new process lived."""
    from .conftest import skip_outside_ci

    if not os.access("/proc/sys/kernel/ns_last_pid", os.W_OK):
        skip_outside_ci("no pid can be handed out again here (/proc/sys/kernel/ns_last_pid)")
    vault = _source(lhome)
    vault.close()
    mark = os.path.join(vault.state_dir, forkspare.SPARES, forkspare.MAKING, "main")
    other = None
    for _ in range(5):  # (on a busy machine another process may take the freed pid first)
        p = subprocess.run(
            [sys.executable, "-c", _KILL_AT, lhome.path, "snapshot"], env=_ENV, capture_output=True
        )
        assert p.returncode == -9, p.stderr.decode()
        dead = int(Path(mark).read_bytes().split()[0])
        if (other := _reuse_pid(dead)) is not None:
            break
    if other is None:
        skip_outside_ci("each killed maker's pid was taken by another process first")
    vault = lhome.vault("v")
    try:
        spare = forkspare.make(vault, "main")
        assert spare is not None and forkspare.spares(vault) == {"main": spare}
        made = vault.fork("main", "f")
        assert made.ignored.mode == IgnoredMode.SNAPSHOT and vault.ws_dir("f") == spare
    finally:
        other.kill()
        other.wait()
    doctor(lhome, repair=True, now=time.time() + 7200)  # (the killed maker's snapshot)
    named = {vault.ws_dir("main"), vault.ws_dir("f"), *forkspare.spares(vault).values()}
    assert set(layers.subvolumes(lhome.path)) == named


def test_two_makers_in_one_process_name_one_spare(
    lhome: Home,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two threads of one process (a served fork's maker and another's) making the same
    source's spare: the second makes nothing while the first's snapshot is taken, as a
    second maker process does, and no snapshot is left that no link names. Before
    (review10) a mark of the process's own pid was no maker: both snapshotted, the second
    named its spare, the first replaced it, and the second's subvolume was left unnamed."""
    import threading

    vault = _source(lhome)
    real = layers.snapshot
    second: list[str | None] = []

    def during(src: str, dst: str, *a: Any, **k: Any) -> Any:
        monkeypatch.setattr(layers, "snapshot", real)
        t = threading.Thread(target=lambda: second.append(forkspare.make(vault, "main")))
        t.start()
        t.join(60)
        return real(src, dst, *a, **k)

    monkeypatch.setattr(layers, "snapshot", during)
    spare = forkspare.make(vault, "main")
    assert second == [None]
    assert spare is not None and forkspare.spares(vault) == {"main": spare}
    assert set(layers.subvolumes(lhome.path)) == {vault.ws_dir("main"), spare}
    assert not os.listdir(os.path.join(vault.state_dir, forkspare.SPARES, forkspare.MAKING))


def test_a_makers_mark_of_a_zombie_stops_no_spare(tmp_path: Path) -> None:
    """A maker that ended but was not collected yet (a zombie: under a PID 1 that collects
    no one's, for good) is no maker at work: its mark stops no spare."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        mark = tmp_path / "main"
        mark.write_bytes(b"%d %s" % (pid, forkspare._started(pid) or b""))
        assert not forkspare._maker(str(mark))
        mark.write_bytes(b"%d %s" % (os.getppid(), forkspare._started(os.getppid()) or b""))
        assert forkspare._maker(str(mark))  # (a live one is)
    finally:
        os.waitpid(pid, 0)

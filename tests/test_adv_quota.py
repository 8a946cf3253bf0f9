"""The quota from the attacker's side: a confined `proxy exec` in a mounted fork fills
whatever it can write (the vault's objects, the pip cache, the worktree git dir, the fork)
under a small bytes quota. Each is counted: the command's commit is refused with
`quota_exceeded` (or the write itself is refused), `quota show` says the vault is over and
further writes are refused; and the person's way out works: reads, `status`, `checkpoint
save`, `checkpoint restore`, `rm` and a read-only exec keep working and exit as
documented (never 70), and nothing the fork held is lost.

Run in both kinds of home: forks' state in plain directories (a pure FUSE mount, avfs
checks every write) and in the layers file system (btrfs; an overlay mount whose writes
the kernel limits with a qgroup), where a full qgroup once made SQLite fail every
command with "disk I/O error".
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.vaults import layers

from .conftest import run_in_process, skip_outside_ci
from .gitmount import warm_daemons
from .test_fuse import require_fuse

MIB = 1 << 20
QUOTA = 20 * MIB
BIG = 24 * MIB  # what the command writes: past the quota on its own

# what the command fills, as a confined agent would, each with 24 MiB of random bytes
# (git compresses nothing of it)
ATTACKS = {
    # a blob staged in the mount's index is carried into the vault's objects after the run
    # (proxy/seal.py: what the index names must be there for the person's git commit);
    # what is only written into the sandbox's object quarantine is gone with the run
    "objects": "head -c {n} /dev/urandom > /tmp/big && oid=$(git hash-object -w /tmp/big)"
    " && git update-index --add --cacheinfo 100644,$oid,staged{m}.bin\n"
    'dd if=/dev/urandom of="$(git rev-parse --git-path objects)/junk" bs=1M count=4 2>&1\n'
    'dd if=/dev/urandom of="$(git rev-parse --git-path objects)/pack/tmp_junk" bs=1M count=4 2>&1\n',
    "cache": 'dd if=/dev/urandom of="$PIP_CACHE_DIR/wheel.bin" bs=1M count={m} 2>&1\n',
    "git_dir": 'dd if=/dev/urandom of="$(git rev-parse --git-dir)/junk" bs=1M count={m} 2>&1\n',
    # git's state a command leaves is moved out of the git dir after the run (proxy/gitstate.py):
    # found in the twelfth round (NAME=attack3), it was counted nowhere once moved, so each
    # run could park what the disk took there, and the next runs were let through
    "git_state": 'G=$(git rev-parse --git-dir); mkdir -p "$G/rebase-merge" "$G/modules"\n'
    'dd if=/dev/urandom of="$G/rebase-merge/junk" bs=1M count={m} 2>&1\n'
    'dd if=/dev/urandom of="$G/modules/junk" bs=1M count=1 2>&1\n',
    "fork": "dd if=/dev/urandom of=big.bin bs=1M count={m} 2>&1\n",
}
# where quota show and the refusal's details count each
AREA = {
    "objects": "objects_bytes",
    "cache": "caches_bytes",
    "git_dir": "git_dirs_bytes",
    "git_state": "git_dirs_bytes",
}


@pytest.fixture(params=["plain", "layers"])
def qhome(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home outside the one the suite fscks (a confined command leaves junk in the
    vault's objects/ on purpose), its forks' state plain or in the layers file system."""
    require_fuse()
    if request.param == "layers":
        why = layers.probe()
        if why is not None:
            pytest.skip(f"requires a loop-mounted btrfs: {why}")
        monkeypatch.delenv("AVFS_LAYERS", raising=False)
        monkeypatch.setattr(layers, "DEFAULT_MODE", "auto")
    home = tmp_path / "qhome"
    monkeypatch.setenv("AVFS_HOME", str(home))
    try:
        yield home
    finally:
        mp = tmp_path / "mnt"
        if os.path.ismount(mp):  # (in process as the mount: it collects the daemon it started)
            r = run_in_process(["unmount", str(mp)])
            if r.code != 0 or os.path.ismount(mp):
                subprocess.run(["umount", "-l", str(mp)], check=False)


def avfs(*args: str, cwd: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    """``avfs ARGS`` (the confined `proxy exec` these tests are about) run in this process as
    the console script runs it (``conftest.run_in_process``): the command runs in the mount
    daemon's sandbox either way, the CLI being the daemon's client (as in
    tests/test_adv_gitseal.py); a process of its own was ~0.1-0.15 s of CPU in its Python's
    start, ~60 a run of this file (suitetime1)."""
    r = run_in_process(list(args), cwd=cwd)
    return subprocess.CompletedProcess(["avfs", *args], r.code, r.out, r.err)


def ok(*args: str, cwd: Path | str | None = None) -> str:
    """``avfs ARGS`` run in this process (``conftest.run_in_process``, suitetime14: the
    set-up and the person's commands), exit 0; its stdout. A mount's daemon is forked by
    this process's zygote (tests/gitmount.py ``warm_daemons``), not spawned as the CLI's
    own process would (~0.3 s of CPU in a new Python's start and imports)."""
    with warm_daemons():
        r = run_in_process(list(args), cwd=cwd)
    assert r.code == 0, f"avfs {args}: exit {r.code}\n{r.out}{r.err}"
    return r.out


def doc(*args: str, code: int = 0, cwd: Path | str | None = None) -> dict[str, Any]:
    """``avfs --json ARGS`` in this process (as :func:`ok`): its one JSON document."""
    r = run_in_process(["--json", *args], cwd=cwd)
    assert r.code == code, f"avfs {args}: exit {r.code}\n{r.out}{r.err}"
    lines = [ln for ln in r.out.splitlines() if ln.strip()]
    assert len(lines) == 1, r.out + r.err
    return dict(json.loads(lines[0]))


def refused(*args: str, cwd: Path | str | None = None) -> None:
    """A write at the quota: exit 1, quota_exceeded, with a hint."""
    d = doc(*args, code=1, cwd=cwd)
    assert d["kind"] == "error" and d["error"]["code"] == "quota_exceeded", d
    assert d["error"]["hint"]


def setup_vault(home: Path, tmp_path: Path) -> tuple[Path, str]:
    """Vault v with two checkpointed files, a 20 MiB quota, mounted; returns the mount and
    the first checkpoint."""
    ok("vault", "create", "v")
    ok("--vault", "v", "write", "keep.txt", "kept\n")
    ok("--vault", "v", "write", "src/app.py", "print('app')\n")
    first = doc("--vault", "v", "checkpoint", "save", "-m", "one")["checkpoint"]["commit"]
    ok("--vault", "v", "quota", "set", "--bytes", str(QUOTA))
    mp = tmp_path / "mnt"
    mp.mkdir()
    ok("mount", "v:main", str(mp))
    return mp, first


def plant(*scripts: str) -> None:
    """The agent's scripts (attack1.sh, ...), written and checkpointed before anything
    runs (so an exec's commit holds only what its script did)."""
    for i, script in enumerate(scripts, 1):
        ok("--vault", "v", "write", f"attack{i}.sh", script)
    ok("--vault", "v", "checkpoint", "save", "-m", "scripts")


def run(mp: Path, n: int = 1) -> dict[str, Any]:
    """Script ``n`` run by a confined `proxy exec` in the mount."""
    r = avfs("--json", "proxy", "exec", "--", "sh", f"attack{n}.sh", cwd=mp)
    env = json.loads(r.stdout)
    assert env["confinement"]["kind"] == "bwrap", env["confinement"]
    assert env["result"] is not None, env
    # the command ran: proxy exec exits with its code (docs/proxy.md "Exit codes")
    assert r.returncode == env["result"]["exit_code"] == env["exit_code"], env
    return dict(env)


def written_through(path: Path, most: int) -> int:
    """Write up to ``most`` bytes into ``path`` in a mount; the write must end with EDQUOT.
    Returns what got written (removed again)."""
    n = 0
    with pytest.raises(OSError) as err, open(path, "wb") as fh:
        while n < most:
            fh.write(b"x" * MIB)
            fh.flush()
            os.fsync(fh.fileno())
            n += MIB
    assert err.value.errno == 122  # EDQUOT
    size = path.stat().st_size if path.exists() else 0
    path.unlink(missing_ok=True)
    return size


def fork_files(mp: Path) -> dict[str, bytes]:
    return {p: (mp / p).read_bytes() for p in ("keep.txt", "src/app.py")}


def way_out_works(mp: Path, first: str) -> None:
    """At the quota: reads, status, checkpoint, restore and a read-only exec work; what
    the fork held is there."""
    assert (mp / "keep.txt").read_bytes() == b"kept\n"
    assert ok("--vault", "v", "cat", "keep.txt") == "kept\n"
    st = doc("status", cwd=mp)
    assert st["kind"] == "status"
    env = json.loads(avfs("--json", "proxy", "exec", "--", "cat", "keep.txt", cwd=mp).stdout)
    assert env["exit_code"] == 0 and env["error"] is None, env
    assert env["result"]["stdout"] == "kept\n"
    ok("--vault", "v", "checkpoint", "save", "-m", "at the quota")
    ok("--vault", "v", "checkpoint", "restore", first)
    assert (mp / "keep.txt").read_bytes() == b"kept\n"
    assert (mp / "src/app.py").read_bytes() == b"print('app')\n"
    assert not (mp / "big.bin").exists()


@pytest.mark.parametrize("area", ["objects", "cache", "git_dir", "git_state"])
def test_what_a_command_writes_outside_the_fork_is_counted(qhome: Path, tmp_path: Path, area: str) -> None:
    mp, first = setup_vault(qhome, tmp_path)
    before = fork_files(mp)
    again = ATTACKS[area].format(n=MIB, m=1).replace("junk", "junk2").replace("wheel", "w2")
    plant(ATTACKS[area].format(n=BIG, m=BIG // MIB), again)
    env = run(mp)
    # counted after the run: the commit is refused, and says where the bytes are
    assert env["error"] is not None and env["error"]["code"] == "quota_exceeded", env
    assert env["success"] is False and env["commit"] is None
    details = env["error"]["details"]
    assert details["quota"] == QUOTA and details["used"] > QUOTA
    assert details[AREA[area]] >= BIG
    shown = doc("--vault", "v", "quota", "show")
    assert shown["over"] == ["bytes"] and shown[AREA[area]] >= BIG
    assert shown["used_bytes"] > QUOTA
    # over the quota: what adds bytes is refused, through avfs and through the mount (at
    # once through pure FUSE; past the room the kernel's limit keeps for avfs's own
    # databases through an overlay mount: 16 MiB for one fork)
    refused("--vault", "v", "write", "more.txt", "x" * 4096)
    assert written_through(mp / "more.bin", 64 * MIB) <= 17 * MIB
    # a second command filling the same place again is refused too: before it runs (the
    # vault is past its quota; tests below: a loop of such commands)
    env2 = json.loads(avfs("--json", "proxy", "exec", "--", "sh", "attack2.sh", cwd=mp).stdout)
    assert env2["error"] is not None and env2["error"]["code"] == "quota_exceeded", env2
    assert env2["result"] is None, env2
    assert fork_files(mp) == before
    way_out_works(mp, first)
    # the person lifts the quota: writes work again, nothing was lost
    ok("--vault", "v", "quota", "set", "--bytes", "none")
    ok("--vault", "v", "write", "more.txt", "room again\n")
    assert fork_files(mp) == before


# the run's scratch copies of refs and reflogs (proxy/seal.py: the worktree's logs/ and
# refs/, the vault's refs/, logs/ and top directory as the sandbox sees them)
SCRATCH_FILL = (
    "G=$(git rev-parse --git-dir); C=$(git rev-parse --git-common-dir)\n"
    'dd if=/dev/urandom of="$G/logs/junk" bs=1M count={m} 2>&1\n'
    'mkdir -p "$G/refs/j" && dd if=/dev/urandom of="$G/refs/j/junk" bs=1M count=1 2>&1\n'
    'dd if=/dev/urandom of="$C/logs/junk" bs=1M count=1 2>&1\n'
    'dd if=/dev/urandom of="$C/refs/junk" bs=1M count=1 2>&1\n'
    'dd if=/dev/urandom of="$C/junk" bs=1M count=1 2>&1\n'
)


def _tree_size(path: Path) -> int:
    from avfs_git.core.store import deeptree  # (a loop: a tree deeper than the recursion limit)

    return sum((Path(d) / f).lstat().st_size for d, _, files in deeptree.walk(str(path)) for f in files)


def test_what_a_command_writes_into_the_run_s_scratch_goes_with_the_run(qhome: Path, tmp_path: Path) -> None:
    """The scratch the sandbox writes refs and reflogs into (`<vault>/avfs/seal/<fork>/`)
    is no place to park bytes. Found in the nineteenth round (NAME=attack10): 24 MiB there
    under a 20 MiB quota were counted nowhere, the command's commit went through, and the
    bytes stayed until the fork's next run (for ever, once the fork was deleted). Now the
    scratch loses what the command wrote there as the run ends, as the object quarantine
    does; the next run, and git in the mount, go on."""
    mp, _first = setup_vault(qhome, tmp_path)
    before = fork_files(mp)
    plant(
        SCRATCH_FILL.format(m=BIG // MIB),
        "git log --oneline -1 >/dev/null && git commit -q --allow-empty -m next\n",
    )
    env = run(mp)
    assert env["error"] is None and env["success"], env
    seal = qhome / "vaults" / "v.git" / "avfs" / "seal"
    assert _tree_size(seal) < MIB, sorted(p.relative_to(seal) for p in seal.rglob("*") if p.is_file())
    shown = doc("--vault", "v", "quota", "show")
    assert shown["over"] == [] and shown["used_bytes"] < QUOTA, shown
    env2 = run(mp, 2)  # the next run's git in the sandbox works on a scratch made anew
    assert env2["error"] is None and env2["success"], env2
    assert subprocess.run(["git", "status", "--porcelain"], cwd=mp, capture_output=True).returncode == 0
    assert fork_files(mp) == before


def test_a_command_is_counted_while_the_host_frees_as_much(qhome: Path, tmp_path: Path) -> None:
    """Something else on the host's file system frees more than the command writes into
    its git dir during the run (another fork's clean-up, another job): the file system
    holds less after the run than before, and the command's bytes are counted all the same
    (a statvfs test once let them pass, and the command's commit with them)."""
    mp, _first = setup_vault(qhome, tmp_path)
    ballast = tmp_path / "ballast.bin"
    ballast.write_bytes(os.urandom(3 * BIG))
    os.sync()
    plant(ATTACKS["git_dir"].format(m=BIG // MIB) + "echo new > new.txt\nsleep 2\n")
    junk = list((qhome / "vaults" / "v.git" / "worktrees").glob("*"))
    assert junk, "the mount's worktree git dir"

    def free() -> None:  # the other job: once the junk is written, frees three times as much
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if any((d / "junk").exists() and (d / "junk").stat().st_size >= BIG for d in junk):
                break
            time.sleep(0.05)
        ballast.unlink()
        os.sync()

    t = threading.Thread(target=free)
    t.start()
    try:
        env = run(mp)
    finally:
        t.join()
    assert not ballast.exists()
    assert env["error"] is not None and env["error"]["code"] == "quota_exceeded", env
    assert env["commit"] is None and env["error"]["details"]["git_dirs_bytes"] >= BIG
    assert (mp / "new.txt").read_bytes() == b"new\n"  # kept uncheckpointed
    assert "new.txt" in {c["path"] for c in doc("status", cwd=mp)["changes"]}


def test_a_command_filling_the_fork_is_stopped_or_counted(qhome: Path, tmp_path: Path) -> None:
    mp, first = setup_vault(qhome, tmp_path)
    before = fork_files(mp)
    plant(ATTACKS["fork"].format(m=BIG // MIB))
    env = run(mp)
    if env["error"] is None:
        # the write itself was refused (a mount whose writes avfs checks): within the quota
        assert "Disk quota exceeded" in env["result"]["stdout"] + env["result"]["stderr"], env
        assert doc("--vault", "v", "quota", "show")["used_bytes"] <= QUOTA
    else:
        # the kernel's limit leaves room for avfs's own state: counted after the run
        assert env["error"]["code"] == "quota_exceeded" and env["commit"] is None, env
        assert doc("--vault", "v", "quota", "show")["over"] == ["bytes"]
        assert {c["path"] for c in doc("status", cwd=mp)["changes"]} == {"big.bin"}
    assert fork_files(mp) == before
    # the way out: rm the big file (exit 0), then everything works and nothing was lost
    ok("rm", "big.bin", cwd=mp)
    assert not (mp / "big.bin").exists()
    ok("--vault", "v", "write", "after.txt", "fits\n")
    way_out_works(mp, first)


def test_a_full_fork_keeps_status_checkpoint_restore_and_rm(qhome: Path, tmp_path: Path) -> None:
    """Filled to the last byte through the mount (the kernel's or avfs's EDQUOT), the fork
    keeps working for everything that does not add bytes: never `disk I/O error`, exit 70."""
    mp, first = setup_vault(qhome, tmp_path)
    before = fork_files(mp)
    dd = subprocess.run(
        ["dd", "if=/dev/urandom", f"of={mp}/fill.bin", "bs=1M", "count=200"], capture_output=True, text=True
    )
    assert dd.returncode != 0 and "Disk quota exceeded" in dd.stderr, dd.stderr
    blob = subprocess.run(
        ["git", "hash-object", "--no-filters", str(mp / "fill.bin")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    st = doc("status", cwd=mp)
    assert [c["path"] for c in st["changes"]] == ["fill.bin"]
    held = ""
    for _ in range(2):  # twice: the room avfs takes for itself is given back
        # (the exec checkpoints fill.bin first: a checkpoint adds nothing to the quota)
        env = json.loads(avfs("--json", "proxy", "exec", "--", "cat", "keep.txt", cwd=mp).stdout)
        assert env["exit_code"] == 0 and env["error"] is None and env["result"]["stdout"] == "kept\n", env
        if env["checkpoint"] is not None:
            held = env["checkpoint"]["commit"]
        assert doc("status", cwd=mp)["kind"] == "status"
    more = tmp_path / "more.bin"
    more.write_bytes(b"x" * (2 * MIB))
    refused("--vault", "v", "write", "more.txt", "--file", str(more))
    env = json.loads(avfs("--json", "proxy", "exec", "--", "touch", "new.txt", cwd=mp).stdout)
    assert env["exit_code"] != 70
    ok("--vault", "v", "checkpoint", "save", "-m", "full")
    ok("rm", "fill.bin", cwd=mp)
    assert not (mp / "fill.bin").exists()
    ok("--vault", "v", "checkpoint", "save", "-m", "emptied")
    assert fork_files(mp) == before
    way_out_works(mp, first)
    # what the fork held at the quota is in its history (the exec checkpointed it first,
    # at the quota); the restore moved the fork back past it, undoably
    vault = str(qhome / "vaults" / "v.git")
    shown = subprocess.run(
        ["git", "--git-dir", vault, "rev-parse", f"{held}:fill.bin"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == blob


def test_another_forks_unpublished_bytes_count_against_a_command(qhome: Path, tmp_path: Path) -> None:
    """After a command, the other forks' overlays are taken at their published totals
    plus the slack (proxy/recording.py `over_quota`: no read per fork), and read exactly
    only when that bound is past the quota. Another fork holds 6.5 MiB of which only its
    first 3 MiB are published (a fork publishes when its totals move by more than 4 MiB);
    the command's 15 MiB take the vault past the quota only with the 3.5 MiB not published:
    refused all the same, as the exact count refuses it."""
    from avfs_git.core.vaults.quota import PUBLISH_BYTES

    mp, _first = setup_vault(qhome, tmp_path)
    ok("vault", "fork", "v", "other")
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    first.write_bytes(os.urandom(3 * MIB))
    second.write_bytes(os.urandom(7 * MIB // 2))
    ok("--vault", "v:other", "write", "first.bin", "--file", str(first))
    ok("--vault", "v:other", "write", "second.bin", "--file", str(second))
    usage = qhome / "vaults" / "v.git" / "avfs" / "usage" / "f.other"
    published = int(usage.read_text().split()[0])
    assert published < 4 * MIB < 6 * MIB < published + PUBLISH_BYTES, "the second write is not published"
    plant(ATTACKS["git_dir"].format(m=15) + "echo new > new.txt\n")
    env = run(mp)
    assert env["error"] is not None and env["error"]["code"] == "quota_exceeded", env
    assert env["commit"] is None and env["error"]["details"]["used"] > QUOTA
    assert (mp / "new.txt").read_bytes() == b"new\n"  # kept uncheckpointed
    shown = doc("--vault", "v", "quota", "show")
    assert shown["over"] == ["bytes"]
    assert {f["fork"]: f["overlay_bytes"] for f in shown["forks"]}["other"] == 13 * MIB // 2


def test_commands_in_a_loop_cannot_ratchet_the_quota_up(qhome: Path, tmp_path: Path) -> None:
    """An agent looping one command that writes as much as it can: each run was given the
    room the kernel's limit keeps over the qgroup's fill (for avfs's own databases), and the
    limit set again over what it wrote gave the next run as much again (a 20 MiB quota
    passed 120 MiB in six runs). A vault past its quota now runs no command that may add
    bytes: refused before it runs; read-only commands and removals run (the way out)."""
    mp, _ = setup_vault(qhome, tmp_path)
    plant(
        "n=$(ls fill*.bin 2>/dev/null | wc -l); dd if=/dev/urandom of=fill$n.bin bs=1M count=64 2>&1; true\n"
    )
    first_run = run(mp)
    used = doc("--vault", "v", "quota", "show")["used_bytes"]
    over = used > QUOTA  # the kernel's room (layers) took it past; avfs's own checks stop at it
    assert over == (first_run["error"] is not None), first_run
    for _ in range(4):
        r = avfs("--json", "proxy", "exec", "--", "sh", "attack1.sh", cwd=mp)
        env = json.loads(r.stdout)
        if over:  # refused before it runs (125: proxy exec's own refusal)
            assert r.returncode == env["exit_code"] == 125 and env["result"] is None, env
            assert env["error"]["code"] == "quota_exceeded" and env["error"]["hint"], env
        assert doc("--vault", "v", "quota", "show")["used_bytes"] <= max(used, QUOTA)
    if over:
        assert sorted(p.name for p in mp.glob("fill*.bin")) == ["fill0.bin"]
    # the way out, by the agent's own door: reading and removing run
    env = json.loads(avfs("--json", "proxy", "exec", "--", "cat", "keep.txt", cwd=mp).stdout)
    assert env["exit_code"] == 0 and env["result"]["stdout"] == "kept\n", env
    env = json.loads(avfs("--json", "proxy", "exec", "--", "sh", "-c", "rm -f fill*.bin", cwd=mp).stdout)
    assert env["exit_code"] == 0 and env["error"] is None and not list(mp.glob("fill*.bin")), env
    assert fork_files(mp) == {"keep.txt": b"kept\n", "src/app.py": b"print('app')\n"}


@pytest.mark.parametrize("qhome", ["layers"], indirect=True)  # (the plain home has no such mount)
def test_the_layers_file_system_honours_no_setuid_bit_a_command_made(qhome: Path, tmp_path: Path) -> None:
    """A setuid copy made in the fork lands in the upper layer; on the
    layers file system (a loop-mounted btrfs under the avfs home) that mount is ``nosuid``
    and ``nodev`` too (defence in depth beside the state dir's 0700, see docs/security.md)."""
    mp, _ = setup_vault(qhome, tmp_path)
    assert os.path.ismount(layers.mount_path(str(qhome))), "the forks' state is not in the layers file system"
    # (made through the mount: the sandbox refuses the chmod since the thirty-fourth round,
    # tests/test_adv_setid.py; a command where libseccomp is missing, an unconfined one)
    (mp / "rootsh").write_bytes(Path("/bin/sh").read_bytes())
    os.chmod(mp / "rootsh", 0o4755)
    assert os.stat(mp / "rootsh").st_mode & stat.S_ISUID  # the fork keeps what it was given
    target = os.path.realpath(layers.mount_path(str(qhome)))
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        opts = [ln.split()[3].split(",") for ln in fh if ln.split()[1] == target]
    assert opts and "nosuid" in opts[-1] and "nodev" in opts[-1], opts


def test_a_directory_a_command_hides_in_a_cache_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A confined command owns what it writes in the caches: it writes 24 MiB into a
    directory of the pip cache, then ``chmod 000`` that directory. For a person who is not
    root the quota's walk could not list it, so none of it was counted (found in the
    twelfth round, NAME=attack3: three runs parked 72 MiB under a 20 MiB quota, none
    refused). The whole host side runs here as such a person (root without
    ``CAP_DAC_OVERRIDE``/``CAP_DAC_READ_SEARCH``/``CAP_FOWNER``, as
    tests/test_adv_mountfiles.py does)."""
    from .test_adv_mountfiles import NOT_ROOT

    require_fuse()
    if NOT_ROOT and subprocess.run(["setpriv", "--version"], capture_output=True).returncode != 0:
        skip_outside_ci("setpriv is needed to run the host side without root's capabilities")
    monkeypatch.setenv("AVFS_HOME", str(tmp_path / "qhome"))

    def as_person(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*NOT_ROOT, sys.executable, "-m", "avfs_git", *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=cwd,
        )

    assert as_person("vault", "create", "v").returncode == 0
    hide = 'mkdir -p "$PIP_CACHE_DIR/d$1" && dd if=/dev/urandom of="$PIP_CACHE_DIR/d$1/w" bs=1M count=24 2>/dev/null'
    assert (
        as_person(
            "--vault", "v", "write", "hide.sh", hide + ' && chmod 000 "$PIP_CACHE_DIR/d$1" && echo HID\n'
        ).returncode
        == 0
    )
    assert as_person("--vault", "v", "checkpoint", "save", "-m", "script").returncode == 0
    assert as_person("--vault", "v", "quota", "set", "--bytes", str(QUOTA)).returncode == 0
    mp = tmp_path / "mnt"
    mp.mkdir()
    assert as_person("mount", "v:main", str(mp), "--backend", "fuse").returncode == 0
    try:
        first = json.loads(as_person("--json", "proxy", "exec", "--", "sh", "hide.sh", "1", cwd=mp).stdout)
        assert first["result"]["stdout"] == "HID\n", first["result"]
        assert first["error"] is not None and first["error"]["code"] == "quota_exceeded", first
        second = json.loads(as_person("--json", "proxy", "exec", "--", "sh", "hide.sh", "2", cwd=mp).stdout)
        assert second["result"] is None and second["error"]["code"] == "quota_exceeded", second
        shown = json.loads(as_person("--json", "--vault", "v", "quota", "show").stdout)
        assert shown["over"] == ["bytes"] and shown["caches_bytes"] >= BIG, shown
    finally:
        as_person("unmount", str(mp))


# the command's directories that wear out a walk holding a descriptor per directory still to
# look into, past the host side's soft limit of open files (OPEN_FILES: a person's default is
# 1,024; lower here, the same exhaustion for a quarter of the directories): WIDE beside each
# other, a comb DEEP levels deep (a side branch at each level); the last of each (in the file
# system's own order, which the command reads with `ls -U`) holds a directory made unreadable
# with $2 MiB in it
OPEN_FILES, WIDE, DEEP = 256, 400, 300
WIDE_AND_DEEP = (
    f'mkdir -p "$1/wide" && cd "$1/wide" && seq -f d%g 1 {WIDE} | xargs mkdir\n'
    'last=$(ls -U | tail -1) && mkdir "$last/h" && dd if=/dev/urandom of="$last/h/w" bs=1M count=$2 2>/dev/null\n'
    f'chmod 000 "$last/h" && cd .. && seq 1 {DEEP} | awk \'{{s=s"a/"; print "deep/" s "b"}}\' | xargs mkdir -p\n'
    f'p=deep/$(printf "a/%.0s" $(seq 1 {DEEP})) && mkdir "$p/h" && dd if=/dev/urandom of="$p/h/w" bs=1M count=$2 2>/dev/null\n'
    'chmod 000 "$p/h" && echo HID\n'
)


def test_directories_past_the_open_files_limit_hide_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk that gives a command's unreadable directories their owner's bits back
    before avfs counts or removes them (``writable_again``) held a descriptor of every
    directory it was still to look into: past the person's limit of open files (1,024 by
    default) it looked into none of the rest, so a directory the command made unreadable
    there stayed so (found in the twentieth round, NAME=attack11). In the worktree git dir,
    24 MiB under a 20 MiB quota were counted nowhere and the command's commit went
    through; in the run's scratch, 8 MiB outlived the run, counted by no quota. The host
    side runs as a person who is not root (as above), with a soft limit of OPEN_FILES open
    files; at 256 the scratch's removal (shutil's, a descriptor a level) failed part way on
    the 300-level comb and 4 MiB outlived the run (twenty-first round, NAME=suitetime8)."""
    from .test_adv_mountfiles import NOT_ROOT

    require_fuse()
    if NOT_ROOT and subprocess.run(["setpriv", "--version"], capture_output=True).returncode != 0:
        skip_outside_ci("setpriv is needed to run the host side without root's capabilities")
    monkeypatch.setenv("AVFS_HOME", str(tmp_path / "qhome"))

    def as_person(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*NOT_ROOT, "prlimit", f"--nofile={OPEN_FILES}:", sys.executable, "-m", "avfs_git", *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=cwd,
        )

    assert as_person("vault", "create", "v").returncode == 0
    script = 'G=$(git rev-parse --git-dir)\nset -- "$G/$1" $2\n' + WIDE_AND_DEEP
    assert as_person("--vault", "v", "write", "hide.sh", script).returncode == 0
    assert as_person("--vault", "v", "checkpoint", "save", "-m", "script").returncode == 0
    assert as_person("--vault", "v", "quota", "set", "--bytes", str(QUOTA)).returncode == 0
    mp = tmp_path / "mnt"
    mp.mkdir()
    assert as_person("mount", "v:main", str(mp), "--backend", "fuse").returncode == 0
    seal = tmp_path / "qhome" / "vaults" / "v.git" / "avfs" / "seal"
    try:
        # the run's scratch (the worktree's logs/ in there): nothing of it outlives the run
        scratch = json.loads(
            as_person("--json", "proxy", "exec", "--", "sh", "hide.sh", "logs", "4", cwd=mp).stdout
        )
        assert scratch["result"]["stdout"] == "HID\n", scratch["result"]
        assert scratch["error"] is None, scratch
        assert _tree_size(seal) < MIB, _tree_size(seal)
        # the worktree git dir: counted
        env = json.loads(
            as_person("--json", "proxy", "exec", "--", "sh", "hide.sh", "junk", "12", cwd=mp).stdout
        )
        assert env["result"]["stdout"] == "HID\n", env["result"]
        assert env["error"] is not None and env["error"]["code"] == "quota_exceeded", env
        shown = json.loads(as_person("--json", "--vault", "v", "quota", "show").stdout)
        assert shown["over"] == ["bytes"] and shown["git_dirs_bytes"] >= BIG, shown
    finally:
        as_person("unmount", str(mp))


def test_a_deleted_fork_s_run_scratch_goes_with_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Left open in the nineteenth round (NAME=attack10): `<vault>/avfs/seal/<fork>/`, the
    scratch a confined command's git works on, stayed for ever once its fork was deleted,
    counted by no quota, with whatever a run cut short left there; a fork made later under
    the same name found it. Now deleting the fork removes it, and the new fork's runs start
    from a scratch of their own."""
    require_fuse()
    monkeypatch.setenv("AVFS_HOME", str(tmp_path / "qhome"))
    ok("vault", "create", "v")
    ok("--vault", "v", "write", "keep.txt", "kept\n")
    ok("--vault", "v", "checkpoint", "save", "-m", "one")
    ok("vault", "fork", "v:main", "f")
    mp = tmp_path / "mnt"
    mp.mkdir()
    ok("mount", "v:f", str(mp), "--backend", "fuse")
    seal = tmp_path / "qhome" / "vaults" / "v.git" / "avfs" / "seal"
    try:
        ok("--vault", "v:f", "write", "a.sh", "git commit -q --allow-empty -m mine && echo DONE\n")
        env = json.loads(avfs("--json", "proxy", "exec", "--", "sh", "a.sh", cwd=mp).stdout)
        assert env["result"]["stdout"] == "DONE\n" and env["error"] is None, env
        assert (seal / "f").is_dir()
    finally:
        ok("unmount", str(mp))
    ok("vault", "delete", "--force", "v:f")
    assert not (seal / "f").exists(), sorted(p.name for p in (seal / "f").iterdir())
    ok("vault", "fork", "v:main", "f")  # the same name again: nothing of the old one's
    assert not (seal / "f").exists()
    assert "mine" not in ok("--vault", "v:f", "log")

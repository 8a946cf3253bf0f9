"""`proxy exec` with the avfs home on a full disk (tests/test_nospace_ops.py holds the other
commands): a 16 MB tmpfs home filled so that the call fails at one of its points, a cold
one (the mount and its sandbox set up for the call) or a warm one (the command's writes
into the upper layer, the blobs and commit of the capture, the op log, the journal, the
audit record), by how much is left.

Whatever point it reached: one JSON document, no traceback; a call whose command did not
run exits 125 with `no_space` and changes nothing; one whose command ran exits with the
command's own code, and every path the command left in the fork is named (`changes`), in
the envelope's `commit` when it was committed (the branch's tip), else uncheckpointed in
the fork (never "nothing was changed"); the last named checkpoint as it was; `git fsck
--full` clean; the next call, once there is room, works.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import IN_CI, run_in_process
from .test_fuse import require_fuse
from .test_nospace import fill

Run = Callable[..., subprocess.CompletedProcess[str]]
WRITES = "echo small > s.txt; head -c 200000 /dev/urandom > big.bin"
TINY = "echo tiny >> t.txt"


def _runner(home: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(AVFS_HOME=str(home), AVFS_SERVER="off", AVFS_LAYERS="off")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=120, env=env
        )

    return run


@pytest.fixture(scope="module")
def full_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_fuse()
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI runs as root: a tmpfs home must be mountable")
        pytest.skip("requires root to mount a small tmpfs as the avfs home")
    home = tmp_path_factory.mktemp("nospace-exec") / "home"
    home.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(home)], check=True)
    run = _runner(home)
    try:
        assert run("vault", "create", "v").returncode == 0
        for name, data in (("a.txt", "a\n"), ("sub/b.txt", "b\n")):
            assert run("--vault", "v", "write", name, data).returncode == 0
        assert run("--vault", "v", "checkpoint", "save", "one").returncode == 0
        yield home
    finally:
        run("unmount", "v:main")
        subprocess.run(["umount", "-l", str(home)], check=True)


def _git(home: Path, *args: str) -> str:
    vault = home / "vaults" / "v.git"
    return subprocess.run(["git", "--git-dir", str(vault), *args], capture_output=True, text=True).stdout


def _read(home: Path, *args: str) -> dict[str, Any]:
    """``avfs --json --vault v ARGS`` in this process (tests/conftest.py ``run_in_process``):
    the reads and the clean-up around the call under test, which test no process of their
    own (the `proxy exec` calls on the full disk stay real processes). In a test only: the
    hermetic fixture's author and layers switch are this process' then."""
    done = run_in_process(
        ["--json", "--vault", "v", *args], env={"AVFS_HOME": str(home), "AVFS_SERVER": "off"}
    )
    assert done.code == 0, done.out + done.err
    return done.json()


def _state(home: Path) -> dict[str, object]:
    return {
        "refs": _git(home, "for-each-ref", "--format=%(refname) %(objectname)"),
        "status": _read(home, "status")["changes"],
        "ops": len(_read(home, "op", "log")["operations"]),
    }


# (bytes left, whether the fork is mounted already, the command): here a cold call with
# no room for its mount, and warm ones failing in the sandbox's set-up, the command's writes,
# the capture's pack, the op log (after the commit: `details.done`)
STEPS = [
    (0, False, WRITES),
    (0, True, WRITES),
    (16_384, True, WRITES),
    (40_000, True, TINY),
    (96_000, True, TINY),
]


@pytest.mark.parametrize(
    ("keep", "warm", "command"), STEPS, ids=[f"{k}-{'warm' if w else 'cold'}" for k, w, _ in STEPS]
)
def test_proxy_exec_on_a_full_home_names_what_it_left_and_the_next_call_works(
    full_home: Path, keep: int, warm: bool, command: str
) -> None:
    run = _runner(full_home)
    if warm:
        assert run("--json", "--vault", "v", "proxy", "exec", "--", "true").returncode == 0
    else:
        run("unmount", "v:main")
    before = _state(full_home)
    assert before["status"] == []
    tip0 = _git(full_home, "rev-parse", "main").strip()
    one = _git(full_home, "rev-parse", "refs/avfs/checkpoints/main/-/one").strip()
    ballast = fill(full_home, keep)
    try:
        res = run("--json", "--vault", "v", "proxy", "exec", "--", "sh", "-c", command)
    finally:
        ballast.unlink()
    docs = [line for line in res.stdout.splitlines() if line.strip()]
    assert len(docs) == 1, res.stdout + res.stderr
    doc = json.loads(docs[0])
    assert doc["kind"] == "proxy_exec_result", doc
    assert "Traceback" not in res.stderr, res.stderr
    err = doc.get("error")
    if doc["result"] is None:  # the command did not run
        assert res.returncode == 125 and err["code"] == "no_space", doc
        assert _state(full_home) == before
    else:
        assert res.returncode == doc["result"]["exit_code"], doc
        assert err is None or err["code"] == "no_space", doc
        tip1 = _git(full_home, "rev-parse", "main").strip()
        left = {c["path"] for c in _read(full_home, "status")["changes"]}
        committed = set(_git(full_home, "diff", "--name-only", tip0, tip1).split())
        named = {c["path"] for c in doc["changes"]}
        assert left | committed <= named, (left, committed, doc)
        if tip1 != tip0:
            assert doc["commit"] is not None and doc["commit"]["commit"] == tip1, doc
        if err is not None and named:
            assert "nothing was changed" not in err["hint"] + err["message"], err
    assert _git(full_home, "rev-parse", "refs/avfs/checkpoints/main/-/one").strip() == one
    assert _git(full_home, "show", f"{one}:sub/b.txt") == "b\n"
    fsck = subprocess.run(
        ["git", "--git-dir", str(full_home / "vaults" / "v.git"), "fsck", "--full", "--strict"],
        capture_output=True,
        text=True,
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    # with room again: the next call works, and the fork is left clean for the next test
    res = run("--json", "--vault", "v", "proxy", "exec", "--", "sh", "-c", "echo ok > ok.txt")
    assert res.returncode == 0 and json.loads(res.stdout)["success"], res.stdout + res.stderr
    _read(full_home, "checkpoint", "save")
    assert _read(full_home, "status")["changes"] == []


def test_a_person_s_writes_into_a_full_mount_get_enospc_and_the_next_checkpoint_records_them(
    full_home: Path,
) -> None:
    """The overlay's upper layer full while a person's tools write in the mount (many small
    files as `npm install` writes them, a large file, `git commit`): `ENOSPC` to the writer,
    the mount still serves, and the next checkpoint records the files as they are (each
    path's blob is the file's bytes: nothing half-recorded)."""
    run = _runner(full_home)
    assert run("--json", "--vault", "v", "proxy", "exec", "--", "true").returncode == 0  # mounted, kept warm
    mp = full_home / "mnt" / "v" / "main"
    assert (mp / "a.txt").read_text() == "a\n"
    ballast = fill(full_home, 256_000)
    errors: set[int] = set()
    try:
        for i in range(200):  # ~1 KB each, a directory each: more than what is left
            try:
                (mp / "pkgs" / f"p{i}").mkdir(parents=True, exist_ok=True)
                (mp / "pkgs" / f"p{i}" / "index.js").write_bytes(b"module.exports = %d;\n" % i * 50)
            except OSError as exc:
                errors.add(exc.errno or -1)
        with pytest.raises(OSError) as large:
            (mp / "large.bin").write_bytes(os.urandom(1 << 20))
        commit = subprocess.run(
            ["git", "-C", str(mp), "commit", "-qam", "full"], capture_output=True, text=True
        )
        assert (mp / "sub" / "b.txt").read_text() == "b\n"  # the mount still serves
        assert len(os.listdir(mp)) >= 4
    finally:
        ballast.unlink()
    assert errors == {errno.ENOSPC} and large.value.errno == errno.ENOSPC, (errors, large.value)
    assert commit.returncode != 0 and "space" in (commit.stderr + commit.stdout).lower(), (
        commit
    )  # (git: "Out of diskspace")
    res = run("--json", "--vault", "v", "checkpoint", "save")
    assert res.returncode == 0, res.stdout + res.stderr
    assert _read(full_home, "status")["changes"] == []
    files = sorted(
        str(p.relative_to(mp)) for p in mp.rglob("*") if p.is_file() and p.relative_to(mp).parts[0] != ".git"
    )
    hashed = subprocess.run(
        ["git", "hash-object", "--stdin-paths"],
        input="\n".join(files),
        cwd=mp,
        capture_output=True,
        text=True,
    ).stdout.split()
    listed = dict(line.split("\t")[::-1] for line in _git(full_home, "ls-tree", "-r", "main").splitlines())
    assert {f: listed.get(f, "").split()[-1:] for f in files} == {
        f: [h] for f, h in zip(files, hashed, strict=True)
    }
    assert set(listed) == set(files)
    fsck = subprocess.run(
        ["git", "--git-dir", str(full_home / "vaults" / "v.git"), "fsck", "--full", "--strict"],
        capture_output=True,
        text=True,
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    # git in the mount works again with room
    (mp / "a.txt").write_text("a, and git after\n")
    commit = subprocess.run(["git", "-C", str(mp), "commit", "-qam", "room"], capture_output=True, text=True)
    assert commit.returncode == 0, commit.stderr
    assert _git(full_home, "show", "main:a.txt") == "a, and git after\n"

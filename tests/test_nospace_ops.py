"""A full disk under the avfs home during the commands tests/test_nospace.py does not reach:
`vault fork`, `merge`, `push` (its remote on the same full disk), `vault clone` and `gc`.
Each fails with `no_space` (exit 1, one JSON document) or, where git on the far side of a
push is the one that could not write, `remote_failed` (exit 5); nothing changes (refs, the
overlay's files, packs, loose objects, status, the op log); the vault passes `git fsck
--full`; the same call works once the space is back.

One small tmpfs for the module (root only: mount(2)), unmounted at its end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import IN_CI
from .test_nospace import fill


@pytest.fixture(scope="module")
def full_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI runs as root: a tmpfs home must be mountable")
        pytest.skip("requires root to mount a small tmpfs as the avfs home")
    home = tmp_path_factory.mktemp("nospace-ops") / "home"
    home.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(home)], check=True)
    try:
        run = _runner(home)
        assert run("vault", "create", "v").returncode == 0
        for name, data in (("a.txt", "a\n"), ("sub/b.txt", "b\n")):
            assert run("--vault", "v", "write", name, data).returncode == 0
        assert run("--vault", "v", "checkpoint", "save", "-m", "one").returncode == 0
        assert run("--vault", "v", "vault", "fork", "v:main", "side").returncode == 0
        assert run("--vault", "v:side", "write", "side.txt", "side\n").returncode == 0
        assert run("--vault", "v:side", "checkpoint", "save").returncode == 0
        assert run("--vault", "v", "write", "main.txt", "main\n").returncode == 0
        assert run("--vault", "v", "checkpoint", "save").returncode == 0
        assert run("--vault", "v", "write", "dirty.txt", "not saved\n").returncode == 0
        subprocess.run(["git", "init", "-q", "--bare", str(home / "remote.git")], check=True)
        assert run("--vault", "v", "remote", "add", "origin", str(home / "remote.git")).returncode == 0
        yield home
    finally:
        subprocess.run(["umount", "-l", str(home)], check=True)


def _runner(home: Path):  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(AVFS_HOME=str(home), AVFS_SERVER="off")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=120, env=env
        )

    return run


def _state(home: Path) -> dict[str, object]:
    vault = home / "vaults" / "v.git"
    run = _runner(home)

    def out(*args: str) -> str:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout

    return {
        "refs": out("git", "--git-dir", str(vault), "for-each-ref", "--format=%(refname) %(objectname)"),
        "remote": out("git", "--git-dir", str(home / "remote.git"), "for-each-ref"),
        "files": sorted(p.name for p in (vault / "avfs" / "ws" / "main" / "files").iterdir()),
        "packs": sorted(p.name for p in (vault / "objects" / "pack").iterdir()),
        "loose": sorted(str(p.relative_to(vault)) for p in (vault / "objects").glob("??/*")),
        "status": json.loads(run("--json", "--vault", "v", "status").stdout),
        "ops": json.loads(run("--json", "--vault", "v", "op", "log").stdout),
        "vaults": sorted(p.name for p in (home / "vaults").iterdir()),
    }


def _fsck(home: Path) -> None:
    for vault in (home / "vaults").glob("*.git"):
        done = subprocess.run(
            ["git", "--git-dir", str(vault), "fsck", "--full", "--strict"], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


CALLS: dict[str, tuple[tuple[str, ...], set[str]]] = {
    "vault fork": (("--vault", "v", "vault", "fork", "v:main", "new"), {"no_space"}),
    "merge": (("--vault", "v", "merge", "side"), {"no_space"}),
    "push": (("--vault", "v", "push", "origin", "main"), {"no_space", "remote_failed", "remote_rejected"}),
    "vault clone": (("vault", "clone", "{remote}", "cloned"), {"no_space"}),
    "gc": (("--vault", "v", "gc"), {"no_space"}),
}


STEPS = [(what, keep) for what in sorted(CALLS) for keep in (0, 64_000)]


@pytest.mark.parametrize(("what", "keep"), STEPS, ids=[f"{w}-{k}" for w, k in STEPS])
def test_a_full_home_fails_clearly_changes_nothing_and_the_call_works_after(
    full_home: Path, what: str, keep: int
) -> None:
    run = _runner(full_home)
    args, codes = CALLS[what]
    args = tuple(a.replace("{remote}", str(full_home / "vaults" / "v.git")) for a in args)
    before = _state(full_home)
    ballast = fill(full_home, keep)
    try:
        res = run("--json", *args)
    finally:
        ballast.unlink()
    docs = [line for line in res.stdout.splitlines() if line.strip()]
    assert len(docs) == 1, res.stdout + res.stderr
    doc = json.loads(docs[0])
    if res.returncode == 0:  # it fitted in what was left: then it is done, whole
        assert keep > 0, doc
    elif doc["error"]["details"].get("done"):  # a push reached the remote, then its record failed
        assert what == "push" and "was done, but not recorded" in doc["error"]["message"], doc
        assert run("--json", "--vault", "v", "status").returncode == 0
        assert "refs/heads/main" in _state(full_home)["remote"]  # type: ignore[operator]
    else:
        assert doc["kind"] == "error" and doc["error"]["code"] in codes, doc
        assert res.returncode == (1 if doc["error"]["code"] == "no_space" else 5), doc
        assert "Traceback" not in res.stderr
        assert _state(full_home) == before, (what, doc)
        _fsck(full_home)
        res = run("--json", *args)
        assert res.returncode == 0, res.stdout + res.stderr
    _fsck(full_home)
    # put the home back as the next test expects it (each test stays independent)
    undo = {
        "vault fork": ("--vault", "v", "vault", "delete", "v:new", "--force"),
        "merge": ("--vault", "v", "undo"),
        "vault clone": ("vault", "delete", "cloned", "--force"),
    }.get(what)
    if undo is not None:
        assert run(*undo).returncode == 0, undo
    if what == "push":
        subprocess.run(
            ["git", "--git-dir", str(full_home / "remote.git"), "update-ref", "-d", "refs/heads/main"],
            check=True,
        )

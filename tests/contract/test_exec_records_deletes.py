"""What `proxy exec`'s record stage commits when the command deletes or renames, at the
mount's root and one directory down: the record decides "nothing changed" from the
overlay's journal and the upper layer's journal or inode times (proxy/recording.py,
core/workspace/since.py), and a deletion of a file that only the upper layer holds leaves
no whiteout, only its parent directory's times moved (the root directory is not one of
the upper layer's entries). Each case runs the command through the CLI, on the warm path
(the mount's daemon answers) and as the first call (the fork not mounted), on both mount
backends, and checks the fork's commit with git and `avfs status`. Real mounts, real
bwrap, real CLI processes for the calls (`avfs status` and `avfs rm` in the test's process:
``conftest.run_in_process``).

The tests share one avfs home (:func:`home`), each with a vault of its own in it, and that
home's resident CLI server, on as the product has it: a call that mounts is then the
server's child, which forks the mount's daemon warm (the module's first call runs itself
and starts the server), where a home of each test's own, the server off (the suite's
default), spawned each daemon anew, ~0.3 s of CPU in its imports, ~90 times in the file
(suitetime21). A call to a mount kept warm goes to its daemon either way."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import avfs_git
from avfs_git.core.operations import checkpoint
from avfs_git.core.settings import Settings
from avfs_git.core.vaults.home import Home
from avfs_git.core.vaults.vault import Vault
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts
from avfs_git.policy.pathsource import POLICY_PATHS

from ..conftest import AUTHOR, CliResult, _stop_servers, git, run_in_process, scratch_home
from ..test_confine import _need_bwrap
from .backends import MOUNTS
from .test_mount_kept_warm import LONG, _env

pytestmark = pytest.mark.backends(*MOUNTS)

BASE = {"README.md", "sub/keep.txt", "sub/other.txt"}


@pytest.fixture(params=["warm", "first"])
def path(request: pytest.FixtureRequest) -> str:
    """``warm``: the mount stays up between calls (the mount's daemon answers the next);
    ``first``: the fork is unmounted before each call (the call mounts it)."""
    return str(request.param)


_NAMES = itertools.count(1)  # each test's vault: v1, v2, ...


@pytest.fixture(scope="module")
def shared_home() -> Iterator[str]:
    """The home the module's tests share (under the session's base temp dir), its resident
    CLI server stopped at the module's end (it would wait for its idle time)."""
    top = scratch_home("exec-deletes-")
    yield os.path.join(top, "avfs-home")
    _stop_servers(Path(top))


@pytest.fixture
def home(shared_home: str) -> Iterator[Home]:
    """The shared home (conftest's ``home`` fixture's settings), opened for this test."""
    h = Home(shared_home, author=AUTHOR, mounts=MOUNT_SIDE, paths=POLICY_PATHS)
    yield h
    h.close()


@pytest.fixture
def vault(home: Home) -> Iterator[Vault]:
    """A vault of this test's own in the shared home, which must pass `git fsck --strict` as
    it ends (as conftest checks every vault a test's own home holds)."""
    v = home.create_vault(f"v{next(_NAMES)}")
    yield v
    proc = subprocess.run(
        ["git", "--git-dir", v.path, "fsck", "--strict", "--no-dangling", "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), f"git fsck {v.path}: {proc.stdout}{proc.stderr}"


CALL = ("--json", "proxy", "exec")


def _exec(home: Home, backend: str, vault: Vault, *args: str) -> dict[str, Any]:
    """`avfs proxy exec ARGS` on ``vault``'s fork main as a process of its own, the home's
    resident CLI server on (test_mount_kept_warm's ``_exec`` otherwise)."""
    env = _env(backend, LONG)
    env.pop("AVFS_SERVER", None)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "avfs_git",
            "--home",
            home.path,
            "--vault",
            f"{vault.name}:main",
            *CALL,
            *args,
        ],
        capture_output=True,
        timeout=120,
        env=env,
    )
    doc = json.loads(r.stdout)
    assert r.returncode == doc["exit_code"], (r.returncode, doc, r.stderr)
    return dict(doc)


@pytest.fixture
def fork(home: Home, vault: Vault) -> Any:
    _need_bwrap()
    ws = vault.workspace("main")
    ws.write("README.md", b"# hello\n")
    ws.write("sub/keep.txt", b"keep\n")
    ws.write("sub/other.txt", b"other\n")
    checkpoint.save(vault, name="base")
    yield vault
    mounts.unmount(home, vault, "main", lazy=True)


class Run:
    def __init__(self, home: Home, vault: Vault, backend: str, path: str) -> None:
        self.home, self.vault, self.backend, self.path = home, vault, backend, path

    def __call__(self, script: str, *opts: str) -> dict[str, Any]:
        if self.path == "first":
            mounts.unmount(self.home, self.vault, "main")
        doc = _exec(self.home, self.backend, self.vault, *opts, "--", "sh", "-c", script)
        assert doc["success"], doc
        assert doc["mount"]["reused"] == (self.path == "warm"), doc["mount"]
        self.agrees(doc)
        return doc

    def agrees(self, doc: dict[str, Any]) -> None:
        """The envelope's changes are the paths its commit changes (none without one)."""
        listed = {p for c in doc["changes"] for p in (c["path"], c.get("old_path")) if p}
        commit = doc["commit"]["commit"] if doc["commit"] else None
        if commit is None:
            assert listed == set() or not doc["request"]["commit"], doc["changes"]
            return
        out = git("--git-dir", self.vault.path, "diff-tree", "-r", "--no-renames", "--name-only", commit)
        assert listed == set(out.split()[1:]), (doc["changes"], out)

    def tree(self) -> set[str]:
        """The paths of the fork's commit, as git lists them."""
        out = git("--git-dir", self.vault.path, "ls-tree", "-r", "--name-only", "refs/heads/main")
        return set(out.split())

    def status(self) -> list[dict[str, Any]]:
        """`avfs --json status`'s changes, the command run in this process (suitetime14:
        a process of its own after each case was ~1/4 of the file's CPU; the calls these
        tests are about, `proxy exec`, stay real processes)."""
        r = _cli(self.home, self.backend, "--vault", f"{self.vault.name}:main", "--json", "status")
        assert r.code == 0, r.err
        return list(r.json()["changes"])

    def holds(self, expected: set[str]) -> None:
        """The fork's commit is ``expected`` and nothing is left uncheckpointed."""
        assert self.tree() == expected
        assert self.status() == []


def _cli(home: Home, backend: str, *args: str) -> CliResult:
    """``avfs --home HOME ARGS`` in this process (``conftest.run_in_process``), with the
    backend's environment as test_mount_kept_warm._avfs gives a process."""
    env = {"AVFS_MOUNT_IDLE": LONG, **({"AVFS_NO_OVERLAY": "1"} if backend == "fuse" else {})}
    assert backend == "fuse" or "AVFS_NO_OVERLAY" not in os.environ
    return run_in_process(["--home", home.path, *args], env=env)


@pytest.fixture
def run(backend: str, home: Home, fork: Vault, path: str) -> Run:
    if path == "warm":  # the mount is up, kept warm by a first call
        assert _exec(home, backend, fork, "--", "true")["success"]
    return Run(home, fork, backend, path)


def _changes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["path"], c["status"]) for c in doc["changes"]}


@pytest.mark.parametrize("where", ["", "sub/"])
def test_a_file_made_by_one_call_and_deleted_by_the_next_is_committed_deleted(run: Run, where: str) -> None:
    made = run(f"echo new > {where}new.txt")
    assert _changes(made) == {(f"{where}new.txt", "added")} and made["commit"]
    run.holds(BASE | {f"{where}new.txt"})
    gone = run(f"rm {where}new.txt")
    assert _changes(gone) == {(f"{where}new.txt", "deleted")}, gone
    assert gone["commit"] and gone["commit"]["parent"] == made["commit"]["commit"]
    run.holds(BASE)
    assert gone["state"]["uncheckpointed_changes"] == 0


@pytest.mark.parametrize("where", ["", "sub/"])
def test_a_directory_made_by_one_call_and_removed_by_the_next_is_committed_removed(
    run: Run, where: str
) -> None:
    made = run(f"mkdir {where}d && echo x > {where}d/f")
    assert made["commit"]
    run.holds(BASE | {f"{where}d/f"})
    gone = run(f"rm -r {where}d")
    assert _changes(gone) == {(f"{where}d/f", "deleted")}, gone
    run.holds(BASE)


def test_a_file_left_uncommitted_and_deleted_by_the_next_call_is_reported_as_its_commit_has_it(
    run: Run,
) -> None:
    kept = run("echo new > new.txt", "--no-commit")
    assert kept["commit"] is None and kept["state"]["uncheckpointed_changes"] == 1
    gone = run("rm new.txt")
    # the fork was not clean: the record taken before the command (it holds new.txt) lands
    # on the branch, and the command's commit on top of it deletes new.txt; the envelope's
    # changes are that commit's
    record = gone["checkpoint"]
    assert record["created"] and record["on_branch"], gone
    assert gone["commit"]["parent"] == record["commit"], gone
    assert "new.txt" in git("--git-dir", run.vault.path, "ls-tree", "--name-only", record["commit"])
    assert _changes(gone) == {("new.txt", "deleted")}, gone
    run.holds(BASE)
    assert gone["state"]["uncheckpointed_changes"] == 0


def test_changes_left_uncommitted_and_redone_by_the_next_call_are_reported_as_its_commit_has_them(
    run: Run,
) -> None:
    run("echo changed > README.md && echo a > added.txt", "--no-commit")
    doc = run("echo '# hello' > README.md && echo b > added.txt")
    # on the record (README.md changed, added.txt added): README.md back, added.txt changed
    assert _changes(doc) == {("README.md", "modified"), ("added.txt", "modified")}, doc
    run.holds(BASE | {"added.txt"})
    assert git("--git-dir", run.vault.path, "show", "refs/heads/main:README.md") == "# hello\n"


def test_a_file_made_and_deleted_in_one_command_changes_nothing(run: Run) -> None:
    doc = run("echo x > t && rm t && mkdir e && rmdir e && echo y > sub/t && rm sub/t")
    assert doc["changes"] == [] and doc["commit"] is None, doc
    run.holds(BASE)


def test_a_file_opened_for_writing_and_closed_unchanged_changes_nothing(run: Run) -> None:
    doc = run(": >> README.md && : >> sub/keep.txt && touch sub/other.txt")
    assert doc["changes"] == [] and doc["commit"] is None, doc
    run.holds(BASE)


@pytest.mark.parametrize("victim", ["README.md", "sub/keep.txt"])
def test_a_file_of_the_forks_commit_deleted_is_committed_deleted(run: Run, victim: str) -> None:
    doc = run(f"rm {victim}")
    assert _changes(doc) == {(victim, "deleted")} and doc["commit"], doc
    run.holds(BASE - {victim})


def test_a_file_removed_by_avfs_rm_made_again_then_deleted_by_a_call_is_committed_deleted(run: Run) -> None:
    """A path of the fork's commit removed outside a command (``avfs rm``: through the mount
    when it is up, into the overlay's entries when not), made again as it was by one call,
    then deleted by the next: the last deletion is the commit's."""
    r = _cli(run.home, run.backend, "--vault", f"{run.vault.name}:main", "rm", "README.md")
    assert r.code == 0, r.err
    again = run("echo '# hello' > README.md", "--no-commit")
    assert again["state"]["uncheckpointed_changes"] == 0, again
    gone = run("rm README.md")
    assert _changes(gone) == {("README.md", "deleted")} and gone["commit"], gone
    run.holds(BASE - {"README.md"})


def test_that_deletion_is_listed_by_a_call_that_does_not_commit_in_a_fork_with_other_changes(
    run: Run,
) -> None:
    """As above, with ``--no-commit`` in a fork that has other uncheckpointed changes: its
    ``changes`` are the paths the command wrote (filtered from a status), the root's
    removal among them."""
    r = _cli(run.home, run.backend, "--vault", f"{run.vault.name}:main", "rm", "README.md")
    assert r.code == 0, r.err
    run("echo '# hello' > README.md && echo o > other.txt", "--no-commit")
    gone = run("rm README.md", "--no-commit")
    assert _changes(gone) == {("README.md", "deleted")} and gone["commit"] is None, gone
    assert {(c["path"], c["status"]) for c in run.status()} == {
        ("README.md", "deleted"),
        ("other.txt", "added"),
    }


def test_renames_at_the_root_and_below_are_committed(run: Run) -> None:
    made = run("echo new > new.txt && echo n2 > sub/n2.txt")
    assert made["commit"]
    doc = run(
        "mv new.txt moved.txt && mv README.md READ.md && mv sub/n2.txt m2.txt && mv sub/keep.txt kept.txt"
    )
    run.holds({"moved.txt", "READ.md", "m2.txt", "kept.txt", "sub/other.txt"})
    assert doc["commit"] and doc["state"]["uncheckpointed_changes"] == 0


def test_a_file_made_by_one_call_and_renamed_over_by_the_next_is_committed(run: Run) -> None:
    made = run("echo a > a.txt && echo b > b.txt")
    assert made["commit"]
    doc = run("mv a.txt b.txt")
    assert doc["commit"], doc
    run.holds(BASE | {"b.txt"})
    assert git("--git-dir", run.vault.path, "show", "refs/heads/main:b.txt") == "a\n"


def test_exec_in_reports_and_commits_the_same_deletions(backend: str, home: Home, fork: Vault) -> None:
    """The in-process API's door (``exec_in``: its record runs in this process, which keeps
    no journal of the upper layer): the same commits and changes as the CLI's."""
    api_home = avfs_git.open_home(home.path, settings=Settings.from_environ(_env(backend, LONG), home.path))
    ws = api_home.vault(fork.name).workspace("main")
    r = Run(home, fork, backend, "warm")

    def run(script: str, commit: bool = True) -> dict[str, Any]:
        doc = avfs_git.exec_in(ws, ["sh", "-c", script], commit=commit).to_dict()
        assert doc["success"] and doc["mount"]["backend"] == backend, doc
        r.agrees(doc)
        return doc

    made = run("echo new > new.txt && echo n > sub/new.txt")
    assert _changes(made) == {("new.txt", "added"), ("sub/new.txt", "added")}
    gone = run("rm new.txt sub/new.txt")
    assert _changes(gone) == {("new.txt", "deleted"), ("sub/new.txt", "deleted")}
    r.holds(BASE)
    run("echo left > left.txt", commit=False)
    gone = run("rm left.txt")
    assert _changes(gone) == {("left.txt", "deleted")} and gone["checkpoint"]["on_branch"], gone
    r.holds(BASE)
    # a path of the commit removed while not mounted, made again in the mount, then deleted
    mounts.unmount(home, fork, "main")
    assert _cli(home, backend, "--vault", f"{fork.name}:main", "rm", "README.md").code == 0
    assert run("echo '# hello' > README.md", commit=False)["state"]["uncheckpointed_changes"] == 0
    gone = run("rm README.md")
    assert _changes(gone) == {("README.md", "deleted")} and gone["commit"], gone
    r.holds(BASE - {"README.md"})

"""git's hands on avfs: commands typed the way a git user types them, each a real process
(`python -m avfs_git ...`), each answered as git would answer, or with the avfs word."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE

from .conftest import git, snapshot


@pytest.fixture
def proj(cli, tmp_path: Path) -> Path:
    """Vault `p` made from a directory, then two more checkpoints: a.txt a->b, b.txt added.
    Made by the CLI in the test's process (``conftest.run_in_process``): the set-up, not
    what a test here is about; each command under test is a real process."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    assert cli("vault", "create", "p", "--from", str(src), "--use").code == 0
    assert cli("write", "a.txt", "b\n").code == 0
    assert cli("checkpoint", "save", "-m", "two").code == 0
    assert cli("write", "b.txt", "c\n").code == 0
    assert cli("checkpoint", "save", "-m", "three").code == 0
    return tmp_path


def _ids(cli_proc, *args: str) -> list[str]:
    r = cli_proc("--json", "log", *args)
    assert r.code == 0, r.err
    return [c["id"] for c in r.json()["commits"]]


def test_git_named_commands_answer_with_the_avfs_word(cli_proc, proj: Path) -> None:
    home = Home(str(proj / "avfs-home"), mounts=MOUNT_SIDE)
    before = snapshot(home.vault("p"))
    r = cli_proc("commit", "-m", "x")
    assert r.code == 2 and r.out == ""
    assert r.err.startswith(
        "avfs: error: 'commit' is not an avfs command; a checkpoint is a commit: avfs checkpoint save -m MSG"
    )
    assert "No such command" not in r.err
    for word, instead in (
        ("branch", "avfs vault fork NEW"),
        ("reset", "avfs checkpoint restore REV"),
        ("add", "avfs checkpoint save"),
    ):
        r = cli_proc(word, "x")
        assert r.code == 2 and instead in r.err, (word, r.err)
    r = cli_proc("--json", "commit", "-am", "x")
    assert r.code == 2
    err = r.json()["error"]
    assert err["code"] == "usage" and err["details"] == {
        "command": "commit",
        "instead": "avfs checkpoint save -m MSG",
    }
    # a word git does not have either is still click's answer
    assert "No such command 'frob'" in cli_proc("frob").err
    assert snapshot(home.vault("p")) == before


def test_log_takes_counts_ranges_patches_and_a_graph(cli_proc, proj: Path) -> None:
    every = _ids(cli_proc)
    assert len(every) == 3
    assert _ids(cli_proc, "-2") == every[:2]
    assert _ids(cli_proc, "-n", "1") == every[:1]
    assert _ids(cli_proc, "HEAD~2..HEAD") == every[:2]
    assert _ids(cli_proc, "HEAD~1..") == every[:1]
    assert _ids(cli_proc, "HEAD~1...HEAD~2") == [every[1]]  # either side, not both
    assert _ids(cli_proc, "HEAD^") == every[1:]
    # as git reads the same vault
    vault_dir = proj / "avfs-home" / "vaults" / "p.git"
    assert git("--git-dir", str(vault_dir), "rev-list", f"{every[2]}..{every[0]}").split() == every[:2]

    r = cli_proc("log", "-p", "-1")
    assert r.code == 0 and r.out.startswith(f"commit {every[0]}")
    assert "diff --git a/b.txt b/b.txt" in r.out and "+c" in r.out and "a.txt" not in r.out
    r = cli_proc("log", "--stat", "-2", "--oneline")
    assert r.code == 0 and " b.txt | 1 +" in r.out and " a.txt | 2 +-" in r.out and "diff --git" not in r.out
    r = cli_proc("log", "--graph", "--oneline")
    assert r.code == 0 and [line[:2] for line in r.out.splitlines()] == ["* "] * 3
    r = cli_proc("log", "--graph", "--all")
    assert r.code == 2 and "git --git-dir" in r.err


def test_diff_takes_gits_revision_forms_paths_and_cached(cli_proc, proj: Path) -> None:
    def names(*args: str) -> list[str]:
        r = cli_proc("diff", "--name-status", *args)
        assert r.code == 0, r.err
        return r.out.splitlines()

    assert names("HEAD~1..HEAD") == ["A\tb.txt"]
    assert names("HEAD~2..HEAD") == ["M\ta.txt", "A\tb.txt"]
    assert names("HEAD~2...HEAD") == ["M\ta.txt", "A\tb.txt"]
    assert names("HEAD~1", "HEAD") == ["A\tb.txt"]
    assert names("HEAD~1") == ["A\tb.txt"]  # against the workspace
    r = cli_proc("diff", "HEAD~2", "--", "a.txt")
    assert r.code == 0 and "diff --git a/a.txt b/a.txt" in r.out and "b.txt" not in r.out
    assert cli_proc("write", "a.txt", "x\n").code == 0
    assert names("--cached") == names("--staged") == names() == ["M\ta.txt"]
    r = cli_proc("diff", "HEAD~1..HEAD", "HEAD")
    assert r.code == 2 and "range" in r.err
    # @{N}: where the fork was N moves ago (its reflog), as git reads the same vault
    assert names("HEAD@{1}", "HEAD") == names("@{1}", "HEAD") == names("main@{1}", "main") == ["A\tb.txt"]
    vault_dir = proj / "avfs-home" / "vaults" / "p.git"
    reflog = git("--git-dir", str(vault_dir), "rev-parse", "main@{1}").strip()
    assert cli_proc("--json", "log", "-1", "@{1}").json()["commits"][0]["id"] == reflog
    r = cli_proc("--json", "diff", "HEAD@{99}")
    err = r.json()["error"]
    assert err["code"] == "revision_not_found" and "reflog" in err["message"] and "op log" in err["hint"]


def test_status_short_and_show(cli_proc, proj: Path) -> None:
    assert cli_proc("status", "-s").out == ""
    assert cli_proc("write", "a.txt", "x\n").code == 0
    assert cli_proc("write", "new.txt", "n\n").code == 0
    assert cli_proc("rm", "b.txt").code == 0
    r = cli_proc("status", "-s")
    # nothing is staged (a fork has no index): git's worktree column, untracked last
    assert r.code == 0 and r.out.splitlines() == [" M a.txt", " D b.txt", "?? new.txt"]
    assert cli_proc("status", "--porcelain").out == r.out
    assert cli_proc("status", "-sb").out == "## main\n" + r.out

    r = cli_proc("show", "HEAD~1")
    assert r.code == 0 and "    two" in r.out and "-a\n+b" in r.out
    shown_stat = cli_proc("show", "--stat", "HEAD~1").out
    commit = cli_proc("--json", "log", "-1", "HEAD~1").json()["commits"][0]["id"]
    vault_dir = proj / "avfs-home" / "vaults" / "p.git"
    assert shown_stat.endswith(git("--git-dir", str(vault_dir), "show", "--stat", "--format=", commit))
    assert cli_proc("show", "HEAD~1:a.txt").out == "b\n"
    assert cli_proc("show", "HEAD~2:a.txt").out == "a\n"
    doc = cli_proc("--json", "show", "HEAD:b.txt").json()
    assert doc["kind"] == "file_content" and doc["files"][0]["content"] == "c\n"
    doc = cli_proc("--json", "show").json()
    assert doc["kind"] == "log" and doc["commits"][0]["message"].startswith("three")
    r = cli_proc("--json", "show", "HEAD:nope.txt")
    assert r.code != 0 and r.json()["error"]["code"] == "path_not_found"


def test_checkout_switches_forks_and_takes_paths_back(cli_proc, proj: Path) -> None:
    home = Home(str(proj / "avfs-home"), mounts=MOUNT_SIDE)
    assert cli_proc("write", "a.txt", "dirty\n").code == 0
    r = cli_proc("checkout", "--", "a.txt")  # drop a path's uncheckpointed changes
    assert r.code == 0 and cli_proc("cat", "a.txt").out == "b\n"
    assert cli_proc("checkout", "HEAD~2", "--", "a.txt").code == 0
    assert cli_proc("cat", "a.txt").out == "a\n"
    assert cli_proc("checkout", "a.txt", "--from", "HEAD").code == 0  # the avfs form stays
    assert cli_proc("cat", "a.txt").out == "b\n"

    r = cli_proc("checkout", "-b", "side")
    assert r.code == 0 and "switched to fork p:side" in r.err
    assert cli_proc("--json", "status").json()["fork"] == "side"
    assert cli_proc("write", "only-side.txt", "s\n").code == 0
    r = cli_proc("checkout", "main")
    assert r.code == 0 and cli_proc("--json", "status").json()["fork"] == "main"
    assert cli_proc("cat", "only-side.txt").code != 0

    before = snapshot(home.vault("p"))
    r = cli_proc("--json", "checkout", "nope")
    assert r.code == 2 and r.json()["error"]["details"]["forks"] == ["main", "side"]
    assert snapshot(home.vault("p")) == before
    assert cli_proc("--json", "status").json()["fork"] == "main"


def test_checkout_warns_only_when_the_selection_names_another_fork(cli_proc, proj: Path) -> None:
    """getting-started's `export AVFS_VAULT=proj` then `avfs checkout agent1`: `proj` alone
    follows the vault's default fork, which the switch moves, so there is nothing to warn
    about (it warned "still selects proj" while commands acted on agent1); a fork named in
    --vault stays selected, and the warning says what to give instead."""
    assert cli_proc("vault", "fork", "p", "side").code == 0
    r = cli_proc("--vault", "p", "checkout", "side")
    assert r.code == 0 and "switched to fork p:side" in r.err and "warning" not in r.err, r.err
    assert cli_proc("--vault", "p", "--json", "status").json()["fork"] == "side"
    r = cli_proc("--vault", "p:side", "checkout", "side")  # names the fork switched to
    assert r.code == 0 and "warning" not in r.err, r.err
    r = cli_proc("--vault", "p:main", "checkout", "side")
    assert r.code == 0, r.err
    assert "warning: --vault/AVFS_VAULT names p:main" in r.err and "--vault p:side" in r.err, r.err
    assert cli_proc("--vault", "p:main", "--json", "status").json()["fork"] == "main"
    assert cli_proc("--json", "status").json()["fork"] == "side"


def test_pull_origin_branch(cli_proc, proj: Path) -> None:
    bare = proj / "origin.git"
    git("init", "-q", "--bare", str(bare))
    assert cli_proc("remote", "add", "origin", str(bare)).code == 0
    assert cli_proc("push", "origin", "main").code == 0
    clone = proj / "clone"
    git("clone", "-q", str(bare), str(clone))
    (clone / "theirs.txt").write_text("t\n")
    git("add", ".", cwd=clone)
    git("commit", "-qm", "theirs", cwd=clone)
    git("push", "-q", "origin", "HEAD:main", "HEAD:feature", cwd=clone)

    r = cli_proc("pull", "origin", "main")
    assert r.code == 0, r.err
    assert cli_proc("cat", "theirs.txt").out == "t\n"
    # another branch of the remote into the selected fork, as `git pull origin feature`
    assert cli_proc("checkout", "-b", "mine").code == 0
    r = cli_proc("--json", "pull", "origin", "feature")
    assert r.code == 0 and json.loads(r.out)["merge"]["source"] == "origin/feature"
    r = cli_proc("--json", "pull", "origin", "ghost")
    assert r.code != 0 and "ghost" in r.json()["error"]["message"]

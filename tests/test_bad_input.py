"""Bad input gets a clear error and changes nothing (each case checks a snapshot)."""

from __future__ import annotations

import os
import sqlite3
import subprocess

import pytest

from avfs_git.core.errors import AvfsError, BusyError, UsageError
from avfs_git.core.operations import checkpoint
from avfs_git.core.settings import DEFAULT_LOCK_WAIT_S, Settings, served_for
from avfs_git.core.vaults.vault import Vault

from .conftest import IN_CI, libgit2_repo, snapshot


@pytest.fixture
def populated(vault, ws):
    ws.write("src/a.txt", b"a")
    ws.symlink("/etc/passwd", "abs-link")
    ws.symlink("../../outside", "up-link")
    ws.symlink("src", "ok-link")
    checkpoint.save(vault, name="c1")
    ws.write("dirty.txt", b"uncheckpointed")
    return vault


BAD_PATHS = [
    ("../x", "invalid_path"),
    ("a/../../x", "invalid_path"),
    ("/etc/passwd", "invalid_path"),
    ("a\x00b", "invalid_path"),
    (".git/config", "invalid_path"),
    ("src/.GIT/x", "invalid_path"),
    ("x" * 300, "name_too_long"),
    ("a/" + "b" * 256, "name_too_long"),
    ("ctl\x01char", "invalid_path"),
]


@pytest.mark.parametrize(("path", "code"), BAD_PATHS)
@pytest.mark.parametrize("command", ["write", "cat", "rm", "mkdir", "ls"])
def test_bad_paths(cli, populated, path, code, command):
    before = snapshot(populated)
    args = {
        "write": ["write", path, "data"],
        "cat": ["cat", path],
        "rm": ["rm", path],
        "mkdir": ["mkdir", path],
        "ls": ["ls", path],
    }[command]
    r = cli("--json", "--vault", "v", *args)
    assert r.code == 1, r.out + r.err
    doc = r.json()
    assert doc["kind"] == "error" and doc["error"]["code"] == code
    assert snapshot(populated) == before


@pytest.mark.parametrize("link", ["abs-link", "up-link"])
def test_symlinks_out_of_the_workspace_are_never_followed(cli, populated, link):
    before = snapshot(populated)
    r = cli("--json", "--vault", "v", "cat", link)
    assert r.code == 1 and r.json()["error"]["code"] == "symlink_escape"
    r = cli("--json", "--vault", "v", "write", link, "pwned")
    assert r.code == 1 and r.json()["error"]["code"] == "symlink_escape"
    r = cli("--json", "--vault", "v", "write", f"{link}/child", "pwned")
    assert r.code == 1
    assert snapshot(populated) == before
    # the link itself is visible
    r = cli("--json", "--vault", "v", "stat", link)
    assert r.code == 0 and r.json()["stat"]["kind"] == "symlink"
    with open("/etc/passwd", "rb") as fh:
        assert fh.read(1)  # untouched, of course


def test_in_workspace_symlink_is_followed(cli, populated):
    r = cli("--vault", "v", "cat", "ok-link/a.txt")
    assert r.code == 0 and r.out == "a"


# refused both as vault and as fork names
BAD_NAMES = ["", "..", "a:b", "-lead", "has space", "ctl\x07", "HEAD", "a..b", "x.lock", ".hidden", "x" * 101]


@pytest.mark.parametrize("name", [*BAD_NAMES, "a/b", "v.git"])
def test_invalid_vault_names(cli, home, name):
    r = cli("--json", "vault", "create", name)
    assert r.code in (1, 2), r.out
    doc = r.json()
    assert doc["kind"] == "error"
    assert not os.path.exists(home.vaults_dir) or os.listdir(home.vaults_dir) == []


@pytest.mark.parametrize("name", [*BAD_NAMES, "a//b"])
def test_invalid_fork_names(cli, populated, name):
    before = snapshot(populated)
    r = cli("--json", "vault", "fork", "v", name)
    assert r.code in (1, 2)
    assert r.json()["error"]["code"] in ("invalid_name", "usage")
    assert snapshot(populated) == before


def test_missing_vault_fork_checkpoint(cli, populated):
    before = snapshot(populated)
    cases = [
        (["--vault", "nope", "status"], "vault_not_found"),
        (["--vault", "v:nope", "status"], "fork_not_found"),
        (["--vault", "v", "checkpoint", "restore", "no-such-checkpoint"], "revision_not_found"),
        (["--vault", "v", "checkpoint", "delete", "no-such"], "revision_not_found"),
        (["--vault", "v", "diff", "nope1", "nope2"], "revision_not_found"),
        (["--vault", "v", "checkout", "src", "--from", "nope"], "revision_not_found"),
        (["vault", "fork", "v:nope", "new"], "fork_not_found"),
        (["vault", "delete", "nope", "--force"], "vault_not_found"),
        (["vault", "restore", "nope"], "vault_not_found"),
        (["--vault", "v", "cat", "missing.txt"], "path_not_found"),
    ]
    for args, code in cases:
        r = cli("--json", *args)
        assert r.code == 1, (args, r.out)
        assert r.json()["error"]["code"] == code, args
    assert snapshot(populated) == before


def test_directory_over_file_and_file_over_directory(cli, populated):
    before = snapshot(populated)
    r = cli("--json", "--vault", "v", "write", "src", "x")
    assert r.json()["error"]["code"] == "is_a_directory"
    r = cli("--json", "--vault", "v", "mkdir", "src/a.txt")
    assert r.json()["error"]["code"] == "already_exists"
    r = cli("--json", "--vault", "v", "write", "src/a.txt/child", "x")
    assert r.json()["error"]["code"] == "not_a_directory"
    r = cli("--json", "--vault", "v", "mv", "src", "src/inner")
    assert r.json()["error"]["code"] == "invalid_path"
    assert snapshot(populated) == before


def test_quota(cli, populated, tmp_path):
    r = cli("--json", "--vault", "v", "quota", "set", "1K")
    assert r.code == 0 and r.json()["quota_bytes"] == 1024
    before = snapshot(populated)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 5000)
    r = cli("--json", "--vault", "v", "write", "big.bin", "--file", str(big))
    assert r.code == 1 and r.json()["error"]["code"] == "quota_exceeded"
    r = cli("--json", "--vault", "v", "write", "big.bin", "--stdin", stdin=b"y" * 5000)
    assert r.code == 1 and r.json()["error"]["code"] == "quota_exceeded"
    assert snapshot(populated) == before
    ws = populated.workspace("main")
    assert os.listdir(ws.overlay.files_dir) == [ws.overlay.get("dirty.txt").fileid]
    r = cli("--json", "--vault", "v", "quota", "set", "nonsense")
    assert r.code == 2


def test_delete_vault_needs_force_and_is_restorable(cli, populated):
    r = cli("--json", "vault", "delete", "v")
    assert r.code == 2 and r.json()["error"]["code"] == "usage"
    assert os.path.isdir(populated.path)
    r = cli("--json", "vault", "delete", "v", "--force")
    assert r.code == 0 and not os.path.exists(populated.path)
    r = cli("--json", "vault", "restore", "v")
    assert r.code == 0
    r = cli("--vault", "v", "cat", "dirty.txt")
    assert r.out == "uncheckpointed"


def test_corrupt_overlay_file(cli, populated):
    ws = populated.workspace("main")
    e = ws.overlay.get("dirty.txt")
    os.unlink(ws.overlay.file_path(e.fileid))
    r = cli("--json", "--vault", "v", "cat", "dirty.txt")
    assert r.code == 70 and r.json()["error"]["code"] == "corrupt_state"
    assert "doctor" in r.json()["error"]["hint"] or "checkout" in r.json()["error"]["hint"]


def test_ref_moved_by_someone_else_cli(cli, populated):
    vault = populated
    repo = libgit2_repo(vault)
    # a commit that changes something this workspace does not show (it is not adopted)
    base = vault.workspace().base
    tb = repo.TreeBuilder(repo[vault.store.commit_tree(base)])
    tb.insert("theirs.txt", repo.create_blob(b"a change this workspace does not show\n"), 0o100644)
    other = vault.store.create_commit(str(tb.write()), [base], "elsewhere\n")
    repo.references.get("refs/heads/main").set_target(other)
    before = snapshot(vault)
    r = cli("--json", "--vault", "v", "checkpoint", "save", "--no-rebase")
    assert r.code == 75
    err = r.json()["error"]
    assert err["code"] == "ref_moved" and other in err["message"]
    assert snapshot(vault) == before
    assert vault.workspace().read("dirty.txt") == b"uncheckpointed"


def test_usage_errors_are_json_and_exit_2(cli):
    for args in (["--json", "write"], ["--json", "nonsense"], ["--json", "checkpoint", "save", "--bogus"]):
        r = cli(*args)
        assert r.code == 2, args
        assert r.json()["error"]["code"] == "usage"


def test_no_vault_selected(cli):
    r = cli("--json", "status")
    assert r.code == 2 and "no vault selected" in r.json()["error"]["message"]


@pytest.mark.skipif(os.geteuid() != 0, reason="requires root to mount a read-only tmpfs")
def test_read_only_home(cli, home, tmp_path):
    ro = tmp_path / "ro-home"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], check=True)
    try:
        r = cli("--json", "--home", str(ro), "vault", "create", "x")
        assert r.code == 1
        assert r.json()["error"]["code"] in ("read_only", "permission_denied")
        assert os.listdir(ro) == []
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_read_only_home_with_existing_vault(cli, populated, tmp_path):
    """A vault whose files can't be written: reads work, writes fail clearly."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI runs as root: the read-only bind mount must be tested")
        pytest.skip("requires root for a read-only bind mount")
    home_dir = os.path.dirname(os.path.dirname(populated.path))
    # with the mounts in it (the home's layers file system, core/vaults/layers.py, when its state
    # dirs are there), each read-only
    subprocess.run(["mount", "--rbind", home_dir, home_dir], check=True)
    with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as fh:
        points = [ln.split()[1].replace("\\040", " ") for ln in fh]
    for mp in dict.fromkeys(p for p in points if p == home_dir or p.startswith(home_dir + "/")):
        subprocess.run(["mount", "-o", "remount,bind,ro", mp], check=True)
    try:
        r = cli("--vault", "v", "cat", "src/a.txt")
        assert r.code == 0 and r.out == "a"
        r = cli("--json", "--vault", "v", "write", "new.txt", "x")
        assert r.code == 1, r.out + r.err
        assert r.json()["error"]["code"] in ("read_only", "permission_denied", "corrupt_state")
    finally:
        subprocess.run(["umount", "-l", home_dir], check=True)


def test_fork_names_that_clash_as_ref_paths(cli, populated):
    assert cli("--json", "vault", "fork", "v", "a").code == 0
    before = snapshot(populated)
    r = cli("--json", "vault", "fork", "v", "a/b")
    assert r.code == 1 and r.json()["error"]["code"] == "invalid_name"
    assert cli("--json", "vault", "fork", "v", "x/y").code == 0
    r = cli("--json", "vault", "fork", "v", "x")
    assert r.code == 1 and r.json()["error"]["code"] == "invalid_name"
    after = snapshot(populated)
    # (and the new fork's held ref, for git's gc: the seed of a fork of a fork with changes)
    new = {r for r in set(after["refs"]) - set(before["refs"]) if not r.startswith("refs/avfs/held/")}
    assert new == {"refs/heads/x/y"}


def test_bad_lock_wait_setting(cli, populated, monkeypatch):
    monkeypatch.setenv("AVFS_LOCK_WAIT", "abc")
    r = cli("--json", "--vault", "v", "checkpoint", "save")
    assert r.code == 2 and "AVFS_LOCK_WAIT" in r.json()["error"]["message"]


def test_a_served_call_waits_for_locks_as_its_caller_s_environment_says():
    """A mount's daemon serving a `proxy exec` waited for git's ``index.lock`` as its own
    ``AVFS_LOCK_WAIT`` said (the error said "waited 10 s" to a caller that set 2): inside
    ``served_for`` the caller's value is the one, unset there the default, and a bad one
    fails as it would in the caller's own process; outside, the process's own again."""
    own = Settings("/h", lock_wait="7")
    with served_for({"AVFS_LOCK_WAIT": "2"}):
        assert own.lock_wait_s() == 2.0
    with served_for({}):
        assert own.lock_wait_s() == DEFAULT_LOCK_WAIT_S
    with served_for({"AVFS_LOCK_WAIT": "abc"}), pytest.raises(UsageError, match="AVFS_LOCK_WAIT='abc'"):
        own.lock_wait_s()
    assert own.lock_wait_s() == 7.0


def test_replacing_a_big_file_near_the_quota(cli, populated):
    ws = populated.workspace("main")
    used = cli("--json", "--vault", "v", "quota", "show").json()["used_bytes"]  # objects + overlays
    assert cli("--json", "--vault", "v", "quota", "set", str(used + 6000)).code == 0
    assert cli("--json", "--vault", "v", "write", "big", "--stdin", stdin=b"a" * 5000).code == 0
    r = cli("--json", "--vault", "v", "write", "big", "--stdin", stdin=b"b" * 5500)
    assert r.code == 0, r.out
    assert ws.read("big") == b"b" * 5500


def test_ref_moved_by_someone_else_is_rebased_onto_by_default(cli, populated):
    vault = populated
    repo = libgit2_repo(vault)
    base = vault.workspace().base
    tb = repo.TreeBuilder(repo[vault.store.commit_tree(base)])
    tb.insert("theirs.txt", repo.create_blob(b"theirs\n"), 0o100644)
    other = vault.store.create_commit(str(tb.write()), [base], "elsewhere\n")
    repo.references.get("refs/heads/main").set_target(other)
    r = cli("--json", "--vault", "v", "checkpoint", "save")
    assert r.code == 0 and r.json()["checkpoint"]["parent"] == other
    ws = vault.workspace()
    assert ws.read("theirs.txt") == b"theirs\n" and ws.read("dirty.txt") == b"uncheckpointed"


def test_a_very_deep_missing_path_is_not_found_not_a_symlink_loop(vault):
    """Missing levels are no symlink hops (a 41-level path used to read as a loop), and a
    2,000-level path is walked without running out of stack."""
    ws = vault.workspace("main")
    for depth in (50, 2000):
        with pytest.raises(AvfsError) as exc:
            ws.read("/".join(["d"] * depth))
        assert exc.value.code == "path_not_found"
    deep = "/".join(["d"] * 100) + "/f"
    ws.write(deep, b"deep")
    assert ws.read(deep) == b"deep"


def test_a_home_whose_vaults_is_a_file_is_named_not_crashed_on(tmp_path):
    """`--home` pointing at a file (its `vaults` then cannot be a directory): every path,
    the proxy's fast one included, answers one JSON document naming the home, and nothing
    is written there."""
    import json
    import subprocess
    import sys

    home = tmp_path / "not-a-dir"
    home.write_bytes(b"a file\n")
    for args, kind in (
        (["--json", "proxy", "exec", "--", "true"], "proxy_exec_result"),
        (["--json", "status"], "error"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "avfs_git", "--home", str(home), "--vault", "x:main", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        doc = json.loads(proc.stdout)  # exactly one document
        assert doc["kind"] == kind and doc["error"]["code"] == "unusable_path", proc.stdout
        assert "Traceback" not in proc.stderr, proc.stderr
    assert home.read_bytes() == b"a file\n"


@pytest.mark.parametrize(
    "args",
    [
        ("vault", "info", ""),
        ("vault", "path", ""),
        ("vault", "fork", "", "new"),
        ("watch", ""),
        ("watch", "--once", ""),
        ("mount", "", "mnt"),
        ("unmount", ""),
        ("apply", ""),
        ("export", "", "out"),
    ],
    ids=lambda a: " ".join(a),
)
def test_an_empty_vault_argument_is_refused_not_the_default(cli, populated, args):
    """`avfs vault info "$V"` with V unset: an invalid name, not the selected vault (which
    `vault info` and `vault path` answered for, `vault fork` forked and `watch` followed)."""
    before = snapshot(populated)
    r = cli("--json", "--vault", "v", *args)
    assert r.code == 1 and r.json()["error"]["code"] == "invalid_name", (r.code, r.out)
    assert snapshot(populated) == before


def test_a_writer_held_off_past_sqlites_wait_is_told_busy_and_nothing_changes(
    vault: Vault,
) -> None:
    """Another writer holding the fork's overlay database past SQLite's busy wait is not
    damage: the write answers ``busy`` (retry), not ``corrupt_state``, and changes nothing
    (a merge holding a lazy fork's writers off while it fetches can last that long)."""
    ws = vault.workspace("main")
    ws.write("a.txt", b"one\n")
    before = snapshot(vault)
    ws.overlay.db.execute("PRAGMA busy_timeout = 50")  # SQLite's 30 s wait, shortened
    other = sqlite3.connect(ws.overlay.db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BusyError) as err:
            ws.write("a.txt", b"two\n")
        assert err.value.code == "busy" and err.value.hint
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert ws.read("a.txt") == b"one\n"
    assert snapshot(vault) == before


def test_a_restore_across_a_file_whose_name_is_not_utf8_is_done_and_said_to_be(cli, tmp_path):
    """A vault made from a git history whose file name is not UTF-8 (Latin-1, as old
    projects hold): a restore to a commit where that file differs keeps the restored
    files' times (the kept-times table, SQLite text), and such a name is no text SQLite
    takes. The restore moved the fork, then failed as an internal error (exit 70) with
    nothing in the op log to undo it; now the name keeps no time (it shows the view's, as
    a file a checkpoint retired under such a name does) and the restore is an operation."""
    src = tmp_path / "src"
    subprocess.run(["git", "init", "-q", "-b", "main", str(src)], check=True)
    name = os.fsencode(str(src)) + b"/caf\xe9.txt"
    git = ["git", "-C", str(src), "-c", "user.name=a", "-c", "user.email=a@b"]
    for n, data in enumerate((b"a\n", b"b\n")):
        with open(name, "wb") as fh:
            fh.write(data)
        (src / "ok.txt").write_text(f"{n}\n")
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", f"c{n}"], check=True)
    assert cli("vault", "create", "v", "--from", str(src)).code == 0
    tip = cli("--json", "--vault", "v", "status").json()["base"]
    res = cli("--json", "--vault", "v", "checkpoint", "restore", "HEAD~1")
    assert res.code == 0, res.out
    doc = cli("--json", "--vault", "v", "status").json()
    assert doc["base"] != tip and doc["clean"], doc
    assert cli("--vault", "v", "cat", "ok.txt").out == "0\n"
    res = cli("--json", "--vault", "v", "undo")
    assert res.code == 0, res.out
    assert cli("--json", "--vault", "v", "status").json()["base"] == tip


def test_a_vault_that_exists_is_refused_with_what_to_do(cli, home, tmp_path):
    """The README's "For an agent" (`avfs up ./proj`) then its "A taste" (`avfs vault create
    proj --from ./proj`) met `vault 'proj' already exists` and no hint: the hint says `up`
    made it from this directory, and what to do; any other vault of that name, the choices."""
    import json

    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.txt").write_text("a\n")
    home.create_vault("proj", from_dir=str(proj)).set_config(origin={"dir": str(proj)})  # as `up` records it
    r = cli("--json", "vault", "create", "proj", "--from", str(proj))
    err = json.loads(r.out)["error"]
    assert r.code == 1 and err["code"] == "already_exists", r.out
    assert (
        err["hint"]
        == "it was made from this directory: use it (`avfs vault fork proj NEW`), or give another name"
    )
    # made by `vault create --from` too (its `imported` record): the general hint was given
    home.create_vault("proj2", from_dir=str(proj))
    err = json.loads(cli("--json", "vault", "create", "proj2", "--from", str(proj)).out)["error"]
    assert (
        err["hint"]
        == "it was made from this directory: use it (`avfs vault fork proj2 NEW`), or give another name"
    )
    home.create_vault("other")
    for args in (["vault", "create", "other"], ["vault", "create", "other", "--from", str(proj)]):
        err = json.loads(cli("--json", *args).out)["error"]
        assert err["code"] == "already_exists"
        assert (
            err["hint"]
            == "use it as it is (`avfs vault info other`), give another name, or `avfs vault delete other --force`"
            " first (`avfs vault restore other` brings it back)"
        )


def test_deleting_a_vault_that_is_not_there_says_where_and_what_to_do(cli, home):
    """`vault delete nope` said `no vault named 'nope'` with no home and no hint, where every
    other command names the home and points to `avfs vault list`."""
    import json

    r = cli("--json", "vault", "delete", "nope", "--force")
    err = json.loads(r.out)["error"]
    assert r.code == 1 and err["code"] == "vault_not_found"
    assert err["message"] == f"no vault named 'nope' in {home.path}"
    assert err["hint"] == "`avfs vault list` shows the vaults; `avfs vault create NAME` makes one"


def test_a_fork_that_exists_is_refused_with_what_to_do(cli, vault):
    """`vault fork v agent1` a second time said only "already has a fork" (hint null)."""
    import json

    assert cli("vault", "fork", "v", "agent1").code == 0
    r = cli("--json", "vault", "fork", "v", "agent1")
    err = json.loads(r.out)["error"]
    assert r.code == 1 and err["code"] == "already_exists"
    assert (
        "`avfs vault delete v:agent1 --force`" in err["hint"]
        and "`avfs --vault v:agent1 status`" in err["hint"]
    )


def test_no_vault_selected_in_a_new_home_says_how_to_make_one(cli, tmp_path):
    """A first `avfs status` in a new home was told to `avfs vault use VAULT`, of vaults it
    has none of: it says the home has none, and how to make one."""
    import json

    r = cli("--json", "--home", str(tmp_path / "new-home"), "status")
    err = json.loads(r.out)["error"]
    assert r.code == 2 and err["code"] == "usage"
    assert err["message"] == f"no vault selected: {tmp_path / 'new-home'} has no vaults yet"
    assert err["hint"] == "make one: `avfs vault create NAME --from DIR`, or `avfs up DIR`"


@pytest.mark.parametrize(
    ("args", "option", "hint"),
    [
        (["status", "--json"], "--json", "avfs --json status"),
        (["log", "-n", "1", "--vault=v:main", "--json"], "--vault", "avfs --vault=v:main --json log -n 1"),
        (["--json", "status", "--home", "/h", "--short"], "--home", "avfs --json --home /h status --short"),
    ],
)
def test_a_global_option_after_the_command_is_one_usage_document(cli, vault, args, option, hint):
    """`avfs status --json` (flags anywhere, as git takes them) printed click's "No such
    option '--json'. Did you mean '--short'?" on stderr, nothing on stdout, then "avfs:
    error: exited 2 without a result": one usage document now, saying where it goes."""
    import json

    r = cli(*args)
    assert r.code == 2
    doc = json.loads(r.out)  # exactly one document: --json was given, if not first
    assert doc["error"]["code"] == "usage"
    assert doc["error"]["message"] == f"{option} is a global option: give it before the command"
    assert doc["error"]["hint"] == hint
    assert "without a result" not in r.err


def test_a_global_option_after_the_command_without_json_says_where_it_goes(cli, vault):
    r = cli("status", "--vault", "v:main")
    assert r.code == 2 and r.out == ""
    assert r.err.splitlines() == [
        "avfs: error: --vault is a global option: give it before the command",
        "  hint: avfs --vault v:main status",
    ]

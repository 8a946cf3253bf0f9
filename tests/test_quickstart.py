"""`avfs up / down / export / apply`: a project directory to an agent's mounted fork and back.

Real mounts (each test unmounts whatever it mounted in ``finally``, through the fixture),
real processes holding a mount busy, and `git apply` of the patches `apply --patch` writes.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import (
    BusyError,
    ConflictError,
    InvalidPathError,
    PathNotFoundError,
    PermissionDeniedError,
    UsageError,
)
from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts
from avfs_git.ops import quickstart as q

from .conftest import AUTHOR, IN_CI, CliResult
from .test_json_schemas import check, single_document, validate

WHY = mounts.fuse_available()


@pytest.fixture
def qhome(tmp_path: Path) -> Iterator[Home]:
    """The home the CLI uses too ($AVFS_HOME); every mount left in it is taken down after."""
    if WHY is not None:
        if IN_CI:
            pytest.fail(f"FUSE must be available in CI: {WHY}")
        pytest.skip(f"requires FUSE: {WHY}")
    home = Home(os.environ["AVFS_HOME"], author=AUTHOR, mounts=MOUNT_SIDE)
    try:
        yield home
    finally:
        for m in mounts.list_mounts(home):
            try:
                mounts.unmount(home, home.vault(m.vault), m.fork, lazy=True)
            finally:
                if mounts.mounted_at(m.mountpoint):
                    mounts.force_unmount(m.mountpoint)


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    """A project directory: a.txt, src/util.py, run.sh (executable), link -> a.txt."""
    d = tmp_path / "proj"
    (d / "src").mkdir(parents=True)
    (d / "a.txt").write_text("one\ntwo\n")
    (d / "src" / "util.py").write_text("x = 1\n")
    (d / "run.sh").write_text("#!/bin/sh\necho run\n")
    (d / "run.sh").chmod(0o755)
    (d / "link").symlink_to("a.txt")
    return d


def _fresh(home: Home) -> Home:
    """A new handle on the home (the CLI changed it in this process: no cached vaults)."""
    return Home(home.path, author=AUTHOR, mounts=MOUNT_SIDE)


# -- up / down -------------------------------------------------------------------------------


def test_up_write_through_the_mount_down_keep(qhome: Home, proj: Path, cli: Callable[..., CliResult]) -> None:
    up = check(cli("--json", "up", str(proj)))
    assert up["kind"] == "up" and up["vault"] == "proj" and up["fork"] == "agent-1"
    assert up["vault_created"] and up["fork_created"] and up["origin"] == str(proj)
    mp = Path(up["mountpoint"])
    assert up["hint"] == f"cd {mp} && claude"
    assert (mp / "a.txt").read_text() == "one\ntwo\n" and os.access(mp / "run.sh", os.X_OK)
    (mp / "notes.md").write_text("plan\n")
    (mp / "a.txt").write_text("one\ntwo\nthree\n")

    down = check(cli("--json", "down", str(mp), "--keep"))
    assert down["kind"] == "down" and down["action"] == "keep" and down["unmounted"]
    assert down["checkpoint"] and down["merge"]["status"] == "fast_forward" and down["fork_deleted"]
    assert not mounts.mounted_at(str(mp))
    main = _fresh(qhome).vault("proj").workspace("main")
    assert main.read("notes.md") == b"plan\n" and main.read("a.txt") == b"one\ntwo\nthree\n"
    assert not _fresh(qhome).vault("proj").has_fork("agent-1")


def test_up_human_output_prints_the_mountpoint_and_the_hint(
    qhome: Home, proj: Path, cli: Callable[..., CliResult]
) -> None:
    res = cli("up", str(proj), "--agent", "claude")
    assert res.code == 0, res.err
    mp = res.out.strip()
    assert mounts.mounted_at(mp) and f"cd {mp} && claude" in res.err
    # no MOUNT, no --fork: the only mount there is; not a terminal: the fork stays
    doc = check(cli("--json", "down"))
    assert doc["fork"] == "claude" and doc["unmounted"] and doc["mountpoint"] == mp
    assert doc["action"] == "leave" and not doc["fork_deleted"] and doc["merge"] is None
    assert check(cli("--json", "down"))["error"]["code"] == "usage"  # nothing mounted now
    assert _fresh(qhome).vault("proj").has_fork("claude")


def test_up_no_mount_forks_and_says_how_to_mount(
    qhome: Home, proj: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """`avfs up DIR --no-mount` (the API's ``mount=False``; a newcomer without FUSE, or one
    who runs commands through `proxy exec` only): the vault and the fork, nothing mounted,
    no `None` printed as a mount point, and the next step names the fork to mount."""
    res = cli("up", str(proj), "--agent", "claude", "--no-mount")
    assert res.code == 0, res.err
    assert res.out == ""  # no mount point (it printed "None")
    assert "next: avfs mount proj:claude" in res.err
    assert mounts.list_mounts(qhome) == []
    assert _fresh(qhome).vault("proj").has_fork("claude")
    doc = check(cli("--json", "up", str(proj), "--agent", "claude", "--no-mount"))
    assert (doc["mountpoint"], doc["hint"], doc["vault_created"]) == (None, "avfs mount proj:claude", False)
    # the hint works as printed
    mounted = cli("mount", "proj:claude")
    assert mounted.code == 0, mounted.err
    assert mounts.mounted_at(mounted.out.strip())
    # --mountpoint and --no-mount contradict each other: refused, nothing made
    before = sorted(os.listdir(qhome.path))
    bad = check(
        cli("--json", "up", str(proj), "--agent", "other", "--no-mount", "--mountpoint", str(tmp_path / "m"))
    )
    assert bad["error"]["code"] == "usage"
    assert not _fresh(qhome).vault("proj").has_fork("other") and not (tmp_path / "m").exists()
    assert sorted(os.listdir(qhome.path)) == before


def test_down_discard_is_undoable(qhome: Home, proj: Path) -> None:
    up = q.up(qhome, str(proj), agent="a1")
    assert up.mountpoint is not None
    Path(up.mountpoint, "scratch.txt").write_text("work\n")
    vault = qhome.vault("proj")
    res = q.down(qhome, vault, "a1", action="discard")
    assert res.fork_deleted and res.op_id is not None and res.checkpoint is not None
    assert not vault.has_fork("a1") and not vault.workspace("main").exists("scratch.txt")
    checkpoint.undo(vault, res.op_id)
    assert vault.has_fork("a1") and vault.workspace("a1").read("scratch.txt") == b"work\n"


def test_up_twice_reuses_the_vault_and_refreshes_main(qhome: Home, proj: Path) -> None:
    first = q.up(qhome, str(proj), mount=False)
    second = q.up(qhome, str(proj), mount=False)
    assert second.vault == first.vault == "proj" and not second.vault_created
    assert (first.fork, second.fork) == ("agent-1", "agent-2")
    assert (
        not second.origin_changed
        and q.up(qhome, str(proj), agent="agent-1", mount=False).fork_created is False
    )
    assert len(qhome.list_vaults()) == 1

    (proj / "a.txt").write_text("edited by a person\n")
    (proj / "src" / "util.py").unlink()
    (proj / "added.txt").write_text("new\n")
    third = q.up(qhome, str(proj), mount=False)
    assert third.origin_changed and third.refreshed and third.refresh_commit and not third.warnings
    main = qhome.vault("proj").workspace("main")
    assert main.read("a.txt") == b"edited by a person\n" and main.read("added.txt") == b"new\n"
    assert not main.exists("src/util.py") and main.base == third.refresh_commit
    assert q.up(qhome, str(proj), mount=False).origin_changed is False  # in sync again

    # main has work of its own: the directory's change is reported, not merged in
    main.write("from-agent.txt", b"kept\n")
    (proj / "a.txt").write_text("edited again\n")
    fourth = q.up(qhome, str(proj), mount=False)
    assert fourth.origin_changed and not fourth.refreshed and "not refreshed" in fourth.warnings[0]
    assert main.read("a.txt") == b"edited by a person\n"


def test_up_of_a_different_directory_under_a_taken_name(qhome: Home, proj: Path, tmp_path: Path) -> None:
    q.up(qhome, str(proj), mount=False)
    other = tmp_path / "other" / "proj"
    other.mkdir(parents=True)
    (other / "f").write_text("f\n")
    res = q.up(qhome, str(other), mount=False)
    assert res.vault == "proj-2"
    # and says why (a newcomer's `vault create proj --from ./proj`, then `up ./proj`: proj-2)
    assert res.warnings == (
        "vault proj is taken (not made from this directory by `avfs up`): this directory's vault is proj-2",
    )
    with pytest.raises(UsageError, match="was not made from"):
        q.up(qhome, str(other), vault_name="proj", mount=False)


def test_up_adopts_the_vault_vault_create_from_made(qhome: Home, proj: Path, tmp_path: Path) -> None:
    """The README's taste (`vault create proj --from ./proj`), then its `avfs up ./proj`: `up`
    made vault proj-2, a second copy of the project, beside the one the person made (only
    `up` found its own vaults again). The import is recorded now and `up` adopts it."""
    made = qhome.create_vault("proj", from_dir=str(proj))
    imported = made.workspace("main").base
    res = q.up(qhome, str(proj), mount=False)
    assert (res.vault, res.vault_created, res.origin_changed) == ("proj", False, False)
    assert res.warnings == (
        "vault proj was imported from this directory (`vault create --from`): "
        "`up` uses it from now on, and `avfs apply` brings work back here",
    )
    assert [v.name for v in qhome.list_vaults()] == ["proj"]
    assert q.origin_commit(qhome.vault("proj")) == imported
    assert q.up(qhome, str(proj), mount=False).warnings == ()  # its own now: nothing to say
    (proj / "a.txt").write_text("edited by a person\n")  # and refreshed like any of up's
    again = q.up(qhome, str(proj), mount=False)
    assert again.vault == "proj" and again.refreshed
    # named with --vault, the same; a vault imported from elsewhere is still refused
    other = tmp_path / "other"
    other.mkdir()
    (other / "f").write_text("f\n")
    qhome.create_vault("oth", from_dir=str(other))
    assert q.up(qhome, str(other), vault_name="oth", mount=False).vault == "oth"
    with pytest.raises(UsageError, match="was not made from"):
        q.up(qhome, str(proj), vault_name="oth", mount=False)


def test_two_ups_at_once_make_one_vault_and_both_use_it(
    qhome: Home, proj: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two agents started at once (`avfs up ./proj --agent x` and `--agent y` in a new home):
    one failed "vault 'proj' already exists" (2 of 4 tries), or met the vault before its
    origin was recorded and warned "no origin commit: not compared" (2 of 4). A second `up`
    that comes while the first records the origin now waits for it, then uses the vault."""
    import threading

    from avfs_git.core.store import locks

    second: dict[str, Any] = {}
    waiting = threading.Event()
    real_poll, real_set_origin = locks.next_poll, q.set_origin

    def poll(*args: Any) -> float:
        if threading.current_thread().name == "second-up":
            waiting.set()  # the second `up` is waiting on a lock
        return real_poll(*args)

    def run_second() -> None:
        try:
            second["res"] = q.up(_fresh(qhome), str(proj), agent="y", mount=False)
        except Exception as exc:
            second["error"] = exc

    def set_origin_meanwhile(*args: Any, **kwargs: Any) -> None:
        t = threading.Thread(target=run_second, name="second-up")
        t.start()
        while t.is_alive() and not waiting.wait(0.01):  # done, or waiting for this one
            pass
        second["thread"] = t
        real_set_origin(*args, **kwargs)

    monkeypatch.setattr(locks, "next_poll", poll)
    monkeypatch.setattr(q, "set_origin", set_origin_meanwhile)
    first = q.up(qhome, str(proj), agent="x", mount=False)
    second["thread"].join()
    assert first.vault == "proj" and first.vault_created
    assert "error" not in second, second.get("error")
    res = second["res"]
    assert (res.vault, res.vault_created, res.fork, res.warnings) == ("proj", False, "y", ())
    assert [v.name for v in qhome.list_vaults()] == ["proj"]


def test_up_refuses_unusable_directories(qhome: Home, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    with pytest.raises(PathNotFoundError):
        q.up(qhome, str(tmp_path / "missing"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        q.up(qhome, str(tmp_path / "file"))
    doc = check(cli("--json", "up", str(tmp_path / "missing")))
    assert doc["error"]["code"] == "path_not_found"
    assert not qhome.list_vaults()


def test_up_refuses_a_directory_it_may_not_read(
    qhome: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliResult]
) -> None:
    """What reading a mode-000 directory does to a user who is not root (as root, where
    permissions are bypassed, the EACCES is simulated; the real case runs when not root)."""
    d = tmp_path / "locked"
    d.mkdir()
    real = os.listdir

    def denied(path: Any = ".") -> list[str]:
        if os.fspath(path) == str(d):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", denied)
    doc = check(cli("--json", "up", str(d)))
    assert doc["error"]["code"] == "permission_denied" and str(d) in doc["error"]["message"]
    assert not qhome.list_vaults()


def test_up_refuses_an_unreadable_directory(tmp_path: Path) -> None:
    """The real mode-000 case. Root reads any directory whatever its mode, so as root the
    attempt runs in a forked child that has dropped to `nobody` (no exec: the interpreter
    need not be readable by nobody), with a home and a directory nobody can reach."""
    import pwd
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="avfs-unreadable-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)
        d, home_dir = top / "locked", top / "home"
        d.mkdir()
        home_dir.mkdir()
        (d / "secret.txt").write_text("x\n")
        d.chmod(0)
        user = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
        if user is not None:
            os.chown(home_dir, user.pw_uid, user.pw_gid)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 3
            try:
                os.close(r)
                if user is not None:
                    os.setgroups([])
                    os.setgid(user.pw_gid)
                    os.setuid(user.pw_uid)
                try:
                    q.up(Home(str(home_dir), author=AUTHOR, mounts=MOUNT_SIDE), str(d))
                    os.write(w, b"no error")
                except PermissionDeniedError as exc:
                    os.write(w, b"permission_denied " + str(exc.message).encode())
                    code = 0
                except BaseException as exc:
                    os.write(w, f"{type(exc).__name__}: {exc}".encode())
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as fh:
            said = fh.read().decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, said
        assert said.startswith("permission_denied") and str(d) in said
        assert not (home_dir / "vaults").exists() or not any((home_dir / "vaults").iterdir())
    finally:
        (top / "locked").chmod(0o755)
        shutil.rmtree(top, ignore_errors=True)


def test_down_refuses_a_busy_mount_and_loses_nothing(
    qhome: Home, proj: Path, cli: Callable[..., CliResult]
) -> None:
    up = q.up(qhome, str(proj), agent="busy")
    assert up.mountpoint is not None
    mp = up.mountpoint
    Path(mp, "work.txt").write_text("unsaved\n")
    holder = subprocess.Popen(["sleep", "60"], cwd=mp)
    try:
        res = cli("--json", "down", mp, "--discard")
        doc = check(res)
        assert res.code == 75 and doc["error"]["code"] == "busy"
        assert "nothing was changed" in doc["error"]["message"]
        assert holder.pid in [h["pid"] for h in doc["error"]["details"]["holders"]]
        with pytest.raises(BusyError):
            q.down(qhome, qhome.vault("proj"), "busy", action="keep")
        assert mounts.mounted_at(mp) and Path(mp, "work.txt").read_text() == "unsaved\n"
        vault = _fresh(qhome).vault("proj")
        assert vault.has_fork("busy") and vault.workspace("busy").is_dirty()
    finally:
        holder.kill()
        holder.wait()
    res2 = q.down(_fresh(qhome), _fresh(qhome).vault("proj"), "busy", action="keep")
    assert res2.unmounted and res2.fork_deleted
    assert _fresh(qhome).vault("proj").workspace("main").read("work.txt") == b"unsaved\n"


def test_unmount_names_the_process_holding_a_busy_mount(qhome: Home, proj: Path, cli_proc: Any) -> None:
    up = q.up(qhome, str(proj), agent="held")
    assert up.mountpoint is not None
    mp = up.mountpoint
    holder = subprocess.Popen(["sleep", "60"], cwd=mp)
    try:
        res = cli_proc("--json", "unmount", mp)
        assert res.code == 75
        err = res.json()["error"]
        assert err["code"] == "busy" and f"sleep (pid {holder.pid}: cwd)" in err["message"]
        assert holder.pid in [h["pid"] for h in err["details"]["holders"]]
        res = cli_proc("unmount", mp)
        assert res.code == 75 and f"sleep (pid {holder.pid}: cwd)" in res.err
        assert mounts.mounted_at(mp)
    finally:
        holder.kill()
        holder.wait()
    assert cli_proc("unmount", mp).code == 0 and not mounts.mounted_at(mp)


def test_down_without_an_argument_says_which_mounts_are_live(
    qhome: Home, proj: Path, tmp_path: Path, cli_proc: Any
) -> None:
    up = q.up(qhome, str(proj), agent="a1")
    assert up.mountpoint is not None
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.txt").write_text("b\n")
    q.up(_fresh(qhome), str(other), agent="b1", mount=False)
    # in `other`, whose vault has no mount, while proj's is live: not "nothing is mounted"
    res = cli_proc("down", "--yes", cwd=str(other))
    assert res.code == 2 and "nothing is mounted" not in res.err
    assert "vault other, made from this directory, has none; other mounts: proj:a1 at " in res.err
    doc = cli_proc("--json", "down", cwd=str(other)).json()
    assert doc["error"]["details"]["vault_here"] == "other"
    assert [m["fork"] for m in doc["error"]["details"]["mounts"]] == ["a1"]
    assert mounts.mounted_at(up.mountpoint)  # nothing was taken down
    # in the project's own directory, the one live mount of its vault
    res = cli_proc("down", "--yes", cwd=str(proj))
    assert res.code == 0, res.err
    assert not mounts.mounted_at(up.mountpoint)


def test_up_of_a_directory_holding_only_a_nested_repository_says_so(
    qhome: Home, tmp_path: Path, cli_proc: Any
) -> None:
    outer = tmp_path / "outer"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    (inner / "f.txt").write_text("hi\n")
    subprocess.run(["git", "init", "-q", "-b", "main", str(inner)], check=True)
    subprocess.run(["git", "-C", str(inner), "add", "."], check=True)
    subprocess.run(["git", "-C", str(inner), "commit", "-qm", "one"], check=True)
    r = cli_proc("up", str(outer))
    assert r.code == 0, r.err
    assert f"warning: vault outer is empty: {outer} holds only git repositories of their own (inner)" in r.err
    assert f"import the repository itself: avfs up {inner}" in r.err
    r = cli_proc("vault", "create", "again", "--from", str(outer))
    assert r.code == 0 and f"avfs vault create again-2 --from {inner}" in r.err
    # a repository beside other files: those are imported, and the warning names it (not
    # one that .gitignore leaves out, like a virtualenv's checkout of a package)
    (tmp_path / "mixed" / "sub").mkdir(parents=True)
    (tmp_path / "mixed" / "top.txt").write_text("t\n")
    (tmp_path / "mixed" / ".gitignore").write_text(".venv/\n")
    subprocess.run(["git", "init", "-q", str(tmp_path / "mixed" / "sub")], check=True)
    subprocess.run(["git", "init", "-q", str(tmp_path / "mixed" / ".venv" / "src" / "pkg")], check=True)
    doc = cli_proc("--json", "up", str(tmp_path / "mixed")).json()
    assert doc["warnings"] == [
        f"files not imported: git repositories of their own inside {tmp_path / 'mixed'} (sub)"
    ]


def test_down_keep_with_conflicts_keeps_the_fork(
    qhome: Home, proj: Path, cli: Callable[..., CliResult]
) -> None:
    up = q.up(qhome, str(proj), agent="a1")
    assert up.mountpoint is not None
    Path(up.mountpoint, "a.txt").write_text("agent's version\n")
    main = qhome.vault("proj").workspace("main")
    main.write("a.txt", b"main's version\n")
    checkpoint.save(qhome.vault("proj"), "main")
    res = cli("--json", "down", up.mountpoint, "--keep")
    doc = single_document(res)
    validate(doc)
    assert res.code == 3 and doc["conflicted"] and doc["merge"]["status"] == "conflicts"
    assert doc["merge"]["conflicts"][0]["path"] == "a.txt" and not doc["fork_deleted"]
    vault = _fresh(qhome).vault("proj")
    assert vault.workspace("a1").read("a.txt") == b"agent's version\n"
    assert vault.workspace("main").read("a.txt") == b"main's version\n"


# -- export ----------------------------------------------------------------------------------


def test_export_keeps_modes_symlinks_and_uncheckpointed_changes(
    qhome: Home, proj: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    q.up(qhome, str(proj), agent="a1", mount=False)
    ws = qhome.vault("proj").workspace("a1")
    ws.write("new/deep.txt", b"uncheckpointed\n")
    out = tmp_path / "out"
    doc = check(cli("--json", "export", "proj:a1", str(out)))
    assert doc["kind"] == "export" and doc["dirty"] and doc["files"] == 4 and doc["symlinks"] == 1
    assert (out / "new" / "deep.txt").read_text() == "uncheckpointed\n"
    assert os.readlink(out / "link") == "a.txt"
    assert os.stat(out / "run.sh").st_mode & 0o111 and not os.stat(out / "a.txt").st_mode & 0o111

    doc = check(cli("--json", "export", "proj:a1", str(out)))
    assert doc["error"]["code"] == "usage" and "not empty" in doc["error"]["message"]
    (out / "a.txt").write_text("local edit\n")
    (out / "link").unlink()
    (out / "link").mkdir()  # a directory where the fork has a symlink
    (out / "extra").write_text("stays\n")
    check(cli("--json", "export", "proj:a1", str(out), "--force"))
    assert (out / "a.txt").read_text() == "one\ntwo\n" and os.readlink(out / "link") == "a.txt"
    assert (out / "extra").read_text() == "stays\n"


# -- apply -----------------------------------------------------------------------------------


def _agent_work(home: Home, fork: str) -> None:
    ws = home.vault("proj").workspace(fork)
    ws.write("a.txt", b"one\ntwo\nthree\n")
    ws.write("src/new.py", b"y = 2\n")
    ws.write("tool.sh", b"#!/bin/sh\n", mode=0o755)
    ws.remove("src/util.py")
    ws.remove("link")
    ws.symlink("src/new.py", "link")
    ws.write("bin.dat", bytes(range(256)))


def _tree(d: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in sorted(d.rglob("*")):
        rel = p.relative_to(d).as_posix()
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_file():
            out[rel] = ("file", p.read_bytes(), bool(p.stat().st_mode & stat.S_IXUSR))
    return out


def test_apply_copies_the_fork_into_the_origin(
    qhome: Home, proj: Path, cli: Callable[..., CliResult]
) -> None:
    q.up(qhome, str(proj), agent="a1", mount=False)
    _agent_work(qhome, "a1")
    (proj / "unrelated.txt").write_text("a person's file\n")  # changes elsewhere are fine
    doc = check(cli("--json", "apply", "proj:a1"))
    assert doc["kind"] == "apply" and doc["mode"] == "copy" and doc["dir"] == str(proj)
    assert {c["path"]: c["status"] for c in doc["changes"]} == {
        "a.txt": "modified",
        "bin.dat": "added",
        "link": "modified",
        "src/new.py": "added",
        "src/util.py": "deleted",
        "tool.sh": "added",
    }
    exported = proj.parent / "exported"
    q.export(_fresh(qhome).vault("proj"), "a1", str(exported))
    got = _tree(proj)
    assert got.pop("unrelated.txt") == ("file", b"a person's file\n", False)
    assert got == _tree(exported)

    # more work on the fork: only the new change is applied, nothing counts as a conflict
    vault = _fresh(qhome).vault("proj")
    vault.workspace("a1").write("a.txt", b"four\n")
    res = q.apply(vault, "a1")
    assert [(c.path, c.applied) for c in res.changes] == [("a.txt", True)]
    assert (proj / "a.txt").read_text() == "four\n"
    # a later `up` brings the directory's state (the applied work and the person's file)
    # into main, which had none of it and no changes of its own
    again = q.up(_fresh(qhome), str(proj), mount=False)
    assert again.refreshed and not again.warnings
    main = _fresh(qhome).vault("proj").workspace("main")
    assert main.read("unrelated.txt") == b"a person's file\n" and main.read("a.txt") == b"four\n"
    assert not q.up(_fresh(qhome), str(proj), mount=False).origin_changed


def test_apply_refuses_when_the_directory_changed_the_same_paths(
    qhome: Home, proj: Path, cli: Callable[..., CliResult]
) -> None:
    q.up(qhome, str(proj), agent="a1", mount=False)
    _agent_work(qhome, "a1")
    (proj / "a.txt").write_text("a person's edit\n")
    (proj / "src" / "new.py").write_text("z = 3\n")
    before = _tree(proj)
    res = cli("--json", "apply", "proj:a1")
    doc = check(res)
    assert res.code == 3 and doc["error"]["code"] == "conflict"
    assert {c["path"]: c["reason"] for c in doc["error"]["details"]["conflicts"]} == {
        "a.txt": "changed in the target",
        "src/new.py": "added in the target",
    }
    assert _tree(proj) == before  # nothing written
    with pytest.raises(ConflictError):
        q.apply(_fresh(qhome).vault("proj"), "a1", patch=str(proj.parent / "x.patch"))

    doc = check(cli("--json", "apply", "proj:a1", "--force"))
    assert doc["forced"] and {c["path"] for c in doc["conflicts"]} == {"a.txt", "src/new.py"}
    assert (proj / "a.txt").read_text() == "one\ntwo\nthree\n"


def test_apply_patch_is_a_git_apply_patch(
    qhome: Home, proj: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    q.up(qhome, str(proj), agent="a1", mount=False)
    _agent_work(qhome, "a1")
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(proj), str(copy)], check=True)
    patch = tmp_path / "a1.patch"
    doc = check(cli("--json", "apply", "proj:a1", "--patch", str(patch)))
    assert doc["mode"] == "patch" and doc["patch"] == str(patch)
    assert not any(c["applied"] for c in doc["changes"])
    assert _tree(proj) == _tree(copy)  # the directory is untouched
    text = patch.read_text()
    assert "diff --git a/a.txt b/a.txt" in text and "GIT binary patch" in text
    subprocess.run(["git", "apply", str(patch)], cwd=copy, check=True)
    exported = tmp_path / "exported"
    q.export(_fresh(qhome).vault("proj"), "a1", str(exported))
    assert _tree(copy) == _tree(exported)


def test_apply_needs_a_vault_made_by_up(qhome: Home, proj: Path) -> None:
    vault = qhome.create_vault("plain", from_dir=str(proj))
    with pytest.raises(UsageError, match="does not know the directory"):
        q.apply(vault, "main")


# -- apply never writes outside the target, into its .git, or through its symlinks ------------


def _plumbing_commit(home: Home, fork: str, entries: dict[bytes, Any]) -> None:
    """Put a commit on ``fork`` whose root tree is ``entries`` (name -> blob bytes or a
    nested dict), written with raw objects as git plumbing (a push, a clone) can: no check
    of the names ('..', '.git')."""
    import pygit2

    vault = home.vault("proj")
    repo = pygit2.Repository(vault.path)

    def tree(ents: dict[bytes, Any]) -> bytes:
        rows = []
        for name, val in sorted(ents.items()):
            if isinstance(val, dict):
                rows.append(b"40000 " + name + b"\0" + tree(val))
            else:
                rows.append(b"100644 " + name + b"\0" + repo.create_blob(val).raw)
        return repo.odb.write(pygit2.enums.ObjectType.TREE, b"".join(rows)).raw

    tip = vault.workspace(fork).tip()
    assert tip is not None
    sig = pygit2.Signature("agent", "agent@example.invalid")
    oid = repo.create_commit(None, sig, sig, "plumbing", pygit2.Oid(raw=tree(entries)), [pygit2.Oid(hex=tip)])
    repo.references.create(f"refs/heads/{fork}", oid, force=True)


def test_apply_refuses_paths_that_leave_the_target_or_reach_into_its_git(
    qhome: Home, proj: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    q.up(qhome, str(proj), agent="a1", mount=False)
    (proj / ".git").mkdir()  # the project is a checkout: a hook there runs on `git checkout`
    hook = b"#!/bin/sh\necho pwned\n"
    _plumbing_commit(
        _fresh(qhome),
        "a1",
        {
            b"a.txt": b"changed by the agent\n",  # a good change: not written either
            b"src": {b"util.py": b"x = 1\n"},
            b"run.sh": b"#!/bin/sh\necho run\n",
            b"..": {b"..": {b"ESCAPED.txt": b"outside\n"}},
            b".git": {b"hooks": {b"post-checkout": hook}},
            b".GIT": {b"config": b"[core]\n"},
            b"bad\x1bname": b"x\n",
        },
    )
    try:
        _refused_unsafe_paths(qhome, proj, tmp_path, cli)
    finally:  # git fsck (the suite's check of every vault) rightly refuses those trees
        shutil.rmtree(_fresh(qhome).vault("proj").path)


def _refused_unsafe_paths(qhome: Home, proj: Path, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    before = _tree(proj)
    with pytest.raises(InvalidPathError, match="nothing was applied") as err:
        q.apply(_fresh(qhome).vault("proj"), "a1")
    assert {p["path"] for p in err.value.details["paths"]} == {
        "../../ESCAPED.txt",
        ".git/hooks/post-checkout",
        ".GIT/config",
        "bad\x1bname",
    }
    assert _tree(proj) == before and not (proj / ".git" / "hooks").exists()
    assert not (tmp_path / "ESCAPED.txt").exists() and not (tmp_path.parent / "ESCAPED.txt").exists()
    # the CLI and patch mode refuse the same way (a patch would carry the paths to `git apply`)
    res = cli("--json", "apply", "proj:a1")
    assert res.code != 0 and check(res)["error"]["code"] == "invalid_path"
    patch = tmp_path / "a1.patch"
    with pytest.raises(InvalidPathError):
        q.apply(_fresh(qhome).vault("proj"), "a1", patch=str(patch))
    assert not patch.exists() and _tree(proj) == before


def test_apply_never_writes_or_deletes_through_a_symlink_in_the_target(
    qhome: Home, proj: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (proj / "data").mkdir()
    (proj / "data" / "x").write_text("tracked\n")
    q.up(qhome, str(proj), agent="a1", mount=False)
    # made after the import: not in the vault (not ignored either: the fork's cache/x is a
    # change that apply must not write through it)
    (proj / "cache").symlink_to(elsewhere)
    ws = _fresh(qhome).vault("proj").workspace("a1")
    ws.write("cache/x", b"from the agent\n")
    ws.write("a.txt", b"agent\n")
    with pytest.raises(ConflictError) as err:
        q.apply(_fresh(qhome).vault("proj"), "a1")
    assert err.value.details["conflicts"] == [
        {"path": "cache/x", "reason": "beyond the symbolic link cache in the target"}
    ]
    assert list(elsewhere.iterdir()) == [] and (proj / "a.txt").read_text() == "one\ntwo\n"

    # a deletion beneath a symlink deletes nothing it points at (even a file equal to the
    # fork's base version), and is a conflict too
    shutil.move(str(proj / "data" / "x"), str(elsewhere / "x"))
    (proj / "data").rmdir()
    (proj / "data").symlink_to(elsewhere)
    ws = _fresh(qhome).vault("proj").workspace("a1")
    ws.remove("cache/x")
    ws.remove("data/x")
    with pytest.raises(ConflictError) as err:
        q.apply(_fresh(qhome).vault("proj"), "a1")
    assert [c["path"] for c in err.value.details["conflicts"]] == ["data/x"]
    # --force overrides: the symlink is replaced (a write) or left (a deletion), never followed
    ws.write("cache/x", b"from the agent\n")
    res = q.apply(_fresh(qhome).vault("proj"), "a1", force=True)
    assert res.forced and {c.path for c in res.conflicts} == {"cache/x", "data/x"}
    assert sorted(p.name for p in elsewhere.iterdir()) == ["x"]
    assert (elsewhere / "x").read_text() == "tracked\n"
    assert not (proj / "cache").is_symlink() and (proj / "cache" / "x").read_text() == "from the agent\n"
    assert (proj / "data").is_symlink()


def test_up_from_url_under_a_taken_name_says_why(qhome: Home, tmp_path: Path) -> None:
    """`avfs vault clone --lazy URL big` then `avfs up --from-url URL` made big-2 with no word
    (only `up` finds its own vaults again): a warning says why."""
    from avfs_git.ops.upremote import up_from_url

    src = tmp_path / "src"
    src.mkdir()
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    (src / "f").write_text("f\n")
    subprocess.run(["git", "-C", str(src), "add", "f"], check=True)
    subprocess.run(["git", "-C", str(src), "commit", "-qm", "f"], check=True)
    bare = tmp_path / "big.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(bare)], check=True)
    qhome.create_vault("big")  # made otherwise (`vault create`, `vault clone`)
    res = up_from_url(qhome, str(bare), mount=False)
    assert res.vault == "big-2"
    assert res.warnings == (
        "vault big is taken (not made from this URL by `avfs up`): this URL's vault is big-2",
    )
    assert up_from_url(qhome, str(bare), mount=False).warnings == ()  # found again: nothing to say


def test_up_from_url_adopts_the_vault_vault_clone_made(qhome: Home, tmp_path: Path) -> None:
    """`avfs vault clone URL big`, then `avfs up --from-url URL`: big-2 was a second clone;
    the vault whose remote `origin` is that URL is adopted now."""
    from avfs_git.ops.upremote import up_from_url

    src = tmp_path / "src"
    src.mkdir()
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    (src / "f").write_text("f\n")
    subprocess.run(["git", "-C", str(src), "add", "f"], check=True)
    subprocess.run(["git", "-C", str(src), "commit", "-qm", "f"], check=True)
    bare = tmp_path / "big.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(bare)], check=True)
    qhome.clone_vault(str(bare), "big")
    res = up_from_url(qhome, str(bare), mount=False)
    assert (res.vault, res.vault_created) == ("big", False)
    assert res.warnings == ("vault big was cloned from this URL (`vault clone`): `up` uses it from now on",)
    assert [v.name for v in qhome.list_vaults()] == ["big"]
    assert up_from_url(qhome, str(bare), mount=False).warnings == ()

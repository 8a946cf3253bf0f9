"""Path policies in the kernel's path: a mounted fork attacked with every call a program
can make (write, create, O_TRUNC, an O_APPEND-less write, truncate, chmod, utime, unlink,
rename into and out of a protected subtree, hard and symbolic links, mkdir), then the fork
and its next checkpoint checked: nothing protected changed, nothing protected recorded.
The errno each backend answers is the table of docs/policy.md ("What each backend
guarantees"); this test is its source."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import AvfsError
from avfs_git.core.operations import checkpoint, merge
from avfs_git.ops import mounts

from .test_fuse import require_fuse
from .test_overlay import require_overlay
from .test_pathpolicy import FILES, POLICY, protect, tree_of


@pytest.fixture(params=["fuse"])
def mounted(
    request: pytest.FixtureRequest, home: Any, vault: Any, tmp_path: Path
) -> Iterator[tuple[Any, Path]]:
    """Fork ``main`` holding FILES, protected by POLICY, mounted by each backend."""
    require_fuse()
    if request.param == "overlay":
        require_overlay()
    ws = vault.workspace("main")
    for p, data in FILES.items():
        ws.write(p, data)
    checkpoint.save(vault, "main", message="files")
    protect(vault)
    mp = tmp_path / "mnt"
    mp.mkdir()
    info = mounts.mount(home, vault, "main", str(mp), backend=request.param)
    assert info.backend == request.param
    try:
        yield vault, mp
    finally:
        try:
            mounts.unmount(home, vault, "main", lazy=True)
        finally:
            if mounts.mounted_at(str(mp)):
                subprocess.run(["umount", "-l", str(mp)], check=False)


def _errno(call: Callable[[], object]) -> int:
    try:
        got = call()
    except OSError as exc:
        return exc.errno or -1
    if isinstance(got, int) and got > 2:
        os.close(got)  # an open that succeeded
    return 0


def _write_at(path: Path, flags: int, data: bytes = b"x", offset: int | None = None) -> None:
    fd = os.open(path, flags)
    try:
        if offset is None:
            os.write(fd, data)
        else:
            os.pwrite(fd, data, offset)
    finally:
        os.close(fd)


def attacks(mp: Path) -> dict[str, Callable[[], object]]:
    ro, ro_dir, hid, app = mp / "migrations/0001.sql", mp / "migrations", mp / ".env", mp / "logs/app.log"
    src = mp / "src/app.py"
    return {
        # read_only
        "ro open O_WRONLY": lambda: os.open(ro, os.O_WRONLY),
        "ro open O_RDWR": lambda: os.open(ro, os.O_RDWR),
        "ro open O_TRUNC": lambda: os.open(ro, os.O_WRONLY | os.O_TRUNC),
        "ro open O_APPEND": lambda: os.open(ro, os.O_WRONLY | os.O_APPEND),
        "ro truncate": lambda: os.truncate(ro, 0),
        "ro chmod": lambda: os.chmod(ro, 0o755),
        "ro utime": lambda: os.utime(ro, (0, 0)),
        "ro unlink": lambda: os.unlink(ro),
        "ro create": lambda: os.open(ro_dir / "0002.sql", os.O_WRONLY | os.O_CREAT, 0o644),
        "ro mkdir": lambda: os.mkdir(ro_dir / "sub"),
        "ro symlink": lambda: os.symlink("0001.sql", ro_dir / "l"),
        "ro rename out": lambda: os.rename(ro, mp / "src/stolen.sql"),
        "ro rename in": lambda: os.rename(src, ro_dir / "app.py"),
        "ro rename over": lambda: os.rename(src, ro),
        "ro rename dir": lambda: os.rename(ro_dir, mp / "old-migrations"),
        "ro rmdir": lambda: os.rmdir(ro_dir),
        "ro link out": lambda: os.link(ro, mp / "src/hard.sql"),
        "ro link in": lambda: os.link(src, ro_dir / "hard.py"),
        # hidden
        "hidden stat": lambda: os.stat(hid),
        "hidden open": lambda: os.open(hid, os.O_RDONLY),
        "hidden nested open": lambda: os.open(mp / "src/.env", os.O_RDONLY),
        "hidden dir entry": lambda: os.open(mp / "secrets/key.pem", os.O_RDONLY),
        "hidden create": lambda: os.open(hid, os.O_WRONLY | os.O_CREAT, 0o644),
        "hidden create in dir": lambda: os.open(mp / "secrets/new", os.O_WRONLY | os.O_CREAT, 0o644),
        "hidden mkdir": lambda: os.mkdir(mp / "secrets/sub"),
        "hidden rename onto": lambda: os.rename(src, hid),
        "hidden unlink": lambda: os.unlink(hid),
        "hidden rmdir parent": lambda: os.rmdir(mp / "src"),
        # append_only
        "append open O_WRONLY": lambda: os.open(app, os.O_WRONLY),
        "append open O_TRUNC": lambda: os.open(app, os.O_WRONLY | os.O_APPEND | os.O_TRUNC),
        "append truncate": lambda: os.truncate(app, 0),
        "append chmod": lambda: os.chmod(app, 0o755),
        "append unlink": lambda: os.unlink(app),
        "append rename": lambda: os.rename(app, mp / "logs/old.txt"),
        "append rename over": lambda: os.rename(src, app),
    }


# what each backend answers (docs/policy.md, "What each backend guarantees")
EXPECTED: dict[str, dict[str, int]] = {
    "fuse": {
        **{k: errno.EROFS for k in attacks(Path("/")) if k.startswith("ro ")},
        "ro rmdir": errno.ENOTEMPTY,  # not empty (and its files are read-only)
        "ro link out": errno.EPERM,  # the pure-FUSE mount makes no hard links at all
        "ro link in": errno.EPERM,
        **{k: errno.ENOENT for k in attacks(Path("/")) if k.startswith("hidden ")},
        "hidden create": errno.EACCES,
        "hidden create in dir": errno.EACCES,
        "hidden mkdir": errno.EACCES,
        "hidden rename onto": errno.EACCES,
        "hidden rmdir parent": errno.ENOTEMPTY,  # src/.env is there, unseen
        **{k: errno.EPERM for k in attacks(Path("/")) if k.startswith("append ")},
    },
}


def test_every_kernel_call_on_a_protected_path_fails_and_nothing_is_recorded(mounted: Any) -> None:
    vault, mp = mounted
    backend = mounts.check(vault, "main").backend  # type: ignore[union-attr]
    got = {name: _errno(call) for name, call in attacks(mp).items()}
    assert got == EXPECTED[backend]
    # what the rules allow still works: an append (also by pwrite on an O_APPEND descriptor,
    # which Linux puts at the end), a new append-only file, an ordinary write
    with open(mp / "logs/app.log", "ab") as fh:
        fh.write(b"line 2\n")
    _write_at(mp / "logs/app.log", os.O_WRONLY | os.O_APPEND, b"line 3\n", offset=0)
    (mp / "logs/new.log").write_bytes(b"first\n")
    (mp / "src/app.py").write_bytes(b"print('changed')\n")
    listed = set(os.listdir(mp))
    assert ".env" not in listed and {"src", "migrations", "secrets", "logs"} <= listed
    assert os.listdir(mp / "secrets") == [] and ".env" not in os.listdir(mp / "src")
    found = subprocess.run(["find", str(mp), "-name", "*.pem"], capture_output=True, text=True).stdout
    grep = subprocess.run(["grep", "-r", "s3cret", str(mp)], capture_output=True, text=True)
    assert found == "" and grep.returncode == 1 and grep.stdout == ""
    res = checkpoint.save(vault, "main", message="after the attacks")
    assert res.created and res.not_recorded == ()
    tree = tree_of(vault)
    for p in ("migrations/0001.sql", ".github/workflows/ci.yml", ".env", "src/.env", "secrets/key.pem"):
        assert tree[p] == FILES[p], p
    assert tree["logs/app.log"] == b"line 1\nline 2\nline 3\n"
    assert tree["logs/new.log"] == b"first\n" and tree["src/app.py"] == b"print('changed')\n"
    assert not {"src/stolen.sql", "migrations/app.py", "migrations/0002.sql", "src/hard.sql"} & set(tree)


def test_git_status_in_the_mount_does_not_show_hidden_files(mounted: Any) -> None:
    _, mp = mounted
    st = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=mp, capture_output=True, text=True
    )
    assert st.returncode == 0 and st.stdout == "", st.stdout


def test_a_mount_refuses_to_start_with_a_pattern_that_does_not_parse(
    home: Any, vault: Any, tmp_path: Path
) -> None:
    require_fuse()
    vault.workspace("main").write("a", b"x")
    checkpoint.save(vault, "main", message="a")
    protect(vault, 'version = 1\n[paths]\nread_only = ["ok/**", "bad\\\\"]\n')
    mp = tmp_path / "mnt"
    mp.mkdir()
    with pytest.raises(AvfsError) as info:
        mounts.mount(home, vault, "main", str(mp), backend="fuse")
    assert info.value.code == "policy_invalid" and "bad" in info.value.message
    assert not mounts.mounted_at(str(mp)) and mounts.check(vault, "main") is None


def test_git_status_without_fsmonitor_does_not_show_hidden_files(mounted: Any) -> None:
    _, mp = mounted
    st = subprocess.run(
        ["git", "-c", "core.fsmonitor=false", "status", "--porcelain"], cwd=mp, capture_output=True, text=True
    )
    assert st.returncode == 0 and st.stdout == "", st.stdout


# -- the overlay backend: read_only rules in the kernel (read-only binds) --------------------------
RO_POLICY = """version = 1
[paths]
read_only = ["migrations/**", "*.lock", "/.github/"]
"""
RO_FILES = {
    "src/app.py": b"print('app')\n",
    "migrations/0001.sql": b"create table t;\n",
    "deps/poetry.lock": b"locked\n",
    ".github/workflows/ci.yml": b"on: push\n",
}


def _mount_ro(home: Any, vault: Any, tmp_path: Path) -> tuple[Any, Path]:
    """RO_FILES checkpointed, RO_POLICY set, the fork mounted with the overlay backend."""
    require_fuse()
    require_overlay()
    ws = vault.workspace("main")
    for p, data in RO_FILES.items():
        ws.write(p, data)
    checkpoint.save(vault, "main", message="files")
    protect(vault, RO_POLICY)
    mp = tmp_path / "mnt"
    mp.mkdir()
    info = mounts.mount(home, vault, "main", str(mp), backend="overlay")
    assert info.backend == "overlay"
    return info, mp


@pytest.fixture
def ro_overlay(home: Any, vault: Any, tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    _info, mp = _mount_ro(home, vault, tmp_path)
    try:
        yield vault, mp
    finally:
        try:
            mounts.unmount(home, vault, "main", lazy=True)
        finally:
            if mounts.mounted_at(str(mp)):
                subprocess.run(["umount", "-l", str(mp)], check=False)


def test_the_overlay_backend_holds_read_only_rules_in_the_kernel(ro_overlay: Any, tmp_path: Path) -> None:
    vault, mp = ro_overlay
    calls = {k: v for k, v in attacks(mp).items() if k.startswith("ro ")}
    calls["ro lock rewrite"] = lambda: os.open(mp / "deps/poetry.lock", os.O_WRONLY | os.O_TRUNC)
    calls["ro lock unlink"] = lambda: os.unlink(mp / "deps/poetry.lock")
    calls["ro workflows dir create"] = lambda: os.open(mp / ".github/x", os.O_WRONLY | os.O_CREAT, 0o644)
    got = {name: _errno(call) for name, call in calls.items()}
    assert got == {
        **{k: errno.EROFS for k in calls},
        # across a bind mount's edge: the kernel's EXDEV (`mv` then copies, and its unlink of
        # the source is EROFS); of the bound directory itself: EBUSY (a mount point)
        "ro rename out": errno.EXDEV,
        "ro rename in": errno.EXDEV,
        "ro rename over": errno.EXDEV,
        "ro link out": errno.EXDEV,
        "ro rename dir": errno.EBUSY,
        "ro rmdir": errno.EBUSY,
        "ro lock unlink": errno.EBUSY,
    }
    mv = subprocess.run(["mv", str(mp / "migrations/0001.sql"), str(mp / "src/")], capture_output=True)
    assert mv.returncode != 0 and (mp / "migrations/0001.sql").read_bytes() == RO_FILES["migrations/0001.sql"]
    (mp / "src/stolen.sql").unlink(missing_ok=True)  # what mv copied before its unlink failed
    (mp / "src/app.py").write_bytes(b"print('changed')\n")
    res = checkpoint.save(vault, "main", message="after the attacks")
    assert res.created and res.not_recorded == ()
    tree = tree_of(vault)
    for p in ("migrations/0001.sql", "deps/poetry.lock", ".github/workflows/ci.yml"):
        assert tree[p] == RO_FILES[p], p
    assert tree["src/app.py"] == b"print('changed')\n" and "migrations/app.py" not in tree
    # a new path a glob holds, outside a bound directory, is made (the kernel has no bind
    # there yet): a checkpoint never records it, and says so
    (mp / "new.lock").write_bytes(b"x\n")
    res = checkpoint.save(vault, "main", message="lock")
    assert [(n.path, n.kind) for n in res.not_recorded] == [("new.lock", "path_read_only")]
    assert "new.lock" not in tree_of(vault)

    # a person's update from outside (pushed to a branch, merged into the mounted fork) is
    # not refused: the mount shows it, written through the overlay without the binds
    clone = tmp_path / "person"
    subprocess.run(["git", "clone", "-q", "-b", "main", vault.path, str(clone)], check=True)
    (clone / "migrations" / "0001.sql").write_text("create table t2;\n")
    git = ["git", "-c", "user.name=P", "-c", "user.email=p@example.invalid"]
    subprocess.run([*git, "commit", "-qam", "person"], cwd=clone, check=True)
    subprocess.run(["git", "push", "-q", "origin", "HEAD:refs/heads/people"], cwd=clone, check=True)
    (mp / "new.lock").unlink()
    res_m = merge.merge(vault, "people", "main")
    assert res_m.status in ("fast_forward", "merged"), res_m
    assert (mp / "migrations/0001.sql").read_bytes() == b"create table t2;\n"
    assert _errno(lambda: os.open(mp / "migrations/0001.sql", os.O_WRONLY)) == errno.EROFS


def test_hidden_or_append_only_rules_mount_with_the_pure_fuse_backend(
    home: Any, vault: Any, tmp_path: Path
) -> None:
    require_fuse()
    require_overlay()
    vault.workspace("main").write("a", b"x")
    checkpoint.save(vault, "main", message="a")
    protect(vault, 'version = 1\n[paths]\nhidden = [".env"]\n')
    mp = tmp_path / "mnt"
    mp.mkdir()
    with pytest.raises(AvfsError) as info:
        mounts.mount(home, vault, "main", str(mp), backend="overlay")
    assert info.value.code == "mount_failed" and "hidden" in info.value.message
    assert mounts.check(vault, "main") is None
    got = mounts.mount(home, vault, "main", str(mp), backend="auto")
    try:
        assert got.backend == "fuse"
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


# -- proxy exec: the sandbox sees the same view ------------------------------------------------------
ATTACK = r"""
import errno, json, os, sys
mp = os.getcwd()
out = {}
def t(name, f):
    try:
        r = f()
        if isinstance(r, int) and r > 2:
            os.close(r)
        out[name] = 0
    except OSError as e:
        out[name] = e.errno
P = lambda p: os.path.join(mp, p)
t("ro write", lambda: os.open(P("migrations/0001.sql"), os.O_WRONLY | os.O_TRUNC))
t("ro append", lambda: os.open(P("migrations/0001.sql"), os.O_WRONLY | os.O_APPEND))
t("ro create", lambda: os.open(P("migrations/0002.sql"), os.O_WRONLY | os.O_CREAT, 0o644))
t("ro rename out", lambda: os.rename(P("migrations/0001.sql"), P("src/x.sql")))
t("ro rename in", lambda: os.rename(P("src/app.py"), P("migrations/app.py")))
t("ro unlink", lambda: os.unlink(P("migrations/0001.sql")))
t("ro chmod", lambda: os.chmod(P("migrations/0001.sql"), 0o777))
t("ro truncate", lambda: os.truncate(P("migrations/0001.sql"), 0))
t("ro link", lambda: os.link(P("migrations/0001.sql"), P("src/hard")))
for extra in sys.argv[1:]:
    kind, path = extra.split(":", 1)
    if kind == "read":
        t("read " + path, lambda: open(P(path), "rb").read())
    elif kind == "write":
        t("write " + path, lambda: open(path if path.startswith("/") else P(path), "ab").write(b"x"))
    elif kind == "trunc":
        t("trunc " + path, lambda: os.open(P(path), os.O_WRONLY | os.O_TRUNC))
out["listed"] = sorted(os.listdir(mp))
with open(P("src/app.py"), "w") as fh:
    fh.write("print('by the agent')\n")
print(json.dumps(out))
"""


def _proxy_exec(home: Any, mp: Path, *args: str) -> dict[str, Any]:
    import json
    import sys

    (mp / "attack.py").write_text(ATTACK)
    r = subprocess.run(
        [sys.executable, "-m", "avfs_git", "--home", home.path, "--json", "proxy", "exec", "--",
         "python3", "attack.py", *args],
        cwd=mp, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    doc: dict[str, Any] = json.loads(r.stdout)
    assert doc["result"] is not None and doc["result"]["exit_code"] == 0, doc
    return doc


def test_proxy_exec_in_the_pure_fuse_mount_meets_every_rule(mounted: Any, home: Any) -> None:
    vault, mp = mounted
    policy_file = str(Path(vault.path, "avfs", "policy.toml"))
    doc = _proxy_exec(
        home, mp, "read:.env", "read:secrets/key.pem", "write:.env", "trunc:logs/app.log",
        "write:logs/app.log", f"write:{policy_file}", f"read:{policy_file}",
    )  # fmt: skip
    import json

    got = json.loads(doc["result"]["stdout"])
    listed = got.pop("listed")
    assert ".env" not in listed and "migrations" in listed
    assert got == {
        "ro write": errno.EROFS, "ro append": errno.EROFS, "ro create": errno.EROFS,
        "ro rename out": errno.EROFS, "ro rename in": errno.EROFS, "ro unlink": errno.EROFS,
        "ro chmod": errno.EROFS, "ro truncate": errno.EROFS, "ro link": errno.EPERM,
        "read .env": errno.ENOENT, "read secrets/key.pem": errno.ENOENT, "write .env": errno.EACCES,
        "trunc logs/app.log": errno.EPERM, "write logs/app.log": 0,  # "ab": an append
        # the policy file is not in the sandbox's view (<vault>/avfs: empty, read-only there)
        f"write {policy_file}": errno.EROFS, f"read {policy_file}": errno.ENOENT,
    }  # fmt: skip
    assert doc["commit"] is not None and doc["not_recorded"] == []
    changed = {c["path"] for c in doc["changes"]}
    assert changed == {"src/app.py", "logs/app.log"}
    tree = tree_of(vault)
    for p in ("migrations/0001.sql", ".env", "secrets/key.pem"):
        assert tree[p] == FILES[p]
    assert tree["logs/app.log"] == FILES["logs/app.log"] + b"x"
    assert Path(policy_file).read_text() == POLICY


def test_proxy_exec_in_the_overlay_mount_meets_read_only_rules(ro_overlay: Any, home: Any) -> None:
    import json

    vault, mp = ro_overlay
    doc = _proxy_exec(home, mp, "trunc:deps/poetry.lock")
    got = json.loads(doc["result"]["stdout"])
    got.pop("listed")
    assert got == {
        "ro write": errno.EROFS, "ro append": errno.EROFS, "ro create": errno.EROFS,
        "ro rename out": errno.EXDEV, "ro rename in": errno.EXDEV, "ro unlink": errno.EROFS,
        "ro chmod": errno.EROFS, "ro truncate": errno.EROFS, "ro link": errno.EXDEV,
        "trunc deps/poetry.lock": errno.EROFS,
    }  # fmt: skip
    assert doc["commit"] is not None and doc["not_recorded"] == []
    tree = tree_of(vault)
    for p in ("migrations/0001.sql", "deps/poetry.lock"):
        assert tree[p] == RO_FILES[p]
    assert tree["src/app.py"] == b"print('by the agent')\n"


# -- per-fork views ------------------------------------------------------------------------------------
def test_two_forks_with_different_rules_see_different_trees_at_once(
    home: Any, vault: Any, tmp_path: Path
) -> None:
    require_fuse()
    ws = vault.workspace("main")
    for p, data in FILES.items():
        ws.write(p, data)
    checkpoint.save(vault, "main", message="files")
    vault.fork("main", "agent-1")
    vault.fork("main", "review-1")
    protect(
        vault,
        'version = 1\n[forks."agent-*".paths]\nhidden = [".env", "secrets/"]\n'
        '[forks."review-*".paths]\nread_only = ["**"]\n',
    )
    mps = {f: tmp_path / f for f in ("agent-1", "review-1")}
    infos = {}
    try:
        for f, mp in mps.items():
            mp.mkdir()
            infos[f] = mounts.mount(home, vault, f, str(mp), backend="auto")
        agent, review = mps["agent-1"], mps["review-1"]
        assert infos["agent-1"].backend == "fuse"  # hidden rules: the pure-FUSE mount
        assert ".env" not in os.listdir(agent) and "secrets" not in os.listdir(agent)
        assert (review / ".env").read_bytes() == FILES[".env"]  # the review fork sees it...
        assert _errno(lambda: os.open(review / "src/app.py", os.O_WRONLY)) == errno.EROFS  # ...read-only
        assert _errno(lambda: os.open(review / "new.txt", os.O_WRONLY | os.O_CREAT, 0o644)) == errno.EROFS
        (agent / "src/app.py").write_bytes(b"print('agent')\n")  # the agent writes where review cannot
        assert (review / "src/app.py").read_bytes() == FILES["src/app.py"]
        assert checkpoint.save(vault, "agent-1", message="a").created
        assert not checkpoint.save(vault, "review-1", message="r").created
        assert tree_of(vault, "agent-1")[".env"] == FILES[".env"]  # hidden, kept
    finally:
        for f in infos:
            mounts.unmount(home, vault, f, lazy=True)
        for mp in mps.values():
            if mounts.mounted_at(str(mp)):
                subprocess.run(["umount", "-l", str(mp)], check=False)


def _mounts_under(path: str) -> list[str]:
    from avfs_git.core.vaults import mountinfo

    top = os.path.realpath(path) + os.sep
    return sorted(m.mountpoint for m in mountinfo.kernel_mounts() if (m.mountpoint + os.sep).startswith(top))


@pytest.mark.parametrize("how", ["unmount", "busy", "killed"])
def test_unmounting_a_mount_with_read_only_rules_leaves_no_kernel_mount(
    home: Any, vault: Any, tmp_path: Path, how: str
) -> None:
    """The private bind of the overlay that avfs's own writes go through (``<state
    dir>/merged``) goes with the mount: once its lower layer is gone a stat of it fails, so
    a look that stats it took it for no mount and left it in the kernel, holding the
    overlay's upper layer, once per mount and unmount. A daemon killed outright leaves it;
    the next mount of the fork takes it away before it binds anew."""
    info, mp = _mount_ro(home, vault, tmp_path)
    try:
        assert len(_mounts_under(vault.state_dir)) >= 2  # the lower and the private bind
        if how == "busy":
            # a process inside one of the read-only binds: refused, nothing taken away (the
            # binds are unmounted only once nothing is seen inside)
            holder = subprocess.Popen(["sleep", "600"], cwd=mp / "migrations")
            try:
                with pytest.raises(AvfsError) as busy:
                    mounts.unmount(home, vault, "main")
                assert busy.value.code == "busy", busy.value
                assert mounts.mounted_at(str(mp / "migrations")) and mounts.mounted_at(str(mp))
                with pytest.raises(OSError) as e:
                    os.open(mp / "migrations/0001.sql", os.O_WRONLY)
                assert e.value.errno == errno.EROFS
            finally:
                holder.kill()
                holder.wait()
        if how == "killed":
            os.kill(info.pid, 9)
            mounts.unmount(home, vault, "main", lazy=True)
            info = mounts.mount(home, vault, "main", str(mp), backend="overlay")
            writes = _mounts_under(os.path.join(vault.ws_dir("main"), "merged"))
            assert len(writes) == 1, writes  # bound once, not on top of the dead one's
            with pytest.raises(OSError) as e:  # and the rules hold in the new mount
                os.open(mp / "migrations/0001.sql", os.O_WRONLY)
            assert e.value.errno == errno.EROFS
        assert mounts.unmount(home, vault, "main") is not None
        assert _mounts_under(vault.state_dir) == [] and not mounts.mounted_at(str(mp))
    finally:
        if mounts.mounted_at(str(mp)):
            mounts.unmount(home, vault, "main", lazy=True)
        for m in reversed(_mounts_under(vault.state_dir)):
            subprocess.run(["umount", "-l", m], check=False)

"""A killed overlay mount daemon leaves the worktree link in its upper layer immutable
(``chattr +i``: fuse/stacking._pin_gitfile pins it so nothing in the mount can replace it).
Nothing the person does afterwards may fail on it: the next look at the mount takes it away
(``rm -rf`` of the home would otherwise fail), and so do deleting the vault and its expiry
from the trash, and the removal of a state dir."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import threading
import time

from avfs_git.core.operations import checkpoint
from avfs_git.core.store.locks import file_lock, mount_lock_path
from avfs_git.core.vaults import layers
from avfs_git.fuse.stacking import _pin_gitfile
from avfs_git.ops import maintenance, mounts

from .conftest import git
from .test_overlay import _ended, require_overlay

_GETFLAGS = 0x80086601  # FS_IOC_GETFLAGS
_IMMUTABLE_FL = 0x10


def _immutable(path: str) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        flags = struct.unpack("l", fcntl.ioctl(fd, _GETFLAGS, struct.pack("l", 0)))[0]
    finally:
        os.close(fd)
    return bool(flags & _IMMUTABLE_FL)


def _mount_and_kill(home, vault, mp: str) -> str:
    """Mount main on the overlay backend, SIGKILL its daemon; the pinned link's path."""
    info = mounts.mount(home, vault, "main", mp, backend="overlay")
    gitfile = os.path.join(vault.ws_dir("main"), "upper", ".git")
    assert _immutable(gitfile)
    os.kill(info.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not _ended(info.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _ended(info.pid)
    assert _immutable(gitfile)  # what the killed daemon left
    return gitfile


def test_a_killed_daemons_pinned_link_goes_with_the_next_look_and_comes_back_with_a_mount(
    home, vault, tmp_path
):
    require_overlay()
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    checkpoint.save(vault)
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    gitfile = _mount_and_kill(home, vault, mp)
    assert mounts.check(vault, "main") is None
    assert not os.path.lexists(gitfile)
    # the home's state dir can now be removed by hand: nothing immutable is left in it
    assert not [p for p in _files(vault.ws_dir("main")) if _immutable(p)]
    # nothing of the fork is lost, and a new mount pins its link again for git in it
    assert vault.workspace("main").read("a.txt") == b"a\n"
    mounts.mount(home, vault, "main", mp, backend="overlay")
    try:
        assert _immutable(gitfile)
        assert git("status", "--porcelain", cwd=mp) == ""
    finally:
        mounts.unmount(home, vault, "main")
    assert not os.path.lexists(gitfile)


def test_a_mount_being_started_keeps_the_link_pinned(home, vault, tmp_path):
    """The look at a dead mount takes the link away only under the fork's mount lock, taken
    without waiting: while another process holds it (starting a mount, whose daemon pins its
    own link) the link is left as it is."""
    require_overlay()
    vault.workspace("main").write("a.txt", b"a\n")
    checkpoint.save(vault)
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    gitfile = _mount_and_kill(home, vault, mp)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with file_lock(mount_lock_path(vault.state_dir, "main"), what="test"):
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(10)
        assert mounts.check(vault, "main") is None
        assert _immutable(gitfile)
    finally:
        release.set()
        t.join()
    # the next mount replaces it (and its unmount takes it away)
    mounts.mount(home, vault, "main", mp, backend="overlay")
    mounts.unmount(home, vault, "main")
    assert not os.path.lexists(gitfile)


def _files(top: str) -> list[str]:
    out = []
    for d, _dirs, names in os.walk(top):
        out.extend(os.path.join(d, n) for n in names if not os.path.islink(os.path.join(d, n)))
    return out


def test_a_deleted_vault_with_a_pinned_link_expires_from_the_trash(home, vault):
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    checkpoint.save(vault)
    ws.write("b.txt", b"uncheckpointed\n")
    upper = os.path.join(vault.ws_dir("main"), "upper")
    os.makedirs(upper, exist_ok=True)
    _pin_gitfile(upper, b"gitdir: /nowhere\n")  # as a killed overlay daemon leaves it
    assert _immutable(os.path.join(upper, ".git"))
    home.delete_vault("v", force=True)
    later = time.time() + 400 * 86400
    assert [e.name for e in maintenance.expire_deleted_vaults(home, now=later)] == ["v"]
    assert home.deleted_vaults() == []
    assert not os.listdir(home.trash_dir)


def test_removing_a_state_dir_with_a_pinned_link_removes_it(home, vault):
    vault.workspace("main").write("a.txt", b"a\n")
    state = vault.ws_link("main")
    upper = os.path.join(vault.ws_dir("main"), "upper")
    os.makedirs(upper, exist_ok=True)
    _pin_gitfile(upper, b"gitdir: /nowhere\n")
    vault.close()
    layers.remove_state_dir(home.path, state)
    assert not os.path.lexists(state)


def test_the_immutable_flag_is_set_and_cleared_as_chattr_does(tmp_path):
    """upper.set_immutable, as the daemons pin ``.git`` without a ``chattr`` process: the
    same flag ``chattr +i`` sets (read back by ``lsattr`` and by the ioctl), cleared again;
    a symbolic link is not followed and a directory is not a file it pins."""
    import subprocess

    from avfs_git.core.workspace.upper import set_immutable

    f = tmp_path / "pinned"
    f.write_bytes(b"gitdir: /x\n")
    other = tmp_path / "by-chattr"
    other.write_bytes(b"gitdir: /x\n")
    subprocess.run(["chattr", "+i", str(other)], check=True)
    try:
        assert set_immutable(str(f), True)
        assert _immutable(str(f))
        attrs = subprocess.run(["lsattr", str(f), str(other)], capture_output=True, text=True, check=True)
        mine, theirs = (line.split()[0] for line in attrs.stdout.splitlines())
        assert mine == theirs and "i" in mine
        try:
            os.unlink(f)
        except PermissionError:
            pass
        assert f.exists()  # immutable: not even root removes it
        link = tmp_path / "link"
        link.symlink_to(other)
        assert not set_immutable(str(link), False)  # not followed
        assert _immutable(str(other))
        assert not set_immutable(str(tmp_path), True)
        assert set_immutable(str(f), False) and not _immutable(str(f))
        os.unlink(f)
    finally:
        subprocess.run(["chattr", "-i", str(other)], check=False)
        subprocess.run(["chattr", "-i", str(f)], check=False, capture_output=True)

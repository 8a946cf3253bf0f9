"""A staged planted half that a later commit completes (the thirty-sixth round's review39).

A confined command stages one half of a repository running a program in the person's git
(``src/config`` with ``core.fsmonitor``) and removes it from the work tree; the other half
(``src/HEAD``, ``src/objects/``, ``src/refs/``) comes into the fork's tree later, by a path
no run's look at the index saw: a directory renamed in a third run (its journal names only
``x`` and ``src``), an ``avfs write`` between runs, then a run that does not touch the
index or an ``avfs checkpoint save``. The mount's index followed each new commit keeping the
staged config, and the person's plain ``git commit`` in the mount recorded both halves: a
later ``git status`` in ``src/`` ran the planted program on the host. Both backends
(``scene``'s overlay and pure FUSE)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .test_adv_mountfiles import Scene
from .test_adv_mountfiles import scene as scene
from .test_adv_planted import _person_in
from .test_adv_plantmerge import BARE_HALF, _avfs, _config_half
from .test_adv_plantwriters import _clone_and_check_out_everything


def _person_commits_and_looks(scene: Scene, tmp_path: Path, marker: Path) -> None:
    """The person's plain ``git commit`` in the mount, their git in ``src/``, a clone's
    checkout: the planted program never runs and HEAD holds no whole repository."""
    pc = scene.git("-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "-qm", "p", check=False)
    held = scene.git("ls-tree", "-r", "--name-only", "HEAD", "--", "src").stdout.split()
    if (scene.mp / "src").is_dir():
        _person_in(scene, "src")
    _clone_and_check_out_everything(scene, tmp_path)
    assert not marker.exists(), ("the planted core.fsmonitor ran on the host", pc.stderr)
    assert not ("src/config" in held and "src/HEAD" in held), held


def _put_back_said(res: Any) -> bool:
    """The run's envelope says the staged config was put back (``refs_refused``)."""
    return any(
        r["ref"] == "index" and "src/config" in r["reason"] for r in res.to_dict().get("refs_refused") or ()
    )


def _stage_config_half(scene: Scene, marker: Path, tail: str = "") -> Any:
    """The staging run; since the thirty-seventh round (review40 F3) its own carry-back puts
    the staged config back (the work tree does not show it) and says so: the later
    commit's look (``over_move``) finds nothing left, and a later run need not say it."""
    one = scene.attack(_config_half(marker) + "git add src/config && rm src/config\n" + tail)
    assert one.result is not None and one.result.exit_code == 0, one.to_dict()
    return one


def test_a_renamed_directory_completes_a_staged_half(scene: Scene, tmp_path: Path) -> None:
    marker = scene.ran / "mv-fsmonitor"
    one = scene.attack(BARE_HALF.replace("src/", "x/"))
    assert one.result is not None and one.result.exit_code == 0, one.to_dict()
    two = _stage_config_half(scene, marker, "rmdir src || true\n")
    three = scene.attack("mv x src\n")
    assert three.result is not None and three.result.exit_code == 0, three.to_dict()
    assert _put_back_said(two) or _put_back_said(three), (two.to_dict(), three.to_dict())
    assert "src/config" not in scene.git("diff", "--cached", "--name-only", "HEAD").stdout
    _person_commits_and_looks(scene, tmp_path, marker)


@pytest.mark.parametrize("then", ["run", "checkpoint"])
def test_avfs_write_completes_a_staged_half(scene: Scene, tmp_path: Path, then: str) -> None:
    marker = scene.ran / f"w-{then}-fsmonitor"
    one = _stage_config_half(scene, marker)
    for p, body in (
        ("src/HEAD", "ref: refs/heads/main\n"),
        ("src/objects/info/packs", ""),
        ("src/refs/heads/.keep", ""),
    ):
        code, doc = _avfs(scene, "write", p, body)
        assert code == 0, doc
    if then == "run":  # (a run that touches neither the index nor a name of git's)
        two = scene.attack("echo x > x.txt\n")
        assert two.result is not None and two.result.exit_code == 0, two.to_dict()
        assert _put_back_said(one) or _put_back_said(two), (one.to_dict(), two.to_dict())
    else:
        code, doc = _avfs(scene, "checkpoint", "save", "-m", "agent")
        assert code == 0, doc
    assert "src/config" not in scene.git("diff", "--cached", "--name-only", "HEAD").stdout
    _person_commits_and_looks(scene, tmp_path, marker)


def _created_in(directory: str) -> Any:
    """An inotify watch of the names created in ``directory``: call the result for them."""
    import ctypes
    import os
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0, ctypes.get_errno()
    assert libc.inotify_add_watch(fd, directory.encode(), 0x100 | 0x80) >= 0  # (IN_CREATE, IN_MOVED_TO)

    def names() -> list[str]:
        out: list[str] = []
        while True:
            try:
                buf = os.read(fd, 65536)
            except BlockingIOError:
                return out
            at = 0
            while at < len(buf):
                _wd, _mask, _cookie, n = struct.unpack_from("iIII", buf, at)
                out.append(buf[at + 16 : at + 16 + n].rstrip(b"\0").decode())
                at += 16 + n

    names.close = lambda: os.close(fd)  # type: ignore[attr-defined]
    return names


@pytest.mark.parametrize("then", ["run", "checkpoint"])
def test_the_look_at_a_moves_staged_paths_makes_no_file_in_the_git_dir(scene: Scene, then: str) -> None:
    """A commit that changes a name of git's own state (a project's directory named
    ``objects``) has the index's staged paths looked at over it (mount/stagedplant.py
    ``over_move``) through a temporary index: made in the mount's own directory, not in
    the worktree's git dir, which a confined command can write during a run (fix39a's
    leftover, gitmodel28: the bytes of a put-back index were the command's to change)."""
    (scene.mp / "a.txt").write_text("staged by the person\n")
    scene.git("add", "a.txt")
    (scene.mp / "a.txt").write_text("the fork's a\n")  # (as HEAD has it: nothing to record)
    created = _created_in(scene.git_dir)
    try:
        if then == "run":
            res = scene.attack("mkdir -p lib/objects && echo x > lib/objects/x.py\n")
            assert res.result is not None and res.result.exit_code == 0, res.to_dict()
        else:
            code, doc = _avfs(scene, "write", "lib/objects/x.py", "x = 1\n")
            assert code == 0, doc
            code, doc = _avfs(scene, "checkpoint", "save", "-m", "objects")
            assert code == 0, doc
        made = created()
    finally:
        created.close()
    assert scene.git("ls-tree", "--name-only", "-r", "HEAD", "--", "lib").stdout.split() == [
        "lib/objects/x.py"
    ]
    assert [n for n in made if n.startswith("avfs-staged-")] == [], made
    assert scene.git("show", ":a.txt").stdout == "staged by the person\n"

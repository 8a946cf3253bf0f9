"""Repositories a confined command plants below the fork's root (docs/security.md, "A
repository planted below the fork's root"; ``proxy/plantedgit.py``).

From the attacker's side: each test plants, from inside a real confined ``proxy exec`` in a
real mount (overlay and pure FUSE), a form git's discovery takes for a repository: a
bare-looking ``src/`` (``HEAD``, ``objects/``, ``refs/``, a ``config`` with ``core.worktree``
and ``core.fsmonitor``), a ``sub/.git`` made by ``git init`` with its own ``core.fsmonitor``,
an include and hooks, a ``.git`` file naming a git dir elsewhere in the fork, and one naming
a host directory. Then the person acts as usual: plain ``git status``, ``git log``, ``git
diff``, ``git commit`` in ``MOUNT/src`` and ``MOUNT/sub``. The planted program would write a
marker in a host directory; it must stay empty. And legitimate work keeps working: a
``git clone`` (of a bare repository in the fork, by ``file://``) and a ``git init`` inside
an exec leave repositories the person's git uses, nothing set aside.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from avfs_git.ops import mounts
from avfs_git.proxy.envelope import ExecRequest, ExecResult
from avfs_git.proxy.execute import execute

from .test_adv_mountfiles import GIT, Scene, _need_bwrap
from .test_adv_mountfiles import scene as scene  # a mounted fork, both backends, real bwrap
from .test_json_schemas import validate
from .test_overlay import require_overlay


def _git(scene: Scene, where: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The person's plain git in ``MOUNT/where`` (its result whatever it is)."""
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(scene.mp.parent))
    return subprocess.run(
        [*GIT, *args], cwd=scene.mp / where, env=env, capture_output=True, text=True, check=False, timeout=120
    )


def _person_in(scene: Scene, where: str) -> None:
    for args in (("status",), ("status", "--porcelain"), ("log", "-1"), ("diff",), ("diff", "HEAD")):
        _git(scene, where, *args)


def _envelope(res: ExecResult) -> dict[str, Any]:
    """The envelope as ``--json`` prints it, checked against its schema."""
    doc = {"schema_version": 1, "kind": "proxy_exec_result", **res.to_dict()}
    validate(doc)
    return doc


def _status(scene: Scene) -> dict[str, object]:
    got = scene.cli("--home", scene.home.path, "--vault", "v:main", "--json", "status")
    assert got.code == 0, got.out
    doc: dict[str, object] = json.loads(got.out)
    return doc


def test_a_bare_looking_directory_planted_runs_nothing_in_the_person_s_git(scene: Scene) -> None:
    """``src/HEAD``, ``objects/``, ``refs/`` and a ``config`` naming ``core.worktree = .``
    and a ``core.fsmonitor``: the person's ``git status``/``log``/``diff`` in ``MOUNT/src``
    ran it on the host before; now the config is set aside (named in the envelope and in
    ``avfs status``), its plain keys kept, its bytes in the fork."""
    marker = scene.ran / "bare-fsmonitor"
    res = scene.attack(
        "mkdir -p src/objects/info src/refs/heads && : > src/objects/info/packs && : > src/refs/heads/.keep\n"
        "printf 'ref: refs/heads/main\\n' > src/HEAD\n"
        f"printf '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tworktree = .\\n\\tfsmonitor = touch {marker}; false\\n' > src/config\n"
        "echo code > src/main.c\n"
    )
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    doc = _envelope(res)
    aside = {p["path"]: p for p in doc["planted_git_dirs"]}
    assert set(aside) == {"src/config"}, doc["planted_git_dirs"]
    assert aside["src/config"]["moved_to"] == "src/config.avfs-planted"
    assert (
        "core.fsmonitor" in aside["src/config"]["found"] and "core.worktree" in aside["src/config"]["found"]
    )
    assert f"touch {marker}" in (scene.mp / "src/config.avfs-planted").read_text()  # the agent's bytes kept
    assert (scene.mp / "src/config").read_text() == "[core]\n\trepositoryformatversion = 0\n\tbare = false\n"
    st = _status(scene)
    assert [p["path"] for p in st["planted_git_dirs"]] == ["src/config"], st  # type: ignore[index, union-attr]
    scene.git("status", "--porcelain")  # the person's git at the root still works
    assert not list(scene.ran.iterdir())


def test_a_nested_repository_s_config_include_and_hooks_run_nothing(scene: Scene) -> None:
    """``git init sub`` then its own ``core.fsmonitor``, an include of a config in the fork
    naming ``core.pager`` and ``alias``, ``pre-commit`` and ``post-commit`` hooks, a
    ``core.hooksPath``; a ``.git`` file naming a planted git dir elsewhere in the fork; one
    naming a host directory: the person's status, log, diff and commit in each run
    nothing, and their git in ``MOUNT/sub`` still works (its repository kept)."""
    mark = scene.ran
    hook = f"#!/bin/sh\\ntouch {mark}/hook-$(basename $0)\\n"
    res = scene.attack(
        "mkdir sub && cd sub && git init -q && echo s > f && git add f && git commit -qm one\n"
        f"git config core.fsmonitor 'touch {mark}/sub-fsmonitor; false'\n"
        "git config include.path ../../inc.cfg\n"
        f"printf '[core]\\n\\tpager = touch {mark}/pager; cat\\n[alias]\\n\\tst = !touch {mark}/alias\\n' > ../inc.cfg\n"
        f"for h in pre-commit post-commit post-checkout; do printf '{hook}' > .git/hooks/$h; chmod +x .git/hooks/$h; done\n"
        "echo more >> f\ncd ..\n"
        "mkdir -p other/hidden/objects other/hidden/refs other/hidden/hooks && echo o > other/f\n"
        "printf 'ref: refs/heads/main\\n' > other/hidden/HEAD\n"
        f"printf '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tworktree = ..\\n\\tfsmonitor = touch {mark}/gitfile-fsmonitor; false\\n' > other/hidden/config\n"
        "printf 'gitdir: hidden\\n' > other/.git\n"
        f"mkdir out && printf 'gitdir: {scene.host}\\n' > out/.git && echo x > out/f\n"
    )
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    for where in ("sub", "other", "out"):
        _person_in(scene, where)
    _git(scene, "sub", "st")
    _git(scene, "sub", "-c", "core.pager=", "log", "-p")
    got = _git(scene, "sub", "commit", "-qam", "the person commits in sub")
    assert sorted(os.listdir(scene.ran)) == [], "planted code ran on the host"
    assert got.returncode == 0, got.stderr
    got = _git(scene, "sub", "log", "--format=%s")
    assert got.stdout.split("\n")[:2] == ["the person commits in sub", "one"], got
    assert sorted(os.listdir(scene.host)) == ["a.txt", "config"]
    doc = _envelope(res)
    aside = {p["path"]: p for p in doc["planted_git_dirs"]}
    want = {
        "sub/.git/config", "sub/.git/hooks/pre-commit", "sub/.git/hooks/post-commit",
        "sub/.git/hooks/post-checkout", "other/hidden/config", "out/.git",
    }  # fmt: skip
    assert set(aside) == want, sorted(aside)
    assert "include.path" in aside["sub/.git/config"]["found"]
    scene.git("status", "--porcelain")


def test_a_clone_and_an_init_inside_an_exec_keep_working(scene: Scene) -> None:
    """Legitimate work: a bare repository made in the fork, a ``git clone file://`` of it
    into ``vendor/lib`` and a ``git init sub`` inside exec; nothing is set aside (a real
    clone's config runs nothing; its ``*.sample`` hooks stay), and the person's git works
    in each: log, status, a commit."""
    res = scene.attack(
        "git init -q --bare -b main up.git && git init -q -b main seed && cd seed && echo lib > lib.c && git add lib.c\n"
        "git commit -qm 'the library' && git push -q ../up.git HEAD:refs/heads/main && cd .. && rm -rf seed\n"
    )
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    res = scene.attack(
        'mkdir -p vendor && git clone -q "file://$PWD/up.git" vendor/lib && git -C vendor/lib log --oneline\n'
        "git init -q sub && cd sub && echo s > s.txt && git add s.txt && git commit -qm 'sub one'\n"
    )
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    assert "the library" in res.result.stdout
    doc = _envelope(res)
    assert doc["planted_git_dirs"] == [], doc["planted_git_dirs"]
    assert (scene.mp / "vendor/lib/.git/hooks/pre-commit.sample").exists()
    got = _git(scene, "vendor/lib", "log", "--format=%s")
    assert got.returncode == 0 and got.stdout == "the library\n", got
    assert _git(scene, "vendor/lib", "config", "remote.origin.url").stdout.strip().endswith("/up.git")
    assert _git(scene, "vendor/lib", "status", "--porcelain").stdout == ""
    Path(scene.mp / "sub/s.txt").write_text("the person's\n")
    got = _git(scene, "sub", "commit", "-qam", "the person")
    assert got.returncode == 0, got.stderr
    assert _git(scene, "sub", "log", "--format=%s").stdout == "the person\nsub one\n"
    assert "planted_git_dirs" not in _status(scene)
    assert not list(scene.ran.iterdir())


def test_a_bare_looking_directory_planted_in_a_materialized_copy_is_set_aside_before_it_is_written_back(
    home: Any, vault: Any, tmp_path: Path
) -> None:
    """The same plant from an exec in a materialized copy (``mode=materialized``, the fork
    not mounted): its config is set aside in the copy, so what reaches the fork, and a
    mount the person makes later, runs nothing in their ``git status`` in ``MOUNT/src``."""
    require_overlay()
    _need_bwrap()
    ran = tmp_path / "ran"
    ran.mkdir()
    marker = ran / "copy-fsmonitor"
    script = (
        "mkdir -p src/objects/info src/refs/heads && : > src/objects/info/packs && : > src/refs/heads/.keep\n"
        "printf 'ref: refs/heads/main\\n' > src/HEAD\n"
        f"printf '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tworktree = .\\n\\tfsmonitor = touch {marker}; false\\n' > src/config\n"
    )
    res = execute(home, vault, "main", ExecRequest(shell=script, mode="materialized"))
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp), backend="overlay")
    try:
        env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))
        subprocess.run(
            [*GIT, "status"], cwd=mp / "src", env=env, capture_output=True, check=False, timeout=120
        )
    finally:
        mounts.unmount(home, vault, "main", lazy=True)
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    assert res.mount is not None and res.mount.mode == "materialized", res.to_dict()
    doc = _envelope(res)
    assert [(p["path"], p["moved_to"]) for p in doc["planted_git_dirs"]] == [
        ("src/config", "src/config.avfs-planted")
    ]
    ws = vault.workspace("main")
    assert b"fsmonitor" not in ws.read("src/config") and b"fsmonitor" in ws.read("src/config.avfs-planted")


def test_a_config_planted_one_run_before_head_is_set_aside_by_the_run_that_adds_head(scene: Scene) -> None:
    """The bare-looking form split over two runs: the first writes ``config`` (with a
    ``core.fsmonitor``), ``objects/`` and ``refs/`` (no ``HEAD``: not a git dir yet, nothing
    set aside), the second only ``HEAD``; that run looks at the whole git dir it made and
    sets the config aside."""
    marker = scene.ran / "split-fsmonitor"
    first = scene.attack(
        "mkdir -p src/objects/info src/refs/heads && : > src/objects/info/packs && : > src/refs/heads/.keep\n"
        f"printf '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tworktree = .\\n\\tfsmonitor = touch {marker}; false\\n' > src/config\n"
    )
    assert first.result is not None and first.result.exit_code == 0, first.to_dict()
    second = scene.attack("printf 'ref: refs/heads/main\\n' > src/HEAD\n")
    assert second.result is not None
    _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    assert _envelope(first)["planted_git_dirs"] == []
    if _pure_fuse(scene):
        # the mount's create of `HEAD` is a workspace write, refused there (EINVAL) as every avfs
        # write that completes such a repository is (core/workspace/plantedrule.py)
        assert second.result.exit_code != 0 and "cannot create src/HEAD" in second.result.stderr, (
            second.to_dict()
        )
        assert not (scene.mp / "src/HEAD").exists() and _envelope(second)["planted_git_dirs"] == []
        return
    assert second.result.exit_code == 0, second.to_dict()
    assert [p["path"] for p in _envelope(second)["planted_git_dirs"]] == ["src/config"]


def _pure_fuse(scene: Scene) -> bool:
    """Whether the scene's mount is the pure-FUSE one (not an overlay's)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if fields[4] == str(scene.mp):
                return fields[fields.index("-") + 1].startswith("fuse")
    raise AssertionError(f"{scene.mp} is not mounted")


def test_a_key_past_a_fuse_read_s_size_is_read(scene: Scene) -> None:
    """A planted config 300 KB long, its ``core.fsmonitor`` at the end, is read to its end
    (a read of a FUSE file may return less than asked; here the kernel returned it whole,
    so this guards the loop in ``plantedgit._read_small`` rather than showing a short read)."""
    marker = scene.ran / "long-fsmonitor"
    res = scene.attack(
        "mkdir -p src/objects/info src/refs/heads && : > src/objects/info/packs && : > src/refs/heads/.keep\n"
        "printf 'ref: refs/heads/main\\n' > src/HEAD\n"
        "printf '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tworktree = .\\n' > src/config\n"
        "i=0; while [ $i -lt 3000 ]; do echo '# padding padding padding padding padding padding padding padding padding'; i=$((i+1)); done >> src/config\n"
        f"printf '[core]\\n\\tfsmonitor = touch {marker}; false\\n' >> src/config\n"
    )
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    assert (scene.mp / "src/config").stat().st_size > 200_000 or (
        scene.mp / "src/config.avfs-planted"
    ).exists()
    _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    assert [p["path"] for p in _envelope(res)["planted_git_dirs"]] == ["src/config"]

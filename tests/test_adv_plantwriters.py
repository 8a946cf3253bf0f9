"""A repository planted below the fork's root through every writer but ``proxy exec``, and
through the agent's own git history (docs/security.md, "Planted git state from every
writer, and history"; ``core/store/plantedrule.py``).

From the agent's side, on a real mount (overlay and pure FUSE): the bare-looking form git's
discovery takes for a repository (``src/HEAD``, ``src/objects/``, ``src/refs/``, a
``src/config`` naming ``core.fsmonitor``), or a hook in one, written through the Python
API's write, MCP ``write_file``, ``avfs write``, ``avfs cp`` and ``avfs mv`` (the last
write completing it: the config, or ``HEAD`` after the config); and committed by the
agent's own ``git commit`` inside an exec. Then the person acts as usual: plain ``git
status``, ``git log`` in ``MOUNT/src``; a ``git clone`` of the vault and a checkout of every
commit there. The planted program would write a marker in a host directory; it must stay
empty. On main each write landed and the person's ``git status`` ran it; the commit was
carried onto the fork's branch and came back with the person's checkout of it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from avfs_git.core.errors import AvfsError

from .test_adv_mountfiles import GIT, Scene
from .test_adv_mountfiles import scene as scene  # a mounted fork, both backends, real bwrap
from .test_adv_planted import _person_in


def _plain_parts() -> dict[str, bytes]:
    return {"src/HEAD": b"ref: refs/heads/main\n", "src/objects/info/packs": b"", "src/refs/heads/.keep": b""}


def _config(marker: Path) -> bytes:
    return (
        "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tworktree = .\n"
        f"\tfsmonitor = touch {marker}; false\n"
    ).encode()


def _spec(scene: Scene) -> list[str]:
    return ["--home", scene.home.path, "--vault", "v:main", "--json"]


def _write(scene: Scene, writer: str, path: str, data: bytes) -> str | None:
    """Write ``data`` at ``path`` through ``writer`` as the agent would; the error code
    avfs answered, None when the write landed."""
    if writer == "api":
        try:
            scene.vault.workspace("main").write(path, data)
        except AvfsError as exc:
            return exc.code
        return None
    if writer == "mcp":
        from avfs_git.mcp.tools import AvfsTools

        try:
            AvfsTools(scene.home.path, "v:main").call("write_file", {"path": path, "content": data.decode()})
        except AvfsError as exc:
            return exc.code
        return None
    if writer == "cli-write":
        got = scene.cli(*_spec(scene), "write", path, data.decode())
    else:  # cp / mv of a file of a plain name written first
        staged = f"staged-{abs(hash(path)) % 10**8}.txt"
        ws = scene.vault.workspace("main")
        ws.write(staged, data)
        ws.mkdir(path.rpartition("/")[0], parents=True, exist_ok=True)
        got = scene.cli(*_spec(scene), "cp" if writer == "cli-cp" else "mv", staged, path)
    if got.code == 0:
        return None
    code: str = json.loads(got.out)["error"]["code"]
    return code


WRITERS = ["api", "mcp", "cli-write", "cli-cp", "cli-mv"]


@pytest.mark.parametrize("writer", WRITERS)
def test_a_bare_looking_directory_written_through_a_writer_runs_nothing(scene: Scene, writer: str) -> None:
    """``HEAD``, ``objects/``, ``refs/`` then a ``config`` naming ``core.fsmonitor``, each
    written through ``writer``: the last one is refused (``invalid_path``, as a ``.git`` name), nothing of it
    landed, and the person's ``git status`` in ``MOUNT/src`` runs nothing. The plain parts
    stay (a directory holding ``HEAD`` is content like any)."""
    marker = scene.ran / f"{writer}-fsmonitor"
    for path, data in _plain_parts().items():
        assert _write(scene, writer, path, data) is None, path
    code = _write(scene, writer, "src/config", _config(marker))
    _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    assert code == "invalid_path"
    assert not (scene.mp / "src/config").exists()
    assert (scene.mp / "src/HEAD").read_bytes() == b"ref: refs/heads/main\n"
    scene.git("status", "--porcelain")


@pytest.mark.parametrize("writer", ["api", "cli-write"])
def test_head_or_a_hook_written_last_is_refused_too(scene: Scene, writer: str) -> None:
    """The same form with the config written first (no ``HEAD`` yet: not a repository, the
    write lands), then ``HEAD``: refused, as is a hook written into a repository whose
    config is plain, and ``objects/`` made last by a write below it."""
    marker = scene.ran / f"{writer}-late"
    assert _write(scene, writer, "src/config", _config(marker)) is None
    assert _write(scene, writer, "src/objects/info/packs", b"") is None
    assert _write(scene, writer, "src/refs/heads/.keep", b"") is None
    code = _write(scene, writer, "src/HEAD", b"ref: refs/heads/main\n")
    _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    assert code == "invalid_path"
    # a plain repository's hook
    assert (
        _write(scene, writer, "lib/config", b"[core]\n\trepositoryformatversion = 0\n\tbare = true\n") is None
    )
    assert _write(scene, writer, "lib/HEAD", b"ref: refs/heads/main\n") is None
    assert _write(scene, writer, "lib/refs/heads/.keep", b"") is None
    assert _write(scene, writer, "lib/hooks/reference-transaction", b"#!/bin/sh\n") is None  # no objects/ yet
    assert _write(scene, writer, "lib/objects/info/packs", b"") == "invalid_path"
    assert _write(scene, writer, "lib/hooks/pre-commit.sample", b"#!/bin/sh\n") is None
    assert not list(scene.ran.iterdir())


def bare_plant(marker: Path) -> str:
    """A confined command's script making `src/` a bare-looking repository whose config
    names ``core.fsmonitor`` (touching ``marker``): what its tests commit or write."""
    return (
        "mkdir -p src/objects/info src/refs/heads && : > src/objects/info/packs && : > src/refs/heads/.keep\n"
        "printf 'ref: refs/heads/main\\n' > src/HEAD\n"
        f"printf '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tworktree = .\\n\\tfsmonitor = touch {marker}; false\\n' > src/config\n"
    )


def _clone_and_check_out_everything(scene: Scene, tmp_path: Path) -> None:
    """The person clones the vault and checks out every commit of it, then runs ``git
    status`` in ``src`` of each."""
    clone = tmp_path / "clone"
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))
    subprocess.run([*GIT, "clone", "-q", scene.vault.path, str(clone)], check=True, env=env, timeout=120)
    revs = subprocess.run(
        [*GIT, "rev-list", "--all"], cwd=clone, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    for rev in revs:
        subprocess.run([*GIT, "checkout", "-q", "-f", rev], cwd=clone, env=env, check=True, timeout=120)
        if (clone / "src").is_dir():
            subprocess.run([*GIT, "status"], cwd=clone / "src", env=env, capture_output=True, timeout=120)


def test_a_planted_repository_the_agent_s_git_commits_never_reaches_the_fork_s_history(
    scene: Scene, tmp_path: Path
) -> None:
    """The agent's own ``git add src && git commit`` of the bare-looking form inside an
    exec: avfs sets the config aside in the work tree after the run, but the commit held it;
    the person's ``git checkout`` of that commit in the mount, or in a clone of the vault,
    wrote it back where their ``git status`` in ``src`` ran it. Now the carry-back refuses
    such a commit (``refs_refused``); the run's own commit records the work tree as set
    aside."""
    marker = scene.ran / "history-fsmonitor"
    res = scene.attack(
        bare_plant(marker) + "git add src && git commit -qm 'a library' && git log --format=%H -1\n"
    )
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    agents = res.result.stdout.strip()
    doc = res.to_dict()
    assert [p["path"] for p in doc["planted_git_dirs"]] == ["src/config"], doc["planted_git_dirs"]
    for rev in scene.git("rev-list", "--all").stdout.split():
        scene.git("checkout", "-q", rev, "--", ".", check=False)
        _person_in(scene, "src")
        scene.git("checkout", "-q", "main", "--", ".", check=False)
    got = scene.git("cat-file", "-t", agents, check=False)
    _clone_and_check_out_everything(scene, tmp_path)
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    assert got.returncode != 0 or agents not in scene.git("rev-list", "--all").stdout
    assert any("src/config" in r["reason"] for r in doc["refs_refused"]), doc["refs_refused"]
    assert scene.vault.workspace("main").exists("src/config.avfs-planted")


SPELLINGS = [".git", ".GIT", "git~1", "GIT~1", ".git ", ".git.", ".g\u200cit"]


def test_git_s_own_names_in_a_commit_of_the_agent_s_git_never_reach_the_fork(
    scene: Scene, tmp_path: Path
) -> None:
    """Held (a check of git's own boundary, fsck's ``hasDotgit``): the agent's git builds, by
    ``git mktree``, a commit holding ``NAME/config`` (a ``core.fsmonitor``) for each of
    ``.git`` and its NTFS and HFS+ spellings, and moves its branch there. Each is refused
    by the carry-back (``refs_refused``); the vault passes ``git fsck --strict``, a clone
    with ``transfer.fsckObjects`` takes it, and the person's checkout of every commit in it
    runs nothing."""
    marker = scene.ran / "dotgit-fsmonitor"
    for name in SPELLINGS:
        quoted = "".join(chr(b) if b < 128 else f"\\{b:03o}" for b in name.encode())  # (dash's printf)
        res = scene.attack(
            f"B=$(printf '[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = touch {marker}; false\\n' | git hash-object -w --stdin)\n"
            "T=$(printf '100644 blob %s\\tconfig\\n' $B | git mktree)\n"
            f"N=$(printf '{quoted}')\n"
            '{ git ls-tree HEAD; printf "040000 tree %s\\t%s\\n" $T "$N"; } | git mktree > /tmp/top\n'
            "C=$(git commit-tree -p HEAD -m planted $(cat /tmp/top)) && git update-ref HEAD $C && echo moved\n"
        )
        assert res.result is not None and "moved" in res.result.stdout, (name, res.to_dict())
        refused = res.to_dict()["refs_refused"]
        # (index-pack --strict's fsck says hasDotgit first; gitnames' rule the same names)
        assert any("hasDotgit" in r["reason"] or f"records {name}" in r["reason"] for r in refused), (
            name,
            refused,
        )
    tree = subprocess.run(
        ["git", "--git-dir", scene.vault.path, "ls-tree", "-r", "--name-only", "-z", "main"],
        capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    assert not [p for p in tree if p.split("/")[0] in SPELLINGS], tree
    subprocess.run(["git", "--git-dir", scene.vault.path, "fsck", "--strict", "--no-dangling"], check=True)
    clone = tmp_path / "fsck-clone"
    subprocess.run(
        [*GIT, "-c", "transfer.fsckObjects=true", "clone", "-q", scene.vault.path, str(clone)], check=True
    )
    _clone_and_check_out_everything(scene, tmp_path)
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"


def test_a_repository_an_agent_s_file_tool_writes_in_the_mount_is_set_aside_after_it(scene: Scene) -> None:
    """An agent CLI's own Write tool writes in the mount (the kernel's write: avfs's
    check of its own writes never sees it): ``HEAD``, ``objects/``, ``refs/``, then a
    ``config`` naming ``core.fsmonitor``. Its PostToolUse hook (``avfs hook claude
    post-tool-use``, which checkpoints) now sets the config aside first, as after a ``proxy
    exec``: the person's ``git status`` in ``MOUNT/src`` runs nothing, and the checkpoint
    holds the set-aside file."""
    marker = scene.ran / "tool-fsmonitor"
    for path, data in _plain_parts().items():
        (scene.mp / path).parent.mkdir(parents=True, exist_ok=True)
        (scene.mp / path).write_bytes(data)
    (scene.mp / "src/config").write_bytes(_config(marker))
    event = {
        "session_id": "s", "transcript_path": "/tmp/s.jsonl", "cwd": str(scene.mp), "permission_mode": "default",
        "hook_event_name": "PostToolUse", "tool_name": "Write", "tool_use_id": "t",
        "tool_input": {"file_path": str(scene.mp / "src/config"), "content": _config(marker).decode()},
        "tool_response": {"filePath": str(scene.mp / "src/config"), "success": True},
    }  # fmt: skip
    got = scene.cli(
        "--home", scene.home.path, "hook", "claude", "post-tool-use", stdin=json.dumps(event).encode()
    )
    _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    assert got.code == 0, got
    assert "planted git file(s) set aside: src/config" in json.loads(got.out)["systemMessage"], got.out
    assert (scene.mp / "src/config.avfs-planted").exists()
    tree = subprocess.run(
        ["git", "--git-dir", scene.vault.path, "ls-tree", "-r", "--name-only", "main"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert "src/config.avfs-planted" in tree and "src/HEAD" in tree, tree


@pytest.mark.parametrize("how", ["mcp-restore", "cli-checkout"])
def test_the_agent_s_refused_commit_is_not_brought_back_by_a_restore_or_a_checkout(
    scene: Scene, how: str
) -> None:
    """The carry-back refuses the agent's commit of the bare-looking ``src/``, but its
    objects are in the vault (they were taken in to be checked) and the agent knows its id:
    MCP ``checkpoint_restore`` to it, or ``avfs checkout ID -- src``, made it the fork's
    tree, and the person's ``git status`` in ``MOUNT/src`` ran the config. A commit no ref
    of the vault reaches is now looked at by the same rule first, and refused."""
    marker = scene.ran / f"{how}-fsmonitor"
    res = scene.attack(
        bare_plant(marker) + "git add src && git commit -qm 'a library' && git log --format=%H -1\n"
    )
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    agents = res.result.stdout.strip()
    code = None
    if how == "mcp-restore":
        from avfs_git.mcp.tools import AvfsTools

        try:
            AvfsTools(scene.home.path, "v:main").call("checkpoint_restore", {"rev": agents})
        except AvfsError as exc:
            code = exc.code
    else:
        got = scene.cli(*_spec(scene), "checkout", agents, "--", "src")
        code = None if got.code == 0 else json.loads(got.out)["error"]["code"]
    _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    assert code == "invalid_path", code

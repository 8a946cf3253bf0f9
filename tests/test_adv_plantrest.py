"""Planted git state at the writers the thirty-fourth round left (docs/security.md, "Every
writer of a fork's tree, and where it is checked"; the thirty-fifth round, plant3).

From the agent's side, through real confined ``proxy exec`` runs: half of a bare-looking
``src/`` (``HEAD``, ``objects/``, ``refs/``) in one fork, a ``src/config`` naming
``core.fsmonitor`` in another, or the whole repository in a commit of the agent's own git
(refused by the carry-back, its objects left in the vault). Then the person acts as usual,
on a real mount of the target (overlay and pure FUSE): ``avfs merge --write-conflicts``
(the clean part of the merge brings the other half), ``avfs pull`` of a branch the agent
pushed to the remote (a fast-forward), ``avfs vault fork`` and ``avfs merge --continue``
while the agent's command still runs (its writes not yet looked at), and plain ``git
status`` in ``MOUNT/src`` or in every commit of a clone. On main each ran the planted program
on the host.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE
from avfs_git.ops import mounts
from avfs_git.ops import quickstart as q
from avfs_git.proxy.envelope import ExecRequest
from avfs_git.proxy.execute import execute

from .conftest import AUTHOR
from .test_adv_mountfiles import IDENTITY, Scene, _need_bwrap
from .test_adv_mountfiles import scene as scene  # a mounted fork, both backends, real bwrap
from .test_adv_planted import _person_in
from .test_adv_plantmerge import BARE_HALF, _agent_in, _avfs, _config_half, _refused
from .test_adv_plantwriters import _clone_and_check_out_everything, bare_plant
from .waitingexec import exec_argv, running

LINES = "".join(f"{i}\n" for i in range(9)).encode()


def _vault_git(scene: Scene, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", scene.vault.path, *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_conflicts_written_into_the_mounted_fork_never_bring_the_other_half(scene: Scene) -> None:
    """Fork ``a``'s bare half is merged into the mounted ``main``; fork ``b`` holds the
    config half and changes a line of ``lines.txt`` the person changed too. The person's
    ``avfs merge b --write-conflicts``: on main the conflict was written and the clean
    part of the merge, ``src/config``, with it: the person's ``git status`` in
    ``MOUNT/src`` ran the program. Now refused before anything is written (no merge
    state, nothing in the mount), and a plain conflict still writes."""
    marker = scene.ran / "conflicts-fsmonitor"
    scene.vault.workspace("main").write("lines.txt", LINES)
    checkpoint.save(scene.vault, "main", message="lines")
    for fork in ("a", "b"):
        scene.vault.fork("main", fork)
    _agent_in(scene, "a", BARE_HALF)
    _agent_in(scene, "b", _config_half(marker) + "sed -i 5s/4/four-b/ lines.txt\n")
    code, doc = _avfs(scene, "merge", "a")
    assert code == 0, doc
    scene.vault.workspace("main").write("lines.txt", LINES.replace(b"4\n", b"four-main\n"))
    checkpoint.save(scene.vault, "main", message="the person's line")
    tip = scene.git("rev-parse", "HEAD").stdout.strip()
    code, doc = _avfs(scene, "merge", "b", "--write-conflicts")
    _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    _refused(code, doc)
    assert scene.git("rev-parse", "HEAD").stdout.strip() == tip
    assert not (scene.mp / "src/config").exists()
    assert b"<<<<<<<" not in (scene.mp / "lines.txt").read_bytes()
    code, doc = _avfs(scene, "merge", "--abort")
    assert code == 2 and doc["error"]["code"] == "usage", doc  # no merge was left open
    # a conflict that joins nothing of git's own state is written as before
    scene.vault.fork("a", "c")
    _agent_in(scene, "c", "sed -i 5s/4/four-c/ lines.txt\nprintf 'ref: refs/heads/c\\n' > src/HEAD\n")
    code, doc = _avfs(scene, "merge", "c", "--write-conflicts")
    assert code == 3, doc
    assert doc["results"][-1]["status"] == "conflicts_written", doc
    assert b"<<<<<<<" in (scene.mp / "lines.txt").read_bytes()


def test_a_fast_forward_pull_of_a_branch_the_agent_pushed(scene: Scene, tmp_path: Path) -> None:
    """The agent's own ``git commit`` of the whole planted ``src/`` inside an exec is
    refused by the carry-back (its objects stay in the vault, its id printed); with a
    network, the agent pushes it to the vault's remote itself (here: the test pushes that
    commit from the vault, as the agent's ``git push`` would). The person's ``avfs pull
    origin agent`` fast-forwards the mounted ``main`` to it: on main the mount then held the
    repository and ``git status`` in ``MOUNT/src`` ran it. Now refused, nothing moved; a
    pull of a plain change still fast-forwards, and so does ``avfs merge origin/agent``
    of it (the same check, a remote-tracking branch named as the source)."""
    marker = scene.ran / "pull-ff-fsmonitor"
    tip, remote = _pushed_by_the_agent(scene, tmp_path, marker)
    code, doc = _avfs(scene, "pull", "origin", "agent")
    if (scene.mp / "src").is_dir():  # (main: the fast-forward brought it)
        _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    _refused(code, doc)
    assert scene.git("rev-parse", "HEAD").stdout.strip() == tip
    assert not (scene.mp / "src").exists()
    code, doc = _avfs(scene, "merge", "origin/agent")
    _refused(code, doc)
    # a plain change pushed the same way still fast-forwards
    plain = _vault_git(scene, "commit-tree", "-p", tip, "-m", "plain", _plain_tree(scene, tip))
    _vault_git(scene, "push", "-q", "-f", str(remote), f"{plain}:refs/heads/agent")
    code, doc = _avfs(scene, "pull", "origin", "agent")
    assert code == 0 and doc["merge"]["status"] == "fast_forward", doc
    assert (scene.mp / "src/HEAD").read_bytes() == b"ref: refs/heads/main\n"


def _pushed_by_the_agent(scene: Scene, tmp_path: Path, marker: Path) -> tuple[str, Path]:
    """The agent's commit of the planted ``src/`` in fork ``a`` (refused by the carry-back,
    its objects in the vault), pushed to the vault's remote ``origin`` as branch ``agent``
    (the agent's own ``git push`` from a run with a network, here made from the vault).
    Returns (``main``'s tip, the remote)."""
    scene.vault.fork("main", "a")
    script = (
        IDENTITY
        + bare_plant(marker)
        + "git add src && git commit -qm 'a library' && git log --format=%H -1\n"
    )
    res = execute(scene.home, scene.vault, "a", ExecRequest(shell=script))
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    agents = res.result.stdout.strip().splitlines()[-1]
    assert res.to_dict().get("refs_refused"), res.to_dict()
    tip = scene.git("rev-parse", "HEAD").stdout.strip()
    assert _vault_git(scene, "merge-base", "--is-ancestor", tip, agents) == ""  # a fast-forward
    remote = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    assert _avfs(scene, "remote", "add", "origin", str(remote))[0] == 0
    _vault_git(scene, "push", "-q", str(remote), f"{agents}:refs/heads/agent")
    return tip, remote


@pytest.mark.parametrize("how", ["checkout", "restore"])
def test_a_checkout_or_a_restore_of_a_remote_branch_the_agent_pushed(
    scene: Scene, tmp_path: Path, how: str
) -> None:
    """The same pushed commit, fetched (``avfs fetch origin``), then named through its
    remote-tracking ref: ``avfs checkout src --from origin/agent`` or ``avfs checkpoint
    restore origin/agent``. A name was taken for history and not looked at (main: the
    mount held the repository, the person's ``git status`` in ``MOUNT/src`` ran it); a
    remote-tracking ref now reaches nothing for the rule (``refuse_unreached``)."""
    marker = scene.ran / f"remote-{how}-fsmonitor"
    tip, _remote = _pushed_by_the_agent(scene, tmp_path, marker)
    assert _avfs(scene, "fetch", "origin")[0] == 0
    args = (
        ["checkout", "src", "--from", "origin/agent"]
        if how == "checkout"
        else ["checkpoint", "restore", "origin/agent"]
    )
    code, doc = _avfs(scene, *args)
    if (scene.mp / "src").is_dir():  # (main: it brought it)
        _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    _refused(code, doc)
    assert scene.git("rev-parse", "HEAD").stdout.strip() == tip


def _plain_tree(scene: Scene, tip: str) -> str:
    """``tip``'s tree with a plain ``src/HEAD`` added (a repository of no config: content)."""
    env = dict(os.environ, GIT_INDEX_FILE=str(scene.ran.parent / "plain-index"))
    run = {"capture_output": True, "text": True, "check": True, "env": env}
    subprocess.run(["git", "--git-dir", scene.vault.path, "read-tree", tip], **run)  # type: ignore[call-overload]
    blob = subprocess.run(
        ["git", "--git-dir", scene.vault.path, "hash-object", "-w", "--stdin"],
        input="ref: refs/heads/main\n",
        **run,  # type: ignore[arg-type]
    ).stdout.strip()
    subprocess.run(
        [
            "git",
            "--git-dir",
            scene.vault.path,
            "update-index",
            "--add",
            "--cacheinfo",
            f"100644,{blob},src/HEAD",
        ],
        **run,  # type: ignore[arg-type]
    )
    tree: str = subprocess.run(["git", "--git-dir", scene.vault.path, "write-tree"], **run).stdout.strip()  # type: ignore[call-overload]
    os.unlink(env["GIT_INDEX_FILE"])
    return tree


_WAIT = "i=0; while [ ! -e go.flag ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done\n"


@pytest.mark.parametrize("scene", ["overlay"], indirect=True)
@pytest.mark.parametrize("act", ["fork", "continue", "undo"])
def test_a_fork_or_a_merge_continue_while_the_agent_s_command_still_runs(
    scene: Scene, tmp_path: Path, act: str
) -> None:
    """In an overlay mount a command's writes are the kernel's: avfs looks at them (and
    sets a planted repository aside) when the run ends. The agent's command plants the
    whole ``src/`` and waits. Meanwhile the person's ``avfs vault fork v:main x`` (the
    source's state, uncheckpointed changes included) or ``avfs merge --continue`` of a
    merge whose conflicts were written (the workspace captured as the merge commit): on
    main each took the planted repository in, unlooked at, and the new fork's mount (or a
    clone's checkout of the merge commit) ran it. ``avfs undo`` went ahead too (it moved
    the fork back under the running command; here its recovery kept nothing, and nothing
    planted came back by ``avfs redo``: it fails on main only by not waiting). Now each
    waits for the run, as a
    checkpoint does (here, with no wait: ``busy``), and after the run the planted
    config is set aside in the fork, the new fork and the merge commit alike."""
    marker = scene.ran / f"{act}-fsmonitor"
    if act == "continue":
        scene.vault.workspace("main").write("lines.txt", LINES)
        checkpoint.save(scene.vault, "main", message="lines")
        scene.vault.fork("main", "b")
        _agent_in(scene, "b", "sed -i 5s/4/four-b/ lines.txt\n")
        scene.vault.workspace("main").write("lines.txt", LINES.replace(b"4\n", b"four-main\n"))
        checkpoint.save(scene.vault, "main", message="the person's line")
        code, doc = _avfs(scene, "merge", "b", "--write-conflicts")
        assert code == 3, doc
        (scene.mp / "lines.txt").write_bytes(LINES)  # resolved by hand
    script = IDENTITY + bare_plant(marker) + ": > started.flag\n" + _WAIT
    argv = [*exec_argv(home=scene.home.path), "--", "sh", "-c", script]
    nowait = {"AVFS_LOCK_WAIT": "0"}
    with running(argv, scene.mp / "started.flag") as run:
        assert (scene.mp / "src/config").exists()
        if act == "fork":
            got = scene.cli("--home", scene.home.path, "--json", "vault", "fork", "v:main", "x", env=nowait)
        elif act == "undo":
            got = scene.cli("--home", scene.home.path, "--vault", "v:main", "--json", "undo", env=nowait)
        else:
            got = scene.cli(
                "--home", scene.home.path, "--vault", "v:main", "--json", "merge", "--continue", env=nowait
            )
        (scene.mp / "go.flag").write_bytes(b"")
        out, err = run.communicate(timeout=180)
    doc = json.loads(got.out)
    ran = json.loads(out)
    assert ran["result"]["exit_code"] == 0, (ran, err)
    if got.code == 0:  # (main: taken in during the run; what the person does next)
        if act == "fork":
            _status_in_a_mount_of(scene, "x", tmp_path / "x")
        if act == "undo":
            scene.cli("--home", scene.home.path, "--vault", "v:main", "--json", "redo")
            if (scene.mp / "src").is_dir():
                _person_in(scene, "src")
        _clone_and_check_out_everything(scene, tmp_path)
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    assert got.code == 75 and doc["error"]["code"] == "busy", doc
    assert ran["planted_git_dirs"], ran
    # after the run: the fork (and the merge) go ahead, and hold nothing planted
    if act == "fork":
        got = scene.cli("--home", scene.home.path, "--json", "vault", "fork", "v:main", "x")
    elif act == "undo":
        got = scene.cli("--home", scene.home.path, "--vault", "v:main", "--json", "undo")
        assert got.code == 0, got.out
        got = scene.cli("--home", scene.home.path, "--vault", "v:main", "--json", "redo")
        _person_in(scene, "src")
    else:
        got = scene.cli("--home", scene.home.path, "--vault", "v:main", "--json", "merge", "--continue")
    assert got.code == 0, got.out
    if act == "fork":
        _status_in_a_mount_of(scene, "x", tmp_path / "x-after")
    _clone_and_check_out_everything(scene, tmp_path / "after")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"


def _status_in_a_mount_of(scene: Scene, fork: str, mp: Path) -> None:
    """The person mounts ``fork`` (the scene's backend) and runs ``git status`` in its ``src``."""
    mp.mkdir()
    mounts.mount(scene.home, scene.vault, fork, str(mp), backend="overlay")
    try:
        subprocess.run(["git", "status"], cwd=mp / "src", capture_output=True, timeout=120, check=False)
        subprocess.run(["git", "status"], cwd=mp, capture_output=True, timeout=120, check=True)
    finally:
        mounts.unmount(scene.home, scene.vault, fork, lazy=True)


def test_apply_into_the_person_s_checkout_holding_the_other_half(tmp_path: Path, cli: Any) -> None:
    """``avfs up`` of the person's checkout; the person then keeps a bare-looking ``src/``
    of their own (``HEAD``, ``objects/``, ``refs/``: a fixture, no config) that the fork
    never saw; the agent's confined exec in its fork writes ``src/config`` naming
    ``core.fsmonitor`` (no repository in the fork: let through). The person's ``avfs apply``
    (or ``--patch``, then ``git apply``) wrote it beside their fixture, and their ``git
    status`` in ``proj/src`` ran it (main). Now refused before anything is written, and a
    plain change still applies."""
    _need_bwrap()
    marker = tmp_path / "ran" / "apply-fsmonitor"
    marker.parent.mkdir()
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "README").write_text("a project\n")
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))
    for args in (
        ["init", "-q"],
        ["add", "README"],
        ["-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", "p"],
    ):
        subprocess.run(["git", *args], cwd=proj, env=env, check=True, capture_output=True)
    home = Home(os.environ["AVFS_HOME"], author=AUTHOR, mounts=MOUNT_SIDE)
    q.up(home, str(proj), agent="a", mount=False)
    vault = home.vault("proj")
    res = execute(
        home, vault, "a", ExecRequest(shell=IDENTITY + _config_half(marker) + "echo more >> README\n")
    )
    assert res.result is not None and res.result.exit_code == 0 and res.commit is not None, res.to_dict()
    subprocess.run(["sh", "-c", BARE_HALF], cwd=proj, check=True)  # the person's fixture
    patch = tmp_path / "a.patch"
    got = [cli("--json", "apply", "proj:a", "--patch", str(patch)), cli("--json", "apply", "proj:a")]
    if patch.exists():  # (main: the person applies the patch they asked for)
        subprocess.run(["git", "apply", str(patch)], cwd=proj, env=env, capture_output=True)
    subprocess.run(["git", "status"], cwd=proj / "src", env=env, capture_output=True, timeout=120)
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    for one in got:
        doc = json.loads(one.out)
        assert one.code == 1 and doc["error"]["code"] == "invalid_path", doc
        assert "src/config" in doc["error"]["details"]["found"], doc
    assert not (proj / "src/config").exists() and not patch.exists()
    assert (proj / "README").read_text() == "a project\n"
    # the same fork without the config applies
    assert execute(home, vault, "a", ExecRequest(shell="rm src/config")).commit is not None
    done = cli("--json", "apply", "proj:a")
    assert done.code == 0, done.out
    assert (proj / "README").read_text() == "a project\nmore\n"


@pytest.mark.parametrize("commit", [True, False])
def test_a_planted_config_the_agent_stages_never_reaches_the_person_s_commit(
    scene: Scene, tmp_path: Path, commit: bool
) -> None:
    """The agent's command writes the whole ``src/`` and stages it (``git add src``) in
    the mount; with ``--no-commit`` too (the index then is the person's next commit). The
    work tree's config is set aside after the run, and the index follows it: the person's
    plain ``git commit`` in the mount commits nothing planted. Held on main where the run
    commits (the index follows its commit); with ``--no-commit`` the staged config stayed,
    the person's commit recorded it, and a clone's checkout of it ran the program."""
    marker = scene.ran / f"staged-{commit}-fsmonitor"
    res = scene.attack(bare_plant(marker) + "git add src\n", commit=commit)
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    doc = res.to_dict()
    assert doc["planted_git_dirs"], doc
    if not commit:  # the index's entries put back, and said
        said = [r["reason"] for r in doc["refs_refused"] if r["ref"] == "index"]
        assert said and "src/config" in said[0], doc
    assert "src/config" not in scene.git("diff", "--cached", "--name-only").stdout
    scene.git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qm", "the person's", check=False)
    _person_in(scene, "src")
    _clone_and_check_out_everything(scene, tmp_path)
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"


@pytest.mark.parametrize("form", ["command", "argv"])
def test_a_repository_codex_s_apply_patch_writes_in_the_mount_is_set_aside_after_it(
    scene: Scene, form: str
) -> None:
    """Codex's ``apply_patch`` writes in the mount (the kernel's write) and names its
    paths only inside the patch: its PostToolUse hook (``avfs hook codex post-tool-use``)
    checkpointed the planted ``src/`` as it was (main), and the person's ``git status`` in
    ``MOUNT/src`` ran the config. Now the patch's ``*** Add File:`` paths are looked at as
    Claude Code's ``Write`` path is, the patch given as one string or as an argument vector."""
    marker = scene.ran / f"patch-{form}-fsmonitor"
    files = {
        "src/HEAD": "ref: refs/heads/main\n",
        "src/objects/info/packs": "",
        "src/refs/heads/.keep": "",
        "src/config": f"[core]\n\trepositoryformatversion = 0\n\tworktree = .\n\tfsmonitor = touch {marker}; false\n",
    }
    patch = "*** Begin Patch\n"
    for path, text in files.items():
        (scene.mp / path).parent.mkdir(parents=True, exist_ok=True)
        (scene.mp / path).write_text(text)  # (what the tool wrote)
        patch += f"*** Add File: {path}\n" + "".join(f"+{line}\n" for line in text.splitlines())
    patch += "*** End Patch\n"
    command: object = patch if form == "command" else ["apply_patch", patch]
    event = {
        "session_id": "s", "transcript_path": "/tmp/s.jsonl", "cwd": str(scene.mp), "permission_mode": "default",
        "hook_event_name": "PostToolUse", "tool_name": "apply_patch", "tool_use_id": "t", "turn_id": "u",
        "tool_input": {"command": command}, "tool_response": "Success. Updated the following files: ...",
    }  # fmt: skip
    got = scene.cli(
        "--home", scene.home.path, "hook", "codex", "post-tool-use", stdin=json.dumps(event).encode()
    )
    _person_in(scene, "src")
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    assert got.code == 0, got
    assert "planted git file(s) set aside: src/config" in got.out, got.out
    tree = _vault_git(scene, "ls-tree", "-r", "--name-only", "main").split()
    assert "src/config.avfs-planted" in tree, tree
    assert "fsmonitor" not in _vault_git(scene, "show", "main:src/config")  # (the plain keys kept)


def test_an_export_over_a_directory_holding_the_other_half(scene: Scene, tmp_path: Path) -> None:
    """The agent's fork holds the config half; the person's directory a bare-looking
    ``src/`` of their own. ``avfs export v:a DIR --force`` (the fork's files replace the
    directory's, the rest stays) wrote the config beside it and the person's ``git
    status`` in ``DIR/src`` ran it (main). Now refused before anything is written; into a
    new directory the same fork exports as before."""
    marker = scene.ran / "export-fsmonitor"
    scene.vault.fork("main", "a")
    _agent_in(scene, "a", _config_half(marker))
    dest = tmp_path / "out"
    dest.mkdir()
    subprocess.run(["sh", "-c", BARE_HALF], cwd=dest, check=True)
    got = scene.cli("--home", scene.home.path, "--json", "export", "v:a", str(dest), "--force")
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))
    subprocess.run(["git", "status"], cwd=dest / "src", env=env, capture_output=True, timeout=120)
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    doc = json.loads(got.out)
    assert got.code == 1 and doc["error"]["code"] == "invalid_path", doc
    assert "src/config" in doc["error"]["details"]["found"], doc
    assert sorted(p.name for p in dest.iterdir()) == ["src"] and not (dest / "src/config").exists()
    got = scene.cli("--home", scene.home.path, "--json", "export", "v:a", str(tmp_path / "new"))
    assert got.code == 0 and (tmp_path / "new/src/config").exists(), got.out

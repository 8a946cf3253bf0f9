"""review38's lower findings, from the attacker's and the person's side (the thirty-sixth
round, plant5; docs/security.md, "Every writer of a fork's tree").

Each plants inside a real confined ``proxy exec`` (or acts as the person does: their
``avfs`` commands, their plain ``git`` in the mount), then looks at what the person's next
step sees or runs. Real mounts (both backends where the code paths differ), real git.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.mount.hookscripts import GIT_HOOKS, HOOKS_DIR
from avfs_git.mount.personhooks import GATES_DIR
from avfs_git.ops import mounts
from avfs_git.ops import quickstart as q
from avfs_git.proxy.envelope import ExecRequest
from avfs_git.proxy.execute import execute

from .test_adv_mountfiles import IDENTITY, Scene
from .test_adv_mountfiles import scene as scene
from .test_adv_plantmerge import BARE_HALF, _agent_in, _avfs, _config_half
from .test_adv_plantrest import LINES
from .waitingexec import exec_argv, running


def _locks(vault: Any) -> list[str]:
    return sorted(os.listdir(os.path.join(vault.state_dir, "locks")))


def test_a_refused_undo_of_a_deleted_fork_s_operation_leaves_no_lock_files(
    home: Any, vault: Any, cli: Any
) -> None:
    """An agent's fork ``x`` ran a command (its exec lock made), then was deleted (its lock
    files go). The person's (or the agent's, over MCP) ``avfs undo --op`` of an operation
    of ``x`` is refused, its ref being gone; on main the refusal left ``.exec-x.lock`` and
    ``x.lock`` behind, for forks that no longer exist (``avfs prune`` lists them as such),
    one more pair each such undo. Now nothing is left, and a later fork of that name runs
    and is deleted as any."""
    ws = vault.workspace("main")
    ws.write("a.txt", b"a\n")
    checkpoint.save(vault, "main", message="a")
    vault.fork("main", "x")
    ops = [vault.oplog.last_undoable("x")]  # the fork's creation, then the exec's commit
    res = execute(home, vault, "x", ExecRequest(shell="echo by-the-agent > b.txt"))
    assert res.success and res.commit is not None, res.to_dict()
    ops.append(vault.oplog.last_undoable("x"))
    vault.delete_fork("x")
    before = _locks(vault)
    assert not [n for n in before if n in (".exec-x.lock", "x.lock")], before
    spec = ["--home", home.path, "--vault", "v", "--json"]
    for op in ops:
        assert op is not None
        got = cli(*spec, "undo", "--op", str(op.id))
        assert got.code != 0, got.out
        assert json.loads(got.out)["kind"] == "error", got.out
        assert _locks(vault) == before, "a refused undo left lock files"
        assert not vault.has_fork("x")
    vault.fork("main", "x")  # a later fork of that name
    res = execute(home, vault, "x", ExecRequest(shell="echo again > c.txt"))
    assert res.success and res.commit is not None, res.to_dict()
    vault.delete_fork("x")
    assert _locks(vault) == before


# -- the person's hooks with git's fsmonitor off (item 1) ---------------------------------

# the git command the person runs first after taking their `core.hooksPath` away, and the
# hook of theirs that runs first in it (each is the first hook of its command that git runs:
# `-n` skips pre-commit; `git add` writes the index; `git am` reads the message first)
FIRST_HOOKS = {
    "commit -n": "prepare-commit-msg",
    "rebase": "pre-rebase",
    "add": "post-index-change",
    "am": "applypatch-msg",
}
_PATCH = """From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: The Person <person@host.invalid>
Date: Thu, 1 Jan 2026 00:00:00 +0000
Subject: [PATCH] a new file

---
 mailed.txt | 1 +
 1 file changed, 1 insertion(+)
 create mode 100644 mailed.txt

diff --git a/mailed.txt b/mailed.txt
new file mode 100644
index 0000000..3b18e51
--- /dev/null
+++ b/mailed.txt
@@ -0,0 +1 @@
+hello world
--
2.39.5

"""


def _hook(mark: Path) -> str:
    return f"#!/bin/sh\necho ran >> {shlex.quote(str(mark))}\nexit 0\n"


def _wait_for(what: str, ok: Any) -> None:
    """Wait until ``ok()`` (the mount's daemon acts on an inotify event of its own)."""
    deadline = time.monotonic() + 60
    while not ok():
        assert time.monotonic() < deadline, f"waited a minute for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize(
    "scene,command",
    [("overlay", c) for c in FIRST_HOOKS] + [("fuse", "commit -n")],
    indirect=["scene"],
)
def test_a_hooks_directory_the_person_left_runs_nothing_the_agent_planted_there(
    scene: Scene, command: str
) -> None:
    """The person's project had ``core.hooksPath .githooks`` (husky's kind: the work tree's
    own hooks) and the person runs git's fsmonitor off for the mount's worktree (``git
    config --worktree core.fsmonitor false``). The agent's confined command writes a hook
    of every name into ``.githooks/``; the person, no longer trusting it, takes the setting
    away (``git config --unset core.hooksPath``: their hooks are git's own directory's, the
    vault's ``hooks/``) and runs ``git commit -n`` (or ``git rebase``, ``git add``, ``git
    am``). On main the mount's link to the person's hooks directory was pointed again only
    as git's fsmonitor hook asked, or by a gate at ``pre-commit``/``pre-merge-commit``,
    which ``-n`` skips and the others never run: the agent's ``.githooks/`` hook ran on the
    host, as the person, and theirs did not. Now the first hook of each of git's commands
    is a gate while fsmonitor is off: the person's own hook runs, the planted one never."""
    hook = FIRST_HOOKS[command]
    gate = Path(scene.own, HOOKS_DIR, "pre-commit")
    if command == "rebase":
        (scene.mp / "rebased.txt").write_text("to rebase\n")
        scene.git("add", "rebased.txt")
        scene.git("commit", "-q", "-m", "a commit to rebase")
    scene.git("config", "core.hooksPath", ".githooks")
    scene.git("status", "--porcelain")  # (git asks the daemon: the link follows the setting)
    scene.git("config", "--worktree", "core.fsmonitor", "false")
    _wait_for("the gates", lambda: os.readlink(gate) == os.path.join("..", GATES_DIR, "pre-commit"))
    planted = "mkdir -p .githooks\n" + "".join(
        f"cat > .githooks/{name} <<'EOF'\n{_hook(scene.ran / ('planted-' + name))}EOF\nchmod +x .githooks/{name}\n"
        for name in GIT_HOOKS
    )
    res = scene.attack(planted)
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    theirs = Path(scene.vault.path, "hooks", hook)  # the person's own hook of that name
    theirs.write_text(_hook(scene.ran / f"person-{hook}"))
    theirs.chmod(0o755)
    scene.git("config", "--unset", "core.hooksPath")
    if command == "commit -n":
        scene.git("commit", "-q", "-n", "--allow-empty", "-m", "the person's commit")
    elif command == "rebase":
        scene.git("rebase", "-q", "-f", "HEAD~1")
    elif command == "add":
        (scene.mp / "added.txt").write_text("the person's file\n")
        scene.git("add", "added.txt")
    else:
        (scene.mp.parent / "mailed.patch").write_text(_PATCH)
        scene.git("am", "-q", str(scene.mp.parent / "mailed.patch"))
    ran = sorted(os.listdir(scene.ran))
    assert not [n for n in ran if n.startswith("planted-")], f"the agent's hook ran on the host: {ran}"
    assert f"person-{hook}" in ran, ran


# -- a token dated a few events ahead (item 5) ----------------------------------------------

# the agent's script: its git writes a token into the index, which it then dates LEAD events
# ahead (``since``: as avfs's own question on the overlay backend, ``avfs-since:INSTANCE:SEQ``)
_AHEAD = r"""
import hashlib, struct, subprocess, sys
gd = subprocess.run(["git", "rev-parse", "--git-dir"], capture_output=True, text=True).stdout.strip()
subprocess.run(["git", "status", "--porcelain"], capture_output=True)  # (a token written)
path = gd + "/index"
with open(path, "rb") as fh:
    data = fh.read()[:-20]
at = data.rfind(b"FSMN")
size = struct.unpack(">I", data[at + 4 : at + 8])[0]
body = data[at + 8 : at + 8 + size]
end = body.index(b"\0", 4)
old = body[4:end].decode().split(":")
lead = int(sys.argv[2])
if sys.argv[1] == "since":
    new = "avfs-since:%s:%d" % (old[1], int(old[-1]) + lead)
else:
    new = ":".join(old[:-1] + [str(int(old[-1]) + lead)])
nb = body[:4] + new.encode() + b"\0" + body[end + 1 :]
data = data[:at] + b"FSMN" + struct.pack(">I", len(nb)) + nb + data[at + 8 + size :]
with open(path, "wb") as fh:
    fh.write(data + hashlib.sha1(data).digest())
print("planted", ":".join(old), "->", new)
"""


@pytest.mark.parametrize(
    "scene,form,lead",
    [("overlay", "own", 2), ("overlay", "since", 2), ("fuse", "own", 4), ("fuse", "own", 8)],
    indirect=["scene"],
)
def test_a_token_dated_a_few_events_ahead_hides_none_of_the_person_s_next_edits(
    scene: Scene, form: str, lead: int
) -> None:
    """review38 fixed a token dated past the journal's end as the person's `git status`
    asks (a pure-FUSE mount's): one dated a few events ahead is not past it by then. The
    agent's confined command writes such a token into the mount's index (its own daemon's
    form, or, on the overlay backend, avfs's own question ``avfs-since``); the person then
    edits four files and runs plain `git status`: on main the first edits (those whose
    events the lead covered) were not listed, nor committed by `git commit -a`. Now a token
    dated past every token handed out is answered "everything may have changed"; the
    answers after it come from the journal again."""
    scene.vault.workspace("main").write("ahead.py", _AHEAD.encode())
    checkpoint.save(scene.vault, "main", message="the agent's script")  # (the run changes nothing)
    scene.git("status", "--porcelain")
    res = execute(scene.home, scene.vault, "main", ExecRequest(argv=("python3", "ahead.py", form, str(lead))))
    assert res.result is not None and res.result.exit_code == 0, res.to_dict()
    assert "planted" in res.result.stdout, res.to_dict()
    (scene.mp / "a.txt").write_text("the person's first edit\n")
    (scene.mp / "README").write_text("the person's second edit\n")
    (scene.mp / "new1").write_text("new\n")
    (scene.mp / "new2").write_text("new\n")
    got = scene.git("status", "--porcelain").stdout
    for line in (" M a.txt", " M README", "?? new1", "?? new2"):
        assert line in got, got
    scene.git("commit", "-q", "-a", "-m", "the person's edits")
    assert scene.git("status", "--porcelain").stdout == "?? new1\n?? new2\n"
    scene.hook_answers()  # (and answered from the journal again)


@pytest.mark.parametrize("scene", ["fuse", "overlay"], indirect=True)
def test_a_token_dated_ahead_is_not_trusted_after_the_mount_is_remounted(scene: Scene, request: Any) -> None:
    """review39: the rule above held only while the daemon that handed the tokens out ran.
    The pure-FUSE daemon began with every token up to the journal's end taken as handed
    out, so a token planted four events ahead, once the person's four edits moved the
    journal past it and the mount was remounted (a reboot, `avfs unmount` then `avfs
    mount`), was trusted: on main ` M a.txt` (the first edit) was missing from the person's
    `git status`. Now a new daemon trusts no token it did not hand out (the first answer
    after a remount is "everything"; the next come from the journal again)."""
    scene.vault.workspace("main").write("ahead.py", _AHEAD.encode())
    checkpoint.save(scene.vault, "main", message="the agent's script")
    scene.git("status", "--porcelain")
    res = execute(scene.home, scene.vault, "main", ExecRequest(argv=("python3", "ahead.py", "own", "4")))
    assert res.result is not None and "planted" in res.result.stdout, res.to_dict()
    (scene.mp / "a.txt").write_text("the person's first edit\n")
    (scene.mp / "README").write_text("the person's second edit\n")
    (scene.mp / "new1").write_text("new\n")
    (scene.mp / "new2").write_text("new\n")
    backend = request.node.callspec.params["scene"]
    mounts.unmount(scene.home, scene.vault, "main")
    mounts.mount(scene.home, scene.vault, "main", str(scene.mp), backend=backend)
    got = scene.git("status", "--porcelain").stdout
    for line in (" M a.txt", " M README", "?? new1", "?? new2"):
        assert line in got, got
    scene.hook_answers()  # (the token that status wrote: answered from the journal)


# -- a merge's conflicts written: the result looked at without a commit (item 2) -----------


def _dangling_commits(vault: Any) -> set[str]:
    out = subprocess.run(
        ["git", "--git-dir", vault.path, "fsck", "--no-reflogs", "--no-progress"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {ln.split()[2] for ln in out.splitlines() if ln.startswith("dangling commit ")}


@pytest.mark.parametrize("scene", ["overlay"], indirect=True)
def test_conflicts_written_with_a_name_of_git_s_own_state_leave_no_dangling_commit(scene: Scene) -> None:
    """The agent's fork ``c`` changes a line the person changed too and writes ``src/HEAD``
    (a name of git's own state: the merge's shown tree is looked at before it is written,
    plant3). The person's ``avfs merge c --write-conflicts``: on main the look made a commit
    of the shown tree (the one ``merge --continue`` would make) and left it unreferenced,
    one each such merge: a dangling commit in the person's ``git fsck`` of the vault, the
    agent's tree in it, kept until a ``gc`` pruned it. Now the tree itself is read; the
    conflicts are still written, and ``merge --continue`` commits the resolution."""
    scene.vault.workspace("main").write("lines.txt", LINES)
    checkpoint.save(scene.vault, "main", message="lines")
    scene.vault.fork("main", "c")
    _agent_in(
        scene,
        "c",
        "sed -i 5s/4/four-c/ lines.txt\nmkdir -p src && printf 'ref: refs/heads/c\\n' > src/HEAD\n",
    )
    scene.vault.workspace("main").write("lines.txt", LINES.replace(b"4\n", b"four-main\n"))
    checkpoint.save(scene.vault, "main", message="the person's line")
    before = _dangling_commits(scene.vault)
    code, doc = _avfs(scene, "merge", "c", "--write-conflicts")
    assert code == 3, doc
    assert b"<<<<<<<" in (scene.mp / "lines.txt").read_bytes()
    assert (scene.mp / "src/HEAD").read_text() == "ref: refs/heads/c\n"
    assert _dangling_commits(scene.vault) == before, "the conflicted merge left a dangling commit"
    (scene.mp / "lines.txt").write_bytes(LINES)  # resolved by hand
    code, doc = _avfs(scene, "merge", "--continue")
    assert code == 0, doc
    assert _dangling_commits(scene.vault) == before
    assert scene.git("status", "--porcelain").stdout == ""


# -- export --force: what is written is what was checked (item 4) --------------------------


@pytest.mark.parametrize("scene", ["overlay", "fuse"], indirect=True)
def test_a_config_the_running_command_writes_during_an_export_never_reaches_the_directory(
    scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person's directory holds a bare-looking ``src/`` of their own (a fixture); the
    person exports the mounted fork over it (``export --force``) while the agent's command
    still runs in the mount. The export looked at the fork's files over the directory's
    (plant3), then walked the view again to write: the command's ``src/config`` naming
    ``core.fsmonitor``, written between the two walks (here exactly there: the test lets
    the command go once the look has returned, and waits for its write), went out
    unlooked at, and the person's ``git status`` in ``DIR/src`` ran it (main). Now the
    export writes the nodes and the bytes it looked at, walked once."""
    marker = scene.ran / "export-race-fsmonitor"
    dest = tmp_path / "out"
    dest.mkdir()
    subprocess.run(["sh", "-c", BARE_HALF], cwd=dest, check=True)
    script = (
        IDENTITY
        + ": > started.flag\n"
        + "i=0; while [ ! -e go.flag ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done\n"
        + _config_half(marker)
        + ": > done.flag\n"
        + "i=0; while [ ! -e end.flag ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done\n"
    )
    looked = q.refuse_planted_over

    def look_then_let_the_command_write(*args: Any, **kw: Any) -> Any:
        got = looked(*args, **kw)
        (scene.mp / "go.flag").write_bytes(b"")
        _wait_for("the command's write", (scene.mp / "done.flag").exists)
        return got

    monkeypatch.setattr(q, "refuse_planted_over", look_then_let_the_command_write)
    argv = [*exec_argv(home=scene.home.path), "--", "sh", "-c", script]
    with running(argv, scene.mp / "started.flag") as run:
        q.export(scene.vault, "main", str(dest), force=True)
        (scene.mp / "end.flag").write_bytes(b"")
        out, err = run.communicate(timeout=180)
    assert json.loads(out)["result"]["exit_code"] == 0, err
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))
    subprocess.run(["git", "status"], cwd=dest / "src", env=env, capture_output=True, timeout=120)
    assert not marker.exists(), "the planted core.fsmonitor ran on the host"
    assert not (dest / "src/config").exists()
    assert (dest / "started.flag").exists() and (dest / "a.txt").read_text() == "the fork's a\n"


@pytest.mark.parametrize("scene", ["overlay"], indirect=True)
@pytest.mark.parametrize("act", ["restore", "merge"])
def test_an_avfs_since_token_sees_the_view_s_moves_through_the_index_avfs_writes(
    scene: Scene, act: str
) -> None:
    """review38's question: an ``avfs-since:INSTANCE:SEQ`` token the agent plants in the
    index (its own daemon's instance, the journal's present) is answered from the upper
    layer's journal alone, with no check of the view (base, view time) it was made over.
    No gap, pinned here (it holds on main too): every avfs step that changes the view
    outside the upper layer rewrites the mount's index and its token (here a restore of
    the fork to an older checkpoint, and a merge of another fork into it), so the
    person's `git status` after it says what a full look says."""
    v = scene.vault
    v.workspace("main").write("ahead.py", _AHEAD.encode())
    checkpoint.save(v, "main", message="the agent's script")
    v.fork("main", "other")
    v.workspace("other").write("a.txt", b"other's a\n")
    checkpoint.save(v, "other", message="other's a")
    scene.git("status", "--porcelain")
    res = execute(scene.home, v, "main", ExecRequest(argv=("python3", "ahead.py", "since", "0")))
    assert res.result is not None and "avfs-since:" in res.result.stdout, res.to_dict()
    if act == "restore":
        checkpoint.restore(v, "main", "base")
    else:
        code, doc = _avfs(scene, "merge", "other")
        assert code == 0, doc
    got = scene.git("status", "--porcelain").stdout
    full = scene.git("-c", "core.fsmonitor=false", "status", "--porcelain").stdout
    assert got == full, (got, full)
    assert scene.git("diff", "HEAD", "--stat").stdout == ""  # (the mount shows the fork's commit)

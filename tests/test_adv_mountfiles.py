"""The files of a mount, from the attacker's side (issue 26 #1 #2 #5 #6; docs/security.md).

A confined ``proxy exec`` command can write the mounted fork's worktree git dir (git needs
its index and reflog there). Each test plants something there from inside a real confined
``proxy exec`` in a real mount (the overlay backend; the pure-FUSE one where its code path
differs): a forged owner file, symlinks in place of every file avfs's host side once wrote
there or writes there now, a chosen fsmonitor token, a replaced socket, a module for the
Python hook to import. Then the person acts as usual (plain ``git status`` and ``git commit``
in the mount, ``avfs status``, ``avfs write``, the next ``proxy exec``, a checkpoint), and
each test asserts: no host canary changed or appeared (a host directory outside the fork,
the vault's ``hooks/``), no planted code ran (it would have written a canary), the fork lost
nothing, and git in the mount still works with its fsmonitor hook answering.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.errors import GitInProgressError
from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.registry import mount_dir
from avfs_git.core.workspace.hookwire import SOCKET_NAME
from avfs_git.hooks.events import self_command
from avfs_git.mount.hookscripts import HOOKS_DIR, socket_hook
from avfs_git.mount.ownfiles import HOOK_FILE, STAMP_FILE, worktree_dir
from avfs_git.mount.personhooks import GATES_DIR
from avfs_git.ops import mounts
from avfs_git.proxy import confine
from avfs_git.proxy.envelope import ExecRequest, ExecResult
from avfs_git.proxy.execute import execute

from .conftest import skip_outside_ci
from .test_fuse import require_fuse
from .test_overlay import require_overlay

GIT = ["git", "-c", "user.name=The Person", "-c", "user.email=person@host.invalid"]
IDENTITY = "export GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@x.invalid GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=a@x.invalid\n"
# every file avfs's host side wrote in the worktree's git dir before (now in the mount's
# own directory), and what it still writes or reads there
OLD_NAMES = (
    "avfs-mount", "avfs-index", "avfs-index.lock", "avfs-view", "avfs-wake", "avfs-merge-head",
    "avfs-index-error", "fsmonitor-hook", SOCKET_NAME,
)  # fmt: skip
GIT_WRITTEN = ("index",)  # (MERGE_HEAD and MERGE_MSG: test_an_open_merge_...)


def _need_bwrap() -> None:
    why = confine.unavailable()
    if why is None:
        return
    skip_outside_ci(
        f"bubblewrap unavailable here: {why}", f"bubblewrap must work for these tests in CI: {why}"
    )


class Scene:
    """A mounted fork, a host directory of canaries outside it, and the person's tools."""

    def __init__(self, home: Any, vault: Any, mp: Path, pid: int, host: Path, ran: Path, cli: Any) -> None:
        self.home, self.vault, self.mp, self.pid = home, vault, mp, pid
        self.host, self.ran, self.cli = host, ran, cli
        self.git_dir = worktree_dir(vault, "main")
        self.own = mount_dir(vault.state_dir, "main")
        self.hooks = Path(vault.path) / "hooks"

    def host_state(self) -> dict[str, Any]:
        """What must never change: the canary directory and the vault's hooks/ (every
        file, its bytes and mode; symlinks by target)."""
        out: dict[str, Any] = {}
        for root in (self.host, self.hooks):
            for p in sorted(root.rglob("*")):
                st = p.lstat()
                out[str(p)] = (
                    os.readlink(p)
                    if p.is_symlink()
                    else (p.read_bytes() if p.is_file() else None, st.st_mode)
                )
        return out

    def attack(self, script: str, **kw: Any) -> ExecResult:
        """Run ``script`` as the agent: a shell script in the fork, in a confined exec."""
        name = f"attack-{hashlib.sha1(script.encode()).hexdigest()[:8]}.sh"
        self.vault.workspace("main").write(name, (IDENTITY + script).encode())
        res = execute(self.home, self.vault, "main", ExecRequest(shell=f"sh {name}", **kw))
        assert res.confinement is not None and res.confinement.kind == "bwrap", res.to_dict()
        assert res.result is not None, res.to_dict()
        return res

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(self.mp.parent))
        proc = subprocess.run(
            [*GIT, *args], cwd=self.mp, env=env, capture_output=True, text=True, check=False, timeout=120
        )
        assert not check or proc.returncode == 0, (args, proc.stderr)
        return proc

    def person_acts(self, tag: str) -> None:
        """What a person does next: plain git in the mount, the CLI, the next exec, a
        checkpoint, a commit in the mount."""
        self.git("status", "--porcelain")
        spec = ["--home", self.home.path, "--vault", "v:main"]
        res = self.cli(*spec, "--json", "status")
        assert res.code == 0, res.out
        res = self.cli(*spec, "--json", "write", f"person-{tag}.txt", f"by the person {tag}\n")
        assert res.code == 0, res.out
        nxt = execute(self.home, self.vault, "main", ExecRequest(argv=("true",)))
        assert nxt.success, nxt.to_dict()
        checkpoint.save(self.vault, "main", message=f"person {tag}")
        (self.mp / f"committed-{tag}.txt").write_text("by git commit\n")
        self.git("add", f"committed-{tag}.txt")
        self.git("commit", "-q", "-m", f"person commits {tag}")
        self.git("status", "--porcelain")

    def hook_answers(self) -> None:
        """git in the mount works, and its fsmonitor hook is answered by the daemon."""
        self.git("status", "--porcelain")
        self.git("status", "--porcelain")  # now from the token the first one wrote
        hook = self.git("config", "core.fsmonitor").stdout.strip()
        assert hook == os.path.join(self.own, HOOK_FILE), hook
        token = _index_token(os.path.join(self.git_dir, "index"))
        out = subprocess.run([hook, "2", token], capture_output=True, check=True, cwd=self.mp).stdout
        answer = out.rstrip(b"\0").decode().split("\0")
        assert answer[0].startswith(("avfs-ovl:", "avfs:")) and answer[0] != "avfs-ovl:none", answer
        assert "/" not in answer[1:], answer  # answered from the journal, not "everything"

    def check(self, before: dict[str, Any], kept: dict[str, bytes]) -> None:
        assert self.host_state() == before, "a host file changed"
        assert sorted(os.listdir(self.ran)) == [], "planted code ran on the host"
        ws = self.vault.workspace("main")
        for path, data in kept.items():
            assert ws.read(path) == data, path
        self.hook_answers()


@pytest.fixture(params=["overlay", "fuse"])
def scene(request: Any, home: Any, vault: Any, tmp_path: Path, cli: Any) -> Iterator[Scene]:
    backend = request.param
    require_overlay() if backend == "overlay" else require_fuse()
    _need_bwrap()
    ws = vault.workspace("main")
    ws.write("README", b"a project\n")
    ws.write("a.txt", b"the fork's a\n")
    checkpoint.save(vault, name="base")
    host = tmp_path / "host"  # a host directory outside the fork and the avfs home
    host.mkdir()
    (host / "a.txt").write_text("HOST-A\n")
    (host / "config").write_text("HOST-CONFIG\n")
    ran = tmp_path / "ran"  # planted code, run on the host, would write here
    ran.mkdir()
    mp = tmp_path / "mnt"
    mp.mkdir()
    info = mounts.mount(home, vault, "main", str(mp), backend=backend)
    try:
        yield Scene(home, vault, mp, info.pid, host, ran, cli)
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def _index_token(index: str) -> str:
    with open(index, "rb") as fh:
        data = fh.read()
    at = data.rfind(b"FSMN")
    assert at >= 0
    body = data[at + 8 :]
    assert struct.unpack(">I", body[:4])[0] == 2
    return body[4 : body.index(b"\0", 4)].decode()


def _commit_script(add: dict[str, tuple[str, bytes]], drop: tuple[str, ...]) -> str:
    """Shell lines that move the fork's ref to a commit adding ``add`` (path: (mode,
    bytes)) and dropping ``drop``, made with git's plumbing inside the sandbox."""
    lines = ["export GIT_INDEX_FILE=/tmp/evil-index", "git read-tree HEAD"]
    lines += [f"git rm -q --cached {p}" for p in drop]
    for path, (mode, data) in add.items():
        lines.append(f"B=$(printf '%s' '{data.decode()}' | git hash-object -w --stdin)")
        lines.append(f"git update-index --add --cacheinfo {mode},$B,{path}")
    lines += ['C=$(git commit-tree -p HEAD -m moved "$(git write-tree)")', 'git update-ref HEAD "$C"']
    return "\n".join(lines) + "\n"


def test_a_forged_owner_file_names_no_host_directory(scene: Scene) -> None:
    """Reproduction 1: the worktree's owner file edited to name a host directory as the
    mount point, and the fork's ref moved to a commit that adds ``pwn.txt`` and drops
    ``a.txt``: no host file is written or deleted (owner data is the registry's)."""
    before = scene.host_state()
    forged = json.dumps(
        {"pid": scene.pid, "uid": 0, "gid": 0, "backend": "overlay", "mountpoint": str(scene.host),
         "fsmonitor_hook": "perl"}
    )  # fmt: skip
    res = scene.attack(
        'G="$(git rev-parse --absolute-git-dir)"\n'
        f"printf '%s' '{forged}' > \"$G/avfs-mount\"\n"
        + _commit_script({"pwn.txt": ("100644", b"pwned\n")}, ("a.txt",))
    )
    assert res.result is not None and res.result.exit_code == 0, res.result
    scene.person_acts("1")
    assert not (scene.host / "pwn.txt").exists()
    assert (scene.host / "a.txt").read_text() == "HOST-A\n"
    scene.check(before, {"README": b"a project\n", "person-1.txt": b"by the person 1\n"})


def test_a_forged_owner_file_installs_no_vault_hook(scene: Scene) -> None:
    """Reproduction 1 aimed at the vault's ``hooks/``: the commit adds ``pre-commit``; the
    person's next ``git commit`` in the mount runs no hook (none was installed)."""
    before = scene.host_state()
    canary = scene.ran / "pre-commit-ran"
    forged = json.dumps(
        {"pid": scene.pid, "uid": 0, "gid": 0, "backend": "overlay", "mountpoint": str(scene.hooks)}
    )
    res = scene.attack(
        'G="$(git rev-parse --absolute-git-dir)"\n'
        f"printf '%s' '{forged}' > \"$G/avfs-mount\"\n"
        + _commit_script({"pre-commit": ("100755", f"#!/bin/sh\\necho ran > {canary}\\n".encode())}, ())
    )
    assert res.result is not None and res.result.exit_code == 0, res.result
    scene.person_acts("hooks")
    assert not (scene.hooks / "pre-commit").exists()
    scene.check(before, {"README": b"a project\n", "a.txt": b"the fork's a\n"})


def test_symlinks_planted_for_every_file_avfs_writes(scene: Scene) -> None:
    """Reproduction 2 and its kin: a symlink to a host file planted as the daemon's temp
    file (``avfs-index.<daemon pid>.tmp``), as every file avfs once kept in the git dir and
    its temp names, and as the index git writes, plus one changed file: the daemon's
    commit after the command, and everything the person does next, write no host file."""
    before = scene.host_state()
    target = scene.host / "config"
    names = [*OLD_NAMES, *GIT_WRITTEN]
    names += [f"{n}.{scene.pid}.tmp" for n in OLD_NAMES]
    lines = ['G="$(git rev-parse --absolute-git-dir)"']
    lines += [f'rm -f "$G/{n}"; ln -s {target} "$G/{n}"' for n in names]
    lines.append("echo changed >> README")
    res = scene.attack("\n".join(lines) + "\n")
    assert res.result is not None and res.result.exit_code == 0, res.result
    scene.person_acts("2")
    assert target.read_text() == "HOST-CONFIG\n"
    assert not os.path.islink(os.path.join(scene.git_dir, "index"))  # replaced, never followed
    scene.check(before, {"README": b"a project\nchanged\n", "a.txt": b"the fork's a\n"})


def test_the_mount_files_are_out_of_reach(scene: Scene) -> None:
    """From inside, the mount's own directory shows the fsmonitor hook, the socket, the
    hooks directory (git's hooks of the mount: the branch-switch guard, links to the
    person's) and the gate scripts (gitmodel25: pre-commit's while git's fsmonitor is off)
    only, all read-only: none can be replaced, nothing can be added; the daemon's other
    files are not there at all."""
    own = scene.own
    before = scene.host_state()
    hook_before = Path(own, HOOK_FILE).read_bytes()
    guard_before = Path(own, HOOKS_DIR, "post-checkout").read_bytes()
    gate_before = Path(own, GATES_DIR, "pre-commit").read_bytes()
    res = scene.attack(
        f'ls -A "{own}"\n'
        f"for f in {HOOK_FILE} {SOCKET_NAME} {STAMP_FILE} x {HOOKS_DIR}/post-checkout {HOOKS_DIR}/x"
        f" {GATES_DIR}/pre-commit {GATES_DIR}/x; do\n"
        f'  (echo evil > "{own}/$f") 2>/dev/null && echo "WROTE $f"\n'
        f'  (rm -f "{own}/$f" && ln -s /etc/passwd "{own}/$f") 2>/dev/null && echo "LINKED $f"\n'
        "done\n"
        "echo done\n",
        commit=False,
    )
    assert res.result is not None and res.result.exit_code == 0, res.result
    out = res.result.stdout.split()
    assert out == [*sorted([SOCKET_NAME, HOOK_FILE, HOOKS_DIR, GATES_DIR]), "done"], res.result
    assert Path(own, HOOK_FILE).read_bytes() == hook_before
    assert Path(own, HOOKS_DIR, "post-checkout").read_bytes() == guard_before
    assert Path(own, GATES_DIR, "pre-commit").read_bytes() == gate_before
    scene.person_acts("own")
    scene.check(before, {"README": b"a project\n", "a.txt": b"the fork's a\n"})


def test_a_chosen_token_and_a_replaced_socket_reach_no_host_socket(scene: Scene, tmp_path: Path) -> None:
    """Reproduction 5: a chosen token written into the index (an HTTP request) and the
    fsmonitor socket's old path replaced by a symlink to a host Unix socket: the person's
    ``git status`` sends nothing to that socket (the hook asks the daemon's socket, in the
    mount's own directory, which the sandbox cannot replace)."""
    victim = tmp_path / "victim.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(victim))
    srv.listen(8)
    got: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    got.append(conn.recv(4096))
                except OSError:
                    got.append(b"")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        before = scene.host_state()
        request = "GET /containers/json HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
        own_sock = os.path.join(scene.own, SOCKET_NAME)
        res = scene.attack(
            'G="$(git rev-parse --absolute-git-dir)"\n'
            # the index's fsmonitor token replaced by a chosen one (git's own FSMN layout)
            "python3 - \"$G/index\" <<'EOF'\n"
            "import hashlib, struct, sys\n"
            "p = sys.argv[1]\n"
            "d = open(p, 'rb').read()[:-20]\n"
            "at = d.rfind(b'FSMN')\n"
            f"tok = b'{request}'\n"
            "ewah = struct.pack('>II', 0, 1) + struct.pack('>Q', 0) + struct.pack('>I', 0)\n"
            "ext = struct.pack('>I', 2) + tok + b'\\0' + struct.pack('>I', len(ewah)) + ewah\n"
            "d = d[:at] + b'FSMN' + struct.pack('>I', len(ext)) + ext\n"
            "open(p, 'wb').write(d + hashlib.sha1(d).digest())\n"
            "EOF\n"
            f'rm -f "$G/{SOCKET_NAME}"; ln -s {victim} "$G/{SOCKET_NAME}"\n'
            f'(rm -f "{own_sock}" && ln -s {victim} "{own_sock}") 2>/dev/null && echo REPLACED\n'
            "echo done\n",
            commit=False,
        )
        assert res.result is not None and res.result.stdout == "done\n", res.result
        scene.git("status", "--porcelain")  # the person's git status: the planted token is sent
        scene.person_acts("5")
        assert got == [], got
        scene.check(before, {"README": b"a project\n", "a.txt": b"the fork's a\n"})
    finally:
        srv.close()
        t.join(5)


def test_the_python_hook_imports_nothing_planted(scene: Scene) -> None:
    """Reproduction 6: the mount's hook is the Python one (a mount made where ``perl`` is
    not on PATH); a ``_socket.py`` (and ``os.py``, ``sys.py``) dropped in the worktree's git
    dir and at the mount's root: the person's ``git status`` runs none of them (the hook
    runs isolated, ``-I``, from the mount's own directory)."""
    hook = os.path.join(scene.own, HOOK_FILE)
    with open(hook, "w", encoding="utf-8") as fh:  # what register() writes without perl
        fh.write(socket_hook(scene.own, None))
    with open(hook, encoding="utf-8") as fh:
        assert fh.readline().endswith(" -IS\n")
    before = scene.host_state()
    planted = "\n".join(
        f"cat > \"$D/{mod}.py\" <<'EOF'\nopen('{scene.ran}/{mod}-ran', 'w').write('ran')\nEOF"
        for mod in ("_socket", "os", "sys", "socket")
    )
    res = scene.attack(
        'for D in "$(git rev-parse --absolute-git-dir)" "$(pwd)"; do\n' + planted + "\ndone\n", commit=False
    )
    assert res.result is not None and res.result.exit_code == 0, res.result
    scene.person_acts("6")
    scene.check(before, {"README": b"a project\n", "a.txt": b"the fork's a\n"})


def test_what_git_trusts_in_the_git_dir_stays_pinned(scene: Scene) -> None:
    """``config.worktree`` (which names the hook), ``commondir``, ``gitdir`` and ``HEAD``
    cannot be edited or replaced from inside, so the person's git runs no planted hook; a
    ``logs`` planted as a link to a host directory (the person's next ``git commit`` would
    append its reflog there), FIFOs (git would block) and links deeper down are removed
    once the command has ended."""
    before = scene.host_state()
    evil = scene.ran / "fsmonitor-ran"
    res = scene.attack(
        'G="$(git rev-parse --absolute-git-dir)"\n'
        f"printf '#!/bin/sh\\necho ran > {evil}\\n' > /tmp/evil-hook; chmod +x /tmp/evil-hook\n"
        "for f in config.worktree commondir gitdir; do\n"
        '  (printf "[core]\\n\\tfsmonitor = /tmp/evil-hook\\n" > "$G/$f") 2>/dev/null && echo "WROTE $f"\n'
        '  (rm -f "$G/$f") 2>/dev/null && echo "REMOVED $f"\n'
        "done\n"
        # HEAD is git's to move in there (a rebase detaches it): put back after the run
        'printf "[core]\\n\\tfsmonitor = /tmp/evil-hook\\n" > "$G/HEAD"\n'
        f'rm -rf "$G/logs"; ln -s {scene.host} "$G/logs"\n'
        'mkfifo "$G/ORIG_HEAD" "$G/FETCH_HEAD"; mkdir -p "$G/refs"; ln -s /etc "$G/refs/x"\n'
        "echo done\n",
        commit=False,
    )
    assert res.result is not None and res.result.stdout == "done\n", res.result
    assert Path(scene.git_dir, "HEAD").read_text() == "ref: refs/heads/main\n"
    # what the person's git would follow or block on is gone once the command is
    for name in ("ORIG_HEAD", "FETCH_HEAD", "refs/x"):
        assert not os.path.lexists(os.path.join(scene.git_dir, name)), name
    # logs/ is the run's own scratch in there (proxy/seal.py): on the host, avfs's directory
    logs = os.path.join(scene.git_dir, "logs")
    assert not os.path.islink(logs) and (not os.path.lexists(logs) or os.path.isdir(logs))
    checkpoint.save(scene.vault, "main", message="after the plant")
    scene.person_acts("pinned")
    assert not evil.exists()
    scene.check(before, {"README": b"a project\n", "a.txt": b"the fork's a\n"})


def test_an_open_merge_writes_through_no_planted_symlink(scene: Scene) -> None:
    """``MERGE_HEAD``, ``MERGE_MSG`` and ``MERGE_MODE`` planted as symlinks to a host file
    (and the marker's old name, and the temp names they were once written through) by a
    command still running while the person opens a merge
    with written conflicts: refused while ``MERGE_HEAD`` says git has a merge open; with
    it gone, avfs replaces the others with its own files (a rename, never a write
    through the link); git in the mount sees the merge, and aborting it removes only what
    avfs wrote."""
    from avfs_git.core.operations import merge

    vault = scene.vault
    vault.create_fork("main", "b")
    vault.workspace("b").write("a.txt", b"b's a\n")
    checkpoint.save(vault, "b")
    vault.workspace("main").write("a.txt", b"main's a\n")
    before = scene.host_state()
    target = scene.host / "config"
    plant = ["MERGE_HEAD", "MERGE_MSG", "MERGE_MODE", "avfs-merge-head"]
    # and the temp names the merge's writer (this process) once wrote them through
    plant += [f"{n}.{os.getpid()}.tmp" for n in ("MERGE_HEAD", "MERGE_MSG", "avfs-merge-head")]
    links = "".join(f'rm -f "$G/{n}"; ln -s {target} "$G/{n}"\n' for n in plant)
    marker = os.path.join(scene.git_dir, "avfs-test-planted")
    done: list[ExecResult] = []
    running = threading.Thread(
        target=lambda: done.append(
            scene.attack(
                'G="$(git rev-parse --absolute-git-dir)"\n' + links + ': > "$G/avfs-test-planted"\nsleep 5\n',
                commit=False,
            )
        )
    )
    running.start()
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(marker):
            assert time.monotonic() < deadline and running.is_alive(), done
            time.sleep(0.05)
        os.unlink(marker)
        if not any(os.path.islink(os.path.join(scene.git_dir, n)) for n in plant):
            # the sandbox refused every link (Landlock: docs/security.md, "The git dir while
            # the command runs"); another hand (an unconfined agent) plants them meanwhile
            for n in plant:
                os.symlink(target, os.path.join(scene.git_dir, n))
        assert all(os.path.islink(os.path.join(scene.git_dir, n)) for n in plant)
        # git's own sign of an open merge among them: avfs's merge is refused, nothing
        # written (gitmodel30 of the fortieth round: a git operation open in the mount)
        with pytest.raises(GitInProgressError):
            merge.merge(vault, "b", "main", write_conflicts=True)
        assert target.read_text() == "HOST-CONFIG\n"
        os.unlink(os.path.join(scene.git_dir, "MERGE_HEAD"))  # (the rest stay planted)
        opened = merge.merge(vault, "b", "main", write_conflicts=True)  # while the command runs
        assert opened.status == "conflicts_written"
        assert target.read_text() == "HOST-CONFIG\n"
        for n in ("MERGE_HEAD", "MERGE_MSG"):
            assert not os.path.islink(os.path.join(scene.git_dir, n)), n
    finally:
        running.join(120)
    assert done and done[0].result is not None and done[0].result.exit_code == 0, done
    assert scene.git("rev-parse", "MERGE_HEAD").stdout.strip() == opened.theirs
    assert "UU a.txt" in scene.git("status", "--porcelain").stdout.splitlines()
    merge.merge_abort(vault, "main")
    assert scene.git("rev-parse", "-q", "--verify", "MERGE_HEAD", check=False).returncode != 0
    assert not os.path.lexists(os.path.join(scene.git_dir, "MERGE_MODE"))  # unlinked, not followed
    scene.person_acts("merge")
    scene.check(before, {"README": b"a project\n", "a.txt": b"main's a\n"})


def test_a_package_named_avfs_git_at_the_mount_s_root_is_never_run(scene: Scene, tmp_path: Path) -> None:
    """A package ``avfs_git`` planted at the mount's root (``__init__.py``, ``__main__.py``
    and the modules avfs starts as processes of their own): the person, working in the
    mount, mounts another fork (its daemon spawned with the mount as working directory,
    where ``python -m`` would put it first on ``sys.path``), runs the console script, and
    an installed hook's command line; none of the planted code runs on the host."""
    before = scene.host_state()
    mods = ("__init__", "__main__", "fuse/__init__", "fuse/daemon", "cli/__init__", "cli/resident")
    planted = "\n".join(
        f"mkdir -p \"$(dirname avfs_git/{m}.py)\"\ncat > avfs_git/{m}.py <<'EOF'\n"
        f"open('{scene.ran}/{m.replace('/', '.')}-ran', 'w').write('ran')\nEOF"
        for m in mods
    )
    res = scene.attack(planted + "\n", commit=False)
    assert res.result is not None and res.result.exit_code == 0, res.result
    assert (scene.mp / "avfs_git" / "fuse" / "daemon.py").is_file()
    scene.vault.fork("main", "other")
    other = tmp_path / "other-mnt"
    other.mkdir()
    avfs = str(Path(sys.executable).with_name("avfs"))
    for server in ("off", "auto"):
        env = {**os.environ, "AVFS_HOME": scene.home.path, "AVFS_SERVER": server}
        for args in (
            ["mount", "v:other", str(other)],
            ["--vault", "v:other", "--json", "status"],
            ["unmount", "v:other"],
        ):
            p = subprocess.run([avfs, *args], cwd=scene.mp, env=env, capture_output=True, timeout=120)
            assert p.returncode == 0, (server, args, p.stderr)
        subprocess.run([avfs, "server", "stop"], cwd=scene.mp, env=env, capture_output=True, timeout=60)
    # the command line a hook runs when no console script is found (hooks/events.py)
    line = self_command("", sys.executable)
    p = subprocess.run(
        f"{line} --home {scene.home.path} --json vault list",
        shell=True,
        cwd=scene.mp,
        capture_output=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(scene.ran)) == [], "planted code ran on the host"
    assert scene.host_state() == before


def test_a_repository_planted_in_the_fork_runs_nothing_when_the_person_imports_it(scene: Scene) -> None:
    """A confined command makes ``sub/`` a git repository whose config names a
    ``core.fsmonitor`` hook and a ``clean`` filter (a tracked file left stat-dirty, so a
    ``git status`` there runs the filter); the person then runs ``avfs up MOUNT/sub`` (a
    sub-project to give another agent). Before, the import ran ``git ls-files`` and
    ``git status`` in that repository, on the host: both planted commands ran as the
    person. A directory in a mounted fork is now imported as a plain directory: its files
    as they are on disk, no git run with its repository."""
    before = scene.host_state()
    ran = scene.ran
    res = scene.attack(
        f"mkdir sub && cd sub && git init -q . && git config core.fsmonitor 'touch {ran}/fsmonitor; false'\n"
        f"git config filter.evil.clean 'touch {ran}/clean; cat'\n"
        "echo '* filter=evil' > .gitattributes && echo x > f\n"
        "git -c core.fsmonitor=false add f .gitattributes && git -c core.fsmonitor=false commit -qm x\n"
        "echo y >> f && touch -d 2001-01-01 f\n"
    )
    assert res.result is not None and res.result.exit_code == 0, res.result
    assert sorted(os.listdir(ran)) == []
    spec = ["--home", scene.home.path]
    got = scene.cli(*spec, "--json", "up", str(scene.mp / "sub"), "--vault", "planted", "--agent", "a1")
    try:
        assert got.code == 0, got.out
        assert sorted(os.listdir(ran)) == [], "the planted repository's commands ran on the host"
        planted = scene.home.vault("planted")
        ws = planted.workspace("a1")
        assert ws.read("f") == b"x\ny\n" and ws.read(".gitattributes") == b"* filter=evil\n"
        assert sorted(e.name for e in ws.listdir("")) == [".gitattributes", "f"]  # nothing of sub/.git
    finally:
        mounts.unmount(scene.home, scene.home.vault("planted"), "a1", lazy=True)
    scene.check(before, {"README": b"a project\n", "sub/f": b"x\ny\n"})


def _setuid_files_reachable_by_everyone(home: str) -> list[str]:
    """The setuid or setgid files under ``home`` that every user can reach: each
    directory on the way to it (from ``home`` up) lets others through."""
    home = os.path.realpath(home)
    reachable = []
    for root, _dirs, files in os.walk(home):
        for name in files:
            p = os.path.join(root, name)
            if os.lstat(p).st_mode & (stat.S_ISUID | stat.S_ISGID):
                steps, d = [], os.path.dirname(p)
                while d != home and d != "/":
                    steps.append(os.stat(d).st_mode & 0o001)
                    d = os.path.dirname(d)
                if 0 not in steps:
                    reachable.append(p)
    return reachable


def _plant_copy(path: Path, mode: int) -> None:
    """A copy of the shell at ``path`` (in the mount), ``chmod``-ed to ``mode``."""
    path.write_bytes(Path("/bin/sh").read_bytes())
    os.chmod(path, mode)


def test_a_setuid_copy_in_the_fork_is_reachable_by_no_other_user(scene: Scene) -> None:
    """A confined command is the person (root in its namespace, its files theirs): ``cp
    /bin/sh rootsh; chmod 4755 rootsh`` in the fork is a setuid-person program. The mount is
    ``nosuid``, but the overlay's upper layer is a host directory under the avfs home
    (0755 there before, all the way down): another local user ran the copy by that path, as
    the person. The fork's state dir (lower, upper, work) is now 0700, made so at every
    mount; the pure-FUSE backend keeps no setuid bit at all. Since the thirty-fourth round
    the sandbox refuses the ``chmod`` itself (tests/test_adv_setid.py); the copies are made
    through the mount instead (a command where libseccomp is missing, an unconfined one)."""
    res = scene.attack("cp /bin/sh rootsh && chmod 4755 rootsh\n")
    assert res.result is not None and res.result.exit_code == 1, res.result  # (EPERM)
    for name, mode in (("rootsh", 0o4755), ("gidsh", 0o2755)):
        _plant_copy(scene.mp / name, mode)
    found = _setuid_files_reachable_by_everyone(scene.home.path)
    assert found == [], f"{found} (setuid or setgid) are reachable by every user"
    scene.check(scene.host_state(), {"README": b"a project\n"})


def test_a_setuid_copy_in_a_nested_repository_is_reachable_by_no_other_user(scene: Scene) -> None:
    """Found in the twenty-second round (NAME=attack13): the pure-FUSE mount keeps a nested
    repository's files (``git init sub``: everything under ``sub/.git``) as plain host files
    in the fork's state dir, ``nested/``, and passed the command's modes through to them,
    setuid included (``chmod``, ``open(O_CREAT)``, ``mkdir``): ``cp /bin/sh sub/.git/rootsh;
    chmod 4755`` there made a setuid copy of the shell, owned by the person (the daemon),
    under directories 0755 all the way down, on a file system without ``nosuid`` in a home
    without the layers file system: any local user ran it as the person. Now the state dir
    is 0700 on that backend too, and a nested repository's files keep no setuid or setgid
    bit (the mount is ``nosuid``: they meant nothing there). The copies are made through the
    mount (the sandbox refuses the ``chmod`` since the thirty-fourth round)."""
    res = scene.attack("git init -q sub\n")
    assert res.result is not None and res.result.exit_code == 0, res.result
    for name, mode in (("rootsh", 0o4755), ("gidsh", 0o2755), ("installed", 0o6755)):
        _plant_copy(scene.mp / "sub" / ".git" / name, mode)
    found = _setuid_files_reachable_by_everyone(scene.home.path)
    assert found == [], f"{found} (setuid or setgid) are reachable by every user"
    assert os.access(scene.mp / "sub" / ".git" / "rootsh", os.X_OK)  # still there, still runs
    scene.check(scene.host_state(), {"README": b"a project\n"})


# the host side as a person who is not root runs it: root without the capabilities that
# let it write what it does not own the mode of (this machine's tests run as root)
NOT_ROOT = (
    ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"] if os.geteuid() == 0 else []
)


# pure FUSE only: as root without those capabilities (this machine's only way to be a
# person who is not root) overlayfs does not mount; the code under test is the same
@pytest.mark.parametrize("backend", ["fuse"])
def test_a_git_dir_the_command_made_read_only_keeps_no_link_for_the_person_s_git(
    backend: str, tmp_path: Path
) -> None:
    """A confined command owns the worktree's git dir it writes: it plants ``FETCH_HEAD``
    as a link to a host file, then ``chmod 555`` the git dir. For a person who is not root
    avfs could then remove nothing there (the scrub failed), and the person's ``git fetch``
    in the mount wrote its FETCH_HEAD lines over the host file (found in the eleventh
    round). The whole host side runs here as such a person: the CLI, the mount's daemon,
    git."""
    require_overlay() if backend == "overlay" else require_fuse()
    _need_bwrap()
    if NOT_ROOT and subprocess.run(["setpriv", "--version"], capture_output=True).returncode != 0:
        skip_outside_ci("setpriv is needed to run the host side without root's capabilities")
    victim = tmp_path / "victim"
    victim.write_text("the person's file\n")
    other = tmp_path / "other"
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    subprocess.run([*GIT, "-C", str(other), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    mp = tmp_path / "mnt"
    mp.mkdir()

    def avfs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*NOT_ROOT, sys.executable, "-m", "avfs_git", *args], capture_output=True, text=True, timeout=120
        )

    assert avfs("vault", "create", "nr").returncode == 0
    assert avfs("--vault", "nr:main", "write", "README", "hi\n").returncode == 0
    got = avfs("mount", "nr:main", str(mp), "--backend", backend)
    assert got.returncode == 0, got.stderr
    try:
        (mp / "attack.sh").write_text(
            "G=$(git rev-parse --git-dir)\n"
            f'ln -s {victim} "$G/FETCH_HEAD" && echo LINKED\n'
            'chmod 555 "$G" && echo CHMOD\n'
        )
        got = avfs("--json", "--vault", "nr:main", "proxy", "exec", "--", "sh", "attack.sh")
        doc = json.loads(got.stdout)
        assert doc["result"]["stdout"] in ("LINKED\nCHMOD\n", "CHMOD\n") and doc["error"] is None, doc
        if doc["result"]["stdout"] == "CHMOD\n":  # the sandbox refused the link (Landlock)
            assert "Permission denied" in doc["result"]["stderr"], doc
        env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(tmp_path))
        git_dir = subprocess.run(
            ["git", "rev-parse", "--absolute-git-dir"], cwd=mp, env=env, capture_output=True, text=True
        )
        assert not os.path.lexists(os.path.join(git_dir.stdout.strip(), "FETCH_HEAD"))
        assert os.stat(git_dir.stdout.strip()).st_mode & 0o700 == 0o700
        fetch = subprocess.run(
            [*NOT_ROOT, "git", "fetch", "-q", str(other)], cwd=mp, env=env, capture_output=True
        )
        assert fetch.returncode == 0, fetch.stderr
        assert victim.read_text() == "the person's file\n"
        assert avfs("--vault", "nr:main", "status").returncode == 0
    finally:
        avfs("unmount", "nr:main")


def test_what_a_command_planted_is_scrubbed_when_its_run_is_then_refused(scene: Scene) -> None:
    """A command that leaves git's HEAD detached has its run's commit refused
    (`git_in_progress`); the links and FIFOs it planted in the worktree's git dir are
    removed all the same (the scrub was part of the record, which the refusal cut short)."""
    res = scene.attack(
        'G="$(git rev-parse --absolute-git-dir)"\n'
        "echo changed > a.txt\n"
        f'mkfifo "$G/FETCH_HEAD"; mkdir -p "$G/refs"; ln -s {scene.host} "$G/refs/x"\n'
        "git checkout -q --detach\n"
        "echo done\n",
    )
    assert res.result is not None and res.result.stdout == "done\n", res.result
    assert not res.success and res.error is not None and res.error.code == "git_in_progress", res.to_dict()
    for name in ("FETCH_HEAD", "refs/x"):
        assert not os.path.lexists(os.path.join(scene.git_dir, name)), name

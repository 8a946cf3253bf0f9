"""The worktree's git dir while a confined command still runs (docs/security.md, "the git
dir while the command runs"), from the attacker's side.

The scrub of what a command left in the mount's worktree git dir comes after it ends; while
it runs, the person's own git in the mount reads and writes that directory. A real confined
``proxy exec`` (the CLI: the mount's daemon serves it, first warm, then in a sandbox it made
ready) plants links to host files and directories and special files in place of what git
writes through (``FETCH_HEAD``, ``COMMIT_EDITMSG``, ``rebase-merge``...) and sleeps; the
test meanwhile acts as the person (plain ``git fetch`` from a local remote, ``git commit``
in the mount) and checks that no host file was written and that nothing was planted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store.locks import signal_process
from avfs_git.ops import mounts

from .contract.test_proxy_exec_warm import _wait_for, _waiters
from .test_confine import _need_bwrap
from .test_fuse import require_fuse
from .test_overlay import require_overlay
from .waitingexec import exec_argv, running

PERSON = ["git", "-c", "user.name=P", "-c", "user.email=p@x.invalid"]
# what git opens following links (files) or makes files in (directories) in a git dir
LINKED_FILES = ("FETCH_HEAD", "COMMIT_EDITMSG", "MERGE_MSG", "SQUASH_MSG", "BISECT_LOG")
LINKED_DIRS = ("rebase-merge", "sequencer", "modules")


@pytest.fixture(params=["overlay", "fuse"])
def live(request: Any, home: Any, vault: Any) -> Any:
    require_overlay() if request.param == "overlay" else require_fuse()
    _need_bwrap()
    w = vault.workspace("main")
    w.write("README", b"the original\n")
    checkpoint.save(vault, name="base")
    info = mounts.mount(home, vault, "main", None, backend=request.param)
    try:
        yield info
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def _attack(victim: Path, victim_dir: Path, tag: str, stay: str) -> str:
    """The confined command: plant links (and a FIFO, a socket) in its git dir, say what it
    made in ``made-<tag>``, signal ``planted-<tag>``, and stay running (``sleep STAY``, 150 s
    and a fraction of its own: :func:`_stop` ends it once the person is done)."""
    lines = ["G=$(git rev-parse --absolute-git-dir)", f": > made-{tag}"]
    for name in LINKED_FILES:
        lines.append(f'rm -f "$G/{name}"; ln -s {victim} "$G/{name}" && echo link:{name} >> made-{tag}')
    for name in LINKED_DIRS:
        lines.append(f'rm -rf "$G/{name}"; ln -s {victim_dir} "$G/{name}" && echo dir:{name} >> made-{tag}')
    lines.append(f'mkfifo "$G/ORIG_HEAD.fifo" && echo fifo >> made-{tag}')
    lines.append(f"ln -s README link-{tag} && mkfifo /dev/shm/f-{tag} && echo links-elsewhere")
    lines.append(f": > planted-{tag}; sleep {stay}; exit 0")
    return "\n".join(lines) + "\n"


def _argv(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _stop(stay: str) -> int:
    """End the command's ``sleep STAY`` (its shell goes on to ``exit 0``) once the person is
    done: it stayed running while the person's git ran (a sleep of 8 s was ~16 of each
    test's ~17 s of wall, suitetime19). Waits for it to be there (its shell may not have
    started it yet); how many it ended."""
    want = b"sleep\0" + stay.encode() + b"\0"
    deadline = time.monotonic() + 60
    while True:
        ended = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if fh.read() != want:
                        continue
                # (still that sleep: it may have ended since, its pid given to another)
                ended += signal_process(int(pid), signal.SIGTERM, is_it=lambda p: _argv(p) == want)
            except (FileNotFoundError, ProcessLookupError):
                continue
        if ended or time.monotonic() > deadline:
            return ended
        time.sleep(0.05)


def _person(mp: str, remote: Path) -> list[str]:
    """What the person does in the mount meanwhile (each bounded: a FIFO would hang it)."""
    out = []
    for args in (
        ["fetch", "-q", str(remote), "main"],
        ["commit", "-q", "--allow-empty", "-m", "by the person"],
        ["merge", "-q", "--no-edit", "FETCH_HEAD"],
    ):
        try:
            p = subprocess.run([*PERSON, *args], cwd=mp, capture_output=True, text=True, timeout=30)
            out.append(f"{args[0]}: {p.returncode} {p.stderr.strip()}")
        except subprocess.TimeoutExpired:
            out.append(f"{args[0]}: hung")
    return out


def test_links_the_running_command_plants_in_its_git_dir_are_never_followed(live, vault, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("host data\n")
    victim_dir = tmp_path / "victim-dir"
    victim_dir.mkdir()
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    src = tmp_path / "src"
    subprocess.run(["git", "clone", "-q", str(remote), str(src)], check=True, capture_output=True)
    (src / "theirs").write_text("theirs\n")
    subprocess.run(["git", "-C", str(src), "add", "theirs"], check=True)
    subprocess.run([*PERSON, "-C", str(src), "commit", "-qm", "theirs"], check=True)
    subprocess.run(
        ["git", "-C", str(src), "push", "-q", "origin", "HEAD:main"], check=True, capture_output=True
    )
    mp = live.mountpoint
    # (the sleep's argument names this test's command: the machine may run other sleeps)
    # (past the person's three gits' 30 s each: it runs until :func:`_stop` ends it)
    stay = f"150.{os.getpid() % 1000:03d}{time.monotonic_ns() % 10**6:06d}"
    stopped = 0
    for tag in ("warm", "ready"):  # the daemon's first command, then one in a sandbox it made ready
        if tag == "ready":
            assert _wait_for(lambda: _waiters(live.pid)), "no sandbox made ready after the first command"
        with open(os.path.join(mp, f"attack-{tag}.sh"), "w") as fh:
            fh.write(_attack(victim, victim_dir, tag, stay))
        planted = os.path.join(mp, f"planted-{tag}")
        with running([*exec_argv("--"), "sh", f"attack-{tag}.sh"], planted) as proc:
            said = _person(mp, remote)
            stopped += _stop(stay)
            out, err = proc.communicate(timeout=200)
        doc = json.loads(out)
        assert doc["confinement"]["kind"] == "bwrap", doc["confinement"]
        assert doc["exit_code"] == 0, (doc["result"], err)
        assert doc["result"]["stdout"] == "links-elsewhere\n", doc["result"]  # (the fork, /dev/shm)
        assert victim.read_text() == "host data\n", (tag, said)
        assert os.listdir(victim_dir) == [], (tag, said)
        assert all("hung" not in s for s in said), said
        with open(os.path.join(mp, f"made-{tag}")) as fh:
            assert fh.read() == "", f"the command planted in its git dir: {said}"
        time.sleep(0.1)
    assert stopped == 2, f"the command's sleep found running after the person's git {stopped} times of 2"


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_the_environment_asked_for_the_command_runs_nothing_before_the_domain(home, vault, warm):
    """What applies the domain inside the sandbox is a Perl program bwrap starts: an
    environment asked for the command (``PERL5OPT``/``PERL5LIB`` here; ``LD_PRELOAD`` alike)
    must not run code in it before the domain is applied (that code could make a link in
    the git dir). The command is ``sh``: only that program could load the planted module."""
    _need_bwrap()
    w = vault.workspace("main")
    w.write("README", b"the original\n")
    checkpoint.save(vault, name="base")
    if warm:
        mounts.mount(home, vault, "main", None)
    try:
        module = (
            "package Early; my $g = `git rev-parse --absolute-git-dir`; chomp $g;\n"
            'if (symlink("/etc/hostname", "$g/FETCH_HEAD")) { print STDERR "EARLY-LINK\\n" }\n'
            'print STDERR "EARLY-RAN\\n"; 1;\n'
        )
        w.write("Early.pm", module.encode())
        checkpoint.save(vault, name="module")
        env = ["--env", "PERL5OPT=-MEarly", "--env", "PERL5LIB=."]
        got = subprocess.run(
            [*exec_argv("--no-commit", *env, "--"), "sh", "-c", "echo ran-inside"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        doc = json.loads(got.stdout)
        assert doc["confinement"]["kind"] == "bwrap" and doc["exit_code"] == 0, doc
        assert doc["result"]["stdout"] == "ran-inside\n", doc["result"]
        assert "EARLY" not in doc["result"]["stderr"], doc["result"]
    finally:
        if warm:
            mounts.unmount(home, vault, "main", lazy=True)


def _homes(vault: Any, gitdir: str) -> dict[str, str | None]:
    """``$HOME`` values a request may ask for (the sandbox makes its private home there and
    grants links beneath it), each naming the worktree's git dir or what holds it another
    way than avfs does; ``None``: the caller's own (a control: links work in it)."""
    return {
        "own": None,
        "vault-slash": vault.path + "/",
        "git-dir-dot": gitdir + "/.",
        "git-dir-dotdot": os.path.join(vault.path, "worktrees", "..", "worktrees", "avfs-main"),
        "link-in-the-fork": "/avfs/v/to-git-dir",
        "below-the-git-dir": gitdir + "/sub",
        "holding-the-vault": os.path.dirname(os.path.dirname(os.path.dirname(vault.path))),
    }


def test_a_home_the_request_asks_for_opens_no_way_into_the_git_dir(live, vault, tmp_path):
    """The sandbox grants links and special files beneath its private ``$HOME``, a path the
    request chooses (``--env HOME=``, MCP ``env``). Found in the twelfth round (NAME=attack3):
    the domain told the vault's paths from the grants by their names, so a ``$HOME`` naming
    the git dir differently (``<vault>/``, ``<git dir>/.``, ``..``, a link the fork holds)
    granted links in the git dir itself, and the person's ``git fetch`` in the mount,
    meanwhile, wrote its line over the host file a planted ``FETCH_HEAD`` named."""
    victim = tmp_path / "victim"
    victim.write_text("host data\n")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    src = tmp_path / "src"
    subprocess.run(["git", "clone", "-q", str(remote), str(src)], check=True, capture_output=True)
    subprocess.run([*PERSON, "-C", str(src), "commit", "-q", "--allow-empty", "-m", "r"], check=True)
    subprocess.run(
        ["git", "-C", str(src), "push", "-q", "origin", "HEAD:main"], check=True, capture_output=True
    )
    mp = live.mountpoint
    gitdir = os.path.join(vault.path, "worktrees", "avfs-main")
    os.symlink(gitdir, os.path.join(mp, "to-git-dir"))
    os.makedirs(os.path.join(gitdir, "sub"), exist_ok=True)  # (as a command before may leave one)
    for tag, home in _homes(vault, gitdir).items():
        script = (
            f"G=$(git rev-parse --absolute-git-dir); : > made-{tag}\n"
            f'rm -f "$G/FETCH_HEAD"; ln -s {victim} "$G/FETCH_HEAD" && echo link >> made-{tag}\n'
            f'mkfifo "$G/fifo" && echo fifo >> made-{tag}\n'
            f'ln -s {victim} "$G/sub/l" && echo sub >> made-{tag}\n'
            f'ln -s x "$HOME/l" 2>/dev/null && echo home-link\n'
            f"ln -s README link-{tag} && echo fork-link\n"
            f'ln -s x "$PIP_CACHE_DIR/l-{tag}" && echo cache-link\n'
            f": > planted-{tag}; i=0; while [ ! -e go-{tag} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n"
        )
        with open(os.path.join(mp, f"attack-{tag}.sh"), "w") as fh:
            fh.write(script)
        env = [] if home is None else ["--env", f"HOME={home}"]
        call = [*exec_argv("--no-commit", *env, "--"), "sh", f"attack-{tag}.sh"]
        with running(call, os.path.join(mp, f"planted-{tag}")) as proc:
            fetched = subprocess.run(
                [*PERSON, "fetch", "-q", str(remote), "main"],
                cwd=mp,
                capture_output=True,
                text=True,
                timeout=30,
            )
            open(os.path.join(mp, f"go-{tag}"), "w").close()
            out, _ = proc.communicate(timeout=120)
        doc = json.loads(out)
        assert doc["confinement"]["kind"] == "bwrap" and doc["exit_code"] == 0, (tag, doc["result"])
        assert victim.read_text() == "host data\n", (tag, fetched.stderr)
        with open(os.path.join(mp, f"made-{tag}")) as fh:
            assert fh.read() == "", f"HOME={home}: the command planted in its git dir"
        # links still work where they should: the fork, a cache, and the home when it is one
        want = ("home-link\n" if home is None else "") + "fork-link\ncache-link\n"
        assert doc["result"]["stdout"] == want, (tag, doc["result"])

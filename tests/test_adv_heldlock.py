"""git's lock files in the worktree's git dir while the person has a git open in the mount
(the sixteenth round's review, NAME=attack7): a lock the person's git holds is the person's,
and avfs leaves it after a run; but the command can swap it for one of its own while it
waits, and the person's git then renames the command's bytes into place.

Each attack runs through a real confined `proxy exec` in a real mount (the CLI, served warm
by the mount's daemon), on the overlay backend and on pure FUSE, while the test acts as the
person (a `git commit -a` whose editor is open across the run), then as the person after it
(`git status`, `git commit`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from avfs_git.mount.ownfiles import worktree_dir

from .contract.test_proxy_exec_warm import _wait_for
from .test_adv_gitseal import _git, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .waitingexec import exec_argv, held_editor

# the command: a nested repository whose fsmonitor would run for the person, an index of its
# own staging it as a gitlink (in the sandbox's /tmp), then, once the person's `git commit`
# holds ``index.lock`` (its editor is open: it marks ``editing`` in the mount), that lock
# swapped for the command's index. Only then: an ``index.lock`` seen before it may be no git's
# of the person's (found in the twenty-third round, NAME=race1: the command waited for any
# lock, at most 30 s, then made its own; the person's git, finding it, failed and was gone at
# the run's end, and avfs removed the lock as the command's, rightly, where the test wanted
# the held lock's reason). Never its own lock: the person's git not in its editor fails here.
_SWAP = """set -e
git init -q sub
git -C sub config core.fsmonitor 'echo ran >> {canary}; false'
echo inner > sub/f && git -C sub add f && git -C sub -c user.name=A -c user.email=a@x commit -qm inner
G=$(git rev-parse --absolute-git-dir)
cp "$G/index" /tmp/idx && GIT_INDEX_FILE=/tmp/idx git add sub 2>/dev/null
: > started
i=0; while [ ! -e editing ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done
[ -e editing ] && [ -e "$G/index.lock" ] || {{ echo "NOT IN ITS EDITOR"; exit 3; }}
rm -f "$G/index.lock" && cp /tmp/idx "$G/index.lock" && echo SWAPPED
"""


def test_a_held_index_lock_the_command_swaps_never_becomes_the_person_s_index(live, vault, tmp_path):
    """The person's `git commit -a` holds ``index.lock`` while its editor is open and renames
    it over ``index`` when it ends. A command running meanwhile removed that lock and wrote
    its own there (an index staging a nested repository as a gitlink): avfs left it, as the
    person's git runs in the mount, and never saw the gitlink (the index itself was not
    changed). The person's commit then made the command's index theirs, and their next
    plain `git status` in the mount ran the nested repository's ``core.fsmonitor`` on the
    host."""
    mp = live.mountpoint
    canary = tmp_path / "canary"
    _script(live, "swap.sh", _SWAP.format(canary=canary))
    run = subprocess.Popen([*exec_argv("--no-commit"), "--", "sh", "swap.sh"], stdout=subprocess.PIPE)
    person = None
    try:
        assert _wait_for(lambda: os.path.exists(os.path.join(mp, "started")), 60), "the command did not start"
        with open(os.path.join(mp, "lib.py"), "a") as fh:
            fh.write("y = 2\n")
        # open until the run ends; in its editor, the person's git holds index.lock
        editor, release = held_editor(tmp_path, writes="by-the-person", marks=os.path.join(mp, "editing"))
        env = {**os.environ, "GIT_EDITOR": editor}
        argv = ["git", "-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qa"]
        person = subprocess.Popen(argv, cwd=mp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, _ = run.communicate(timeout=180)
        still = person.poll() is None  # (its lock is held past the run: the case tested)
    finally:
        if run.returncode is None:
            out, _ = run.communicate(timeout=120)
        if person is not None:
            release.touch()
            _out, err = person.communicate(timeout=60)
    doc = json.loads(out)
    assert doc["result"]["exit_code"] == 0 and "SWAPPED" in doc["result"]["stdout"], (doc["result"], err)
    assert still, err
    os.unlink(os.path.join(mp, "editing"))
    held = [r["reason"] for r in doc["refs_refused"] if r["ref"] == "index.lock"]
    assert len(held) == 1 and "nested repository" in held[0], doc["refs_refused"]
    assert person is not None and b"unable to write" in err, err  # git says so
    # their commit holds what they changed, and nothing of the command's
    assert _git("log", "-1", "--format=%s", cwd=mp).strip() == "by-the-person"
    assert _git("show", "--format=", "--name-only", "HEAD", cwd=mp).split() == ["lib.py"]
    _git("status", cwd=mp)
    assert not canary.exists(), "the nested repository's fsmonitor ran for the person"
    assert "160000" not in _git("ls-files", "-s", cwd=mp), "the command's index became the person's"
    assert not os.path.lexists(os.path.join(worktree_dir(vault, "main"), "index.lock"))
    assert Path(mp, "lib.py").read_text().endswith("y = 2\n")


def test_a_head_lock_left_while_the_person_s_git_runs_goes_at_the_next_run(live, vault, tmp_path):
    """A ``HEAD.lock`` (naming another fork's branch) the command leaves while a git of the
    person's runs in the mount (a `git commit` in its editor) stays after the run: it may be
    that git's. It then counted as the person's at every later run, and every `git commit`
    of theirs failed ("Unable to create .../HEAD.lock") until they removed it. Now the next
    run with no git of theirs open removes it; their commit never lands on the branch the
    lock names."""
    mp = live.mountpoint
    _script(
        live,
        "head.sh",
        ": > started; i=0; while [ ! -e editing ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n"
        'echo "ref: refs/heads/other" > "$(git rev-parse --git-dir)/HEAD.lock"\n',
    )  # (made once the person's git runs: its editor is open)
    other = _git("--git-dir", vault.path, "rev-parse", "other").strip()
    run = subprocess.Popen([*exec_argv("--no-commit"), "--", "sh", "head.sh"], stdout=subprocess.PIPE)
    pager = None
    try:
        assert _wait_for(lambda: os.path.exists(os.path.join(mp, "started")), 60), "the command did not start"
        # a git of the person's open in the mount: a `git commit` in its editor (it aborts)
        editor, release = held_editor(tmp_path, marks=os.path.join(mp, "editing"))  # open until the run ends
        env = {**os.environ, "GIT_EDITOR": editor}
        pager = subprocess.Popen(["git", "commit", "--allow-empty"], cwd=mp, env=env, stderr=subprocess.PIPE)
        out, _ = run.communicate(timeout=120)
    finally:
        if run.returncode is None:
            out, _ = run.communicate(timeout=120)
        if pager is not None:
            release.touch()
            _o, perr = pager.communicate(timeout=60)
    os.unlink(os.path.join(mp, "editing"))
    doc = json.loads(out)
    assert doc["result"]["exit_code"] == 0, doc["result"]
    lock = os.path.join(worktree_dir(vault, "main"), "HEAD.lock")
    assert os.path.exists(lock) and "HEAD.lock" not in [r["ref"] for r in doc["refs_refused"]], (
        doc["refs_refused"],
        doc["result"],
        perr,
    )
    assert "HEAD.lock" not in [r["ref"] for r in doc["refs_refused"]], doc
    with open(os.path.join(mp, "lib.py"), "a") as fh:
        fh.write("y = 2\n")
    failed = subprocess.run(["git", "-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qam", "mine"], cwd=mp,
                            capture_output=True, text=True)  # fmt: skip
    assert failed.returncode != 0 and "HEAD.lock" in failed.stderr, failed  # git refuses, says why
    assert _git("--git-dir", vault.path, "rev-parse", "other").strip() == other
    nxt = subprocess.run([*exec_argv("--no-commit"), "--", "true"], capture_output=True, timeout=120)
    assert "HEAD.lock" in [r["ref"] for r in json.loads(nxt.stdout)["refs_refused"]], nxt.stdout
    assert not os.path.lexists(lock)
    _git("-c", "user.name=P", "-c", "user.email=p@x", "commit", "-qam", "mine", cwd=mp)
    assert _git("show", "--format=%s", "--name-only", "HEAD", cwd=mp).split() == ["mine", "lib.py"]
    assert _git("--git-dir", vault.path, "rev-parse", "other").strip() == other

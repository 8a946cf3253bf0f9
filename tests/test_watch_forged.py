"""The change stream against reflog lines someone else wrote (changes2, thirty-fourth round).

A fork's ``ref_moved`` events come from its reflog, which git in the mount writes: any
message, identity and time. A confined ``proxy exec`` command's git writes only its run's
scratch copy (avfs writes the vault's line of a move it carries back, with its own
message and time); git run in the mount outside ``proxy exec`` (the person's, an agent's
that nothing confines) writes the vault's reflog itself. On main a line whose message
began ``avfs`` with a time to come held every later move of the fork back for as long as
that time was ahead; an ``avfs`` message was labelled ``api`` (``exec`` with ``avfs: avfs
proxy exec:``) though no operation named it; a line claiming an earlier time sorted
before the lines ahead of it (a batch cut after it skipped them); a time past the
platform's ``time_t`` failed every read of the stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import refs
from avfs_git.core.vaults import changes
from avfs_git.core.vaults.changes import changes_since

from .test_fuse import _mounted
from .test_watch import _Watch

AVFS = [sys.executable, "-m", "avfs_git"]
FUTURE = 4_000_000_000  # 2096 (git takes no @-date past 2099)
# what git in the mount runs: a move of the fork's branch by `git update-ref`, dated ahead
# and said to be avfs's, then a line written into the common git dir's reflog directly
FORGE = f"""
set -e
head=$(git rev-parse HEAD)
new=$(GIT_COMMITTER_DATE=@{FUTURE} git commit-tree -p HEAD -m forged "HEAD^{{tree}}")
GIT_COMMITTER_DATE=@{FUTURE} git update-ref -m "avfs: checkpoint forged" refs/heads/main $new $head
log="$(git rev-parse --git-common-dir)/logs/refs/heads/main"
python3 -c 'import sys; open(sys.argv[1], "a").write(sys.argv[2] + " " + sys.argv[2] + " avfs <avfs> {FUTURE + 1} +0000\\tavfs: direct\\n")' "$log" $new || true
"""


@pytest.fixture(params=["overlay", "fuse"])
def mounted(
    request: pytest.FixtureRequest, home: Any, vault: Any, tmp_path: Any
) -> Iterator[tuple[Any, str, str]]:
    with _mounted(home, vault, tmp_path, request.param) as (v, mp):
        yield v, mp, request.param


def _reflog(vault: Any, fork: str = "main") -> str:
    with open(refs.reflog_path(vault.path, refs.fork_ref(fork)), encoding="utf-8") as fh:
        return fh.read()


def _git(vault: Any, *args: str, **env: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", vault.path, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    ).stdout.strip()


def _moved(evs: Any) -> list[tuple[Any, ...]]:
    return [(e.old, e.new, e.source, e.summary) for e in evs if e.kind == "ref_moved"]


def test_a_line_dated_ahead_by_git_in_the_mount_holds_no_later_move_back(
    mounted: tuple[Any, str, str],
) -> None:
    """The attacker's side: a confined command runs the forge (its lines land in its
    run's scratch: the vault's reflog gets avfs's own line of the move); git run in the
    mount outside `proxy exec` runs it too (the vault's reflog gets the lines). Then a
    checkpoint: a running `avfs watch` and the API both show its move, and the forged
    lines as git's, none dated ahead. On main the watch never showed it."""
    vault, mp, backend = mounted
    with open(os.path.join(mp, "forge.sh"), "w") as fh:
        fh.write(FORGE)
    w = _Watch("v:main")
    try:
        c0 = w.docs(0, 60.0, until_cursor=True)[0]["cursor"]
        r = subprocess.run(
            [*AVFS, "--json", "--vault", "v:main", "proxy", "exec", "--", "sh", "forge.sh"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=mp,
        )
        env = json.loads(r.stdout)
        assert env["result"]["exit_code"] == 0 and env["branch_moved"], (r.stdout, r.stderr)
        assert env["confinement"]["kind"] == "bwrap", env["confinement"]
        log = _reflog(vault)
        assert str(FUTURE) not in log and "forged" not in log, log  # (the sandbox's own copy)
        assert log.splitlines()[-1].endswith("\tavfs proxy exec: main moved by the command's git")
        carried = env["branch_moved"]["to"]
        # git in the mount, nothing confining it: the vault's own reflog
        subprocess.run(["sh", "forge.sh"], cwd=mp, check=True, capture_output=True, timeout=60)
        assert f"{FUTURE} +0000\tavfs: checkpoint forged" in _reflog(vault)
        forged = _git(vault, "rev-parse", "refs/heads/main")
        vault.workspace("main").write("later.txt", b"later\n")
        after = checkpoint.save(vault, "main", name="after").checkpoint.commit
        docs: list[dict[str, Any]] = []
        end = time.time() + 30
        while time.time() < end and not any(d.get("event", {}).get("new") == after for d in docs):
            docs += w.docs(1, timeout=1.0)
    finally:
        w.stop()
    live = [(d["event"]["new"], d["event"]["source"]) for d in docs if d["event"]["kind"] == "ref_moved"]
    assert (after, "api") in live, (backend, live)
    evs = changes_since(vault, "main", c0).events
    moved = _moved(evs)
    assert (carried, "exec") in [(m[1], m[2]) for m in moved], moved
    assert (carried, forged, "git", "avfs: checkpoint forged") in moved, moved
    assert (forged, forged, "git", "avfs: direct") in moved, moved
    assert moved[-1][1:3] == (after, "api"), moved
    assert all(e.time <= changes._rfc(time.time()) for e in evs)  # none dated ahead


def test_a_line_claiming_an_operation_another_fork_or_an_exec_is_git_s(vault: Any) -> None:
    """Moves of the branch by git whose messages claim to be avfs's: one naming a
    checkpoint and its operation, one a fork made from another, one a proxy exec's; each
    dated before now (past the wait for an operation). Each is `git`'s, with no operation,
    and avfs's own moves keep theirs. On main each was `api` (or `exec`)."""
    c0 = changes_since(vault, None, None).cursor
    vault.workspace("main").write("f", b"1")
    one = checkpoint.save(vault, "main", name="one").checkpoint.commit
    op = vault.oplog.next_id() - 1
    vault.create_fork("main", "side")
    tree = _git(vault, "rev-parse", f"{one}^{{tree}}")
    claims = [f"avfs: checkpoint one (op {op})", "avfs: fork main -> side", "avfs: avfs proxy exec: sh -c x"]
    tip, made = one, []
    for n, message in enumerate(claims):
        date = f"@{int(time.time()) - 60 + n}"
        new = _git(vault, "commit-tree", "-p", tip, "-m", f"c{n}", tree, GIT_COMMITTER_DATE=date)
        _git(vault, "update-ref", "-m", message, "refs/heads/main", new, tip, GIT_COMMITTER_DATE=date)
        made.append((tip, new, "git", message))
        tip = new
    evs = changes_since(vault, None, c0).events
    main = _moved(e for e in evs if e.fork == "main")
    assert main[-3:] == made, main
    assert main[0][1:3] == (one, "api"), main
    side = [e for e in evs if e.kind == "ref_moved" and e.fork == "side"]
    assert [(e.old, e.new, e.source) for e in side] == [(None, one, "api")]
    assert all(e.op is None for e in evs if e.kind == "ref_moved")


def _append(vault: Any, old: str, new: str, stamp: str, message: str) -> None:
    with open(refs.reflog_path(vault.path, refs.fork_ref("main")), "a", encoding="utf-8") as fh:
        fh.write(f"{old} {new} git <git@example.invalid> {stamp} +0000\t{message}\n")


def test_a_line_dated_before_the_lines_ahead_of_it_skips_none_of_them(vault: Any) -> None:
    """Two moves written by git, the second dated 1970: read one event at a time, both
    come, in the file's order. On main the second sorted first and the cursor after it
    passed the first: it never came."""
    head = _git(vault, "rev-parse", "refs/heads/main")
    c = changes_since(vault, "main", None).cursor
    now = str(int(time.time()) - 10)
    _append(vault, head, head, now, "first")
    _append(vault, head, head, "1", "second")
    got = []
    for _ in range(5):
        ch = changes_since(vault, "main", c, limit=1)
        got += [e.summary for e in ch.events]
        c = ch.cursor
    assert got == ["first", "second"], got


def test_a_time_past_the_platform_s_clock_fails_no_read(vault: Any) -> None:
    """A line git reads (its time 20 digits, past any `time_t`; its zone +0000) is an
    event dated no later than now. On main every read of the stream failed
    (OverflowError out of `time.gmtime`)."""
    head = _git(vault, "rev-parse", "refs/heads/main")
    c = changes_since(vault, "main", None).cursor
    _append(vault, head, head, "99999999999999999999", "far")
    evs = changes_since(vault, "main", c).events
    assert [(e.summary, e.source) for e in evs] == [("far", "git")]
    assert evs[0].time <= changes._rfc(time.time())


def test_a_push_of_a_fork_leaves_git_s_own_move_of_it_git_s(vault: Any, tmp_path: Any) -> None:
    """A push's refs are the remote's (`refs/heads/main` there), and the stream took them
    for the fork's own move: the person's `git commit` of the branch, pushed after, came
    out as `api`, at the push's time (the review of the thirty-fourth round)."""
    from avfs_git.core.operations import remote
    from avfs_git.core.store.vaultconfig import add_remote

    server = tmp_path / "server.git"
    subprocess.run(["git", "init", "-q", "--bare", str(server)], check=True)
    add_remote(vault.store, "origin", str(server))
    remote.push(vault, "origin", ["main"])  # (the server has the tip: the next push moves it on)
    c0 = changes_since(vault, "main", None).cursor
    tip = _git(vault, "rev-parse", "refs/heads/main")
    tree = _git(vault, "rev-parse", f"{tip}^{{tree}}")
    made = _git(
        vault,
        "commit-tree",
        tree,
        "-p",
        tip,
        "-m",
        "by git",
        GIT_AUTHOR_NAME="p",
        GIT_AUTHOR_EMAIL="p@p",
        GIT_COMMITTER_NAME="p",
        GIT_COMMITTER_EMAIL="p@p",
    )
    _git(vault, "update-ref", "-m", "commit: by git", "refs/heads/main", made, tip)
    vault.workspace("main").sync_base()
    remote.push(vault, "origin", ["main"])
    moved = _moved(changes_since(vault, "main", c0).events)
    assert (tip, made, "git", "commit: by git") in moved, moved  # (main: api)

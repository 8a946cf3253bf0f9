"""Files' times a confined command sets past what avfs's records hold (the twenty-eighth
round, NAME=attack19): a time after 2262 is past SQLite's 64 bits of nanoseconds, one
after 2106 or before 1970 past the 32 bits of seconds git's index keeps.

On pure FUSE a checkpoint keeps the times of the files it retires (``kept_times``): the
command's `touch -d 2300-01-01 README` failed the exec's own commit ("internal error:
OverflowError: Python int too large to convert to SQLite INTEGER") and then every `avfs
status`, `avfs diff` and checkpoint of the fork (the retire stays pending, done again at
every open), and a file of 1969 or 2107 failed the mount's index patch ("argument out of
range"). Each from inside a real confined `proxy exec` in a real mount (overlay and pure
FUSE), then the person's git and avfs commands."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from .test_adv_gitseal import _avfs, _exec, _script
from .test_adv_gitseal import live as live  # the fixture: both backends

_TOUCH = """set -e
echo changed >> README && touch -d '2300-01-01 00:00:00' README
echo more >> lib.py && touch -d @-86400 lib.py
echo new > new.txt && touch -d '2107-01-01 00:00:00' new.txt
stat -c '%Y' README lib.py new.txt
"""


def _person(mp: str, *argv: str) -> str:
    got = subprocess.run(argv, cwd=mp, capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, (argv, got.stderr)
    return got.stdout


def _ok(*args: str) -> str:
    r = _avfs(*args)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout.decode()


def test_times_past_what_sqlite_and_git_s_index_hold_fail_no_command(live: Any, vault: Any) -> None:
    """Times of 2300, 1969 and 2107 the command set: its exec commits, and the person's
    `git status`, `avfs status`, `avfs diff`, checkpoints (before and after an edit of
    theirs) and the next exec all answer; git's status is clean after each checkpoint."""
    mp = live.mountpoint
    _script(live, "t.sh", _TOUCH)
    doc = _exec("sh", "t.sh")
    assert doc["result"]["stdout"].split() == ["10413792000", "-86400", "4323283200"], doc["result"]
    assert doc.get("error") is None, doc["error"]
    assert _person(mp, "git", "status", "--porcelain") == ""
    assert "nothing changed" in _ok("status")
    _ok("diff")
    _ok("checkpoint", "save", "x")
    with open(os.path.join(mp, "README"), "a") as fh:
        fh.write("the person's line\n")
    assert _person(mp, "git", "status", "--porcelain").split() == ["M", "README"]
    _ok("checkpoint", "save", "y")
    assert _person(mp, "git", "status", "--porcelain") == ""
    assert _exec("true").get("error") is None
    assert _person(mp, "git", "status", "--porcelain") == ""
    assert _person(mp, "git", "cat-file", "-p", "HEAD:new.txt") == "new\n"


_FAR = """set -e
echo x >> README && git add README
tree=$(git write-tree) && parent=$(git rev-parse HEAD)
c=$(printf 'tree %s\\nparent %s\\nauthor A <a@x> 9223372036854775807 +0000\\ncommitter A <a@x> 9223372036854775807 +0000\\n\\nfar\\n' $tree $parent | git hash-object -t commit -w --stdin)
git update-ref refs/heads/main $c && echo "MADE $c"
"""


def test_a_commit_dated_past_what_time_shows_fails_no_history_view(live: Any, vault: Any) -> None:
    """The command's commit dated 9223372036854775807 (``git fsck`` and ``index-pack
    --strict`` take it) is carried onto the fork's branch; every later `avfs log`, `--json
    log` and `avfs stats` failed ("internal error: OSError: [Errno 75] Value too large for
    defined data type", "OverflowError: timestamp out of range"), the commit being in the
    fork's history for good. Now its time shows as git shows it: the epoch."""
    mp = live.mountpoint
    _script(live, "far.sh", _FAR)
    doc = _exec("sh", "far.sh")
    made = doc["result"]["stdout"].split("MADE ", 1)[1].split()[0]
    assert doc["refs_refused"] == [] and doc.get("error") is None, doc
    assert _person(mp, "git", "log", "--format=%H %cI", made).startswith(f"{made} 1970-01-01T00:00:00")
    assert f"{made[:12]}" in _ok("log")
    log = json.loads(_ok("--json", "log"))
    assert any(c["time"] == "1970-01-01T00:00:00Z" for c in log["commits"]), log
    _ok("stats")
    _ok("checkpoint", "list")

"""Resources a confined command spends to make avfs's host side slow or lose the person's
work: what it leaves in the fork (directories deeper than any project's), read by the
exec's record of what changed, every later exec, status and checkpoint.

Each attack runs through a real confined `proxy exec` in a real mount (overlay backend and
pure FUSE), then the test acts as the person would; a host side that hangs fails it at the
call's timeout (the helpers' 120 s), which no correct run comes near."""

from __future__ import annotations

import os

from .test_adv_gitseal import _avfs, _exec, _git, _script
from .test_adv_gitseal import live as live  # the fixture: both backends

DEPTH = 600


def test_a_directory_hundreds_of_levels_deep_keeps_exec_status_and_checkpoint_quick(live, vault):
    """Found in the fourteenth round (NAME=attack5): on the overlay backend a command's
    `mkdir` 400 levels deep (0.7 s) held its exec's record of what changed for 275 s, and
    every later exec, a `true`, as long again before its command ran: each path read the
    upper layer through each of its ancestors, and each ancestor's lower path through the
    ancestors again (O(depth^3) `listxattr` calls; 600 levels, past a quarter of an hour).
    Now a read keeps what it found at each path for its duration. The exec commits the
    file; the next exec, the person's `avfs status`, a checkpoint of their change and
    their `git status` come back, and nothing is lost."""
    mp = live.mountpoint
    _script(
        live,
        "deep.sh",
        f"mkdir deep && cd deep && i=0; while [ $i -lt {DEPTH} ]; do mkdir d && cd d || break; i=$((i+1)); done\n"
        'echo bottom > f; echo "depth $i"\n',
    )
    doc = _exec("sh", "deep.sh")
    assert doc["result"]["stdout"].strip() == f"depth {DEPTH}", doc["result"]
    path = "deep/" + "d/" * DEPTH + "f"
    assert doc["commit"] is not None and [c["path"] for c in doc["changes"]] == [path], doc["changes"]
    assert _git("--git-dir", vault.path, "show", f"main:{path}") == "bottom\n"
    assert _exec("true")["exit_code"] == 0
    with open(os.path.join(mp, "lib.py"), "a") as fh:
        fh.write("y = 2\n")
    status = _avfs("status")
    assert status.returncode == 0 and b"lib.py" in status.stdout, status
    assert _avfs("checkpoint", "save").returncode == 0
    assert "y = 2" in _git("--git-dir", vault.path, "show", "main:lib.py")
    assert _git("status", "--short", cwd=mp) == ""

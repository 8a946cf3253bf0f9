"""A vault whose pack is damaged in the middle (`git fsck`: "pack checksum mismatch",
"cannot unpack"): the commands that need none of its damaged objects answer (status, log,
diff, a checkpoint of other files), those that do say which object (`object_unreadable`,
the hint `avfs doctor`); `grep` was exit 70 ("git grep failed: fatal: packed object ...
is corrupt"). docs/security.md, bad input.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from pathlib import Path

from .conftest import CliResult, git
from .test_json_everypath import _changed, _home_state

Cli = Callable[..., CliResult]

SOURCES = Path(__file__).resolve().parent.parent / "avfs_git" / "core" / "store"


def test_a_damaged_pack_is_named_by_what_needs_it_and_nothing_else_fails(cli: Cli) -> None:
    assert cli("vault", "create", "v").code == 0
    real = sorted(SOURCES.glob("*.py"))[:12]  # (real files: avfs's own sources)
    for f in real:
        assert cli("--vault", "v", "write", f.name, "--file", str(f)).code == 0
    assert cli("--vault", "v", "checkpoint", "save", "-m", "one").code == 0
    home = os.environ["AVFS_HOME"]
    vault = os.path.join(home, "vaults", "v.git")
    git("--git-dir", vault, "repack", "-adq")
    git("--git-dir", vault, "prune-packed")
    (pack,) = glob.glob(os.path.join(vault, "objects", "pack", "*.pack"))
    good = Path(pack).read_bytes()
    bad = bytearray(good)
    for i in range(len(bad) // 2, len(bad) // 2 + 64):
        bad[i] ^= 0xFF
    os.chmod(pack, 0o644)
    Path(pack).write_bytes(bytes(bad))
    try:
        assert cli("--vault", "v", "write", "new.txt", "new").code == 0
        for args in (("status",), ("log",), ("diff",)):
            r = cli("--vault", "v", "--json", *args)
            assert r.code == 0 and r.out.count("\n") == 1, (args, r.code, r.out)
        before = _home_state(home)
        refused = 0
        for f in real:
            r = cli("--vault", "v", "--json", "cat", f.name)
            if r.code != 0:
                refused += 1
                err = r.json()["error"]
                assert r.code == 1 and err["code"] == "object_unreadable" and "doctor" in err["hint"], r.out
        assert refused > 0  # (the damage is in some file's object)
        r = cli("--vault", "v", "--json", "grep", "import")
        assert r.code == 1 and r.out.count("\n") == 1, (r.code, r.out)  # (was 70, internal)
        err = r.json()["error"]
        assert err["code"] == "object_unreadable" and err["details"]["oid"] in err["message"], err
        assert _changed(before, _home_state(home)) == []
        d = cli("--json", "doctor", "--full")
        assert d.code == 1 and any(f["code"] == "object_unreadable" for f in d.json()["findings"]), d.out
    finally:
        Path(pack).write_bytes(good)
    assert cli("--vault", "v", "checkpoint", "save", "-m", "two").code == 0

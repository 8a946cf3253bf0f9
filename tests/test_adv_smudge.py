"""The checkout conversions a mount applies to the files it serves from git (the eighth
attack round, NAME=attack8): `.gitattributes` are the fork's, so a confined command
chooses what the mount's daemon runs on each file a later mount of its commit shows.

Each attack plants through a real confined `proxy exec` in a real mount (overlay and pure
FUSE), whose commit holds the attributes and the files; the person then forks that work
and mounts the new fork (whose files come from git, converted), reads them, and runs
`git status` there."""

from __future__ import annotations

import json
import os
import subprocess

from avfs_git.core.store.gitsmudge import MAX_FORM
from avfs_git.ops import mounts

from .test_adv_gitseal import _git, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .waitingexec import exec_argv

# letters of many code points (punycode's encoder is quadratic in them), an `$Id$` file
# whose expansion is past the bound, and the attributes naming them
_PLANT = """set -e
printf 'p.txt working-tree-encoding=punycode\\nz.txt working-tree-encoding=zlib_codec\\n' > .gitattributes
printf 'ids.txt ident\\n' >> .gitattributes
python3 -c 'import sys; sys.stdout.write("".join(map(chr, range(0x100, 0x900))) + "\\n")' > p.txt
cp p.txt z.txt
python3 -c 'import sys; sys.stdout.write("$Id$" * {ids})' > ids.txt
"""


def test_planted_conversions_never_run_what_git_checkout_would_not(live, vault, home):
    """Found: a ``working-tree-encoding`` went to any codec Python has by that name (git
    converts through iconv, which knows no ``punycode`` and writes such a file as its
    blob): a 114 KB file of varied letters took the daemon 85 s of CPU to show, under its
    lock for every converted file of the mount; and an ``ident`` file of ``$Id$`` grew
    11.5 times in the daemon's memory (after `eol=crlf` and UTF-32: ~90 times)."""
    ids = MAX_FORM // 40
    _script(live, "plant.sh", _PLANT.format(ids=ids))
    p = subprocess.run([*exec_argv(), "--", "sh", "plant.sh"], capture_output=True, timeout=600)
    doc = json.loads(p.stdout)
    assert doc["result"]["exit_code"] == 0, doc["result"]
    assert doc["commit"] is not None
    vault.fork("main", "f2")
    info = mounts.mount(home, vault, "f2", None, backend=live.backend)
    try:
        mp = info.mountpoint
        for name in ("p.txt", "z.txt", "ids.txt"):
            blob = subprocess.run(
                ["git", "--git-dir", vault.path, "cat-file", "blob", f"f2:{name}"],
                capture_output=True,
                check=True,
            ).stdout
            with open(os.path.join(mp, name), "rb") as fh:
                shown = fh.read()
            # (git checkout writes the blob of the first two; the third's form is past the
            # bound, shown as its blob: docs/fuse.md "Checkout conversions")
            assert shown == blob, f"{name}: the mount shows {shown[:40]!r} for {blob[:40]!r}"
            assert os.stat(os.path.join(mp, name)).st_size == len(shown), name
        assert _git("status", "--porcelain", cwd=mp).strip() == ""
    finally:
        mounts.unmount(home, vault, "f2", lazy=True)

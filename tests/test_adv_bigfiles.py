"""Files as large as the bytes quota lets a confined command make, read by the host side
and by the person's review (the twenty-seventh round, NAME=attack18).

A ``.gitignore``: a sparse one (``truncate -s``) costs the command
nothing, and avfs's host side read it whole, once per reader (the ignore rules' scratch
copy and its key, the mount's untracked cache and its skeleton, host git's `status` and
`check-ignore` there): 1 GiB took the mount's daemon from 29 MB to 1,057 MB of memory in
the exec's commit, and the default quota is 10 GiB. Newer git skips a pattern file of
100 MiB or more (dir.c ``PATTERN_MAX_FILE_SIZE``); avfs now does too, without reading it.

Any file, in the person's `avfs diff` (and `log -p`, MCP `diff`): both sides were read
whole and given to libgit2, where `git diff` calls a file past ``core.bigFileThreshold``
(512 MiB) binary without reading it: sparse files of 1 GiB and 600 MiB took `avfs diff
HEAD~1 HEAD` to 3.2 GB and 121 s. Now avfs does as git does.

From inside a real confined `proxy exec` in a real mount, both backends; the memory of the
mount's daemon and of the exec's client is what the kernel counts (``VmHWM``,
``ru_maxrss``), with a margin of the whole bound: a second copy of the file could not fit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from .test_adv_gitseal import _avfs, _script
from .test_adv_gitseal import live as live  # the fixture: both backends
from .test_fuse import _peak_rss
from .waitingexec import exec_argv

_BOUND = 100 << 20  # newer git's (dir.c PATTERN_MAX_FILE_SIZE), avfs's MAX_PATTERN_FILE
_SIZE = 3 * _BOUND  # sparse: 300 MiB that take no disk

# the command: a sparse .gitignore past the bound whose last line would ignore new.txt, a
# small one below it that ignores what it names, and new files
_PLANT = f"""set -e
truncate -s {_SIZE - 9} .gitignore
printf '\\nnew.txt\\n' >> .gitignore
mkdir -p sub
printf 'skip.txt\\n' > sub/.gitignore
echo new > new.txt
echo kept > sub/kept.txt
echo skip > sub/skip.txt
"""


# a process's ``ru_maxrss`` starts at its parent's high-water mark (Linux folds the old
# memory's into it at exec, and a vfork child's old memory is its parent's): a test worker
# that grew to 611 MiB gave every child 611 MiB (ci17). So the command runs below a small
# Python that forks it and reports its peak alone.
_MEASURED = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write('%d %d' % (os.waitstatus_to_exitcode(status), usage.ru_maxrss))\n"
)


def _measured(argv: list[str], report: Path) -> tuple[bytes, int, int]:
    """(stdout, exit code, peak memory in bytes) of ``argv``, its peak its own."""
    out = subprocess.run(
        [sys.executable, "-S", "-c", _MEASURED, str(report), *argv], stdout=subprocess.PIPE, check=True
    ).stdout
    code, peak = report.read_text().split()
    return out, int(code), int(peak) * 1024


def test_a_gitignore_past_git_s_bound_is_never_read_by_the_host(live: Any, tmp_path: Path) -> None:
    """The exec's commit, `avfs status`, a checkpoint and the mount's index take a
    ``.gitignore`` past the bound as empty, newer git's reading (``new.txt``, which its last
    line names, is committed), without reading it: neither the mount's daemon nor the
    exec's client grows by the bound. A small ``.gitignore`` beside it still applies."""
    _script(live, "plant.sh", _PLANT)
    before = _peak_rss(live.pid)
    out, _, client = _measured([*exec_argv(), "--", "sh", "plant.sh"], tmp_path / "exec.peak")
    doc = json.loads(out)
    assert doc["result"]["exit_code"] == 0, doc["result"]
    assert os.path.getsize(os.path.join(live.mountpoint, ".gitignore")) == _SIZE
    grew = _peak_rss(live.pid) - before
    assert grew < _BOUND, f"the mount's daemon grew by {grew >> 20} MiB"
    assert client < _BOUND, f"the exec's client took {client >> 20} MiB"
    changed = {c["path"] for c in doc["changes"]}
    assert {".gitignore", "new.txt", "sub/.gitignore", "sub/kept.txt"} <= changed, doc["changes"]
    assert "sub/skip.txt" not in changed, doc["changes"]
    # the person, after it: avfs reads no more of it than the exec did
    Path(live.mountpoint, "later.txt").write_text("later\n")
    r = _avfs("--json", "status")
    assert r.returncode == 0, r.stderr
    assert "later.txt" in {c["path"] for c in json.loads(r.stdout)["changes"]}
    assert _avfs("checkpoint", "save", "after").returncode == 0
    grew = _peak_rss(live.pid) - before
    assert grew < _BOUND, f"the mount's daemon grew by {grew >> 20} MiB"


_BIG = 512 << 20  # git's core.bigFileThreshold (avfs's history.BIG_FILE)


def _peak_of(*args: str) -> tuple[bytes, int]:
    """(stdout, peak memory in bytes) of `avfs --vault v:main ARGS` run as the person runs it."""
    fd, report = tempfile.mkstemp(prefix="avfs-peak-")
    os.close(fd)
    try:
        out, code, peak = _measured(
            [sys.executable, "-m", "avfs_git", "--vault", "v:main", *args], Path(report)
        )
    finally:
        os.unlink(report)
    assert code == 0, (args, out[-2000:])
    return out, peak


@pytest.mark.parametrize("live", ["overlay"], indirect=True)
def test_a_diff_of_files_past_git_s_big_file_bound_reads_neither_side(live: Any) -> None:
    """The command's sparse 600 MiB file and a tracked file made 600 MiB: the person's
    `avfs diff HEAD~1 HEAD`, `--json diff` (its patch and its counts) and `log -p` name both
    binary, as `git diff` does, in memory far below either file."""
    _script(live, "plant.sh", f"truncate -s {_BIG + (88 << 20)} big.bin lib.py\n")
    got = subprocess.run([*exec_argv(), "--", "sh", "plant.sh"], capture_output=True, timeout=600)
    doc = json.loads(got.stdout)
    assert doc["result"]["exit_code"] == 0, doc["result"]
    assert {c["path"] for c in doc["changes"]} == {"big.bin", "lib.py"}, doc["changes"]
    text, peak = _peak_of("diff", "HEAD~1", "HEAD")
    assert peak < _BIG, f"avfs diff took {peak >> 20} MiB"
    assert b"Binary files /dev/null and b/big.bin differ" in text, text
    assert b"Binary files a/lib.py and b/lib.py differ" in text, text
    assert b"new file mode 100644" in text, text
    out, peak = _peak_of("--json", "diff", "--stat", "HEAD~1", "HEAD")
    assert peak < _BIG, f"avfs --json diff took {peak >> 20} MiB"
    files = {f["path"]: f for f in json.loads(out)["stat"]}
    assert files["big.bin"]["binary"] and files["lib.py"]["binary"], files
    out, peak = _peak_of("--json", "diff", "HEAD~1", "HEAD")
    assert peak < _BIG, f"avfs --json diff took {peak >> 20} MiB"
    assert "Binary files a/lib.py and b/lib.py differ" in json.loads(out)["patch"]
    text, peak = _peak_of("log", "-p", "-1")
    assert peak < _BIG, f"avfs log -p took {peak >> 20} MiB"
    assert b"Binary files a/lib.py and b/lib.py differ" in text, text

"""git's first `status` after avfs recorded files (a checkpoint, a `proxy exec`'s commit)
trusts the stat data of what was recorded: the index avfs writes ahead of its move of the
branch (mount/indexahead.py) holds, for each file the capture read and nothing wrote since,
the stat the mount shows for it (mount/heldstat.py ``written_stat``), where it held the
view time, which no such file shows: git hashed every file recorded again
(``GIT_TRACE2_PERF``'s ``refresh/sum_scan``, the entries git read to compare; gitmodel15).
And a file written after the capture read it keeps an index entry git does not trust, so
git still sees that change. Both backends, real mounts, real git."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from avfs_git.mount import indexahead

from ..gitmount import _git, mount_fork
from .backends import MOUNTS

pytestmark = pytest.mark.backends(*MOUNTS)


@pytest.fixture
def mounted(backend: str, cli_proc: Any, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    with mount_fork(cli_proc, tmp_path, backend, in_process=True) as m:
        yield m


def _status_hashed(mp: Path, tmp_path: Path) -> tuple[str, int]:
    """`git status --porcelain` and how many index entries git read the file of to compare
    (trace2's ``refresh/sum_scan``)."""
    perf = tmp_path / f"perf-{len(os.listdir(tmp_path))}"
    env_before = os.environ.get("GIT_TRACE2_PERF")
    os.environ["GIT_TRACE2_PERF"] = str(perf)
    try:
        out = _git(mp, "status", "--porcelain").stdout
    finally:
        if env_before is None:
            del os.environ["GIT_TRACE2_PERF"]
        else:
            os.environ["GIT_TRACE2_PERF"] = env_before
    scans = [int(n) for n in re.findall(r"refresh/sum_scan:(\d+)", perf.read_text())]
    assert scans, perf.read_text()
    return out, sum(scans)


def _write_some(mp: Path) -> None:
    (mp / "a.txt").write_text("two\n")
    (mp / "d" / "c.txt").write_text("c again\n")
    for i in range(5):
        (mp / f"new{i}.txt").write_text(f"new {i}\n")


def test_git_reads_no_file_a_checkpoint_recorded(mounted: Any, tmp_path: Path) -> None:
    mp, avfs = mounted
    _write_some(mp)
    assert avfs("checkpoint", "save", "-m", "seven files").code == 0
    out, hashed = _status_hashed(mp, tmp_path)
    assert out == ""
    assert hashed == 0


def test_git_reads_no_file_a_proxy_exec_recorded(mounted: Any, tmp_path: Path) -> None:
    mp, avfs = mounted
    script = "printf 'two\\n' > a.txt; printf 'c again\\n' > d/c.txt; for i in 0 1 2 3 4; do echo $i > new$i.txt; done"
    res = avfs("--json", "proxy", "exec", "--", "sh", "-c", script)
    assert res.code == 0, res.out + res.err
    out, hashed = _status_hashed(mp, tmp_path)
    assert out == ""
    assert hashed == 0


def test_a_file_written_after_the_capture_read_it_is_still_a_change(
    mounted: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a.txt's bytes written again (the same size) through the mount after the capture read
    them, before the index is written ahead of the move: the commit holds the bytes read,
    git's status sees the file's as a change (an index holding the file's stat now would
    hide it)."""
    mp, avfs = mounted
    (mp / "a.txt").write_text("two\n")
    _git(mp, "status", "--porcelain")
    ran: list[bool] = []
    real = indexahead.patched_index

    def write_then_patch(*args: Any, **kwargs: Any) -> Any:
        with open(mp / "a.txt", "w") as fh:
            fh.write("TWO\n")
        # (its mtime an hour back: git would take a file changed in the index's own
        # clock tick as racily clean and read it whatever the index says)
        back = (os.stat(mp / "a.txt").st_mtime_ns - 3600 * 10**9,) * 2
        os.utime(mp / "a.txt", ns=back)
        ran.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(indexahead, "patched_index", write_then_patch)
    assert avfs("checkpoint", "save", "-m", "two").code == 0
    assert ran == [True]
    assert _git(mp, "show", "HEAD:a.txt").stdout == "two\n"
    assert (mp / "a.txt").read_text() == "TWO\n"
    assert _git(mp, "status", "--porcelain").stdout == " M a.txt\n"

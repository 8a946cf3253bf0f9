"""A fork of a fork with changes shows what the source shows at that moment, whichever
backend wrote them, also when the capture of an unchanged source is reused
(core/workspace/forkcapture.py): a rewrite of a file in place, an ignored path, a removal."""

from __future__ import annotations

import time

import pytest

from .backends import MOUNTS


def _tick() -> None:
    """Let the file system's clock move on past what was just written, so that the next
    fork keeps its capture (a capture is kept only when its files are older than the clock
    tick it starts in): not a wait for readiness."""
    time.sleep(0.05)


def test_contract_a_fork_shows_the_source_as_it_is_now(fs, vault):
    fs.write(".gitignore", b"build/\n")
    fs.write("README.md", b"# one\n")
    fs.mkdir("build")
    fs.write("build/out.bin", b"out-1\n")
    _tick()
    vault.create_fork("main", "f1")
    vault.create_fork("main", "f2")  # the source did not change: the same view
    for f in ("f1", "f2"):
        w = vault.workspace(f)
        assert w.read("README.md") == b"# one\n" and w.read("build/out.bin") == b"out-1\n"
    _tick()
    fs.write("README.md", b"# two\n")  # the same size, in place where the backend does so
    fs.write("build/out.bin", b"out-2\n")
    vault.create_fork("main", "f3")
    f3 = vault.workspace("f3")
    assert f3.read("README.md") == b"# two\n" and f3.read("build/out.bin") == b"out-2\n"
    fs.unlink("README.md")
    vault.create_fork("main", "f4")
    assert not vault.workspace("f4").exists("README.md")
    assert vault.workspace("f4").read("build/out.bin") == b"out-2\n"
    # the forks made before keep what they were given
    assert vault.workspace("f1").read("README.md") == b"# one\n"
    assert vault.workspace("f3").read("README.md") == b"# two\n"


@pytest.mark.backends(*MOUNTS)
def test_contract_a_write_through_a_descriptor_held_open_reaches_the_next_fork(fs, vault):
    """A program keeps a file open and rewrites it in place (a log, a database): the mount
    journals nothing for such a write, and the next fork still shows it."""
    fs.write("data.bin", b"AAAA\n")
    with open(fs._p("data.bin"), "r+b") as fh:
        fh.write(b"BBBB\n")
        fh.flush()
        _tick()
        vault.create_fork("main", "f1")
        assert vault.workspace("f1").read("data.bin") == b"BBBB\n"
        _tick()
        fh.seek(0)
        fh.write(b"CCCC\n")
        fh.flush()
        vault.create_fork("main", "f2")
        assert vault.workspace("f2").read("data.bin") == b"CCCC\n"

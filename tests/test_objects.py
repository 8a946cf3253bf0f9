"""The pure-Python object reader agrees with libgit2 on every object, packed (with deltas)
or loose; and read-only CLI commands do not import pygit2."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pygit2
import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store.objects import apply_delta
from avfs_git.core.store.objreader import ObjectReader

from .conftest import git


def _all_objects(path: str) -> list[str]:
    out = git("--git-dir", path, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    return out.split()


@pytest.mark.parametrize("layout", ["loose+packs", "repacked-with-deltas"])
def test_reader_agrees_with_libgit2(home, tmp_path, layout):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    base = "".join(f"line {i}\n" for i in range(400))
    for i in range(30):
        (src / "d" / f"f{i}.txt").write_text(base + f"tail {i}\n")  # near-identical: deltas
    v = home.create_vault("o", from_dir=str(src))
    ws = v.workspace()
    for i in range(5):
        ws.write(f"d/f{i}.txt", (base + f"changed {i}\n").encode())
        checkpoint.save(v)
    if layout == "repacked-with-deltas":
        git("--git-dir", v.path, "repack", "-adf", "-q", "--depth=10", "--window=50")
        stats = git("--git-dir", v.path, "count-objects", "-v")
        assert "packs: 1" in stats
    repo = pygit2.Repository(v.path)
    reader = ObjectReader(v.path)
    oids = _all_objects(v.path)
    assert len(oids) > 40
    for oid in oids:
        got = reader.read(oid)
        assert got is not None, oid
        obj = repo[oid]
        assert got == (obj.type_str, obj.read_raw()), oid
    assert reader.read("0" * 40) is None
    # headers (type, size) without the data agree too, deltas included
    for oid in oids:
        obj = repo[oid]
        assert reader.header(oid) == (obj.type_str, len(obj.read_raw())), oid
    assert reader.header("0" * 40) is None


@pytest.mark.parametrize("where", ["loose", "packed"])
def test_blob_stream_reads_any_range_in_bounded_memory(home, tmp_path, where):
    data = os.urandom(3 << 20) + bytes(5 << 20) + os.urandom(1 << 20)  # 9 MiB, mixed
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    v = home.create_vault("s")
    if where == "loose":
        oid = git("--git-dir", v.path, "hash-object", "-w", str(f)).strip()
    else:
        v.workspace().write("big.bin", data)
        oid = checkpoint.save(v).checkpoint.commit
        oid = git("--git-dir", v.path, "rev-parse", f"{oid}:big.bin").strip()
    reader = ObjectReader(v.path)
    stream = reader.stream(oid)
    assert stream is not None and stream.size == len(data)
    stream.WINDOW = 1 << 20  # small window: exercise restarts and skips
    rng = random.Random(7)
    cases = [(0, 10), (len(data) - 5, 100), (len(data), 10), (4 << 20, 1 << 20), (100, 4096)]
    cases += [(rng.randrange(len(data)), rng.randrange(1, 300_000)) for _ in range(40)]
    cases += [(i, 128 << 10) for i in range(0, len(data), 128 << 10)]  # sequential
    for off, n in cases:
        assert stream.pread(n, off) == data[off : off + n], (off, n)
    assert len(stream._win) <= 2 * stream.WINDOW + stream.STEP
    stream.close()
    # a file-like read() for copying it out
    s2 = reader.stream(oid)
    assert s2 is not None
    assert b"".join(iter(lambda: s2.read(1 << 20), b"")) == data
    s2.close()


def test_delta_rejects_garbage():
    with pytest.raises(ValueError):
        apply_delta(b"abc", b"\x05\x03\x00")


def test_read_only_cli_commands_do_not_import_pygit2(cli, tmp_path):
    assert cli("vault", "create", "p").code == 0
    cli("--vault", "p", "write", "dir/a.txt", "one\n")
    cli("--vault", "p", "checkpoint", "save")
    cli("--vault", "p", "write", "dir/a.txt", "two\n")
    cli("--vault", "p", "write", "b.txt", "new\n")
    script = (
        "import sys, io\n"
        "from avfs_git.cli.main import main\n"
        "for args in (['--json','--vault','p','status'], ['--vault','p','ls','-l','dir'],"
        " ['--vault','p','cat','dir/a.txt'], ['--json','--vault','p','stat','dir']):\n"
        "    assert main(args) == 0, args\n"
        "assert 'pygit2' not in sys.modules, 'pygit2 was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert '"modified"' in proc.stdout and '"added"' in proc.stdout


def _rewrite_index_with_large_offsets(idx_path: str, bad_entry: bool = False) -> None:
    """Rewrite a v2 pack index so that every offset but the first object's goes through the
    64-bit offset table (as git writes them for packs over 2 GiB); ``bad_entry``: one
    points past that table."""
    import hashlib
    import struct

    with open(idx_path, "rb") as fh:
        raw = fh.read()
    count = struct.unpack_from(">I", raw, 8 + 255 * 4)[0]
    offs_at = 1032 + 24 * count
    offsets = struct.unpack_from(f">{count}I", raw, offs_at)
    assert not any(o & 0x80000000 for o in offsets)
    small, big = [], []
    for o in offsets:
        if o == 12:  # the first object (git allows at most count - 1 large entries)
            small.append(struct.pack(">I", o))
        else:
            small.append(struct.pack(">I", 0x80000000 | (len(big) + (count if bad_entry and not big else 0))))
            big.append(struct.pack(">Q", o))
    body = raw[:offs_at] + b"".join(small) + b"".join(big) + raw[-40:-20]
    os.chmod(idx_path, 0o644)
    with open(idx_path, "wb") as fh:
        fh.write(body + hashlib.sha1(body).digest())


def test_reader_reads_an_index_with_large_offsets(home, tmp_path):
    from avfs_git.core.store.objects import ObjectReadError

    from .test_objects_real import compare_all

    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}.txt").write_text("".join(f"line {j}\n" for j in range(300)) + f"tail {i}\n")
    v = home.create_vault("o", from_dir=str(src))
    git("--git-dir", v.path, "repack", "-adf", "-q")
    idx = [
        os.path.join(v.path, "objects", "pack", n)
        for n in os.listdir(os.path.join(v.path, "objects", "pack"))
    ]
    idx = [p for p in idx if p.endswith(".idx")]
    assert len(idx) == 1
    with open(idx[0], "rb") as fh:
        good = fh.read()
    _rewrite_index_with_large_offsets(idx[0])
    git("--git-dir", v.path, "verify-pack", idx[0])  # git agrees it is a valid index
    counts = compare_all(v.path)
    assert counts["objects"] == 22 and counts["deltas"] > 10
    # an entry pointing past the 64-bit table: the reader's own error, never IndexError
    with open(idx[0], "wb") as fh:
        fh.write(good)
    oids = _all_objects(v.path)
    _rewrite_index_with_large_offsets(idx[0], bad_entry=True)
    reader = ObjectReader(v.path)
    try:
        with pytest.raises(ObjectReadError):
            for oid in oids:
                reader.header(oid)
    finally:
        with open(idx[0], "wb") as fh:
            fh.write(good)

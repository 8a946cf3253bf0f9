"""The pure-Python object reader agrees with libgit2 on every object, packed (with deltas)
or loose; and read-only CLI commands do not import pygit2."""

from __future__ import annotations

import subprocess
import sys

import pygit2
import pytest

from avfs_git.core import checkpoint
from avfs_git.core.objects import ObjectReader, apply_delta

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

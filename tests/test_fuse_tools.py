"""Real tools in a mounted fork give byte-for-byte what they give on the native disk.

tar, rsync, make + gcc, python -m venv + pip install + pytest, npm install of a local
tarball: each runs once in a plain directory and once in a mount, and the trees compare
equal (modes and symlinks included). Tools are installed by `make test` (Makefile DEBS).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .conftest import IN_CI
from .test_fuse import require_fuse


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} must be installed in CI (make test installs it)")
        pytest.skip(f"requires {name}")
    return path


def digest_tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple[str, str]]:
    """relative path -> (kind+mode, content hash or link target)."""
    out: dict[str, tuple[str, str]] = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            else:
                with open(p, "rb") as fh:
                    h = hashlib.sha256(fh.read()).hexdigest()
                out[rel] = (f"file{'+x' if st.st_mode & 0o100 else ''}", h)
    return out


@pytest.fixture
def mnt(home, vault, tmp_path) -> Iterator[tuple[object, Path]]:
    require_fuse()
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounts.mount(home, vault, "main", str(mp))
    try:
        yield vault, mp
    finally:
        mounts.unmount(home, vault, "main", lazy=True)


def _sample_tar(tmp_path: Path) -> Path:
    src = tmp_path / "tarsrc"
    (src / "pkg" / "sub").mkdir(parents=True)
    for i in range(200):
        (src / "pkg" / "sub" / f"f{i}.txt").write_text(f"file {i}\n" * (i % 7 + 1))
    (src / "pkg" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (src / "pkg" / "run.sh").chmod(0o755)
    (src / "pkg" / "link").symlink_to("run.sh")
    (src / "pkg" / "big.bin").write_bytes(os.urandom(3 << 20))
    tar = tmp_path / "sample.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(src / "pkg", arcname="pkg")
    return tar


def test_tar_extract(mnt, tmp_path):
    vault, mp = mnt
    tar = _sample_tar(tmp_path)
    native = tmp_path / "native"
    native.mkdir()
    for dest in (native, mp):
        subprocess.run(["tar", "xf", str(tar), "-C", str(dest)], check=True)
    assert digest_tree(mp / "pkg") == digest_tree(native / "pkg")
    checkpoint.save(vault, "main")
    assert vault.workspace("main").read("pkg/sub/f7.txt") == (native / "pkg/sub/f7.txt").read_bytes()


def test_rsync(mnt, tmp_path):
    require_tool("rsync")
    _vault, mp = mnt
    tar = _sample_tar(tmp_path)
    src = tmp_path / "rsrc"
    src.mkdir()
    subprocess.run(["tar", "xf", str(tar), "-C", str(src)], check=True)
    subprocess.run(["rsync", "-a", f"{src}/", f"{mp}/copy/"], check=True)
    assert digest_tree(mp / "copy") == digest_tree(src)
    # a second run finds nothing to do
    out = subprocess.run(
        ["rsync", "-ai", f"{src}/", f"{mp}/copy/"], check=True, capture_output=True, text=True
    )
    assert [line for line in out.stdout.splitlines() if not line.startswith(".d")] == []


def test_make_builds_a_c_program(mnt, tmp_path):
    require_tool("gcc")
    require_tool("make")
    _vault, mp = mnt
    files = {
        "hello.c": '#include <stdio.h>\n#include "msg.h"\nint main(void){puts(MSG);return 0;}\n',
        "msg.h": '#define MSG "hello from a mount"\n',
        "Makefile": "hello: hello.c msg.h\n\tgcc -O0 -o hello hello.c\n",
    }
    native = tmp_path / "cnative"
    native.mkdir()
    for d in (native, mp / "c"):
        d.mkdir(exist_ok=True)
        for n, t in files.items():
            (d / n).write_text(t)
        subprocess.run(["make", "-s"], cwd=d, check=True)
        assert (
            subprocess.run([str(d / "hello")], capture_output=True, text=True, check=True).stdout
            == "hello from a mount\n"
        )
        # make trusts mtimes: nothing to do now, a rebuild after a header change
        again = subprocess.run(["make"], cwd=d, capture_output=True, text=True, check=True)
        assert "up to date" in again.stdout
    os.utime(mp / "c" / "msg.h")  # touch
    (mp / "c" / "msg.h").write_text('#define MSG "changed"\n')
    subprocess.run(["make", "-s"], cwd=mp / "c", check=True)
    assert (
        subprocess.run([str(mp / "c" / "hello")], capture_output=True, text=True, check=True).stdout
        == "changed\n"
    )


def _tiny_wheel(dest: Path) -> Path:
    """A pure-Python wheel built by hand (no setuptools/wheel or network needed)."""
    import base64
    import zipfile

    files = {
        "tinypkg/__init__.py": b"def double(x):\n    return 2 * x\n",
        "tinypkg-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n",
        "tinypkg-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: avfs-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={h},{len(data)}")
    record.append("tinypkg-0.1.dist-info/RECORD,,")
    files["tinypkg-0.1.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    whl = dest / "tinypkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return whl


def test_python_venv_pip_pytest(mnt, tmp_path):
    _vault, mp = mnt
    proj = mp / "proj"
    (proj / "tests").mkdir(parents=True)
    (proj / "tests" / "test_tiny.py").write_text(
        "from tinypkg import double\n\ndef test_double():\n    assert double(2) == 4\n"
    )
    venv = proj / ".venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    pip = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(_tiny_wheel(tmp_path))],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr
    assert (venv / "lib").is_dir()
    # pytest itself comes from the project's environment (the base interpreter may lack it)
    import sysconfig

    env = dict(os.environ, PYTHONPATH=sysconfig.get_paths()["purelib"])
    res = subprocess.run(
        [str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=proj,
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 passed" in res.stdout


def test_npm_install_local_tarball(mnt, tmp_path):
    require_tool("npm")
    _vault, mp = mnt
    pkg = tmp_path / "leftpad"
    pkg.mkdir()
    (pkg / "package.json").write_text('{"name": "tiny-leftpad", "version": "1.0.0", "main": "index.js"}\n')
    (pkg / "index.js").write_text("module.exports = (s, n) => String(s).padStart(n);\n")
    packed = subprocess.run(["npm", "pack", "--silent"], cwd=pkg, capture_output=True, text=True, check=True)
    tgz = pkg / packed.stdout.strip().splitlines()[-1]
    results = {}
    native = tmp_path / "napp"
    for d in (native, mp / "app"):
        d.mkdir()
        (d / "package.json").write_text('{"name": "app", "version": "1.0.0"}\n')
        r = subprocess.run(
            ["npm", "install", "--offline", "--no-audit", "--no-fund", "--silent", str(tgz)],
            cwd=d,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        out = subprocess.run(
            ["node", "-e", "console.log(require('tiny-leftpad')('x', 4))"],
            cwd=d,
            capture_output=True,
            text=True,
        )
        results[str(d)] = out.stdout
        assert out.stdout == "   x\n"
    # .package-lock.json records the relative path to the tarball, which differs by location
    got = {k: v for k, v in digest_tree(mp / "app" / "node_modules").items() if k != ".package-lock.json"}
    want = {k: v for k, v in digest_tree(native / "node_modules").items() if k != ".package-lock.json"}
    assert got == want and got


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_git_init_and_clone_into_the_mount(mnt, tmp_path):
    """A nested repository: `git init` and `git clone` in a directory of the mount work like
    on disk; its `.git` is kept beside the fork, never checkpointed; its files are."""
    require_tool("git")
    vault, mp = mnt
    # a source repository on the native disk, cloned once natively and once into the mount
    src = tmp_path / "src"
    src.mkdir()
    _git(src, "init", "-q", "-b", "main")
    for i in range(30):
        (src / f"m{i}.py").write_text(f"x = {i}\n")
    (src / "tool.sh").write_text("#!/bin/sh\n")
    (src / "tool.sh").chmod(0o755)
    (src / "ln").symlink_to("tool.sh")
    _git(src, "add", "-A")
    _git(src, "commit", "-q", "-m", "one")
    native = tmp_path / "native"
    _git(tmp_path, "clone", "-q", str(src), str(native))
    _git(mp, "clone", "-q", str(src), "cloned")
    clone = mp / "cloned"
    assert digest_tree(clone, skip=(".git",)) == digest_tree(native, skip=(".git",))
    assert _git(clone, "status", "--porcelain") == ""
    (clone / "m1.py").write_text("x = 'changed'\n")
    assert _git(clone, "status", "--porcelain") == " M m1.py\n"
    _git(clone, "commit", "-q", "-am", "two")
    assert _git(clone, "log", "--format=%s") == "two\none\n"
    _git(clone, "fsck", "--strict")

    # git init in a new directory, add and commit
    (mp / "fresh").mkdir()
    _git(mp / "fresh", "init", "-q", "-b", "main")
    (mp / "fresh" / "a.txt").write_text("a\n")
    _git(mp / "fresh", "add", "a.txt")
    _git(mp / "fresh", "commit", "-q", "-m", "first")
    assert _git(mp / "fresh", "rev-parse", "--show-toplevel").strip() == str(mp / "fresh")
    assert ".git" in os.listdir(mp / "fresh")

    # the fork holds the files of both, not their .git
    c = checkpoint.save(vault, name="with-repos")
    tree = _git(Path(vault.path), "ls-tree", "-r", "--name-only", c.checkpoint.commit)
    assert "cloned/m1.py" in tree and "fresh/a.txt" in tree
    assert ".git/" not in tree

    # a directory holding a repository moves with it, and is not empty until it is gone
    os.rename(mp / "fresh", mp / "moved")
    assert _git(mp / "moved", "log", "--format=%s") == "first\n"
    with pytest.raises(OSError):
        os.rmdir(mp / "moved")
    shutil.rmtree(mp / "moved")
    assert not (mp / "moved").exists()
    # moving a file out of a nested repository is a copy (EXDEV), which mv does itself
    subprocess.run(["mv", str(clone / ".git" / "description"), str(mp / "desc")], check=True)
    assert (mp / "desc").read_text().startswith("Unnamed repository")

"""A model check of the mount (both backends): random work in a mounted fork, mirrored on a plain
directory of the local disk (the model), with checkpoints, restores, CLI-side writes and
remounts in between.

After every step the mount must show what the model holds; after every checkpoint the
commit must hold it too (what git can: files, exec bits, symlinks; empty directories are
not recorded) and the fork must be clean; and what avfs itself reads (status, the API's
walk and reads) must agree with the mount. The bugs this found were of the kind where the
base moving under overlayfs's layers made the view, the readers and the commit disagree: a
renamed directory that came back empty after a checkpoint, a removal without a whiteout.

Seeded (each seed is one reproducible sequence); a failure names the seed and the steps.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.ops import mounts

from .conftest import git
from .test_fuse import require_fuse
from .test_overlay import require_overlay

# more: AVFS_MODEL_SEEDS=1-200 AVFS_MODEL_STEPS=150 pytest tests/test_overlay_model.py
_seeds = os.environ.get("AVFS_MODEL_SEEDS", "1-6").partition("-")
SEEDS = list(range(int(_seeds[0]), int(_seeds[2] or _seeds[0]) + 1))
STEPS = int(os.environ.get("AVFS_MODEL_STEPS", "70"))
DIRS = ["a", "b", "a/x", "b/y/z"]


def tree(root: str) -> dict[str, Any]:
    """path -> ("file", bytes, exec) | ("link", target) | ("dir",) of a directory (.git out)."""
    out: dict[str, Any] = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not (d == root and x == ".git"))
        rel_d = os.path.relpath(d, root)
        for name in list(dirs):
            p = os.path.join(d, name)
            rel = os.path.normpath(os.path.join(rel_d, name))
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
                dirs.remove(name)
            else:
                out[rel] = ("dir",)
        for name in files:
            if d == root and name == ".git":
                continue
            p = os.path.join(d, name)
            rel = os.path.normpath(os.path.join(rel_d, name))
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            else:
                with open(p, "rb") as fh:
                    out[rel] = ("file", fh.read(), bool(st.st_mode & 0o100))
    return out


def recorded(t: dict[str, Any]) -> dict[str, Any]:
    """What a commit can hold of a tree: no directories (git records none, empty or not)."""
    return {p: v for p, v in t.items() if v[0] != "dir"}


def in_git(vault: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    listing = git("--git-dir", vault.path, "ls-tree", "-r", "-z", "main")
    for rec in listing.split("\0"):
        if not rec:
            continue
        meta, path = rec.split("\t", 1)
        mode, _kind, oid = meta.split()
        data = vault.store.blob_data(oid)
        if mode == "120000":
            out[path] = ("link", data.decode())
        else:
            out[path] = ("file", data, mode == "100755")
    return out


def api_view(vault: Any) -> dict[str, Any]:
    ws = vault.workspace("main")
    out: dict[str, Any] = {}
    for e in ws.walk():
        if e.kind == "dir":
            out[e.path] = ("dir",)
        elif e.kind == "symlink":
            out[e.path] = ("link", ws.read_link(e.path))
        else:
            out[e.path] = ("file", bytes(ws.read(e.path)), e.mode == 0o100755)
    return out


class World:
    """The mount and the model, changed alike."""

    def __init__(
        self, home: Any, vault: Any, mp: str, model: str, rng: random.Random, backend: str = "overlay"
    ) -> None:
        self.home, self.vault, self.mp, self.model, self.rng = home, vault, mp, model, rng
        self.backend = backend
        self.log: list[str] = []
        self.saved: list[tuple[str, dict[str, Any]]] = []  # (checkpoint name, model tree)
        self.n = 0

    def both(self, fn: Any) -> None:
        for root in (self.mp, self.model):
            fn(root)

    def files(self) -> list[str]:
        t = tree(self.model)
        return sorted(p for p, v in t.items() if v[0] == "file")

    def dirs(self) -> list[str]:
        t = tree(self.model)
        return sorted(p for p, v in t.items() if v[0] == "dir")

    def step(self) -> None:
        """One random step (drawn from the model's current state)."""
        op = self.draw()
        if op is not None:
            self.apply(op)

    def draw(self) -> tuple[Any, ...] | None:
        r = self.rng
        self.n += 1
        n = self.n
        files, dirs = self.files(), self.dirs()
        kind = r.choice(
            ["write"] * 4
            + ["append"] * 3
            + ["rm", "truncate", "chmod", "symlink", "mv", "mvdir", "rmr", "mkdir"]
            + ["checkpoint"] * 2
            + ["cliwrite", "restore", "remount"]
        )
        if kind == "write" or (not files and kind in ("append", "rm", "truncate", "chmod", "mv", "cliwrite")):
            d = r.choice([*DIRS, *dirs, ""])
            return ("write", os.path.join(d, f"f{n}.txt") if d else f"f{n}.txt", n, r.randint(1, 50))
        if kind in ("append", "truncate", "rm", "cliwrite"):
            return (kind, r.choice(files), n)
        if kind == "chmod":
            return ("chmod", r.choice(files), r.choice([0o644, 0o755]))
        if kind in ("symlink", "mkdir"):
            d = r.choice([*dirs, ""])
            name = f"l{n}" if kind == "symlink" else f"n{n}"
            return (kind, os.path.join(d, name) if d else name, n)
        if kind == "mv":
            d = r.choice([*dirs, ""])
            return ("mv", r.choice(files), os.path.join(d, f"m{n}.txt") if d else f"m{n}.txt")
        if kind == "mvdir" and dirs:
            src = r.choice(dirs)
            parent = r.choice([x for x in [*dirs, ""] if x != src and not x.startswith(src + "/")])
            return ("mvdir", src, os.path.join(parent, f"D{n}") if parent else f"D{n}")
        if kind == "rmr" and dirs:
            return ("rmr", r.choice(dirs))
        if kind == "checkpoint":
            return ("checkpoint", f"c{n}")
        if kind == "restore" and self.saved:
            return ("restore", r.choice(self.saved)[0])
        if kind == "remount":
            return ("remount",)
        return None

    def apply(self, op: tuple[Any, ...]) -> None:
        """Do ``op`` in the mount and in the model, then compare them."""
        kind = op[0]
        self.log.append(" ".join(str(x) for x in op))
        if kind == "write":
            _, p, n, k = op
            data = f"{n}\n".encode() * k

            def w(root: str) -> None:
                os.makedirs(os.path.dirname(os.path.join(root, p)) or root, exist_ok=True)
                with open(os.path.join(root, p), "wb") as fh:
                    fh.write(data)

            self.both(w)
        elif kind == "append":

            def a(root: str) -> None:
                with open(os.path.join(root, op[1]), "ab") as fh:
                    fh.write(b"+%d\n" % op[2])

            self.both(a)
        elif kind == "truncate":
            self.both(lambda root: os.truncate(os.path.join(root, op[1]), 1))
        elif kind == "rm":
            self.both(lambda root: os.unlink(os.path.join(root, op[1])))
        elif kind == "chmod":
            self.both(lambda root: os.chmod(os.path.join(root, op[1]), op[2]))
        elif kind == "symlink":
            self.both(lambda root: os.symlink(f"target-{op[2]}", os.path.join(root, op[1])))
        elif kind in ("mv", "mvdir"):
            self.both(lambda root: os.rename(os.path.join(root, op[1]), os.path.join(root, op[2])))
        elif kind == "rmr":
            self.both(lambda root: shutil.rmtree(os.path.join(root, op[1])))
        elif kind == "mkdir":
            self.both(lambda root: os.mkdir(os.path.join(root, op[1])))
        elif kind == "checkpoint":
            checkpoint.save(self.vault, name=op[1], message=op[1])
            self.saved.append((op[1], tree(self.model)))
            self.check_committed()
        elif kind == "cliwrite":
            data = b"cli %d\n" % op[2]
            self.vault.workspace("main").write(op[1], data)
            with open(os.path.join(self.model, op[1]), "wb") as fh:
                fh.write(data)
        elif kind == "restore":
            snap = dict(self.saved)[op[1]]
            checkpoint.restore(self.vault, "main", op[1])
            shutil.rmtree(self.model)
            os.mkdir(self.model)
            for p, v in sorted(snap.items()):
                full = os.path.join(self.model, p)
                if v[0] == "dir":
                    os.makedirs(full, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(full), exist_ok=True)
                if v[0] == "link":
                    os.symlink(v[1], full)
                else:
                    with open(full, "wb") as fh:
                        fh.write(v[1])
                    os.chmod(full, 0o755 if v[2] else 0o644)
            # a restore shows the checkpoint as git has it: empty directories of the model
            # that git did not record are not brought back
            self.prune_empty_model_dirs(recorded(snap))
        elif kind == "remount":
            mounts.unmount(self.home, self.vault, "main")
            assert recorded(api_view(self.vault)) == recorded(tree(self.model)), self.where(
                "unmounted API view"
            )
            mounts.mount(self.home, self.vault, "main", self.mp, backend=self.backend)
        self.check_view()

    def prune_empty_model_dirs(self, snap: dict[str, Any]) -> None:
        # keep only directories that are on the way to a recorded path, as git restores them
        need = {os.path.dirname(p) for p in snap}
        need |= {a for p in need for a in _ancestors(p)}
        for p in sorted(self.dirs(), key=lambda x: -x.count("/")):
            if p not in need and not os.listdir(os.path.join(self.model, p)):
                os.rmdir(os.path.join(self.model, p))

    def where(self, what: str) -> str:
        return f"{what} differs after: " + "; ".join(self.log[-12:])

    def check_view(self) -> None:
        try:
            got = tree(self.mp)
        except OSError as exc:
            raise AssertionError(self.where(f"the mount ({exc})")) from exc
        want = tree(self.model)
        if recorded(got) != recorded(want):
            diff = sorted(
                p
                for p in set(got) | set(want)
                if got.get(p) != want.get(p) and want.get(p, ("x",))[0] != "dir"
            )
            raise AssertionError(self.where("the mount") + f"; paths: {diff[:10]}")

    def check_committed(self) -> None:
        want = recorded(tree(self.model))
        assert in_git(self.vault) == want, self.where("the commit")
        assert self.vault.workspace("main").status() == [], self.where("status after a checkpoint")
        assert recorded(api_view(self.vault)) == want, self.where("the API view")


def _ancestors(p: str) -> list[str]:
    out = []
    while p:
        out.append(p)
        p = os.path.dirname(p)
    return out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_random_work_in_a_mount_matches_the_local_disk(home, vault, tmp_path, seed, backend):
    if backend == "overlay":
        require_overlay()
    else:
        require_fuse()
    ws = vault.workspace("main")
    model = str(tmp_path / "model")
    os.mkdir(model)
    for i, d in enumerate(DIRS):
        ws.write(f"{d}/base{i}.txt", b"base %d\n" % i)
        os.makedirs(os.path.join(model, d), exist_ok=True)
        with open(os.path.join(model, d, f"base{i}.txt"), "wb") as fh:
            fh.write(b"base %d\n" % i)
    checkpoint.save(vault, name="start")
    mp = str(tmp_path / "mnt")
    os.mkdir(mp)
    world = World(home, vault, mp, model, random.Random(seed), backend)
    world.saved.append(("start", tree(model)))
    mounts.mount(home, vault, "main", mp, backend=backend)
    try:
        for _ in range(STEPS):
            world.step()
        checkpoint.save(vault, message="end")
        world.check_committed()
    finally:
        mounts.unmount(home, vault, "main")
    assert recorded(api_view(vault)) == recorded(tree(model)), world.where("after the last unmount")

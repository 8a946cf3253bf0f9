"""Laws, checked by hypothesis: a workspace behaves like a dict[path, bytes] through
write / rename / unlink / checkpoint / restore / fork / merge, and git agrees with it."""

from __future__ import annotations

import os
import subprocess

import hypothesis.strategies as st
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from avfs_git.core.errors import AvfsError
from avfs_git.core.operations import checkpoint
from avfs_git.core.operations import merge as merge_mod
from avfs_git.core.store import names
from avfs_git.core.vaults.home import Home
from avfs_git.mount.side import MOUNT_SIDE

from .conftest import libgit2_repo, remove_home, scratch_home

PATHS = ["a", "b", "d/a", "d/b", "d/e/f", "x/y"]
DATA = st.binary(max_size=40)
FORKS = ["main", "f1", "f2", "f3"]  # f1, f2 exist from the start; f3 is forked by a rule


def model_tree_ok(model: dict[str, bytes], path: str) -> bool:
    """Can a file be written at path without a file/dir clash?"""
    return all(not (p != path and (p.startswith(path + "/") or path.startswith(p + "/"))) for p in model)


def real_files(ws) -> dict[str, bytes]:
    return {e.path: ws.read(e.path) for e in ws.walk("") if e.kind.value == "file"}


def git_files(vault, commit: str) -> dict[str, bytes]:
    return tree_files(vault, str(vault.store.commit(commit).tree.id))


def tree_files(vault, tree_id: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    repo = libgit2_repo(vault)

    def rec(tree, prefix):
        for e in tree:
            p = names.join(prefix, e.name)
            if e.type_str == "tree":
                rec(repo[e.id], p)
            else:
                out[p] = repo[e.id].data

    rec(repo[tree_id], "")
    return out


class WorkspaceMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.dir = scratch_home("avfs-prop-")
        self.home = Home(self.dir, author=("p", "p@x"), mounts=MOUNT_SIDE)
        self.vault = self.home.create_vault("v")
        self.models: dict[str, dict[str, bytes]] = {"main": {}}
        for f in ("f1", "f2"):  # divergent forks from the first step: real three-way merges
            self.vault.create_fork("main", f)
            self.models[f] = {}
        self.saved: dict[tuple[str, str], dict[str, bytes]] = {}
        self.counter = 0

    def teardown(self) -> None:
        if hasattr(self, "vault"):
            self.vault.close()
            remove_home(self.dir)

    def ws(self, fork: str):
        return self.vault.workspace(fork)

    @rule(fork=st.sampled_from(FORKS), path=st.sampled_from(PATHS), data=DATA)
    def write(self, fork: str, path: str, data: bytes) -> None:
        if fork not in self.models:
            return
        model = self.models[fork]
        if model_tree_ok(model, path):
            try:
                self.ws(fork).write(path, data)
            except AvfsError as exc:
                # a lingering empty directory where the model has nothing is allowed
                assert exc.code == "is_a_directory", exc
                return
            model[path] = data
        else:
            before = real_files(self.ws(fork))
            try:
                self.ws(fork).write(path, data)
            except AvfsError:
                assert real_files(self.ws(fork)) == before
            else:
                raise AssertionError(f"write {path} should have clashed")

    @rule(fork=st.sampled_from(FORKS), path=st.sampled_from(PATHS))
    def unlink(self, fork: str, path: str) -> None:
        if fork not in self.models or path not in self.models[fork]:
            return
        self.ws(fork).remove(path)
        del self.models[fork][path]

    @rule(
        fork=st.sampled_from(FORKS), path=st.sampled_from(PATHS), new_name=st.sampled_from(["r1", "r2", "a"])
    )
    def rename(self, fork: str, path: str, new_name: str) -> None:
        model = self.models.get(fork)
        if model is None or path not in model:
            return
        dst = names.join(names.parent_of(path), new_name)
        if dst == path:
            return
        if not model_tree_ok({k: v for k, v in model.items() if k != path}, dst):
            return
        try:
            self.ws(fork).rename(path, dst)
        except AvfsError as exc:
            assert exc.code in ("is_a_directory", "directory_not_empty"), exc
            return
        model[dst] = model.pop(path)

    @rule(fork=st.sampled_from(FORKS))
    def save(self, fork: str) -> None:
        if fork not in self.models:
            return
        self.counter += 1
        name = f"c{self.counter}"
        res = checkpoint.save(self.vault, fork, name=name)
        self.saved[(fork, name)] = dict(self.models[fork])
        assert git_files(self.vault, res.checkpoint.commit) == self.models[fork]
        assert not self.ws(fork).is_dirty()

    @precondition(lambda self: bool(self.saved))
    @rule(data=st.data())
    def restore(self, data) -> None:
        fork, name = data.draw(st.sampled_from(sorted(self.saved)))
        if fork not in self.models:
            return
        checkpoint.restore(self.vault, fork, name)
        self.models[fork] = dict(self.saved[(fork, name)])

    @rule(src=st.sampled_from(FORKS), new=st.sampled_from(FORKS))
    def fork(self, src: str, new: str) -> None:
        if src not in self.models or new in self.models:
            return
        self.vault.create_fork(src, new)
        self.models[new] = dict(self.models[src])

    @rule(
        src=st.sampled_from(FORKS),
        dst=st.sampled_from(FORKS),
        mine=st.sampled_from(PATHS),
        theirs=st.sampled_from(PATHS),
        data=DATA,
    )
    def diverge_and_merge(self, src: str, dst: str, mine: str, theirs: str, data: bytes) -> None:
        """Both forks change something, then merge: a real three-way merge every time
        (random rules alone mostly give fast-forwards)."""
        if src == dst or src not in self.models or dst not in self.models:
            return
        self.write(dst, mine, data + b"-ours")
        self.write(src, theirs, data + b"-theirs")
        self.merge(src, dst)

    @rule(src=st.sampled_from(FORKS), dst=st.sampled_from(FORKS))
    def merge(self, src: str, dst: str) -> None:
        """avfs merge agrees with the model, whose merge of two forks is libgit2's
        merge_trees of their commits (after the checkpoints a merge takes first). Where
        libgit2 is stricter than git (a rename on one side meeting the same file added on
        the other), avfs may merge, and then git's own merge must agree with it."""
        if src == dst or src not in self.models or dst not in self.models:
            return
        for f in (dst, src):
            if self.ws(f).is_dirty():
                checkpoint.save(self.vault, f)
                assert git_files(self.vault, self.ws(f).tip()) == self.models[f]
        repo = libgit2_repo(self.vault)
        store = self.vault.store
        ours, theirs = self.ws(dst).tip(), self.ws(src).tip()
        base = str(repo.merge_base(ours, theirs))
        expected: dict[str, bytes] | None
        if theirs == ours or base == theirs:
            expected = dict(self.models[dst])
        elif base == ours:
            expected = dict(self.models[src])
        else:
            index = repo.merge_trees(
                store.commit_tree(base), store.commit_tree(ours), store.commit_tree(theirs)
            )
            expected = (
                None if index.conflicts is not None else tree_files(self.vault, str(index.write_tree(repo)))
            )
        res = merge_mod.merge(self.vault, src, dst)
        event(f"merge: {res.status}")  # (pytest --hypothesis-show-statistics)
        if expected is None and res.status == "merged":
            proc = subprocess.run(
                ["git", "--git-dir", self.vault.path, "merge-tree", "--write-tree", ours, theirs],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stdout
            assert proc.stdout.split()[0] == str(store.commit(res.commit).tree.id)
            expected = tree_files(self.vault, proc.stdout.split()[0])
        if expected is None:
            assert res.status == "conflicts" and res.conflicts, res
            assert self.ws(dst).tip() == ours
            return
        assert res.status in ("up_to_date", "fast_forward", "merged"), res
        self.models[dst] = expected

    @invariant()
    def agrees(self) -> None:
        if not hasattr(self, "vault"):
            return
        for fork, model in self.models.items():
            assert real_files(self.ws(fork)) == model, fork


TestWorkspaceMachine = WorkspaceMachine.TestCase
TestWorkspaceMachine.settings = settings(
    max_examples=int(os.environ.get("AVFS_PROP_EXAMPLES", "25")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

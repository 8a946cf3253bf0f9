"""core/store/refs.py moves refs two ways: through libgit2 when the process has loaded it, else
through ``git update-ref`` (git's own compare-and-swap) and git's files. Both are run here on
a real vault, case by case, and must give the same results, the same errors (class and
code), the same refs and the same reflog entries. And the commands that only move refs
(`avfs vault fork`) do not import pygit2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from avfs_git.core.errors import AvfsError
from avfs_git.core.store import refs
from avfs_git.core.vaults.vault import Vault
from avfs_git.mount.side import MOUNT_SIDE

from .conftest import git

BACKENDS = ("libgit2", "git")


def _use(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    monkeypatch.setattr(refs, "libgit2_loaded", lambda: backend == "libgit2")


def _outcome(call: Callable[[], object]) -> object:
    try:
        return ("ok", call())
    except AvfsError as exc:
        return ("error", type(exc).__name__, exc.code, exc.message.split(":")[0])


def _reflog(vault: Vault) -> dict[str, list[str]]:
    """Each reflog's entries as (old, new, message): who and when differ by run. Only of
    refs that exist: a deleted ref's reflog goes with it in git and stays behind in
    libgit2's transaction (``git reflog expire --all``, which gc runs, covers both)."""
    out: dict[str, list[str]] = {}
    root = Path(vault.path, "logs")
    live = set(git("--git-dir", vault.path, "for-each-ref", "--format=%(refname)").split()) | {"HEAD"}
    for p in sorted(root.rglob("*")):
        if p.is_file() and str(p.relative_to(root)) in live:
            out[str(p.relative_to(root))] = [
                f"{ln.split(' ')[0]} {ln.split(' ')[1]} {ln.split(chr(9), 1)[1]}"
                for ln in p.read_text().splitlines()
            ]
    return out


def _state(vault: Vault) -> tuple[str, dict[str, list[str]]]:
    return git("--git-dir", vault.path, "for-each-ref", "--format=%(refname) %(objectname)"), _reflog(vault)


def _commits(vault: Vault) -> tuple[str, str]:
    ws = vault.workspace("main")
    a = ws.tip()
    assert a is not None
    ws.write("x.txt", b"x")
    from avfs_git.core.operations import checkpoint

    b = checkpoint.save(vault, "main").checkpoint.commit
    return a, b


def _cases(vault: Vault, a: str, b: str) -> list[tuple[str, Callable[[], object]]]:
    s = vault.store
    heads, cps = refs.HEADS, refs.CHECKPOINTS
    return [
        ("read direct", lambda: refs.read_ref(s, heads + "main")),
        ("read symbolic HEAD", lambda: refs.read_ref(s, "HEAD")),
        ("read missing", lambda: refs.read_ref(s, heads + "nope")),
        ("read bad name", lambda: refs.read_ref(s, heads + "a..b")),
        ("read path escape", lambda: refs.read_ref(s, "../config")),
        ("create", lambda: refs.cas_update(s, heads + "new", a, None, "avfs: create")),
        ("create again", lambda: refs.cas_update(s, heads + "new", b, None, "avfs: create")),
        ("create nested", lambda: refs.cas_update(s, cps + "main/-/cp1", a, None, "avfs: checkpoint cp1")),
        ("move", lambda: refs.cas_update(s, heads + "new", b, a, "avfs: move")),
        ("move from stale", lambda: refs.cas_update(s, heads + "new", a, a, "avfs: move")),
        ("move missing", lambda: refs.cas_update(s, heads + "gone", b, a, "avfs: move")),
        ("bad name", lambda: refs.cas_update(s, heads + "a..b", a, None, "avfs: create")),
        ("bad name lock", lambda: refs.cas_update(s, heads + "x.lock", a, None, "avfs: create")),
        ("file in the way", lambda: refs.cas_update(s, heads + "new/sub", a, None, "avfs: create")),
        ("delete stale", lambda: refs.cas_update(s, heads + "new", None, a, "avfs: delete")),
        ("delete", lambda: refs.cas_update(s, heads + "new", None, b, "avfs: delete")),
        ("delete missing", lambda: refs.cas_update(s, heads + "new", None, b, "avfs: delete")),
        ("delete expecting none", lambda: refs.cas_update(s, cps + "main/-/cp1", None, None, "avfs: d")),
        ("move main", lambda: refs.cas_update(s, heads + "main", a, b, "avfs: restore")),
        ("read after", lambda: refs.read_ref(s, heads + "main")),
    ]


def _run_cases(home_path: str, backend: str, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    from avfs_git.core.vaults.home import Home

    vault = Home(home_path, mounts=MOUNT_SIDE).create_vault("v")
    a, b = _commits(vault)
    _use(monkeypatch, backend)
    out: list[object] = []
    for name, call in _cases(vault, a, b):
        got = _outcome(call)
        out.append((name, str(got).replace(a, "A").replace(b, "B"), _state(vault)))
    # packed refs: the same reads and moves over packed-refs instead of loose files
    git("--git-dir", vault.path, "pack-refs", "--all")
    out.append(("packed read", _outcome(lambda: refs.read_ref(vault.store, refs.HEADS + "main"))))
    out.append(
        ("packed move", _outcome(lambda: refs.cas_update(vault.store, refs.HEADS + "main", b, a, "m")))
    )
    out.append(
        ("packed stale", _outcome(lambda: refs.cas_update(vault.store, refs.HEADS + "main", b, a, "m")))
    )
    # another process holds the ref's lock
    lock = Path(vault.path, "refs/heads/main.lock")
    lock.write_text("")
    out.append(("locked", _outcome(lambda: refs.cas_update(vault.store, refs.HEADS + "main", a, b, "m"))))
    lock.unlink()
    out.append(("end", _state(vault)))
    vault.close()
    return [str(o).replace(a, "A").replace(b, "B") for o in out]


def test_git_and_libgit2_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got = {
        backend: _run_cases(str(tmp_path / f"home-{backend}"), backend, monkeypatch) for backend in BACKENDS
    }
    for lib, cli in zip(got["libgit2"], got["git"], strict=True):
        assert lib == cli, f"\nlibgit2: {lib}\ngit:     {cli}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_errors_are_the_documented_ones(vault: Vault, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _commits(vault)
    _use(monkeypatch, backend)
    ref = refs.fork_ref("main")
    with pytest.raises(AvfsError) as moved:
        refs.cas_update(vault.store, ref, a, a, "stale")
    assert moved.value.code == "ref_moved" and moved.value.details["current"] == b
    with pytest.raises(AvfsError) as exists:
        refs.cas_update(vault.store, ref, a, None, "create")
    assert exists.value.code == "already_exists" and exists.value.details["current"] == b
    refs.cas_update(vault.store, ref, a, b, "restore")
    assert refs.read_ref(vault.store, ref) == a


@pytest.mark.parametrize(
    "name",
    ["HEAD", "refs/heads/a", "refs/heads/a/b", "refs/heads/a..b", "refs/heads/.a", "refs/heads/a.lock",
     "refs/heads/a.lock/b", "refs/heads/a.", "refs/heads/a/", "/refs/heads/a", "refs//heads", "refs/heads/a b",
     "refs/heads/a~1", "refs/heads/a^", "refs/heads/a:b", "refs/heads/a?", "refs/heads/a*", "refs/heads/a[",
     "refs/heads/a\\b", "refs/heads/a@{1}", "@", "refs/heads/@", "refs/heads/a\x01", "refs/heads/é",
     "refs/heads/a.b", "refs/heads/-a", "refs/heads/a/-/b", ""],
)  # fmt: skip
def test_name_check_is_gits(name: str) -> None:
    """refs.valid_name against ``git check-ref-format --allow-onelevel``."""
    if not name:
        assert not refs.valid_name(name)
        return
    proc = subprocess.run(["git", "check-ref-format", "--allow-onelevel", name], check=False)
    assert refs.valid_name(name) == (proc.returncode == 0)


def _fresh(home: str, *argv: str) -> dict[str, object]:
    """Run the CLI in a new interpreter; what it printed, and whether it imported pygit2."""
    script = (
        "import sys, io, json, contextlib\n"
        "from avfs_git.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    code = main(['--home', {home!r}, '--json', *{list(argv)!r}])\n"
        "print(json.dumps({'code': code, 'pygit2': 'pygit2' in sys.modules, 'out': out.getvalue()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, env=env
    )
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return doc


def test_vault_fork_does_not_load_libgit2(vault: Vault) -> None:
    """`avfs vault fork` moves one ref and reads no object: git's update-ref, no pygit2
    (its import was ~40-80 ms of the command's time)."""
    assert vault.home is not None
    vault.workspace("main").write("dirty.txt", b"uncheckpointed")  # the fork carries it
    got = _fresh(vault.home.path, "vault", "fork", "v:main", "child")
    assert got["code"] == 0 and got["pygit2"] is False, got
    assert json.loads(str(got["out"]))["fork"]["name"] == "child"
    assert vault.workspace("child").read("dirty.txt") == b"uncheckpointed"
    again = _fresh(vault.home.path, "vault", "fork", "v:main", "child")
    assert again["code"] != 0 and json.loads(str(again["out"]))["error"]["code"] == "already_exists", again


def test_a_loose_ref_is_read_by_its_file(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    """With libgit2 loaded, a loose ref as git writes one (its id, a newline) is read from
    its file alone (h-merge8: three such reads a merge, one a compare-and-swap): no
    libgit2 lookup, nor the FIFO check before it (main: both, every read). Whatever else
    the file holds is read as before, and every answer is libgit2's own."""
    import pygit2

    a, b = _commits(vault)
    s = vault.store
    asked: list[tuple[str, ...]] = []
    fifo = refs._fifo
    monkeypatch.setattr(refs, "_fifo", lambda d, *n: asked.append(n) or fifo(d, *n))
    monkeypatch.setattr(refs, "libgit2_loaded", lambda: True)
    assert refs.read_ref(s, refs.HEADS + "main") == b
    assert asked == []  # (main: [("refs/heads/main", "packed-refs")])
    path = Path(vault.path, "refs/heads/other")

    def libgit2s(name: str) -> object:
        try:
            ref = s._repo.references.get(name)
            return None if ref is None else str(ref.resolve().target)
        except (pygit2.GitError, ValueError, KeyError) as exc:
            return type(exc).__name__

    for text in (f"{a}\n", a, f"{a}\r\n", f"{a} x\n", f"{a}\n\n", "ref: refs/heads/main\n", "x" * 40 + "\n"):
        path.write_text(text)
        want = libgit2s(refs.HEADS + "other")
        got = _outcome(lambda: refs.read_ref(s, refs.HEADS + "other"))
        assert got == ("ok", want) or (got[0] == "error" and want not in (a, None)), (text, got, want)
    path.unlink()
    # a link is never followed by the shortcut (a link to /dev/zero or a device would be
    # read there): libgit2 answers for it as before
    outside = Path(vault.path, "..", "outside-ref")
    outside.write_text(f"{a}\n")
    path.symlink_to(os.path.abspath(outside))
    asked.clear()
    want = libgit2s(refs.HEADS + "other")
    assert _outcome(lambda: refs.read_ref(s, refs.HEADS + "other")) == ("ok", want) and want == a
    assert asked, "a linked ref took the shortcut"
    path.unlink()  # (git fsck, after the test, names a damaged ref)

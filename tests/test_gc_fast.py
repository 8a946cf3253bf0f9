"""gc without the git processes git's own gc does not run: the object totals counted in
process (held against ``git count-objects -v``), the keep ref written and removed as a
file, the keep commit's kinds read in one pass (held against ``git cat-file -t``), and the
pack index searched in C. Real vaults, real git."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations import checkpoint
from avfs_git.core.store import gitrun, refs
from avfs_git.core.store.objects import _Pack
from avfs_git.core.store.objreader import ObjectReader
from avfs_git.core.vaults.vault import Vault
from avfs_git.ops import maintenance
from avfs_git.ops.maintenance.objcounts import object_totals

from .conftest import git

DAY = 86400.0


def _git_totals(vault: Vault) -> tuple[int, int]:
    kv = dict(
        (k, int(v))
        for k, _, v in (
            line.partition(": ") for line in git("--git-dir", vault.path, "count-objects", "-v").splitlines()
        )
    )
    return kv["count"] + kv["in-pack"], (kv["size"] + kv["size-pack"]) * 1024


def _loose_blob(vault: Vault, data: bytes) -> str:
    cmd = ["git", "--git-dir", vault.path, "hash-object", "-w", "--stdin"]
    return subprocess.run(cmd, input=data, capture_output=True, check=True).stdout.decode().strip()


def _history(vault: Vault, n: int) -> None:
    ws = vault.workspace("main")
    for i in range(n):
        ws.write(f"d{i % 3}/f{i}.txt", f"{i}\n".encode() * (i + 1))
        checkpoint.save(vault, "main", f"c{i}")


def test_object_totals_agree_with_git_count_objects(vault: Vault) -> None:
    _history(vault, 4)  # packs
    assert object_totals(vault.path) == _git_totals(vault)
    for i in range(5):  # loose objects beside them
        _loose_blob(vault, f"loose {i}\n".encode() * 300)
    objects = Path(vault.path, "objects")
    # what git does not count: a stray file in a fan-out directory, an index without its
    # pack, a pack without its index, a directory that is not a fan-out one
    (objects / "ab").mkdir(exist_ok=True)
    (objects / "ab" / "tmp_obj_stray").write_bytes(b"x" * 5000)
    idx = next((objects / "pack").glob("*.idx"))
    (objects / "pack" / "pack-0000000000000000000000000000000000000000.idx").write_bytes(idx.read_bytes())
    (objects / "pack" / "pack-1111111111111111111111111111111111111111.pack").write_bytes(
        b"PACK" + b"\0" * 60
    )
    (objects / "AB").mkdir()
    (objects / "AB" / ("0" * 38)).write_bytes(b"not an object dir git reads")
    got = object_totals(vault.path)
    assert got == _git_totals(vault)
    assert got[0] >= 5 + 4  # the loose blobs and the packed history are both there
    res = maintenance.gc(vault, grace_days=0)
    assert (res.objects_after, res.bytes_after) == _git_totals(vault)


def test_gc_runs_no_git_process_of_its_own_beside_gits_steps(vault: Vault, monkeypatch: Any) -> None:
    _history(vault, 3)
    # a deleted fork's tip: held for undo by the keep commit alone
    vault.create_fork("main", "gone")
    vault.workspace("gone").write("only-here.txt", b"unique\n")
    tip = checkpoint.save(vault, "gone").checkpoint.commit
    vault.delete_fork("gone")
    ran: list[str] = []
    keep_during_repack: list[str | None] = []
    real = gitrun.run

    def spy(args: Any, **kw: Any) -> Any:
        sub = next(a for a in args if not a.startswith("-"))
        ran.append(sub)
        if sub == "repack":
            keep_during_repack.append(refs.read_ref_file(vault.path, maintenance.KEEP))
        return real(args, **kw)

    monkeypatch.setattr(gitrun, "run", spy)
    before = _git_totals(vault)
    res = maintenance.gc(vault, grace_days=0)
    assert ran == ["reflog", "pack-refs", "repack", "prune"]  # no count-objects, no update-ref
    assert keep_during_repack[0] is not None and res.kept_roots >= 1
    assert (res.objects_before, res.bytes_before) == before
    assert refs.read_ref_file(vault.path, maintenance.KEEP) is None
    assert not os.path.exists(refs.reflog_path(vault.path, maintenance.KEEP))
    assert git("--git-dir", vault.path, "cat-file", "-t", tip).strip() == "commit"  # held
    assert git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling", "--no-progress") == ""
    checkpoint.undo(vault)  # the fork delete: its tip is still there
    assert vault.workspace("gone").read("only-here.txt") == b"unique\n"


def test_gc_clears_what_a_killed_gc_left_of_its_keep_ref(vault: Vault) -> None:
    _history(vault, 2)
    tip = refs.read_ref_file(vault.path, refs.fork_ref("main"))
    assert tip is not None
    # a gc killed while git ran, then a `git pack-refs`: the keep ref is in packed-refs
    git("--git-dir", vault.path, "update-ref", maintenance.KEEP, tip)
    git("--git-dir", vault.path, "pack-refs", "--all", "--prune")
    assert "refs/avfs/keep" in Path(vault.path, "packed-refs").read_text()
    maintenance.gc(vault, grace_days=0)
    assert refs.read_ref_file(vault.path, maintenance.KEEP) is None
    assert "refs/avfs/keep" not in Path(vault.path, "packed-refs").read_text()
    # a gc killed while it wrote the keep ref: its lock file stays; the next gc goes on
    lock = Path(vault.path, "refs", "avfs", "keep.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("0" * 40 + "\n")
    vault.create_fork("main", "gone")
    vault.workspace("gone").write("x.txt", b"x\n")
    gone_tip = checkpoint.save(vault, "gone").checkpoint.commit
    vault.delete_fork("gone")
    res = maintenance.gc(vault, grace_days=0)
    assert res.kept_roots >= 1 and not lock.exists()
    assert refs.read_ref_file(vault.path, maintenance.KEEP) is None
    assert git("--git-dir", vault.path, "cat-file", "-t", gone_tip).strip() == "commit"


def test_kinds_of_many_objects_agree_with_git(vault: Vault) -> None:
    _history(vault, 6)
    blob = _loose_blob(vault, b"a loose blob\n")
    listed = git("--git-dir", vault.path, "cat-file", "--batch-all-objects", "--batch-check").split("\n")
    want = {oid: kind for oid, kind, _ in (line.split() for line in listed if line)}
    assert want[blob] == "blob"
    missing = ["f" * 40, "0" * 39 + "1"]
    got = ObjectReader(vault.path).kinds([*want, *missing, "not-an-id"])
    assert got == want
    # after git's aggressive gc most trees and blobs are deltas: their kind is the chain's base's
    git("--git-dir", vault.path, "gc", "--aggressive", "--prune=now", "--quiet")
    listed = git("--git-dir", vault.path, "cat-file", "--batch-all-objects", "--batch-check").split("\n")
    want = {oid: kind for oid, kind, _ in (line.split() for line in listed if line)}
    assert ObjectReader(vault.path).kinds([*want, *missing]) == want


def _index_v2(path: Path, ids: list[bytes]) -> None:
    """A pack index of version 2 holding ``ids`` (sorted), object i at offset 12 + i."""
    ids = sorted(ids)
    fanout = [sum(1 for i in ids if i[0] <= b) for b in range(256)]
    body = b"\xfftOc" + struct.pack(">I", 2) + struct.pack(">256I", *fanout) + b"".join(ids)
    body += b"\0\0\0\0" * len(ids) + b"".join(struct.pack(">I", 12 + i) for i in range(len(ids)))
    path.write_bytes(body + b"\0" * 40)


def test_pack_index_search_matches_whole_ids_only(vault: Vault, tmp_path: Path) -> None:
    _history(vault, 8)
    git("--git-dir", vault.path, "repack", "-a", "-d", "-q")
    (idx,) = Path(vault.path, "objects", "pack").glob("*.idx")
    pack = _Pack(str(idx))
    ids = [pack._sha(i) for i in range(pack.count)]
    assert all(pack.find(raw) is not None for raw in ids)
    assert pack.find(b"\xff" * 20) is None and pack.find(b"\0" * 20) is None
    # an id whose 20 bytes also occur earlier in the table, across two ids: the end of
    # the one before it and its own start
    a = b"\x01" + b"\0" * 9 + b"\x01" * 10
    c = b"\x01" * 20  # = a[10:] + c[:10]
    b = b"\x01" * 10 + b"\x05" * 10
    _index_v2(tmp_path / "t.idx", [a, b, c])
    synthetic = _Pack(str(tmp_path / "t.idx"))
    assert [synthetic.find(x) for x in (a, c, b)] == [12, 13, 14]
    assert synthetic.find(b"\x01" * 10 + b"\0" * 10) is None  # in no id, nor across two


@pytest.mark.parametrize("stale_days", [0.0, 30.0])
def test_gc_counts_match_git_before_and_after_with_loose_garbage(vault: Vault, stale_days: float) -> None:
    _history(vault, 2)
    old = _loose_blob(vault, b"unreachable\n")
    t = time.time() - stale_days * DAY
    os.utime(os.path.join(vault.path, "objects", old[:2], old[2:]), (t, t))
    before = _git_totals(vault)
    res = maintenance.gc(vault, grace_days=14)
    assert (res.objects_before, res.bytes_before) == before
    assert (res.objects_after, res.bytes_after) == _git_totals(vault)
    assert os.path.exists(os.path.join(vault.path, "objects", old[:2], old[2:])) == (stale_days < 14)


def test_opening_a_home_does_not_import_the_policy_engine(tmp_path: Path) -> None:
    """A cold `avfs gc` (or any command that opens a home and never classifies a command)
    imports the path rules' source alone, not the policy engine and its config loader; the
    package's names still come when asked for."""
    script = (
        "import json, sys\n"
        "from avfs_git.mount.side import open_home\n"
        "open_home(sys.argv[1]).list_vaults()\n"
        "import avfs_git.policy as policy\n"
        "before = sorted(m for m in sys.modules if m.startswith('avfs_git.policy'))\n"
        "names = [policy.Policy.__name__, policy.Outcome.__name__, policy.PolicyError.__name__]\n"
        "try:\n"
        "    policy.NoSuchName\n"
        "except AttributeError:\n"
        "    names.append('AttributeError')\n"
        "print(json.dumps([before, names]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "home")], capture_output=True, text=True, check=True
    )
    before, names = json.loads(proc.stdout)
    # the source alone: the policy's model and rules come with the first ask (a fork's write)
    assert before == ["avfs_git.policy", "avfs_git.policy.pathsource"]
    for heavy in ("engine", "config", "classify", "parser", "lexer"):
        assert f"avfs_git.policy.{heavy}" not in before
    assert names == ["Policy", "Outcome", "PolicyError", "AttributeError"]


def _keep_roots_decoded(vault: Vault, cutoff: float) -> set[str]:
    """What gc's keep roots were when each op log record was decoded (the reference)."""
    oids: set[str] = set()
    for refs_json, wss_json in vault.oplog.db.execute(
        "SELECT refs, workspaces FROM ops WHERE ts >= ?", (int(cutoff),)
    ):
        for r in json.loads(refs_json):
            oids.update(v for v in (r.get("old"), r.get("new")) if v)
        for w in json.loads(wss_json):
            for state in (w.get("before"), w.get("after")):
                if isinstance(state, dict):
                    oids.update(v for v in (state.get("base"), state.get("tree")) if v)
    return {o for o in oids if isinstance(o, str) and len(o) == 40}


def test_keep_roots_read_from_the_op_log_text_are_the_decoded_ones(vault: Vault) -> None:
    from avfs_git.core.operations import merge
    from avfs_git.ops.maintenance import collect

    _history(vault, 3)
    vault.create_fork("main", "side")
    vault.workspace("side").write("side.txt", b"side\n")
    checkpoint.save(vault, "side")
    vault.workspace("main").write("main.txt", b"main\n")
    assert merge.merge(vault, "side", "main").status == "merged"  # captures main first
    fake = "a" * 40
    vault.create_fork("main", "gone")
    vault.workspace("gone").write("w.txt", b"w\n")
    checkpoint.save(vault, "gone", message=f'"old": "{fake}" "tree":"{fake}"')  # text, not a root
    vault.delete_fork("gone")
    checkpoint.undo(vault)
    vault.workspace("main").write("uncommitted.txt", b"u\n")
    want = _keep_roots_decoded(vault, 0)
    assert len(want) > 10
    assert collect._oplog_roots(vault, 0) == want
    assert fake not in collect._keep_roots(vault, 0) and want <= collect._keep_roots(vault, 0)
    later = time.time() + 3600  # nothing recorded since: no root
    assert collect._oplog_roots(vault, later) == _keep_roots_decoded(vault, later) == set()


def test_a_direct_gc_starts_the_next_calls_server_after_it(monkeypatch: Any) -> None:
    """With no server to answer, `avfs gc` runs in its own process and only then starts a
    server for the next call: the server's start-up (~0.5 s of CPU importing avfs) ran
    alongside gc's repack before and took a core from it. Then the process ends at once."""
    from avfs_git.cli import client, execopts

    calls: list[str] = []

    def served(args: list[str], *, start: bool = True) -> None:
        calls.append(f"served start={start}")
        return None

    monkeypatch.setattr(client, "served", served)
    monkeypatch.setattr(client, "start_for_next", lambda home: calls.append("start"))
    monkeypatch.setattr(execopts, "run_closed", lambda args: calls.append(f"run {args}") or 0)
    # (_end_alone: the ordinary exit where another thread runs, as under pytest-xdist)
    monkeypatch.setattr(client, "_end_alone", lambda code: calls.append(f"end {code}") or code)
    monkeypatch.setenv("AVFS_SERVER", "auto")
    monkeypatch.setattr(sys, "argv", ["avfs", "--home", "/nowhere", "--json", "gc", "--dry-run"])
    assert client.main() == 0
    run = "run ['--home', '/nowhere', '--json', 'gc', '--dry-run']"
    assert calls == ["served start=False", run, "start", "end 0"]
    calls.clear()
    monkeypatch.setenv("AVFS_SERVER", "off")
    assert client.main() == 0
    assert calls == ["served start=False", run, "end 0"]


def test_a_direct_gc_closes_its_databases_and_skips_pythons_finalization(vault: Vault) -> None:
    """A direct `avfs gc` (no server) ends once its answer is out, without Python's
    finalization (~50-80 ms of its process), after closing what it opened: the op log's
    WAL is written back and removed, as at an ordinary exit, and the answer is whole."""
    _history(vault, 3)
    home = os.path.dirname(os.path.dirname(vault.path))
    vault.close()  # the op log's last connection is then the command's
    wal = os.path.join(vault.state_dir, "oplog.db-wal")
    assert not os.path.exists(wal)
    probe = (
        "import atexit, sys; atexit.register(lambda: sys.stderr.write('finalized\\n')); "
        "sys.argv[1:] = ['--home', sys.argv[1], '--json', 'gc']; "
        "from avfs_git.cli.client import main; sys.exit(main())"
    )
    env = {**os.environ, "AVFS_SERVER": "off"}
    p = subprocess.run([sys.executable, "-c", probe, home], capture_output=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert b"finalized" not in p.stderr
    doc = json.loads(p.stdout)
    assert doc["kind"] == "gc" and doc["vaults"][0]["vault"] == "v"
    assert not os.path.exists(wal)
    git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling", "--no-progress")


def _gc_answer(run: Any, args: list[str], capsys: Any) -> tuple[int, str, str]:
    """One call's exit code, stdout and stderr, the times in them masked (a run's duration,
    the expiry times git was given)."""
    import re

    code = run(list(args))
    out, err = capsys.readouterr()
    mask = [(r'"duration_ms": \d+', '"duration_ms": 0'), (r"@\d+", "@T"), (r"in \d+ ms", "in N ms")]
    for pat, to in mask:
        out = re.sub(pat, to, out)
    return code, out, err


def test_gc_without_click_answers_as_the_click_command(vault: Vault, capsys: Any) -> None:
    """A direct `avfs gc` runs without click (cli/gccmd.py) for exactly gc's own options and
    answers as the click command does: each argument list run both ways, the same exit
    code, stdout and stderr; what the fast path does not take (help, bad values, unknown
    options) is declined and the click CLI answers it."""
    from avfs_git.cli import execopts, gccmd
    from avfs_git.cli.app import App
    from avfs_git.cli.main import main as click_main

    _history(vault, 2)
    vault.create_fork("main", "gone")
    vault.delete_fork("gone")  # a recovery ref for gc to count
    home = os.path.dirname(os.path.dirname(vault.path))
    vault.close()
    h = ["--home", home]

    def clicked(args: list[str]) -> int:
        apps: list[App] = []
        try:
            return click_main(args, opened=apps)
        finally:
            for app in apps:
                app.close()

    clicked([*h, "gc"])  # compacted once: the next gcs find the same objects
    capsys.readouterr()
    taken = [
        [*h, "--json", "gc"],
        [*h, "gc"],
        [*h, "--json", "gc", "--dry-run"],
        [*h, "gc", "--dry-run", "--grace", "3"],
        [f"--home={home}", "--vault", "v", "--json", "gc", "--grace=0.5", "--dry-run", "--all"],
        [*h, "--vault=v:main", "gc", "--all", "--dry-run", "--dry-run", "--grace", "1", "--grace", "2."],
        [*h, "--json", "--vault", "nope", "gc", "--dry-run"],
        [*h, "--vault", "nope", "gc", "--dry-run"],
        [*h, "--vault", "v:nope", "gc", "--dry-run"],
    ]
    declined = [
        [*h, "--json", "gc", "--grace", "-1"],
        [*h, "gc", "--grace", "abc"],
        [*h, "--json", "gc", "--grace"],
        [*h, "--json", "gc", "--grace", "1e1", "--dry-run"],
        [*h, "--json", "gc", "--bogus"],
        [*h, "gc", "--bogus"],
        [*h, "--json", "gc", "--help"],
        [*h, "gc", "-h"],
        [*h, "--json", "gc", "extra"],
        [*h, "--json", "gc", "--json"],
        [*h, "--json", "gc", "--", "--dry-run"],
        [*h, "--vault", "", "--json", "gc", "--dry-run"],
        ["--home", "--json", "gc"],
        ["--json"],
        [*h, "--json", "--version", "gc"],
    ]
    for args in taken + declined:
        assert (gccmd.parse(args) is not None) == (args in taken), args
        want = _gc_answer(clicked, args, capsys)
        got = _gc_answer(execopts.run_closed, args, capsys)
        assert got == want, args
        if args in taken and "--json" in args:
            json.loads(got[1])  # exactly one document
    assert _gc_answer(clicked, [*h, "--json", "gc", "--dry-run"], capsys)[0] == 0
    assert _gc_answer(clicked, [*h, "--json", "--vault", "nope", "gc"], capsys)[0] != 0


def test_a_direct_gc_imports_neither_click_nor_a_mounts_code(vault: Vault) -> None:
    """The process of a direct `avfs gc` (no server) loads neither click nor the click CLI
    (~50-95 ms of imports before gc's first git process), nor a live mount's code (gc opens
    no workspace: mount/side.py imports mount/live.py on a workspace's first question)."""
    home = os.path.dirname(os.path.dirname(vault.path))
    vault.close()
    probe = (
        "import sys; from avfs_git.cli.execopts import run_closed; "
        "code = run_closed(['--home', sys.argv[1], '--json', 'gc', '--dry-run']); "
        "sys.stderr.write(repr(sorted(m for m in sys.modules if m == 'click' or m.startswith("
        "('click.', 'avfs_git.cli.main', 'avfs_git.cli.maintenance', 'avfs_git.mount.live', "
        "'avfs_git.mount.index'))))); sys.exit(code)"
    )
    p = subprocess.run([sys.executable, "-c", probe, home], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["kind"] == "gc"
    assert p.stderr.decode() == "[]"


# what a direct gc's process does not load: a workspace (the home and the vault import it
# on the first workspace asked for), the lazy-vault wire with socket and urllib (a fetch's),
# the policy's model (the first path rule's)
NOT_ON_GCS_PATH = (
    "avfs_git.core.workspace.workspace",
    "avfs_git.core.workspace.wsview",
    "avfs_git.core.workspace.overlay",
    "avfs_git.core.workspace.overlaydb",
    "avfs_git.core.workspace.pathguard",
    "avfs_git.core.workspace.wscapture",
    "avfs_git.core.workspace.wscommit",
    "avfs_git.core.store.blobwire",
    "avfs_git.policy.model",
    "avfs_git.policy.pathrules",
    "socket",
    "urllib.parse",
)


def direct_gc_modules(home: str, *args: str) -> tuple[dict[str, Any], list[str]]:
    """A direct `avfs --home HOME --json ARGS gc` (``run_closed``) in a process of its own:
    (its answer, which of :data:`NOT_ON_GCS_PATH` it loaded)."""
    probe = (
        "import sys; from avfs_git.cli.execopts import run_closed; "
        "code = run_closed(['--home', sys.argv[1], '--json', *sys.argv[3:], 'gc']); "
        "sys.stderr.write(repr(sorted(m for m in sys.argv[2].split() if m in sys.modules))); sys.exit(code)"
    )
    p = subprocess.run(
        [sys.executable, "-c", probe, home, " ".join(NOT_ON_GCS_PATH), *args],
        capture_output=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout), eval(p.stderr.decode())  # (a list of names: repr above)


def test_a_direct_gc_opens_no_workspace_and_loads_no_transport(vault: Vault) -> None:
    """gc reads the workspaces' overlays and seeds as files (``ws_dirs``): its process loads
    neither the workspace's modules, the lazy-vault wire, nor the policy's model (~8 ms of
    CPU of a cold gc's imports), and keeps what a fork's overlay names."""
    ws = vault.workspace()
    ws.write("a.txt", b"one\n")
    checkpoint.save(vault, message="one")
    ws.write("b.txt", b"uncheckpointed\n")  # the overlay gc leaves as it is
    home = os.path.dirname(os.path.dirname(vault.path))
    vault.close()
    answer, loaded = direct_gc_modules(home)
    assert answer["kind"] == "gc" and answer["vaults"][0]["kept_roots"] >= 1
    assert loaded == []
    assert git("--git-dir", vault.path, "fsck", "--strict", "--no-dangling") == ""
    assert vault.workspace().read("b.txt") == b"uncheckpointed\n"
    assert vault.workspace().read("a.txt") == b"one\n"


def test_a_failure_not_avfss_is_answered_alike_by_the_click_cli_and_gcs_own_path(
    monkeypatch: Any,
) -> None:
    """cli/output.render_failure, which both paths call for what is not an AvfsError: an
    internal error as one JSON document (raised again with AVFS_DEBUG); a reader that went
    away (BrokenPipeError) exits 0 with stdout sent to /dev/null (in a child: it replaces
    this process' fd 1)."""
    import io
    import subprocess

    from avfs_git.cli.output import Output, render_failure

    monkeypatch.delenv("AVFS_DEBUG", raising=False)
    buf = io.StringIO()
    out = Output(True, buf)
    code = render_failure(out, ValueError("boom"))
    doc = json.loads(buf.getvalue())
    assert code != 0 and doc["kind"] == "error" and doc["error"]["code"] == "internal", doc
    monkeypatch.setenv("AVFS_DEBUG", "1")
    with pytest.raises(ValueError, match="boom"):
        render_failure(Output(True, io.StringIO()), ValueError("boom"))
    child = (
        "import sys\nfrom avfs_git.cli.output import Output, render_failure\n"
        "code = render_failure(Output(True), BrokenPipeError())\n"
        "print('after'); sys.stdout.flush(); sys.stderr.write(f'code={code}')\n"
    )
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    assert r.stdout == "" and r.stderr == "code=0", r


def test_a_direct_human_gc_prints_what_rich_printed_without_importing_it(vault: Vault, capsys: Any) -> None:
    """A person's `avfs gc` (no --json) prints plain lines (:meth:`Output.line`): the
    same text rich printed for them (its templates hold no markup, tabs or emoji codes;
    fields that look like markup, control characters and non-ASCII text alike), and its
    process never imports rich (~20-30 ms of a cold gc's CPU)."""
    from avfs_git.cli.output import Output

    cases = [
        (
            "{}: {verb}expire {} recovery refs; {} objects ({}){}",
            ("v[red]x[/red]", 3, 10, "1.5 KiB", " -> 9"),
            "would ",
        ),
        ("{}remove deleted vault {} (deleted {})", ("", "na\x1bme\\[b]", "2026-11-26T10:00:00Z"), ""),
        ("{}: {}remove {} kept git states past the retention", ("vä", "", 2), ""),
    ]
    for template, args, verb in cases:
        out = Output(False)
        out.say(template, *args, verb=verb)
        rich_text = capsys.readouterr().out
        Output(False).line(template, *args, verb=verb)
        assert capsys.readouterr().out == rich_text, template
    _history(vault, 2)
    home = os.path.dirname(os.path.dirname(vault.path))
    vault.close()
    probe = (
        "import sys; from avfs_git.cli.execopts import run_closed; "
        "code = run_closed(['--home', sys.argv[1], 'gc', '--dry-run']); "
        "sys.stderr.write(repr(sorted(m for m in sys.modules if m == 'rich' or m.startswith('rich.')))); "
        "sys.exit(code)"
    )
    p = subprocess.run([sys.executable, "-c", probe, home], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().startswith("v: would expire "), p.stdout
    assert p.stderr.decode() == "[]"


def test_gc_names_its_own_keep_commit_that_the_count_after_includes(vault: Vault, cli: Any) -> None:
    """A newcomer's `avfs gc` of a new vault after the README's taste said `5 objects ->
    7`, more after than before and no word why: the 2 are gc's own keep commit and its
    tree, which hold what undo needs while git runs and are packed with it. The result
    names that commit and the line says so."""
    ws = vault.workspace("main")
    ws.write("notes.md", b"plan\n")
    checkpoint.save(vault, "main", name="before")
    ws.write("notes.md", b"other\n")  # uncheckpointed: the restore keeps it (a tree undo needs)
    checkpoint.restore(vault, "main", "before")
    git(
        "--git-dir", vault.path, "repack", "-a", "-d", "-q"
    )  # every object in one pack: before == after less gc's own
    before = _git_totals(vault)[0]
    res = maintenance.gc(vault, grace_days=14)
    assert res.kept_roots >= 1 and res.keep_commit is not None
    assert res.objects_after == before + 2  # the keep commit and its tree
    held = git("--git-dir", vault.path, "cat-file", "-p", res.keep_commit)
    assert held.startswith("tree ") and "avfs gc: objects undo still needs" in held
    home = str(Path(vault.path).parent.parent)
    r = cli("--home", home, "--vault", "v", "gc")
    assert r.code == 0 and "with gc's record of what undo needs: a commit and its tree" in r.out, r.out
    doc = json.loads(cli("--home", home, "--json", "--vault", "v", "gc").out)
    assert doc["vaults"][0]["keep_commit"] == res.keep_commit  # the same commit each time (time 0)

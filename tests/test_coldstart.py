"""A cold `avfs` process (no resident server: what a person's first call and every CLI call of
this suite runs): what each frequent command imports, counted, and the dataclasses it makes
without compiling their methods (core/records.py). A regressed import fails here, by name
(libgit2, rich, click where a path does without them) or by count; no timing.

docs/benchmarks.md, "The cold CLI's imports" (twentieth round)."""

from __future__ import annotations

import dataclasses
import json
import marshal
import os
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core import records
from avfs_git.core.vaults.home import Home

from .conftest import git

# runs one command as the console script's Python does (execopts.main), then writes what
# the process loaded and how many dataclass sources it compiled
DRIVER = """\
import sys
out = sys.argv.pop(1)
from avfs_git.cli.execopts import main
code = main(sys.argv[1:])
from avfs_git.core import records
import json
with open(out, "w") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules), "misses": records.misses()}, fh)
"""

# command -> (arguments, the most modules its process may hold, what it must not load).
# The counts are this round's plus a few: a new import on the path fails the test; lower
# them when a change takes modules off a path. The commands that move a fork's base or
# make a fork load core/store/heldref.py and core/workspace/wsheld.py (+2, gitgc1: the
# objects a fork's overlay names by id held for git's gc). The commands that read a path
# policy load policy/gitglob.py (+1, realdata2: git's wildmatch brackets, ~0.3 ms). `restore`
# +1 more: it held one module more in a fresh-clone run at load 40-50 (ci15; not found which:
# five runs here hold 236 each). Every path that reads a commit +1 (attack19:
# core/store/gittime.py, moved out of gitstore.py for its size); every path that opens a
# workspace +1 (gitmodel17: core/store/filemode.py, git's core.fileMode). `diff` +1 and
# `diff --stat` +2 (realdata4: core/operations/patchheads.py, git's patch headers and
# --stat; unicodedata for the names' widths); `diff` +1 more (gitmodel18: mount/ownfiles.py,
# which names the fork's mount's worktree git dir, whose config.worktree may set
# core.fileMode; the other paths loaded it already). `diff --stat` +1 more (realdata5:
# core/store/vaultconfig.py, git's core.quotePath for the names, read through libgit2).
# Every command +1 (clone1: core/store/packedrefs.py, a ref looked up in packed-refs by a
# binary search rather than a scan: a clone now writes its refs there, as git's does).
# `diff` +1 (realdata6: core/store/vaultconfig.py, git's diff.indentHeuristic for the patch).
LIBGIT2 = ("pygit2", "_pygit2")
RICH = ("rich",)
CLICK = ("click", "avfs_git.cli.main")  # the frequent commands' own path (cli/fastcli.py)
UPPER = ("socket", "avfs_git.core.workspace.upperwatch")  # a journal asked where none is kept
# the standard library's costliest modules a path does not run: shutil (with bz2, lzma),
# tempfile (with random), subprocess (with selectors) where no git process starts
# and hashlib's OpenSSL (core/store/digests.py: Python's own SHA-1 for small inputs)
NO_COPY = ("shutil", "tempfile", "bz2", "lzma", "random", "hashlib", "_hashlib")
OPENSSL = ("hashlib", "_hashlib")
NO_PROC = (*NO_COPY, "subprocess", "selectors")
# what a command loads only once it has run a while (wall time): the pure object reader
# takes the store's pack listing after reading for objreader.LOOK_S (0.5 s), which a cold
# `checkpoint restore` passes on a loaded machine (240 modules against 239 at load 20-25:
# flaky5, 2 in 3 runs at the session's base); not counted
TIMED = frozenset({"avfs_git.core.store.packset"})
COMMANDS: dict[str, tuple[list[str], int, tuple[str, ...]]] = {
    "status_json": (["--json", "--vault", "p:f1", "status"], 224, LIBGIT2 + RICH + CLICK + UPPER + NO_PROC),
    # piped: no style
    "status": (["--vault", "p:f1", "status"], 224, LIBGIT2 + RICH + CLICK + UPPER + NO_PROC),
    "status_upper": (["--json", "--vault", "p:u", "status"], 224, LIBGIT2 + RICH + CLICK + UPPER + NO_PROC),
    # its patch: libgit2 (which imports shutil and subprocess itself)
    "diff_json": (["--json", "--vault", "p:f1", "diff"], 279, RICH + CLICK),
    "diff_stat": (["--vault", "p:f1", "diff", "--stat"], 280, RICH + CLICK),
    "cat": (["--vault", "p:f1", "cat", "a.txt"], 219, LIBGIT2 + RICH + CLICK + NO_PROC),
    "log_json": (["--json", "--vault", "p:f1", "log", "-n", "5"], 183, LIBGIT2 + RICH + CLICK + NO_PROC),
    "log": (["--vault", "p:f1", "log", "-n", "5"], 183, LIBGIT2 + RICH + CLICK + NO_PROC),
    "write": (["--vault", "p:f1", "write", "w.txt", "text"], 226, LIBGIT2 + RICH + CLICK + NO_PROC),
    # (their git processes: subprocess)
    "save_json": (
        ["--json", "--vault", "p:f1", "checkpoint", "save", "-m", "m"],
        238,
        LIBGIT2 + RICH + CLICK + NO_COPY,
    ),
    "fork_json": (["--json", "vault", "fork", "p:f1", "f2"], 222, LIBGIT2 + RICH + CLICK + NO_COPY),
    "unmount": (
        ["unmount", "p:f1"],
        193,
        LIBGIT2 + RICH + CLICK + NO_COPY,
    ),  # (not mounted: its answer all the same)
    "create_json": (["--json", "vault", "create", "q"], 253, LIBGIT2 + RICH + CLICK + OPENSSL),
    "create": (
        ["vault", "create", "r"],
        253,
        LIBGIT2 + RICH + CLICK + OPENSSL,
    ),  # piped: its markup without rich
    # the commands the suite's processes call most after those (twenty-second round's count)
    "ls_json": (["--json", "--vault", "p:f1", "ls"], 219, LIBGIT2 + RICH + CLICK + NO_PROC),
    "stat_json": (["--json", "--vault", "p:f1", "stat", "a.txt"], 219, LIBGIT2 + RICH + CLICK + NO_PROC),
    "rm": (["--vault", "p:f1", "rm", "n.txt"], 226, LIBGIT2 + RICH + CLICK + NO_PROC),
    "list_json": (["--json", "--vault", "p:f1", "checkpoint", "list"], 207, LIBGIT2 + RICH + CLICK + OPENSSL),
    "restore_json": (
        ["--json", "--vault", "p:f1", "checkpoint", "restore", "main"],
        239,
        LIBGIT2 + RICH + CLICK + OPENSSL,
    ),
    "undo": (["--vault", "p:f1", "undo"], 234, LIBGIT2 + RICH + CLICK + OPENSSL),
    "merge_json": (
        ["--json", "--vault", "p:main", "merge", "f2"],
        291,
        RICH + CLICK,
    ),  # (libgit2 merge; +wsforms; +mergeresult, split from merge.py at 620 lines)
    "vault_list_json": (["--json", "vault", "list"], 171, LIBGIT2 + RICH + CLICK + NO_PROC),
}


def _cold(args: list[str], tmp: Path) -> dict[str, Any]:
    out = tmp / "loaded.json"
    env = {**os.environ, "AVFS_SERVER": "off"}
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(out), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    got: dict[str, Any] = json.loads(out.read_text())
    return got


@pytest.fixture
def small(home: Home, tmp_path: Path) -> Home:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "a.txt").write_text("a\n")
    (src / "d" / "b.txt").write_text("b\n")
    v = home.create_vault("p", from_dir=str(src))
    v.fork("main", "f1")
    v.workspace("f1").write("n.txt", b"n\n")
    # a fork whose upper layer outlived its overlay mount (what overlayfs left there)
    v.fork("main", "u")
    upper = v.workspace("u").overlay.upper_dir
    os.makedirs(upper, exist_ok=True)
    with open(os.path.join(upper, "up.txt"), "w") as fh:
        fh.write("up\n")
    return home


def test_each_frequent_command_loads_only_its_path(small: Home, tmp_path: Path) -> None:
    over = {}
    for name, (args, most, never) in COMMANDS.items():
        got = _cold(args, tmp_path)
        assert got["code"] == 0, name
        mods = set(got["modules"]) - TIMED
        if len(mods) > most:
            over[name] = (len(mods), most)
        loaded = sorted(m for m in mods if any(m == n or m.startswith(n + ".") for n in never))
        assert loaded == [], f"{name} loaded {loaded[:5]}"
        # every class the path makes has its methods' code in the table make install writes
        assert got["misses"] == 0, f"{name} compiled {got['misses']} dataclass sources (run make install)"
    assert over == {}, f"modules over each command's count (loaded, allowed): {over}"
    # the upper layer was read (its file a change) without asking a journal none keeps
    assert [c.path for c in small.vault("p").workspace("u").status()] == ["up.txt"]
    # the new vaults' empty tree and first commit, written without libgit2, are git's
    for name in ("q", "r"):
        path = os.path.join(small.path, "vaults", f"{name}.git")
        assert git("--git-dir", path, "fsck", "--strict") == ""
        assert git("--git-dir", path, "log", "--format=%T %s", "main").split("\n")[0] == (
            f"4b825dc642cb6eb9a060e54bf8d69288fbee4904 avfs: create vault {name}"
        )


def test_the_table_holds_each_source_compiled_as_exec_would() -> None:
    with open(records.TABLE, "rb") as fh:
        data = fh.read()
    magic = records._magic()
    assert data.startswith(magic)
    parts = marshal.loads(data[len(magic) :])
    assert "avfs_git.core.types" in parts and "avfs_git.policy.model" in parts
    n = 0
    for module, part in parts.items():
        assert module.startswith("avfs_git.")
        for source, code in marshal.loads(part).items():
            assert code == compile(source, "<string>", "exec", dont_inherit=True), (module, source[:60])
            n += 1
    assert n > 300


# one class, made both ways: the standard library's dataclass and records' (the table's code)
SOURCE = '''
@dataclass(frozen=True, slots=True)
class Point:
    """A point."""

    x: int
    y: str = "y"
    tags: list[str] = dataclasses.field(default_factory=list)
    note: str = dataclasses.field(default="", compare=False, repr=False)
'''


def test_a_record_is_the_standard_librarys_dataclass() -> None:
    made = {}
    for how, deco in (("stdlib", dataclasses.dataclass), ("records", records.dataclass)):
        ns: dict[str, Any] = {"dataclass": deco, "dataclasses": dataclasses, "__name__": __name__}
        exec(SOURCE, ns)
        made[how] = ns["Point"]
    a, b = made["stdlib"], made["records"]
    for name in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__getstate__"):
        assert getattr(a, name).__code__ == getattr(b, name).__code__, name
    assert a.__slots__ == b.__slots__ and a.__match_args__ == b.__match_args__
    assert [f.name for f in dataclasses.fields(a)] == [f.name for f in dataclasses.fields(b)]
    p = b(1, "z", ["t"], note="n")
    assert repr(p) == "Point(x=1, y='z', tags=['t'])"
    assert p == b(1, "z", ["t"]) and hash(b(1, "z", ("t",))) == hash(b(1, "z", ("t",)))  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    assert not hasattr(p, "__dict__")
    assert dataclasses.replace(p, x=3).x == 3 and dataclasses.asdict(p)["tags"] == ["t"]
    assert b(2).tags == [] and b(2).tags is not b(2).tags
    # the dataclasses module is left as it was: its `exec` is the builtin again
    assert "exec" not in vars(dataclasses)


@pytest.mark.parametrize("backend", ["overlay", "fuse"])
def test_a_mount_daemon_serves_reads_git_and_a_checkpoint_without_libgit2(
    small: Home, tmp_path: Path, backend: str
) -> None:
    # libgit2 (~90-110 ms of CPU) is no longer loaded as the daemon starts: what needs it
    # imports it, and a small fork's life (ls, reads, git status, a write, a checkpoint)
    # needs none of it. Its mapped libraries say what the daemon loaded.
    env = {**os.environ, "AVFS_SERVER": "off"}
    avfs = [sys.executable, "-m", "avfs_git", "--vault", "p:f1"]
    mp = subprocess.run([*avfs, "mount", "--backend", backend], env=env, capture_output=True, text=True)
    assert mp.returncode == 0, mp.stderr
    listed = subprocess.run([*avfs, "--json", "mount", "--list"], env=env, capture_output=True, text=True)
    (entry,) = json.loads(listed.stdout)["mounts"]
    try:
        root = Path(entry["mountpoint"])
        assert sorted(p.name for p in root.iterdir()) == [".git", "a.txt", "d", "n.txt"]
        assert (root / "d" / "b.txt").read_text() == "b\n"
        st = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
        assert st.stdout == "?? n.txt\n"
        (root / "d" / "c.txt").write_text("c\n")
        saved = subprocess.run(
            [*avfs, "checkpoint", "save", "-m", "c"], env=env, capture_output=True, text=True
        )
        assert saved.returncode == 0, saved.stderr
        maps = Path(f"/proc/{entry['pid']}/maps").read_text()
        assert "libgit2" not in maps and "_pygit2" not in maps
    finally:
        subprocess.run([*avfs, "unmount"], env=env, capture_output=True)
    assert git(
        "--git-dir", os.path.join(small.path, "vaults", "p.git"), "ls-tree", "-r", "--name-only", "f1"
    ).split() == [
        "a.txt",
        "d/b.txt",
        "d/c.txt",
        "n.txt",
    ]


def _raw_commit(vault_path: str, text: str) -> str:
    proc = subprocess.run(
        ["git", "--git-dir", vault_path, "hash-object", "-t", "commit", "-w", "--stdin", "--literally"],
        input=text.encode("latin-1") if "encoding ISO-8859-1" in text else text.encode(),
        capture_output=True,
        check=True,
    )
    return proc.stdout.decode().strip()


def test_a_forks_log_read_without_libgit2_is_libgit2s_walk(home: Home) -> None:
    from avfs_git.core.operations import history
    from avfs_git.core.store import refs

    v = home.create_vault("v")
    tip = first = refs.read_ref(v.store, refs.fork_ref("main"))
    assert first is not None
    tree = str(v.store.commit(first).tree_id)
    side = _raw_commit(v.path, f"tree {tree}\nauthor S <s@x> 1 +0000\ncommitter S <s@x> 1 +0000\n\nside\n")
    authors = [
        "A U Thor <a@example.invalid> 1700000000 +0100",
        "  Spaced   Name   <  spaced@x  > 1700000001 -0530",
        "Ünïcødé 名前 <u@x> 1700000002 +0000",
        "No Email <> 1700000003 +0000",
        "Tab\tName <t@x> 1700000004 +0000",
    ]
    for i, author in enumerate(authors):
        parents = f"parent {tip}\n" + (f"parent {side}\n" if i == 2 else "")  # one a merge
        tip = _raw_commit(
            v.path,
            f"tree {tree}\n{parents}author {author}\ncommitter C <c@x> {1700000100 + i} +0000\n\n\nmsg {i}\n",
        )
    refs.cas_update(v.store, refs.fork_ref("main"), tip, first, "test")
    checkpoint_at = {tip: ["a", "b"]}
    walked = [history.commit_info(c, checkpoint_at) for c in v.store.walk([tip], first_parent=True)]
    assert history.first_parents(v, tip, checkpoint_at, None) == walked
    assert history.first_parents(v, tip, checkpoint_at, 2) == walked[:2]
    assert [c.author for c in walked[:5]] == [
        "Tab\tName",
        "No Email",
        "Ünïcødé 名前",
        "Spaced   Name",
        "A U Thor",
    ]
    # a commit whose author libgit2 reads its own way (an encoding header): libgit2's walk
    odd = _raw_commit(
        v.path,
        f"tree {tree}\nparent {tip}\nauthor L\xe9on <l@x> 1700000200 +0000\ncommitter C <c@x> 1700000200 +0000\n"
        "encoding ISO-8859-1\n\nlatin\n",
    )
    assert history.first_parents(v, odd, {}, None) is None
    refs.cas_update(v.store, refs.fork_ref("main"), odd, tip, "test")
    logged = history.log(v, "main")
    assert [c.id for c in logged] == [odd, *[c.id for c in walked]] and logged[0].author == "Léon"


# every markup-free template the CLI prints through Output.say/info, with values rich would
# read as markup, escapes, wide and combining characters, quotes and control characters
def _plain_templates() -> set[str]:
    import re

    found: set[str] = set()
    for path in Path(__file__).resolve().parent.parent.joinpath("avfs_git", "cli").glob("*.py"):
        for m in re.finditer(r'\.(?:say|info)\(\s*"((?:[^"\\]|\\.)*)"', path.read_text()):
            template = m.group(1).encode().decode("unicode_escape")
            if "[" not in template and "\t" not in template:
                found.add(template)
    return found


VALUES = [
    "plain",
    "[red]x[/]",
    "a\\[b]",
    "\\",
    "tab\there",
    "名前 ✓",
    "e\u0301",
    ":bug:",
    '"q"',
    "[/]",
    "\x1b[31m",
]


def test_a_line_without_markup_is_printed_as_rich_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from rich.console import Console

    from avfs_git.cli.output import Output

    templates = _plain_templates()
    assert len(templates) > 20
    out = Output(json_mode=False)
    checked = 0
    for template in sorted(templates):
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        if any(fields):
            continue  # named fields: filled by name at their call site
        for i in range(len(VALUES)):
            args = [VALUES[(i + k) % len(VALUES)] for k in range(len(fields))]
            try:
                expected_text = Output.markup(template, *args)
            except ValueError:
                continue  # a numeric format spec ({:>8}): its call site passes a number
            checked += 1
            rich_out = io.StringIO()
            Console(file=rich_out, highlight=False, soft_wrap=True, markup=False, emoji=False).print(
                expected_text, markup=True, emoji=False
            )
            out.say(template, *args)
            assert capsys.readouterr().out == rich_out.getvalue(), (template, args)
    assert checked > 200


def _markup_templates() -> set[str]:
    """Every literal template with markup the CLI prints through Output.say/info/warn, and
    the shapes `status` and `log` build from pieces (a change's letter, a commit's line)."""
    import re

    found = {
        "[green]A[/] {}",
        "[cyan]R[/] {} -> {}",
        "* [yellow]{}[/] [green]({})[/] {}",
        "[yellow]commit {}[/] [green]({})[/]",
        "[yellow]warning:[/] {}",
        "a [bold]b [red]c[/red] d[/bold] e",
    }
    for path in Path(__file__).resolve().parent.parent.joinpath("avfs_git", "cli").glob("*.py"):
        for m in re.finditer(r'\.(?:say|info|warn)\(\s*"((?:[^"\\]|\\.)*)"', path.read_text()):
            template = m.group(1).encode().decode("unicode_escape")
            if "[" in template and "\t" not in template:
                found.add(template)
    return found


def test_a_line_with_markup_is_printed_without_rich_as_rich_prints_it_piped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no style shows (stdout not a terminal: an agent's pipe, the suite), a line with
    markup is its text as rich prints it, rich not imported for it; markup outside the
    plain styles goes to rich as before."""
    import io

    from rich.console import Console

    from avfs_git.cli import output
    from avfs_git.cli.output import Output

    for var in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(var, raising=False)
    templates = _markup_templates()
    assert len(templates) > 15
    out = Output(json_mode=False)
    checked = 0
    values = [*VALUES, "x\\[1 \\[Z", "\\[[bold]"]  # (rich drops a backslash before a `[` no tag follows)
    for template in sorted(templates):
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        if any(fields):
            continue
        for i in range(len(values)):
            args = [values[(i + k) % len(values)] for k in range(len(fields))]
            try:
                markup = Output.markup(template, *args)
            except ValueError:
                continue
            assert output._unmarked(markup) is not None, template  # (taken without rich)
            checked += 1
            rich_out = io.StringIO()
            Console(file=rich_out, highlight=False, soft_wrap=True, markup=False, emoji=False).print(
                markup, markup=True, emoji=False
            )
            out.say(template, *args)
            assert capsys.readouterr().out == rich_out.getvalue(), (template, args)
    assert checked > 100 and out._out is None
    # what is not this simple is rich's: a link, a closing tag closing nothing (its error)
    assert output._unmarked("[link=https://x]a[/]") is None and output._unmarked("a[/]") is None
    assert output._unmarked("[bold]a[/red]") is None
    monkeypatch.setenv("FORCE_COLOR", "1")
    out.say("[bold]{}[/]", "x")
    assert "\x1b[1m" in capsys.readouterr().out  # a forced terminal: rich, styled


def test_a_plain_line_is_printed_as_click_echo_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    import click

    from avfs_git.cli.output import Output

    out = Output(json_mode=False)
    for template in ("{}", "## {}", "!! {}", "{}\t{}", " {:<{width}} | {}"):
        for i in range(len(VALUES)):
            args = [VALUES[i], VALUES[(i + 1) % len(VALUES)]]
            out.plain(template, *args, width=12)
            got = capsys.readouterr()
            click.echo(Output.text(template, *args, width=12))
            assert capsys.readouterr() == got, (template, args)

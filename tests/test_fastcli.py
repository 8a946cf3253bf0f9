"""The frequent commands without click (cli/fastcli.py): its option table is click's own
definitions, read from the click commands; both parsers agree on a corpus of argument lists
(every option by every name, values inline and apart, repeats, interleaved arguments, and
what the fast path declines); and commands run both ways on a real vault give the same exit
code, stdout and stderr, errors and help included."""

from __future__ import annotations

import inspect
import itertools
import json
import random
import re
from typing import Any

import click
import pytest

from avfs_git.cli import execopts, fastcli
from avfs_git.cli.app import App
from avfs_git.cli.main import cli as click_cli
from avfs_git.cli.main import main as click_main
from avfs_git.core.operations import checkpoint
from avfs_git.core.vaults.home import Home


def _command(words: tuple[str, ...]) -> click.Command:
    ctx = click.Context(click_cli)
    cmd: Any = click_cli
    for w in words:
        assert isinstance(cmd, click.Group)
        if isinstance(cmd, click.Group) and cmd is not click_cli:
            assert cmd.params == [], f"{words}: the group has options the table does not read"
        cmd = cmd.get_command(ctx, w)
        assert cmd is not None, words
    assert isinstance(cmd, click.Command)
    return cmd


def _kind(p: click.Parameter) -> str:
    if isinstance(p, click.Argument):
        if p.nargs == -1:
            return "args+" if p.required else "args"
        assert p.nargs == 1
        return "arg" if p.required else "arg?"
    assert isinstance(p, click.Option) and p.nargs == 1 and not p.count
    if p.is_flag and not p.is_bool_flag:
        return f"={p.flag_value}"  # one of a feature-switch group (merge's --ours/--theirs)
    if p.is_flag:
        return "flag"
    if isinstance(p.type, click.Path):
        t = p.type
        assert not (t.resolve_path or t.writable or t.executable or t.allow_dash) and t.readable
        assert t.type is None, p.name
        if not t.file_okay and t.dir_okay and not t.exists:
            return "dir"
        if t.file_okay and not t.dir_okay and t.exists:
            return "file"
        return "click"
    if p.multiple:
        assert p.type is click.STRING
        return "strs"
    if p.type is click.INT:
        return "int"
    return "str" if p.type is click.STRING else "click"


def test_the_table_is_the_click_commands_own_definitions() -> None:
    for words, (body, table) in fastcli.COMMANDS.items():
        cmd = _command(words)
        assert cmd.context_settings.get("ignore_unknown_options") is not True
        assert cmd.allow_interspersed_args
        want = []
        for p in cmd.params:
            assert p.callback is None and p.envvar is None and not getattr(p, "prompt", None), (words, p.name)
            default = fastcli.COMMANDS[words][1][len(want)][3]  # held against click's parse below
            want.append((p.name, tuple(p.opts), _kind(p), default, tuple(p.secondary_opts)))
        assert tuple(want) == table, words
        # the click command's callback calls the very body the fast path runs
        mod, attr = body.split(":")
        assert cmd.callback is not None
        source = inspect.getsource(inspect.unwrap(cmd.callback))
        assert re.search(rf"\n    (\w+ = )?{attr}\(\s*app\b", source), (words, body)
        assert getattr(__import__(f"avfs_git.cli.{mod}", fromlist=[attr]), attr).__module__.endswith(mod)


def _click_parse(args: list[str]) -> tuple[tuple[str, ...], dict[str, Any], dict[str, Any]] | None:
    """(words, globals, parameters) as the click CLI reads ``args``; None when it refuses them."""
    try:
        ctx = click_cli.make_context("avfs", list(args))
        glob = {"home": ctx.params["home"], "vault": ctx.params["vault"], "json": ctx.params["json_mode"]}
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        words: list[str] = []
        cmd: click.Command = click_cli
        while isinstance(cmd, click.Group):
            name, sub, rest = cmd.resolve_command(ctx, rest)
            assert sub is not None and name is not None
            words.append(name)
            ctx = sub.make_context(name, rest, parent=ctx)
            rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
            cmd = sub
        return tuple(words), glob, dict(ctx.params)
    except (click.ClickException, click.exceptions.Exit):
        return None


def _corpus() -> list[list[str]]:
    """Argument lists for every command of the table: each option by each of its names, a
    value apart and inline, repeats, arguments before and after options, and shapes the fast
    path declines (bad values, unknown options, help, --, run-together short options)."""
    rng = random.Random(31)
    out: list[list[str]] = []
    # (and paths click checks: this checkout's README.md, a file, and tests, a directory)
    values = ["x", "3", "a b", "-", "", "-x", "+3", "07", "ü", "3.5", "--json", "README.md", "tests"]
    heads = [[], ["--json"], ["--vault", "p:f"], ["--home=/h", "--json", "--vault=v"], ["--vault", "-x"]]
    for words, (_body, table) in fastcli.COMMANDS.items():
        pieces: list[list[str]] = [
            ["-h"],
            ["--help"],
            ["--"],
            ["--bogus"],
            ["-sb"],
            ["-n3"],
            ["--json"],
            ["-2"],
        ]
        for dest, names, kind, _default, off in table:
            if kind in fastcli.ARGS:
                pieces += [["p1"], ["p2"], ["-"]]
                continue
            for n in (*names, *off):
                if kind == "flag" or kind.startswith("="):
                    pieces += [[n], [n + "=1"]]
                else:
                    pieces += [[n, v] for v in values[:4]] + [[f"{n}={v}"] for v in values] + [[n]]
            del dest
        if words == ("log",):
            pieces += [["-3"], ["-0"], ["-x3"]]
        for _ in range(300):
            n = rng.randrange(0, 5)
            args = [*rng.choice(heads), *words, *itertools.chain(*rng.sample(pieces, min(n, len(pieces))))]
            out.append(args)
        out.append([*words])
        out.append(["--json", *words, "p1", "p2", "p3"])
    return out


@pytest.mark.parametrize("env", [{}, {"AVFS_HOME": "/e", "AVFS_VAULT": "ev:f"}, {"AVFS_VAULT": ""}])
def test_both_parsers_agree_on_every_commands_arguments(monkeypatch: Any, env: dict[str, str]) -> None:
    for k in ("AVFS_HOME", "AVFS_VAULT"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    taken = 0
    for args in _corpus():
        fast = fastcli.parse(list(args))
        if fast is None:
            continue  # click answers it (its help, its errors)
        taken += 1
        assert _click_parse(args) == fast, args
    assert taken > 300  # the corpus is mostly of shapes the fast path takes


def test_what_click_refuses_the_fast_path_declines() -> None:
    refused = [
        ["cat"],
        ["write"],
        ["vault", "fork"],
        ["log", "a", "b"],
        ["log", "-n", "x"],
        ["log", "-n"],
        ["diff", "-U", "-1"],
        ["status", "--nope"],
        ["status", "extra"],
        ["checkpoint", "save", "a", "b"],
        ["write", "p", "--file", "/no/such/file"],
        ["--json", "status", "--short=1"],
        ["status", "--json"],
        ["--home"],
        ["--version"],
        ["checkpoint"],
        ["vault"],
        ["write", "p", "--file", "tests"],  # (a directory)
        ["merge", "--ours=1"],
        ["undo", "--op", "x"],
        ["checkpoint", "restore"],
        ["redo", "x"],
        ["vault", "list", "x"],
    ]
    for args in refused:
        assert fastcli.parse(args) is None, args
    assert fastcli.parse(["status", "-s", "-b"]) is not None
    assert fastcli.parse(["vault", "create", "v", "--from", "tests"]) is not None
    # (a file too: core says what to do with an archive, h-polish5; click takes it alike)
    made = fastcli.parse(["vault", "create", "v", "--from", "README.md"])
    assert made is not None and made == _click_parse(["vault", "create", "v", "--from", "README.md"])
    assert fastcli.parse(["write", "p", "--file", "README.md"]) is not None
    merged = fastcli.parse(["merge", "a", "--theirs", "--ours"])
    assert merged is not None and merged[2]["favor"] == "ours" and merged[2]["sources"] == ("a",)
    assert merged == _click_parse(["merge", "a", "--theirs", "--ours"])  # (the last given, as click)
    assert fastcli.parse(["status", "-sb"]) is None  # click takes it; the fast path leaves it to click


def _answer(run: Any, args: list[str], capsys: Any) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def small(home: Home, tmp_path: Any) -> str:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "a.txt").write_text("a\n")
    (src / "d" / "b.txt").write_text("b [bold]x[/]\n")
    v = home.create_vault("p", from_dir=str(src))
    for fork in ("c1", "c2"):  # each changes a.txt: a merge of one into the other conflicts
        v.fork("main", fork)
        v.workspace(fork).write("a.txt", f"{fork}\n".encode())
        checkpoint.save(v, fork)
    v.fork("main", "f1")
    ws = v.workspace("f1")
    ws.write("n.txt", b"n\n")
    ws.write("a.txt", b"changed\n")
    v.close()
    return home.path


def test_commands_run_both_ways_answer_alike(small: str, capsys: Any, monkeypatch: Any) -> None:
    """Each read-only command the fast path takes, and its errors, run by the click CLI and by
    the console script's path (fastcli): the same exit code, stdout and stderr. The dates
    are fixed: a dry run's merge commit names its time, and the two runs of one case fell in
    two seconds in a loaded fresh-clone run (the ids differed, nothing else)."""
    monkeypatch.setenv("GIT_AUTHOR_DATE", "@1700000000 +0000")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "@1700000000 +0000")

    def clicked(args: list[str]) -> int:
        apps: list[App] = []
        try:
            return click_main(args, opened=apps)
        finally:
            for app in apps:
                app.close()

    h = ["--home", small]
    cases = [
        ["--vault", "p:f1", "status"],
        ["--json", "--vault", "p:f1", "status"],
        ["--vault", "p:f1", "status", "-s", "--branch"],
        ["--vault", "p:f1", "log"],
        ["--json", "--vault", "p:f1", "log", "-1"],
        ["--vault", "p:f1", "log", "--oneline", "-n", "1", "main"],
        ["--vault", "p:f1", "diff"],
        ["--json", "--vault", "p:f1", "diff", "--stat"],
        ["--vault", "p:f1", "diff", "--name-status", "--path", "a.txt", "-U", "1"],
        ["--vault", "p:f1", "cat", "a.txt", "d/b.txt"],
        ["--json", "--vault", "p:f1", "cat", "d/b.txt"],
        ["--vault", "p:f1", "cat", "missing.txt"],
        ["--json", "--vault", "p:f1", "cat", "missing.txt"],
        ["--vault", "p:nope", "status"],
        ["--json", "--vault", "nope", "log"],
        ["--vault", "p:f1", "checkpoint", "save", "--expect-head", "0" * 40],
        ["--json", "--vault", "p:f1", "write", "x.txt"],
        ["--vault", "p:f1", "write", "x.txt", "v", "--mode", "9"],
        ["--json", "vault", "fork", "p"],
        ["--json", "mount", "--list"],
        ["mount", "--list"],
        ["mount", "nope"],
        ["--json", "mount", "p:nope", "./d"],
        ["unmount", "p:f1"],
        ["--json", "unmount", "p:f1"],
        ["--json", "unmount", "./nowhere"],
        ["--vault", "p:f1", "ls"],
        ["--json", "--vault", "p:f1", "ls", "-l", "d"],
        ["--vault", "p:f1", "ls", "-l", "a.txt"],
        ["--vault", "p:f1", "ls", "nope"],
        ["--vault", "p:f1", "stat", "d/b.txt"],
        ["--json", "--vault", "p:f1", "stat", "-L", "a.txt"],
        ["--json", "--vault", "p:f1", "stat", "nope"],
        ["--vault", "p:f1", "rm"],
        ["--vault", "p:f1", "cp", "a.txt"],
        ["--vault", "p:f1", "status", "-h"],
        ["--vault", "p:f1", "cat"],
        ["--json", "--vault", "p:f1", "log", "-n", "x"],
        ["--json", "--vault", "p", "op", "log", "--max-count", "1"],  # as `log`'s (-n alone before)
        ["--vault", "p:f1", "checkpoint", "list", "--max-count=1", "--all"],
        # merges that change nothing: a dry run, conflicts (exit 3), refusals
        ["--vault", "p:main", "merge", "f1", "--dry-run"],
        ["--json", "--vault", "p", "merge", "--dry-run", "f1", "--no-ff", "--into", "main"],
        ["--vault", "p", "merge", "c1", "--into", "c2"],
        ["--json", "--vault", "p", "merge", "c1", "--into=c2", "-m", "msg"],
        ["--json", "--vault", "p", "merge", "c1", "--into", "c2", "--ours", "--dry-run"],
        ["--vault", "p:c2", "merge", "c1", "--no-capture", "--expect-head", "0" * 40],
        ["--json", "--vault", "p:main", "merge", "main"],
        ["--json", "--vault", "p", "merge", "nope"],
        ["--vault", "p", "merge"],
        ["--json", "--vault", "p", "merge", "--continue"],
        ["--vault", "p", "merge", "--abort", "c1"],
    ]
    for args in cases:
        want = _answer(clicked, [*h, *args], capsys)
        got = _answer(execopts.main, [*h, *args], capsys)
        assert got == want, args
        if "--json" in args:
            json.loads(got[1])  # exactly one document
    code, out, _ = _answer(
        execopts.main, [*h, "--json", "--vault", "p", "op", "log", "--max-count", "1"], capsys
    )
    assert code == 0 and len(json.loads(out)["operations"]) == 1  # taken, not refused alike
    assert sum(fastcli.parse([*h, *a]) is not None for a in cases) >= 43


def test_a_cold_merge_runs_without_click_and_answers_one_document(small: str, tmp_path: Any) -> None:
    """`avfs merge` in a process of its own (no server): its arguments read by the fast
    path, click never imported (main's code imported it: ~40 ms of a cold merge's CPU,
    docs/benchmarks.md h-merge2's section); a clean merge, conflicts (exit 3, nothing
    moved) and a second source that stops the merges each answer exactly one JSON
    document, as the click CLI does."""
    import os
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from avfs_git.cli.execopts import main\n"
        "code = main(sys.argv[1:])\n"
        "sys.stderr.write('click imported: %s\\n' % ('click' in sys.modules))\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "AVFS_SERVER": "off", "AVFS_HOME": small}

    def run(*args: str) -> tuple[int, dict[str, Any], str]:
        p = subprocess.run([sys.executable, "-c", probe, "--json", "--vault", "p", *args],
                           env=env, capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
        return p.returncode, json.loads(p.stdout), p.stderr

    code, doc, err = run("merge", "c1", "--into", "c2")
    assert (code, doc["kind"], doc["conflicted"]) == (3, "merge", True)
    assert [c["path"] for c in doc["results"][0]["conflicts"]] == ["a.txt"]
    assert "click imported: False" in err
    code, doc, err = run("merge", "c1", "nope", "--into", "main")  # c1 merges, then nope stops
    assert code == 1 and doc["results"][0]["status"] == "fast_forward"
    assert doc["error"]["code"] == "fork_not_found" and "click imported: False" in err
    code, doc, err = run("merge", "c2", "--into", "main")
    assert (code, doc["conflicted"]) == (3, True) and "click imported: False" in err
    code, doc, err = run("merge", "c2", "--into", "main", "--ours")  # (a feature switch: the table's too)
    assert (code, doc["results"][0]["status"]) == (0, "merged") and "click imported: False" in err


def test_changing_commands_answer_alike_on_two_copies_of_a_home(
    small: str, tmp_path: Any, capsys: Any, monkeypatch: Any
) -> None:
    """The commands that change a home (files, checkpoints, merges, undo and redo, vaults),
    run in order by the click CLI on one home and by the console script's path (fastcli) on
    a copy of it: each answer the same (the copy's path read as the first's, an operation's
    time as any), errors and exit codes included."""
    import shutil

    other = str(tmp_path / "copy")
    shutil.copytree(small, other, symlinks=True)

    def clicked(args: list[str]) -> int:
        apps: list[App] = []
        try:
            return click_main(args, opened=apps)
        finally:
            for app in apps:
                app.close()

    cases = [
        ["--vault", "p:f1", "cp", "a.txt", "c.txt"],
        ["--json", "--vault", "p:f1", "cp", "-r", "d", "e"],
        ["--json", "--vault", "p:f1", "cp", "a.txt", "d", "--expect", "absent"],
        ["--vault", "p:f1", "cp", "d", "e2"],
        ["--vault", "p:f1", "cp", "-R", "d", "e"],
        ["--json", "--vault", "p:f1", "mv", "nope", "x"],
        ["--vault", "p:f1", "mv", "a.txt", "n.txt", "--expect", "0" * 40],
        ["--vault", "p:f1", "mv", "c.txt", "e"],
        ["--vault", "p:f1", "rm", "-f", "nope"],
        ["--json", "--vault", "p:f1", "rm", "nope"],
        ["--json", "--vault", "p:f1", "rm", "a.txt", "n.txt", "--expect", "absent"],
        ["--vault", "p:f1", "rm", "d"],
        ["--vault", "p:f1", "rm", "-r", "--force", "e2", "nope"],
        ["--vault", "p:f1", "mkdir", "-p", "m/n"],
        ["--json", "--vault", "p:f1", "mkdir", "--parents", "m"],
        ["--vault", "p:f1", "mkdir", "a.txt"],
        ["--json", "--vault", "p:f1", "mkdir", "x", "y"],
        ["--json", "--vault", "p:f1", "status"],
        # checkpoints, merges, the op log, undo and redo, vaults
        ["--vault", "p:f1", "checkpoint", "save", "-m", "s1"],
        ["--json", "--vault", "p:main", "merge", "f1"],
        ["--vault", "p:main", "undo"],
        ["--json", "--vault", "p:main", "redo"],
        ["--vault", "p:main", "merge", "f1", "--no-ff", "-m", "m"],
        ["--json", "--vault", "p:main", "merge", "nope"],
        ["--json", "--vault", "p:main", "merge", "--continue"],
        ["--vault", "p:main", "merge"],
        ["--vault", "p:f1", "checkpoint", "save", "named", "-m", "n"],
        ["--json", "--vault", "p:f1", "checkpoint", "list"],
        ["--vault", "p:f1", "checkpoint", "list", "--all", "-n", "2"],
        ["--json", "--vault", "p:f1", "checkpoint", "restore", "main"],
        ["--vault", "p:f1", "checkpoint", "restore", "nope"],
        ["--json", "--vault", "p:f1", "checkpoint", "delete", "named"],
        ["--vault", "p:f1", "checkpoint", "delete", "named"],
        ["--json", "--vault", "p", "op", "log", "-n", "3"],
        ["--vault", "p:f1", "op", "log"],
        ["--json", "--vault", "p:main", "undo", "--op", "999"],
        ["--vault", "p:main", "write", "a.txt", "main side"],
        ["--vault", "p:main", "checkpoint", "save", "-m", "x"],
        ["--vault", "p:f1", "write", "a.txt", "f1 side"],
        ["--vault", "p:f1", "checkpoint", "save", "-m", "y"],
        ["--json", "--vault", "p:main", "merge", "f1"],
        ["--vault", "p:main", "merge", "f1", "--dry-run"],
        ["--vault", "p:main", "merge", "f1", "--write-conflicts"],
        ["--json", "--vault", "p:main", "merge", "--abort"],
        ["--vault", "p:main", "merge", "f1", "--theirs", "--into", "main"],
        ["--json", "vault", "create", "q"],
        ["vault", "create", "r", "--use", "--no-ignore"],
        ["--json", "vault", "create", "q"],
        ["vault", "create", "bad/name"],
        ["--json", "vault", "create", "s", "--from", str(tmp_path / "src")],
        ["vault", "create", "t", "--from", str(tmp_path / "nowhere")],
        ["vault", "list"],
        ["--json", "vault", "list"],
        ["vault", "info", "p"],
        ["--json", "vault", "info"],
        ["--json", "vault", "info", "nope"],
    ]
    (tmp_path / "src" / "sub").mkdir(parents=True, exist_ok=True)
    (tmp_path / "src" / "sub" / "f.txt").write_text("f\n")
    monkeypatch.setenv("GIT_AUTHOR_DATE", "1700000000 +0000")  # (the same commits in both homes)
    monkeypatch.setenv("GIT_COMMITTER_DATE", "1700000000 +0000")
    when = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?")

    def same(text: str) -> str:  # the copy's path read as the first's; an operation's time as any
        return when.sub("TIME", text.replace(other, small))

    for args in cases:
        assert fastcli.parse(args) is not None, args
        code, out, err = _answer(clicked, ["--home", small, *args], capsys)
        want = (code, same(out), same(err))
        code, out, err = _answer(execopts.main, ["--home", other, *args], capsys)
        assert (code, same(out), same(err)) == want, args
        if "--json" in args:
            json.loads(out)  # exactly one document

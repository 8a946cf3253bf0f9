"""Human output shows text as it is (docs/getting-started.md, "Text as it is").

Names and messages with square brackets (rich markup: ``[red]``, ``[/]``, Next.js routes
like ``pkg/[id].tsx``), backslashes, ``:emoji:`` codes and control characters, through
every human front of the CLI, run in the test's process as the console script runs it (the
errors' test through real processes). Brackets, backslashes and colons come out unchanged; a
string holding a control character (newline, CR, ESC) or a byte that is not UTF-8 comes out
C-quoted, as git quotes such paths, so nothing reaches the terminal raw.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from avfs_git.core.operations.patchheads import git_quoted

from .conftest import CliResult, git

# names the CLI accepts: each must come out exactly as it is
PLAIN_NAMES = [
    "pkg/[id].tsx",
    "[red]x[/red]",
    "[/]",
    "back\\slash[b]",
    "tail\\",
    "emoji :bug: x",
    "[bold]dir[/bold]/f.txt",
]
MESSAGE = "install .[tests] and [red]x[/red] back\\slash [/] :bug: [link=http://x]l[/link]"
# names only git can make (avfs refuses to write them): shown C-quoted
CONTROL_NAMES = {
    b"a\nb": '"a\\nb"',
    b"esc\x1b[31mred": '"esc\\033[31mred"',
    b"cr\rx": '"cr\\rx"',
    b'"quoted"': '"\\"quoted\\""',
}
NOT_UTF8 = b"\xff\xfebad"
NOT_UTF8_SHOWN = '"\\377\\376bad"'
CONTROL_MESSAGE = "second\x1b[31m red\rX"
CONTROL_MESSAGE_SHOWN = '"second\\033[31m red\\rX"'


def _raw_free(r: CliResult) -> CliResult:
    """Neither stream carries a control character other than newline (and tab)."""
    for stream in (r.out, r.err):
        bad = [c for c in stream if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]
        assert not bad, f"raw control characters {bad!r} in {stream!r}"
    return r


@pytest.fixture
def t(cli: Any, cli_proc: Any, tmp_path: Path) -> Any:
    """A vault `t` cloned from a git repository whose second commit adds names only git can
    make; then the CLI writes and checkpoints names with brackets. Returns a runner."""
    src = tmp_path / "src"
    src.mkdir()
    git("init", "-q", "-b", "main", str(src))
    (src / "plain.txt").write_text("p\n")
    git("add", "-A", cwd=src)
    git("commit", "-qm", "first", cwd=src)
    # the name that is not UTF-8 comes last, alone, in a commit of its own
    for raw in [*CONTROL_NAMES, NOT_UTF8]:
        with open(os.path.join(os.fsencode(src), raw), "wb") as fh:
            fh.write(b"c\n")
        if raw in (b'"quoted"', NOT_UTF8):
            git("add", "-A", cwd=src)
            git("commit", "-qm", "names [red]only[/red] git makes", cwd=src)

    def run(*args: str, code: int = 0, proc: bool = False) -> CliResult:
        r = (cli_proc if proc else cli)("--vault", "t", *args)
        assert r.code == code, (args, r)
        return _raw_free(r)

    run_home = cli("vault", "clone", str(src), "t")
    assert run_home.code == 0, run_home
    return run


def _json(cli: Any, *args: str) -> dict[str, Any]:
    r = cli("--json", "--vault", "t", *args)
    assert r.code == 0, r
    return r.json()


def test_written_names_and_messages_come_out_as_they_are(t, cli):
    for name in PLAIN_NAMES:
        assert t("write", name, "x").err == f"wrote {name} (1 bytes)\n"
    base = _json(cli, "status")["base"]
    paths = [c["path"] for c in _json(cli, "status")["changes"]]
    assert sorted(paths) == sorted(PLAIN_NAMES)
    assert t("status").out == f"on t:main at {base[:12]}\n" + "".join(f"A {p}\n" for p in paths)

    cp = t("checkpoint", "save", "cp1", "-m", MESSAGE).out
    first = _json(cli, "log", "-n", "1")["commits"][0]
    assert cp == f"checkpoint {first['id'][:12]} (cp1) on t:main\n"
    assert first["message"].rstrip("\n") == MESSAGE  # the JSON carries it unchanged
    t("write", "more.txt", "m")
    t("checkpoint", "save", "cp2", "-m", CONTROL_MESSAGE)
    commits = _json(cli, "log", "-n", "2")["commits"]
    assert t("log", "--oneline", "-n", "2").out == (
        f"{commits[0]['id'][:12]} (cp2) {CONTROL_MESSAGE_SHOWN}\n{commits[1]['id'][:12]} (cp1) {MESSAGE}\n"
    )
    full = t("log", "-n", "2").out
    assert f"\n    {MESSAGE}\n" in full and f"\n    {CONTROL_MESSAGE_SHOWN}\n" in full, full
    listed = _json(cli, "checkpoint", "list")["checkpoints"]
    assert t("checkpoint", "list").out == "".join(
        f"{c['commit'][:12]} {c['time']} {c['name']} {MESSAGE if c['name'] == 'cp1' else CONTROL_MESSAGE_SHOWN}\n"
        for c in listed
    )

    # listings
    assert t("ls", "pkg").out == "[id].tsx\n"
    assert t("ls", "-l", "pkg").out == "100644 file          1B [id].tsx\n"
    assert t("ls", "[bold]dir[/bold]").out == "f.txt\n"
    assert t("stat", "pkg/[id].tsx").out.startswith("path: pkg/[id].tsx\nkind: file\nmode: 100644\nsize: 1\n")
    tree = t("tree", "[bold]dir[/bold]").out
    assert tree == "[bold]dir[/bold]\n└── f.txt\n\n0 directories, 1 files\n"
    assert t("find", "pkg").out == "pkg/\npkg/[id].tsx\n"

    # diff of the two checkpoints
    a, b = commits[1]["id"], commits[0]["id"]
    # (names as git's core.quotePath quotes them: a backslash quoted, realdata5)
    assert t("diff", "--name-status", commits[1]["parents"][0], a).out == "".join(
        f"A\t{git_quoted(p)}\n" for p in paths
    )
    stat = t("diff", "--stat", a, b).out
    assert stat == " more.txt | 1 +\n 1 file changed, 1 insertion(+)\n"

    # file operations say what they did, names as they are
    assert t("rm", "[/]").err == "removed [/]\n"
    assert t("mv", "tail\\", "[x]tail\\").err.endswith("[x]tail\\\n")


def test_names_git_made_are_quoted_like_git_quotes_them(t, cli):
    shown = sorted([*CONTROL_NAMES.values(), NOT_UTF8_SHOWN])
    listing = _json(cli, "ls")["entries"]
    raw_names = {e["name"] for e in listing}
    assert {os.fsencode(n) for n in raw_names} >= {*CONTROL_NAMES, NOT_UTF8}  # JSON: the names as they are
    out = t("ls").out.splitlines()
    assert sorted(x for x in out if x.startswith('"')) == shown
    assert "plain.txt" in out
    long = t("ls", "-l").out.splitlines()
    assert sorted(re.sub(r"^100644 file +2B ", "", x) for x in long if x.endswith('"')) == shown, long
    tree = t("tree").out
    for q in shown:
        assert f"├── {q}\n" in tree or f"└── {q}\n" in tree, tree
    log = _json(cli, "log")["commits"]
    third, second, first = log[0]["id"], log[1]["id"], log[2]["id"]
    assert t("log", "--oneline").out.splitlines()[0] == f"{third[:12]} names [red]only[/red] git makes"
    names = t("diff", "--name-status", first, third).out
    assert sorted(names.splitlines()) == sorted(f"A\t{q}" for q in shown), names
    stat = t("diff", "--stat", first, second).out.splitlines()
    quoted = sorted(CONTROL_NAMES.values())
    width = max(len(q) for q in quoted)
    assert sorted(stat[:-1]) == sorted(f" {q:<{width}} | 1 +" for q in quoted), stat
    assert stat[-1] == f" {len(quoted)} files changed, {len(quoted)} insertions(+)"
    assert t("find", "--name", "esc*").out == '"esc\\033[31mred"\n'
    # a name that is not UTF-8 in `diff --stat` (libgit2 wants UTF-8 labels: it was exit 70)
    last = t("diff", "--stat", second, third).out.splitlines()
    assert last == [' "\\377\\376bad" | 1 +', " 1 file changed, 1 insertion(+)"], last


def test_errors_show_arguments_as_they_are(t, cli_proc):
    assert (
        t("cat", "nope[red]x", code=1, proc=True).err
        == "avfs: error: nope[red]x: no such file or directory\n  hint: `avfs ls` lists the fork's root\n"
    )  # (the hint: polish4's, nothing near the name to offer)
    r = t("cat", "a\x1b[31mb", code=1, proc=True)
    assert r.err == "avfs: error: invalid path 'a\\x1b[31mb': contains a control character\n"
    r = t("checkpoint", "restore", "x[/]\x1b", code=1, proc=True)
    assert r.err.startswith("avfs: error: unknown revision 'x[/]\\x1b' in vault t\n"), r.err
    # click's own usage errors: the unknown option shown, not acted on
    r = t("ls", "--bo[red]g\x1b", code=2, proc=True)
    assert "--bo[red]g" in r.err and "\x1b" not in r.err
    # a vault that does not exist, named with markup
    r = _raw_free(cli_proc("--vault", "[red]v", "ls"))
    assert r.code == 1 and "'[red]v'" in r.err, r
    # the same through rich (warnings): a remote named and a URL with brackets
    r = t("remote", "add", "o", "file:///tmp/[red]x[/red]", proc=True)
    assert r.err == "added remote o: file:///tmp/[red]x[/red]\n", r


def test_the_proxy_exec_summary_shows_text_as_it_is(t, cli_proc):
    r = t("proxy", "exec", "--mode", "materialized", "--cwd", "[x]\x1b", "--", "true", code=125)
    assert r.err == ("avfs: error: invalid path '[x]\\x1b': contains a control character\n"), r.err


def test_output_templates_escape_only_values() -> None:
    """The one place text is made safe (Output): markup the code wrote stays markup."""
    from rich.console import Console

    from avfs_git.cli.output import Output
    from avfs_git.cli.text import shown

    cases = {
        "pkg/[id].tsx": "pkg/[id].tsx",
        "a\\": "a\\",
        "[/]": "[/]",
        "\\[b]": "\\[b]",
        ":bug:": ":bug:",
        "a\nb": '"a\\nb"',
        '"q"': '"\\"q\\""',
        "caf\udcc3": '"caf\\303"',
        "é ü": "é ü",
    }
    console = Console(record=True, width=200, markup=False, emoji=False, color_system=None)
    for value, expected in cases.items():
        assert shown(value) == expected
        for template in ("[bold]{}[/]", "{}[dim]x[/]", "{}{}", "{}"):
            args = (value, "[i]") if template == "{}{}" else (value,)
            console.print(Output.markup(template, *args), markup=True, emoji=False)
            text = console.export_text(clear=True)
            want = {"[bold]{}[/]": expected, "{}[dim]x[/]": expected + "x", "{}{}": expected + "[i]"}
            assert text == want.get(template, expected) + "\n", (value, template, text)
        assert Output.text("{}|{:>6}", value, 7) == f"{expected}|     7"


def test_a_mount_shows_the_same(t, cli_proc, tmp_path: Path) -> None:
    """A file made in a live mount with a bracketed name: status and ls show it as it is."""
    from avfs_git.ops import mounts

    if mounts.fuse_available() is not None:
        from .conftest import skip_outside_ci

        skip_outside_ci(f"no FUSE here: {mounts.fuse_available()}")
    mp = t("mount", "t:main").out.strip()
    try:
        Path(mp, "app").mkdir()
        Path(mp, "app", "[slug]").mkdir()
        Path(mp, "app", "[slug]", "page.tsx").write_text("x\n")
        subprocess.run(["sync"], check=False)
        out = t("status").out.splitlines()
        assert "A app/[slug]/page.tsx" in out, out
        assert t("ls", "app").out == "[slug]/\n"
    finally:
        t("unmount", "t:main")


def test_no_value_is_formatted_into_a_template() -> None:
    """The one place: human output passes values to Output (say/plain/info/warn/markup/text)
    as arguments. An f-string that interpolates a value into the text any printing call
    gets would bypass the escaping, so none may exist in the CLI."""
    import ast

    cli_dir = Path(__file__).resolve().parent.parent / "avfs_git" / "cli"
    printing = {"echo", "print", "say", "plain", "info", "warn", "markup", "text", "p"}
    found = []
    for path in sorted(cli_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name not in printing:
                continue
            for sub in ast.walk(node.args[0]):
                if isinstance(sub, ast.JoinedStr) and any(
                    isinstance(v, ast.FormattedValue) for v in sub.values
                ):
                    found.append(f"{path.name}:{node.lineno}")
                    break
    assert not found, f"values formatted into printed text (pass them as arguments): {found}"


def test_an_excerpt_keeps_its_text_and_escapes_only_control_characters() -> None:
    from avfs_git.cli.text import escaped

    assert escaped('plain [b] \\ "q"') == 'plain [b] \\ "q"'
    assert escaped("a\x1b]0;t\x07b\x9b2J\udcff") == "a\\033]0;t\\ab\\302\\2332J\\377"


# a string with an escape sequence, a newline and a carriage return, as every argument
EVERY_ARG = "esc\x1b[31mred\nline2\rcr"


def test_every_command_escapes_control_characters_of_its_arguments(cli, tmp_path, monkeypatch):
    """Every command of the CLI (listed from the click group, as tests/test_json_everypath.py
    does), in human mode, with a string holding ESC, a newline and CR as each argument and as
    --vault: nothing it prints carries a raw control character, and no line of it starts
    where the string's newline would have put one. (`proxy exec` hands the command's own
    output through unchanged, as it ran: its arguments go to a command, not to avfs's text.)"""
    from .test_json_everypath import LEAVES, _fill, _within

    monkeypatch.chdir(tmp_path)
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "f.txt", "hi").code == 0
    for path, cmd in LEAVES:
        if path in (("proxy", "exec"), ("mcp",)):
            continue
        for args in (
            ["--vault", "v", *path, *_fill(cmd, EVERY_ARG)],
            ["--vault", EVERY_ARG, *path, *_fill(cmd, EVERY_ARG)],
        ):
            r = _raw_free(_within(60, cli, *args))
            assert not any(ln.startswith("line2") for ln in (r.out + r.err).splitlines()), (args, r)


def test_a_move_and_a_copy_say_which_path_went_where(cli):
    """`rename: a b c` could be `a b` -> `c` or `a` -> `b c`: an arrow says which."""
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "a b", "x").code == 0
    assert cli("--vault", "v", "mv", "a b", "c").err == "renamed a b -> c\n"
    assert cli("--vault", "v", "cp", "c", "d e").err == "copied c -> d e\n"
    assert cli("--vault", "v", "rm", "c").err == "removed c\n"


def test_file_commands_say_what_they_did_one_path_a_line(cli):
    """`mkdir: a b`, `remove: x`, `symlink: l`, `chmod: f` were terse, and a name with a
    space read as two paths: each path now gets a line saying what was done to it."""
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "mkdir", "-p", "a b/c", "d").err == "made directory a b/c\nmade directory d\n"
    assert cli("--vault", "v", "write", "f", "x").code == 0
    assert cli("--vault", "v", "ln", "-s", "f", "l n").err == "linked l n -> f\n"
    assert cli("--vault", "v", "chmod", "+x", "f").err == "made f executable\n"
    assert cli("--vault", "v", "chmod", "-x", "f").err == "made f not executable\n"
    assert cli("--vault", "v", "rm", "-r", "a b", "d").err == "removed a b\nremoved d\n"


def test_a_fork_says_how_it_got_what_git_ignores(cli):
    """`vault fork` said `(ignored paths: snapshot)`; it says it in words now, and only
    where there is something to say (polish1: tests/test_polish1.py): a clean fork, nothing."""
    assert cli("vault", "create", "v").code == 0
    out = cli("vault", "fork", "v", "f").out
    assert out.startswith("forked v:main -> v:f at ") and "(ignored paths" not in out, out
    assert "(" not in out, out
    out = cli("vault", "fork", "--no-ignored", "v", "g").out
    assert out.endswith("(what git ignores was left out)\n"), out


def test_a_forgotten_fork_name_is_not_taken_for_the_vaults(cli):
    """`avfs vault fork proj` (the new name forgotten) made a fork named `proj` of the
    selected vault; it is a usage error now, and nothing is made. Given with a source, the
    name is taken as asked."""
    assert cli("vault", "create", "proj").code == 0
    r = cli("--json", "vault", "fork", "proj")
    assert r.code == 2 and r.json()["error"]["code"] == "usage", r
    assert "name the new fork" in r.json()["error"]["message"]
    assert cli("--json", "vault", "info", "proj").json()["vault"]["forks"] == ["main"]
    assert cli("vault", "fork", "proj:main", "proj").code == 0
    assert cli("--json", "vault", "info", "proj").json()["vault"]["forks"] == ["main", "proj"]
    r = cli("--vault", "proj", "checkout")
    assert r.code == 2 and r.err.startswith("avfs: error: avfs checkout: give the fork to switch to"), r.err


def test_policy_check_says_its_verdict_once(cli):
    """`policy check` printed `deny: denied: ...`: the reason already says the verdict."""
    assert cli("vault", "create", "v").code == 0
    out = cli("--vault", "v", "policy", "check", "--", "rm", "-rf", "/").out.splitlines()
    assert out[0].startswith("denied: `rm -rf /` matches rule 'delete-outside-workspace'"), out
    assert (
        out[1] == "  action: deny; rule: delete-outside-workspace; classes: destructive, host_escape_risk"
    ), out


def test_diff_stat_names_a_rename_as_git_does(cli):
    """`diff --stat` of a rename showed only the new name (`README.txt | 0`); git's line names
    both. The same in `show --stat` and `log --stat`; --json's stat rows are unchanged."""
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "README.md", "r").code == 0
    assert cli("--vault", "v", "checkpoint", "save", "one").code == 0
    assert cli("--vault", "v", "mv", "README.md", "README.txt").code == 0
    assert cli("--vault", "v", "write", "new.txt", "n\n").code == 0
    want = [
        " README.md => README.txt | 0",
        " new.txt                 | 1 +",
        " 2 files changed, 1 insertion(+)",
    ]
    assert cli("--vault", "v", "diff", "--stat").out.splitlines() == want
    assert cli("--vault", "v", "checkpoint", "save", "two").code == 0
    assert cli("--vault", "v", "show", "--stat", "two").out.rstrip("\n").splitlines()[-3:] == want
    assert cli("--vault", "v", "log", "--stat", "-n", "1").out.rstrip("\n").splitlines()[-3:] == want
    rows = cli("--json", "--vault", "v", "diff", "one", "two", "--stat").json()["stat"]
    assert [r["path"] for r in rows] == ["README.txt", "new.txt"], rows


@pytest.mark.parametrize("group", [[], ["vault"], ["checkpoint"]], ids=lambda g: " ".join(["avfs", *g]))
def test_a_group_alone_prints_its_help_as_written(cli, group):
    """`avfs` or `avfs vault` alone printed the group's help quoted as one string:
    `"Usage: avfs vault [OPTIONS] COMMAND [ARGS]...\\n\\n  Create, ...`."""
    r = cli(*group)
    assert r.code == 2 and r.out == "", r
    assert r.err.startswith(f"Usage: {' '.join(['avfs', *group])} [OPTIONS] COMMAND [ARGS]...\n\n"), r.err
    assert "\\n" not in r.err and "Commands:\n" in r.err, r.err

"""The docs stay true: docs/cli.md is the generator's output, DESIGN's commands are in it,
the README's links to docs/ resolve."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest

from avfs_git.cli import docgen
from avfs_git.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
CLI_MD = ROOT / "docs" / "cli.md"
REGENERATE = ".venv/bin/python -m avfs_git.cli.docgen > docs/cli.md"

# The commands of DESIGN.md's CLI groups ("Contracts users see"; DESIGN.md lives outside the
# repository). Commands the CLI does not have yet are skipped; once one exists, its reference
# must be in docs/cli.md.
DESIGN_COMMANDS = (
    # vault
    *("vault create", "vault list", "vault use", "vault info", "vault fork", "vault delete", "vault path"),
    # files, search, versioning
    *("ls", "cat", "write", "cp", "mv", "rm", "tree", "mkdir"),
    *("grep", "find", "search"),
    *("status", "log", "diff", "checkout", "revert"),
    *("checkpoint save", "checkpoint list", "checkpoint restore", "checkpoint delete"),
    *("merge", "mount", "unmount", "proxy exec"),
    *("remote", "push", "fetch", "pull"),
    # maintenance, policy, MCP
    *("stats", "audit", "quota", "gc", "prune", "policy", "mcp"),
)


def _existing(path: str) -> bool:
    """Whether the CLI has the command ``path`` ("vault create") and every group above it."""
    cmd: click.Command = cli
    ctx = click.Context(cli, info_name="avfs", **cli.context_settings)
    for name in path.split():
        if not isinstance(cmd, click.Group):
            return False
        sub = cmd.get_command(ctx, name)
        if sub is None:
            return False
        cmd, ctx = sub, click.Context(sub, info_name=name, parent=ctx)
    return True


def _headings() -> set[str]:
    text = CLI_MD.read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^#+ (avfs(?: [\w-]+)*)$", text, re.MULTILINE)}


def test_cli_reference_is_generated() -> None:
    assert CLI_MD.exists(), f"docs/cli.md is missing: run `{REGENERATE}`"
    expected = docgen.generate()
    actual = CLI_MD.read_text(encoding="utf-8")
    assert actual == expected, f"docs/cli.md is out of date with the CLI: run `{REGENERATE}`"


def test_generator_covers_every_command() -> None:
    """Every command the CLI has (walked independently of docgen) has a section."""
    headings = _headings()
    root = click.Context(cli, info_name="avfs", **cli.context_settings)
    missing = []
    for name in cli.list_commands(root):
        cmd = cli.get_command(root, name)
        assert cmd is not None, name
        if f"avfs {name}" not in headings:
            missing.append(f"avfs {name}")
        if isinstance(cmd, click.Group):
            sub_ctx = click.Context(cmd, info_name=name, parent=root)
            missing += [
                f"avfs {name} {s}" for s in cmd.list_commands(sub_ctx) if f"avfs {name} {s}" not in headings
            ]
    assert not missing, f"commands without a section in docs/cli.md: {missing}; run `{REGENERATE}`"


def test_design_commands_that_exist_are_documented() -> None:
    headings = _headings()
    present = [path for path in DESIGN_COMMANDS if _existing(path)]
    assert present, "none of DESIGN.md's commands found in the CLI"
    missing = [f"avfs {path}" for path in present if f"avfs {path}" not in headings]
    assert not missing, f"DESIGN.md commands missing from docs/cli.md: {missing}; run `{REGENERATE}`"


def test_help_text_everywhere() -> None:
    """A command without help text makes an empty section; name it here."""
    root = click.Context(cli, info_name="avfs", **cli.context_settings)
    bare = [ctx.command_path for cmd, ctx in docgen._walk(cli, root) if not docgen._help_text(cmd)]
    assert not bare, f"commands without help text (add a docstring): {bare}"


def _readme_doc_links() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text)
    return sorted({link for link in links if link.startswith("docs/")})


def test_readme_links_to_docs_are_found() -> None:
    assert _readme_doc_links(), "README.md links to nothing under docs/"


@pytest.mark.parametrize("link", _readme_doc_links())
def test_readme_link_exists(link: str) -> None:
    target = ROOT / link
    assert target.exists(), f"README.md links to {link}, which does not exist"
    if target.is_dir():
        # git keeps no empty directories: a link to one is dead in every clone
        assert any(p.is_file() for p in target.rglob("*")), f"README.md links to {link}, an empty directory"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings."""
    out = set()
    for m in re.finditer(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_docs_relative_links_exist() -> None:
    """Links between the pages of docs/ resolve, anchors included."""
    broken = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        for link, anchor in re.findall(r"\]\(([^)\s#]*)(?:#([^)\s]*))?\)", page.read_text(encoding="utf-8")):
            if "://" in link or link.startswith("mailto:"):
                continue
            target = page.parent / link if link else page
            if not target.exists():
                broken.append(f"{page.name}: {link}")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
                broken.append(f"{page.name}: {link}#{anchor}")
    assert not broken, f"broken relative links in docs/: {broken}"


def test_readme_python_agent_loop_runs(tmp_path, monkeypatch):
    """The README's Python block is the agent loop users copy: it must run as written."""
    import contextlib
    import io

    from avfs_git.ops import mountidle, mounts

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "README.md").write_text("# proj\n")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("0 allow") and "out.txt" in lines[0], lines
    assert lines[1] == "b'done'"
    import avfs_git

    vault = avfs_git.open_home().vault("proj")
    # the mount made for the first call is kept warm for the next ones (docs/fuse.md)
    info = mounts.check(vault, "agent1")
    assert info is not None and info.kept_warm and info.idle_timeout_s == mountidle.DEFAULT_IDLE_S
    assert mounts.unmount(avfs_git.open_home(), vault, "agent1") is not None
    assert mounts.check(vault, "agent1") is None


def test_architecture_names_every_module() -> None:
    """docs/architecture.md gives every module of avfs_git its one job: a module of package
    P is named in P's section (``### core/ ...``) as `name.py`, or as `P/name.py` among the
    front ends; a package's ``__init__.py`` is described in prose."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    sections: dict[str, str] = {}
    for part in re.split(r"^### ", text, flags=re.M)[1:]:
        head, _, body = part.partition("\n")
        sections[head.split("/")[0].split()[0]] = body
    pkg = ROOT / "avfs_git"
    missing = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg)
        if path.name == "__init__.py":
            continue
        if len(rel.parts) == 1:  # avfs_git/__main__.py
            ok = f"`{rel}`" in sections["front"]
        elif rel.parts[0] in ("cli", "mcp", "hooks"):
            body = sections["front"]
            row = next(
                (ln for ln in body.splitlines() if f"`{rel.parts[0]}/" in ln and f"{path.name}`" in ln), None
            )
            ok = row is not None
        else:
            ok = f"`{path.name}`" in sections.get(rel.parts[0], "")
        if not ok:
            missing.append(str(rel))
    assert missing == [], "modules docs/architecture.md does not name"


def _blocks(page: str) -> list[tuple[str, str]]:
    """A page's fenced blocks, in order: (language, text)."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


def _run_sh_blocks(blocks: list[str], cwd: Path, tmp: Path) -> list[tuple[str, str, str, int]]:
    """Run the command lines of ``blocks`` in order in one bash, as a reader pastes them;
    each line's (line, stdout, stderr, exit status)."""
    import os
    import subprocess
    import sys

    errs = tmp / "stderr"
    errs.mkdir()
    lines = [ln for b in blocks for ln in b.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    script = []
    for i, ln in enumerate(lines):
        script += [f"printf '@@%s\\n' {i}", "{ " + ln, f'}} 2>"{errs}/{i}"', "printf '\\n@@rc %s\\n' $?"]
    # the shell's home's server (started by its first call) ended with the shell, not left idle
    script.append("avfs server stop >/dev/null 2>&1")
    # a reader's shell: no AVFS_VAULT, and the warm CLI server on, as it is by default (the
    # suite's AVFS_SERVER=off is the suite's, not the reader's): each `avfs` line after the
    # first is answered by a fork of the server, no Python started (suitetime7, the
    # thirty-ninth round: ~60 cold processes were most of the page's CPU)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AVFS_VAULT", "AVFS_SERVER"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["TMPDIR"] = str(tmp)
    out = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    ).stdout
    ran = []
    for i, ln in enumerate(lines):
        body = out.split(f"@@{i}\n", 1)[1]
        shown, rest = body.split("\n@@rc ", 1)
        ran.append((ln, shown, (errs / str(i)).read_text(), int(rest.split("\n", 1)[0])))
    return ran


def _ids_hidden(text: str) -> str:
    return re.sub(r"\b[0-9a-f]{12}\b", "<id>", text)


# Work, not a wait: every command of the page, each a new avfs process (~27 s of CPU), so its
# wall time is that times the load per core: 277 s at load ~20, past the suite's 300 s at
# load ~27 (h-flaky4: both beside 8 busy loops and a -n 2 run). 600 s: a hang still fails
# within CI's 90 min.
@pytest.mark.timeout(600)
def test_getting_started_runs_as_written(tmp_path: Path) -> None:
    """docs/getting-started.md says every command on it runs as written, pasted in order:
    each shell line (the install block aside) exits 0 in one shell, from a fresh home to
    its cleaning up, and what the page shows of an output is what it prints."""
    blocks = _blocks("getting-started.md")
    sh = [(i, body) for i, (lang, body) in enumerate(blocks) if lang == "sh" and "make install" not in body]
    ran = _run_sh_blocks([body for _, body in sh], ROOT, tmp_path)
    failed = [(ln, err) for ln, _, err, rc in ran if rc != 0]
    assert not failed, f"getting-started.md lines that failed: {failed}"
    by_line: dict[str, tuple[str, str]] = {}
    for ln, out, err, _ in ran:  # a line's first run (`avfs status` runs several times)
        by_line.setdefault(ln.split("#")[0].strip(), (out, err))

    def shown_after(command: str) -> str:
        """The text block that follows the shell block holding ``command``."""
        i = next(i for i, body in sh if any(ln.split("#")[0].strip() == command for ln in body.splitlines()))
        lang, body = blocks[i + 1]
        assert lang in ("", "json"), (command, lang)
        return body

    assert by_line["avfs --vault proj tree"][0] == shown_after("avfs --vault proj tree")
    assert _ids_hidden(by_line["avfs status"][0]) == _ids_hidden(shown_after("avfs status"))
    status = json.loads(by_line["avfs --json --vault proj:agent1 status"][0])
    doc = json.loads(shown_after("avfs --json --vault proj:agent1 status"))
    assert list(status) == list(doc), "the status document's keys are not the page's"
    assert {k: v for k, v in doc.items() if v != "…"} == {k: status[k] for k in doc if doc[k] != "…"}
    err_cmd = 'avfs --json --vault proj:nope status; echo "exit $?"'
    out = by_line[err_cmd][0].splitlines()
    assert json.loads(out[0]) == json.loads(shown_after(err_cmd)) and out[1] == "exit 1"
    from .test_json_schemas import validate

    assert validate(status) == "status" and validate(json.loads(out[0])) == "error"
    # what the comments say a line prints
    for line, printed in (
        ("avfs --vault repo status", "M a.txt"),
        ("avfs cat scratch.txt", "not checkpointed yet"),
    ):
        got = by_line[line][0]
        assert got.splitlines()[-1] == printed, (line, got)
    cats = [out for ln, out, _, _ in ran if ln.startswith("avfs cat notes.md")]
    # written, restored to step-1, the restore undone
    assert cats == ["plan: make it faster", "plan: make it faster", "plan: make it faster, then smaller"], (
        cats
    )
    # the git word's transcript
    transcript = next(body for lang, body in blocks if lang == "" and body.startswith("$ avfs commit"))
    assert not any(ln.startswith("avfs checkout") and "warning" in err for ln, _, err, _ in ran), (
        "`avfs checkout FORK` under AVFS_VAULT=proj warns though the switch holds"
    )
    home = next(ln for ln in by_line if ln.startswith("export AVFS_HOME"))
    assert home and not any(p.name == "avfs" for p in tmp_path.glob("tmp*/avfs")), "the cleanup left the home"
    (tmp_path / "commit").mkdir()
    ran_commit = _run_sh_blocks(["avfs commit -m fix"], ROOT, tmp_path / "commit")
    assert ran_commit[0][3] == 2
    assert ran_commit[0][2].splitlines()[0] == transcript.splitlines()[1], ran_commit


def test_api_complete_example_runs_and_takes_its_home_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/api.md's complete example prints what its comments say, and leaves nothing
    behind: no home directory, no layers file system (it left a loop-mounted image)."""
    import contextlib
    import io

    block = next(body for lang, body in _blocks("api.md") if lang == "python" and "A fork: O(1)" in body)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    from avfs_git.core.vaults import layers

    from .test_share import require_layers

    require_layers()  # the product's default as root: the example must take its image down
    monkeypatch.delenv("AVFS_LAYERS", raising=False)
    monkeypatch.setattr(layers, "DEFAULT_MODE", "auto")
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "api.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0] == "[('added', 'README.md'), ('added', 'src/app.py')]"
    assert lines[1].startswith("True ") and lines[2] == "['README.md', 'src']"
    assert "restore b'uncheckpointed\\n'" in lines
    assert any(ln.startswith("already_exists 1 fork agent1 already has") for ln in lines), lines
    assert list(tmp.iterdir()) == [], "the example left its temporary home"
    with open("/proc/self/mounts") as f:
        assert str(tmp) not in f.read(), "the example left a mount"


def test_policy_samples_are_policy_files() -> None:
    """Each TOML sample of docs/policy.md is a file the policy loader takes as it is (the
    [paths] sample lacked `version = 1`, which a file must start with)."""
    from avfs_git.policy import Policy

    samples = [body for lang, body in _blocks("policy.md") if lang == "toml"]
    assert len(samples) >= 2
    for body in samples:
        Policy.from_text(body, "docs/policy.md")


def test_agents_python_steps_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/agents.md's "From Python": up, a checkpoint, `make test` through the boundary,
    down (keep), export and apply, in a project directory ./proj; its /tmp paths are the
    test's own."""
    import contextlib
    import io

    block = next(body for lang, body in _blocks("agents.md") if lang == "python")
    block = block.replace('"/tmp/', f'"{tmp_path}/')
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "Makefile").write_text("test:\n\techo passed > result.txt\n")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "agents.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("/mnt/proj/task-42 cd " + lines[0].split()[0] + " && claude"), lines
    assert lines[1].startswith("0 (Changed(path='result.txt', status='added'"), lines
    assert lines[2] == "[]", lines  # proxy exec committed what it changed
    assert (tmp_path / "proj-main" / "result.txt").read_text() == "passed\n"
    assert (proj / "result.txt").read_text() == "passed\n"  # apply brought main's change home
    assert (tmp_path / "main.patch").exists()  # nothing left to patch: applied just before
    import avfs_git
    from avfs_git.ops import mounts

    assert mounts.list_mounts(avfs_git.open_home()) == []

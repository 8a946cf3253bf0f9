"""The docs stay true: docs/cli.md is the generator's output, DESIGN's commands are in it,
the README's links to docs/ resolve."""

from __future__ import annotations

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

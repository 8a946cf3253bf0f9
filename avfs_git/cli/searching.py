"""`avfs grep | find | search`: search a fork's files without materializing them."""

from __future__ import annotations

from typing import Any

import click

from .app import App, pass_app


def _exit_nothing_found(found: bool) -> None:
    """grep's convention: exit 1 when nothing matched (the result was still printed)."""
    if not found:
        raise click.exceptions.Exit(1)


@click.command("grep")
@click.argument("pattern")
@click.argument("paths", nargs=-1)
@click.option("-i", "--ignore-case", is_flag=True, help="Ignore case.")
@click.option("-n", "--line-number", "line_number", is_flag=True, help="Prefix lines with their number.")
@click.option(
    "-l", "--files-with-matches", "files_only", is_flag=True, help="Print only the paths of files that match."
)
@click.option("-c", "--count", "count_only", is_flag=True, help="Print the count of matching lines per file.")
@click.option("-w", "--word-regexp", "word", is_flag=True, help="Match whole words only.")
@click.option("-F", "--fixed-strings", "fixed", is_flag=True, help="PATTERN is a fixed string, not a regex.")
@click.option(
    "--glob",
    "globs",
    multiple=True,
    metavar="GLOB",
    help="Only files matching GLOB (name, or path if it has a '/'); '!GLOB' excludes. Repeatable.",
)
@click.option("--rev", default=None, metavar="REV", help="Search a revision (checkpoint, fork or commit).")
@click.option(
    "--ignored",
    "include_ignored",
    is_flag=True,
    help="Search the paths git ignores too (a venv, node_modules), as `git grep --no-exclude-standard`.",
)
@pass_app
def grep_cmd(
    app: App,
    pattern: str,
    paths: tuple[str, ...],
    ignore_case: bool,
    line_number: bool,
    files_only: bool,
    count_only: bool,
    word: bool,
    fixed: bool,
    globs: tuple[str, ...],
    rev: str | None,
    include_ignored: bool,
) -> None:
    """Print lines matching PATTERN (Python `re` syntax) in the fork's files, or at --rev.

    POSIX classes in brackets (`[[:digit:]]`, `[^[:space:]]`) are read as git reads them.
    Paths git ignores (a venv, node_modules) are skipped, as `git grep` skips them, unless
    --ignored. The committed files are searched with `git grep` in the vault, the fork's
    changes through its view. Files come in git's path order. Binary files (`-diff` or
    `binary` in .gitattributes, else a NUL byte in the first 8000) are skipped, as `git grep
    -I` skips them (git's default prints `Binary file X matches`; `--json`'s
    `binary_skipped` counts them), symlinks are not followed.
    Exits 0 when something matched, 1 when nothing did, 2 on a usage error.
    """
    from ..core.operations import search

    vault, fork = app.target()
    ws = vault.workspace(fork)
    res = search.grep(
        ws,
        pattern,
        paths,
        rev=rev,
        ignore_case=ignore_case,
        fixed=fixed,
        word=word,
        globs=globs,
        files_only=files_only,
        count_only=count_only,
        include_ignored=include_ignored,
        as_bytes=not app.output.json,  # (printed as they are, as `git grep` prints them)
    )
    mode = "files" if files_only else "count" if count_only else "lines"
    data: dict[str, Any] = {
        "vault": vault.name,
        "fork": fork,
        "rev": res.rev,
        "pattern": pattern,
        "mode": mode,
        "files": res.files,
        "matches": sum(f.count or 0 for f in res.files),
        "files_matched": len(res.files),
        "files_searched": res.files_searched,
        "binary_skipped": res.binary_skipped,
    }

    def human() -> None:
        o = app.output
        for f in res.files:
            if files_only:
                o.plain("{}", f.path)
            elif count_only:
                o.plain("{}:{}", f.path, f.count)
            else:
                for ln in f.lines:  # the matched line as it is in the file, like `cat`
                    where = o.text("{}:{}:", f.path, ln.line) if line_number else o.text("{}:", f.path)
                    o.raw(where + ln.text + "\n")

    app.output.result("grep", data, human)
    _exit_nothing_found(res.matched)


@click.command("find")
@click.argument("path", default="")
@click.option("--name", "name", metavar="GLOB", help="Last path segment matches GLOB.")
@click.option(
    "--type", "kind", type=click.Choice(["f", "d", "l"]), help="f: files, d: directories, l: symlinks."
)
@click.option(
    "--size", "size", metavar="[+|-]N[k|M|G]", help="Larger (+) / smaller (-) than / exactly N bytes."
)
@click.option("--newer", "newer", metavar="REV", help="Only entries that differ from revision REV.")
@click.option("--rev", default=None, metavar="REV", help="List a revision instead of the workspace.")
@pass_app
def find_cmd(
    app: App,
    path: str,
    name: str | None,
    kind: str | None,
    size: str | None,
    newer: str | None,
    rev: str | None,
) -> None:
    """List entries at and below PATH that pass every filter (symlinks are not followed)."""
    from ..core.operations import search

    vault, fork = app.target()
    res = search.find(vault.workspace(fork), path, rev=rev, name=name, kind=kind, size=size, newer=newer)

    def human() -> None:
        for e in res.entries:
            app.output.plain("{}" + ("/" if e.kind.value == "dir" else ""), e.path)

    from ..core.store import names

    app.output.result(
        "find",
        {
            "vault": vault.name,
            "fork": fork,
            "rev": res.rev,
            "path": names.norm_path(path),
            "entries": res.entries,
        },
        human,
    )


@click.command("search")
@click.argument("query", required=False)
@click.option(
    "--limit", "limit", type=int, default=20, show_default=True, help="At most N results (1 to 10000)."
)
@click.option("--rebuild", is_flag=True, help="Rebuild the fork's index from git first.")
@click.option(
    "--ignored", "include_ignored", is_flag=True, help="Also find paths git ignores (a venv, node_modules)."
)
@pass_app
def search_cmd(app: App, query: str | None, limit: int, rebuild: bool, include_ignored: bool) -> None:
    """Ranked full-text search (SQLite FTS5) over the fork's current files.

    QUERY uses FTS5 syntax: words (all must occur), "a phrase", prefix*, OR, NOT,
    NEAR(a b), path:word. The index is per fork and catches up incrementally on each query.
    Paths git ignores are not among the hits unless --ignored.
    """
    from ..core.errors import UsageError
    from ..core.operations import fts

    vault, fork = app.target()
    if query is None:
        if not rebuild:
            raise UsageError("give a QUERY (or --rebuild alone to rebuild the index)")
        upd = fts.rebuild(vault, fork)
        data: dict[str, Any] = {
            "vault": vault.name,
            "fork": fork,
            "query": None,
            "limit": limit,
            "hits": [],
            "index": upd,
        }
        app.output.result("search", data, lambda: app.output.info("index rebuilt: {} documents", upd.docs))
        return
    res = fts.search(vault, fork, query, limit=limit, rebuild=rebuild, include_ignored=include_ignored)
    data = {
        "vault": vault.name,
        "fork": fork,
        "query": res.query,
        "limit": limit,
        "hits": res.hits,
        "index": res.index,
    }

    def human() -> None:
        o = app.output
        for h in res.hits:
            o.say("[bold]{}[/]  [dim]{:.3f}[/]", h.path, h.score)
            o.out.print("    " + _highlight(" ".join(h.snippet.split())), markup=True, emoji=False)

    app.output.result("search", data, human)


def _highlight(snippet: str) -> str:
    """rich markup for a snippet: the text between ** markers in bold, the rest escaped;
    control characters (a file's ESC sequences) written as C escapes, never sent raw."""
    from .output import rich_escape as escape
    from .text import escaped

    parts = escaped(snippet).split("**")
    return "".join(f"[bold yellow]{escape(p)}[/]" if i % 2 else escape(p) for i, p in enumerate(parts))

"""File commands on a fork's workspace: ls cat write cp mv rm mkdir ln chmod stat tree."""

from __future__ import annotations

import click

from ..core.errors import AlreadyExistsError, UsageError
from ..core.store import names
from ..core.types import NodeKind
from .app import App, pass_app
from .filecmds import (
    cat,
    cp,
    file_op,
    git_state,
    index_shows,
    into_dir,
    ls,
    mkdir,
    mv,
    rm,
    stat,
    write,
    ws_ref,
)


@click.command("ls")
@click.argument("path", default="")
@click.option("-l", "long", is_flag=True, help="Long listing: kind, mode, size.")
@pass_app
def ls_cmd(app: App, path: str, long: bool) -> None:
    """List a directory of the workspace."""
    ls(app, path, long)


@click.command("cat")
@click.argument("paths", nargs=-1, required=True)
@pass_app
def cat_cmd(app: App, paths: tuple[str, ...]) -> None:
    """Print files (bytes as they are; JSON: utf-8 text or base64)."""
    cat(app, paths)


@click.command("write")
@click.argument("path")
@click.argument("content", required=False)
@click.option(
    "--file",
    "--from",  # (`vault create` takes --from: `write P --from F` was click's bare "No such option", trial2)
    "src_file",
    type=click.Path(dir_okay=False, exists=True),
    help="Take the bytes from this local file.",
)
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="Take the bytes from standard input (also when CONTENT is '-').",
)
@click.option("--mode", help="644 or 755 (default: keep, or 644 for new files).")
@click.option("--no-parents", is_flag=True, help="Fail when the parent directory is missing.")
@click.option(
    "--expect",
    metavar="BLOB|absent",
    help="Only if PATH holds this blob id now (`stat --json`'s `blob`), or nothing with 'absent'"
    " (else exit 1, expect_mismatch; nothing done).",
)
@click.option(
    "--append",
    is_flag=True,
    help="Add the bytes at the end of PATH (made when missing): only onto what was read"
    " (else exit 1, expect_mismatch; nothing done); an append_only path takes it.",
)
@pass_app
def write_cmd(
    app: App,
    path: str,
    content: str | None,
    src_file: str | None,
    from_stdin: bool,
    mode: str | None,
    no_parents: bool,
    expect: str | None,
    append: bool,
) -> None:
    """Write a file: from CONTENT, --file F, or --stdin (binary safe)."""
    write(app, path, content, src_file, from_stdin, mode, no_parents, expect, append)


@click.command("cp")
@click.argument("src")
@click.argument("dst")
@click.option("-r", "-R", "--recursive", is_flag=True, help="Copy directories.")
@click.option(
    "--expect",
    metavar="BLOB|absent",
    help="Only if DST (what the copy replaces) holds this blob id now (`stat --json`'s `blob`), or nothing with 'absent'"
    " (else exit 1, expect_mismatch; nothing done).",
)
@pass_app
def cp_cmd(app: App, src: str, dst: str, recursive: bool, expect: str | None) -> None:
    """Copy SRC to DST inside the workspace (unchanged content is shared, not copied)."""
    cp(app, src, dst, recursive, expect)


@click.command("mv")
@click.argument("src")
@click.argument("dst")
@click.option(
    "--expect",
    metavar="BLOB|absent",
    help="Only if DST (what the move replaces) holds this blob id now (`stat --json`'s `blob`), or nothing with 'absent'"
    " (else exit 1, expect_mismatch; nothing done).",
)
@pass_app
def mv_cmd(app: App, src: str, dst: str, expect: str | None) -> None:
    """Move or rename SRC to DST (an unchanged directory moves without copying)."""
    mv(app, src, dst, expect)


@click.command("rm")
@click.argument("paths", nargs=-1, required=True)
@click.option("-r", "-R", "--recursive", is_flag=True, help="Remove directories and their contents.")
@click.option("-f", "--force", is_flag=True, help="Ignore missing paths.")
@click.option(
    "--expect",
    metavar="BLOB|absent",
    help="Only if PATH holds this blob id now (`stat --json`'s `blob`), or nothing with 'absent'"
    " (else exit 1, expect_mismatch; nothing done).",
)
@pass_app
def rm_cmd(app: App, paths: tuple[str, ...], recursive: bool, force: bool, expect: str | None) -> None:
    """Remove files (and directories with -r)."""
    rm(app, paths, recursive, force, expect)


@click.command("mkdir")
@click.argument("paths", nargs=-1, required=True)
@click.option("-p", "--parents", is_flag=True, help="Make parents as needed; no error if it exists.")
@pass_app
def mkdir_cmd(app: App, paths: tuple[str, ...], parents: bool) -> None:
    """Make directories (git keeps only non-empty ones in checkpoints)."""
    mkdir(app, paths, parents)


@click.command("ln")
@click.option(
    "-s", "--symbolic", is_flag=True, required=True, help="Make a symbolic link (the only kind git keeps)."
)
@click.option("-f", "--force", is_flag=True, help="Replace an existing LINK_PATH.")
@click.argument("target")
@click.argument("link_path")
@pass_app
def ln_cmd(app: App, symbolic: bool, force: bool, target: str, link_path: str) -> None:
    """Make LINK_PATH a symlink to TARGET (`ln -s` semantics; TARGET is stored as given)."""
    del symbolic
    ws = app.workspace()
    dst = into_dir(ws, target, link_path) if not force else names.norm_path(link_path)
    if force and ws.exists(dst):
        ws.remove(dst)
    elif ws.exists(dst):
        raise AlreadyExistsError(f"{dst}: already exists", hint="use -f to replace it")
    st = ws.symlink(target, dst)
    # (a link over a staged git-state name: the index's entry put back, as `write` does;
    # review43 F3: `ln -s -f X src/config` left the staged config no work tree showed)
    index_shows(ws, [st.path] if git_state(st.path) else [])
    file_op(app, "symlink", [st.path], {"target": target})


@click.command("chmod", context_settings={"ignore_unknown_options": True})
@click.argument("mode", metavar="+x|-x")
@click.argument("paths", nargs=-1, required=True)
@pass_app
def chmod_cmd(app: App, mode: str, paths: tuple[str, ...]) -> None:
    """Set (+x, 755) or clear (-x, 644) the executable bit."""
    if mode not in ("+x", "-x", "755", "644"):
        raise UsageError(f"invalid mode {mode!r}: git keeps only the executable bit (+x or -x)")
    ws = app.workspace()
    for p in paths:
        ws.chmod(p, mode in ("+x", "755"))
    file_op(app, "chmod", [names.norm_path(p) for p in paths], {"executable": mode in ("+x", "755")})


@click.command("stat")
@click.argument("path")
@click.option("-L", "--dereference", is_flag=True, help="Follow a symlink.")
@pass_app
def stat_cmd(app: App, path: str, dereference: bool) -> None:
    """Show what the workspace knows about PATH."""
    stat(app, path, dereference)


@click.command("tree")
@click.argument("path", default="")
@click.option("-L", "--level", "level", type=int, default=None, help="Descend at most this deep.")
@pass_app
def tree_cmd(app: App, path: str, level: int | None) -> None:
    """Show the directory tree below PATH."""
    ws = app.workspace()
    ws.check_shown(path, "tree")
    entries = list(ws.walk(path, max_depth=level))
    if (shown := ws.visible_filter()) is not None:
        entries = [e for e in entries if shown(e.path, e.kind)]
    root = names.norm_path(path)

    def human() -> None:
        o = app.output
        o.plain("{}", root or ".")
        base_depth = root.count("/") + 1 if root else 0
        # entries come depth first: the last child of a directory gets └──, and the
        # directories above it that still have children to come keep their │
        last = {e.path.rpartition("/")[0]: i for i, e in enumerate(entries)}
        done: list[bool] = []  # per depth: that ancestor was its directory's last entry
        for i, e in enumerate(entries):
            depth = e.path.count("/") - base_depth
            is_last = last[e.path.rpartition("/")[0]] == i
            del done[depth:]
            prefix = "".join("    " if d else "│   " for d in done)
            suffix = "/" if e.kind is NodeKind.DIR else ""
            o.plain(prefix + ("└── " if is_last else "├── ") + "{}" + suffix, e.name)
            done.append(is_last)
        files = sum(1 for e in entries if e.kind is not NodeKind.DIR)
        o.plain("\n{} directories, {} files", len(entries) - files, files)

    app.output.result("tree", {**ws_ref(app), "path": root, "entries": entries}, human)

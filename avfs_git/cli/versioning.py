"""`avfs status | log | show | diff | checkout | revert`, in git's shapes."""

from __future__ import annotations

import re
import sys

import click

from .app import COUNT_OPTS, App, pass_app
from .histcmds import commit_human, commit_patch, diff, log, status


@click.command("status")
@click.option(
    "--ignored", "list_ignored", is_flag=True, help="Also list the paths git ignores (never checkpointed)."
)
@click.option(
    "-s",
    "--short",
    "--porcelain",
    "short",
    is_flag=True,
    help="One `XY PATH` line per change, as `git status -s` prints in a checkout of the base (nothing staged).",
)
@click.option("-b", "--branch", "branch", is_flag=True, help="With -s: a `## FORK` line first, as git's.")
@pass_app
def status_cmd(app: App, list_ignored: bool, short: bool, branch: bool) -> None:
    """Uncheckpointed changes of the fork (its overlay against its base commit).

    Paths git ignores (.gitignore, the vault's info/exclude, core.excludesFile) are not
    changes: they are counted, and listed with --ignored as `git status --ignored` lists
    them (a directory git ignores whole as `dir/`). What no checkpoint records (a name git
    refuses, a fifo, a tree deeper than the host's paths reach) is listed as not recorded."""
    status(app, list_ignored, short, branch)


class _GitCountCommand(click.Command):
    """A command that takes git's ``-N`` for ``--max-count=N`` (``avfs log -3``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        for i, a in enumerate(args):
            if a == "--":
                out.extend(args[i:])
                break
            value = i > 0 and args[i - 1] in COUNT_OPTS  # (`-n -1`: the option's value, its own error)
            out.append(f"--max-count={a[1:]}" if not value and re.fullmatch(r"-[0-9]+", a) else a)
        return super().parse_args(ctx, out)


@click.command("log", cls=_GitCountCommand)
@click.option(
    "--all", "all_forks", is_flag=True, help="Every fork's commits, not only this fork's first-parent line."
)
@click.option(*COUNT_OPTS, "limit", type=int, default=None, help="Show at most N commits (or -N).")
@click.option("--oneline", is_flag=True, help="One line per commit.")
@click.option(
    "-p", "--patch", "patch", is_flag=True, help="Each commit's diff (against its first parent: below)."
)
@click.option("--graph", is_flag=True, help="Draw the fork's first-parent line (`*` per commit).")
@click.option("--stat", "stat", is_flag=True, help="Each commit's per-file line counts.")
@click.argument("rev", required=False)
@pass_app
def log_cmd(
    app: App,
    all_forks: bool,
    limit: int | None,
    oneline: bool,
    patch: bool,
    graph: bool,
    stat: bool,
    rev: str | None,
) -> None:
    """Checkpoints (commits) of the fork, newest first.

    REV starts the walk there (`HEAD~3`, a checkpoint, a fork); `A..B` lists the commits
    B has and A has not, `A...B` those either has and not both, as `git log` does.
    `Date:` is the author's time, as git's (--json: `author_time`, and `time` the
    committer's). -p and --stat show each commit against its first parent, as `git log
    -p --first-parent` (a fork's own line is its first parents); a walk through every
    parent (--all, A..B) shows a merge's diff not at all, as `git log -p`; a root commit
    shows its whole tree unless `log.showroot` is false (git's setting). -p and --graph
    shape the human output; --json lists the commits (`avfs diff` gives their patches)."""
    log(app, all_forks, limit, oneline, patch, graph, stat, rev)


@click.command("show")
@click.argument("spec", required=False, default="HEAD", metavar="[REV | REV:PATH]")
@click.option("--stat", "stat", is_flag=True, help="Per-file line counts instead of the patch.")
@pass_app
def show_cmd(app: App, spec: str, stat: bool) -> None:
    """A commit with its patch (REV, default HEAD), or a file as it was (REV:PATH), as
    `git show` does. --json: the commit as a `log` document, or the file as `file_content`.

    A merge shows git's combined diff (`--cc`: the files and hunks whose result differs
    from every parent; nothing when it took each file from one side), --stat its counts
    against its first parent; a root commit its whole tree, unless `log.showroot` is
    false. `Date:` is the author's time, as git's."""
    from ..core.errors import RevisionNotFoundError
    from ..core.operations import history
    from ..core.types import MergeDiff

    vault, fork = app.target()
    try:
        commit = history.resolve(vault, spec, fork)
    except RevisionNotFoundError:
        rev, sep, path = spec.partition(":")
        if not sep:
            raise
        data = history.read_at(vault, fork, rev or "HEAD", path)
        from .filecmds import file_entry

        if app.json:
            app.output.document(
                "file_content", {"vault": vault.name, "fork": fork, "files": [file_entry(path, data)]}
            )
            return
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    info = history.commit_info(vault.store.commit(commit), history.checkpoint_names(vault, fork))

    def human() -> None:
        commit_human(app, info, False, False)
        commit_patch(app, vault, fork, info, 3, stat=stat, merges=MergeDiff.COMBINED)

    app.output.result("log", {"vault": vault.name, "fork": fork, "all": False, "commits": [info]}, human)


@click.command("diff")
@click.argument("revs", nargs=-1, metavar="[REV | REV REV | A..B | A...B] [-- PATH...]")
@click.option("--stat", "stat", is_flag=True, help="Per-file line counts.")
@click.option("--name-status", is_flag=True, help="Status letter and path per change.")
@click.option("--path", "paths", multiple=True, help="Only changes at or below this path (repeatable).")
@click.option("-U", "--unified", "context", type=int, default=3, help="Lines of context.")
@click.option(
    "--cached",
    "--staged",
    "cached",
    is_flag=True,
    help="Accepted for git's habit: there is no index, a checkpoint takes the workspace as it is.",
)
@pass_app
def diff_cmd(
    app: App,
    revs: tuple[str, ...],
    stat: bool,
    name_status: bool,
    paths: tuple[str, ...],
    context: int,
    cached: bool,
) -> None:
    """Show changes: workspace vs base (no REV), REV vs workspace, or REV1 vs REV2.

    git's forms work: `HEAD~1`, `A..B` (A vs B), `A...B` (their merge base vs B), and
    paths after `--` (`avfs diff HEAD~1 -- src/`). --cached/--staged change nothing: every
    change is in the next checkpoint, so they show what `avfs diff` shows.

    Renames are paired as `git diff` pairs them (the workspace as `git diff --cached`
    after `git add -A`): the same content, and a deleted and an added file of 50 %
    similar content or more (git's own pairing and score, `R085`, `similarity index
    85%`); `avfs status` pairs only the same content and the moves avfs saw, without
    scores. `--stat` and `--name-status` quote names as
    git does (`core.quotePath`: on unless the vault's or your git config sets it false)."""
    diff(app, revs, stat, name_status, paths, context, cached)


@click.command("checkout")
@click.argument("args", nargs=-1, metavar="[FORK | [REV] -- PATH | PATH --from REV]")
@click.option("--from", "rev", metavar="REV", help="Revision to take PATH from (checkpoint, fork, commit).")
@click.option("-b", "new_fork", metavar="NEW", help="Fork the selected fork as NEW and switch to it.")
@pass_app
def checkout_cmd(app: App, args: tuple[str, ...], rev: str | None, new_fork: str | None) -> None:
    """Switch forks, or bring a path back from a revision (undoable), as `git checkout`.

    `avfs checkout FORK` makes FORK the selected fork (as `avfs vault use VAULT:FORK`);
    `-b NEW` forks the selected fork first. `avfs checkout REV -- PATH` (REV defaults to
    HEAD: drop the path's uncheckpointed changes) and `avfs checkout PATH --from REV`
    bring PATH back as it was at REV; a file a program holds open for writing in the fork's
    overlay mount is left as it is (--json: the operation's `kept_open`)."""
    from ..core.errors import UsageError
    from ..core.operations import checkpoint as cp

    vault, fork = app.target()
    raw = app.output.argv
    paths: tuple[str, ...] = ()
    if "--" in raw:
        after = raw[raw.index("--") + 1 :]
        args, paths = args[: len(args) - len(after)], tuple(after)
    if new_fork is not None or (not paths and rev is None):
        if new_fork is not None:
            if args or paths or rev:
                raise UsageError("-b NEW takes no other argument", hint="avfs checkout -b NEW")
            vault.create_fork(fork, new_fork)
            target = new_fork
        elif len(args) == 1 and vault.has_fork(args[0]):
            target = args[0]
        else:
            shown = " ".join(args)
            raise UsageError(
                f"`avfs checkout {shown}`: not a fork of vault {vault.name}"
                if args
                else "avfs checkout: give the fork to switch to, or a path to take back",
                hint="switch forks: avfs checkout FORK (new: -b NEW); take a path back:"
                " avfs checkout REV -- PATH",
                details={"args": list(args), "forks": vault.fork_names()},
            )
        vname, _ = app.home.use(f"{vault.name}:{target}")
        app.output.result(
            "vault_use",
            {"vault": vname, "fork": target},
            lambda: app.output.info("switched to fork {}:{}", vname, target),
        )
        spec_fork = app.vault_spec.partition(":")[2] if app.vault_spec else ""
        if spec_fork and spec_fork != target:
            # `proj` alone follows the vault's default fork, which the switch moved; a fork
            # named in --vault/AVFS_VAULT does not
            app.output.warn(
                "--vault/AVFS_VAULT names {}: commands given it still act on that fork"
                " (give --vault {}:{}, or unset AVFS_VAULT)",
                app.vault_spec,
                vname,
                target,
            )
        return
    if paths:
        if rev is not None or len(args) > 1:
            raise UsageError(
                "give the revision before `--` or with --from, once", hint="avfs checkout REV -- PATH"
            )
        rev = args[0] if args else "HEAD"
    else:
        paths = args
    if len(paths) != 1:
        raise UsageError("give one path", hint="avfs checkout REV -- PATH")
    assert rev is not None
    from .filecmds import checked_out, is_dir

    was_dir = is_dir(vault.workspace(fork), paths[0])  # (a directory a file replaces: looked at)
    op = cp.checkout(vault, fork, paths[0], rev)
    checked_out(vault.workspace(fork), paths[0], was_dir)
    app.output.result(
        "operation",
        {"vault": vault.name, "fork": fork, "operation": op},
        lambda: app.output.info("{}", op.summary),
    )


@click.command("revert")
@click.argument("rev")
@click.option("-m", "--message", help="Commit message.")
@pass_app
def revert_cmd(app: App, rev: str, message: str | None) -> None:
    """Make a new checkpoint that undoes the changes REV made.

    While git in a mount of the fork has a rebase, merge, cherry-pick, revert or bisect
    open, the revert refuses (`git_in_progress`, exit 75), as a restore does. A file a
    program holds open for writing in the fork's overlay mount is left as it is (--json:
    `kept_open`)."""
    from ..core.operations import checkpoint as cp

    vault, fork = app.target()
    res = cp.revert(vault, fork, rev, message)
    app.output.result(
        "checkpoint",
        {
            "checkpoint": res.checkpoint,
            "created": res.created,
            "op_id": res.op_id,
            "kept_open": res.kept_open,
        },
        lambda: app.output.say("reverted {}: new checkpoint {}", rev, res.checkpoint.commit[:12]),
    )

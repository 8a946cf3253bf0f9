"""What the resident CLI server (:mod:`.resident`) loads before it forks a call's process.

A served call costs what its forked child does, and a module the child imports is compiled
or read, and executed, in every call: the policy package alone (which opening a home
loads) cost ~60 ms a call this way, pathspec and rich the rest. So the server imports here,
once, every module a command reaches: each module of the packages below, the third-party
and standard modules the commands import on use, rich's lazily read tables (by
rendering a line into a string) and the shipped policy's rules (policy/config.py
:func:`~..policy.config.load_shipped`: from the package's own file). Only imports: nothing here opens a home, reads the
environment into a cache, or starts a thread (the server forks; a child must not inherit
a lock held by a thread that is not there).

Not loaded here: ``fuse`` and ``mcp`` (they run in processes of their own: the mount
daemon, ``avfs mcp``; a command only starts them), the server itself and the docs
generator. The server loads ``fuse`` after these (cli/warmdaemon.py), for the mount
daemons it forks: a command's process never runs it.
``tests/test_cliserver.py`` runs the frequent commands in children of a server so warmed
and requires that none imports anything more.
"""

from __future__ import annotations

import importlib
import pkgutil

# avfs's packages whose modules the commands import (avfs_git.<name>)
PACKAGES = ("core", "mount", "policy", "ops", "proxy", "hooks", "cli")
SKIP = ("avfs_git.cli.resident", "avfs_git.cli.docgen")
# imported by commands on use, outside avfs (rendering for a person, error paths,
# temporary files, close-name suggestions)
MODULES = (
    "rich.console",
    "rich.markup",
    "rich.text",
    "rich.table",
    "rich.progress",
    "rich.syntax",
    "difflib",
    "tempfile",
    "pickle",
    "encodings.ascii",
)


def modules() -> list[str]:
    """The names of avfs's modules the server loads (:data:`PACKAGES`, less :data:`SKIP`)."""
    names: list[str] = []
    for name in PACKAGES:
        names += package_modules(f"avfs_git.{name}")
    return names


def package_modules(name: str) -> list[str]:
    """Package ``name`` and the names of its modules (less :data:`SKIP`)."""
    pkg = importlib.import_module(name)
    return [
        pkg.__name__,
        *(m.name for m in pkgutil.walk_packages(pkg.__path__, name + ".") if m.name not in SKIP),
    ]


def load_package(name: str) -> None:
    """Import package ``name`` and each of its modules (the mount daemon's, ``fuse``, by
    cli/warmdaemon.py: with libfuse chosen as the daemon's environment chooses it)."""
    for mod in package_modules(name):
        importlib.import_module(mod)


def load() -> list[str]:
    """Import everything a command may reach; returns the names that failed to import (an
    optional dependency missing: a command imports it on use, as a direct call does)."""
    failed: list[str] = []
    for name in (*modules(), *MODULES):
        try:
            importlib.import_module(name)
        except Exception:
            failed.append(name)
    _rehearse()
    return failed


def _rehearse() -> None:
    """Load what the modules read on first use: rich's cell-width tables and styles (a line
    rendered into a string), libgit2 (through the store, as everything else reaches it),
    the name checks' regular expression, the commands' help options, the shipped policy."""
    import io

    try:
        from rich.console import Console

        Console(file=io.StringIO(), width=80, color_system="standard", force_terminal=True).print(
            "[bold]avfs[/] é 漢 ✓"
        )
    except Exception:
        pass
    from ..core.store import names
    from ..core.store.gitstore import prefer_libgit2

    prefer_libgit2()
    # the name checks' pattern, compiled on first use (a cold start never imports re): in
    # re's cache here, not compiled again in every call's child
    names.check_fork_name("main")
    _help_options()
    from ..policy.config import load_shipped

    # the shipped policy's rules, which every `proxy exec` loads, and their programs'
    # patterns, which it matches the command against (policy/model.py glob_re's cache)
    for rule in load_shipped().rules:
        rule.matches_program("")


def _help_options() -> None:
    """Make each command's help option here (click makes it on a command's first parse and
    keeps it on the command): making it asks ``gettext`` for its text, whose search for a
    catalogue is done again on every call (~0.2 ms with ``LANG=C.UTF-8``, three times a
    command: the group, the subgroup, the command)."""
    import click

    from .main import cli

    def walk(cmd: click.Command, ctx: click.Context) -> None:
        cmd.get_help_option(ctx)
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None:
                    walk(sub, click.Context(sub, info_name=name, parent=ctx, **sub.context_settings))

    walk(cli, click.Context(cli, info_name="avfs", **cli.context_settings))

"""What every command module shares: :class:`App` (the home, the selected vault and fork,
the output) and ``pass_app``, the decorator that hands it to a command.

Command modules import this module, never :mod:`.main` (the click group, which loads them):
in cli, imports go one way, ``execopts -> main -> command modules -> app``. It does not
import click itself (``pass_app`` loads it when a command runs): `gc`'s path without click
(:mod:`.gccmd`) builds an :class:`App` too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import update_wrapper
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from .output import Output

if TYPE_CHECKING:
    from ..core.vaults.home import Home
    from ..core.vaults.vault import Vault
    from ..core.workspace.workspace import Workspace
    from .homekeep import KeptHome


# A count's names: git's (`-n`, `--max-count`) and the one the MCP tools and the API take
# (`limit`: `avfs log --limit 3` was click's bare "No such option", trial1), for `log`,
# `checkpoint list` and `op log` (fastcli's table spells them out).
COUNT_OPTS = ("-n", "--max-count", "--limit")


def index_put_back(vault: Vault, fork: str) -> dict[str, Any] | None:
    """What the index patch of the mount of ``fork`` put back in this process since last
    asked (mount/stagedplant.py ``taken``): a staged half of a repository running a program
    that the move's commit completed, said by the merge or checkpoint that did it (review40;
    before, only a later run's envelope said it). A process that never loaded that module
    patched no index with it: nothing is imported for the answer."""
    import sys

    mod = sys.modules.get(__name__.rpartition(".cli.")[0] + ".mount.stagedplant")
    return None if mod is None else mod.taken_for(vault, fork)  # type: ignore[no-any-return]


def check_count(limit: int | None, what: str) -> None:
    """Refuse a negative count (`-n -1`: git's "no limit", click's "'--max-count=1' is not a
    valid integer" here before; leave the option out for all)."""
    if limit is not None and limit < 0:
        from ..core.errors import UsageError

        raise UsageError(
            f"-n/--max-count/--limit takes a number of {what}, 0 or more: got {limit}",
            hint="leave it out for the default: `log` shows every commit, `checkpoint list` 100, `op log` 50",
            details={"limit": limit},
        )


class App:
    """What every command needs: the home, the selected vault/fork, the output."""

    def __init__(
        self, home: str | None, vault: str | None, output: Output, kept: KeptHome | None = None
    ) -> None:
        """``kept``: where the home comes from in a kept process (cli/homekeep.py), which
        keeps it open for its next call; None: opened here and closed by :meth:`close`."""
        self.home_path = home
        self.kept = kept
        self.vault_spec = vault
        self.output = output
        self._home: Home | None = None
        self._here: str | None = None  # the place's selection (registry.place; '' none)
        # what may wait until the command's answer is out (an audit record's fsync): run by
        # the resident server's child once its caller has the answer, else before the exit
        self.after: list[Callable[[], None]] = []
        # work done ahead for a later call (a fork's next snapshot): run only by the resident
        # server's child once its caller has the answer; a process of the caller's own drops
        # it (its caller waits for its exit)
        self.ahead: list[Callable[[], None]] = []

    def close(self) -> None:
        """Close the home's SQLite and git handles, if it was opened. The last connection
        to a database that closes writes its WAL into it and removes it; a process that
        ends without closing leaves the WAL, which the next process to open the database
        reads whole to rebuild its index (see :func:`.callproc.child`). A kept home
        (:attr:`kept`) stays open: what must be read afresh by the next call is let go."""
        if self.kept is not None:
            self.kept.release()
        elif self._home is not None:
            self._home.close()

    def run_after(self) -> None:
        """Run what the command left for after its answer (:attr:`after`); a failure there
        changes no answer given."""
        todo, self.after = self.after, []
        for fn in todo:
            try:
                fn()
            except Exception:
                pass

    def run_ahead(self) -> None:
        """Run :attr:`ahead` (a served call, its answer out); a failure changes nothing given."""
        todo, self.ahead = self.ahead, []
        for fn in todo:
            try:
                fn()
            except Exception:
                pass

    @property
    def json(self) -> bool:
        return self.output.json

    @property
    def home(self) -> Home:
        if self._home is None:
            from ..core.settings import Settings
            from ..mount.side import open_home

            # the environment is read here, at the front end, and passed down; no zygote
            # (ops/warmstart.py) for a call: it is one command, whose process ends with it
            # (a zygote's imports, ~0.3 s of CPU, for at most its own later mounts)
            settings = Settings.from_environ(os.environ, self.home_path)
            settings.zygote = False
            if self.kept is not None:
                self._home = self.kept.open(self.home_path, settings)
            else:
                self._home = open_home(self.home_path, settings=settings)
        return self._home

    @property
    def spec(self) -> str | None:
        """The vault and fork a command acts on when it names none: --vault or AVFS_VAULT;
        else the place the command runs in (:func:`..core.registry.place`, the one rule:
        the fork whose live mount holds the current directory, as git finds the repository
        it runs in; else the vault `avfs up` made from this directory or one above it);
        else None (the home's default, `vault use`)."""
        if self.vault_spec is not None:
            return self.vault_spec
        if self._here is None:
            from ..core.settings import home_path
            from ..core.vaults import registry

            try:
                cwd = os.getcwd()
            except OSError:  # the current directory is gone
                cwd = None
            found = registry.place(home_path(self.home_path, os.environ), cwd) if cwd else None
            self._here = found or ""
        return self._here or None

    def target(self) -> tuple[Vault[Home], str]:
        """The selected vault and fork (:attr:`spec`, or `vault use`)."""
        return self.resolve(self.spec)

    def resolve(self, spec: str | None) -> tuple[Vault[Home], str]:
        """``VAULT[:FORK]`` (None: the default) -> (vault, fork); a vault or fork that does
        not exist is named in the error, with the close names that do (a typo's fix)."""
        from ..core.errors import NotFoundError

        try:
            return self.home.resolve(spec)
        except NotFoundError as err:
            from .suggest import with_suggestions  # loaded only when a name was not found

            raise with_suggestions(self.home, err) from None

    def resolve_given(self, spec: str | None) -> tuple[Vault[Home], str]:
        """A command's ``VAULT[:FORK]`` argument (None: not given, the selected fork). One
        given empty is refused, never taken for the default: `avfs vault info "$V"` with
        ``V`` unset must not answer for (or `mount`, `unmount`, `watch`, `fork` act on)
        another vault than the one meant."""
        if spec == "":
            from ..core.errors import InvalidNameError

            raise InvalidNameError("invalid vault name: empty", hint="name the vault, e.g. 'myproj'")
        return self.resolve(spec if spec is not None else self.spec)

    def workspace(self) -> Workspace:
        vault, fork = self.target()
        return vault.workspace(fork)


P = ParamSpec("P")
R = TypeVar("R")


def pass_app(f: Callable[Concatenate[App, P], R]) -> Callable[P, R]:
    """A command's decorator: the :class:`App` of the click context is its first argument
    (``click.make_pass_decorator(App)``, with click imported when the command runs)."""

    def new_func(*args: P.args, **kwargs: P.kwargs) -> R:
        import click

        ctx = click.get_current_context()
        obj = ctx.find_object(App)
        if obj is None:
            raise RuntimeError("no App in the click context")
        return ctx.invoke(f, obj, *args, **kwargs)

    return update_wrapper(new_func, f)

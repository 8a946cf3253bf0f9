"""What of a call its caller may not have meant, said in the envelope's ``warnings``: the
directories of installed dependencies a command's commit took in, a shell line given as one
argument.

git ignores only what a `.gitignore` says; a project without one (npm and PyPI tarballs
carry none) gets its `npm install`'s `node_modules` (12,233 paths in h-polish3's trial) or
a venv committed, as `git add -A` would. That is git's rule and stays avfs's, but the
envelope's ``warnings`` names each such directory new in the commit, with its count and the
`.gitignore` line that keeps it out (docs/proxy.md, "Warnings").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .envelope import Changed, ExecWarning

# names a package manager or a tool gives the directories it fills; a venv by any name is
# found by its `pyvenv.cfg`
DEPENDENCY_DIRS = frozenset(
    {
        "node_modules",
        "bower_components",
        ".venv",
        "__pycache__",
        ".tox",
        ".nox",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
    }
)


# (one search a path: a commit of 12,233 paths is read in a few ms)
_FIRST = re.compile("(?:^|/)(?:" + "|".join(re.escape(d) for d in sorted(DEPENDENCY_DIRS)) + ")/")


def _outer(path: str, venvs: list[str]) -> str | None:
    """The outermost dependency directory ``path`` is in (None: none)."""
    m = _FIRST.search(path)
    found = path[: m.end() - 1] if m is not None else None
    for v in venvs:  # (a venv by another name: rare, few)
        if path.startswith(v + "/") and (found is None or len(v) < len(found)):
            found = v
    return found


def committed(changes: Iterable[Changed]) -> tuple[ExecWarning, ...]:
    """One warning for each dependency directory whose paths the commit of ``changes``
    added, and nothing else under it (one the base had, edited, is the project's own)."""
    changes = list(changes)
    venvs = [c.path[: -len("/pyvenv.cfg")] for c in changes if c.path.endswith("/pyvenv.cfg")]
    counts: dict[str, int] = {}
    own: set[str] = set()
    for c in changes:
        d = _outer(c.path, venvs)
        if d is None:
            continue
        if c.status != "added":
            own.add(d)
        counts[d] = counts.get(d, 0) + 1
    return tuple(
        ExecWarning(
            code="dependencies_committed",
            path=d,
            count=n,
            message=f"{n} path(s) under {d}/ committed: no .gitignore rule keeps it out",
            hint=f"a `{d.rsplit('/', 1)[-1]}/` line in .gitignore keeps it out of the next commits, as"
            " git would (its files stay in the fork); `avfs undo` takes this commit back and keeps"
            " its files as uncheckpointed changes",
        )
        for d, n in sorted(counts.items())
        if d not in own
    )


def shell_line(argv: tuple[str, ...] | list[str] | None) -> bool:
    """Whether ``argv`` is one argument holding a shell line (`-- 'echo hi >> f'`): a blank
    or a shell operator in it (`policy check`'s hint asks this too)."""
    return argv is not None and len(argv) == 1 and any(c in argv[0] for c in " \t|&;<>$`")


def one_argument(argv: tuple[str, ...] | None, exit_code: int | None) -> tuple[ExecWarning, ...]:
    """A warning for a shell line given as the one argument (`proxy exec -- 'npm test'`)
    that ran as a program of that name and was not found (exit 127); else none."""
    if exit_code != 127 or argv is None or not shell_line(argv):
        return ()
    import shlex

    line = argv[0]
    return (
        ExecWarning(
            code="one_argument_command",
            message=f"the one argument {line!r} ran as a program of that name, which was not found",
            hint=f"for a shell line: --shell {shlex.quote(line)} (the API's and MCP's `shell`),"
            f" or give its words apart: -- {line}",
        ),
    )

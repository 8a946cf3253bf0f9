"""The mount daemon's command line (:mod:`.daemon`): ``--home H --vault V --fork F
--mountpoint DIR [--revision COMMIT] [--backend fuse|overlay] [--idle-timeout S]
[--ready-fd N] [--foreground]``, as ops/mounts.py and fuse/forked.py write it."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any, NoReturn

# the daemon's options (as ops/mounts.py and fuse/forked.py give them) -> how a value is read
OPTIONS: dict[str, Any] = {
    "--home": str,
    "--vault": str,
    "--fork": str,
    "--mountpoint": str,
    "--revision": str,
    "--backend": str,  # fuse | overlay
    # kept warm for proxy exec: released after this many seconds without use (fuse/idle.py)
    "--idle-timeout": float,
    "--ready-fd": int,
}
REQUIRED = ("--home", "--vault", "--fork", "--mountpoint")
USAGE = (
    "usage: avfs-mount-daemon --home HOME --vault VAULT --fork FORK --mountpoint MOUNTPOINT "
    "[--revision REVISION] [--backend {fuse,overlay}] [--idle-timeout IDLE_TIMEOUT] "
    "[--ready-fd READY_FD] [--foreground]"
)


def arguments(argv: list[str] | None) -> SimpleNamespace:
    """The daemon's arguments, read by hand: argparse (with gettext and locale at its first
    parse, ~10 ms of CPU before the mount could answer) is not loaded for the one command
    line avfs itself writes. ``--opt value`` and ``--opt=value``, each once or the last one
    winning, as argparse reads them; anything else is a usage error (exit 2), as there."""
    args = SimpleNamespace(
        home=None,
        vault=None,
        fork=None,
        mountpoint=None,
        revision=None,
        backend="fuse",
        idle_timeout=None,
        ready_fd=None,
        foreground=False,
    )
    words = iter(sys.argv[1:] if argv is None else argv)
    given: set[str] = set()
    for word in words:
        name, eq, value = word.partition("=")
        if word == "--foreground":
            args.foreground = True
            continue
        read = OPTIONS.get(name) if name.startswith("--") else None
        if read is None:
            _usage(f"unrecognized arguments: {word}")
        if not eq:
            got = next(words, None)
            if got is None or (got.startswith("--") and got != "--"):
                _usage(f"argument {name}: expected one argument")
            value = got
        try:
            setattr(args, name[2:].replace("-", "_"), read(value))
        except ValueError:
            _usage(f"argument {name}: invalid {read.__name__} value: {value!r}")
        given.add(name)
    if args.backend not in ("fuse", "overlay"):
        _usage(f"argument --backend: invalid choice: {args.backend!r} (choose from 'fuse', 'overlay')")
    missing = [o for o in REQUIRED if o not in given]
    if missing:
        _usage("the following arguments are required: " + ", ".join(missing))
    return args


def _usage(message: str) -> NoReturn:
    print(f"{USAGE}\navfs-mount-daemon: error: {message}", file=sys.stderr)
    sys.exit(2)

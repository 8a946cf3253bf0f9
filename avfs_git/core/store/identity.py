"""Who a commit is by: git's order, for every commit avfs makes.

git takes a commit's author and committer, each on its own, from (``ident.c``):

1. the environment: ``GIT_AUTHOR_NAME``/``_EMAIL``/``_DATE``, ``GIT_COMMITTER_NAME``/``_EMAIL``/``_DATE``;
2. config: ``author.name``/``author.email`` (``committer.*`` for the committer), then
   ``user.name``/``user.email`` -- the vault's config first, then the global ones;
3. a default (for git a guess from the system; for avfs ``avfs <avfs@localhost>``, or the
   home's ``identity`` in ``<home>/config.json``).

So avfs' checkpoints, merges and exec commits record the same people as a ``git commit``
made in the mounted fork. The environment is read in one place, :func:`from_environ`,
called at the edge (``avfs_git.open_home``, and ``proxy exec`` with its caller's
environment); everything below takes an :class:`Identity`. An exec run for a client by
another process (a mount's daemon) sets the client's identity for its commits with
:func:`using`.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from ..errors import UsageError
from ..records import dataclass

DEFAULT = ("avfs", "avfs@localhost")

_ENV = {
    "author_name": "GIT_AUTHOR_NAME",
    "author_email": "GIT_AUTHOR_EMAIL",
    "author_date": "GIT_AUTHOR_DATE",
    "committer_name": "GIT_COMMITTER_NAME",
    "committer_email": "GIT_COMMITTER_EMAIL",
    "committer_date": "GIT_COMMITTER_DATE",
}


@dataclass(frozen=True, slots=True)
class Identity:
    """What the caller says about a commit's people (``None``: ask config, then the default).

    Dates are as git takes them in ``GIT_*_DATE``: ``@<seconds> <+hhmm>``,
    ``<seconds> <+hhmm>``, RFC 2822 or ISO 8601.
    """

    author_name: str | None = None
    author_email: str | None = None
    author_date: str | None = None
    committer_name: str | None = None
    committer_email: str | None = None
    committer_date: str | None = None

    @classmethod
    def of(cls, name: str, email: str) -> Identity:
        """The same person as author and committer (the API's ``author=(name, email)``)."""
        return cls(name, email, None, name, email, None)

    def over(self, other: Identity | None) -> Identity:
        """This identity, with ``other``'s values where this one has none."""
        if other is None:
            return self
        return Identity(
            **{f: getattr(self, f) if getattr(self, f) is not None else getattr(other, f) for f in _ENV}
        )


@dataclass(frozen=True, slots=True)
class Person:
    """One side of a commit: name, email, and when (``None``: now) with its UTC offset."""

    name: str
    email: str
    time: int | None = None
    offset_min: int = 0

    def at(self, now: int) -> Person:
        return self if self.time is not None else dataclasses.replace(self, time=now)

    def line(self) -> str:
        """``Name <email> <seconds> <+hhmm>``, as in a commit object."""
        off = self.offset_min
        sign = "-" if off < 0 else "+"
        return f"{self.name} <{self.email}> {self.time} {sign}{abs(off) // 60:02d}{abs(off) % 60:02d}"


@dataclass(frozen=True, slots=True)
class Signatures:
    """A commit's author and committer."""

    author: Person
    committer: Person

    def now(self) -> Signatures:
        """Both with a time (now where none is set)."""
        t = int(time.time())
        return Signatures(self.author.at(t), self.committer.at(t))


def from_environ(environ: Mapping[str, str] | None = None) -> Identity:
    """The identity git would take from ``environ`` (the process environment by default).

    An empty ``GIT_*_EMAIL`` is an empty email, as in git; an empty name or date counts
    as unset (git refuses an empty name; avfs falls back to config instead).
    """
    env = os.environ if environ is None else environ
    return Identity(
        **{f: (env.get(k) if f.endswith("_email") else (env.get(k) or None)) for f, k in _ENV.items()}
    )


_current: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("avfs_identity", default=None)


@contextmanager
def using(ident: Identity) -> Iterator[None]:
    """Commits made by this thread inside the block take ``ident`` before anything else
    (a daemon running an exec for a client uses the client's environment)."""
    token = _current.set(ident)
    try:
        yield
    finally:
        _current.reset(token)


def current() -> Identity | None:
    """The identity set by :func:`using` in this context, if any."""
    return _current.get()


def resolve(
    ident: Identity | None,
    config: Callable[[str], str | None],
    fallback: tuple[str, str] | None = None,
) -> Signatures:
    """Author and committer in git's order: ``ident``, then ``config(key)`` (``author.name``
    before ``user.name``...), then ``fallback``, then avfs' default.

    Raises:
        UsageError: a ``GIT_*_DATE`` git would refuse too.
    """
    ident = ident or Identity()
    default = fallback or DEFAULT

    def person(role: str) -> Person:
        name = getattr(ident, f"{role}_name") or config(f"{role}.name") or config("user.name") or default[0]
        mail = getattr(ident, f"{role}_email")
        if mail is None:  # set but empty: git records an empty email
            mail = config(f"{role}.email") or config("user.email") or default[1]
        date = getattr(ident, f"{role}_date")
        when, off = parse_date(date, f"GIT_{role.upper()}_DATE") if date else (None, 0)
        return Person(_clean(name), _clean(mail), when, off)

    return Signatures(person("author"), person("committer"))


_IDENT_JUNK = re.compile(r"[<>\n]")  # compiled at import: a served call's child starts with it


def _clean(value: str) -> str:
    """git's ident cleanup: no ``<``, ``>`` or newlines; surrounding junk trimmed."""
    value = _IDENT_JUNK.sub("", value)
    return value.strip(" .,:;\"'")


_RAW = re.compile(r"@?(\d+)(?:\s+([+-])(\d\d):?(\d\d))?")


def parse_date(text: str, what: str = "date") -> tuple[int, int]:
    """(seconds since the epoch, UTC offset in minutes) of a date git accepts in
    ``GIT_*_DATE``: its raw ``[@]<seconds> <+hhmm>``, RFC 2822, or ISO 8601."""
    s = text.strip()
    m = _RAW.fullmatch(s)
    if m and (s.startswith("@") or m.group(2) or len(m.group(1)) > 8):
        off = 0
        if m.group(2):
            off = (int(m.group(3)) * 60 + int(m.group(4))) * (-1 if m.group(2) == "-" else 1)
        return int(m.group(1)), off
    import email.utils  # ~14 ms with what it imports (socket, urllib): only for such dates

    parsed = email.utils.parsedate_tz(s)
    if parsed is not None and parsed[9] is not None:
        return int(email.utils.mktime_tz(parsed)), parsed[9] // 60
    try:
        dt = datetime.datetime.fromisoformat(s.replace(" ", "T", 1) if " " in s else s)
    except ValueError:
        raise UsageError(
            f"invalid {what} {text!r}",
            hint="use '@<seconds> +0000', RFC 2822 or ISO 8601, as git does",
            details={"value": text},
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    offset = dt.utcoffset() or datetime.timedelta(0)
    return int(dt.timestamp()), int(offset.total_seconds()) // 60

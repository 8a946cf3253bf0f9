"""A change-stream cursor (:mod:`.changes`): the position in each journal the stream reads,
as one opaque string (``avfs-w1.`` and base64url JSON), and the vault's stream id that
tells one vault's cursors from another's."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os

from ..errors import CursorInvalidError
from ..records import dataclass

PREFIX = "avfs-w1."
ID_FILE = "stream-id"  # <vault>/avfs/stream-id: which vault a cursor is of


@dataclass(slots=True)
class ForkPos:
    ident: str
    oseq: int  # the overlay journal
    useq: int  # the change log (the kernel's writes)
    reflog: int  # the branch's reflog, bytes


@dataclass(slots=True)
class Pos:
    stream: str
    scope: str | None  # a fork, or None: every fork
    op: int
    audit: int
    forks: dict[str, ForkPos]

    def encode(self) -> str:
        doc = {
            "s": self.stream,
            "f": self.scope,
            "o": self.op,
            "a": self.audit,
            "w": {k: [v.ident, v.oseq, v.useq, v.reflog] for k, v in sorted(self.forks.items())},
        }
        raw = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def copy(self) -> Pos:
        return Pos(
            self.stream,
            self.scope,
            self.op,
            self.audit,
            {k: dataclasses.replace(v) for k, v in self.forks.items()},
        )


def invalid(cursor: str, reason: str) -> CursorInvalidError:
    return CursorInvalidError(
        f"not a cursor this vault can continue from: {reason}",
        hint="pass a cursor `avfs watch` or `changes_since` handed out, or none to start from now",
        details={"cursor": cursor[:200], "reason": reason},
    )


def decode(cursor: str) -> Pos:
    if not cursor.startswith(PREFIX):
        raise invalid(cursor, f"a cursor starts with {PREFIX!r}")
    body = cursor[len(PREFIX) :]
    try:
        doc = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise invalid(cursor, f"it does not decode ({exc})") from None
    try:
        forks = {
            str(k): ForkPos(str(v[0]), nat(v[1]), nat(v[2]), nat(v[3])) for k, v in dict(doc["w"]).items()
        }
        scope = doc["f"]
        if scope is not None and not isinstance(scope, str):
            raise TypeError("scope")
        return Pos(str(doc["s"]), scope, nat(doc["o"]), nat(doc["a"]), forks)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise invalid(cursor, f"its fields are not a cursor's ({exc})") from None


def nat(v: object) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError(f"{v!r} is not a position")
    return v


def stream_id(state_dir: str) -> str:
    """The vault's stream id (made on first use: a cursor of a vault deleted and made
    again under the same name is another vault's)."""
    path = os.path.join(state_dir, ID_FILE)
    try:
        with open(path, encoding="ascii") as fh:
            got = fh.read().strip()
        if got:
            return got
    except FileNotFoundError:
        pass
    new = os.urandom(8).hex()
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(new + "\n")
    try:
        os.link(tmp, path)  # a concurrent maker's id wins
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    with open(path, encoding="ascii") as fh:
        return fh.read().strip()

"""The ``object-info`` answer read in large chunks and walked in memory
(core/store/objectinfo.py ``_answer``) against the packets a server writes, however the
stream cuts them; and the request made in one join against one packet per id."""

from __future__ import annotations

import io

import pytest

from avfs_git.core.store import objectinfo


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``n`` bytes a read (a socket's short reads)."""

    def __init__(self, data: bytes, n: int) -> None:
        self.data, self.n, self.at = data, n, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        chunk = self.data[self.at : self.at + min(self.n, len(b))]
        b[: len(chunk)] = chunk
        self.at += len(chunk)
        return len(chunk)


def _pkt(text: bytes) -> bytes:
    return b"%04x" % (len(text) + 4) + text


ANSWER = (
    _pkt(b"size")
    + _pkt(b"a" * 40 + b" 12")
    + _pkt(b"b" * 40 + b" ")  # (one the server does not have: no size)
    + _pkt(b"c" * 40 + b" 7\n")  # (a server that ends its lines)
    + _pkt(b"d" * 40 + b" 1234567890123")
    + b"0000"
    + b"0031oid trailing bytes of another conversation"
)


ASKED = ["a" * 40, "b" * 40, "c" * 40, "d" * 40]


@pytest.mark.parametrize("n", [1, 3, 4, 5, 7, 45, 1 << 16])
def test_the_answer_read_in_chunks_is_every_size_the_server_gave(n: int) -> None:
    """However the reads cut the packets, the sizes are the server's (one without a size
    left out), up to the flush and not past it."""
    got = objectinfo._answer(io.BufferedReader(Trickle(ANSWER, n), buffer_size=max(n, 8)), ASKED)
    assert got == {"a" * 40: 12, "c" * 40: 7, "d" * 40: 1234567890123}


def test_an_answer_cut_short_is_an_eof() -> None:
    with pytest.raises(EOFError):
        objectinfo._answer(io.BufferedReader(Trickle(ANSWER[:60], 7)), ASKED)


def test_an_answer_that_does_not_end_is_refused() -> None:
    """A server that sends lines for ever (ids not asked for, the same one again) is
    refused once it has sent more than a line per id asked could be, not read on until
    the timeout with every line kept (tests/test_adv_hostile.py: a hostile remote)."""
    endless = _pkt(b"size") + _pkt(b"e" * 40 + b" 1") * 10_000 + b"0000"
    with pytest.raises(ValueError, match="longer than"):
        objectinfo._answer(io.BufferedReader(Trickle(endless, 1 << 16)), ASKED)
    assert objectinfo._answer(io.BufferedReader(Trickle(endless, 1 << 16)), ["e" * 40] * 10_000)


def test_the_request_made_in_one_join_is_a_packet_per_id() -> None:
    """The request for SHA-1 ids (one join) and for ids of another length (a packet each)
    are git's pkt-lines: ``command=object-info``, a delimiter, ``size``, an ``oid`` line
    per id, a flush."""
    for ids in (["a" * 40, "0123456789" * 4], ["e" * 64, "f" * 64], []):
        want = _pkt(b"command=object-info\n") + b"0001" + _pkt(b"size\n")
        want += b"".join(_pkt(b"oid " + o.encode() + b"\n") for o in ids) + b"0000"
        assert objectinfo._request(ids) == want

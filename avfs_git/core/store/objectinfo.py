"""Blob sizes from a git server without fetching the blobs: git's protocol v2
``object-info`` command (gitprotocol-v2), asked by :mod:`.promisor` for a lazy vault's size
cache (docs/lazy.md "Mounting a lazy fork: sizes before contents")."""

from __future__ import annotations


def remote_sizes(url: str, oids: list[str], timeout: float) -> dict[str, int] | None:
    """The sizes of ``oids`` on the server at ``url``, asked with git's protocol v2
    ``object-info`` command (gitprotocol-v2; ``git upload-pack`` offers it with
    ``transfer.advertiseObjectInfo``). Only ``git://`` URLs are asked (no credentials on
    that transport); None when the server cannot say or cannot be reached."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "git" or not parts.hostname:
        return None
    port = parts.port or 9418
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout) as sock:
            fh = sock.makefile("rwb")
            host = f"{parts.hostname}:{port}".encode()
            fh.write(_pkt(b"git-upload-pack " + parts.path.encode() + b"\0host=" + host + b"\0\0version=2\0"))
            fh.flush()
            caps = []
            while (line := _read_pkt(fh)) is not None:
                caps.append(line.strip())
            if b"object-info" not in caps:
                return None
            body = [_pkt(b"command=object-info\n"), b"0001", _pkt(b"size\n")]
            body += [_pkt(b"oid " + o.encode() + b"\n") for o in oids]
            fh.write(b"".join(body) + b"0000")
            fh.flush()
            out: dict[str, int] = {}
            while (line := _read_pkt(fh)) is not None:
                oid, _, size = line.strip().partition(b" ")
                if size.isdigit() and len(oid) == 40:
                    out[oid.decode()] = int(size)
    except (OSError, ValueError, EOFError):
        return None
    return out if len(out) == len(oids) else None


def _pkt(data: bytes) -> bytes:
    return b"%04x" % (len(data) + 4) + data


def _read_pkt(fh: object) -> bytes | None:
    """One pkt-line's payload; None for a flush or delimiter packet."""
    read = fh.read  # type: ignore[attr-defined]
    head = read(4)
    if len(head) < 4:
        raise EOFError("the server closed the connection")
    n = int(head, 16)
    if n < 4:
        return None
    data: bytes = read(n - 4)
    if len(data) < n - 4:
        raise EOFError("the server closed the connection")
    return data

"""One entry of a policy's ``[defaults] network_allow``, a host pattern: read by
:mod:`.config` when it validates a policy file and by the network proxy (``proxy/netproxy.py``)
when it builds what a filtered command may reach."""

from __future__ import annotations

import re

_HOST_NAME = re.compile(r"^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")


def host_pattern(text: str) -> tuple[str, int | None]:
    """One entry of ``[defaults] network_allow`` as (host, port; None: any port): a host
    name or IPv4 address, ``*.domain`` (the names under it), ``[IPv6]``, each optionally
    with ``:port``. Lowercased, a trailing dot dropped.

    Raises:
        ValueError: not such an entry (says why).
    """
    if not isinstance(text, str) or not text or len(text) > 260:
        raise ValueError(f"{text!r} is not a host name")
    host, port = text.lower(), None
    if host.startswith("["):
        end = host.find("]")
        if end < 0 or (host[end + 1 :] and not host[end + 1 :].startswith(":")):
            raise ValueError(f"{text!r}: an IPv6 address is written [ADDRESS] or [ADDRESS]:PORT")
        name, port = host[1:end], host[end + 2 :] if host[end + 1 :] else None
        if not name or any(c not in "0123456789abcdef:." for c in name):
            raise ValueError(f"{text!r} is not an IPv6 address")
    else:
        name, colon, p = host.partition(":")
        port = p if colon else None
        name = name.rstrip(".")
        if not _HOST_NAME.fullmatch(name):  # (`match`: its `$` took a trailing newline)
            raise ValueError(f"{text!r} is not a host name, an address or *.domain")
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
        return name, int(port)
    return name, None

"""Contents of a ``.gitmodules`` file git refuses: they live in the workspace, never in a
checkpoint.

``git fsck`` reads every blob a tree names ``.gitmodules`` (at any depth, and under the
NTFS/HFS+ synonyms :func:`.gitnames.is_gitmodules` knows) as git config and refuses
(``fsck.c`` ``fsck_gitmodules_fn``, errors even without ``--strict``):

- ``gitmodulesName``: a ``submodule.<name>.*`` whose name is empty or has ``..`` as a
  component (``/`` or ``\\`` separated; ``submodule-config.c`` ``check_submodule_name``);
- ``gitmodulesUrl``: a ``url`` starting with ``-``; a relative or ``git://`` one with a
  newline once %-decoded, or whose leading ``../`` are followed by ``:`` or ``/``; an
  http(s)/ftp(s) one (also as ``http::...``) with no host or a newline in a part
  (``credential_from_url_gently``);
- ``gitmodulesPath``: a ``path`` starting with ``-``;
- ``gitmodulesUpdate``: an ``update = !command``;
- ``gitmodulesLarge``: a blob too large for fsck to load (past ``core.bigFileThreshold``).

A blob git cannot parse as config (``gitmodulesParse``) is only an *info* for fsck (a
warning, even with ``--strict``, and ``receive.fsckObjects`` takes it), so it is recorded;
what comes before the first error in it is checked, as git does. The parser here is a port
of git 2.39's ``config.c`` (``git_parse_source`` and the functions it calls) reading from
memory, quirks included: git reads the bytes as ``char``, which is signed on x86, so
there a byte 0xff reads as the end of the input and a UTF-8 byte order mark is not skipped;
:func:`refusal` refuses what either reading refuses (a remote may run on either kind).

A differential test (``tests/test_gitmodules.py``) compares :func:`problems` with
``git fsck --strict`` over many contents, git's own test cases among them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

GITMODULES_CONTENT = "gitmodules_content"
# fsck reads a blob no larger than this (core.bigFileThreshold's default); past it:
# gitmodulesLarge
LARGE = 512 * 1024 * 1024

_EOF = -1
_LF, _CR, _TAB, _SP = 0x0A, 0x0D, 0x09, 0x20
_BOM = b"\xef\xbb\xbf"
_SPACE = frozenset(b" \t\n\r")  # git's sane_ctype isspace (not \v, \f)


def _isspace(c: int) -> bool:
    return (c & 0xFF) in _SPACE


def _isalpha(c: int) -> bool:
    c &= 0xFF
    return 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A


def _iskeychar(c: int) -> bool:
    c &= 0xFF
    return _isalpha(c) or 0x30 <= c <= 0x39 or c == 0x2D


def _tolower(c: int) -> int:
    c &= 0xFF
    return c + 0x20 if 0x41 <= c <= 0x5A else c


class _Bad(Exception):
    """The config cannot be parsed from here on (git: "bad config line")."""


class _Source:
    """git's ``config_source`` over a buffer (``config_buf_fgetc``, ``get_next_char``)."""

    __slots__ = ("buf", "eof", "pos", "signed")

    def __init__(self, buf: bytes, signed: bool) -> None:
        self.buf, self.pos, self.eof, self.signed = buf, 0, False, signed

    def _fgetc(self) -> int:
        if self.pos < len(self.buf):
            c = self.buf[self.pos]
            self.pos += 1
            return c - 256 if self.signed and c >= 0x80 else c
        return _EOF

    def next(self) -> int:
        c = self._fgetc()
        if c == _CR:
            c = self._fgetc()
            if c != _LF:
                if c != _EOF:
                    self.pos -= 1
                c = _CR
        if c == _EOF:
            self.eof = True  # (it stays set: git reads on after a 0xff byte)
            c = _LF
        return c


def _parse_value(s: _Source) -> bytes:
    out = bytearray()
    quote = comment = False
    space = 0
    while True:
        c = s.next()
        if c == _LF:
            if quote:
                raise _Bad
            return bytes(out)
        if comment:
            continue
        if _isspace(c) and not quote:
            if out:
                space += 1
            continue
        if not quote and c in (0x3B, 0x23):  # ';' '#'
            comment = True
            continue
        out += b" " * space
        space = 0
        if c == 0x5C:  # '\\'
            c = s.next()
            if c == _LF:
                continue
            esc = {0x74: 0x09, 0x62: 0x08, 0x6E: 0x0A, 0x5C: 0x5C, 0x22: 0x22}.get(c)  # t b n \ "
            if esc is None:
                raise _Bad  # an unknown escape
            out.append(esc)
            continue
        if c == 0x22:  # '"'
            quote = not quote
            continue
        out.append(c & 0xFF)


def _get_value(s: _Source, key: bytearray) -> bytes | None:
    """The rest of a key's name (appended to ``key``) and its value (None: no ``=``)."""
    while True:
        c = s.next()
        if s.eof or not _iskeychar(c):
            break
        key.append(_tolower(c))
    while c in (_SP, _TAB):
        c = s.next()
    value = None
    if c != _LF:
        if c != 0x3D:  # '='
            raise _Bad
        value = _parse_value(s)
    return value


def _get_base_var(s: _Source, name: bytearray) -> None:
    while True:
        c = s.next()
        if s.eof:
            raise _Bad
        if c == 0x5D:  # ']'
            return
        if _isspace(c):
            # [section "subsection"]
            while True:
                if c == _LF:
                    raise _Bad
                c = s.next()
                if not _isspace(c):
                    break
            if c != 0x22:
                raise _Bad
            name.append(0x2E)
            while True:
                c = s.next()
                if c == _LF:
                    raise _Bad
                if c == 0x22:
                    break
                if c == 0x5C:
                    c = s.next()
                    if c == _LF:
                        raise _Bad
                name.append(c & 0xFF)
            if s.next() != 0x5D:
                raise _Bad
            return
        if not _iskeychar(c) and c != 0x2E:
            raise _Bad
        name.append(_tolower(c))


def parse(data: bytes, fn: Callable[[bytes, bytes | None], None], *, signed: bool = True) -> bool:
    """Call ``fn(name, value)`` for each entry of config ``data`` as git does
    (``git_config_from_mem``): the name lowercased but for a subsection, the value None for
    a key without ``=``, both cut at a NUL (git passes C strings). False when git stops at a
    line it cannot parse (``fn`` has seen the entries before it); ``signed``: read bytes as
    a signed ``char``, as git does on x86. (Each name is made whole: :func:`sections` for a
    caller that reads many keys of a long section.)"""

    def entry(section: bytes, key: bytes, value: bytes | None) -> None:
        fn((section + key).split(b"\0", 1)[0], None if value is None else value.split(b"\0", 1)[0])

    return sections(data, entry, signed=signed)


def sections(data: bytes, fn: Callable[[bytes, bytes, bytes | None], None], *, signed: bool = True) -> bool:
    """:func:`parse`, each entry given as ``fn(section, key, value)``: its section's name
    with the dot after it (one bytes object for every key of the section: git's name is
    ``section + key``), its key, its value (None: no ``=``; not cut at a NUL). git builds a
    name in place per key; a copy of the whole name per key made a 654 KB ``.gitmodules``
    of one 494 KB section and 40,000 keys (libgit2's ``config-oom`` fixture) take 56 s and
    gigabytes here, where ``git fsck`` takes 0.07 s (the twenty-seventh round, realdata2)."""
    s = _Source(data, signed)
    var = bytearray()
    section = b""
    comment = False
    bom = 0  # how much of a byte order mark was read; -1: none
    try:
        while True:
            c = s.next()
            if 0 <= bom < len(_BOM):
                if c == _BOM[bom]:
                    bom += 1
                    continue
                if bom:
                    return False  # a partial byte order mark
                bom = -1
            if c == _LF:
                if s.eof:
                    return True
                comment = False
                continue
            if comment:
                continue
            if _isspace(c):
                continue
            if c in (0x23, 0x3B):  # '#' ';'
                comment = True
                continue
            if c == 0x5B:  # '['
                del var[:]
                _get_base_var(s, var)
                if not var:
                    return False
                var.append(0x2E)
                section = bytes(var)
                continue
            if not _isalpha(c):
                return False
            key = bytearray((_tolower(c),))
            value = _get_value(s, key)
            fn(section, bytes(key), value)
    except _Bad:
        return False


def _url_decode(url: bytes) -> bytes:
    """git's ``url_decode``: %XX decoded (not %00) after the first ':' (the part before it,
    a scheme, is kept as it is)."""
    colon = url.find(b":")
    head, rest = (url[:colon], url[colon:]) if colon > 0 else (b"", url)
    return head + re.sub(rb"%([0-9a-fA-F]{2})", lambda m: m.group(0) if m.group(1) == b"00" else bytes([int(m.group(1), 16)]), rest)  # fmt: skip


def _dotdots(url: bytes) -> tuple[int, bytes]:
    """(how many leading ``../``, what follows them and any ``./``); either separator."""
    n = 0
    while True:
        if url[:2] == b".." and url[2:3] in (b"/", b"\\"):
            n += 1
            url = url[3:]
        elif url[:1] == b"." and url[1:2] in (b"/", b"\\"):
            url = url[2:]
        else:
            return n, url


def _bad_http_url(url: bytes) -> bool:
    """git 2.39's ``credential_from_url_gently`` refuses ``url``, or finds no host."""
    proto_end = url.find(b"://")
    if proto_end <= 0:
        return True
    cp = url[proto_end + 3 :]
    at, colon = cp.find(b"@"), cp.find(b":")
    m = re.search(rb"[/?#]", cp)
    slash = m.start() if m else len(cp)
    parts = [url[:proto_end]]
    if at < 0 or slash <= at:
        host = 0
    elif colon < 0 or at <= colon:
        parts.append(_url_decode(cp[:at]))
        host = at + 1
    else:
        parts += [_url_decode(cp[:colon]), _url_decode(cp[colon + 1 : at])]
        host = at + 1
    hostname = _url_decode(cp[host:slash])
    parts.append(hostname)
    path = cp[slash:].lstrip(b"/")
    if path:
        parts.append(_url_decode(path))
    return any(b"\n" in p for p in parts) or not hostname


def bad_url(url: bytes) -> bool:
    """git's ``check_submodule_url`` (2.39) refuses ``url``."""
    if url[:1] == b"-":
        return True
    if url[:2] in (b"./", b".\\") or url[:3] in (b"../", b"..\\") or url.startswith(b"git://"):
        if b"\n" in _url_decode(url):
            return True
        n, rest = _dotdots(url)
        return n > 0 and rest[:1] in (b":", b"/")
    for prefix in (b"http::", b"https::", b"ftp::", b"ftps::"):
        if url.startswith(prefix):
            return _bad_http_url(url[len(prefix) :])
    if url.startswith((b"http://", b"https://", b"ftp://", b"ftps://")):
        return _bad_http_url(url)
    return False


def bad_name(name: bytes) -> bool:
    """git's ``check_submodule_name`` refuses ``name`` (empty, or ``..`` as a component)."""
    return not name or b".." in re.split(rb"[/\\]", name)


def _show(b: bytes) -> str:
    text = b.decode("utf-8", "backslashreplace")
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)
    return text if len(text) <= 80 else text[:77] + "..."


def problems(data: bytes, *, signed: bool = True) -> list[tuple[str, str]]:
    """What ``git fsck`` says of ``data`` as a ``.gitmodules`` blob: (message id, message),
    in its order, ``gitmodulesParse`` (not an error) last when it cannot parse the whole;
    empty when it takes it. ``signed``: see :func:`parse`."""
    if len(data) > LARGE:
        return [("gitmodulesLarge", ".gitmodules too large to parse")]
    out: list[tuple[str, str]] = []
    # per section (the same bytes object for all its keys): the key when a NUL in the
    # section cut the name before it (git's C string), and git's message when it refuses
    # the submodule's name; None: not a submodule's
    seen: list[tuple[bytes, tuple[bytes | None, str | None] | None]] = []

    def submodule(section: bytes) -> tuple[bytes | None, str | None] | None:
        var = section.split(b"\0", 1)[0]
        cut = len(var) < len(section)
        if not var.startswith(b"submodule."):
            return None
        rest = var[len(b"submodule") :] if cut else var[len(b"submodule") : -1] + b"."
        dot = rest.rfind(b".")
        if dot == 0:
            return None  # no subsection
        name = rest[1:dot]
        refused = f"disallowed submodule name: {_show(name)}" if bad_name(name) else None
        return (rest[dot + 1 :] if cut else None), refused

    def entry(section: bytes, key: bytes, value: bytes | None) -> None:
        if not seen or seen[-1][0] is not section:
            seen[:] = [(section, submodule(section))]
        sub = seen[-1][1]
        if sub is None:
            return
        cut_key, refused = sub
        if refused is not None:
            out.append(("gitmodulesName", refused))
        if value is None:
            return
        value = value.split(b"\0", 1)[0]
        if cut_key is not None:
            key = cut_key
        if key == b"url" and bad_url(value):
            out.append(("gitmodulesUrl", f"disallowed submodule url: {_show(value)}"))
        if key == b"path" and value[:1] == b"-":
            out.append(("gitmodulesPath", f"disallowed submodule path: {_show(value)}"))
        if key == b"update" and value[:1] == b"!":
            out.append(("gitmodulesUpdate", f"disallowed submodule update setting: {_show(value)}"))

    if not sections(data, entry, signed=signed):
        out.append(("gitmodulesParse", "could not parse gitmodules blob"))
    return out


def _refused(found: list[tuple[str, str]]) -> tuple[str, str]:
    first: dict[str, str] = {}
    for i, m in found:
        first.setdefault(i, m)  # each message id once, with its first message
    said = "; ".join(f"{i}: {m}" for i, m in first.items())
    return GITMODULES_CONTENT, f"git fsck refuses this .gitmodules ({said})"


# (kind, reason) of a .gitmodules larger than LARGE
TOO_LARGE = _refused([("gitmodulesLarge", ".gitmodules too large to parse")])


def refusal(data: bytes) -> tuple[str, str] | None:
    """(kind, reason) when ``git fsck`` refuses ``data`` as a ``.gitmodules`` blob (with a
    signed or an unsigned ``char``); None when it takes it."""
    found = [p for p in problems(data) if p[0] != "gitmodulesParse"]
    if not found and (b"\xff" in data or data.startswith(_BOM)):
        found = [p for p in problems(data, signed=False) if p[0] != "gitmodulesParse"]
    return _refused(found) if found else None

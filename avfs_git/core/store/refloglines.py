"""One reflog line, read as git reads it (``refs/files-backend.c``
``show_one_reflog_ent``): ``OLD SP NEW SP identity> SP TIME SP ZONE [TAB] MESSAGE``.

git passes over a line it finds corrupt (``git reflog`` shows no entry for it): an id
that is not ``hexsz`` hex digits followed by a space, no ``>`` followed by a space, a
time that ``strtoumax`` reads as 0 (none, ``0``, a word), a zone that is not a sign and
four digits. Before the thirty-fourth round (changes2), avfs checked the zone's first
digit alone, read any id, and read a time of 0 or of a word as an entry (time 0), and a
float's spelling (``1e9``, ``inf``, ``nan``) as that number.
"""

from __future__ import annotations

_HEX = frozenset("0123456789abcdefABCDEF")
_CSPACE = " \t\n\v\f\r"  # C's isspace, which strtoumax skips
_UMAX = (1 << 64) - 1


def _oid(text: str, at: int, hexsz: int) -> bool:
    end = at + hexsz
    return len(text) > end and text[end] == " " and all(c in _HEX for c in text[at:end])


def _timestamp(text: str, at: int) -> tuple[int, int]:
    """``strtoumax(text + at, &end, 10)``: (value, end); (0, at) where no digit is read."""
    i = at
    while i < len(text) and text[i] in _CSPACE:
        i += 1
    neg = i < len(text) and text[i] == "-"
    if i < len(text) and text[i] in "+-":
        i += 1
    j = i
    while j < len(text) and "0" <= text[j] <= "9":
        j += 1
    if j == i:
        return 0, at
    value = min(int(text[i:j]), _UMAX)  # (beyond: ERANGE, UINTMAX_MAX)
    if neg and value != _UMAX:
        value = (_UMAX + 1 - value) & _UMAX  # (strtoumax negates in the unsigned type)
    return value, j


def reflog_entry(line: str, hexsz: int | None = None) -> tuple[str, str, float, str] | None:
    """(old id, new id, time, message) of one reflog line (its newline taken off), the
    ids in lower case; None where git finds no entry. ``hexsz``: the repository's id
    length (None: 40 or 64, the two ids of one length). The identity ends at the first
    ``>``, the message begins after the tab that follows the zone (a committer named with
    a tab, which git writes as it is, is an entry: realdata9); a NUL ends the line, as it
    ends git's C string (and git's message then loses its last character, where it means
    to drop the newline: ``reflog-walk.c`` ``get_reflog_message``)."""
    cut = "\0" in line
    line = line.split("\0", 1)[0]
    size = hexsz if hexsz is not None else (64 if line[40:41] != " " else 40)
    if not _oid(line, 0, size) or not _oid(line, size + 1, size):
        return None
    p = 2 * size + 2
    gt = line.find(">", p)
    if gt < 0 or line[gt + 1 : gt + 2] != " ":
        return None
    stamp, end = _timestamp(line, gt + 2)
    zone = line[end : end + 6]
    if not stamp or len(zone) < 6 or zone[0] != " " or zone[1] not in "+-":
        return None
    if not all("0" <= c <= "9" for c in zone[2:]):
        return None
    msg = end + 7 if line[end + 6 : end + 7] == "\t" else end + 6
    message = line[msg:-1] if cut else line[msg:]
    return line[:size].lower(), line[size + 1 : 2 * size + 1].lower(), stamp, message

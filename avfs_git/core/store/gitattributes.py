"""Contents of a ``.gitattributes`` file git refuses: they live in the workspace, never in a
checkpoint.

Since 2.39.1 (CVE-2022-23521, an overflow in git's attribute parser) ``git fsck`` checks
every blob a tree names ``.gitattributes`` (at any depth, and under the NTFS/HFS+ synonyms
:func:`.gitnames.is_gitattributes` knows) and refuses (``fsck.c`` ``fsck_blob``, errors
even without ``--strict``):

- ``gitattributesLineLength``: a line of :data:`MAX_LINE` bytes or more. fsck reads the
  blob as a C string: a line runs up to a ``\\n`` (a ``\\r`` before it counts), and nothing
  after the first NUL byte is read at all;
- ``gitattributesLarge``: a blob larger than :data:`LARGE` (``ATTR_MAX_FILE_SIZE``).

A ``.gitattributes`` that is a directory (``gitattributesBlob``) is refused by name
(:mod:`.gitnames`); one that is a symbolic link is only an info for fsck, left out by name
too (git never reads through it).

A differential test (``tests/test_gitattributes.py``) compares :func:`refusal` with
``git fsck --strict`` over many contents.
"""

from __future__ import annotations

GITATTRIBUTES_CONTENT = "gitattributes_content"
# attr.h ATTR_MAX_LINE_LENGTH: a line this long or longer is refused
MAX_LINE = 2048
# attr.h ATTR_MAX_FILE_SIZE: a blob larger than this is refused
LARGE = 100 * 1024 * 1024

TOO_LARGE = (
    GITATTRIBUTES_CONTENT,
    f"git fsck refuses this .gitattributes (gitattributesLarge: larger than {LARGE} bytes)",
)


def long_line(data: bytes) -> int | None:
    """The 1-based number of the first line fsck finds too long in ``data``, or None."""
    text = data.split(b"\0", 1)[0]
    start, n = 0, 1
    while True:
        end = text.find(b"\n", start)
        if end < 0:
            end = len(text)
        if end - start >= MAX_LINE:
            return n
        if end == len(text):
            return None
        start, n = end + 1, n + 1


def refusal(data: bytes) -> tuple[str, str] | None:
    """(kind, reason) when ``git fsck`` refuses ``data`` as a ``.gitattributes`` blob."""
    if len(data) > LARGE:
        return TOO_LARGE
    n = long_line(data)
    if n is None:
        return None
    return (
        GITATTRIBUTES_CONTENT,
        f"git fsck refuses this .gitattributes (gitattributesLineLength: line {n} has"
        f" {MAX_LINE} bytes or more)",
    )

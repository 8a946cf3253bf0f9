"""Patches of two blobs' bytes, by libgit2: the unified diff git prints, and its line counts
(`avfs diff`, `log -p`, `show`, `--stat`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pygit2

    from .gitstore import GitStore

# A hunk header's function context: git cuts the line to 80 bytes, then drops the cut's
# trailing blanks (xdiff's def_ff); libgit2 drops them first and cuts after, so where the
# 80th byte is a blank its header ends in one that git's has not (PyYAML 6.0.2's
# ``_yaml.pyx``: ``... size_t size) except 0:`` cut to ``... except ``)
_HUNK_TAIL = re.compile(r"(?m)^(@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@ [^\n]*?)[ \t\v\f\r]+$")


def _git_headers(text: str) -> str:
    return _HUNK_TAIL.sub(r"\1", text) if "@@ " in text else text


# A name git recorded with bytes that are not UTF-8 arrives as lone surrogates (U+DC80 to
# U+DCFF), which pygit2 cannot pass to libgit2. Each such byte B goes in as the private-use
# character U+F700 + B, which libgit2 quotes as its three UTF-8 bytes; in the patch's header
# (the lines before its first hunk: the content is never touched) those escapes are put
# back as the byte's own, as git quotes it (``"a/caf\351.txt"``).
_STANDIN = 0xF700


def _standins(path: str) -> str:
    return "".join(chr(_STANDIN + ord(ch) - 0xDC00) if 0xDC80 <= ord(ch) <= 0xDCFF else ch for ch in path)


def _bytes_back(text: str) -> str:
    cut = text.find("\n@@")
    head, hunks = (text, "") if cut < 0 else (text[:cut], text[cut:])
    for b in range(0x80, 0x100):
        quoted = "".join(f"\\{x:03o}" for x in chr(_STANDIN + b).encode("utf-8"))
        if quoted in head:
            head = head.replace(quoted, f"\\{b:03o}")
    return head + hunks


def _not_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _text(patch: pygit2.Patch) -> str:
    """The patch's bytes as text, a byte that is not UTF-8 kept as its surrogate escape (the
    output writes it back as the byte: an ISO-8859-1 line shows as git shows it). pygit2's
    ``Patch.text`` put U+FFFD there (pygit2's ``encoding`` fixture, realdata4)."""
    return (patch.data or b"").decode("utf-8", "surrogateescape")


def blob_patch(
    old: bytes | None,
    new: bytes | None,
    old_path: str,
    new_path: str,
    context: int = 3,
    *,
    indent_heuristic: bool = True,
) -> str:
    """The unified diff (git's format, libgit2's) of two blobs' contents (None: absent),
    labelled with the two paths; binary contents are named, not shown. Empty when equal.
    Hunk headers end as git's do (:data:`_HUNK_TAIL`).
    A path holding bytes that are not UTF-8 (surrogate escapes) is labelled C-quoted with
    those bytes, as git labels it.

    ``indent_heuristic``: where an added or removed block could sit at several places
    (a decorator line above a new function, the same above the next), put it where git
    does by default (``diff.indentHeuristic``, on since git 2.14; libgit2's
    ``GIT_DIFF_INDENT_HEURISTIC``, off unless asked). Without it 9 of attrs 23.2.0 ->
    24.1.0's hunks started a line apart from git's (``@@ -695,6`` for ``@@ -694,6``)."""
    import pygit2

    flag = pygit2.enums.DiffOption.INDENT_HEURISTIC if indent_heuristic else pygit2.enums.DiffOption.NORMAL
    a, b = old_path, new_path
    if _not_utf8(old_path) or _not_utf8(new_path):
        a, b = _standins(old_path), _standins(new_path)
        return _git_headers(
            _bytes_back(_text(pygit2.Patch.create_from(old, new, a, b, flag=flag, context_lines=context)))
        )
    return _git_headers(_text(pygit2.Patch.create_from(old, new, a, b, flag=flag, context_lines=context)))


def indent_heuristic(store: GitStore) -> bool:
    """Whether patches slide an added or removed block as git's indent heuristic does
    (:func:`blob_patch`): git's ``diff.indentHeuristic`` in the vault's and the person's
    config (on unless set false, as in git since 2.14). Asked once a patch, through
    libgit2, which makes the patch's files anyway (loaded first: else ``config_values``
    starts a git process)."""
    import pygit2  # noqa: F401

    from .vaultconfig import config_bool

    return config_bool(store, "diff.indentheuristic", True)


def blob_line_stats(
    old: bytes | None, new: bytes | None, old_label: str, new_label: str
) -> tuple[int, int, bool]:
    """(insertions, deletions, binary) of the diff of two blobs' contents (labels: valid
    UTF-8)."""
    import pygit2

    patch = pygit2.Patch.create_from(old, new, old_label, new_label)
    _, ins, dels = patch.line_stats
    return ins, dels, bool(patch.delta.is_binary)

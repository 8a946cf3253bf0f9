"""The header lines of `avfs diff`'s patches put as git prints them.

libgit2 makes each file's patch from the two sides' bytes (:func:`..store.gitpatch.blob_patch`),
which knows neither the files' modes nor that a side is a submodule, and says nothing of a
rename. What git prints instead, each found on libgit2's own test repositories (the
twenty-ninth round, NAME=realdata4; ``tests/test_diff_fixtures.py``):

- a submodule (gitlink) side reads ``Subproject commit ID`` and its ``index`` line names the
  commits (``submodules``, ``typechanges``: `avfs diff` stopped at "blob ... is missing");
- a path whose type changed (a file made a symlink or a submodule) is a deletion and an
  addition, two patches (``unsymlinked.git``: libgit2's one patch said ``old mode 120000``);
- an exact rename says ``similarity index 100%`` after the mode lines (``renames``), and
  one of similar content (git's own pairing and score: :mod:`..store.similar`) its own
  percentage, before the ``index`` line (:func:`similar_rename`);
- a patch without hunks (an empty file added or deleted) has no ``---``/``+++`` lines
  (``twowaymerge.git``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..types import MODE_COMMIT, Change, ChangeStatus

if TYPE_CHECKING:
    from ..store.gitstore import GitStore

_ZERO = "0" * 7
_TYPE = 0o170000


def gitlink_text(oid: str) -> bytes:
    """A submodule side as git diffs it."""
    return f"Subproject commit {oid}\n".encode()


def type_changed(c: Change) -> bool:
    """Whether ``c`` keeps its path but not its kind of file (git's ``T``)."""
    return c.old_mode is not None and c.new_mode is not None and (c.old_mode & _TYPE) != (c.new_mode & _TYPE)


def split_type_change(c: Change) -> tuple[Change, Change]:
    """A type change as git prints it: the old side deleted, then the new one added."""
    old_path = c.old_path or c.path
    gone = Change(old_path, ChangeStatus.DELETED, old_mode=c.old_mode, old_oid=c.old_oid)
    made = Change(c.path, ChangeStatus.ADDED, new_mode=c.new_mode, new_oid=c.new_oid)
    return gone, made


def binary_patch(c: Change, old_path: str) -> str:
    """git's patch of a file past :data:`.history.BIG_FILE` on either side: its header and
    "Binary files ... differ" (the modes put right by :func:`fix_modes`)."""
    a = f"a/{old_path}" if c.old_mode is not None else "/dev/null"
    b = f"b/{c.path}" if c.new_mode is not None else "/dev/null"
    lines = [f"diff --git a/{old_path} b/{c.path}"]
    if c.old_mode is None:
        lines.append("new file mode 100644")
    elif c.new_mode is None:
        lines.append("deleted file mode 100644")
    elif old_path != c.path:
        lines += [f"rename from {old_path}", f"rename to {c.path}"]
    lines.append(f"index {(c.old_oid or _ZERO)[:7]}..{(c.new_oid or _ZERO)[:7]}")
    lines.append(f"Binary files {a} and {b} differ\n")
    return "\n".join(lines)


def fix_modes(text: str, c: Change) -> str:
    """Put the real file modes into a patch header (libgit2 assumes 100644 for buffers), a
    submodule's commits into its ``index`` line, and drop ``---``/``+++`` from a patch
    without hunks (git prints them only before one)."""
    if not text:
        return text
    lines = text.split("\n")
    out: list[str] = []
    in_header = True
    hunkless = "\n@@" not in text and "\nBinary files" not in text and "\nGIT binary patch" not in text
    gitlink = MODE_COMMIT in (c.old_mode, c.new_mode)
    for i, line in enumerate(lines):
        if in_header and hunkless and line.startswith(("--- ", "+++ ")):
            continue
        if in_header and (line.startswith(("--- ", "@@", "Binary files", "GIT binary patch"))):
            in_header = False
        if in_header and i > 0:
            if line.startswith("new file mode ") and c.new_mode:
                line = f"new file mode {c.new_mode:06o}"
            elif line.startswith("deleted file mode ") and c.old_mode:
                line = f"deleted file mode {c.old_mode:06o}"
            elif line.startswith("index "):
                ids = line.split(" ")[1]
                if gitlink:
                    ids = f"{(c.old_oid or _ZERO)[:7]}..{(c.new_oid or _ZERO)[:7]}"
                if c.old_mode and c.new_mode and c.old_mode == c.new_mode:
                    line = f"index {ids} {c.new_mode:06o}"
                elif c.old_mode and c.new_mode:
                    out.append(f"old mode {c.old_mode:06o}")
                    out.append(f"new mode {c.new_mode:06o}")
                    line = f"index {ids}"
                else:
                    line = f"index {ids}"
        out.append(line)
    return "\n".join(out)


_NAMED = {7: "a", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r", 34: '"', 92: "\\"}


def git_quoted(name: str, fully: bool = True) -> str:
    """``name`` as git's header lines print it (``quote_c_style``, ``core.quotePath`` on): in
    double quotes with C escapes when it holds a control byte, ``"``, ``\\`` or a byte past
    ASCII (``".\\\\.GIT\\\\foobar"`` in libgit2's ``nasty``), else as it is. ``fully``
    False: ``core.quotePath`` off, UTF-8 past ASCII left as it is (a byte that is not
    UTF-8 still escaped: never raw to a terminal)."""
    raw = name.encode("utf-8", "surrogateescape")
    if fully:
        bad = [b < 0x20 or b >= 0x7F or b in (34, 92) for b in raw]
    else:
        bad = [b < 0x20 or b == 0x7F or b in (34, 92) for b in raw]
        for ch in name:
            if "\udc80" <= ch <= "\udcff":  # (a byte that is not UTF-8)
                return git_quoted(name, True)
    if not any(bad):
        return name
    if not fully:
        return (
            '"'
            + "".join(
                "\\" + _NAMED[ord(c)]
                if ord(c) in _NAMED
                else f"\\{ord(c):03o}"
                if ord(c) < 0x20 or ord(c) == 0x7F
                else c
                for c in name
            )
            + '"'
        )
    out = "".join(
        "\\" + _NAMED[b] if b in _NAMED else f"\\{b:03o}" if b < 0x20 or b >= 0x7F else chr(b) for b in raw
    )
    return f'"{out}"'


def path_quoting(store: GitStore) -> Callable[[str], str]:
    """How `--stat` and `--name-status` name a path: git's quoting (:func:`git_quoted`) as
    the vault's and the person's ``core.quotePath`` says (on unless set false). They
    showed names by avfs's own rule (UTF-8 and backslashes as they are), where git quotes
    them (libgit2's ``nasty``: ``".\\\\.GIT\\\\foobar"``; ``testrepo``'s names of U+53D7)."""
    from ..store.vaultconfig import config_bool

    fully = config_bool(store, "core.quotepath", True)
    return lambda name: git_quoted(name, fully)


def rename_header(c: Change, old_path: str) -> str:
    """git's header of a rename whose content is the same: modes, 100 % similar, names."""
    a, b = git_quoted("a/" + old_path), git_quoted("b/" + c.path)
    text = f"diff --git {a} {b}\n"
    if c.old_mode and c.new_mode and c.old_mode != c.new_mode:
        text += f"old mode {c.old_mode:06o}\nnew mode {c.new_mode:06o}\n"
    return (
        text + f"similarity index 100%\nrename from {git_quoted(old_path)}\nrename to {git_quoted(c.path)}\n"
    )


def similar_rename(text: str, c: Change, similar: int | None) -> str:
    """A patch of a rename by similar content (``similar``: percent; None leaves ``text``
    as it is) headed as git heads it: ``similarity index N%``, ``rename from``, ``rename
    to`` after the mode lines, before ``index``."""
    if similar is None or not text:
        return text
    lines = [ln for ln in text.split("\n") if not ln.startswith(("rename from ", "rename to "))]
    at = next((i for i, ln in enumerate(lines) if ln.startswith("index ")), 1)
    old_path = c.old_path or c.path
    lines[at:at] = [
        f"similarity index {similar}%",
        f"rename from {git_quoted(old_path)}",
        f"rename to {git_quoted(c.path)}",
    ]
    return "\n".join(lines)


def exact_rename(c: Change) -> bool:
    """Whether ``c`` is a rename of the same content (git's ``R100``)."""
    return c.status is ChangeStatus.RENAMED and c.old_oid is not None and c.old_oid == c.new_oid


def stat_name(old_path: str | None, path: str, quote: Callable[[str], str]) -> str:
    """A ``--stat`` line's name as git prints it: a rename as ``OLD => NEW`` with the
    common leading directories and trailing part in braces (``dir/{a => b}/f``; git's
    ``pprint_rename``), each name through ``quote`` (git's, :func:`git_quoted`, as
    ``core.quotePath`` says)."""
    if old_path is None or old_path == path:
        return quote(path)
    qa, qb = quote(old_path), quote(path)
    if qa != old_path or qb != path:
        return f"{qa} => {qb}"
    a, b = old_path.encode("utf-8", "surrogateescape"), path.encode("utf-8", "surrogateescape")
    pfx = 0
    i = 0
    while i < len(a) and i < len(b) and a[i] == b[i]:
        if a[i] == 0x2F:
            pfx = i + 1
        i += 1
    sfx = 0
    oa, ob = len(a) - 1, len(b) - 1
    adjust = 1 if pfx else 0
    while pfx - adjust <= oa and pfx - adjust <= ob and oa >= 0 and ob >= 0 and a[oa] == b[ob]:
        if a[oa] == 0x2F:
            sfx = len(a) - oa
        oa -= 1
        ob -= 1
    amid, bmid = max(len(a) - pfx - sfx, 0), max(len(b) - pfx - sfx, 0)
    mid = a[pfx : pfx + amid] + b" => " + b[pfx : pfx + bmid]
    out = a[:pfx] + b"{" + mid + b"}" + a[len(a) - sfx :] if pfx + sfx else mid
    return out.decode("utf-8", "surrogateescape")


def _width(text: str) -> int:
    """Columns ``text`` takes on a terminal (git's ``utf8_strwidth``: East Asian wide 2)."""
    import unicodedata  # (only where a --stat is drawn)

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _scale(it: int, width: int, most: int) -> int:
    return 0 if not it else 1 + (it * (width - 1) // most)


def stat_lines(rows: list[tuple[str, int, int, bool, int, int]], width: int = 80) -> list[str]:
    """git's ``--stat`` (``diff.c``'s ``show_stats``) for rows of (name from
    :func:`stat_name`, insertions, deletions, binary, old size, new size: both 0 when the
    content is the same): the names
    and the graph fitted to ``width`` columns (git's terminal width, 80 in a pipe), a
    binary file's sizes (``Bin 20401 -> 0 bytes``), then the totals; nothing when no file
    changed. (avfs drew at most 40 ``+`` and 40 ``-`` and left a blank after a count of 0.)"""
    if not rows:
        return []
    most = max((i + d for _, i, d, b, _o, _n in rows if not b), default=0)
    number_width = 3 if any(b for *_, b, _o, _n in rows) else 0
    bin_width = max((14 + len(str(new)) + len(str(old)) for _, _i, _d, b, old, new in rows if b), default=0)
    max_len = max(_width(name) for name, *_ in rows)
    number_width = max(number_width, len(str(most)))
    width = max(width, 16 + 6 + number_width)
    graph_width = most if most + 4 > bin_width else bin_width - 4
    name_width = max_len
    if name_width + number_width + 6 + graph_width > width:
        if graph_width > width * 3 // 8 - number_width - 6:
            graph_width = max(width * 3 // 8 - number_width - 6, 6)
        if name_width > width - number_width - 6 - graph_width:
            name_width = width - number_width - 6 - graph_width
        else:
            graph_width = width - number_width - 6 - name_width
    out: list[str] = []
    adds = dels = 0
    for name, added, deleted, binary, old, new in rows:
        prefix, room = "", name_width
        if name_width < _width(name):
            prefix, room = "...", max(name_width - 3, 0)
            while _width(name) > room:  # (git drops whole characters from the front)
                name = name[1:]
            slash = name.find("/")
            if slash >= 0:
                name = name[slash:]
        pad = " " * max(room - _width(name), 0)
        if binary:
            line = f" {prefix}{name}{pad} | {'Bin':>{number_width}}"
            out.append(f"{line} {old} -> {new} bytes" if old or new else line)
            continue
        adds, dels = adds + added, dels + deleted
        add, rem = added, deleted
        if graph_width <= most:
            total = _scale(add + rem, graph_width, most)
            if total < 2 and add and rem:
                total = 2
            if add < rem:
                add = _scale(add, graph_width, most)
                rem = total - add
            else:
                rem = _scale(rem, graph_width, most)
                add = total - rem
        count = f"{added + deleted:>{number_width}}" + (" " if added + deleted else "")
        out.append(f" {prefix}{name}{pad} | {count}" + "+" * add + "-" * rem)
    summary = " 1 file changed" if len(rows) == 1 else f" {len(rows)} files changed"
    if adds or not dels:
        summary += ", 1 insertion(+)" if adds == 1 else f", {adds} insertions(+)"
    if dels or not adds:
        summary += ", 1 deletion(-)" if dels == 1 else f", {dels} deletions(-)"
    return [*out, summary]

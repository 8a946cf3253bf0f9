"""How a user-supplied string (a path, a fork or checkpoint name, a message, an error) is
shown to a person: exactly as it is, unless the terminal would act on it.

Control characters (newline, carriage return, ESC, DEL, C1 controls), bytes that are not
UTF-8 (file names arrive with them as lone surrogates), and the characters that reorder or
hide text without being control characters (Unicode's bidirectional overrides, isolates and
marks, zero-width and invisible ones, line and paragraph separators) never reach the
terminal raw: such a string is shown C-quoted in double quotes, as git shows a path under
``core.quotePath`` (``"a\\nb"``, ``"\\033[31m"``, ``"caf\\303"``, ``"x\\342\\200\\256y"``). A
string that starts with a double quote is quoted too, so a quoted form is never mistaken
for a name that only looks like one.
Everything else, brackets and backslashes included, is shown unchanged.

rich markup is a separate concern, handled once where rich renders (:mod:`.output`).
Cheap to import: the ``proxy exec`` fast path uses it.
"""

from __future__ import annotations

import re

__all__ = ["escaped", "shown"]

# control characters, lone surrogates (bytes that are not UTF-8), and what acts on a line
# without being a control character: the bidirectional overrides, embeddings, isolates and
# marks (U+202E shows "invoice<RLO>gnp.sh" as "invoicehs.png"), and the characters that
# show nothing or end a line where they stand (a "README<ZWSP>" looked like "README")
# (the round's review: also the invisible fillers and selectors git's quoting catches as
# any byte past ASCII: Unicode's tag characters, a "README" followed by U+E0041 U+E0042
# showed as "README", the trick that smuggles text past a reader; variation selectors, the
# Hangul and Khmer fillers, the combining grapheme joiner, Mongolian's free variation
# selectors, the braille blank, the musical symbols' invisible formatting)
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5"
    "\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\u2800\u3164"
    "\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb\U0001d173-\U0001d17a\U000e0000-\U000e007f"
    "\U000e0100-\U000e01ef]"
)
_NAMED = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r"}


def _quoted_char(ch: str) -> str:
    if ch == "\\" or ch == '"':
        return "\\" + ch
    if ch in _NAMED:
        return _NAMED[ch]
    if _UNSAFE.match(ch):
        try:
            raw = ch.encode("utf-8", "surrogateescape")  # the byte a non-UTF-8 name held
        except UnicodeEncodeError:
            raw = ch.encode("utf-8", "surrogatepass")
        return "".join(f"\\{b:03o}" for b in raw)
    return ch


def shown(text: str) -> str:
    """``text`` ready for a terminal: unchanged, or C-quoted when it holds a control
    character or a byte that is not UTF-8 (or starts with ``"``)."""
    if not _UNSAFE.search(text) and not text.startswith('"'):
        return text
    return '"' + "".join(_quoted_char(ch) for ch in text) + '"'


def escaped(text: str) -> str:
    """``text`` with each control character and non-UTF-8 byte written as its C escape
    (``\\033``), nothing else changed and no quotes added: for an excerpt of a file shown
    inside a line of avfs's own (a search hit), where the terminal must not act on it."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: _quoted_char(m.group()), text)

"""Names a confined command gives its files that the person's terminal shows as another
name (the thirty-third round, NAME=attack24; docs/security.md, "Fork content").

avfs shows a name with a control character or a byte that is not UTF-8 C-quoted, as git
does (cli/text.py). But Unicode has characters that are no control character and still
act on how a terminal shows a line: the bidirectional overrides and isolates (U+202E
RIGHT-TO-LEFT OVERRIDE shows ``invoice\\u202egnp.sh`` as ``invoicehs.png``: the "Trojan
Source" trick), and characters that show nothing at all (U+200B ZERO WIDTH SPACE makes a
new ``README\\u200b`` look like the person's ``README``, modified). git quotes every byte
past ASCII in the names it prints (``core.quotePath``); avfs showed those names raw, so
the person's review (`avfs status`, `ls`, `proxy exec`'s summary) listed a change under a
name that is not its own. Now they are C-quoted as control characters are (accented
letters and other text stay as they are).

From inside a real confined `proxy exec` in a real overlay mount, then the person's
`avfs status`, `ls`, `diff`, `log`, a checkpoint's listing."""

from __future__ import annotations

import json
import re

from .test_adv_mountfiles import Scene
from .test_adv_review import scene as scene  # a mounted fork, real bwrap

# what must never reach the terminal raw: the overrides, embeddings, isolates and marks,
# and the characters that show nothing (or end a line) where they stand
HIDDEN = re.compile(
    "[\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\u3164\ufe00-\ufe0f\U000e0000-\U000e007f]"
)

# the names, as the shell makes them (printf's octal escapes of their UTF-8)
NAMES = {
    "invoice\u202egnp.sh": "invoice\\342\\200\\256gnp.sh",  # shown "invoicehs.png"
    "README\u200b": "README\\342\\200\\213",  # shown "README"
    "a\u2066b\u2069.txt": "a\\342\\201\\246b\\342\\201\\251.txt",
    # Unicode's tag characters, shown as nothing ("ASCII smuggling"; the round's review)
    "NOTES\U000e0041\U000e0042": "NOTES\\363\\240\\201\\201\\363\\240\\201\\202",
    "caf\u00e9.txt": "caf\\303\\251.txt",  # text: shown as it is
}


def _plain(text: str) -> None:
    assert not HIDDEN.search(text), f"a hidden character reached the terminal: {text!r}"


def test_names_that_hide_or_reorder_text_are_shown_quoted(scene: Scene) -> None:
    """The command makes files under those names; every listing the person reads shows
    each hiding name C-quoted (its bytes as octal escapes, as git shows it), and the
    accented one as it is; ``--json`` keeps every name exact."""
    script = "".join(f"printf 'x\\n' > \"$(printf '{esc}')\"\n" for esc in NAMES.values())
    res = scene.attack(script, commit=False)  # (left for the person's status and checkpoint)
    assert res.result is not None and res.result.exit_code == 0, res.result
    spec = ["--home", scene.home.path, "--vault", "v:main"]
    doc = json.loads(scene.cli(*spec, "--json", "status").out)
    got = {c["path"] for c in doc["changes"]}
    for listing in (("status",), ("ls",), ("diff", "--stat"), ("diff",)):
        out = scene.cli(*spec, *listing)
        assert out.code == 0, (listing, out.err)
        _plain(out.out + out.err)
    out = scene.cli(*spec, "status").out
    assert '"invoice\\342\\200\\256gnp.sh"' in out and '"README\\342\\200\\213"' in out, out
    assert '"NOTES\\363\\240\\201\\201\\363\\240\\201\\202"' in out, out
    assert "caf\u00e9.txt" in out, out
    out = scene.cli(*spec, "checkpoint", "save", "by-the-agent")
    assert out.code == 0, out.err
    _plain(out.out + out.err)
    for listing in (("log", "--stat"), ("log", "-p"), ("show",), ("diff", "HEAD~1", "HEAD")):
        out = scene.cli(*spec, *listing)
        assert out.code == 0, (listing, out.err)
        _plain(out.out + out.err)
    assert got >= set(NAMES), got  # --json: the names as they are

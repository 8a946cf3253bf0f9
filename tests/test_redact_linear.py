"""`redact` finds credentials from each ``://`` and ``@`` (linear in the text), and answers
what the two regular expressions it replaced answer (their search is quadratic: a 300 kB
argument of one `exec` held the MCP server for minutes, found by tests/test_mcp_badinput.py).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from avfs_git.core.store import redact as r


def _by_the_expressions(text: str) -> str:
    def sub(m: object) -> str:
        assert hasattr(m, "group")
        if r._keep(m.group("scheme")[:-3], m.group("cred")):
            return str(m.group(0))
        return f"{m.group('scheme')}{r.MASK}@"

    out = r._URL_CREDS.sub(sub, text)
    return r._SCP_IN_TEXT.sub(
        lambda m: r.MASK + "@" if r.looks_like_token(m.group("cred")) else m.group(0), out
    )


# the characters that decide a match, and a few that do not
PIECES = st.sampled_from(
    [
        "://",
        "@",
        ":",
        "/",
        " ",
        "a",
        "Z",
        "1",
        "+",
        ".",
        "-",
        "%",
        "_",
        "!",
        "(",
        '"',
        "?",
        "#",
        "é",
        "ghp_",
        "git",
        "ssh",
        "https",
        "x" * 21 + "1",
        "\n",
        "<",
    ]
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(PIECES, max_size=30).map("".join))
def test_redact_is_the_regular_expressions(text: str) -> None:
    assert r.redact(text) == _by_the_expressions(text)


def test_the_documented_forms() -> None:
    token = "ghp_" + "a1" * 12
    cases = {
        "fatal: https://u:p@host/x failed": "fatal: https://***@host/x failed",
        f"git push https://{token}@github.com/o/r": "git push https://***@github.com/o/r",
        "ssh://git@host/x": "ssh://git@host/x",
        f"clone {token}@host:o/r.git": "clone ***@host:o/r.git",
        "git@github.com:o/r": "git@github.com:o/r",
        "mail me: a@b.c": "mail me: a@b.c",
    }
    for text, shown in cases.items():
        assert r.redact(text) == shown == _by_the_expressions(text)


def test_a_long_argument_is_read_once() -> None:
    """300 kB runs of what made the expressions' search quadratic: they took minutes each (past
    the suite's per-test timeout), the scans a fraction of a second."""
    n = 300_000
    for text in ("x" * n, "!" * n, "x://" + "x" * n, "(x@" * (n // 3), "a://" * (n // 4)):
        assert r.redact(text + " https://u:p@h/").endswith(" https://***@h/")

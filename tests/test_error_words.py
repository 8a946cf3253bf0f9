"""An error's human line says what happened and what to do in words (docs/getting-started.md,
"Exit codes"): a person reads `avfs: error: ...` and `hint: ...`, not the JSON document, so the
text names no field of that document (`details.current`: an expect_mismatch's hint pointed
there, badinput5) and no error code as a word of its own. Every raise of every code in the
package is read (its message's and hint's literal text; a name in backticks is a literal the
person types or a field of *their* input, such as a hook event's `tool_input.command`), and
one such error is run through the CLI.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Callable
from pathlib import Path

from avfs_git.core import errors

from .conftest import CliResult

Cli = Callable[..., CliResult]

PACKAGE = Path(errors.__file__).resolve().parents[1]
CLASSES = {n: o for n, o in vars(errors).items() if isinstance(o, type) and issubclass(o, errors.AvfsError)}
CODES = {o.code for o in CLASSES.values()}
FIELD = re.compile(r"\b(?:details|error)\.[a-z_]+")
CODE_WORD = re.compile(
    r"\b(" + "|".join(sorted((c for c in CODES if "_" in c), key=len, reverse=True)) + r")\b"
)


def _calls(source: str) -> list[tuple[int, ast.Call]]:
    """(line, call) of each ``SomethingError(...)`` in ``source``: each call's own text parsed
    (a whole module's ``ast.parse``, ~290 of them, cost seconds of this suite's CPU)."""
    out = []
    for m in re.finditer(r"\b([A-Z]\w*Error)\(", source):
        if m.group(1) not in CLASSES:
            continue
        rest = io.StringIO(source[m.start() :]).readline
        depth, end = 0, None
        for tok in tokenize.generate_tokens(rest):
            if tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth -= 1
                if depth == 0:
                    end = tok.end
                    break
        assert end is not None
        lines = source[m.start() :].splitlines(keepends=True)
        text = "".join(lines[: end[0] - 1]) + lines[end[0] - 1][: end[1]]
        call = ast.parse(text, mode="eval").body
        assert isinstance(call, ast.Call)
        out.append((source.count("\n", 0, m.start()) + 1, call))
    return out


def _raises() -> list[tuple[str, str, str]]:
    """(where, code, the literal text of message and hint) of every error made in the package."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, call in _calls(path.read_text(encoding="utf-8")):
            name = call.func.id if isinstance(call.func, ast.Name) else ""
            said = call.args[:1] + [k.value for k in call.keywords if k.arg in ("message", "hint")]
            text = " ".join(
                c.value
                for a in said
                for c in ast.walk(a)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            )
            out.append((f"{path.relative_to(PACKAGE)}:{line}", CLASSES[name].code, text))
    return out


def test_no_error_s_human_text_names_a_json_field_or_an_error_code() -> None:
    raises = _raises()
    assert len({code for _, code, _ in raises}) >= 45, "the scan found too few codes: it reads nothing"
    bad = []
    for where, code, text in raises:
        words = re.sub(r"`[^`]*`", "", text)  # what is quoted is typed by the person, or theirs
        bad += [f"{where} ({code}): {m.group()!r}" for m in FIELD.finditer(words)]
        bad += [f"{where} ({code}): {m.group()!r}" for m in CODE_WORD.finditer(words)]
    assert bad == [], "\n".join(bad)


def test_an_expect_mismatch_says_in_words_what_it_holds_and_what_to_do(cli: Cli) -> None:
    assert cli("vault", "create", "v").code == 0
    assert cli("--vault", "v", "write", "f.txt", "one").code == 0
    doc = cli("--vault", "v", "--json", "write", "--expect", "absent", "f.txt", "two").json()["error"]
    r = cli("--vault", "v", "write", "--expect", "absent", "f.txt", "two")
    assert r.code == 1 and doc["code"] == "expect_mismatch"
    line, hint = r.err.splitlines()
    assert doc["details"]["current"] in line and "nothing was written" in line, line  # what happened
    assert "retry with --expect" in hint and "details" not in hint, hint  # what to do, in words
    assert cli("--vault", "v", "cat", "f.txt").out == "one"

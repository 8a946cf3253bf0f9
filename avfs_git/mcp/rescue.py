"""What the MCP SDK's stdio transport drops, answered: a request whose JSON holds a lone
surrogate escape (``"\\udcff"``, ``"\\ud800"`` without its pair).

Python's ``json`` reads such a string (a ``str`` holding the surrogate), but the SDK parses
each line with pydantic, which refuses it as invalid JSON; the transport hands the server
an exception in place of the message, and the server, having no request id, answers
nothing: the client waited for ever. Here the line is read again with ``json``; a request
(it has an ``id`` and a ``method``) gets an answer with its id, and the answer never echoes
the surrogate (pydantic cannot write it either):

- ``tools/call`` with the surrogate in an argument: the tool error an argument that is not
  Unicode text gets from the tools themselves (code ``usage``, ``details.argument``);
- anything else: the JSON-RPC error ``-32602`` (in ``params``) or ``-32600`` (in the
  request's own members), naming where the surrogate is.

A notification (no ``id``) has nobody to answer and stays dropped, as a line that is not
JSON at all does (the SDK's behaviour: JSON-RPC's parse error would need an id).

The same for a request nested deeper than the SDK's parser goes (pydantic's JSON parser
stops at 200 levels, "recursion limit exceeded"; found in the eighteenth round, NAME=attack9:
arrays 100,000 deep got no answer). Python's ``json`` cannot read those either (it raises
``RecursionError`` past ~1,000), so :func:`answer_deep` reads the line flat: one pass over
its tokens, every container below the third level read as ``null``, which leaves the
request's ``id``, ``method``, ``params.name`` and the arguments' names; the answer is the
tool error ``usage`` naming the argument (``tools/call``) or ``-32602``/``-32600``.

The other direction: a tool's result can hold a lone surrogate too (a file name in a vault
that is not UTF-8, read by Python as ``surrogateescape``). The text of a result is the avfs
document with such characters ``\\u``-escaped (:func:`~avfs_git.core.types.json_document`);
the structured copy, which the SDK writes as UTF-8, gets U+FFFD in their place
(:func:`unicode_only`), so the transport's writer never fails on it (it did: the server
exited).
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..core.errors import UsageError
from ..core.types import json_document

INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(text: str) -> int:
    """Index of the first lone surrogate in ``text``, or -1."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return -1


def _find(value: Any, where: tuple[str, ...] = ()) -> tuple[tuple[str, ...], str, int] | None:
    """The first string (key or value) holding a lone surrogate: (where, the string, index)."""
    if isinstance(value, str):
        at = _has_lone_surrogate(value)
        return (where, value, at) if at >= 0 else None
    if isinstance(value, dict):
        for k, v in value.items():
            at = _has_lone_surrogate(k)
            if at >= 0:
                return ((*where, _safe(k)), k, at)
            found = _find(v, (*where, k))
            if found is not None:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _find(v, (*where, str(i)))
            if found is not None:
                return found
    return None


def _safe(text: str) -> str:
    """``text`` with each lone surrogate written as its escape (printable, UTF-8 clean)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def unicode_only(value: Any) -> Any:
    """``value`` (a JSON-ready structure) with each lone surrogate replaced by U+FFFD."""
    if isinstance(value, str):
        return value if _has_lone_surrogate(value) < 0 else _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {unicode_only(k): unicode_only(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unicode_only(v) for v in value]
    return value


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|[^"\[\]{}]+', re.S)
_KEEP = 3  # levels read: the message, params, arguments; deeper containers read as null


def _flat(line: str) -> tuple[Any, tuple[str, ...], int] | None:
    """``line`` parsed with every container below level ``_KEEP`` read as ``null``; with
    the member path (down to level ``_KEEP``) under which it is nested deepest, and that
    depth; None when it is not JSON even so."""
    out: list[str] = []
    depth = deepest = 0
    keys: list[str | None] = []  # the member being read at each level (None: an array's)
    path: tuple[str, ...] = ()
    for m in _TOKEN.finditer(line):
        tok = m.group()
        if tok in "[{":
            depth += 1
            keys.append(None)
            if depth > deepest:
                deepest, path = depth, tuple(k for k in keys[:_KEEP] if k is not None)
            if depth <= _KEEP:
                out.append(tok)
            elif depth == _KEEP + 1:
                out.append("null")
        elif tok in "]}":
            if depth <= _KEEP:
                out.append(tok)
            depth -= 1
            keys.pop() if keys else None
        elif depth <= _KEEP:
            out.append(tok)
            if tok.startswith('"') and keys and m.end() < len(line):
                rest = line[m.end() : m.end() + 64].lstrip()
                if rest.startswith(":"):
                    try:
                        keys[-1] = json.loads(tok)
                    except ValueError:
                        return None
    try:
        return json.loads("".join(out)), path, deepest
    except (ValueError, RecursionError):
        return None


def answer_deep(line: str) -> dict[str, Any] | None:
    """The JSON-RPC answer to ``line``, a message nested deeper than the SDK's parser reads;
    None when there is nobody to answer (not a request, or not JSON at all)."""
    flat = _flat(line)
    if flat is None:
        return None
    message, where, depth = flat
    if not isinstance(message, dict) or "method" not in message or "id" not in message:
        return None
    rid = message["id"]
    if not isinstance(rid, (int, str)) or isinstance(rid, bool):
        rid = None
    said = f"nested too deep (the request reaches {depth:,} levels; the server reads 200 at most)"
    where = tuple(_safe(k)[:100] for k in where)  # echoed: UTF-8 clean, bounded
    params = message.get("params")
    if (
        message.get("method") == "tools/call"
        and where[:2] == ("params", "arguments")
        and isinstance(params, dict)
        and isinstance(params.get("name"), str)
    ):
        tool = params["name"]
        argument = where[2] if len(where) > 2 else None
        err = UsageError(
            f"`{argument}` is {said}" if argument else f"the arguments are {said}",
            hint="no tool takes arguments nested that deep; send the value flat",
            details={"tool": tool, "argument": argument},
        )
        return _tool_error(rid, err)
    code, member = _rpc_where(where)
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": f"{member} is {said}"}}


def _tool_error(rid: Any, err: UsageError) -> dict[str, Any]:
    """A ``tools/call`` answer that is the tool's own error document (as a tool's refusal)."""
    text_doc = json_document("error", {"error": err.to_dict()}).rstrip("\n")
    result = {"content": [{"type": "text", "text": text_doc}], "isError": True}
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def _rpc_where(where: tuple[str, ...]) -> tuple[int, str]:
    """(JSON-RPC's error code, the member named) for a fault at ``where`` of a request."""
    code = INVALID_PARAMS if where[:1] == ("params",) else INVALID_REQUEST
    return code, ".".join(where) or "the request"


def answer(line: str) -> dict[str, Any] | None:
    """The JSON-RPC answer (a response or an error, as a dict) to ``line``, a message the
    SDK could not parse; None when there is nothing to answer (not JSON, not a request, or
    no lone surrogate: the SDK's own refusal stands)."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or "method" not in message or "id" not in message:
        return None
    found = _find(message)
    if found is None:
        return None
    where, text, at = found
    rid = message["id"]
    if not isinstance(rid, (int, str)) or isinstance(rid, bool) or where[:1] == ("id",):
        rid = None  # not an id the client could match; JSON-RPC's answer for it is null
    char = repr(text[at])
    params = message.get("params")
    if (
        message.get("method") == "tools/call"
        and where[:2] == ("params", "arguments")
        and len(where) > 2
        and isinstance(params, dict)
        and isinstance(params.get("name"), str)
        and _has_lone_surrogate(params["name"]) < 0
    ):
        tool, argument = params["name"], where[2]
        inside = "it" if len(where) == 3 else "/".join(where[2:])  # argv/1, env/KEY
        hint = "a \\ud800-\\udfff escape in a JSON string stands only in a high-low pair"
        if tool == "write_file" and argument == "content":
            hint += '; send bytes that are not UTF-8 text with `encoding: "base64"`'
        err = UsageError(
            f"`{argument}` is not valid Unicode text: {inside} holds a lone surrogate"
            f" ({char} at character {at})",
            hint=hint,
            details={"tool": tool, "argument": argument},
        )
        return _tool_error(rid, err)
    code, member = _rpc_where(where)
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "error": {
            "code": code,
            "message": f"{member} is not valid Unicode text: it holds a lone surrogate ({char} at"
            f" character {at}); a \\ud800-\\udfff escape in a JSON string stands only in a"
            " high-low pair",
        },
    }


__all__ = ["answer", "answer_deep", "unicode_only"]

"""A failed ``==`` of large values, summarised.

Where ``CI`` is set pytest explains a failed ``assert a == b`` by pretty-printing both values in
full and running ``difflib.ndiff`` over them, which grows with the square of their size: a
150-file tree compared that way took 70 s of CPU and then hit the 300 s timeout under load
(suitetime4, thirty-seventh round) instead of saying what differed. Above :data:`LIMIT`
characters of ``repr`` the explanation is instead what differs, bounded: the keys, items or
offset where the two sides part."""

from __future__ import annotations

from typing import Any

LIMIT = 20_000  # characters of repr on both sides together
SHOWN = 10  # differences listed
CLIP = 160  # characters of one difference shown


def _clip(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= CLIP else s[:CLIP] + "..."


def _dicts(left: dict[Any, Any], right: dict[Any, Any]) -> list[str]:
    out = [f"only left: {_clip(k)}" for k in sorted(left.keys() - right.keys(), key=repr)[:SHOWN]]
    out += [f"only right: {_clip(k)}" for k in sorted(right.keys() - left.keys(), key=repr)[:SHOWN]]
    both = sorted((k for k in left.keys() & right.keys() if left[k] != right[k]), key=repr)
    out += [f"{_clip(k)}: {_clip(left[k])} != {_clip(right[k])}" for k in both[:SHOWN]]
    return out


def _sequences(left: Any, right: Any) -> list[str]:
    out = [f"lengths {len(left)} and {len(right)}"] if len(left) != len(right) else []
    at = [i for i in range(min(len(left), len(right))) if left[i] != right[i]]
    out += [f"[{i}]: {_clip(left[i])} != {_clip(right[i])}" for i in at[:SHOWN]]
    if len(at) > SHOWN:
        out.append(f"... and {len(at) - SHOWN} more items differ")
    return out


def explain(op: str, left: Any, right: Any) -> list[str] | None:
    """pytest's ``pytest_assertrepr_compare``: None (pytest's own) unless ``==`` of large values."""
    if op != "==":
        return None
    try:
        sizes = len(repr(left)), len(repr(right))
    except Exception:  # a repr that fails: pytest's own handling
        return None
    if sum(sizes) < LIMIT:
        return None
    head = f"{type(left).__name__} of {sizes[0]:,} characters == {type(right).__name__} of {sizes[1]:,}: "
    if isinstance(left, dict) and isinstance(right, dict):
        return [head + "the keys that differ", *_dicts(left, right)]
    if isinstance(left, (set, frozenset)) and isinstance(right, (set, frozenset)):
        only = [f"only left: {_clip(v)}" for v in sorted(left - right, key=repr)[:SHOWN]]
        return [
            head + "the items that differ",
            *only,
            *(f"only right: {_clip(v)}" for v in sorted(right - left, key=repr)[:SHOWN]),
        ]
    if isinstance(left, (list, tuple, str, bytes)) and isinstance(right, type(left)):
        if isinstance(left, (str, bytes)):
            at = next(
                (i for i in range(min(len(left), len(right))) if left[i] != right[i]),
                min(len(left), len(right)),
            )
            return [
                head + f"they part at offset {at:,}",
                f"left:  {_clip(left[at : at + CLIP])}",
                f"right: {_clip(right[at : at + CLIP])}",
            ]
        return [head + "the items that differ", *_sequences(left, right)]
    return [head + "(large values: not diffed)"]

"""git config as text: a value written so git reads it back whole, the sections a new
vault starts with, and the few keys a command reads of a vault's config parsed from one
``git config -z`` listing.

A git process costs 3-20 ms on a loaded machine (its start, the config lock, an fsync of
the file), and a new vault's config was written by five of them in turn (``git config``
for each key, ``git remote add``) while a `vault clone` was timed against a `git clone`
(docs/scale.md, "A lazy clone's fixed costs"). A new vault is a directory nobody else
sees yet (it is moved into place once made), so its config is written here, once, in
git's own syntax; a vault in use is written by git (its lock) or libgit2, never here.
"""

from __future__ import annotations

import os


def value(text: str) -> str:
    """``text`` written so git's config parser reads it back whole: as it is when plain,
    else double-quoted with ``\\`` and ``"`` escaped (``#`` and ``;`` start a comment, and
    spaces at either end would be dropped)."""
    if text and not any(c in text for c in '"\\#;\n') and text == text.strip():
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def origin_section(url: str, fetch: str, *, promisor_filter: str | None = None) -> str:
    """The ``[remote "origin"]`` section `git remote add origin URL` writes, with
    ``promisor`` and ``partialclonefilter`` as `git clone --filter` adds them when
    ``promisor_filter`` is given (a lazy vault: core/store/promisor.py)."""
    text = f'[remote "origin"]\n\turl = {value(url)}\n\tfetch = {value(fetch)}\n'
    if promisor_filter is not None:
        text += f"\tpromisor = true\n\tpartialclonefilter = {value(promisor_filter)}\n"
    return text


def append_new_vault(git_dir: str, text: str, *, worktree_config: bool = False) -> None:
    """Add ``text`` (whole sections) to the config `git init` just wrote in the new vault
    ``git_dir``. ``worktree_config``: turn on ``extensions.worktreeConfig`` too (with the
    repository format version 1 git requires of an extension), which the first mount of a
    fork would otherwise set with git processes on its way to answering
    (mount/worktree.py's ``enable_worktree_config``)."""
    path = os.path.join(git_dir, "config")
    with open(path, encoding="utf-8") as fh:
        current = fh.read()
    if worktree_config:
        bumped = current.replace("\trepositoryformatversion = 0\n", "\trepositoryformatversion = 1\n", 1)
        if bumped != current or "\trepositoryformatversion = 1\n" in current:
            current, text = bumped, text + "[extensions]\n\tworktreeConfig = true\n"
    if not current.endswith("\n"):
        current += "\n"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(current + text)


def parse_listing(out: str) -> list[tuple[str, str | None]]:
    """``git config -z --list`` (or ``--get-regexp``) output as (key, value) pairs in git's
    order; the key lower-cased as git prints it, the value None for a key written without
    ``=`` (which git reads as a true boolean)."""
    pairs: list[tuple[str, str | None]] = []
    for rec in out.split("\0"):
        if not rec:
            continue
        key, nl, val = rec.partition("\n")
        pairs.append((key, val if nl else None))
    return pairs


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def git_bool(val: str | None) -> bool | None:
    """A boolean config value as git reads it (``config.c`` ``git_config_bool``): no ``=``
    at all, ``true``/``yes``/``on`` true; ``false``/``no``/``off`` and the empty value false;
    else an integer (C's ``strtoimax`` base 0: ``0x1f``, ``017``; a ``k``/``m``/``g``
    unit), true unless 0. None for what git refuses ("bad boolean config value").

    Found in the thirty-fourth round (realdata9): read as one of ``true``/``yes``/``on``/``1``,
    the numbers of libgit2's own config files (``2``, ``-1``, ``1k``...) were false where git
    reads them true (``core.quotePath = 2``: names quoted by git, not by `avfs diff --stat`)."""
    if val is None:
        return True
    low = val.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off", ""):
        return False
    num = low.lstrip(" \t\n\v\f\r")  # (strtoimax skips leading space, not trailing)
    unit = num[-1:] if num[-1:] in ("k", "m", "g") else ""
    digits = num[: len(num) - len(unit)]
    sign, body = (digits[:1], digits[1:]) if digits[:1] in ("+", "-") else ("", digits)
    if not (body.isascii() and body.isalnum()):  # (Python's int takes "_" and spaces)
        return None
    try:
        if body[:2] == "0x" and len(body) > 2:
            n = int(body[2:], 16)
        elif body[:1] == "0" and len(body) > 1:
            n = int(body[1:], 8)
        elif body.isascii() and body.isdigit():
            n = int(body)
        else:
            return None
    except ValueError:
        return None
    total = -n * _UNITS[unit] if sign == "-" else n * _UNITS[unit]
    if not -(1 << 31) < total < (1 << 31):  # (git's bound: -INT_MAX, not INT_MIN)
        return None  # (git reads it as a C int: out of range is refused)
    return total != 0


def is_true(val: str | None) -> bool:
    """A boolean config value as git reads it (:func:`git_bool`; false where git refuses it)."""
    return bool(git_bool(val))

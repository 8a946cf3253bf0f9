"""What a one-liner in JavaScript (``node -e``, ``deno eval``, ``bun -e``), Perl (``perl
-e``), Ruby (``ruby -e``) or PHP (``php -r``) does to files and processes, read by a small
hand-written reader (no interpreter is run): the shell commands and programs it runs, the
paths it deletes, writes and reads when they are written as literals, and what it cannot
read. Its effects have :mod:`.pycode`'s shapes, plus ``("unparsable", why)``.

The reader is conservative. It tokenizes the code (strings, comments, regular expressions,
quote-like operators) and looks for the functions of each language that delete, write, read
or run something; anything it does not follow is ``unparsable``, never ``mutating``:

- text it cannot tokenize (an open string or comment);
- code built at run time (``eval`` of a string, ``Function``, ``vm``, ``send``, string
  callbacks such as ``array_map('unlink', ...)``, a function called through a variable, a
  table or a reference: ``fs[name](...)``, ``&$f(...)``, ``$f(...)``, ``$x->(...)``);
- one of those functions named where it is not plainly called (``const r = fs.rmSync``,
  ``fs.rmSync.call(...)``, inside a string or a regular expression it cannot follow):
  the name occurs in the text more often than the reader saw it called.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from .scriptfuncs import FS_JS, FU, JS_SPAWN_NEEDS, LOADERS, SPECS, Spec
from .scripttokens import Token, Unreadable, tokens, unescape

# (what, detail), as pycode: ("shell", text) | ("argv", [words]) | ("delete"|"write"|"read",
# path) | ("opaque", why: a path it computes) | ("dynamic", why: a command it computes) |
# ("unparsable", why: what it does cannot be read)
Effect = tuple[str, object]

MAX_CODE: Final = 100_000
LANGS: Final = ("js", "perl", "ruby", "php")


# names a module must be mentioned for (JS: a file operation named like any method)
_JS_FS_MODULES: Final = re.compile(r"""['"](?:node:)?(?:fs|fs/promises|fs-extra|graceful-fs)['"]""")
_JS_CP_MODULES: Final = re.compile(r"""['"](?:node:)?child_process['"]""")
# statement ends for a call without parentheses (perl, ruby)
_STOP_WORDS: Final = frozenset(
    {"or", "and", "if", "unless", "for", "foreach", "while", "until", "then", "do", "end"}
)


def effects(code: str, lang: str) -> list[Effect]:
    """The effects of one-liner ``code`` in ``lang`` (``js``, ``perl``, ``ruby``, ``php``)."""
    if len(code) > MAX_CODE:
        return [("unparsable", f"is longer than {MAX_CODE} characters")]
    try:
        toks = tokens(code, lang)
        return _scan(code, toks, lang)
    except Unreadable as exc:
        return [("unparsable", str(exc))]
    except RecursionError:
        return [("unparsable", "is nested too deeply")]


def _scan(code: str, toks: list[Token], lang: str) -> list[Effect]:
    """The effects of the calls in ``toks``: for each name of the language's table, whether
    it is that function (:func:`_calls_the_function`), what it does with its arguments;
    what the reader cannot follow raises ``Unreadable``."""
    specs = SPECS[lang]
    out: list[Effect] = []
    # the literal texts the reader read as commands or paths: a name in them is not a call
    consumed = [t[1] for t in toks if t[0] in ("cmd", "re") or (t[0] == "str" and not t[2])]
    pairs = _pairs(toks)
    work = [0]
    seen: dict[str, int] = {}
    fs_module = lang != "js" or _JS_FS_MODULES.search(code) is not None or "Deno." in code or "Bun." in code
    cp_module = lang != "js" or _JS_CP_MODULES.search(code) is not None or "Deno." in code or "Bun." in code
    for k, (kind, text, _interp) in enumerate(toks):
        prev = toks[k - 1] if k else ("op", "", False)
        nxt = toks[k + 1] if k + 1 < len(toks) else ("op", "", False)
        if kind != "id":
            out.extend(_literal_effects(toks, k, lang, specs))
            continue
        name = _called_name(text, nxt, lang)
        spec = specs.get(name)
        if spec is None:
            continue
        what, receivers, which = spec
        if lang == "js" and name == "exec" and cp_module:
            receivers = None  # `require('child_process').exec(...)`, `cp.exec(...)`
        receiver = toks[k - 2][1] if k >= 2 and prev[1] in (".", "::", "->") else None
        if not _calls_the_function(
            toks, k, lang, name, what, receivers, receiver, fs_module=fs_module, cp_module=cp_module
        ):
            continue
        if prev[1] in ("function", "def", "sub") or (
            kind == "id" and prev[0] == "id" and prev[1] in ("function", "def", "sub")
        ):
            raise Unreadable(f"defines its own {name}")
        seen[name] = seen.get(name, 0) + 1
        if what == "code":
            _code_call(toks, k, lang, name)
            continue
        args = _call_args(toks, k + 1, lang, pairs, work)
        if work[0] > 20 * len(toks) + 1000:
            raise Unreadable("calls more functions than avfs reads")
        if args is None:
            out.extend(_not_called(name, what, lang, prev, nxt))
            continue
        out.extend(_effect(name, what, which, args, lang))
    _names_hidden(code, seen, specs, consumed)
    _refuse_indirect_calls(code, toks, lang)
    return out


def _literal_effects(toks: list[Token], k: int, lang: str, specs: Mapping[str, Spec]) -> list[Effect]:
    """What the token ``toks[k]``, not a name, does: a backquoted command runs; a string
    that builds a ``Bun.$`` line or names a PHP function as a callback is ``Unreadable``."""
    kind, text, interp = toks[k]
    prev = toks[k - 1] if k else ("op", "", False)
    if kind == "cmd":
        return [("dynamic", "runs a command it builds") if interp else ("shell", unescape(text))]
    if kind == "str" and interp and lang == "js" and prev[1] == "$" and k >= 2 and toks[k - 2][1] == ".":
        raise Unreadable("runs a shell line it builds (Bun.$)")
    if (
        kind == "str"
        and lang == "php"
        and text in specs
        and specs[text][0] in ("shell", "argv", "delete", "write", "code")
    ):
        raise Unreadable(f"names the function {text} in a string (a callback)")
    return []


def _called_name(text: str, nxt: Token, lang: str) -> str:
    """The name a table lists for the name token ``text`` (perl's ``&f`` and
    ``CORE::f`` are ``f``); a call through a variable or a reference is ``Unreadable``."""
    if lang == "php" and text.startswith("$") and nxt[1] == "(":
        raise Unreadable(f"calls the function held by {text}")
    if (lang == "perl" and text.startswith(("&$", "&{"))) or (
        lang == "perl" and text == "&" and nxt[1] in ("{", "$")
    ):
        raise Unreadable("calls a function through a reference")
    name = text.lstrip("&") if lang == "perl" else text
    if lang == "perl" and name.startswith("CORE::"):
        name = name.rsplit("::", 1)[1]  # CORE::unlink, CORE::GLOBAL::system
    return name


def _calls_the_function(
    toks: list[Token],
    k: int,
    lang: str,
    name: str,
    what: str,
    receivers: frozenset[str] | None,
    receiver: str | None,
    *,
    fs_module: bool,
    cp_module: bool,
) -> bool:
    """Whether the name at ``toks[k]`` is the table's function, not a method of the same
    name on something else (``obj.system``, ``re.exec(s)``, ``JSON.parse``)."""
    prev = toks[k - 1] if k else ("op", "", False)
    if (
        prev[1] in (".", "->", "::")
        and receivers is None
        and lang in ("ruby", "perl")
        and what in ("run", "code")
        and name not in ("eval", "send", "public_send", "__send__", "instance_eval", "class_eval", "can")
        and receiver not in ("Kernel", "Process", "Object", "self", "CORE", "IO", "Open3")
    ):
        return False  # `obj.system`, `$x->exec`: a method of something else
    if receivers is not None:
        if receiver is None and not (lang == "ruby" and receivers is FU):
            if lang != "js" or what in ("shell",):
                return False
        elif receiver is not None and receiver not in receivers and not (lang == "js" and what != "shell"):
            return False
    if lang == "js":
        if (name in JS_SPAWN_NEEDS or name == "exec") and not cp_module:
            return False  # `re.exec(s)`, `app.run()`: not child_process
        if name == "exec" and k >= 2 and toks[k - 2][0] == "re":
            return False  # `/x/.exec(s)`
        if receivers is FS_JS and not fs_module:
            return False
        if (
            receiver is not None
            and receiver in ("JSON", "console", "Math", "Object", "Array", "String", "Promise", "Reflect")
            and what != "code"
        ):
            return False
    return True


def _code_call(toks: list[Token], k: int, lang: str, name: str) -> None:
    """A call of a function that runs code (``eval``, ``require``, ``setTimeout``...):
    returns when what it runs is plain (a literal module name, a block, a function to
    call later), else raises ``Unreadable``."""
    prev = toks[k - 1] if k else ("op", "", False)
    nxt = toks[k + 1] if k + 1 < len(toks) else ("op", "", False)
    if name == "import" and lang == "js" and nxt[1] != "(":
        return  # `import {rmSync} from 'fs'`: a declaration
    if name in LOADERS or (name == "do" and lang == "perl"):
        arg = nxt
        if lang == "perl" and name == "do" and arg[1] == "{":
            return  # do { BLOCK }
        after = toks[k + 2] if k + 2 < len(toks) else ("op", "", False)
        if arg[1] == "(" and k + 2 < len(toks):
            arg, after = toks[k + 2], (toks[k + 3] if k + 3 < len(toks) else ("op", "", False))
            if after[1] != ")":
                arg = ("op", "", False)  # more than one literal: a name it computes
        elif (after[0] == "op" and after[1] in (".", "+", "[", "(")) or after[0] == "str":
            arg = ("op", "", False)
        if arg[0] == "str" and ":" in arg[1] and not arg[1].startswith("node:"):
            raise Unreadable(f"loads code from {arg[1][:40]!r}")  # data:, https:
        if (arg[0] == "str" and not arg[2] and name in LOADERS) or (
            arg[0] == "id" and lang == "perl" and name == "require" and not arg[1].startswith("$")
        ):
            return  # require 'json' / require Foo::Bar
    if name in ("setTimeout", "setInterval", "setImmediate"):
        if nxt[1] == "(" and k + 2 < len(toks) and toks[k + 2][0] == "str":
            raise Unreadable(f"runs a string as code ({name})")
        return  # a function to call later
    if name == "eval" and lang == "perl" and nxt[1] == "{":
        return  # eval { BLOCK }: an exception catcher
    if name == "can" and lang == "perl" and prev[1] != "->":
        return
    raise Unreadable(f"runs code or calls a function it builds at run time ({name})")


def _not_called(name: str, what: str, lang: str, prev: Token, nxt: Token) -> list[Effect]:
    """A function of the table named but not called (no arguments follow): brought in by
    name (``const {rmSync} = require('fs')``: nothing), a perl or ruby delete of a
    computed path (opaque); anything else is ``Unreadable``."""
    if lang == "js" and nxt[1] in (",", "}") and prev[1] in ("{", ","):
        return []  # `const {rmSync} = require('fs')`: the name is brought in
    if lang == "js" and nxt[1] == ":" and prev[1] in ("{", ","):
        raise Unreadable(f"renames {name}")
    if lang in ("perl", "ruby") and what in ("delete",) and nxt[1] in (";", "", "}"):
        return [("opaque", f"calls {name} on a path it computes")]
    raise Unreadable(f"uses {name} in a way avfs cannot read")


def _refuse_indirect_calls(code: str, toks: list[Token], lang: str) -> None:
    """A call the token walk cannot see: a function picked from a table (JS ``t[k](``),
    called through a reference (perl ``->(``, ``&$f``) or held in a value (ruby
    ``.call``) is ``Unreadable``."""
    if lang == "js" and re.search(r"\]\s*\(", code) and _computed_call(toks):
        raise Unreadable("calls a function it picks from a table")
    if lang == "perl" and re.search(r"->\s*\(|->\s*\$|(?<!&)&\s*[$\{]", code):
        raise Unreadable("calls a function through a reference")
    if (
        lang == "ruby"
        and re.search(r"\.\s*(call|\[\])\s*\(|\.\(", code)
        and re.search(r"\b(method|proc|lambda)\b|->", code)
    ):
        raise Unreadable("calls a function it holds in a value")


def _computed_call(toks: list[Token]) -> bool:
    return any(toks[k][1] == "]" and toks[k + 1][1] == "(" for k in range(len(toks) - 1))


def _names_hidden(code: str, seen: dict[str, int], specs: Mapping[str, Spec], consumed: list[str]) -> None:
    """A function of the tables (one that is not only a method of named receivers) named
    in the text more often than the reader saw it called, outside the literals it read: in
    a comment or a construct it misread, it cannot say what runs."""
    literals = "\x00".join(consumed)
    for name, (what, receivers, _) in specs.items():
        if what == "read" or receivers is not None or name not in code:
            continue
        word = re.compile(r"(?<![\w$])" + re.escape(name) + r"(?![\w$])")
        count = len(word.findall(code)) - len(word.findall(literals))
        if count > seen.get(name, 0):
            raise Unreadable(f"names {name} where avfs cannot read what it does")


def _call_args(
    toks: list[Token], k: int, lang: str, pairs: dict[int, int], work: list[int]
) -> list[list[Token]] | None:
    """The arguments of a call whose name ends before ``toks[k]``: in parentheses, or (perl,
    ruby) up to the end of the statement; None when the name is not called."""
    if k < len(toks) and toks[k][1] == "(":
        end = pairs.get(k)
        if end is None:
            raise Unreadable("a parenthesis does not close")
        work[0] += end - k
        return _split_args(toks[k + 1 : end])
    if lang not in ("perl", "ruby"):
        return None
    if k >= len(toks):
        return None
    kind, text, _ = toks[k]
    if kind == "op" and text not in ("[", "<", "-", "\\"):
        return None
    if kind == "id" and text in _STOP_WORDS:
        return None
    j = k
    depth = 0
    while j < len(toks):
        work[0] += 1
        t = toks[j][1]
        if toks[j][0] == "op":
            if t in "([{":
                depth += 1
            elif t in ")]}":
                if depth == 0:
                    break
                depth -= 1
            elif t == ";" and depth == 0:
                break
        elif toks[j][0] == "id" and t in _STOP_WORDS and depth == 0:
            break
        j += 1
    return _split_args(toks[k:j])


def _pairs(toks: list[Token]) -> dict[int, int]:
    """The index of the closing bracket of each opening one (a missing one: not in it)."""
    out: dict[int, int] = {}
    stack: list[int] = []
    for j, t in enumerate(toks):
        if t[0] != "op":
            continue
        if t[1] in "([{":
            stack.append(j)
        elif t[1] in ")]}" and stack:
            out[stack.pop()] = j
    return out


def _split_args(toks: list[Token]) -> list[list[Token]]:
    out: list[list[Token]] = [[]]
    depth = 0
    for t in toks:
        if t[0] == "op" and t[1] in "([{":
            depth += 1
        elif t[0] == "op" and t[1] in ")]}":
            depth -= 1
        if t[0] == "op" and t[1] in (",", "=>") and depth == 0:
            out.append([])
            continue
        out[-1].append(t)
    return [a for a in out if a]


def _literal(arg: list[Token], lang: str) -> str | None:
    """The path or text an argument is, when it is a literal (``'x'``, ``glob "x"``,
    ``<*.txt>``, ``Pathname.new('x')``); else None."""
    toks = arg
    while toks and toks[0][1] in ("(", "[") and toks[-1][1] in (")", "]"):
        toks = toks[1:-1]
    if len(toks) == 1 and toks[0][0] == "str" and not toks[0][2]:
        return toks[0][1]
    if len(toks) == 1 and toks[0][0] == "re" and lang == "perl":
        return toks[0][1]  # <*.txt>
    if toks and toks[0][0] == "id" and toks[0][1] in ("glob", "bsd_glob") and len(toks) >= 2:
        return _literal(toks[1:], lang)
    return None


def _list(arg: list[Token], lang: str) -> list[str] | None:
    """A literal list (``['ls', '-l']``, ``qw(ls -l)``) of strings; else None."""
    toks = arg
    if not toks or toks[0][1] not in ("[", "("):
        return None
    items = _split_args(toks[1:-1])
    words = [_literal(a, lang) for a in items]
    if not words or any(w is None for w in words):
        return None
    return [w for w in words if w is not None]


def _effect(name: str, what: str, which: str, args: list[list[Token]], lang: str) -> list[Effect]:
    if what in ("shell", "run", "argv"):
        return _run(name, what, args, lang)
    if what == "open":
        return _open(name, args, lang)
    if not args:
        return [("opaque", f"calls {name} on a path it computes")]
    chosen = {"first": args[:1], "last": args[-1:], "all": args, "rest": args[1:]}[which]
    out: list[Effect] = []
    for a in chosen:
        path = _literal(a, lang)
        if path is None:
            if lang == "js" and a and a[0][1] == "{":
                continue  # an options object
            return [("opaque", f"calls {name} on a path it computes")]
        out.append((what, path))
    return out


def _run(name: str, what: str, args: list[list[Token]], lang: str) -> list[Effect]:
    if not args:
        return [("dynamic", f"runs a command it computes ({name})")]
    first = _literal(args[0], lang)
    if what == "shell" or (what == "run" and len(args) == 1 and first is not None):
        if first is None:
            return [("dynamic", f"runs a shell command it computes ({name})")]
        return [("shell", first)]
    # a program and its arguments: name('ls', ['-l']), system('ls', '-l'), Bun.spawn(['ls'])
    words: list[str] | None
    if first is not None:
        rest = args[1:]
        words = [first]
        for a in rest:
            lit = _literal(a, lang)
            lst = _list(a, lang)
            if lit is not None and lang != "js":
                words.append(lit)
            elif lst is not None:
                words.extend(lst)
            elif a and a[0][1] == "{" and lang in ("js", "ruby"):
                if any(t[1] == "shell" for t in a):
                    return [("shell", " ".join(words))]
                for item in _split_args(a[1:-1]):  # Deno.Command('rm', {args: [...]})
                    if len(item) > 2 and item[0][1] == "args" and item[1][1] == ":":
                        listed = _list(item[2:], lang)
                        if listed is None:
                            return [("dynamic", f"runs a command it computes ({name})")]
                        words.extend(listed)
            else:
                return [("dynamic", f"runs a command it computes ({name})")]
    else:
        words = _list(args[0], lang)
        if words is None and args[0] and args[0][0][1] == "{":  # Deno.run({cmd: [...]})
            inner = args[0][1:-1]
            items = _split_args(inner)
            words = next((_list(i[2:], lang) for i in items if len(i) > 2 and i[0][1] == "cmd"), None)
    if not words:
        return [("dynamic", f"runs a command it computes ({name})")]
    if name == "fork":
        words = ["node", *words]
    return [("argv", words)]


def _open(name: str, args: list[list[Token]], lang: str) -> list[Effect]:
    """perl ``open(F, MODE, PATH)`` / ``open(F, ">PATH")``, ruby ``File.open(p, 'w')``,
    php ``fopen(p, 'w')``, JS ``fs.openSync(p, 'w')``."""
    if lang == "perl":
        if len(args) < 2:
            return [("opaque", "opens a file it computes")]
        if len(args) == 2:
            spec = _literal(args[1], lang)
            if spec is None:
                return [("opaque", "opens a file it computes")]
            spec = spec.strip()
            if spec.endswith("|") or spec.startswith("|"):
                return [("shell", spec.strip("|").strip())]
            m = re.match(r"(\+?[<>]{0,2}|)\s*(.*)", spec)
            assert m is not None
            mode, path = m.group(1), m.group(2)
        else:
            mode = (_literal(args[1], lang) or "?").strip()
            if "|" in mode:
                rest = [_literal(a, lang) for a in args[2:]]
                if all(r is not None for r in rest):
                    return (
                        [("argv", [r for r in rest if r is not None])]
                        if len(rest) > 1
                        else [("shell", rest[0] or "")]
                    )
                return [("dynamic", "runs a command it computes (open)")]
            lit = _literal(args[2], lang)
            if lit is None:
                return [("opaque", "opens a file it computes")] if mode != "<" else []
            path = lit
        return [("write" if any(c in mode for c in ">+?") else "read", path)]
    path = _literal(args[0], lang) if args else None
    mode = _literal(args[1], lang) if len(args) > 1 else "r"
    if lang == "ruby" and path is not None and path.startswith("|"):
        return [("shell", path[1:])]
    if mode is None:
        return [("opaque", "opens a file in a mode it computes")]
    writes = any(c in mode for c in "wax+c")
    if path is None:
        return [("opaque", "writes a file whose path it computes")] if writes else []
    return [("write" if writes else "read", path)]

"""What avfs knows of programs' options: long options as getopt_long reads them (any
unambiguous prefix), short option clusters (``sed -nEi``, ``perl -pi``), the options that
take a value, options that move the working directory (``git -C``, ``make -C``), the
subcommand after a program's global options, and options whose value is a file an
otherwise read-only program writes (``sort -o``).

The programs that run another command are :mod:`.wrappers`; shells and interpreters
:mod:`.interpreters`; what makes git run a program :mod:`.gitruns`; awk programs and sed
scripts are read by :mod:`.awk` and :mod:`.sed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from .lexer import Word
from .paths import literal_path, resolve_dir

# Options of a program that is otherwise read-only whose value is a file it writes:
# (those options, the short options that take a value; None: options are whole words)
WRITE_OPTS: Final[Mapping[str, tuple[tuple[str, ...], str | None]]] = MappingProxyType(
    {
        "sort": (("-o", "--output"), "ktoST"),
        "shuf": (("-o", "--output"), "ino"),
        "less": (("-o", "-O", "--log-file", "--LOG-FILE"), "bhjkoOpPtTxyz#"),
        "find": (("-fprint", "-fprint0", "-fprintf", "-fls"), None),
        "tree": (("-o",), "LPIoHT"),
        "info": (("-o", "--output"), "odfn"),
    }
)


def _opts(text: str) -> frozenset[str]:
    return frozenset("--" + o for o in text.split())


# The long options of programs that read them with GNU getopt_long (or parse-options),
# which takes any unambiguous prefix of one (`sed --in-pl`, `env --split-s`, `sort --out=F`):
# a prefix is read as the option it stands for (:func:`long_option`).
_SED_LONG: Final = _opts(
    "debug expression file follow-symlinks help in-place line-length null-data zero-terminated"
    " posix quiet silent regexp-extended sandbox separate unbuffered version binary"
)
_MAKE_LONG: Final = _opts(
    "always-make directory debug environment-overrides eval file makefile help ignore-errors"
    " include-dir jobs keep-going load-average check-symlink-times just-print dry-run recon"
    " old-file assume-old output-sync print-data-base question no-builtin-rules"
    " no-builtin-variables shuffle silent quiet no-silent stop no-keep-going touch trace"
    " version print-directory no-print-directory what-if new-file assume-new"
    " warn-undefined-variables"
)
LONG_OPTS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "sed": _SED_LONG,
        "gsed": _SED_LONG,
        "env": _opts(
            "ignore-environment null unset chdir split-string block-signal default-signal"
            " ignore-signal list-signal-handling debug help version"
        ),
        "sort": _opts(
            "ignore-leading-blanks dictionary-order ignore-case general-numeric-sort ignore-nonprinting"
            " month-sort human-numeric-sort numeric-sort random-sort random-source reverse sort"
            " version-sort batch-size check compress-program debug files0-from key merge output"
            " stable buffer-size field-separator temporary-directory parallel unique zero-terminated"
            " help version"
        ),
        "shuf": _opts("echo input-range head-count output random-source repeat zero-terminated help version"),
        "xargs": _opts(
            "null arg-file delimiter eof replace max-lines max-args open-tty interactive"
            " no-run-if-empty max-chars show-limits verbose exit max-procs process-slot-var help version"
        ),
        "timeout": _opts("foreground kill-after preserve-status signal verbose help version"),
        "nice": _opts("adjustment help version"),
        "stdbuf": _opts("input output error help version"),
        "info": _opts(
            "all apropos directory debug dribble file help index-search location node output"
            " raw-escapes no-raw-escapes restore show-options subnodes usage version"
        ),
        "cp": _opts(
            "archive attributes-only backup copy-contents debug force interactive link dereference"
            " no-clobber no-dereference preserve no-preserve parents recursive reflink"
            " remove-destination sparse strip-trailing-slashes symbolic-link suffix target-directory"
            " no-target-directory update verbose one-file-system context keep-directory-symlink help version"
        ),
        "mv": _opts(
            "backup debug exchange force interactive no-clobber no-copy strip-trailing-slashes suffix"
            " target-directory no-target-directory update verbose context help version"
        ),
        "ln": _opts(
            "backup directory force interactive logical no-dereference physical relative symbolic"
            " suffix target-directory no-target-directory verbose help version"
        ),
        "install": _opts(
            "backup compare directory group mode owner preserve-timestamps strip strip-program suffix"
            " target-directory no-target-directory verbose preserve-context context debug help version"
        ),
        "make": _MAKE_LONG,
        "gmake": _MAKE_LONG,
    }
)


def long_option(v: str, names: frozenset[str]) -> str:
    """``v`` (``--pre`` or ``--pre=VALUE``) with ``--pre`` spelled out as the one option of
    ``names`` it is a prefix of, as getopt_long reads it; ``v`` itself when it names an
    option exactly, none, or several (the program then refuses it)."""
    key, eq, value = v.partition("=")
    if key in names or len(key) < 3:
        return v
    found = [n for n in names if n.startswith(key)]
    if len(found) != 1:
        return v
    return found[0] + eq + value


# short options of sed and perl that are flags (no value): a cluster of them is split
_SED_FLAGS: Final = frozenset("nrEsuzb")
_PERL_FLAGS: Final = frozenset("acnpsStTuUvwWX")


def canonical_args(name: str, args: list[Word]) -> list[Word]:
    """``args`` as the program reads them: long options spelled out (:data:`LONG_OPTS`)
    and the short option clusters of sed and perl split (``-nEi.bak`` is ``-n -E
    -i.bak``; ``-pi`` is ``-p -i``), so that rules see ``-i`` however it is written. The
    same list when nothing changes."""
    names = LONG_OPTS.get(name)
    flags = _SED_FLAGS if name in ("sed", "gsed") else _PERL_FLAGS if name == "perl" else None
    if names is None and flags is None:
        return args
    out: list[Word] | None = None
    for k, w in enumerate(args):
        v = w.value
        if v == "--":
            if out is not None:
                out.extend(args[k:])
            break
        pieces: list[str] | None = None
        if v.startswith("--") and names is not None:
            full = long_option(v, names)
            if full != v:
                pieces = [full]
        elif flags is not None and len(v) > 2 and v[0] == "-" and v[1] != "-":
            pieces = _split_cluster(v, flags, perl=name == "perl")
        if pieces is not None:
            if out is None:
                out = list(args[:k])
            for piece in pieces:
                nw = Word(piece, None, w.quoted)
                nw.dynamic, nw.unknown, nw.subs = w.dynamic, w.unknown, w.subs
                out.append(nw)
        elif out is not None:
            out.append(w)
    return args if out is None else out


def _split_cluster(v: str, flags: frozenset[str], *, perl: bool) -> list[str] | None:
    out: list[str] = []
    j = 1
    while j < len(v):
        ch = v[j]
        if ch in flags:
            out.append("-" + ch)
            j += 1
            continue
        if perl and ch in "l0C":  # an optional number follows
            k = j + 1
            while k < len(v) and v[k].isdigit():
                k += 1
            out.append("-" + v[j:k])
            j = k
            continue
        out.append("-" + v[j:])  # -i[SUFFIX], -e SCRIPT, -f FILE, ...: the rest is its value
        break
    return out if len(out) > 1 else None


# options taking a value that come before a subcommand
GLOBAL_VALUE_OPTS: Final = MappingProxyType(
    {
        "git": frozenset(
            {
                "-C",
                "-c",
                "--git-dir",
                "--work-tree",
                "--namespace",
                "--exec-path",
                "--config-env",
                "--super-prefix",
            }
        ),
        "npm": frozenset({"--prefix", "-w", "--workspace"}),
        "pnpm": frozenset({"-C", "--dir", "--filter", "-F"}),
        "yarn": frozenset({"--cwd"}),
        "cargo": frozenset({"-C", "-Z", "--manifest-path", "--config", "--color"}),
        "uv": frozenset({"--directory", "--project", "-p", "--python", "--cache-dir", "--config-file"}),
        "poetry": frozenset({"-C", "--directory", "-P", "--project"}),
        "go": frozenset({"-C"}),
        "docker": frozenset({"-H", "--host", "-c", "--context", "--config", "-l", "--log-level"}),
    }
)
# options that make a program work in another directory: (options, only before the subcommand)
_CHDIR_OPTS: Final = MappingProxyType(
    {
        "git": (("-C",), True),
        "make": (("-C", "--directory"), False),
        "gmake": (("-C", "--directory"), False),
        "tar": (("-C", "--directory"), False),
        "cargo": (("-C",), True),
        "npm": (("--prefix",), False),
        "pnpm": (("-C", "--dir"), True),
        "yarn": (("--cwd",), True),
        "uv": (("--directory",), False),
        "go": (("-C",), True),
        "poetry": (("-C", "--directory"), True),
    }
)


def program_cwd(name: str, args: list[Word], cwd: str | None) -> str | None:
    spec = _CHDIR_OPTS.get(name)
    if spec is None:
        return cwd
    opts, global_only = spec
    values = [a.value for a in args]
    k = 0
    value_opts = GLOBAL_VALUE_OPTS.get(name, frozenset())
    while k < len(args):
        v = values[k]
        if global_only and not v.startswith("-"):
            break
        for opt in opts:
            if v == opt and k + 1 < len(args):
                cwd = resolve_dir(args[k + 1], cwd)
                k += 1
                break
            if opt.startswith("--") and v.startswith(opt + "="):
                cwd = resolve_dir(Word.literal(v.split("=", 1)[1]), cwd)
                break
            if not opt.startswith("--") and v.startswith(opt) and len(v) > len(opt) and not global_only:
                cwd = resolve_dir(Word.literal(v[len(opt) :]), cwd)
                break
        else:
            if v in value_opts:
                k += 1
        k += 1
    return cwd


def subcommand(name: str, values: list[str]) -> str | None:
    value_opts = GLOBAL_VALUE_OPTS.get(name, frozenset())
    skip = False
    for v in values:
        if skip:
            skip = False
            continue
        if v.startswith("-"):
            skip = v in value_opts
            continue
        if v.startswith("+"):
            continue
        return v
    return None


def option_values(args: list[Word], opts: tuple[str, ...], value_short: str | None) -> list[Word]:
    """The values of ``opts`` in ``args`` (``-o F``, ``-oF``, ``-ro F``, ``--output=F``)."""
    out: list[Word] = []
    k = 0
    while k < len(args):
        v = args[k].value
        nxt = args[k + 1] if k + 1 < len(args) else None
        if v == "--" and value_short is not None:
            break
        if v in opts:
            if nxt is not None:
                out.append(nxt)
            k += 2
            continue
        if v.startswith("--"):
            key, eq, value = v.partition("=")
            if eq and key in opts:
                out.append(literal_path(value))
        elif value_short is not None and v.startswith("-") and len(v) > 1:
            for j in range(1, len(v)):
                ch = v[j]
                if ch in value_short:
                    value_word = literal_path(v[j + 1 :]) if j + 1 < len(v) else nxt
                    if "-" + ch in opts and value_word is not None:
                        out.append(value_word)
                    if j + 1 >= len(v):
                        k += 1
                    break
        k += 1
    return out

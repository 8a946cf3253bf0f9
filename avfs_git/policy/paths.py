"""Paths as a command line names them: which lie outside the workspace, the directory a
``cd`` moves to, and the key a file is known by while a command line is classified. Pure:
no file is looked at.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterable
from typing import Any, Final

from .lexer import Word

_HOME_VARS: Final = frozenset(
    {
        "HOME",
        "TMPDIR",
        "OLDPWD",
        "TMP",
        "TEMP",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
        "USERPROFILE",
    }
)
HARMLESS_PATHS: Final = frozenset(
    {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/tty", "/dev/zero"}
)


HOME_DIR: Final = "/\x00home"  # a working directory outside every workspace
VIRTUAL_ROOT: Final = "/\x00workspace"


def within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def literal_path(value: str) -> Word:
    w = Word.literal(value)
    w.tilde = value.startswith("~")
    if value.startswith("$"):
        w.lead = value[1:].strip("{}").split("/", 1)[0]
        w.lead_len = len(value.split("/", 1)[0])
    return w


def path_key(w: Word, cwd: str | None) -> str:
    """How a file is named in ``written``, ``touched`` and ``runs``."""
    v = w.value
    if w.tilde or w.lead is not None or w.unknown:
        return v
    if not v.startswith("/"):
        if cwd is None:
            return v
        v = cwd + "/" + v
    return posixpath.normpath(v)


def outside(w: Word, cwd: str | None, root: str) -> bool:
    """Whether the path ``w`` may be outside the workspace (unknown counts as outside)."""
    v = w.value
    if w.tilde:
        return True
    if w.lead is not None:
        if w.lead == "PWD" and cwd is not None:
            v = cwd + v[w.lead_len :]
        else:
            return True  # $HOME, $TMPDIR, "$x"/...: not provably inside
    if v in HARMLESS_PATHS or v.startswith(("/dev/fd/", "/proc/self/fd/")):
        return False
    if w.glob:  # `.*` matches `..` in older shells
        v = "/".join(
            ".." if c.startswith(".") and c != ".." and fnmatch.fnmatchcase("..", c) else c
            for c in v.split("/")
        )
    path = _absolute(v, cwd)
    return path is None or not within(path, root)


def resolve_dir(w: Word, cwd: str | None) -> str | None:
    v = w.value
    if w.tilde:
        return posixpath.normpath(HOME_DIR + v[v.index("/") :]) if "/" in v else HOME_DIR
    if w.lead is not None:
        if w.lead == "PWD" and cwd is not None:
            v = cwd + v[w.lead_len :]
        elif w.lead in _HOME_VARS:
            return HOME_DIR
        else:
            return None
    return _absolute(v, cwd)


def _absolute(v: str, cwd: str | None) -> str | None:
    """``v`` as a normal absolute path (None: relative, and no directory is known)."""
    if not v.startswith("/"):
        if cwd is None:
            return None
        v = cwd + "/" + v
    path = posixpath.normpath(v)
    return "/" + path.lstrip("/") if path.startswith("//") else path


def cd_target(name: str, args: list[Word], cwd: str | None) -> str | None:
    if name == "popd":
        return None
    operands = [a for a in args if not (a.value.startswith("-") and a.value != "-")]
    if not operands:
        return HOME_DIR if name == "cd" else None
    if operands[0].value == "-":
        return None
    return resolve_dir(operands[0], cwd)


# credential stores: below a home directory (`~/X`, `$HOME/X`, `/home/u/X`, `/root/X`)...
_HOME_SECRETS: Final = (
    ".ssh",
    ".aws",
    ".config/gcloud",
    ".azure",
    ".netrc",
    ".git-credentials",
    ".gnupg",
    ".kube",
    ".docker/config.json",
    ".pgpass",
    ".pypirc",
    ".npmrc",
    ".config/gh",
)
# ... and anywhere on the host
_HOST_SECRETS: Final = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh", "/root")
_SECRET_NAMES: Final = frozenset({".netrc", ".git-credentials", ".pgpass", ".pypirc"})


def secret_outside(w: Word, cwd: str | None, root: str) -> str | None:
    """The credential store that the path ``w`` names outside the workspace (``~/.ssh``,
    ``/etc/shadow``, a ``.env`` file of another project, anything under ``/root``), or None."""
    v = w.value
    if w.tilde or (w.lead is not None and w.lead in ("HOME", "USERPROFILE")):
        head = v.split("/", 1)
        rel = head[1] if len(head) > 1 else ""
        return _home_secret(rel, head[0])
    if w.lead is not None or not outside(w, cwd, root):
        return None
    path = _absolute(v, cwd)
    if path is None:
        return None
    for p in _HOST_SECRETS:
        if within(path, p):
            return p
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "home":  # /home/USER/...
        found = _home_secret("/".join(parts[3:]), "/".join(parts[:3]))
        if found is not None:
            return found
    name = parts[-1]
    if name in _SECRET_NAMES or name == ".env" or name.startswith(".env."):
        return path
    if any(c in (".ssh", ".aws", ".gnupg") for c in parts):
        return path
    return None


def _home_secret(rel: str, home: str) -> str | None:
    rel = posixpath.normpath(rel) if rel else ""
    for s in _HOME_SECRETS:
        if rel == s or rel.startswith(s + "/"):
            return f"{home}/{s}"
    name = rel.rsplit("/", 1)[-1]
    if name == ".env" or name.startswith(".env."):
        return f"{home}/{rel}"
    return None


def variable_hint(commands: Iterable[Any]) -> str | None:
    """What to do when a denied command's path starts with a shell variable (``mkdir -p $d``,
    ``> $d/f``): the policy cannot know where it points before the run, so it counts as
    outside the workspace (h-polish4's trial: ``proxy exec``'s hint named only ``policy check``,
    which says the same; the hooks' reason nothing). None when no such path was the reason."""
    import re

    lead = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
    for c in commands:
        if c.action != "deny":
            continue
        words = [m for a in c.argv[1:] if (m := lead.match(a))]
        said = re.search(r"writes to (\$\{?[A-Za-z_][A-Za-z0-9_]*)", c.reason)
        if said:
            words.append(lead.match(said.group(1)))  # type: ignore[arg-type]
        for m in words:
            if m is not None and m.group(1) not in _HOME_VARS and m.group(1) != "PWD":
                var = m.group(1)
                return (
                    f"${var} is a shell variable: where it points is known only when the command"
                    f" runs, so a path it starts counts as outside the workspace; start the path"
                    f" with ./ (./${var}) or $PWD/, or write the path itself"
                )
    return None

"""Installing avfs's hooks: into an agent's settings (:func:`install_claude`,
:func:`install_codex`) by merging with what is there, and taking out only ours again; and a
vault's git ``pre-receive`` hook (:func:`install_git`, the script in :mod:`.prereceive`).

Pure of click and terminal I/O: the CLI (``cli/hooks_cmd.py``) resolves the paths and
renders :class:`InstallResult`. The formats are documented in ``docs/hooks.md``.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from typing import Any, Final

from ..core.errors import UsageError
from ..core.records import dataclass
from .prereceive import PRE_RECEIVE, PRE_RECEIVE_MARK

__all__ = [
    "InstallResult",
    "claude_settings",
    "install_claude",
    "install_codex",
    "install_git",
    "uninstall_claude",
    "uninstall_codex",
    "uninstall_git",
]

# what each agent's settings get (event, matcher, our event name, timeout in seconds)
_CLAUDE_ENTRIES: Final = (
    ("PreToolUse", "Bash", "pre-tool-use", 30),
    ("PostToolUse", "Edit|Write|MultiEdit|Bash", "post-tool-use", 30),
    ("Stop", None, "stop", 30),
)
_CODEX_ENTRIES: Final = (
    ("PreToolUse", "^Bash$", "pre-tool-use", 30),
    ("PostToolUse", "^(Bash|apply_patch|Edit|Write)$", "post-tool-use", 30),
    ("Stop", None, "stop", 30),
)
# the last words of a hook command avfs wrote: "hook claude pre-tool-use"
_OURS_AGENTS: Final = ("claude", "codex")
_OURS_EVENTS: Final = ("pre-tool-use", "post-tool-use", "stop", "notify")


@dataclass(frozen=True, slots=True)
class InstallResult:
    """What ``hooks install`` / ``hooks uninstall`` did to one file.

    Attributes:
        action: ``install`` or ``uninstall``.
        agent: ``claude``, ``codex`` or ``git``.
        path: the settings file (or git hook) written.
        changed: whether the file changed (a second install changes nothing).
        entries: our hooks now in the file (install) or taken out of it (uninstall):
            ``{"event", "matcher", "command"}``.
        notes: anything a person should know (a key left alone, a restart needed).
        vault: the vault (git hooks only).
    """

    action: str
    agent: str
    path: str
    changed: bool
    entries: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()
    vault: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "agent": self.agent,
            "vault": self.vault,
            "path": self.path,
            "changed": self.changed,
            "entries": [dict(e) for e in self.entries],
            "notes": list(self.notes),
        }


def _is_ours(command: Any, prefix: str | None = None) -> bool:
    """Whether a hook command is one avfs wrote: ``PREFIX hook AGENT EVENT`` where PREFIX is
    ``prefix`` (the one being installed, or given to uninstall) or runs avfs the way
    ``hooks install`` writes it by default: a program named ``avfs`` or ``PYTHON -m
    avfs_git``, optionally followed by ``--home DIR``. Nothing else counts, so a user's
    ``notify-send avfs hook claude stop`` is never taken for ours."""
    if not isinstance(command, str):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    if (
        len(words) < 4
        or words[-3] != "hook"
        or words[-2] not in _OURS_AGENTS
        or words[-1] not in _OURS_EVENTS
    ):
        return False
    if prefix is not None and command == _hook_command(prefix, words[-2], words[-1]):
        return True
    head = words[:-3]
    if os.path.basename(head[0]) == "avfs":
        rest = head[1:]
    elif os.path.basename(head[0]).startswith("python") and head[1:3] == ["-m", "avfs_git"]:
        rest = head[3:]  # (as installed before -P)
    elif os.path.basename(head[0]).startswith("python") and head[1:4] == ["-P", "-m", "avfs_git"]:
        rest = head[4:]
    else:
        return False
    while rest[:1] == ["--home"] and len(rest) >= 2:
        rest = rest[2:]
    return not rest


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 text: {exc}", details={"path": path}) from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", details={"path": path}) from exc


def _write_text(path: str, text: str) -> None:
    """Replace ``path`` atomically, keeping its permission bits. A symlink is written
    through (its target is replaced), never replaced by a file."""
    path = os.path.realpath(path)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
        tmp = f"{path}.avfs-{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}", details={"path": path}) from exc


def _hook_command(prefix: str, agent: str, name: str) -> str:
    return f"{prefix} hook {agent} {name}"


# -- Claude Code: .claude/settings.json


def _claude_load(path: str) -> tuple[str | None, dict[str, Any]]:
    text = _read_text(path)
    if text is None or not text.strip():
        return text, {}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise UsageError(
            f"{path} is not valid JSON ({exc}); nothing was written",
            hint="fix or move the file, then run the command again",
            details={"path": path},
        ) from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path} is not a JSON object; nothing was written", details={"path": path})
    hooks = doc.get("hooks", {})
    if not isinstance(hooks, dict):
        what = "null" if hooks is None else f"a {type(hooks).__name__}"
        raise UsageError(
            f"{path}: `hooks` is {what}, not an object; nothing was written",
            hint="remove the key or make it an object",
            details={"path": path},
        )
    for event, groups in hooks.items():
        if not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("hooks", []), list) for g in groups
        ):
            raise UsageError(
                f"{path}: `hooks.{event}` is not a list of matcher groups; nothing was written",
                details={"path": path},
            )
    return text, doc


def _strip_ours(hooks: dict[str, Any], prefix: str | None = None) -> list[dict[str, Any]]:
    """Take our hooks out of a ``hooks`` mapping (in place); the entries taken."""
    removed: list[dict[str, Any]] = []
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        kept_groups = []
        for group in groups:
            entries = group.get("hooks") if isinstance(group, dict) else None
            if not isinstance(entries, list):
                kept_groups.append(group)
                continue
            kept = [h for h in entries if not (isinstance(h, dict) and _is_ours(h.get("command"), prefix))]
            for h in entries:
                if h not in kept:
                    removed.append({"event": event, "matcher": group.get("matcher"), "command": h["command"]})
            if kept or not entries:
                kept_groups.append({**group, "hooks": kept} if len(kept) != len(entries) else group)
        if kept_groups:
            hooks[event] = kept_groups
        else:
            del hooks[event]
    return removed


def _ours_in(hooks: Mapping[str, Any], prefix: str | None = None) -> list[dict[str, Any]]:
    found = []
    for event, groups in hooks.items():
        for group in groups if isinstance(groups, list) else []:
            for h in group.get("hooks", []) if isinstance(group, dict) else []:
                if isinstance(h, dict) and _is_ours(h.get("command"), prefix):
                    found.append({"event": event, "matcher": group.get("matcher"), "command": h["command"]})
    return found


def _claude_groups(prefix: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for event, matcher, name, timeout in _CLAUDE_ENTRIES:
        group: dict[str, Any] = {} if matcher is None else {"matcher": matcher}
        group["hooks"] = [
            {"type": "command", "command": _hook_command(prefix, "claude", name), "timeout": timeout}
        ]
        out.append((event, group))
    return out


def claude_settings(prefix: str) -> dict[str, Any]:
    """The ``hooks`` settings avfs installs for Claude Code (``prefix`` runs avfs)."""
    hooks: dict[str, Any] = {}
    for event, group in _claude_groups(prefix):
        hooks.setdefault(event, []).append(group)
    return {"hooks": hooks}


def _dump_json(doc: Mapping[str, Any], path: str) -> str:
    """The settings as JSON text; refuses a number JSON cannot hold (``1e400`` read as
    infinity, or a ``NaN``/``Infinity`` literal), which would be written as invalid JSON."""
    try:
        return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except ValueError as exc:
        raise UsageError(
            f"{path} holds a number JSON cannot represent (NaN, Infinity or one too large for a"
            f" double, such as 1e400): {exc}; nothing was written",
            hint="fix the number by hand, then run the command again",
            details={"path": path},
        ) from None


def install_claude(path: str, prefix: str) -> InstallResult:
    """Merge avfs's hooks into a Claude Code settings file (created when missing).

    Other keys and other hooks stay as they are; ours are replaced, never duplicated.

    Raises:
        UsageError: the file is not valid JSON or not shaped like settings (nothing written).
    """
    text, doc = _claude_load(path)
    wanted = _claude_groups(prefix)
    current = _ours_in(doc.get("hooks", {}), prefix)
    desired = [
        {"event": e, "matcher": g.get("matcher"), "command": g["hooks"][0]["command"]} for e, g in wanted
    ]
    if text is not None and current == desired:
        return InstallResult("install", "claude", path, False, tuple(desired))
    hooks = doc.setdefault("hooks", {})
    _strip_ours(hooks, prefix)
    for event, group in wanted:
        hooks.setdefault(event, []).append(group)
    _write_text(path, _dump_json(doc, path))
    return InstallResult(
        "install", "claude", path, True, tuple(desired), ("restart Claude Code (or run /hooks) to load them",)
    )


def uninstall_claude(path: str, prefix: str | None = None) -> InstallResult:
    """Take avfs's hooks (and only them) out of a Claude Code settings file: those written
    with ``prefix`` (the ``--command`` of the install) or with avfs's default prefix."""
    text, doc = _claude_load(path)
    hooks = doc.get("hooks")
    if text is None or not isinstance(hooks, dict):
        return InstallResult("uninstall", "claude", path, False, ())
    removed = _strip_ours(hooks, prefix)
    if not removed:
        return InstallResult("uninstall", "claude", path, False, ())
    if not hooks:
        del doc["hooks"]
    _write_text(path, _dump_json(doc, path))
    return InstallResult("uninstall", "claude", path, True, tuple(removed))


# -- Codex: config.toml (inline [hooks] tables, optionally `notify`)

_BEGIN: Final = "# >>> avfs hooks: written by `avfs hooks install --for codex`; `avfs hooks uninstall` removes this block >>>"
_END: Final = "# <<< avfs hooks <<<"
_NOTIFY_MARK: Final = "# avfs: `avfs hooks uninstall --for codex` removes this line"


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _codex_block(prefix: str) -> str:
    lines = [_BEGIN]
    for event, matcher, name, timeout in _CODEX_ENTRIES:
        lines.append(f"[[hooks.{event}]]")
        if matcher is not None:
            lines.append(f"matcher = {_toml_str(matcher)}")
        lines.append(f"[[hooks.{event}.hooks]]")
        lines.append('type = "command"')
        lines.append(f"command = {_toml_str(_hook_command(prefix, 'codex', name))}")
        lines.append(f"timeout = {timeout}")
    lines.append(_END)
    return "\n".join(lines) + "\n"


def _toml_parse(text: str, path: str, what: str) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} {what} ({exc}); nothing was written", details={"path": path}) from None
    except RecursionError:  # (nested past Python's stack: was exit 70, internal)
        raise UsageError(
            f"{path} {what} (its arrays or tables are nested too deeply to read); nothing was written",
            details={"path": path},
        ) from None


def _codex_remove(text: str) -> tuple[str, bool]:
    """``text`` without our block and our notify line; whether there were any."""
    out: list[str] = []
    inside = found = False
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if stripped == _BEGIN:
            inside = found = True
            if out and not out[-1].strip():
                out.pop()  # the blank line install put before the block
            continue
        if inside:
            if stripped == _END:
                inside = False
            continue
        if stripped.endswith(_NOTIFY_MARK) and stripped.lstrip().startswith("notify"):
            found = True
            continue
        out.append(line)
    if inside:
        raise UsageError("the avfs block in the Codex config has no end marker; fix it by hand")
    return "".join(out), found


def _codex_entries(doc: Mapping[str, Any], notify: bool, prefix: str | None = None) -> list[dict[str, Any]]:
    hooks = doc.get("hooks")
    found = _ours_in(hooks, prefix) if isinstance(hooks, dict) else []
    cmd = doc.get("notify")
    if notify and isinstance(cmd, list) and cmd and _is_ours(shlex.join(map(str, cmd)), prefix):
        found.append({"event": "notify", "matcher": None, "command": shlex.join(map(str, cmd))})
    return found


def install_codex(path: str, prefix: str, *, notify: bool = False) -> InstallResult:
    """Add avfs's hooks to a Codex ``config.toml`` as inline ``[[hooks.EVENT]]`` tables, in one
    marked block at the end (created when missing); with ``notify``, also set the top-level
    ``notify`` program when it is not set already. The rest of the file is kept byte for byte.

    Raises:
        UsageError: the file is not valid TOML, or adding the block would make it invalid
            (for example ``hooks`` is already defined another way); nothing is written.
    """
    text = _read_text(path) or ""
    _toml_parse(text, path, "is not valid TOML")
    notes: list[str] = []
    base, _ = _codex_remove(text)
    head = ""
    if notify:
        base_doc = _toml_parse(base, path, "is not valid TOML")
        if "notify" in base_doc:
            notes.append("`notify` is already set in the config and was left alone")
        else:
            argv = [*shlex.split(prefix), "hook", "codex", "notify"]
            head = f"notify = [{', '.join(_toml_str(a) for a in argv)}]  {_NOTIFY_MARK}\n"
    if base and not base.endswith("\n"):
        base += "\n"
    new = head + base + ("\n" if base.strip() else "") + _codex_block(prefix)
    new_doc = _toml_parse(
        new, path, "cannot take avfs's [[hooks]] tables: adding them would make it invalid TOML"
    )
    entries = _codex_entries(new_doc, notify, prefix)
    if len([e for e in entries if e["event"] != "notify"]) != len(_CODEX_ENTRIES):
        raise UsageError(f"{path}: avfs's hooks would not be read back from the file; nothing was written")
    notes.append("Codex asks you to review and trust new hooks (`/hooks`) before it runs them")
    if new == text:
        return InstallResult("install", "codex", path, False, tuple(entries), tuple(notes))
    _write_text(path, new)
    return InstallResult("install", "codex", path, True, tuple(entries), tuple(notes))


def uninstall_codex(path: str) -> InstallResult:
    """Take avfs's block (and its ``notify`` line) out of a Codex ``config.toml``."""
    text = _read_text(path)
    if text is None:
        return InstallResult("uninstall", "codex", path, False, ())
    doc = _toml_parse(text, path, "is not valid TOML")
    removed = _codex_entries(doc, True)
    new, found = _codex_remove(text)
    if not found:
        return InstallResult("uninstall", "codex", path, False, ())
    _toml_parse(new, path, "would not be valid TOML without avfs's block")
    _write_text(path, new)
    return InstallResult("uninstall", "codex", path, True, tuple(removed))


# -- git: the vault's pre-receive hook (its text: prereceive.py)


def install_git(vault_name: str, vault_path: str) -> InstallResult:
    """Install the ``pre-receive`` hook into a vault (``<vault>/hooks/pre-receive``).

    Raises:
        UsageError: the vault already has a ``pre-receive`` hook that is not avfs's.
    """
    path = os.path.join(vault_path, "hooks", "pre-receive")
    entry = ({"event": "pre-receive", "matcher": None, "command": path},)
    current = _read_text(path)
    if current is not None and PRE_RECEIVE_MARK not in current:
        raise UsageError(
            f"{path} exists and is not avfs's; nothing was written",
            hint="merge it by hand with the template in hooks/git/pre-receive (docs/hooks.md)",
            details={"path": path},
        )
    if current == PRE_RECEIVE and os.access(path, os.X_OK):
        return InstallResult("install", "git", path, False, entry, vault=vault_name)
    _write_text(path, PRE_RECEIVE)
    _chmod_x(path)
    return InstallResult("install", "git", path, True, entry, vault=vault_name)


def _chmod_x(path: str) -> None:
    try:
        os.chmod(path, 0o755)
    except OSError as exc:
        raise UsageError(f"cannot make {path} executable: {exc.strerror}") from exc


def uninstall_git(vault_name: str, vault_path: str) -> InstallResult:
    """Remove avfs's ``pre-receive`` hook from a vault (another one is left alone)."""
    path = os.path.join(vault_path, "hooks", "pre-receive")
    current = _read_text(path)
    if current is None or PRE_RECEIVE_MARK not in current:
        notes = () if current is None else ("the pre-receive hook there is not avfs's and was left alone",)
        return InstallResult("uninstall", "git", path, False, (), notes, vault=vault_name)
    try:
        os.unlink(path)
    except OSError as exc:
        raise UsageError(f"cannot remove {path}: {exc.strerror}") from exc
    entry = ({"event": "pre-receive", "matcher": None, "command": path},)
    return InstallResult("uninstall", "git", path, True, entry, vault=vault_name)

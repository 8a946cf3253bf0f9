"""Agent hooks: Claude Code and Codex call avfs around their tool calls; git calls it on push.

Three things live here, each pure of click and terminal I/O (the CLI, ``cli/hooks_cmd.py``,
reads stdin, the environment and ``~`` and passes them in):

* **answering a hook event** (:func:`answer`): the agent writes one JSON event on stdin;
  avfs classifies a shell command with the same policy ``proxy exec`` applies, takes a
  checkpoint of the fork the agent's working directory is mounted from, and answers in the
  agent's own protocol (:class:`HookAnswer`: stdout JSON, stderr text, exit status). In a
  mounted fork, an allowed Claude Code Bash call is rewritten to run confined through
  ``proxy exec`` (``updatedInput``, :func:`_confined`). It never raises: a malformed event or
  an avfs failure is an answer too (a denial before a tool runs).
* **installing the hooks** into an agent's settings (:func:`install_claude`,
  :func:`install_codex`) by merging with what is there, and taking out only ours again.
* **the git ``pre-receive`` hook** of a vault (:data:`PRE_RECEIVE`), which refuses a push that
  rewrites or deletes a fork while it is mounted.

The formats are documented in ``docs/hooks.md``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
from collections.abc import Mapping
from typing import Any, Final

from .core.errors import AvfsError, UsageError
from .core.locks import pid_alive

__all__ = [
    "AGENTS",
    "EVENTS",
    "PRE_RECEIVE",
    "Confine",
    "HookAnswer",
    "HookEvent",
    "InstallResult",
    "MountedFork",
    "answer",
    "codex_notify",
    "confine_from",
    "failure_text",
    "find_mounted_fork",
    "install_claude",
    "install_codex",
    "install_git",
    "parse_event",
    "self_command",
    "uninstall_claude",
    "uninstall_codex",
    "uninstall_git",
]

AGENTS: Final = ("claude", "codex")
# the CLI's event names -> the agents' hook_event_name
EVENTS: Final = {"pre-tool-use": "PreToolUse", "post-tool-use": "PostToolUse", "stop": "Stop"}

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
_SHORT: Final = 80
# the workspace root of a classification outside any mount and project: a path nothing is
# inside (it holds a NUL), so every write the command makes counts as outside the workspace
_NO_WORKSPACE: Final = "/\x00avfs-no-workspace"


# ------------------------------------------------------------------------------- answers


@dataclasses.dataclass(frozen=True, slots=True)
class HookAnswer:
    """What the hook process prints and exits with (the agent's protocol, not avfs's JSON).

    Attributes:
        stdout: the JSON object to print on stdout (None: print nothing).
        stderr: text for stderr ("" for none); with exit status 2 it is the reason the agent sees.
        exit_code: 0, 1 (a non-blocking error) or 2 (a blocking error).
    """

    stdout: dict[str, Any] | None
    stderr: str = ""
    exit_code: int = 0

    def stdout_text(self) -> str:
        """The stdout text: JSON in ASCII (``\\uXXXX`` escapes), so printing it cannot fail on a
        lone surrogate from the event or on a stdout that is not UTF-8."""
        return "" if self.stdout is None else json.dumps(self.stdout, ensure_ascii=True) + "\n"


def failure_text(agent: str, name: str, exc: BaseException) -> HookAnswer:
    """The answer when producing or printing an answer failed: for ``pre-tool-use`` a
    blocking denial (exit 2, a ``deny`` on stdout), else a non-blocking error (exit 1). Plain
    ASCII, built without anything that can fail on odd text."""
    message = f"avfs: internal error while answering the hook: {type(exc).__name__}: {ascii(str(exc))[1:-1]}"
    if name == "pre-tool-use":
        denied = _pre_answer(agent, "deny", message)
        return HookAnswer(denied.stdout, message + "\n", 2)
    return HookAnswer(None, message + "\n", 1)


@dataclasses.dataclass(frozen=True, slots=True)
class HookEvent:
    """The fields of an agent's hook event that avfs uses (validated)."""

    event: str  # PreToolUse | PostToolUse | Stop
    session_id: str
    cwd: str
    tool_name: str | None
    tool_input: Mapping[str, Any] | None


class EventError(Exception):
    """The event on stdin is not one avfs can act on (says what is wrong with it)."""


def parse_event(data: bytes, expected: str) -> HookEvent:
    """Validate one hook event (``expected``: PreToolUse, PostToolUse or Stop).

    Raises:
        EventError: not JSON, not an object, a missing field or one of the wrong type, or an
            event other than ``expected``.
    """
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise EventError(f"the hook event on stdin is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise EventError(f"the hook event must be a JSON object, not {type(doc).__name__}")

    def text(key: str) -> str:
        value = doc.get(key)
        if not isinstance(value, str) or not value:
            what = "missing" if value is None else f"not a non-empty string ({type(value).__name__})"
            raise EventError(f"the hook event's `{key}` is {what}")
        return value

    name = text("hook_event_name")
    if name != expected:
        raise EventError(f"this hook answers {expected} events, not {name}")
    session = text("session_id")
    cwd = text("cwd")
    if not os.path.isabs(cwd):
        raise EventError(f"the hook event's `cwd` is not an absolute path: {cwd!r}")
    tool_name: str | None = None
    tool_input: Mapping[str, Any] | None = None
    if expected != "Stop":
        tool_name = text("tool_name")
        raw = doc.get("tool_input")
        if not isinstance(raw, dict):
            what = "missing" if raw is None else f"not an object ({type(raw).__name__})"
            raise EventError(f"the hook event's `tool_input` is {what}")
        tool_input = raw
    return HookEvent(expected, session, cwd, tool_name, tool_input)


# ------------------------------------------------------------------------------- where am I


@dataclasses.dataclass(frozen=True, slots=True)
class MountedFork:
    """A live mount whose mount point holds the agent's working directory."""

    vault: str
    vault_path: str
    fork: str
    mountpoint: str
    read_only: bool


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def find_mounted_fork(home_path: str, cwd: str) -> MountedFork | None:
    """The mounted fork whose mount point contains ``cwd`` (the innermost one), or None.

    Reads the mount registry files (``<vault>/avfs/mounts/*.json``) directly, without opening a
    vault: a hook runs on every tool call. A registry entry counts only while its daemon lives
    and its mount point is a mount point.
    """
    vaults_dir = os.path.join(home_path, "vaults")
    try:
        vault_dirs = [d for d in os.listdir(vaults_dir) if d.endswith(".git") and not d.startswith(".")]
    except OSError:
        return None
    where = os.path.realpath(cwd)
    best: MountedFork | None = None
    for vd in sorted(vault_dirs):
        reg = os.path.join(vaults_dir, vd, "avfs", "mounts")
        try:
            files = [f for f in os.listdir(reg) if f.endswith(".json")]
        except OSError:
            continue
        for fn in files:
            try:
                with open(os.path.join(reg, fn), encoding="utf-8") as fh:
                    data = json.load(fh)
                mp = os.path.realpath(str(data["mountpoint"]))
                pid = int(data["pid"])
                fork = str(data["fork"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not _inside(where, mp) or (best is not None and len(mp) <= len(best.mountpoint)):
                continue
            if data.get("state") not in (None, "mounted") or not pid_alive(pid) or not os.path.ismount(mp):
                continue
            best = MountedFork(
                vault=vd[: -len(".git")],
                vault_path=os.path.join(vaults_dir, vd),
                fork=fork,
                mountpoint=mp,
                read_only=bool(data.get("read_only")) or data.get("revision") is not None,
            )
    return best


# ------------------------------------------------------------------------------- answering


def _short(text: str) -> str:
    one = " ".join(text.split())
    return one if len(one) <= _SHORT else one[: _SHORT - 1] + "…"


def _pre_answer(
    agent: str, decision: str, reason: str, updated: Mapping[str, Any] | None = None
) -> HookAnswer:
    """A PreToolUse answer. Codex runs a command on ``allow`` and ``ask`` answers it does not
    support (it fails open), so for Codex allow is silence and ask becomes deny. ``updated``:
    the tool input to run instead (Claude Code's ``updatedInput``, with ``allow`` only)."""
    if agent == "codex":
        if decision == "allow":
            return HookAnswer(None)  # no answer: Codex's own approval rules apply
        if decision == "ask":
            decision = "deny"
            reason += "; Codex hooks cannot ask a person, so avfs refuses it: run it through `avfs proxy exec`, which issues an approval token"
    specific: dict[str, Any] = {
        "hookEventName": "PreToolUse",
        "permissionDecision": decision,
        "permissionDecisionReason": reason,
    }
    if updated is not None and decision == "allow":
        specific["updatedInput"] = dict(updated)
    return HookAnswer({"hookSpecificOutput": specific})


def _refuse(agent: str, event: str, message: str) -> HookAnswer:
    """The answer to an event avfs could not act on: a blocking denial before a tool runs
    (stdout says deny, stderr says why, exit 2), a non-blocking error after one (exit 1:
    exit 2 would make a Stop hook keep the agent going)."""
    text = f"avfs: {message}"
    if event == "PreToolUse":
        denied = _pre_answer(agent, "deny", text)
        return HookAnswer(denied.stdout, text + "\n", 2)
    return HookAnswer(None, text + "\n", 1)


def _checkpoint(home_path: str, where: MountedFork, message: str) -> tuple[str, bool]:
    """Checkpoint the fork; (commit, created). Imports pygit2: only when there is a fork."""
    from .core import checkpoint
    from .core.home import open_home

    vault = open_home(home_path).vault(where.vault)
    res = checkpoint.save(vault, where.fork, message=message)
    return str(res.checkpoint.commit), res.created


def _command_of(agent: str, event: HookEvent) -> str | list[str]:
    raw = (event.tool_input or {}).get("command")
    if isinstance(raw, str) and raw.strip():
        return raw
    # Codex's shell tools may pass an argument vector
    if agent == "codex" and isinstance(raw, list) and raw and all(isinstance(a, str) for a in raw):
        return list(raw)
    what = "missing" if raw is None else "empty" if raw in ("", []) else f"a {type(raw).__name__}"
    raise EventError(f"the Bash tool's `tool_input.command` is {what}, so avfs cannot classify it")


def self_command(argv0: str, executable: str) -> str:
    """The shell words that run this avfs (for a command the hook rewrites): the console
    script by absolute path when that is what runs (``argv0`` named ``avfs``), else
    ``PYTHON -m avfs_git``."""
    if os.path.basename(argv0) == "avfs" and os.path.isfile(argv0):
        return shlex.quote(os.path.abspath(argv0))
    return f"{shlex.quote(executable)} -m avfs_git"


# the shell a rewritten command runs in: Claude Code's Bash tool runs bash (or zsh), so a
# bash-ism (`[[ ]]`, arrays, `source`) keeps working; /bin/sh where there is no bash
_SHELLS: Final = ("/bin/bash", "/usr/bin/bash", "/bin/sh")
# `cd`, `cd DIR` with a plain DIR (no expansion, no second command): left as it is
_LONE_CD: Final = re.compile(r"\s*cd(?:\s+[\w./@%+=:,~-]+)?\s*")


@dataclasses.dataclass(frozen=True, slots=True)
class Confine:
    """How an allowed Bash call is rewritten to run confined (see :func:`_confined`).

    Attributes:
        avfs: the shell words that run avfs (:func:`self_command`); None: no rewriting.
        host: ``confined`` (rewrite), or ``writable``: run the command as it is
            (``$AVFS_HOOK_HOST=writable``, the counterpart of ``proxy exec --host writable``).
    """

    avfs: str | None
    host: str = "confined"


def confine_from(argv0: str, executable: str, environ: Mapping[str, str]) -> Confine:
    """How this hook process rewrites allowed Bash calls: avfs as it was started, and
    ``$AVFS_HOOK_HOST`` (``writable``: not at all; any other value: confined)."""
    host = "writable" if environ.get("AVFS_HOOK_HOST") == "writable" else "confined"
    return Confine(self_command(argv0, executable), host)


def _confined(
    agent: str, home_path: str, event: HookEvent, where: MountedFork | None, confine: Confine | None
) -> tuple[dict[str, Any] | None, str]:
    """The tool input that runs an allowed Bash call confined, and what the reason adds.

    The command becomes ``AVFS --home H --vault V:F proxy exec --quiet [--cwd DIR]
    [--timeout-ms N] -- /bin/bash -c 'COMMAND'``: it runs through the mount's exec socket in
    avfs's sandbox (docs/proxy.md), prints the command's own stdout and stderr and exits with
    its status. Only Claude Code takes a rewritten input here; elsewhere (no mounted fork, a
    read-only one, ``AVFS_HOOK_HOST=writable``) the command runs as it is and the reason says
    so."""
    if agent != "claude" or confine is None:
        return None, ""
    if confine.host == "writable":
        return None, "; not confined: AVFS_HOOK_HOST=writable, the command runs on the host as it is"
    if where is None:
        return None, (
            f"; not confined: {event.cwd} is not in a mounted avfs fork, so the command runs on the"
            " host as it is (mount a fork and start the agent there to confine it)"
        )
    if where.read_only:
        return None, f"; not confined: {where.vault}:{where.fork} is mounted read-only"
    if confine.avfs is None:
        return None, "; not confined: avfs does not know its own path"
    raw = (event.tool_input or {}).get("command")
    if not isinstance(raw, str):
        return None, ""
    if _LONE_CD.fullmatch(raw):
        # it only moves the agent's shell (Claude Code keeps its directory across calls);
        # confined, it would move nothing. Where it leads is judged at the next call.
        return None, "; not confined: a lone `cd` changes only the shell's directory"
    rel = os.path.relpath(os.path.realpath(event.cwd), where.mountpoint)
    rel = "" if rel == "." else rel
    if rel.split("/", 1)[0] == ".git":
        return None, f"; not confined: {event.cwd} is inside the fork's .git"
    words = [
        confine.avfs,
        "--home",
        shlex.quote(home_path),
        "--vault",
        shlex.quote(f"{where.vault}:{where.fork}"),
        "proxy",
        "exec",
        "--quiet",
    ]
    if rel:
        words += ["--cwd", shlex.quote(rel)]
    timeout = (event.tool_input or {}).get("timeout")
    if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0:
        words += ["--timeout-ms", str(timeout)]
    shell = next((p for p in _SHELLS if os.access(p, os.X_OK)), "/bin/sh")
    words += ["--", shell, "-c", shlex.quote(raw)]
    updated = {**(event.tool_input or {}), "command": " ".join(words)}
    return updated, f"; runs confined: `avfs proxy exec` in {where.vault}:{where.fork} (see docs/proxy.md)"


def _pre_tool_use(
    agent: str, home_path: str, event: HookEvent, project_dir: str | None, confine: Confine | None = None
) -> HookAnswer:
    if event.tool_name != "Bash":
        # only shell commands are classified; other tools go through the agent's own rules
        return HookAnswer(None)
    command = _command_of(agent, event)
    text = command if isinstance(command, str) else shlex.join(command)
    # The workspace root decides what is "outside the workspace"; it never comes from the
    # agent's `cwd` (after `cd /` everything would be inside): the mount point of the fork
    # `cwd` is in, else the project directory, else a root nothing is inside.
    cwd = os.path.realpath(event.cwd)
    where = find_mounted_fork(home_path, event.cwd)
    outside_project: str | None = None
    if where is not None:
        root = where.mountpoint
    elif project_dir and os.path.isabs(project_dir):
        root = os.path.realpath(project_dir)
        if not _inside(cwd, root):
            outside_project = root
    else:
        root = _NO_WORKSPACE
    from .policy import Policy

    policy = Policy.load(home_path, where.vault_path if where is not None else None)
    decision = policy.classify(command, root, cwd)
    # too long or complex to analyse: no person reads 240 KB either, so a hook denies it
    action = "deny" if decision.rule == "builtin:too-complex" else str(decision.action)
    reason = f"avfs policy: {decision.reason}"
    if outside_project is not None and action != "deny":
        return _pre_answer(
            agent,
            "ask",
            reason + f"; but the command runs in {event.cwd}, outside the project {outside_project}"
            " and outside any mounted avfs fork, so a person decides",
        )
    if action == "allow":
        updated, note = _confined(agent, home_path, event, where, confine)
        return _pre_answer(agent, "allow", reason + note, updated)
    if action == "deny":
        return _pre_answer(agent, "deny", reason)
    if action == "require_approval":
        return _pre_answer(agent, "ask", reason)
    # allow_with_checkpoint
    if where is None:
        return _pre_answer(
            agent,
            "ask",
            reason + f"; but {event.cwd} is not in a mounted avfs fork, so no checkpoint can be taken first",
        )
    if where.read_only:
        return _pre_answer(agent, "deny", reason + f"; {where.vault}:{where.fork} is mounted read-only")
    try:
        commit, created = _checkpoint(home_path, where, f"avfs hook: before `{_short(text)}`")
    except AvfsError as exc:
        return _pre_answer(agent, "deny", reason + f"; but the checkpoint first failed: {exc.message}")
    got = "checkpoint" if created else "nothing to checkpoint; fork at"
    updated, note = _confined(agent, home_path, event, where, confine)
    return _pre_answer(
        agent, "allow", reason + f"; {got} {commit[:12]} of {where.vault}:{where.fork}" + note, updated
    )


def _after(home_path: str, event: HookEvent) -> HookAnswer:
    """PostToolUse and Stop: checkpoint the fork the working directory is mounted from."""
    where = find_mounted_fork(home_path, event.cwd)
    if where is None:
        msg = f"avfs: {event.cwd} is not in a mounted avfs fork; nothing to checkpoint"
        return HookAnswer({"systemMessage": msg, "suppressOutput": True})
    if where.read_only:
        msg = f"avfs: {where.vault}:{where.fork} is mounted read-only; nothing to checkpoint"
        return HookAnswer({"systemMessage": msg, "suppressOutput": True})
    what = f"after {event.tool_name}" if event.event == "PostToolUse" else "at the end of a turn"
    try:
        commit, created = _checkpoint(home_path, where, f"avfs hook: {what}")
    except AvfsError as exc:
        return HookAnswer(None, f"avfs: cannot checkpoint {where.vault}:{where.fork}: {exc.message}\n", 1)
    if created:
        msg = f"avfs: checkpoint {commit[:12]} of {where.vault}:{where.fork} ({what})"
    else:
        msg = f"avfs: {where.vault}:{where.fork} unchanged since checkpoint {commit[:12]}"
    return HookAnswer({"systemMessage": msg, "suppressOutput": True})


def answer(
    agent: str,
    name: str,
    data: bytes,
    home_path: str,
    *,
    project_dir: str | None = None,
    confine: Confine | None = None,
) -> HookAnswer:
    """Answer one hook event; never raises.

    Args:
        agent: ``claude`` or ``codex``.
        name: ``pre-tool-use``, ``post-tool-use`` or ``stop``.
        data: the event, as the agent wrote it on stdin.
        home_path: the avfs home (its vaults' mount registries and policies).
        project_dir: the agent's project directory (``$CLAUDE_PROJECT_DIR``): the workspace
            root for classifying a command outside any mounted fork.
        confine: how an allowed Bash call is rewritten to run confined (Claude Code); None:
            never rewritten.
    """
    event_name = EVENTS.get(name, "PreToolUse")
    try:
        if agent not in AGENTS or name not in EVENTS:
            raise EventError(f"unknown hook {agent} {name}")
        event = parse_event(data, event_name)
        if event_name == "PreToolUse":
            return _pre_tool_use(agent, home_path, event, project_dir, confine)
        return _after(home_path, event)
    except EventError as exc:
        return _refuse(agent, event_name, str(exc))
    except AvfsError as exc:  # a broken policy file, an unreadable home: refuse, never guess
        return _refuse(agent, event_name, exc.message)
    except Exception as exc:  # an avfs bug: still an answer, never a traceback
        return _refuse(agent, event_name, f"internal error: {type(exc).__name__}: {exc}")


def codex_notify(payload: str, home_path: str) -> HookAnswer:
    """Codex's ``notify`` program: called after a turn with one JSON argument
    (``{"type": "agent-turn-complete", "cwd": ..., ...}``); checkpoints like a Stop hook.
    Codex ignores the answer, so it is a line for a person and an exit status."""
    try:
        doc = json.loads(payload)
    except ValueError as exc:
        return HookAnswer(None, f"avfs: the notification is not JSON ({exc})\n", 1)
    if not isinstance(doc, dict):
        return HookAnswer(None, "avfs: the notification is not a JSON object\n", 1)
    if doc.get("type") != "agent-turn-complete":
        return HookAnswer(None)  # other notifications: nothing to do
    cwd = doc.get("cwd")
    if not isinstance(cwd, str) or not os.path.isabs(cwd):
        return HookAnswer(None, "avfs: the notification has no absolute `cwd`\n", 1)
    try:
        ans = _after(home_path, HookEvent("Stop", str(doc.get("thread-id", "")), cwd, None, None))
    except Exception as exc:
        return HookAnswer(None, f"avfs: internal error: {type(exc).__name__}: {exc}\n", 1)
    msg = (ans.stdout or {}).get("systemMessage")
    return HookAnswer(None, (msg + "\n") if msg else ans.stderr, ans.exit_code)


# ------------------------------------------------------------------------------- installing


@dataclasses.dataclass(frozen=True, slots=True)
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
        rest = head[3:]
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


# -- git: the vault's pre-receive hook

PRE_RECEIVE_MARK: Final = "# avfs-managed: pre-receive"
PRE_RECEIVE: Final = r"""#!/bin/sh
# avfs-managed: pre-receive
#
# Installed into an avfs vault by `avfs hooks install --for git`; `avfs hooks uninstall
# --for git` removes it. Refuses a push that rewrites (non-fast-forward) or deletes a fork
# while avfs has it mounted: the mount's workspace is based on the fork's tip, and an agent
# working there should not have its history pulled out from under it. Fast-forward pushes
# are accepted (avfs rebases a mounted workspace's changes onto the new tip when it
# checkpoints). Unmount the fork (`avfs unmount VAULT:FORK`) to force a rewrite.
#
# A fork is mounted while <vault>/avfs/mounts/<fork>.json names a live process.

zero=0000000000000000000000000000000000000000
status=0
while read -r old new ref; do
    case "$ref" in
        refs/heads/*) fork=${ref#refs/heads/} ;;
        *) continue ;;
    esac
    # the registry file's name: % -> %25, / -> %2F (as avfs writes it)
    key=$(printf '%s' "$fork" | sed -e 's/%/%25/g' -e 's|/|%2F|g')
    reg="avfs/mounts/$key.json"
    [ -f "$reg" ] || continue
    pid=$(sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p' "$reg")
    [ -n "$pid" ] || continue
    if [ -d /proc ]; then
        [ -d "/proc/$pid" ] || continue
    else
        kill -0 "$pid" 2>/dev/null || continue
    fi
    if [ "$new" = "$zero" ]; then
        echo "avfs: refusing to delete fork '$fork': it is mounted (unmount it first: avfs unmount VAULT:$fork)" >&2
        status=1
        continue
    fi
    [ "$old" = "$zero" ] && continue
    if ! git merge-base --is-ancestor "$old" "$new" 2>/dev/null; then
        echo "avfs: refusing a non-fast-forward push to fork '$fork': it is mounted and would lose commits (unmount it first: avfs unmount VAULT:$fork)" >&2
        status=1
    fi
done
exit $status
"""


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

"""Answering an agent's hook event: Claude Code and Codex call avfs around their tool calls.

The agent writes one JSON event on stdin (the CLI, ``cli/hooks_cmd.py``, reads it, the
environment and ``~`` and passes them in); :func:`answer` classifies a shell command with
the same policy ``proxy exec`` applies, takes a checkpoint of the fork the agent's working
directory is mounted from, and answers in the agent's own protocol (:class:`HookAnswer`:
stdout JSON, stderr text, exit status). In a mounted fork, an allowed Claude Code Bash call
is rewritten to run confined through ``proxy exec`` (``updatedInput``, :func:`_confined`).
It never raises: a malformed event or an avfs failure is an answer too (a denial before a
tool runs).

The formats are documented in ``docs/hooks.md``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from typing import Any, Final

from ..core.errors import AvfsError, HookEventError
from ..core.records import dataclass
from ..core.settings import Settings
from ..core.vaults import registry

__all__ = [
    "AGENTS",
    "EVENTS",
    "Confine",
    "HookAnswer",
    "HookEvent",
    "answer",
    "codex_notify",
    "confine_from",
    "failure_text",
    "parse_event",
    "self_command",
]

AGENTS: Final = ("claude", "codex")
# the CLI's event names -> the agents' hook_event_name
EVENTS: Final = {"pre-tool-use": "PreToolUse", "post-tool-use": "PostToolUse", "stop": "Stop"}

_SHORT: Final = 80
# the workspace root of a classification outside any mount and project: a path nothing is
# inside (it holds a NUL), so every write the command makes counts as outside the workspace
_NO_WORKSPACE: Final = "/\x00avfs-no-workspace"

# ------------------------------------------------------------------------------- answers


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class HookEvent:
    """The fields of an agent's hook event that avfs uses (validated)."""

    event: str  # PreToolUse | PostToolUse | Stop
    session_id: str
    cwd: str
    tool_name: str | None
    tool_input: Mapping[str, Any] | None


def parse_event(data: bytes, expected: str) -> HookEvent:
    """Validate one hook event (``expected``: PreToolUse, PostToolUse or Stop).

    Raises:
        HookEventError: not JSON, not an object, a missing field or one of the wrong type, or an
            event other than ``expected``.
    """
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise HookEventError(f"the hook event on stdin is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise HookEventError(f"the hook event must be a JSON object, not {type(doc).__name__}")

    def text(key: str) -> str:
        value = doc.get(key)
        if not isinstance(value, str) or not value:
            what = "missing" if value is None else f"not a non-empty string ({type(value).__name__})"
            raise HookEventError(f"the hook event's `{key}` is {what}")
        return value

    name = text("hook_event_name")
    if name != expected:
        raise HookEventError(f"this hook answers {expected} events, not {name}")
    session = text("session_id")
    cwd = text("cwd")
    if not os.path.isabs(cwd):
        raise HookEventError(f"the hook event's `cwd` is not an absolute path: {cwd!r}")
    tool_name: str | None = None
    tool_input: Mapping[str, Any] | None = None
    if expected != "Stop":
        tool_name = text("tool_name")
        raw = doc.get("tool_input")
        if not isinstance(raw, dict):
            what = "missing" if raw is None else f"not an object ({type(raw).__name__})"
            raise HookEventError(f"the hook event's `tool_input` is {what}")
        tool_input = raw
    return HookEvent(expected, session, cwd, tool_name, tool_input)


# ------------------------------------------------------------------------------- where am I


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


# ------------------------------------------------------------------------------- answering


def _short(text: str) -> str:
    one = " ".join(text.split())
    return one if len(one) <= _SHORT else one[: _SHORT - 1] + "…"


def _pre_answer(
    agent: str, decision: str, reason: str, updated: Mapping[str, Any] | None = None
) -> HookAnswer:
    """A PreToolUse answer. Codex runs a command on ``allow`` and ``ask`` answers it does not
    support (it fails open), so for Codex allow is silence and ask becomes deny. ``updated``:
    the tool input to run instead (Claude Code's ``updatedInput``, with ``allow`` or ``ask``:
    an ``ask`` shows the person the input that will run)."""
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
    if updated is not None and decision in ("allow", "ask"):
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


def _checkpoint(settings: Settings, where: registry.MountedFork, message: str) -> tuple[str, bool]:
    """Checkpoint the fork; (commit, created). Imports pygit2: only when there is a fork."""
    from ..core.operations import checkpoint
    from ..mount.side import open_home

    vault = open_home(settings=settings).vault(where.vault)
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
    raise HookEventError(f"the Bash tool's `tool_input.command` is {what}, so avfs cannot classify it")


def self_command(argv0: str, executable: str) -> str:
    """The shell words that run this avfs (for a command the hook rewrites): the console
    script by absolute path when that is what runs (``argv0`` named ``avfs``), else
    ``PYTHON -P -m avfs_git`` (``-P``: the command runs in the agent's working directory, a
    mount it writes, which ``-m`` would put first on ``sys.path``: a package ``avfs_git``
    there would be what runs)."""
    if os.path.basename(argv0) == "avfs" and os.path.isfile(argv0):
        return shlex.quote(os.path.abspath(argv0))
    return f"{shlex.quote(executable)} -P -m avfs_git"


# the shell a rewritten command runs in: Claude Code's Bash tool runs bash (or zsh), so a
# bash-ism (`[[ ]]`, arrays, `source`) keeps working; /bin/sh where there is no bash
_SHELLS: Final = ("/bin/bash", "/usr/bin/bash", "/bin/sh")
# the characters of a lone `cd` line: none of them is shell syntax (no newline, quote,
# `$`, `~`, `;`, `&`, `#`, glob or brace), so a shell reads it as the policy's lexer does
_PLAIN: Final = re.compile(r"[ \t]*[A-Za-z0-9_./@%+=:,-]+(?:[ \t]+[A-Za-z0-9_./@%+=:,-]+)*[ \t]*")


def _lone_cd(raw: str) -> list[str] | None:
    """The words of ``raw`` when it is one plain ``cd`` and nothing else (``cd``, ``cd -``,
    ``cd DIR``, ``cd -- DIR``, ``builtin cd DIR``), read with the policy's shell lexer; else
    None. A newline, ``;``, ``&``, a comment, a quote or an expansion makes it something else."""
    if not _PLAIN.fullmatch(raw):
        return None
    from ..policy.lexer import Lexer, ParseError, TooComplex

    try:
        lexer = Lexer(raw, 0, 0)
        lexer.run()
    except (ParseError, TooComplex):
        return None
    words: list[str] = []
    for tok in lexer.toks:
        w = tok.word
        if tok.kind != "w" or w is None or w.dynamic or w.subs or w.glob or w.tilde or w.unknown:
            return None
        words.append(w.value)
    if words[:2] == ["builtin", "cd"]:
        words = words[1:]
    if not words or words[0] != "cd":
        return None
    args = words[1:]
    if args[:1] == ["--"]:
        args = args[1:]
        if len(args) != 1:
            return None
    elif args and args[0].startswith("-") and args[0] != "-":
        return None
    if len(args) > 1:
        return None
    return args


def _cd_after(raw: str, cwd: str, mountpoint: str) -> str:
    """What the agent's own shell runs after a confined lone ``cd`` succeeded, so that
    Claude Code's shell moves as the command said (its directory is kept across calls):
    ``command cd`` to the same place, as an absolute path (no ``CDPATH``, no function
    named ``cd``). Empty when ``raw`` is not a lone ``cd DIR``, or when DIR (its symlinks
    resolved) is not in the mount: the agent's shell never leaves the fork that way."""
    args = _lone_cd(raw)
    if not args or args == ["-"]:
        return ""  # not a lone `cd`, or one to $HOME or $OLDPWD: places outside the fork
    target = os.path.normpath(os.path.join(cwd, args[0]))
    if not _inside(os.path.realpath(target), os.path.realpath(mountpoint)):
        return ""
    return " && command cd -- " + shlex.quote(target)


@dataclass(frozen=True, slots=True)
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
    agent: str,
    settings: Settings,
    event: HookEvent,
    where: registry.MountedFork | None,
    confine: Confine | None,
) -> tuple[dict[str, Any] | None, str, str | None]:
    """The tool input that runs an allowed Bash call confined, what the reason adds, and
    why it must be refused instead (None: it may run).

    The command becomes ``AVFS --home H --vault V:F proxy exec --quiet [--cwd DIR]
    [--timeout-ms N] -- /bin/bash -c 'COMMAND'``: it runs through the mount's exec socket in
    avfs's sandbox (docs/proxy.md), prints the command's own stdout and stderr and exits with
    its status. A lone ``cd DIR`` is rewritten the same way, followed by ``&& command cd --
    /abs/DIR`` so that the agent's shell moves where the confined ``cd`` could go.

    In a mounted fork an allowed command is either rewritten or refused, never run as it
    is. Outside one (no fork to run in), for Codex (its hooks cannot rewrite yet) and with
    ``AVFS_HOOK_HOST=writable`` (the person's choice) the command runs as it is and the
    reason says so."""
    if agent != "claude" or confine is None:
        return None, "", None
    if confine.host == "writable":
        return None, "; not confined: AVFS_HOOK_HOST=writable, the command runs on the host as it is", None
    if where is None:
        return (
            None,
            f"; not confined: {event.cwd} is not in a mounted avfs fork, so the command runs on the"
            " host as it is (mount a fork and start the agent there to confine it)",
            None,
        )
    fork = f"{where.vault}:{where.fork}"
    if where.read_only:
        return (
            None,
            "",
            (
                f"{fork} is mounted read-only, where `avfs proxy exec` cannot run a command confined;"
                " avfs never lets a command of a mounted fork run unconfined (mount a fork read-write)"
            ),
        )
    if confine.avfs is None:
        return None, "", "avfs does not know its own path, so it cannot run the command confined"
    raw = (event.tool_input or {}).get("command")
    if not isinstance(raw, str) or not raw.strip():
        return None, "", "the command is not a shell line avfs can run confined"
    if "\x00" in raw:
        return None, "", "the command holds a NUL character, which no shell argument can carry"
    rel = os.path.relpath(os.path.realpath(event.cwd), where.mountpoint)
    rel = "" if rel == "." else rel
    if rel == ".." or rel.startswith("../"):
        return None, "", f"{event.cwd} resolves outside the mount of {fork}"
    if rel.split("/", 1)[0] == ".git":
        return None, "", f"{event.cwd} is inside the fork's .git, where no command runs confined"
    words = [
        confine.avfs,
        "--home",
        shlex.quote(settings.home),
        "--vault",
        shlex.quote(fork),
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
    after = _cd_after(raw, event.cwd, where.mountpoint)
    updated = {**(event.tool_input or {}), "command": " ".join(words) + after}
    note = f"; runs confined: `avfs proxy exec` in {fork} (see docs/proxy.md)"
    if after:
        note += "; then the agent's shell moves there (`command cd`)"
    return updated, note, None


def _pre_tool_use(
    agent: str, settings: Settings, event: HookEvent, project_dir: str | None, confine: Confine | None = None
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
    where = registry.mount_containing(settings.home, event.cwd, as_written=True)
    outside_project: str | None = None
    if where is not None:
        root = where.mountpoint
    elif project_dir and os.path.isabs(project_dir):
        root = os.path.realpath(project_dir)
        if not _inside(cwd, root):
            outside_project = root
    else:
        root = _NO_WORKSPACE
    from ..policy import Policy

    policy = Policy.load(
        settings.home, where.vault_path if where is not None else None, cache_dir=settings.cache_dir
    )
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
        updated, note, refuse = _confined(agent, settings, event, where, confine)
        if refuse is not None:
            return _pre_answer(agent, "deny", reason + f"; but {refuse}")
        return _pre_answer(agent, "allow", reason + note, updated)
    if action == "deny":
        if root is not _NO_WORKSPACE and outside_project is None:  # (`./$d` is inside cwd's workspace)
            from ..policy.paths import variable_hint

            hint = variable_hint(decision.commands)
            reason += f"; {hint}" if hint else ""
        return _pre_answer(agent, "deny", reason)
    if action == "require_approval":
        if where is None:
            return _pre_answer(agent, "ask", reason)
        # in a mounted fork even an approved command runs confined: the person is asked
        # about the rewritten command, and `proxy exec` then asks for its own approval token
        updated, note, refuse = _confined(agent, settings, event, where, confine)
        if refuse is not None:
            return _pre_answer(agent, "deny", reason + f"; but {refuse}")
        if updated is not None:
            note += "; it needs a person's approval there too: `proxy exec` prints an approval token"
        return _pre_answer(agent, "ask", reason + note, updated)
    # allow_with_checkpoint
    if where is None:
        return _pre_answer(
            agent,
            "ask",
            reason + f"; but {event.cwd} is not in a mounted avfs fork, so no checkpoint can be taken first",
        )
    if where.read_only:
        return _pre_answer(agent, "deny", reason + f"; {where.vault}:{where.fork} is mounted read-only")
    updated, note, refuse = _confined(agent, settings, event, where, confine)
    if refuse is not None:  # refused before a checkpoint is taken for nothing
        return _pre_answer(agent, "deny", reason + f"; but {refuse}")
    try:
        commit, created = _checkpoint(settings, where, f"avfs hook: before `{_short(text)}`")
    except AvfsError as exc:
        return _pre_answer(agent, "deny", reason + f"; but the checkpoint first failed: {exc.message}")
    got = "checkpoint" if created else "nothing to checkpoint; fork at"
    return _pre_answer(
        agent, "allow", reason + f"; {got} {commit[:12]} of {where.vault}:{where.fork}" + note, updated
    )


def _after(settings: Settings, event: HookEvent) -> HookAnswer:
    """PostToolUse and Stop: checkpoint the fork the working directory is mounted from."""
    where = registry.mount_containing(settings.home, event.cwd, as_written=True)
    if where is None:
        msg = f"avfs: {event.cwd} is not in a mounted avfs fork; nothing to checkpoint"
        return HookAnswer({"systemMessage": msg, "suppressOutput": True})
    if where.read_only:
        msg = f"avfs: {where.vault}:{where.fork} is mounted read-only; nothing to checkpoint"
        return HookAnswer({"systemMessage": msg, "suppressOutput": True})
    what = f"after {event.tool_name}" if event.event == "PostToolUse" else "at the end of a turn"
    aside = _set_aside(settings, where, event)
    try:
        commit, created = _checkpoint(settings, where, f"avfs hook: {what}")
    except AvfsError as exc:
        return HookAnswer(None, f"avfs: cannot checkpoint {where.vault}:{where.fork}: {exc.message}\n", 1)
    if created:
        msg = f"avfs: checkpoint {commit[:12]} of {where.vault}:{where.fork} ({what})"
    else:
        msg = f"avfs: {where.vault}:{where.fork} unchanged since checkpoint {commit[:12]}"
    if aside:
        msg += f"; {len(aside)} planted git file(s) set aside: {', '.join(aside[:3])}"
    return HookAnswer({"systemMessage": msg, "suppressOutput": True})


# the file tools whose ``tool_input.file_path`` the agent wrote in the mount (Claude Code)
_FILE_TOOLS: Final = frozenset(("Write", "Edit", "MultiEdit", "NotebookEdit"))
# Codex's patch tool: the paths it wrote are named only in the patch, on these lines
_PATCH_HEADS: Final = ("*** Add File: ", "*** Update File: ", "*** Move to: ")


def _patched_paths(value: object) -> list[str]:
    """The paths a Codex ``apply_patch`` wrote: its patch's ``*** Add File:``, ``***
    Update File:`` and ``*** Move to:`` lines, in whichever string of the tool's input
    holds the patch (its ``command``, as a string or an argument vector, or ``input``)."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in _patched_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _patched_paths(v)]
    if not isinstance(value, str) or "*** " not in value:
        return []
    return [
        line[len(head) :].strip()
        for line in value.splitlines()
        for head in _PATCH_HEADS
        if line.startswith(head) and line[len(head) :].strip()
    ]


def _set_aside(settings: Settings, where: registry.MountedFork, event: HookEvent) -> list[str]:
    """After an agent's file tool wrote in the mount (the kernel's write, which avfs's own
    writes' check never sees): what of a repository there would run a program in the
    person's git is set aside as after a ``proxy exec`` (``proxy/plantedgit.py``, the
    thirty-fourth round, NAME=plant2); the paths set aside. Codex's ``apply_patch`` names
    its paths only inside its patch (:func:`_patched_paths`; the thirty-fifth round, plant3:
    it planted ``src/`` for the person's ``git status`` as Claude Code's ``Write`` did)."""
    if event.event != "PostToolUse":
        return []
    path = (event.tool_input or {}).get("file_path")
    if event.tool_name in _FILE_TOOLS and isinstance(path, str):
        paths = [path]
    elif event.tool_name == "apply_patch":
        paths = _patched_paths(event.tool_input or {})
    else:
        return []
    rels = []
    for path in paths:
        rel = os.path.relpath(os.path.join(event.cwd, path), where.mountpoint)
        if not (rel == "." or rel == ".." or rel.startswith("../") or rel.split("/", 1)[0] == ".git"):
            rels.append(rel)
    if not rels:
        return []
    from ..mount.side import open_home
    from ..proxy import plantedgit

    planted = plantedgit.set_aside(where.mountpoint, rels)
    if planted:
        ws = open_home(settings=settings).vault(where.vault).workspace(where.fork)
        plantedgit.remember(ws.state_dir, planted)
    return [p.path for p in planted]


def answer(
    agent: str,
    name: str,
    data: bytes,
    settings: Settings,
    *,
    project_dir: str | None = None,
    confine: Confine | None = None,
) -> HookAnswer:
    """Answer one hook event; never raises.

    Args:
        agent: ``claude`` or ``codex``.
        name: ``pre-tool-use``, ``post-tool-use`` or ``stop``.
        data: the event, as the agent wrote it on stdin.
        settings: what the front end read from the environment: the avfs home (its
            vaults' mount registries and policies), the policy's cache.
        project_dir: the agent's project directory (``$CLAUDE_PROJECT_DIR``): the workspace
            root for classifying a command outside any mounted fork.
        confine: how an allowed Bash call is rewritten to run confined (Claude Code); None:
            never rewritten.
    """
    event_name = EVENTS.get(name, "PreToolUse")
    try:
        if agent not in AGENTS or name not in EVENTS:
            raise HookEventError(f"unknown hook {agent} {name}")
        event = parse_event(data, event_name)
        if event_name == "PreToolUse":
            return _pre_tool_use(agent, settings, event, project_dir, confine)
        return _after(settings, event)
    except HookEventError as exc:
        return _refuse(agent, event_name, str(exc))
    except AvfsError as exc:  # a broken policy file, an unreadable home: refuse, never guess
        return _refuse(agent, event_name, exc.message)
    except Exception as exc:  # an avfs bug: still an answer, never a traceback
        return _refuse(agent, event_name, f"internal error: {type(exc).__name__}: {exc}")


def codex_notify(payload: str, settings: Settings) -> HookAnswer:
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
        ans = _after(settings, HookEvent("Stop", str(doc.get("thread-id", "")), cwd, None, None))
    except Exception as exc:
        return HookAnswer(None, f"avfs: internal error: {type(exc).__name__}: {exc}\n", 1)
    msg = (ans.stdout or {}).get("systemMessage")
    return HookAnswer(None, (msg + "\n") if msg else ans.stderr, ans.exit_code)

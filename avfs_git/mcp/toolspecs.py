"""The MCP tools as data: each tool's name, description, input schema (required arguments,
types, no extra properties) and the document kind it answers with (:data:`TOOLS`), and
``exec``'s output schema. Every byte here is in each agent's context before it does
anything: :mod:`.tools` runs them.
"""

from __future__ import annotations

from typing import Any

from ..core.records import dataclass

# -- input schemas ---------------------------------------------------------------------------
# Every byte here is in each agent's context before it does anything (tools/list is sent
# whole): descriptions say when to use a tool, what it returns and how it fails, in as few
# words as that takes; the meaning of `vault`/`fork` is said once, in INSTRUCTIONS.
_S = {"type": "string", "minLength": 1}
_B = {"type": "boolean"}
_TARGET = {"vault": {**_S, "description": "VAULT or VAULT:FORK"}, "fork": _S}
_PATH = {"type": "string", "description": "relative to the workspace root"}
_REV = {**_S, "description": "checkpoint, fork, commit id, HEAD~1..."}


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: its name, what it does, its arguments, and the document kind it returns."""

    name: str
    description: str
    kind: str  # the `--json` document kind of its result (docs/schemas/<kind>.schema.json)
    properties: dict[str, Any]
    required: tuple[str, ...] = ()
    read_only: bool = False
    destructive: bool = False
    one_of: tuple[tuple[str, ...], ...] = ()  # exactly one of these sets of arguments

    def input_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": self.properties,
            "additionalProperties": False,
        }
        if self.required:
            schema["required"] = list(self.required)
        if self.one_of:
            schema["oneOf"] = [{"required": list(r)} for r in self.one_of]
        return schema


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "vault_list", "The home's vaults (forks, default fork, head).", "vault_list", {}, read_only=True
    ),
    ToolSpec(
        "fork_list",
        "A vault's forks: head, base, dirty (uncheckpointed changes).",
        "vault_info",
        {"vault": _TARGET["vault"]},
        read_only=True,
    ),
    ToolSpec(
        "fork",
        "Branch: new fork `name` from `fork`, as it is now (uncheckpointed changes and, unless"
        " `ignored` is false, ignored paths like node_modules included).",
        "fork_create",
        {**_TARGET, "name": _S, "ignored": _B},
        required=("name",),
    ),
    ToolSpec(
        "status",
        "What changed since the last checkpoint (`changes`: status, path) and any open merge.",
        "status",
        dict(_TARGET),
        read_only=True,
    ),
    ToolSpec(
        "changes_since",
        "File and vault events after `cursor` (none: now), oldest first, and the next `cursor`;"
        " `more`: call again; `all`: every fork. Fails cursor_invalid.",
        "changes",
        {**_TARGET, "cursor": _S, "all": _B},
        read_only=True,
    ),
    ToolSpec(
        "read_file",
        "A file's content (`files[0].content`, utf-8 or base64) and blob id (`blob`: what"
        " write_file's `expect` takes), now or at `rev`. Fails path_not_found, revision_not_found.",
        "file_content",
        {**_TARGET, "path": _PATH, "rev": _REV},
        required=("path",),
        read_only=True,
    ),
    ToolSpec(
        "write_file",
        "Create or replace a file (parents made); with `expect` (read_file's `blob`, or"
        " 'absent'), only if it still holds that, else expect_mismatch with `details.current`."
        " Also how to resolve a merge conflict: write the file without markers, then merge_continue.",
        "file_write",
        {
            **_TARGET,
            "path": _PATH,
            "content": {"type": "string"},
            "encoding": {"enum": ["utf-8", "base64"]},
            "executable": _B,
            "expect": _S,
        },
        required=("path", "content"),
    ),
    ToolSpec(
        "list_files",
        "A directory's entries (name, path, kind, mode, size).",
        "dir_listing",
        {**_TARGET, "path": _PATH},
        read_only=True,
    ),
    ToolSpec(
        "hydrate",
        "Lazy vault: fetch the files under `paths` (none: all) now, so later reads and"
        " commands need no server. Fails blob_not_local.",
        "hydrate",
        {**_TARGET, "paths": {"type": "array", "items": {"type": "string"}}},
    ),
    ToolSpec(
        "grep",
        "Search file contents (Python regex) now or at `rev`: `files[].lines[]` (line, text)."
        " No match is not an error (`files` empty).",
        "grep",
        {
            **_TARGET,
            "pattern": {"type": "string"},
            "paths": {"type": "array", "items": {"type": "string"}},
            "rev": _REV,
            "ignore_case": _B,
            "fixed": {**_B, "description": "pattern is a plain string"},
            "files_only": _B,
        },
        required=("pattern",),
        read_only=True,
    ),
    ToolSpec(
        "checkpoint_save",
        "Commit the uncheckpointed changes (`checkpoint.commit`); `name` tags it.",
        "checkpoint",
        {**_TARGET, "name": _S, "message": {"type": "string"}, "rebase": _B},
    ),
    ToolSpec(
        "checkpoint_list",
        "Named checkpoints, newest first (`all`: every commit).",
        "checkpoint_list",
        {**_TARGET, "all": _B, "limit": {"type": "integer", "minimum": 1}},
        read_only=True,
    ),
    ToolSpec(
        "checkpoint_restore",
        "Reset the fork to `rev`. The discarded state is kept: `undo` brings it back.",
        "restore",
        {**_TARGET, "rev": _REV},
        required=("rev",),
        destructive=True,
    ),
    ToolSpec(
        "undo",
        "Undo the vault's last operation (restore, merge, checkpoint, exec commit...), or `op_id`."
        " Fails nothing_to_undo, or ref_moved when it was built on since.",
        "undo",
        {"vault": _TARGET["vault"], "op_id": {"type": "integer", "minimum": 1}},
        destructive=True,
    ),
    ToolSpec(
        "log",
        "Commits newest first (id, message, checkpoints); from `rev`, or every fork with `all`.",
        "log",
        {**_TARGET, "all": _B, "limit": {"type": "integer", "minimum": 1}, "rev": _REV},
        read_only=True,
    ),
    ToolSpec(
        "diff",
        "Changes and a unified `patch`: workspace vs base; `old` vs workspace; `old` vs `new`."
        " `paths` limits it to files or directories.",
        "diff",
        {
            **_TARGET,
            "old": _REV,
            "new": _REV,
            "paths": {"type": "array", "items": {"type": "string"}},
            "format": {"enum": ["patch", "stat", "name_status"]},
            "context": {"type": "integer", "minimum": 0},
        },
        read_only=True,
    ),
    ToolSpec(
        "merge",
        "Merge fork `source` into `fork`. A conflict is not an error: `conflicted: true`, nothing"
        " moved; retry with `favor`, or `write_conflicts` then write_file + merge_continue.",
        "merge",
        {
            **_TARGET,
            "source": {**_S, "description": "fork or origin/BRANCH"},
            "no_ff": _B,
            "dry_run": _B,
            "favor": {"enum": ["ours", "theirs"]},
            "write_conflicts": _B,
            "allow_unrelated": _B,
            "capture": _B,
            "message": {"type": "string"},
        },
        required=("source",),
    ),
    ToolSpec(
        "merge_continue",
        "Commit an open merge once each conflicted file is written without markers (`abort`:"
        " give it up). Fails while a path is unresolved (details list them).",
        "merge",
        {**_TARGET, "abort": _B, "message": {"type": "string"}},
    ),
    ToolSpec(
        "exec",
        "Run a command in the fork under the policy, in a sandbox (no home directories; network"
        " only if the policy allows); commits what it changed. Result: `result`"
        " (exit_code, stdout, stderr), `commit`. Refusals are results: `decision.action`"
        " deny, or require_approval: nothing ran; a person runs `avfs proxy approve TOKEN`,"
        " then call again with `approve: TOKEN`.",
        "proxy_exec_result",
        {
            **_TARGET,
            "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "shell": {**_S, "description": "sh -c"},
            "cwd": _PATH,
            "timeout_ms": {"type": "integer", "minimum": 1},
            "max_output_bytes": {"type": "integer", "minimum": 0},
            "checkpoint": {"enum": ["auto", "always"]},
            "commit": _B,
            "mode": {"enum": ["auto", "fuse", "materialized"]},
            "keep_mount": _B,
            "env": {"type": "object", "additionalProperties": {"type": "string"}},
            "stdin": {"type": "string"},
            "approve": {"type": "string"},
        },
        destructive=True,
        one_of=(("argv",), ("shell",)),
    ),
)
TOOLS_BY_NAME = {t.name: t for t in TOOLS}


# -- output schemas --------------------------------------------------------------------------
# The full document schemas (avfs_git/schemas/<kind>.schema.json, 12-21 KB each once bundled)
# would be most of tools/list. A client needs none of them to call a tool, and the document's
# `kind` names its schema; only `exec`, whose envelope an agent must read to know whether
# anything ran, lists the fields it reads (a subset of proxy_exec_result.schema.json: extra
# properties allowed, so every real envelope validates).
_NULLABLE_OBJ = {"type": ["object", "null"]}
EXEC_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "success", "decision", "result", "exit_code", "error"],
    "properties": {
        "kind": {"const": "proxy_exec_result"},
        "success": _B,
        "exit_code": {"type": "integer"},
        "decision": _NULLABLE_OBJ,
        "approval": _NULLABLE_OBJ,
        "result": _NULLABLE_OBJ,
        "commit": _NULLABLE_OBJ,
        "error": _NULLABLE_OBJ,
    },
}


def output_schema(spec: ToolSpec) -> dict[str, Any] | None:
    """The output schema tools/list gives ``spec`` (only ``exec`` has one; see above)."""
    return EXEC_OUTPUT_SCHEMA if spec.name == "exec" else None

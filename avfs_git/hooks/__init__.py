"""Agent hooks and git hooks: front ends like ``cli/`` and ``mcp/``, pure of click and
terminal I/O (the CLI, ``cli/hooks_cmd.py``, reads stdin, the environment and ``~`` and
passes them in).

* :mod:`.events`: answering a Claude Code or Codex hook event (policy before a shell
  command, a checkpoint after a tool call or a turn).
* :mod:`.install`: installing the hooks into an agent's settings, or a vault's git hook.
* :mod:`.prereceive`: the git ``pre-receive`` hook's text.

Nothing is imported here, so answering an event (on every tool call of an agent) loads only
:mod:`.events`.
"""

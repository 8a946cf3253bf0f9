"""What every round's git-model steps (tests/gitmodel_steps*.py) read of the model
(tests/test_git_model.py ``GitModel``): annotations only, the model's own are used."""

from __future__ import annotations

from typing import Any


class ModelAttrs:
    """The model's attributes the step mixins use (annotations only)."""

    p: Any  # the plain worktree's side
    m: Any  # the mount's side
    home: str
    avfs_home: str
    mp: str
    backend: str
    last_checkpoint: bool
    forks: int
    kept: dict[str, Any]
    both: Any
    note: Any
    busy: Any

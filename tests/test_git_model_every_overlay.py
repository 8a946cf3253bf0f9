"""The git model's every-command run on the overlay mount: each git command and avfs
operation of tests/test_git_model.py's model once, in an order where each does something,
checked against plain git after every step (``_every_command_once``, which says what).

A file of its own (suitetime20): with ``--dist loadfile`` a file is one worker's, and the
run on both backends in one file held a worker for 179 s of ci21's 1,060 (4 tests, 202 s);
the pure-FUSE run is tests/test_git_model_every_fuse.py."""

from __future__ import annotations

import pytest

from .test_git_model import _every_command_once
from .test_overlay import require_overlay


@pytest.mark.timeout(900)  # ~150 steps, each checked: 5 minutes at a load of 28 on 2 cores
def test_every_command_once_agrees_with_plain_git() -> None:
    require_overlay()
    _every_command_once("overlay")

"""A pytest plugin: the CPU of a git model run (tests/test_git_model*.py) split by what the
model does, every process the run starts counted (a cpuacct cgroup of the pytest process's
own, cgroup v1, as root): a model's set-up, the check after each step (and inside it: both
sides' files, both sides' `git status`, avfs's status, the tags and notes), remounts,
checkpoints, teardown, git run on both sides (``both``), and the rest (the steps' other
work, pytest's start). Nested phases are counted in the outer one; the check's parts and
``both`` are counted where they run as well (``~`` names).

    PYTHONPATH=bench MODELPARTS_TAG=NAME .venv/bin/python -m pytest -p modelparts \\
        -p no:xdist tests/test_git_model_every_fuse.py

One JSON line a run appended to ``MODELPARTS_OUT`` (default
``/tmp/modelparts.jsonl``): each phase's seconds and count, ``total`` and ``rest``.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

GROUP = f"/sys/fs/cgroup/cpuacct/modelparts-{os.getpid()}"
ACC: dict[str, float] = {}
CNT: dict[str, int] = {}
STACK: list[str] = []
T0 = 0.0


def _use() -> float:
    with open(os.path.join(GROUP, "cpuacct.usage")) as fh:
        return int(fh.read()) / 1e9


def _count(label: str, took: float) -> None:
    ACC[label] = ACC.get(label, 0.0) + took
    CNT[label] = CNT.get(label, 0) + 1


def _part(owner: Any, name: str, label: str) -> None:
    """``owner.name`` counted as ``label`` wherever it runs (inside a phase too)."""
    f = getattr(owner, name)

    @functools.wraps(f)
    def counted(*a: Any, **k: Any) -> Any:
        t = _use()
        try:
            return f(*a, **k)
        finally:
            _count(label, _use() - t)

    setattr(owner, name, counted)


def _phase(owner: Any, name: str, label: str) -> None:
    """``owner.name`` counted as ``label`` where no other phase is running."""
    f = getattr(owner, name)

    @functools.wraps(f)
    def counted(*a: Any, **k: Any) -> Any:
        if STACK:
            return f(*a, **k)
        STACK.append(label)
        t = _use()
        try:
            return f(*a, **k)
        finally:
            _count(label, _use() - t)
            STACK.pop()

    setattr(owner, name, counted)


def pytest_configure(config: Any) -> None:
    global T0
    os.makedirs(GROUP, exist_ok=True)
    with open(os.path.join(GROUP, "cgroup.procs"), "w") as fh:
        fh.write(str(os.getpid()))
    from tests import gitmodel_steps29 as g29
    from tests import test_git_model as tgm

    _phase(tgm.GitModel, "__init__", "setup")
    _phase(tgm.GitModel, "check", "check")
    _phase(tgm.GitModel, "teardown", "teardown")
    _phase(tgm.GitModel, "remount_now", "remount")
    _phase(tgm.GitModel, "remount_anywhere", "remount")
    _phase(g29.TwentyNinthRoundSteps, "remount_on", "remount")
    _phase(tgm.GitModel, "checkpoint", "checkpoint")
    _part(tgm, "_tree", "~tree")
    _part(tgm.Side, "porcelain_head", "~status")
    _part(tgm.GitModel, "avfs_status_doc", "~avfsstatus")
    _part(tgm.Side, "labels", "~labels")
    _part(tgm.GitModel, "both", "~both")
    T0 = _use()


def pytest_unconfigure(config: Any) -> None:
    total = _use() - T0
    out: dict[str, Any] = {k: [round(v, 2), CNT[k]] for k, v in ACC.items()}
    out["total"] = round(total, 2)
    out["rest"] = round(total - sum(v for k, v in ACC.items() if not k.startswith("~")), 2)
    print("\nmodelparts", json.dumps(out))
    with open(os.environ.get("MODELPARTS_OUT", "/tmp/modelparts.jsonl"), "a") as fh:
        fh.write(json.dumps({"tag": os.environ.get("MODELPARTS_TAG", ""), **out}) + "\n")
    with open(os.path.join(GROUP, "..", "cgroup.procs"), "w") as fh:
        fh.write(str(os.getpid()))
    try:
        os.rmdir(GROUP)
    except OSError:
        pass

"""`make test`'s workers take the longest files first (tests/filesched.py): checked on
xdist's own scheduler, as its controller makes it through the suite's hook."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from . import conftest, filesched

ROOT = Path(__file__).resolve().parent.parent


class _Node:
    """A worker as xdist's scheduler sees it: the files it was sent, in order."""

    shutting_down = False

    def __init__(self, name: str, collection: list[str]) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.collection = collection
        self.sent: list[str] = []

    def send_runtest_some(self, indices: list[int]) -> None:
        files = {self.collection[i].split("::")[0] for i in indices}
        assert len(files) == 1, files  # (one file a unit)
        self.sent.append(files.pop())

    def shutdown(self) -> None:
        self.shutting_down = True


def _config(dist: str = "loadfile") -> Any:
    values = {"dist": dist, "tx": ["2*popen"]}
    return SimpleNamespace(getvalue=values.__getitem__, option=SimpleNamespace(loadscopereorder=True))


def _collection(counts: dict[str, int]) -> list[str]:
    return [f"{f}::test_{i}" for f, n in counts.items() for i in range(n)]


def test_a_long_file_of_few_tests_is_handed_out_before_files_of_many(pytestconfig: pytest.Config) -> None:
    """The hook pytest calls (the suite's conftest first) makes the scheduler; with the
    times tests/filetimes.json holds, test_git_model_every_fuse.py (1 test, one of the
    longest files) goes first and test_git_model16.py (14) second, ahead of files of 30 and
    40 tests (xdist's own order: most tests first, the git model last)."""
    counts = {
        "tests/test_a_many.py": 40,
        "tests/test_b_many.py": 30,
        "tests/test_git_model16.py": 14,
        "tests/test_git_model_every_fuse.py": 1,
    }
    times, _ = filesched.load()
    assert times["tests/test_git_model_every_fuse.py"] > times["tests/test_git_model16.py"], times
    sched = pytestconfig.pluginmanager.hook.pytest_xdist_make_scheduler(config=_config(), log=None)
    assert type(sched).__name__ == "LongestFirst", type(sched)
    coll = _collection(counts)
    nodes = [_Node("gw0", coll), _Node("gw1", coll)]
    for n in nodes:
        sched.add_node(n)
    for n in nodes:
        sched.add_node_collection(n, coll)
    sched.schedule()
    assert nodes[0].sent[0] == "tests/test_git_model_every_fuse.py", [n.sent for n in nodes]
    assert nodes[1].sent[0] == "tests/test_git_model16.py", [n.sent for n in nodes]


def test_other_dist_modes_keep_xdist_s_scheduler() -> None:
    """(the suite's hook answers None: xdist's own makes the scheduler)"""
    assert conftest.pytest_xdist_make_scheduler(_config("load"), None) is None  # type: ignore[arg-type]
    assert type(conftest.pytest_xdist_make_scheduler(_config(), None)).__name__ == "LongestFirst"  # type: ignore[arg-type]


def test_a_file_the_times_do_not_name_is_reckoned_by_its_tests() -> None:
    times = {"tests/test_long.py": 100.0, "tests/test_short.py": 5.0}
    counts = {
        "tests/test_short.py": 50,
        "tests/test_new.py": 30,
        "tests/test_long.py": 2,
        "tests/test_tiny.py": 1,
    }
    # (test_new: 30 tests x 2 s = 60 s; test_tiny: 2 s)
    assert filesched.order(counts, times, 2.0) == [
        "tests/test_long.py",
        "tests/test_new.py",
        "tests/test_short.py",
        "tests/test_tiny.py",
    ]


def test_the_times_are_written_from_a_run_s_report(tmp_path: Path) -> None:
    report = tmp_path / "cpu.json"
    files = [
        {"file": "tests/test_x.py", "wall": 30.04, "tests": 2, "cpu": 9.0},
        {"file": "tests/test_y.py", "wall": 10.0, "tests": 8, "cpu": 9.0},
    ]
    report.write_text(json.dumps({"files": files, "tests": []}))
    out = tmp_path / "times.json"
    filesched.write(str(report), out)
    assert filesched.load(out) == ({"tests/test_x.py": 30.0, "tests/test_y.py": 10.0}, 4.0)
    assert filesched.load(tmp_path / "missing.json") == ({}, 1.0)


def test_every_file_the_times_name_is_a_test_file() -> None:
    """(a file renamed or removed: write the times again, python -m tests.filesched)"""
    times, per_test = filesched.load()
    assert len(times) > 200 and 0 < per_test < 10, (len(times), per_test)
    gone = sorted(f for f in times if not (ROOT / f).is_file())
    assert not gone, gone


def test_the_git_model_s_every_command_runs_are_files_of_their_own() -> None:
    """The git model's every-command run on each backend (ci21: 106 s and 73 s of wall) is
    the one test of a file of its own: ``--dist loadfile`` gives a file to one worker, and
    the two runs and the random runs in tests/test_git_model.py held one for 202 s while
    the others took the rest (suitetime20). Between them the two files run both backends,
    each its whole run (``_every_command_once``, as the parametrized test did)."""
    import ast

    backends: dict[str, str] = {}
    for path in sorted((ROOT / "tests").glob("test_git_model*.py")):
        mod = ast.parse(path.read_text())
        tests = [n for n in mod.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
        runs = [t for t in tests if t.name == "test_every_command_once_agrees_with_plain_git"]
        if not runs:
            continue
        assert len(tests) == 1, (path.name, [t.name for t in tests])
        calls = [
            c
            for c in ast.walk(runs[0])
            if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id == "_every_command_once"
        ]
        assert len(calls) == 1 and isinstance(calls[0].args[0], ast.Constant), ast.dump(runs[0])
        assert not runs[0].decorator_list or all(
            "parametrize" not in ast.dump(d) for d in runs[0].decorator_list
        )
        backends[path.name] = str(calls[0].args[0].value)
    assert sorted(backends.values()) == ["fuse", "overlay"], backends

"""A failed ``==`` of large values is summarised (tests/bigdiff.py, wired in conftest)."""

from __future__ import annotations

import pytest

from . import bigdiff


def _trees(n: int) -> tuple[dict[str, str], dict[str, str]]:
    left = {f"src/pkg/module_{i:04}.py": f"blob {i:040x}" for i in range(n)}
    right = dict(left, **{"src/pkg/module_0007.py": "blob changed"})
    right.pop("src/pkg/module_0100.py", None)
    right["src/new.py"] = "blob new"
    return left, right


def test_a_large_dict_s_explanation_names_the_keys_that_differ(request: pytest.FixtureRequest) -> None:
    left, right = _trees(2000)
    answers = request.config.hook.pytest_assertrepr_compare(
        config=request.config, op="==", left=left, right=right
    )
    lines = next(a for a in answers if a and "the keys that differ" in a[0])
    assert "only left: 'src/pkg/module_0100.py'" in lines and "only right: 'src/new.py'" in lines, lines
    assert any(x.startswith("'src/pkg/module_0007.py': 'blob ") and "'blob changed'" in x for x in lines), (
        lines
    )
    assert len(lines) <= 1 + 3 * bigdiff.SHOWN


def test_small_values_and_other_operators_keep_pytest_s_own_explanation() -> None:
    left, right = _trees(10)
    assert bigdiff.explain("==", left, right) is None
    big_l, big_r = _trees(2000)
    assert bigdiff.explain("!=", big_l, big_r) is None


def test_large_lists_and_strings_say_where_they_part() -> None:
    a = [f"line {i}" for i in range(5000)]
    b = [*a[:4000], "other", *a[4001:], "extra"]
    lines = bigdiff.explain("==", a, b)
    assert (
        lines is not None and "lengths 5000 and 5001" in lines and "[4000]: 'line 4000' != 'other'" in lines
    ), lines
    s = "x" * 30_000
    lines = bigdiff.explain("==", s, s[:12_345] + "y" + s[12_346:])
    assert lines is not None and "offset 12,345" in lines[0], lines

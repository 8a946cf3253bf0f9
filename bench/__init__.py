"""The avfs benchmark harness: ``python -m bench`` (or ``make bench``).

Benchmarks are not tests: nothing here asserts. Each benchmark times an avfs operation and,
in the same run and on the same synthetic tree, the native file system or stock git doing
the same job, then reports medians, ratios and whether the target in ``DESIGN.md`` is met.

Modules:

- :mod:`bench.env`     paths, the hermetic git environment, subprocess helpers
- :mod:`bench.trees`   seeded synthetic trees, their git checkouts, template vaults (cached)
- :mod:`bench.timing`  repeats, medians, targets, results
- :mod:`bench.cases`   the benchmarks themselves
- :mod:`bench.report`  the table on stdout, ``bench/results/*.json``, ``latest.md``, docs
- :mod:`bench.cli`     argument parsing and the run loop

See ``docs/benchmarks.md`` for how to run it and what each figure means.
"""

from __future__ import annotations

__all__: list[str] = []

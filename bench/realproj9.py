"""Real projects through avfs, ninth round (docs/benchmarks.md, "Real projects, ninth
round"): each part beside the same in a plain ``git clone``, every step compared.

- ``cext``: MarkupSafe 2.1.5's sdist (its ``_speedups`` C extension) committed with a
  ``.gitignore`` of what builds make (``build/``, ``*.so``, ...): a venv, ``pip install
  --no-build-isolation -e .`` (the extension compiled into the tree and into ``build/``),
  the files built listed, ``git status --porcelain --ignored``, its 53 tests; an edit of
  the C source rebuilt (``build_ext -i``); a checkpoint, a restore to the source, an undo,
  ``git clean -fdx``. On realproj4's sides (a clone; a mount on each backend; ``proxy
  exec`` on each), interleaved step by step (``bench/realproj6.run_interleaved``).
- ``agents`` (``bench/realproj9agents.py``): two avfs homes against one ``git daemon``.
- ``loop`` (``bench/realproj9loop.py``): a person's daily loop on other projects.

Run: ``.venv/bin/python -m bench.realproj9 [--parts cext] [--sides ...]`` (as root);
results in ``bench/results/realproj9-<part>-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RP4_ROOT", "/tmp/rp9/rp4")
os.environ.setdefault("RP6_ROOT", "/tmp/rp9")
from bench import realproj4 as rp4
from bench import realproj6 as rp6

REPO = rp4.REPO
PRE, PY, NOTIME = rp4.PRE, rp4.PY, rp4.NOTIME
_SO = "sed -E 's/cpython-[0-9]+-[a-z0-9_-]+\\.so/SO/'"


def src_markupsafe(env: dict[str, str]) -> Path:
    """MarkupSafe 2.1.5's sdist committed whole (``add -f``: its ``*.egg-info`` is tracked
    and ignored, as sdists ship it), with a ``.gitignore`` of what builds make."""
    work = rp4.ROOT / "src" / "markupsafe"
    if work.exists():
        return work
    shutil.copytree(
        rp4.realdata.extract(rp4.realdata.pypi_sdist("MarkupSafe", "2.1.5"), rp4.ROOT / "src" / ".ms"),
        work,
        symlinks=True,
    )
    (work / ".gitignore").write_text(rp4.GITIGNORE_PY + ".pytest_cache/\n")
    rp4.git(work, "init", "-q", "-b", "main", env=env)
    rp4.commit_all(work, "MarkupSafe 2.1.5", env)
    return work


_TESTS = ".venv/bin/python -m pytest -q -p no:cacheprovider tests 2>&1 | tail -1" + NOTIME
_BUILT = (
    f"find . -path ./.venv -prune -o \\( -name '*.so' -o -name '*.o' \\) -print | {_SO} | sort; "
    f"find build -type f 2>/dev/null | {_SO} | sort; "
)
CEXT_STEPS: list[tuple[str, str]] = [
    ("ckpt", "source"),
    (
        "sh",
        PRE + f"{PY} -m venv --system-site-packages .venv; "
        ".venv/bin/python -m pip install -q --no-build-isolation --no-index -e . >/dev/null 2>&1; "
        "echo pip=$?; " + _BUILT + ".venv/bin/python -c 'from markupsafe import _speedups as s, escape; "
        'print(s.__name__, escape("<a>"))\'; ' + _TESTS + "; git status --porcelain --ignored | sort",
    ),
    ("ckpt", "built"),
    (
        "sh",
        PRE + "printf '\\n/* rp9 */\\n' >> src/markupsafe/_speedups.c; sleep 1; "
        f"{PY} setup.py build_ext -i 2>&1 | grep -c -E '^(x86_64-linux-gnu-)?gcc' || true; "
        "for so in src/markupsafe/_speedups*.so; do [ $so -nt src/markupsafe/_speedups.c ] && echo so-newer; done; "
        + _BUILT
        + _TESTS
        + "; git status --porcelain --ignored | sort",
    ),
    ("ckpt", "edited"),
    ("restore", "source"),
    (
        "sh",
        PRE
        + _BUILT
        + "grep -c rp9 src/markupsafe/_speedups.c || true; git status --porcelain --ignored | sort; "
        + _TESTS,
    ),
    ("undo", ""),
    (
        "sh",
        PRE + "grep -c rp9 src/markupsafe/_speedups.c; git clean -fdxq; git status --porcelain --ignored; "
        "ls -a; git log --format=%s | head -3",
    ),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="cext")
    ap.add_argument("--sides", default="", help="the sides (default: each part's own)")
    args = ap.parse_args()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for part in filter(None, args.parts.split(",")):
        res: dict[str, Any] = {"stamp": stamp, "part": part, "load_start": os.getloadavg()}
        t0 = time.monotonic()
        if part == "cext":
            sides = args.sides.split(",") if args.sides else rp4.SIDES
            res["trial"] = rp6.run_interleaved("cext", CEXT_STEPS, src_markupsafe, sides)
        else:
            raise SystemExit(f"unknown part {part!r}")
        res["load_end"] = os.getloadavg()
        res["wall_s"] = round(time.monotonic() - t0, 1)
        out = REPO / "bench" / "results" / f"realproj9-{part}-{stamp}.json"
        out.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
        print(out, file=sys.stderr)


if __name__ == "__main__":
    main()

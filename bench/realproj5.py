"""Real projects' tools, fifth round (docs/benchmarks.md, "Real projects' tools, fifth
round"): many agents on two homes against one git server, a Debian source package with
its quilt patches, and a long session of 500+ checkpoints, each on the host disk, in an
overlay mount and in a pure-FUSE mount, compared.

- ``fleet``: docutils' released sdists 0.16 … 0.19 committed as a history (with a
  ``.gitignore`` of what its tests write) served by ``git daemon`` on 127.0.0.1. Two homes
  (one mounting on the overlay backend, one pure FUSE) each clone it lazily and give three
  agents a fork each. In each round, the diff between two real releases (0.19 → 0.20 →
  0.20.1 → 0.21.1 → 0.21.2) is split among the six agents by file; each agent brings its
  fork up to its home's main, applies its share (``git apply`` through ``proxy exec``) and
  runs docutils' test suite (``proxy exec`` again); each home merges its agents into main
  and publishes (``push``; refused: ``pull``, push again), both homes at once. After every
  round the server's main must be the next release's tree exactly (nothing lost, nothing
  doubled). A last round makes two agents of the two homes change one line each: the home
  that publishes second gets the conflict as data, takes its own side, publishes. The same
  rounds run with git (clones, worktrees, ``git merge``, ``git pull``, ``git push``) against
  a second repository on the same server. At the end: ``git fsck`` of the server and of
  both vaults, the refs each keeps, every exec commit reachable from the server's main,
  the tests' outputs per agent and round against git's side.
- ``debsrc``: GNU less 590 from Debian's source package (``apt-get source --download-only``
  with a private deb-src list): ``dpkg-source -x``, ``quilt push``/``pop``/``new``/
  ``refresh`` across checkpoints, restores and an undo, ``./configure && make``; through
  ``bench/realproj4.py``'s steps on the four sides (a mount on each backend, ``proxy exec``
  on each) against a clone on the host disk.
- ``session``: one mount, docutils 0.16 → 0.21.2 applied file by file, a checkpoint every
  four files (500+), then ``avfs log``/``diff``, a restore to the third checkpoint, ``avfs
  gc``, a restore to the last; each checkpoint's tree against ``git commit``'s in a clone
  doing the same, ``avfs status``/``checkpoint save`` with 10 changes timed at the start and
  at the end (``git status``/``git commit -a`` beside them).

Run: ``.venv/bin/python -m bench.realproj5 [--parts fleet,debsrc,session]`` (as root, FUSE
and overlayfs available); results in ``bench/results/realproj5-<part>-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RP4_ROOT", "/tmp/rp5/rp4")  # realproj4's sides and homes live there
from bench import realproj4 as rp4
from bench.fleet5 import unmount_layers

REPO = rp4.REPO
ROOT = Path(os.environ.get("RP5_ROOT", "/tmp/rp5"))
DEBSRC = ROOT / "debsrc"
LESS_DSC = "less_590-2.1~deb12u2.dsc"


def fetch_less() -> None:
    """less's source package into ``DEBSRC``, through apt with a deb-src list of its own (the
    machine's apt lists are left as they are)."""
    if (DEBSRC / LESS_DSC).exists():
        return
    apt = ROOT / "apt"
    for d in ("lists/partial", "cache/archives/partial"):
        (apt / d).mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text(
        "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://deb.debian.org/debian bookworm main\n"
    )
    (apt / "apt.conf").write_text(
        f'Dir::Etc::sourcelist "{apt}/sources.list";\nDir::Etc::sourceparts "-";\n'
        f'Dir::State::Lists "{apt}/lists";\nDir::Cache "{apt}/cache";\n'
    )
    env = {**os.environ, "APT_CONFIG": str(apt / "apt.conf")}
    subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
    DEBSRC.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["apt-get", "source", "--download-only", "less=590-2.1~deb12u2"],
        cwd=DEBSRC,
        env=env,
        check=True,
        capture_output=True,
    )


def src_less(env: dict[str, str]) -> Path:
    """A repository holding less's ``.dsc``, orig tarball and Debian tarball, one commit."""
    work = rp4.ROOT / "src" / "less-dsc"
    if work.exists():
        return work
    fetch_less()
    work.mkdir(parents=True)
    for f in DEBSRC.glob("less_590*"):
        shutil.copy2(f, work / f.name)
    rp4.git(work, "init", "-q", "-b", "main", env=env)
    rp4.commit_all(work, "less 590-2.1~deb12u2 (Debian's source package)", env)
    return work


Q = "cd less && export QUILT_PATCHES=debian/patches QUILT_PC=.pc QUILT_REFRESH_ARGS='-p ab --no-timestamps --no-index'; "
P = rp4.P0
DEBSRC_STEPS: list[tuple[str, str]] = [
    (
        "sh",
        P + f"dpkg-source --no-check --skip-patches -x {LESS_DSC} less; ls less | wc -l; ls -a less/debian",
    ),
    ("ckpt", "extracted"),
    ("sh", P + Q + "quilt push -a; echo push=$?; quilt applied; ls .pc | sort"),
    ("ckpt", "patched"),
    ("sh", P + Q + "quilt pop -a; echo pop=$?; quilt applied; echo applied=$?; ls -a .pc 2>&1 | sort"),
    ("restore", "patched"),
    ("sh", P + Q + "quilt applied; quilt top; quilt pop; echo pop=$?; quilt push; echo push=$?"),
    (
        "sh",
        P + Q + "./configure >/dev/null 2>&1; echo configure=$?; make -j2 >/dev/null 2>&1; echo make=$?; "
        "./less --version | head -1; printf 'one\\ntwo\\n' | ./less -FX; ls *.o | wc -l",
    ),
    ("ckpt", "built"),
    (
        "sh",
        P + Q + "quilt new rp5.patch; quilt add main.c; echo '/* rp5 */' >> main.c; quilt refresh; "
        "echo refresh=$?; cat debian/patches/rp5.patch; quilt pop; echo pop=$?; grep -c rp5 main.c; "
        "quilt push; echo push=$?; tail -2 debian/patches/series; make 2>&1 | grep -c -E '^(gcc|cc)'",
    ),
    ("ckpt", "refreshed"),
    ("restore", "extracted"),
    (
        "sh",
        P + Q + "quilt applied; echo applied=$?; ls -a .pc 2>&1; ls *.o 2>/dev/null | wc -l; "
        "grep -c rp5 main.c; ls debian/patches | sort",
    ),
    ("undo", ""),
    (
        "sh",
        P + Q + "quilt applied; quilt pop -a >/dev/null; echo pop=$?; quilt push -a | tail -1; "
        "make 2>&1 | grep -c -E '^(gcc|cc)'; ./less --version | head -1",
    ),
    (
        "sh",
        P + "cd less && make distclean >/dev/null 2>&1; echo distclean=$?; ls Makefile config.status 2>&1",
    ),
]


def run_debsrc(sides: list[str]) -> dict[str, Any]:
    rp4.SOURCES["less"] = src_less
    rp4.TRIALS["debsrc"] = {"source": "less", "steps": DEBSRC_STEPS}
    home = rp4.ROOT / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = rp4.env_base(home)
    return rp4.run_trial("debsrc", sides, env)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="fleet,debsrc,session")
    ap.add_argument("--sides", default=",".join(rp4.SIDES), help="debsrc's sides")
    ap.add_argument("--backends", default="overlay,fuse", help="the session's mount backends")
    args = ap.parse_args()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out_dir = REPO / "bench" / "results"
    for part in filter(None, args.parts.split(",")):
        res: dict[str, Any] = {"stamp": stamp, "part": part, "load_start": os.getloadavg()}
        t0 = time.monotonic()
        if part == "fleet":
            from bench.fleet5 import run_fleet

            res.update(run_fleet(ROOT / "fleet"))
        elif part == "debsrc":
            res["trial"] = run_debsrc(args.sides.split(","))
            unmount_layers(rp4.ROOT / "home")
        elif part == "session":
            from bench.session5 import run_session

            res.update(run_session(ROOT / "session", args.backends.split(",")))
            unmount_layers(ROOT / "session" / "run" / "home")
        else:
            raise SystemExit(f"unknown part {part!r}")
        res["load_end"] = os.getloadavg()
        res["wall_s"] = round(time.monotonic() - t0, 1)
        out = out_dir / f"realproj5-{part}-{stamp}.json"
        out.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
        print(out, file=sys.stderr)


if __name__ == "__main__":
    main()

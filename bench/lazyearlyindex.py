"""Would an index written before its sizes be safe? (docs/benchmarks.md, the thirteenth
round, row 2). A real lazy mount of a served repository, its index written by the mount as
today; then that index is turned into what an index written before the sizes would be:

- ``fsmonitor``: every entry's size 0 (``git read-tree``'s "not known yet"), everything
  else as the mount wrote it (the fsmonitor extension marking every entry valid, the
  journal's token, the untracked cache);
- ``assume_unchanged``: the same, with every entry's ``CE_VALID`` bit set as well (git's
  "assume unchanged": no git command looks at such an entry's file).

Each git command below runs in that mount against that index (a fresh copy before each),
and the blobs it fetched are counted (the vault's objects before and after) and its output
compared with the same command's against the mount's own index:

- ``git status`` (answered by the fsmonitor hook),
- ``git diff --stat``, ``git add -u`` (git 2.39.5: the hook answers ``/`` to all but
  ``git status``, docs/fuse.md "Only `git status` gets the answer"),
- ``git -c core.fsmonitor=false status`` (a git that does not ask the hook),
- ``git -c core.fsmonitor=false status`` after a file was changed (``assume_unchanged``:
  is the change seen?),
- ``git status`` with the index's token replaced by one the hook does not know (it answers
  ``/``),
- ``git status`` with a hook that fails (``core.fsmonitor=false`` given as a failing
  program: git then looks at every entry).

Each command is limited to one directory (``PATHSPEC``, 17 files) so that what it fetches
stays small. Run: ``.venv/bin/python -m bench.lazyearlyindex --served DIR``; the result goes
to ``bench/results/[PREFIX]lazyearlyindex-<time>.json`` and is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .lazycases import ROOT, _objects
from .remotecases import _daemon

PATHSPEC = "Django/docs/topics/db"
CE_VALID = 0x8000


def _entries(data: bytes) -> tuple[list[int], int]:
    """The offsets of a version-2 index's entries; where its extensions start."""
    sig, version, count = struct.unpack(">4sII", data[:12])
    assert sig == b"DIRC" and version == 2, (sig, version)
    offs, pos = [], 12
    for _ in range(count):
        offs.append(pos)
        (flags,) = struct.unpack(">H", data[pos + 60 : pos + 62])
        assert not flags & 0x4000  # (no extended flags in version 2)
        namelen = flags & 0xFFF
        if namelen == 0xFFF:
            namelen = data.index(b"\0", pos + 62) - pos - 62
        pos += (62 + namelen + 8) & ~7
    return offs, pos


def early(index: bytes, *, assume_unchanged: bool, token: bytes | None = None) -> bytes:
    """``index`` as written before its sizes: each entry's size 0 (and its CE_VALID bit set
    with ``assume_unchanged``; the fsmonitor token replaced by ``token``)."""
    body = bytearray(index[:-20])
    offs, _ = _entries(index)
    for off in offs:
        body[off + 36 : off + 40] = b"\0\0\0\0"
        if assume_unchanged:
            (flags,) = struct.unpack(">H", body[off + 60 : off + 62])
            body[off + 60 : off + 62] = struct.pack(">H", flags | CE_VALID)
    if token is not None:
        at = body.index(b"FSMN")
        size = struct.unpack(">I", body[at + 4 : at + 8])[0]
        ext = bytes(body[at + 8 : at + 8 + size])
        (ver,) = struct.unpack(">I", ext[:4])
        assert ver == 2
        end = ext.index(b"\0", 4)
        new = ext[:4] + token + ext[end:]
        body[at : at + 8 + size] = b"FSMN" + struct.pack(">I", len(new)) + new
    return bytes(body) + hashlib.sha1(body).digest()


def _git(mp: Path, *args: str, timeout: float = 60.0) -> str:
    try:
        r = subprocess.run(["git", *args], cwd=mp, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"[killed after {timeout:.0f} s]"
    return r.stdout + (f"[exit {r.returncode}] {r.stderr.strip()}" if r.returncode else "")


STATUS = ["status", "--porcelain", "--", PATHSPEC]
NO_HOOK = ["-c", "core.fsmonitor=false", "status", "--porcelain", "--", PATHSPEC]
# (name, git's arguments, the index's token replaced, a file of PATHSPEC changed first)
CASES: list[tuple[str, list[str], bool, bool]] = [
    ("status", STATUS, False, False),
    ("status after a change", STATUS, False, True),
    ("status, core.fsmonitor=false", NO_HOOK, False, False),
    ("status after a change, core.fsmonitor=false", NO_HOOK, False, True),
    ("status, a hook that fails", ["-c", "core.fsmonitor=hook-that-fails", *STATUS], False, False),
    ("status, a token the hook does not know", STATUS, True, False),
    ("diff --stat", ["diff", "--stat", "--", PATHSPEC], False, False),
    ("add -u", ["add", "-u", "--", PATHSPEC], False, False),
]


def _case(
    avfs: list[str],
    env: dict[str, str],
    url: str,
    t: Path,
    n: int,
    form: str,
    case: tuple[str, list[str], bool, bool],
    timeout: float,
) -> dict[str, object]:
    """One case in a fresh lazy clone's mount: the command against the early index, the
    objects it fetched, its answer against the same command's with the mount's own index."""
    name, argv, bad_token, change = case
    mp = t / f"mnt{n}"
    mp.mkdir()
    subprocess.run(
        [*avfs, "vault", "clone", "--lazy", url, f"v{n}"], check=True, env=env, capture_output=True
    )
    subprocess.run([*avfs, "mount", f"v{n}:main", str(mp)], check=True, env=env, capture_output=True)
    try:
        gitdir = Path((mp / ".git").read_text().split("gitdir:", 1)[1].strip())  # (the gate: the index)
        index = gitdir / "index"
        own = index.read_bytes()  # (the mount's, with every size)
        vault = t / "home" / "vaults" / f"v{n}.git"
        changed = mp / PATHSPEC / "index.txt"
        if change:
            changed.read_bytes()  # (fetched by the mount, not by the git below)
        time.sleep(3)  # (the mount's own fetches, the .gitignore files', are done)
        index.write_bytes(
            early(
                own,
                assume_unchanged=form == "assume_unchanged",
                token=b"avfs-unknown:0" if bad_token else None,
            )
        )
        if change:
            with open(changed, "a") as fh:
                fh.write("changed\n")
        before = _objects(vault)
        start = time.perf_counter()
        got = _git(mp, *argv, timeout=timeout)
        took = time.perf_counter() - start
        time.sleep(1)  # (a read the killed git left under way)
        fetched = _objects(vault) - before
        index.write_bytes(own)
        right = _git(mp, *argv)
        return {
            "form": form, "command": name, "objects_fetched": fetched, "seconds": round(took, 3),
            "answer_right": got == right, "answer": got, "right": right,
        }  # fmt: skip
    finally:
        subprocess.run([*avfs, "unmount", f"v{n}:main"], env=env, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--served", required=True)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--timeout", type=float, default=20.0, help="each git command's, against the early index")
    args = ap.parse_args()
    avfs = [str(ROOT / ".venv" / "bin" / "python"), "-m", "avfs_git"]
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="avfs-bench-early-") as tmp:
        t = Path(tmp)
        os.chdir(t)
        daemon, base = _daemon(Path(args.served).resolve())
        env = {**os.environ, "AVFS_PROGRESS": "never", "AVFS_SERVER": "off", "AVFS_LAYERS": "off"}
        env["AVFS_HOME"] = str(t / "home")
        try:
            n = 0
            for form in ("fsmonitor", "assume_unchanged"):
                for case in CASES:
                    rows.append(_case(avfs, env, f"{base}/big.git", t, n, form, case, args.timeout))
                    print(json.dumps(rows[-1]), flush=True)
                    n += 1
        finally:
            daemon.terminate()
            daemon.wait(10)
            os.chdir(ROOT)
    result = {"case": "an index written before its sizes, in a real lazy mount", "pathspec": PATHSPEC,
              "git": subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip(),
              "rows": rows}  # fmt: skip
    out = (
        ROOT
        / "bench"
        / "results"
        / time.strftime(f"{args.prefix}lazyearlyindex-%Y%m%dT%H%M%SZ.json", time.gmtime())
    )
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

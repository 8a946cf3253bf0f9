"""Walks over a real project written into a mount, layer by layer (issue 31; h-walks1's
section of the thirty-second round in docs/benchmarks.md).

``sdist_walk`` (bench/walkcases.py) compares avfs's mounts with the host's disk. This
script takes the stack apart to say where the excess is: Django 5.0.6's sdist (6,772
files) is extracted with ``tar xzf`` into every side below, then each round times, warm and
interleaved (the order flips each round), ``find DIR -type f``, ``grep -r -F -l`` of a
string found nowhere and ``os.walk`` + ``lstat`` in this process, each as the CPU time
(user + system) of the walking process (``wait4``'s, or ``getrusage``'s for the walk) and
as wall clock. Sides:

- ``native``: a directory on the host's disk (the baseline);
- ``native_btrfs``: a directory on a btrfs image made and mounted as avfs's layers file
  system is (``layers.ensure``);
- ``kernel_overlay``: stock overlayfs, empty lower directory, upper on the host's disk,
  the kernel's default options; ``kernel_overlay_avfs``: the same with avfs's options;
- ``kernel_overlay_fuse_lower``: avfs's options, the lower layer avfs's own FUSE view (the
  lower of the ``avfs_plain`` mount), the project in a directory made through the mount;
- ``kernel_overlay_btrfs``: stock overlayfs with its upper on the btrfs image;
- ``avfs_plain`` (``layers = off``) and ``avfs`` (the default home): a fork mounted on the
  overlay backend, the project extracted into it and checkpointed in process;
- with ``--options``: ``kernel_overlay_<variant>``, stock overlayfs with one option changed
  (``xino=off``, ``xino=on``, ``index=on``, ``metacopy=on``, ``uuid=off``, ``noatime``);
- with ``--owner``: ``native_own``, ``kernel_overlay_own``, ``avfs_plain_own`` and
  ``avfs_own`` (a second copy in the same mount, checkpointed with it), the project extracted with
  ``--no-same-owner`` (owned by the walker, as an agent's own files are; the sdist's files
  are uid 1001's, and root's walk of another's files checks their ACLs).

``--cold`` times instead the first ``os.walk`` + ``lstat`` (CPU) of a stock overlay just
mounted, for each option set of ``COLD`` (its upper layer's own dentries warm: the
overlay's lookups alone), against a warm walk of the native copy.

Run as root: ``.venv/bin/python -m bench.walklayers [--rounds N] [--options] [--owner]
[--cold] [--dir DIR]``; the result goes to ``bench/results/walklayers-<time>.json`` (or ``--out``)
and its medians, as ratios to ``native``, are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .env import PROJECT_DIR, WORK_DIR, rmtree, utc_stamp
from .fusecases import _empty_home, _realdata, _walk_lstat, mounted

NEEDLE = "avfs-walklayers-needle-found-nowhere"
AVFS_OPTS = "xino=auto,redirect_dir=on,index=off,metacopy=off"  # as fuse/daemon.py stacks
VARIANTS = {
    "xino_off": "xino=off",
    "xino_on": "xino=on",
    "index_on": "index=on,redirect_dir=on",
    "metacopy_on": "metacopy=on,redirect_dir=on",
    "uuid_off": "uuid=off",
    "noatime": "noatime",
}
COLD = {
    "default": "",
    "avfs": AVFS_OPTS,
    "redirect_dir_off": "redirect_dir=off",
    "userxattr": "userxattr",
    "metacopy_on": "metacopy=on,redirect_dir=on",
    "index_on": "index=on",
    "xino_off": "xino=off",
    "uuid_off": "uuid=off",
}
PHASES = ("find_cpu", "grep_cpu", "walk_cpu", "find", "grep", "walk")


def _child_cpu(argv: list[str]) -> tuple[int, float]:
    """Run ``argv`` (output dropped): its exit code and CPU time in ms (``wait4``)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), (usage.ru_utime + usage.ru_stime) * 1e3


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1e3


def one_round(top: str) -> dict[str, float]:
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    code, out["find_cpu"] = _child_cpu(["find", top, "-type", "f"])
    out["find"] = (time.perf_counter() - t0) * 1e3
    if code != 0:
        raise RuntimeError(f"find {top}: exit {code}")
    t0 = time.perf_counter()
    code, out["grep_cpu"] = _child_cpu(["grep", "-r", "-F", "-l", NEEDLE, top])
    out["grep"] = (time.perf_counter() - t0) * 1e3
    if code != 1:  # 1: nothing found, as wanted
        raise RuntimeError(f"grep -r {top}: exit {code}")
    t0, c0 = time.perf_counter(), _self_cpu()
    _walk_lstat(Path(top))
    out["walk"] = (time.perf_counter() - t0) * 1e3
    out["walk_cpu"] = _self_cpu() - c0
    return out


def _stock(root: Path, opts: str = "") -> Path:
    """Stock overlayfs at ``root/mnt`` over an empty ``root/lower`` (``lower=`` in ``opts``
    names another lower layer)."""
    for name in ("lower", "upper", "work", "mnt"):
        (root / name).mkdir(parents=True, exist_ok=True)
    lower = str(root / "lower")
    extra = []
    for opt in filter(None, opts.split(",")):
        if opt.startswith("lower="):
            lower = opt[len("lower=") :]
        else:
            extra.append(opt)
    o = ",".join([f"lowerdir={lower},upperdir={root / 'upper'},workdir={root / 'work'}", *extra])
    subprocess.run(["mount", "-t", "overlay", "avfs-walklayers", "-o", o, str(root / "mnt")], check=True)
    return root / "mnt"


def _umount(mp: Path) -> None:
    if subprocess.run(["umount", str(mp)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mp)], capture_output=True)


def _lowerdir(mountpoint: Path) -> str:
    """The ``lowerdir`` of the overlay mounted at ``mountpoint`` (avfs's FUSE view)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if fields[4] == str(mountpoint) and " - overlay " in line:
                for opt in line.split(" - ", 1)[1].split()[2].split(","):
                    if opt.startswith("lowerdir="):
                        return opt[len("lowerdir=") :]
    raise RuntimeError(f"no overlay at {mountpoint}")


@contextlib.contextmanager
def sides(base: Path, tarball: Path, options: bool, owner: bool) -> Iterator[dict[str, str]]:
    """Every side's project directory, made and mounted; all unmounted afterwards."""
    from avfs_git.core.operations import checkpoint
    from avfs_git.core.vaults import layers

    top = tarball.name.removesuffix(".tar.gz")

    def extract(into: Path, *flags: str) -> str:
        into.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "xzf", str(tarball), "-C", str(into), *flags], check=True)
        return str(into / top)

    with contextlib.ExitStack() as stack:
        out: dict[str, str] = {"native": extract(base / "native")}
        if owner:
            out["native_own"] = extract(base / "native-own", "--no-same-owner")
        fs_home = str(base / "btrfs-home")
        os.makedirs(fs_home)
        fs = Path(layers.ensure(fs_home, create=True))
        stack.callback(layers.unmount, fs_home)
        out["native_btrfs"] = extract(fs / "native")
        ovls: list[tuple[str, Path, str, tuple[str, ...]]] = [
            ("kernel_overlay", base / "kov", "", ()),
            ("kernel_overlay_avfs", base / "kov-avfs", AVFS_OPTS, ()),
            ("kernel_overlay_btrfs", fs / "kov", "", ()),
        ]
        if owner:
            ovls.append(("kernel_overlay_own", base / "kov-own", "", ("--no-same-owner",)))
        if options:
            ovls += [(f"kernel_overlay_{k}", base / f"kov-{k}", o, ()) for k, o in VARIANTS.items()]
        for name, root, opts, flags in ovls:
            mp = _stock(root, opts)
            stack.callback(_umount, mp)
            out[name] = extract(mp, *flags)
        for name, layers_mode in (("avfs_plain", "off"), ("avfs", None)):
            home, vault = _empty_home(base / f"home-{name}", "overlay_plain" if layers_mode else "overlay")
            stack.callback(vault.close)
            (base / f"mnt-{name}").mkdir()
            m = stack.enter_context(mounted(home, vault, "main", base / f"mnt-{name}", "overlay"))
            out[name] = extract(m.path)
            if owner:
                out[f"{name}_own"] = extract(m.path / "own", "--no-same-owner")
            checkpoint.save(vault, message="sdist")
            if name == "avfs_plain":  # avfs's FUSE lower under a stock overlay of its own
                mp = _stock(base / "kov-fuse", f"{AVFS_OPTS},lower={_lowerdir(m.path)}")
                stack.callback(_umount, mp)
                out["kernel_overlay_fuse_lower"] = extract(mp / "w")
        yield out


def run(names: dict[str, str], rounds: int) -> dict[str, list[dict[str, float]]]:
    raw: dict[str, list[dict[str, float]]] = {k: [] for k in names}
    for top in names.values():  # warm every cache once, untimed
        one_round(top)
    for i in range(rounds):
        for k in list(names) if i % 2 == 0 else list(reversed(names)):
            raw[k].append(one_round(names[k]))
    return raw


def cold(base: Path, tarball: Path, rounds: int) -> dict[str, list[float]]:
    """The first walk's CPU (ms) of each ``COLD`` overlay, mounted afresh each round."""
    top = tarball.name.removesuffix(".tar.gz")
    native = base / "native"
    native.mkdir()
    subprocess.run(["tar", "xzf", str(tarball), "-C", str(native)], check=True)
    for k, opts in COLD.items():  # the project written through each overlay once
        mp = _stock(base / k, opts)
        subprocess.run(["tar", "xzf", str(tarball), "-C", str(mp)], check=True)
        _umount(mp)

    def walk_cpu(path: Path) -> float:
        c0 = _self_cpu()
        _walk_lstat(path)
        return _self_cpu() - c0

    raw: dict[str, list[float]] = {"native": [], **{k: [] for k in COLD}}
    walk_cpu(native / top)
    for _ in range(rounds):
        raw["native"].append(walk_cpu(native / top))
        for k, opts in COLD.items():
            walk_cpu(base / k / "upper" / top)  # the upper's own dentries warm
            mp = _stock(base / k, opts)
            try:
                raw[k].append(walk_cpu(mp / top))
            finally:
                _umount(mp)
    return raw


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.walklayers", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--options", action="store_true", help="stock overlayfs with each option varied too")
    p.add_argument("--owner", action="store_true", help="the project owned by the walker too")
    p.add_argument("--cold", action="store_true", help="the first walk of a stock overlay just mounted")
    p.add_argument("--dir", help="where the sides go (default: a new directory under bench/.work)")
    p.add_argument("--out", help="the result's path (default bench/results/walklayers-<time>.json)")
    a = p.parse_args(argv)
    tarball = Path(_realdata().pypi_sdist("Django", "5.0.6"))  # type: ignore[attr-defined]
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="walklayers-", dir=a.dir or WORK_DIR)).resolve()
    load0 = os.getloadavg()
    if a.cold:
        try:
            walks = cold(base, tarball, a.rounds)
        finally:
            rmtree(base)
        names: dict[str, str] = {k: COLD.get(k, "native disk") for k in walks}
        raw = {k: [{"walk_cpu": ms} for ms in v] for k, v in walks.items()}
        phases: tuple[str, ...] = ("walk_cpu",)
    else:
        with sides(base, tarball, a.options, a.owner) as names:
            raw = run(names, a.rounds)
        rmtree(base)  # the homes' layers images unmounted first
        phases = PHASES
    med = {k: {ph: statistics.median(r[ph] for r in v) for ph in phases} for k, v in raw.items()}
    ratio = {k: {ph: med[k][ph] / med["native"][ph] for ph in phases} for k in med}
    stamp = utc_stamp()
    doc = {
        "what": (
            "the first os.walk+lstat of a stock overlay just mounted, by option set"
            if a.cold
            else "warm find / grep -r / os.walk+lstat over Django 5.0.6's sdist, layer by layer"
        ),
        "stamp": stamp,
        "kernel": platform.release(),
        "rounds": a.rounds,
        "load": {"start": load0, "end": os.getloadavg()},
        "sides": names,
        "median_ms": med,
        "ratio_to_native": ratio,
        "raw_ms": raw,
    }
    path = Path(a.out or PROJECT_DIR / "bench" / "results" / f"walklayers-{stamp}.json")
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"load {' '.join(f'{x:.1f}' for x in load0)} -> {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'side':28s}" + "".join(f"{ph:>10s}" for ph in phases))
    for k in med:
        print(f"{k:28s}" + "".join(f"{ratio[k][ph]:9.2f}x" for ph in phases))
    nat = " ".join(f"{ph} {med['native'][ph]:.1f}" for ph in phases)
    print(f"native ms: {nat}")
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

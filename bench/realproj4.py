"""Real projects' tools, fourth round: each trial in a plain clone, in a mounted fork on each
backend, and through ``proxy exec`` on each, compared (docs/benchmarks.md, "Real projects'
tools, fourth round").

A trial is a source tree (a git repository: released versions committed one after the
other, or one release) and a list of steps: ``sh`` (a shell script run where the tree is),
``ckpt NAME`` and ``restore NAME`` (in a mount: ``avfs checkpoint save``/``restore``; in the
plain clone: ``git add -A && git commit`` and ``git reset --hard`` with ``git clean -fd``,
the nearest git has) and ``undo`` (``avfs undo``; in the clone the step before's
state again). Through ``proxy exec`` each ``sh`` step is one exec (one commit), and the
other steps are avfs commands between them. After every step each side records the exit
code, the output with its own directory replaced by ``<ROOT>``, and ``git status``; at the
end, every file's kind, exec bit, size and hash (``.git`` left out). Each side is held
against the plain clone: what differs is listed per step.

Run: ``.venv/bin/python -m bench.realproj4 [--trials a,b] [--sides plain,overlay,...]``
(as root, FUSE and overlayfs available). Sources come from the registries through
``tests/realdata.py`` (PyPI sdists), Debian's source packages (``apt-get source``: zlib)
and Debian's Rust crates (``librust-memchr-dev``); results go to
``bench/results/realproj4-trials-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests import realdata  # noqa: E402

ROOT = Path(os.environ.get("RP4_ROOT", "/tmp/rp4"))
PY = "/usr/bin/python3"  # Debian's: /usr is visible in the sandbox, no policy needed
RUN_ID = time.strftime("%H%M%S", time.gmtime())  # forks of one run: <side>-<RUN_ID>
SIDES = ["plain", "overlay", "fuse", "exec-overlay", "exec-fuse"]
GITIGNORE_PY = ".venv/\nbuild/\ndist/\n__pycache__/\n*.so\n*.egg-info/\n"


def env_base(home: Path) -> dict[str, str]:
    user = ROOT / "userhome"
    user.mkdir(parents=True, exist_ok=True)
    (user / ".gitconfig").write_text(
        "[user]\n\tname = rp4\n\temail = rp4@example.org\n[init]\n\tdefaultBranch = main\n"
        "[advice]\n\tdetachedHead = false\n[safe]\n\tdirectory = *\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "AVFS_"))}
    env.update(
        HOME=str(user),
        AVFS_HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        LC_ALL="C.UTF-8",
        PATH="/root/.cargo/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        RUSTUP_HOME="/root/.rustup",
        PYTHONDONTWRITEBYTECODE="",
        SOURCE_DATE_EPOCH="1700000000",
        npm_config_cache=str(ROOT / "npmcache"),
    )
    env.pop("PYTHONDONTWRITEBYTECODE")
    return env


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def commit_all(work: Path, msg: str, env: dict[str, str]) -> None:
    git(work, "add", "-A", "-f", env=env)
    git(work, "commit", "-q", "--allow-empty", "-m", msg, env=env)


# -- sources ------------------------------------------------------------------------------


def src_bitarray(env: dict[str, str]) -> Path:
    """bitarray 2.9.0 → 2.9.2 (PyPI sdists, a C extension), one commit each, then a
    ``.gitignore`` of what a build makes."""
    work = ROOT / "src" / "bitarray-history"
    if work.exists():
        return work
    made = realdata.history("bitarray", ["2.9.0", "2.9.1", "2.9.2"], ROOT / "src", aggressive=False)
    (made / ".gitignore").write_text(GITIGNORE_PY)
    commit_all(made, "ignore what builds make", env)
    return made


def src_zlib(env: dict[str, str]) -> Path:
    """zlib 1.2.13 from Debian's source package (``apt-get source --download-only``: its
    orig tarball), CMake and ./configure; no ``.gitignore``: builds show as untracked."""
    work = ROOT / "src" / "zlib"
    if work.exists():
        return work
    dl = ROOT / "debsrc"
    orig = sorted(dl.glob("zlib_*.orig.tar.*"))
    if not orig:
        raise SystemExit(f"no zlib orig tarball in {dl}: apt-get source --download-only zlib there")
    tmp = ROOT / "src" / ".zlib"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    subprocess.run(["tar", "xf", str(orig[0]), "-C", str(tmp)], check=True)
    (top,) = list(tmp.iterdir())
    top.rename(work)
    (work / "win32").mkdir()  # the dfsg tarball drops win32/, which CMakeLists.txt names
    (work / "win32" / "zlib1.rc").write_text("")
    git(work, "init", "-q", "-b", "main", env=env)
    commit_all(work, "zlib 1.2.13 (Debian's orig tarball)", env)
    return work


def src_memchr(env: dict[str, str]) -> Path:
    """memchr 2.5.0, the crate as Debian ships it (librust-memchr-dev), its dependencies
    vendored from Debian's crate directory into ``vendor/`` (cargo's directory source:
    no network)."""
    work = ROOT / "src" / "memchr"
    if work.exists():
        return work
    reg = Path("/usr/share/cargo/registry")
    shutil.copytree(reg / "memchr-2.5.0", work, symlinks=True)
    git(work, "init", "-q", "-b", "main", env=env)
    commit_all(work, "memchr 2.5.0 (Debian's crate)", env)
    vendor = work / "vendor"
    vendor.mkdir()
    # memchr's dev-dependency quickcheck and what it needs (Debian's versions)
    for name in (
        "quickcheck-1.0.3",
        "rand-0.8.5",
        "rand_core-0.6.3",
        "getrandom-0.2.8",
        "cfg-if-1.0.0",
        "libc-0.2.139",
        "env_logger-0.9.3",
        "log-0.4.17",
        "regex-1.7.1",
        "regex-syntax-0.6.27",
        "aho-corasick-0.7.19",
        "atty-0.2.14",
        "termcolor-1.1.2",
        "humantime-2.1.0",
        "winapi-0.3.9",
        "winapi-util-0.1.5",
        "winapi-i686-pc-windows-gnu-0.4.0",
        "winapi-x86_64-pc-windows-gnu-0.4.0",
        "value-bag-1.0.0-alpha.9",
        "ctor-0.1.26",
        "sval-1.0.0-alpha.5",
        "serde-1.0.152",
        "serde_fmt-1.0.1",
        "erased-serde-0.3.23",
        "serde_derive-1.0.152",
        "syn-1.0.107",
        "quote-1.0.21",
        "proc-macro2-1.0.47",
        "unicode-ident-1.0.0",
        "version_check-0.9.4",
        "rand_chacha-0.3.1",
        "ppv-lite86-0.2.16",
        "compiler_builtins-0.1.70",
        "rustc-std-workspace-core-1.0.0",
    ):
        if (reg / name).exists():
            shutil.copytree(reg / name, vendor / name, symlinks=True)
    (work / ".cargo").mkdir(exist_ok=True)
    (work / ".cargo" / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "vendored"\n[source.vendored]\ndirectory = "vendor"\n'
        "[net]\noffline = true\n"
    )
    (work / ".gitignore").write_text("/target/\n/.cargo-home/\n")
    commit_all(work, "vendor the dependencies from Debian's crates", env)
    return work


def src_oddfs(env: dict[str, str]) -> Path:
    """MarkupSafe 2.1.5's sdist: the files the odd tools work on."""
    work = ROOT / "src" / "oddfs"
    if work.exists():
        return work
    top = realdata.extract(realdata.pypi_sdist("MarkupSafe", "2.1.5"), ROOT / "src" / ".oddfs")
    top.rename(work)
    git(work, "init", "-q", "-b", "main", env=env)
    commit_all(work, "MarkupSafe 2.1.5", env)
    return work


def src_npm(env: dict[str, str]) -> Path:
    """An npm project: express 4.19.2, semver 7.6.0, yargs 17.7.2 and esbuild 0.20.2 from the
    npm registry, locked (``package-lock.json`` made once with ``npm install
    --package-lock-only``, its cache warmed with ``npm ci`` in ``ROOT/npmcache``), and a test
    file of ``node:test`` that uses each (express serves on 127.0.0.1)."""
    work = ROOT / "src" / "npm"
    if work.exists():
        return work
    gen = ROOT / "npmgen"
    if not (gen / "package-lock.json").exists():
        raise SystemExit(f"no {gen}/package-lock.json: see src_npm")
    work.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(gen / name, work / name)
    shutil.copytree(gen / "test", work / "test")
    (work / ".gitignore").write_text("node_modules/\n")
    git(work, "init", "-q", "-b", "main", env=env)
    commit_all(work, "an npm project", env)
    return work


SOURCES = {
    "npm": src_npm,
    "bitarray": src_bitarray,
    "zlib": src_zlib,
    "memchr": src_memchr,
    "oddfs": src_oddfs,
}


# -- trials -------------------------------------------------------------------------------

PRE = "exec 2>&1; set -e; export LC_ALL=C.UTF-8; "
NOTIME = r" 2>&1 | sed -E 's/[0-9]+\.[0-9]+ ?s(ec(onds)?)?\b/N s/g; s/in [0-9.]+s/in Ns/'"

TRIALS: dict[str, dict[str, Any]] = {
    "pyext": {
        "source": "bitarray",
        "steps": [
            (
                "sh",
                PRE + f"{PY} -m venv --system-site-packages .venv; "
                ".venv/bin/python -m pip install -q --no-build-isolation --no-index -e . 2>&1 "
                "| grep -v -i -E 'warn|deprecat|^ *$' || true; "
                ".venv/bin/python -c 'import bitarray, sys; r = bitarray.test(verbosity=0); "
                "sys.exit(not r.wasSuccessful())'" + NOTIME,
            ),
            ("ckpt", "built"),
            (
                "sh",
                PRE + "printf '\\n/* rp4 */\\n' >> bitarray/_bitarray.c; "
                f"{PY} setup.py build_ext --inplace 2>&1 | grep -c '^gcc' || true; "
                "for so in bitarray/_bitarray*.so; do if [ $so -nt bitarray/_bitarray.c ]; then echo so-newer; fi; done; "
                ".venv/bin/python -c 'import bitarray; print(bitarray.__version__)'",
            ),
            (
                "sh",
                PRE + f"{PY} -m build --no-isolation --wheel --outdir dist . >/dev/null 2>&1; "
                "ls dist; unzip -Z1 dist/*.whl | sort",
            ),
            ("ckpt", "wheel"),
            ("restore", "built"),
            (
                "sh",
                PRE + "ls dist 2>&1 || true; grep -c rp4 bitarray/_bitarray.c || true; "
                ".venv/bin/python -c 'import bitarray; print(bitarray.__version__)'",
            ),
            ("undo", ""),
            ("sh", PRE + "grep -c rp4 bitarray/_bitarray.c || true; git log --format=%s | head -3"),
            ("sh", PRE + "git clean -fdxq; git status --porcelain --ignored; ls -a"),
        ],
    },
    "cmake": {
        "source": "zlib",
        "steps": [
            (
                "sh",
                PRE + "cmake -S . -B out -DCMAKE_BUILD_TYPE=Release >/dev/null; "
                "cmake --build out -j2 >/dev/null; (cd out && ctest 2>&1" + NOTIME + "); "
                "ls zconf.h*; git status --porcelain | head -20",
            ),
            ("ckpt", "out-of-tree"),
            (
                "sh",
                PRE + "git checkout -q -- zconf.h 2>/dev/null || git checkout -q HEAD~1 -- zconf.h; "
                "rm -f zconf.h.included; rm -rf out; cmake . >/dev/null; make -j2 >/dev/null 2>&1; "
                "ctest 2>&1" + NOTIME + "; ls zconf.h*",
            ),
            ("restore", "out-of-tree"),
            (
                "sh",
                PRE + "ls; git status --porcelain --untracked-files=all | wc -l; "
                "make -q 2>/dev/null && echo up-to-date || echo make-q=$?",
            ),
            (
                "sh",
                PRE + "git clean -fdxq; git checkout -q HEAD~1 -- zconf.h; git status --porcelain; "
                "./configure >/dev/null && make -j2 test 2>&1 | grep -i -E 'ok|fail|pass' | head",
            ),
            ("sh", PRE + "make distclean >/dev/null 2>&1 || true; git status --porcelain"),
        ],
    },
    "cargo": {
        "source": "memchr",
        "steps": [
            (
                "sh",
                PRE
                + "export CARGO_HOME=$PWD/.cargo-home RUSTUP_HOME=/root/.rustup PATH=/root/.cargo/bin:$PATH; cargo build -q 2>/dev/null; "
                "cargo test -q --no-run 2>/dev/null; "
                "cargo test -q --lib -- --skip quickcheck --skip qc 2>&1 | grep -E '^test result' "
                "| sed -E 's/finished in [0-9.]+s//'; find target -maxdepth 2 -type d | sort | head -20",
            ),
            ("ckpt", "built"),
            (
                "sh",
                PRE
                + "export CARGO_HOME=$PWD/.cargo-home RUSTUP_HOME=/root/.rustup PATH=/root/.cargo/bin:$PATH; echo '// rp4' >> src/lib.rs; "
                "cargo build -v 2>&1 | grep -c -E 'Running|Compiling' || true; "
                "cargo build -v 2>&1 | grep -c -E 'Fresh' || true",
            ),
            ("restore", "built"),
            (
                "sh",
                PRE
                + "export CARGO_HOME=$PWD/.cargo-home RUSTUP_HOME=/root/.rustup PATH=/root/.cargo/bin:$PATH; "
                "cargo build -v 2>&1 | grep -E '^ *(Compiling|Fresh|Dirty) memchr' | sed -E 's/ \\(.*//' || true",
            ),
            ("sh", PRE + "git status --porcelain --ignored; git clean -fdxq; ls -a"),
        ],
    },
}
_NPM = (
    "npm ci --offline --no-audit --no-fund 2>&1 | grep -v -E '^npm (notice|warn)' "
    "| sed -E 's/in [0-9.]+m?s/in N/'; "
)
TRIALS["npm"] = {
    "source": "npm",
    "steps": [
        (
            "sh",
            PRE + _NPM + "npm test 2>&1 | grep -E '^# (tests|pass|fail)'; find node_modules -type f | wc -l",
        ),
        ("ckpt", "installed"),
        ("sh", PRE + "sed -i 's/1.2.3/1.2.4/' test/app.test.js; npm test 2>&1 | grep -E '^# (pass|fail)'"),
        ("sh", PRE + "git status --porcelain --ignored"),
        ("restore", "installed"),
        (
            "sh",
            PRE
            + "grep -c 1.2.3 test/app.test.js; rm -rf node_modules; "
            + _NPM
            + "npm test 2>&1 | grep -E '^# (pass|fail)'",
        ),
        ("sh", PRE + "git clean -fdxq; git status --porcelain --ignored; ls -a"),
    ],
}


P0 = "exec 2>&1; export LC_ALL=C.UTF-8; "
_SQL_WRITER = (  # a shell function: a script the same command line wrote needs approval in proxy exec
    "w() { for i in $(seq 1 40); do printf '.timeout 10000\\nINSERT INTO t(w, v) VALUES(%s, %s);\\n' "
    '"$1" "$i" | sqlite3 db/app.db; done; }; '
)
_MMAP = r"""
import mmap, os, hashlib, sys
p = "data/mm.bin"
os.makedirs("data", exist_ok=True)
with open(p, "wb") as f:
    f.truncate(1 << 20)
with open(p, "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
    for off in range(0, 1 << 20, 4096):
        m[off:off + 8] = off.to_bytes(8, "little")
    m.flush()
    m.close()
# a tracked file written through a shared map, in place (the same size)
t = "src/markupsafe/_native.py"
with open(t, "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
    m[0:1] = b"#"
    m.flush()
    m.close()
for q in (p, t):
    print(q, os.path.getsize(q), hashlib.sha256(open(q, "rb").read()).hexdigest()[:16])
"""
_SOCK = "import socket; s = socket.socket(socket.AF_UNIX); s.bind('special/s.sock'); print('bound')"
LONG = "n" * 255
UNI = "\u00e9" * 127  # 254 bytes of UTF-8 (a 2-byte letter)
DEEP = "/".join(["d" * 100] * 30)

TRIALS["oddfs"] = {
    "source": "oddfs",
    "steps": [
        (
            "sh",
            P0 + "mkdir -p db; printf 'PRAGMA journal_mode=WAL;\\nCREATE TABLE t(w, v);\\n' "
            "| sqlite3 db/app.db; " + _SQL_WRITER + "for x in 1 2 3; do w $x & done; "
            "(printf '.timeout 10000\\nBEGIN EXCLUSIVE;\\nINSERT INTO t VALUES(9, 9);\\n' ; sleep 1; "
            "printf 'COMMIT;\\n') | sqlite3 db/app.db & wait; "
            "printf 'SELECT w, count(*) FROM t GROUP BY w;\\nPRAGMA integrity_check;\\n"
            "PRAGMA wal_checkpoint(TRUNCATE);\\nPRAGMA journal_mode=DELETE;\\n' | sqlite3 db/app.db; "
            "ls db",
        ),
        (
            "sh",
            P0 + "mkdir -p tars/in; cp src/markupsafe/__init__.py tars/in/a; ln tars/in/a tars/in/b; "
            "truncate -s 8M tars/in/sparse; printf end | dd of=tars/in/sparse bs=1 seek=4M conv=notrunc "
            "status=none; (cd tars && tar -cSf t.tar in && mkdir out && tar -xSf t.tar -C out); "
            "stat -c '%n %h %s' tars/out/in/a tars/out/in/b tars/out/in/sparse; "
            "cmp tars/in/sparse tars/out/in/sparse && echo same; rm tars/t.tar",
        ),
        (
            "sh",
            P0 + "rsync -a --inplace src/ r/; echo '# r' >> src/markupsafe/_native.py; "
            "rsync -a --inplace -i src/ r/ | sed 's/\\.\\.t\\.\\.\\.\\.\\.\\./T/' ; "
            "cp --reflink=auto src/markupsafe/_speedups.c r/copy.c && cmp r/copy.c src/markupsafe/_speedups.c "
            "&& echo copied",
        ),
        (
            "sh",
            P0 + "touch lk; (flock lk -c 'echo A-in; sleep 1; echo A-out') & sleep 0.3; "
            "flock -n lk -c 'echo never' || echo busy=$?; flock -w 10 lk -c 'echo B'; wait; "
            f"{PY} -c \"import fcntl; f = open('lk', 'r+'); fcntl.lockf(f, fcntl.LOCK_EX); print('lockf')\"",
        ),
        ("sh", P0 + f"{PY} - <<'PYEOF'\n{_MMAP}\nPYEOF"),
        ("ckpt", "mm"),
        (
            "sh",
            P0 + "fallocate -l 1M fa; fallocate -p -o 4096 -l 8192 fa; fallocate -k -o 1M -l 1M fa; "
            "stat -c '%n %s' fa; od -An -c -N 4 -j 4096 fa",
        ),
        (
            "sh",
            P0 + f"mkdir -p long; echo x > long/{LONG}; echo u > long/{UNI}; "
            f"mkdir -p long/{DEEP} && echo deep > long/{DEEP}/f; "
            f"ls long | awk '{{print length($0)}}' | sort; cat long/{DEEP}/f; "
            "find long -type f | awk '{print length($0)}' | sort -n",
        ),
        (
            "sh",
            P0 + "mkdir -p uni; printf n > \"uni/$(printf '\\303\\251')\"; "
            "printf d > \"uni/$(printf 'e\\314\\201')\"; ls uni | od -An -tx1; "
            "cat \"uni/$(printf '\\303\\251')\" \"uni/$(printf 'e\\314\\201')\"; echo",
        ),
        (
            "sh",
            P0 + "chmod +x src/markupsafe/_native.py setup.py; echo 'echo run' > run.sh; chmod +x run.sh; "
            "stat -c '%a %n' src/markupsafe/_native.py setup.py run.sh",
        ),
        ("ckpt", "modes"),
        (
            "sh",
            P0 + "chmod -x src/markupsafe/_native.py run.sh; chmod +x tox.ini; "
            "stat -c '%a %n' src/markupsafe/_native.py setup.py run.sh tox.ini",
        ),
        ("restore", "modes"),
        ("sh", P0 + "stat -c '%a %n' src/markupsafe/_native.py setup.py run.sh tox.ini; ./run.sh"),
        (
            "sh",
            P0 + "setfattr -n user.rp4 -v one README.rst; echo rc=$?; "
            "getfattr --absolute-names -n user.rp4 README.rst; echo rc=$?",
        ),
        (
            "sh",
            P0 + f'mkdir -p special; mkfifo special/p; echo fifo=$?; {PY} -c "{_SOCK}"; '
            "mknod special/null c 1 3; echo mknod=$?; stat -c '%F %n' special/* | sort",
        ),
        ("ckpt", "special"),
        ("undo", ""),
        ("sh", P0 + "git status --porcelain --untracked-files=all | sort; git log --format=%s | head -3"),
    ],
}


# -- running a trial on one side ------------------------------------------------------------


class Side:
    """One place a trial runs: ``plain`` (a clone on the host disk), a mounted fork
    (``overlay``/``fuse``), or ``proxy exec`` on a mounted fork (``exec-overlay``/``exec-fuse``)."""

    def __init__(self, name: str, trial: str, src: Path, env: dict[str, str]) -> None:
        self.name, self.trial, self.env = name, trial, env
        self.vault = f"{trial}-{RUN_ID}"  # a vault per run: made from the source as it is now
        self.fork = name.replace("exec-", "x") + "-" + RUN_ID
        self.dir = ROOT / "run" / trial / name
        self.heads: list[str] = []  # plain: HEAD before each restore (for undo)
        self.last_op = ""
        if name == "plain":
            git(ROOT, "clone", "-q", str(src), str(self.dir), env=env)
        else:
            backend = name.split("-")[-1]
            self.avfs("vault", "fork", f"{self.vault}:main", self.fork)
            self.dir.mkdir(parents=True)
            self.avfs("mount", "--backend", backend, f"{self.vault}:{self.fork}", str(self.dir))

    def avfs(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(REPO / ".venv/bin/avfs"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"avfs {' '.join(args)[:200]}: {proc.returncode} {proc.stderr[-2000:]}")
        return proc

    def norm(self, text: str) -> str:
        for root in (str(self.dir), f"/avfs/{self.vault}"):
            text = text.replace(root, "<ROOT>")
        return text

    def sh(self, script: str) -> dict[str, Any]:
        if self.name.startswith("exec-"):
            proc = self.avfs(
                "--json",
                "--vault",
                f"{self.vault}:{self.fork}",
                "proxy",
                "exec",
                "--shell",
                script,
                check=False,
            )
            doc = json.loads(proc.stdout)
            res = doc.get("result") or {}
            out = (res.get("stdout") or "") + (res.get("stderr") or "")
            return {
                "rc": res.get("exit_code", doc.get("exit_code")),
                "out": self.norm(out),
                "changes": sorted(c["path"] for c in doc.get("changes", [])),
                "exec_ignored": doc.get("ignored"),
                "not_recorded": doc.get("not_recorded"),
                "commit": (doc.get("commit") or {}).get("commit"),
                "error": doc.get("error"),
            }
        proc = subprocess.run(
            ["sh", "-c", script], cwd=self.dir, env=self.env, capture_output=True, timeout=3600
        )
        return {
            "rc": proc.returncode,
            "out": self.norm(proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")),
        }

    def op(self, kind: str, arg: str) -> dict[str, Any]:
        if self.name == "plain":
            if kind == "ckpt":  # what git would commit (no -f: ignored paths stay out)
                git(self.dir, "add", "-A", env=self.env)
                git(self.dir, "commit", "-q", "--allow-empty", "-m", f"checkpoint {arg}", env=self.env)
                git(self.dir, "tag", "-f", arg, env=self.env)
            elif kind == "restore":
                self.heads.append(git(self.dir, "rev-parse", "HEAD", env=self.env).strip())
                git(self.dir, "reset", "-q", "--hard", arg, env=self.env)
                git(self.dir, "clean", "-fdq", env=self.env)
            elif kind == "undo":
                if self.last_op == "restore":
                    git(self.dir, "reset", "-q", "--hard", self.heads.pop(), env=self.env)
                else:  # a checkpoint undone: its changes are uncheckpointed again
                    git(self.dir, "reset", "-q", "HEAD~1", env=self.env)
            self.last_op = kind
            return {"rc": 0}
        vf = f"{self.vault}:{self.fork}"
        if kind == "ckpt":
            proc = self.avfs("--vault", vf, "checkpoint", "save", arg, check=False)
        elif kind == "restore":
            proc = self.avfs("--vault", vf, "checkpoint", "restore", arg, check=False)
        else:
            proc = self.avfs("--vault", vf, "undo", check=False)
        self.last_op = kind
        return {"rc": proc.returncode, "out": self.norm(proc.stdout + proc.stderr)[-2000:]}

    def status(self) -> dict[str, Any]:
        def g(*args: str, env: dict[str, str] | None = None) -> str:
            return subprocess.run(
                ["git", "-c", "core.quotePath=false", *args],
                cwd=self.dir,
                env=env or self.env,
                capture_output=True,
                text=True,
            ).stdout

        st: dict[str, Any] = {
            "git_status": sorted(g("status", "--porcelain", "--untracked-files=all").splitlines()),
            "git_ignored": sum(
                1 for ln in g("status", "--porcelain", "--ignored").splitlines() if ln.startswith("!!")
            ),
        }
        if self.name == "plain":  # the tree git would commit now (a scratch index)
            idx = {**self.env, "GIT_INDEX_FILE": str(self.dir.parent / "plain.index")}
            g("read-tree", "HEAD", env=idx)  # what HEAD tracks stays tracked, ignored or not
            g("add", "-A", env=idx)
            st["snapshot"] = g("write-tree", env=idx).strip()
        else:
            proc = self.avfs("--json", "--vault", f"{self.vault}:{self.fork}", "status", check=False)
            try:
                doc = json.loads(proc.stdout)
                st["avfs_changes"] = sorted(c["path"] for c in doc.get("changes", []))
                st["avfs_ignored"] = doc.get("ignored")
            except ValueError:
                st["avfs_status_error"] = proc.stdout[-500:] + proc.stderr[-500:]
        return st

    def tree(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for top, dirs, files in os.walk(self.dir):
            rel = os.path.relpath(top, self.dir)
            if rel == ".":
                dirs[:] = [d for d in dirs if d != ".git"]
                files = [f for f in files if f != ".git"]
            for d in dirs:
                p = os.path.normpath(os.path.join(rel, d))
                if os.path.islink(os.path.join(top, d)):
                    out[p] = ["link", os.readlink(os.path.join(top, d))]
                else:
                    out[p] = ["dir"]
            for f in files:
                full = os.path.join(top, f)
                p = os.path.normpath(os.path.join(rel, f))
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    out[p] = ["link", self.norm(os.readlink(full))]
                elif stat.S_ISREG(st.st_mode):
                    with open(full, "rb") as fh:
                        data = fh.read()
                    data = data.replace(str(self.dir).encode(), b"<ROOT>").replace(
                        f"/avfs/{self.vault}".encode(), b"<ROOT>"
                    )
                    out[p] = [
                        "file",
                        bool(st.st_mode & 0o100),
                        len(data),
                        hashlib.sha256(data).hexdigest()[:16],
                    ]
                else:
                    out[p] = [stat.filemode(st.st_mode)[0]]
        return out

    def close(self) -> None:
        if self.name != "plain":
            self.avfs("unmount", "--lazy", f"{self.vault}:{self.fork}", check=False)


def _ls_tree(cmd: list[str], rev: str, env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run(
        [*cmd, "ls-tree", "-r", "-z", rev], env=env, capture_output=True, check=True
    ).stdout.decode(errors="replace")
    return {e.split("\t", 1)[1]: e.split("\t", 1)[0] for e in out.split("\0") if e}


def cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_trial(trial: str, sides: list[str], env: dict[str, str]) -> dict[str, Any]:
    spec = TRIALS[trial]
    src = SOURCES[spec["source"]](env)
    shutil.rmtree(ROOT / "run" / trial, ignore_errors=True)
    (ROOT / "run" / trial).mkdir(parents=True)
    vname = f"{trial}-{RUN_ID}"
    subprocess.run(
        [str(REPO / ".venv/bin/avfs"), "vault", "create", vname, "--from", str(src)],
        env=env,
        check=True,
        capture_output=True,
    )
    res: dict[str, Any] = {"source": spec["source"], "sides": {}}
    if trial == "npm":  # proxy exec's npm cache is the vault's: warm it as the host's is
        cache = Path(env["AVFS_HOME"]) / "vaults" / f"{vname}.git" / "avfs" / "caches" / "npm"
        if not cache.exists():
            shutil.copytree(ROOT / "npmcache", cache)
    for name in sides:
        side = Side(name, trial, src, env)
        steps, t_all, c_all = [], time.monotonic(), cpu_children()
        first = side.status().get("snapshot") if name == "plain" else None
        try:
            for kind, arg in spec["steps"]:
                t0, c0, load = time.monotonic(), cpu_children(), os.getloadavg()[0]
                rec = side.sh(arg) if kind == "sh" else side.op(kind, arg)
                rec.update(
                    kind=kind,
                    arg=arg[:80] if kind == "sh" else arg,
                    wall_s=round(time.monotonic() - t0, 3),
                    cpu_s=round(cpu_children() - c0, 3),
                    load=round(load, 1),
                )
                rec.update(side.status())
                steps.append(rec)
                print(
                    f"  {trial} {name} {kind} {arg[:40]!r} rc={rec['rc']} {rec['wall_s']}s",
                    file=sys.stderr,
                    flush=True,
                )
            tree = side.tree()
        finally:
            side.close()
        if name == "plain":  # what each step changed, as git sees it (what an exec commits)
            prev = first
            for rec in steps:
                diff = git(
                    side.dir,
                    "-c",
                    "core.quotePath=false",
                    "diff-tree",
                    "-r",
                    "--name-only",
                    "--no-renames",
                    str(prev),
                    rec["snapshot"],
                    env=env,
                )
                rec["changed"] = sorted(set(diff.splitlines()))
                prev = rec["snapshot"]
        elif name.startswith("exec-"):  # each exec's commit against the plain clone's tree then
            vault = env["AVFS_HOME"] + f"/vaults/{vname}.git"
            plain = ROOT / "run" / trial / "plain"
            psteps = res["sides"].get("plain", {}).get("steps")
            for i, rec in enumerate(steps):
                want = psteps[i].get("snapshot") if psteps else None
                if rec.get("commit") and want:
                    a = _ls_tree(["git", "--git-dir", vault], rec["commit"], env)
                    b = _ls_tree(["git", "-C", str(plain)], want, env)
                    rec["commit_vs_plain"] = sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))
        res["sides"][name] = {
            "steps": steps,
            "tree": tree,
            "wall_s": round(time.monotonic() - t_all, 2),
            "cpu_s": round(cpu_children() - c_all, 2),
        }
    res["compare"] = compare(res["sides"])
    return res


def compare(sides: dict[str, Any]) -> dict[str, Any]:
    """Each side against the plain clone: the steps whose exit code, output or git status
    differ, and the files that differ at the end."""
    base = sides.get("plain")
    out: dict[str, Any] = {}
    if base is None:
        return out
    for name, got in sides.items():
        if name == "plain":
            continue
        diffs = []
        for i, (a, b) in enumerate(zip(base["steps"], got["steps"], strict=True)):
            d = {}
            keys = ("rc", "out") if name.startswith("exec-") else ("rc", "out", "git_status", "git_ignored")
            if a["kind"] != "sh":
                keys = ("rc",)
            for key in keys:
                if a.get(key) != b.get(key):
                    d[key] = {"plain": a.get(key), name: b.get(key)}
            if "changes" in b and b["changes"] != a.get("changed"):
                d["exec_changes_vs_plain"] = {"exec": b["changes"][:50], "plain": a.get("changed", [])[:50]}
            if b.get("commit_vs_plain"):
                d["commit_vs_plain"] = b["commit_vs_plain"][:50]
            if "avfs_changes" in b and not name.startswith("exec-"):
                want = sorted({ln[3:].split(" -> ")[-1].strip('"') for ln in b["git_status"]})
                if b["avfs_changes"] != want:
                    d["avfs_vs_git_status"] = {"avfs": b["avfs_changes"][:50], "git": want[:50]}
                if b.get("avfs_ignored") != b["git_ignored"]:
                    d["avfs_vs_git_ignored"] = {"avfs": b.get("avfs_ignored"), "git": b["git_ignored"]}
            if d:
                d["step"] = i
                d["what"] = f"{a['kind']} {a['arg'][:60]}"
                diffs.append(d)
        ta, tb = base["tree"], got["tree"]
        out[name] = {
            "steps_differing": diffs,
            "files_missing": sorted(set(ta) - set(tb))[:100],
            "files_extra": sorted(set(tb) - set(ta))[:100],
            "files_differing": sorted(p for p in set(ta) & set(tb) if ta[p] != tb[p])[:200],
            "n_files": [len(ta), len(tb)],
            "time_ratio": round(got["wall_s"] / max(base["wall_s"], 1e-3), 2),
            "cpu_ratio": round(got["cpu_s"] / max(base["cpu_s"], 1e-3), 2),
        }
    return out


# -- two agents' forks that both built the project, merged ---------------------------------

_BUILD = (
    PRE + f"{PY} -m venv --system-site-packages .venv; "
    ".venv/bin/python -m pip install -q --no-build-isolation --no-index -e . >/dev/null 2>&1; "
    ".venv/bin/python -c 'import bitarray, sys; r = bitarray.test(verbosity=0); "
    "sys.exit(not r.wasSuccessful())' >/dev/null 2>&1; echo built=$?; "
)
AGENTS = {
    "a": _BUILD + "echo 'Built by agent a.' >> README.rst",
    "b": _BUILD + "echo '# agent b' >> bitarray/__init__.py; echo b > NOTES",
}


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    t0, c0 = time.monotonic(), cpu_children()
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True).stdout
    return time.monotonic() - t0, cpu_children() - c0, out


def run_merge(backend: str, env: dict[str, str]) -> dict[str, Any]:
    """bitarray's history: agents a and b each build it (a venv, an editable install, its
    tests) and change a file, through ``proxy exec`` on their own forks (mounted on
    ``backend``); ``avfs merge`` a then b into a third fork. The same in a clone with two
    git worktrees and ``git merge``. Then: the merged trees, ``avfs undo``/``redo`` of the
    second merge against ``git reset``, ``avfs status``/``diff``/``git status`` in a built
    fork (a venv of thousands of ignored files) timed against ``git status`` in the
    clone's worktree, and ``git clean -fdx`` in the mount."""
    src = src_bitarray(env)
    trial = f"merge-{backend}-{RUN_ID}"
    base = ROOT / "run" / f"merge-{backend}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    av = [str(REPO / ".venv/bin/avfs")]
    subprocess.run(
        [*av, "vault", "create", trial, "--from", str(src)], env=env, check=True, capture_output=True
    )
    res: dict[str, Any] = {"backend": backend}
    # the clone
    plain = base / "plain"
    git(ROOT, "clone", "-q", str(src), str(plain), env=env)
    for name, script in AGENTS.items():
        wt = base / f"plain-{name}"
        git(plain, "worktree", "add", "-q", "-b", name, str(wt), env=env)
        out = subprocess.run(["sh", "-c", script], cwd=wt, env=env, capture_output=True, text=True)
        res[f"plain_{name}_out"] = out.stdout
        commit_all_tracked = ["add", "-A"]
        git(wt, *commit_all_tracked, env=env)
        git(wt, "commit", "-q", "-m", f"agent {name}", env=env)
    git(plain, "merge", "-q", "--no-edit", "a", env=env)
    git(plain, "merge", "-q", "--no-edit", "b", env=env)
    want = _ls_tree(["git", "-C", str(plain)], "HEAD", env)
    want_a = _ls_tree(["git", "-C", str(plain)], "HEAD^1", env)
    # the forks
    forks = {n: f"{n}{backend}-{RUN_ID}" for n in ("a", "b", "m")}
    for fork in forks.values():
        subprocess.run(
            [*av, "vault", "fork", f"{trial}:main", fork], env=env, check=True, capture_output=True
        )
    mps = {}
    try:
        for name in ("a", "b"):
            mp = base / name
            mp.mkdir()
            mps[name] = mp
            subprocess.run(
                [*av, "mount", "--backend", backend, f"{trial}:{forks[name]}", str(mp)],
                env=env,
                check=True,
                capture_output=True,
            )
            proc = subprocess.run(
                [
                    *av,
                    "--json",
                    "--vault",
                    f"{trial}:{forks[name]}",
                    "proxy",
                    "exec",
                    "--shell",
                    AGENTS[name],
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            doc = json.loads(proc.stdout)
            res[f"exec_{name}"] = {
                "exit_code": doc["exit_code"],
                "out": (doc.get("result") or {}).get("stdout"),
                "changes": doc["changes"],
                "ignored": doc["ignored"],
            }
        vm = f"{trial}:{forks['m']}"
        merges = []
        for name in ("a", "b"):
            proc = subprocess.run(
                [*av, "--json", "--vault", vm, "merge", forks[name]], env=env, capture_output=True, text=True
            )
            merges.append({"rc": proc.returncode, "doc": json.loads(proc.stdout)})
        res["merges"] = [{"rc": m["rc"], "kind": m["doc"].get("kind")} for m in merges]
        vault = env["AVFS_HOME"] + f"/vaults/{trial}.git"
        got = _ls_tree(["git", "--git-dir", vault], f"refs/heads/{forks['m']}", env)
        res["merged_vs_plain"] = sorted(p for p in set(got) | set(want) if got.get(p) != want.get(p))
        subprocess.run([*av, "--vault", vm, "undo"], env=env, capture_output=True, check=True)
        got = _ls_tree(["git", "--git-dir", vault], f"refs/heads/{forks['m']}", env)
        res["undone_vs_plain_first_parent"] = sorted(
            p for p in set(got) | set(want_a) if got.get(p) != want_a.get(p)
        )
        subprocess.run([*av, "--vault", vm, "redo"], env=env, capture_output=True, check=True)
        got = _ls_tree(["git", "--git-dir", vault], f"refs/heads/{forks['m']}", env)
        res["redone_vs_plain"] = sorted(p for p in set(got) | set(want) if got.get(p) != want.get(p))
        # status, diff and git status in a built fork (a venv: thousands of ignored files)
        mp, va = mps["a"], f"{trial}:{forks['a']}"
        pa = base / "plain-a"
        subprocess.run(["sh", "-c", "echo x >> README.rst"], cwd=mp, check=True)
        subprocess.run(["sh", "-c", "echo x >> README.rst"], cwd=pa, check=True)
        times: dict[str, list[list[float]]] = {}
        for _ in range(5):
            for label, argv, cwd in (
                ("avfs_status", [*av, "--json", "--vault", va, "status"], mp),
                ("avfs_diff", [*av, "--json", "--vault", va, "diff"], mp),
                ("git_status_mount", ["git", "status", "--porcelain", "--ignored"], mp),
                ("git_status_plain", ["git", "status", "--porcelain", "--ignored"], pa),
            ):
                w, c, out = _timed(argv, cwd, env)
                times.setdefault(label, []).append([w, c])
                res[f"{label}_out"] = out if "status" in label else len(out)
        res["times"] = {
            k: {"wall_median": sorted(x[0] for x in v)[2], "cpu_median": sorted(x[1] for x in v)[2]}
            for k, v in times.items()
        }
        res["load"] = os.getloadavg()
        res["venv_files"] = sum(len(f) for _, _, f in os.walk(pa / ".venv"))
        for where in (mp, pa):
            subprocess.run(["git", "clean", "-fdxq"], cwd=where, env=env, check=True)
        res["after_clean_mount"] = sorted(os.listdir(mp))
        res["after_clean_plain"] = sorted(os.listdir(pa))
        st = json.loads(
            subprocess.run(
                [*av, "--json", "--vault", va, "status"], env=env, capture_output=True, text=True
            ).stdout
        )
        res["avfs_status_after_clean"] = {"ignored": st["ignored"], "changes": st["changes"]}
    finally:
        for name in mps:
            subprocess.run([*av, "unmount", "--lazy", f"{trial}:{forks[name]}"], env=env, capture_output=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", default=",".join(TRIALS))
    ap.add_argument("--sides", default=",".join(SIDES))
    ap.add_argument("--out", default="")
    ap.add_argument("--merge", default="", help="backends to run the merge trial on (overlay,fuse)")
    args = ap.parse_args()
    home = ROOT / "home"
    env = env_base(home)
    home.mkdir(parents=True, exist_ok=True)
    # (not ~/.cargo: a directory that may hold cargo's credentials is never shown)
    (home / "policy.toml").write_text(
        'version = 1\n[defaults]\nreadable = ["/root/.cargo/bin", "/root/.rustup"]\n'
    )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    result: dict[str, Any] = {"stamp": stamp, "load_start": os.getloadavg(), "trials": {}}
    out = Path(args.out or REPO / "bench" / "results" / f"realproj4-trials-{stamp}.json")
    for backend in filter(None, args.merge.split(",")):
        result.setdefault("merge", {})[backend] = run_merge(backend, env)
        out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    for trial in filter(None, args.trials.split(",")):
        result["trials"][trial] = run_trial(trial, args.sides.split(","), env)
        result["load_end"] = os.getloadavg()
        out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(out)


if __name__ == "__main__":
    main()

"""Replay a git model's logged steps (AVFS_MODEL_LOG) on a fresh model, checked after each:
``python -m tests.replay_gitmodel BACKEND LOGFILE [FIRST-LINE]`` (the last example of the
log, from its ``--- new example`` line on). A failing soak's steps, re-run by hand."""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import sys

from . import test_git_model as tgm


def _step(m: tgm.GitModel, line: str) -> None:
    if _step_13(m, line) or _step_tenth(m, line):
        return
    if line.startswith("gitattributes "):
        m.attributes(ast.literal_eval(line[len("gitattributes ") :]))
    elif line.startswith("write-bytes "):
        mt = re.fullmatch(r"write-bytes (\S+) (b'.*?') append=(True|False)", line)
        assert mt, line
        m.write_bytes(mt.group(1), ast.literal_eval(mt.group(2)), mt.group(3) == "True")
    elif line.startswith("write "):
        mt = re.fullmatch(r"write (\S+) ('.*?')(?: append=(True|False))?", line)
        assert mt, line
        path, word, append = mt.group(1), ast.literal_eval(mt.group(2)), mt.group(3) != "False"
        for root in (m.p.root, m.m.root):
            p = os.path.join(root, path)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "a" if append else "w") as fh:
                fh.write(word)
        m.note(line)
    elif line.startswith("rm ") and not line.startswith("rm -r "):
        m.on_both(lambda r: os.unlink(os.path.join(r, line[3:])))
        m.note(line)
    elif line.startswith("mv "):
        a, b = line[3:].split()

        def mv(root: str) -> None:
            os.makedirs(os.path.dirname(os.path.join(root, b)) or root, exist_ok=True)
            os.replace(os.path.join(root, a), os.path.join(root, b))

        m.on_both(mv)
        m.note(line)
    elif line.startswith("chmod "):
        mode, path = line.split()[1:]
        m.on_both(lambda r: os.chmod(os.path.join(r, path), int(mode, 8)))
        m.note(line)
    elif line.startswith("ln -sf "):
        target, at = line[7:].split()
        tgm._link_both(m, target, at)
        m.note(line)
    elif line.startswith(("file ", "dir ")):
        kind, path = line.rsplit(" -> ", 1)[0].split(" ", 1)  # (a path may hold a space)

        def swap(root: str) -> None:
            p = os.path.join(root, path)
            if kind == "file":
                os.unlink(p)
                os.mkdir(p)
                p = os.path.join(p, "inner.txt")
            else:
                shutil.rmtree(p)
            with open(p, "w") as fh:
                fh.write("was the other kind\n")

        m.on_both(swap)
        m.note(line)
    elif line.startswith(".gitignore, write "):
        path = line.split()[-1]

        def w(root: str) -> None:
            with open(os.path.join(root, ".gitignore"), "w") as fh:
                fh.write("build/\n*.log\n")
            os.makedirs(os.path.dirname(os.path.join(root, path)) or root, exist_ok=True)
            with open(os.path.join(root, path), "a") as fh:
                fh.write("ignored\n")

        m.on_both(w)
        m.note(line)
    elif line == "mkdir empty/dir":
        m.on_both(lambda r: os.makedirs(os.path.join(r, "empty", "dir"), exist_ok=True))
        m.note(line)
    elif line.startswith("rm -r "):
        m.on_both(lambda r: shutil.rmtree(os.path.join(r, line[6:])))
        m.note(line)
    elif line.startswith("format-patch "):
        m.format_patch(line.split()[1])
    elif line.endswith("(switched back)"):
        m.switch("-c" in line)
    elif line.startswith("git fetch -q --no-tags ") and line.endswith("refs/remotes/rel/main"):
        pass  # (fetch_releases ran it, from this run's own repository)
    elif line.startswith("git "):
        line = re.sub(r"\S*/side\.patch", os.path.join(m.home, "side.patch"), line)
        line = re.sub(r"\S*/binary\.patch", os.path.join(m.home, "binary.patch"), line)
        line = re.sub(r"\S*/sublib", m.sublib(), line)
        line = line.replace("-m made with git", "-m 'made with git'")
        line = line.replace("-m without a directory", "-m 'without a directory'")
        line = line.replace("-m a note", "-m 'a note'")
        line = re.sub(
            r"sequence\.editor=(.*?) rebase",
            lambda x: shlex.quote("sequence.editor=" + x.group(1)) + " rebase",
            line,
        )
        m.both(*shlex.split(line)[1:])
    elif line == "hooked-commit":
        m.hooked_commit()
    elif line.startswith("avfs vault fork"):
        m.fork()
    elif line == "avfs status":
        m.avfs_status()
    elif line == "avfs checkpoint save":
        m.checkpoint(False)
    elif line == "avfs undo":
        m.undo()
    elif line.startswith("avfs checkpoint restore"):
        m.restore()
    elif line.startswith("avfs checkpoint save (refused") or line.startswith(
        "avfs proxy exec -- true (refused"
    ):
        m.refused_while_busy("checkpoint" if "checkpoint" in line else "exec")
    elif line.startswith("avfs proxy exec -- sh -c "):
        cmd = ast.literal_eval(line[len("avfs proxy exec -- sh -c ") :])
        mt = re.search(r"printf %s (.+?) >> (\S+) &&", cmd, re.S)
        if mt:
            m.exec_edit_commit(shlex.split(mt.group(2))[0], shlex.split(mt.group(1))[0])
        else:
            m.exec_script(cmd)  # (an EXEC_COMMANDS one, or gitmodel13's exec_edit)
    else:
        raise SystemExit(f"cannot replay: {line}")


def _step_13(m: tgm.GitModel, line: str) -> bool:
    """The lines of gitmodel13's steps (tests/gitmodel_steps13.py) that are not git's own;
    True when ``line`` was one."""
    if line == "avfs unmount; avfs mount":
        m.remount_now()
    elif line == "git commit -a (killed)":
        m.kill_commit()
    elif line == "avfs checkpoint save (refused: index.lock)":
        m.refused_locked()
    elif line == "rm index.lock":
        m.unlock()
    elif line.startswith("binary-patch "):
        m.make_binary_patch(line[len("binary-patch ") :])
    elif line == "ln -sfn README.md LINKED":
        m.make_link()
    elif line == "LINKED made a directory":
        m.link_to_dir_now()
    elif line.startswith("releases "):
        m.fetch_releases()
    elif line == "git multi-pack-index write (the mount's side)":
        m.graphs("multi-pack-index")
    elif line == "link-to-tree LINKED":
        m.note(line)
    else:
        return False
    return True


def _step_tenth(m: tgm.GitModel, line: str) -> bool:
    """The lines of gitmodel10's and gitmodel11's steps (tests/gitmodel_steps.py) that are
    not git's own; True when ``line`` was one."""
    if line.startswith("write-all "):
        m.write_all(ast.literal_eval(line[len("write-all ") :]))
    elif line.startswith("gitattributes-crlf "):
        m.crlf_attributes(line.endswith("True"))
    elif line.startswith("worktree-outside "):
        m.worktree_outside(line.endswith("True"))
    elif line == "upstream-commit":
        m.upstream_commit()
    elif line == "worktree-moves-fork":  # (gitmodel11's)
        m.worktree_moves_fork()
    elif "--orphan" in line and line.endswith("(switched back)"):
        m.orphan()
    else:
        return False
    return True


def main() -> None:
    backend, log = sys.argv[1], sys.argv[2]
    with open(log) as fh:
        lines = fh.read().splitlines()
    start = max(i for i, ln in enumerate(lines) if ln.startswith("--- new example"))
    steps = [ln for ln in lines[start + 1 :] if ln]
    tgm.BACKEND = backend
    m = tgm.GitModel()
    try:
        m.check()
        for i, ln in enumerate(steps):
            print(f"{i}: {ln}", flush=True)
            _step(m, ln)
            m.check()
        print("replayed without a difference")
    finally:
        if os.environ.get("KEEP"):
            input(f"mount {m.mp}, plain {m.p.root}; enter to tear down")
        m.teardown()


if __name__ == "__main__":
    main()

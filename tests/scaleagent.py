"""One machine's agent for tests/test_scale.py, run as its own process with its own avfs
home (``python tests/scaleagent.py HOME URL ME ROUNDS LOG [--mount DIR]``).

It lazily clones the server's vault (once), keeps a work fork ``work-ME`` and, each round:
writes a file of its own (``agents/ME/ROUND.txt``), rewrites its own line of
``shared.txt`` (the other agents' lines are far away: their merges are clean) and puts a
line ``ME:ROUND`` at the top of ``contested.txt`` (every agent writes the same place: a
real conflict, which the agent resolves by keeping every side's lines), checkpoints, merges
the work fork into ``main`` and publishes ``main``: a push the server refuses when another
machine published first (never forced), then ``pull`` (fetch + merge, conflicts written
and resolved) and the push again. After the push it merges ``main`` back into its work fork and publishes
that fork as a branch of its own (``work-ME``).

Each step that matters goes to LOG as one JSON line (``checkpoint``, ``rejected``,
``pulled``, ``published``), flushed at once: a test that kills the process knows what it
had done. With ``--mount DIR`` the agent writes through a real mount of its work fork.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import avfs_git
from avfs_git.core.errors import BlobNotLocalError, RemoteError, RemoteRejectedError
from avfs_git.core.operations import checkpoint, merge, remote

SHARED_LINES = 40
MARKERS = ("<<<<<<<", "|||||||", "=======", ">>>>>>>")


def slot(me: int) -> int:
    """The line of shared.txt agent ``me`` owns (ten lines from the next agent's)."""
    return 5 + 10 * me


def resolve(text: bytes) -> bytes:
    """A contested.txt with conflict markers, resolved as the agent's rule says: every
    line any side has, sorted (no side's line is ever dropped)."""
    lines = {ln for ln in text.decode().splitlines() if ln and not ln.startswith(MARKERS)}
    return "".join(ln + "\n" for ln in sorted(lines)).encode()


class Agent:
    def __init__(self, args: argparse.Namespace) -> None:
        self.me = args.me
        self.log_fh = open(args.log, "a", buffering=1)  # noqa: SIM115 - one line per step, kept open
        self.home = avfs_git.open_home(args.home)
        if not self.home.exists("p"):
            self.home.clone_vault(args.url, "p", lazy=True)
        self.vault = self.home.vault("p")
        self.work = f"work-{self.me}"
        if self.work not in self.vault.fork_names():
            self.vault.create_fork("main", self.work)
        if merge.merge_state(self.vault.workspace("main")) is not None:
            # the machine died while resolving a pull's conflicts: start that pull again
            merge.merge_abort(self.vault, "main")
        self.mount = args.mount
        self.barrier, self.agents = args.barrier, args.agents

    def wait_for_the_others(self, r: int) -> None:
        """With ``--barrier``: publish round ``r`` only once every agent has merged its round
        ``r`` into its main (at most 60 s), so that their pushes race for real: the second
        one is refused whatever the timing (its main lacks the first one's commit)."""
        if not self.barrier:
            return
        open(os.path.join(self.barrier, f"{r}-{self.me}"), "w").close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sum(1 for n in os.listdir(self.barrier) if n.startswith(f"{r}-")) >= self.agents:
                return
            time.sleep(0.01)

    def log(self, event: str, **fields: object) -> None:
        self.log_fh.write(json.dumps({"event": event, "agent": self.me, "t": time.time(), **fields}) + "\n")

    # -- writing: through the mount when there is one, else through the API -------------
    def read(self, path: str) -> bytes:
        """A file of the work fork; one never fetched while the server is away fails
        (``blob_not_local``, EIO in a mount): wait for the server, as an agent would."""
        for _ in range(240):
            try:
                if self.mount:
                    with open(os.path.join(self.mount, path), "rb") as fh:
                        return fh.read()
                return self.vault.workspace(self.work).read(path)
            except (BlobNotLocalError, OSError) as exc:
                self.log("read_failed", path=path, error=str(exc)[:200])
                time.sleep(0.5)
        raise SystemExit(f"agent {self.me}: {path} never became readable")

    def write(self, path: str, data: bytes) -> None:
        if self.mount:
            full = os.path.join(self.mount, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as fh:
                fh.write(data)
            return
        self.vault.workspace(self.work).write(path, data)

    def round(self, r: int) -> None:
        mine = f"agent {self.me} round {r}\n".encode()
        self.write(f"agents/{self.me}/{r}.txt", mine)
        shared = self.read("shared.txt").decode().splitlines()
        shared[slot(self.me)] = f"line of agent {self.me}: round {r}"
        self.write("shared.txt", "".join(ln + "\n" for ln in shared).encode())
        contested = self.read("contested.txt")
        self.write("contested.txt", f"{self.me}:{r}\n".encode() + contested)
        cp = checkpoint.save(self.vault, self.work, message=f"agent {self.me} round {r}")
        self.log("checkpoint", round=r, commit=cp.checkpoint.commit if cp.checkpoint else None)
        res = merge.merge(self.vault, self.work, "main")
        assert res.status in ("fast_forward", "merged", "up_to_date"), res
        self.wait_for_the_others(r)
        self.publish(r)
        back = merge.merge(self.vault, "main", self.work)
        assert back.status in ("fast_forward", "merged", "up_to_date"), back
        self.publish_fork(r)

    def publish_fork(self, r: int) -> None:
        """The work fork as a branch of its own (only this machine moves it: never refused)."""
        # (a machine killed after the push reached the server and before it logged it: the
        # server holds this commit, which the log names here)
        self.log("fork_publishing", round=r, commit=self.vault.workspace(self.work).tip())
        for _ in range(240):
            try:
                remote.push(self.vault, "origin", [self.work])
            except RemoteRejectedError:
                raise
            except RemoteError as exc:
                self.log("remote_error", round=r, code=exc.code, message=exc.message)
                time.sleep(0.5)
                continue
            self.log("fork_published", round=r, commit=self.vault.workspace(self.work).tip())
            return
        raise SystemExit(f"agent {self.me}: fork {self.work} not published")

    def publish(self, r: int) -> None:
        """Push main; refused (another machine published first): pull, resolve, push again."""
        for attempt in range(100):
            try:
                remote.push(self.vault, "origin", ["main"])
            except RemoteRejectedError as exc:
                assert exc.details["reason"] == "non_fast_forward", exc.details
                # nothing moved here: main is still what was refused
                assert self.vault.workspace("main").tip() == exc.details["local_commit"]
                self.log("rejected", round=r, attempt=attempt, remote_commit=exc.details["remote_commit"])
            except RemoteError as exc:  # the server is away: wait for it
                self.log("remote_error", round=r, attempt=attempt, code=exc.code, message=exc.message)
                time.sleep(0.5)
                continue
            else:
                self.log("published", round=r, attempt=attempt, commit=self.vault.workspace("main").tip())
                return
            try:
                _, res = remote.pull(self.vault, "origin", "main", write_conflicts=True)
            except RemoteError as exc:  # the server went away between the push and the pull
                self.log("remote_error", round=r, attempt=attempt, code=exc.code, message=exc.message)
                time.sleep(0.5)
                continue
            status = res.status  # type: ignore[attr-defined]
            if status == "conflicts_written":
                paths = [c.path for c in res.conflicts]  # type: ignore[attr-defined]
                assert paths == ["contested.txt"], paths
                ws = self.vault.workspace("main")
                ws.write("contested.txt", resolve(ws.read("contested.txt")))
                status = merge.merge_continue(self.vault, "main").status
            self.log("pulled", round=r, status=status)
        raise SystemExit(f"agent {self.me}: round {r} not published after 100 attempts")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("home")
    ap.add_argument("url")
    ap.add_argument("me", type=int)
    ap.add_argument("rounds", type=int)
    ap.add_argument("log")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--mount")
    ap.add_argument("--barrier", help="a directory the agents meet in before each publish")
    ap.add_argument("--agents", type=int, default=2)
    args = ap.parse_args()
    agent = Agent(args)
    if args.mount:
        from avfs_git.ops import mounts

        mounts.mount(agent.home, agent.vault, agent.work, args.mount)
    try:
        agent.log("started", start=args.start)
        for r in range(args.start, args.rounds):
            agent.round(r)
        agent.log("done")
    finally:
        if args.mount:
            from avfs_git.ops import mounts

            mounts.unmount(agent.home, agent.vault, agent.work)
    sys.exit(0)


if __name__ == "__main__":
    main()

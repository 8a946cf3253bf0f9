"""A `proxy exec` envelope (``proxy_exec_result``) printed for its caller: the document
as it is with ``--json``, else the command's output and a summary line for a person.

Shared by the fast path (:mod:`.execopts`) and the click command (:mod:`.proxy`); without
click, and imported by the fast path only when it prints something itself (a daemon's
``--json`` answer is printed as it came).
"""

from __future__ import annotations

import sys


def render(json_mode: bool, document: str, quiet: bool = False) -> None:
    """Print a proxy exec result: the JSON document as it is (``--json``), or for a person
    the command's output, then a summary line on stderr (names and messages shown with
    control characters escaped, see :mod:`.text`). ``quiet`` (``--quiet``): the command's
    output alone when it ran to its end, so the call reads like the command itself (the
    agent hooks wrap commands this way); the summary line too when it timed out or its
    output was cut; when it did not run, the lines that say why."""
    if json_mode:
        sys.stdout.write(document)
        sys.stdout.flush()
        return
    import json

    from .text import shown

    doc = json.loads(document)
    r = doc.get("result")
    if r is not None:
        sys.stdout.write(r["stdout"])
        sys.stdout.flush()
        sys.stderr.write(r["stderr"])
        if quiet and not (
            r["timed_out"] or r["stdout_truncated"] or r["stderr_truncated"] or r.get("interrupted")
        ):
            sys.stderr.flush()
            return
    d = doc.get("decision") or {}
    bits = []
    if d:
        bits.append(f"{d['action']} ({', '.join(d['categories']) or '-'}; rule {shown(d['rule'])})")
    if r is not None:
        bits.append("timed out" if r["timed_out"] else f"exit {r['exit_code']}")
        if r.get("interrupted"):
            bits.append(f"interrupted ({r['interrupted']} passed on to the command)")
        if r["stdout_truncated"] or r["stderr_truncated"]:
            bits.append("output truncated")
    elif d.get("action") in ("deny", "require_approval"):
        bits.append(f"not run: refused by the policy (exit {doc['exit_code']})")
    elif d:
        bits.append(f"not run (exit {doc['exit_code']})")
    if doc.get("changes"):
        bits.append(f"{len(doc['changes'])} changed path(s)")
    if doc.get("commit"):
        bits.append(f"commit {doc['commit']['commit'][:12]}")
    if doc.get("refs_fetched"):  # the remote-tracking refs its git fetch moved, kept
        bits.append(f"{len(doc['refs_fetched'])} remote-tracking ref(s) fetched")
    if doc.get("refs_refused"):  # the command's git moved refs avfs did not keep
        bits.append(
            f"{len(doc['refs_refused'])} ref change(s) not kept: {', '.join(shown(x['ref']) for x in doc['refs_refused'][:3])}"
        )
    if doc.get("planted_git_dirs"):  # what of a planted repository could run a program: renamed
        bits.append(
            f"{len(doc['planted_git_dirs'])} planted git file(s) set aside: {', '.join(shown(x['path']) for x in doc['planted_git_dirs'][:3])}"
        )
    if bits:  # nothing decided, nothing ran (avfs failed first): the error alone says it
        sys.stderr.write("avfs: " + ", ".join(bits) + "\n")
    for w in (
        doc.get("warnings") or ()
    ):  # (a node_modules committed, a shell line as one argument: proxy/callwarnings.py)
        sys.stderr.write(f"avfs: warning: {shown(w['message'])}\n  hint: {shown(w['hint'])}\n")
    ap = doc.get("approval") or {}
    if ap.get("token") and not ap.get("used"):
        # what to do, as --json's hint says it (the line gave the token alone)
        tok = ap["token"]
        sys.stderr.write(
            f"avfs: approval required; token {tok} (expires {ap['expires_at']}):"
            f" rerun it with --approve {tok} once a person approves\n"
        )
    err = doc.get("error")
    if err is not None and err["code"] != "approval_required":
        sys.stderr.write(f"avfs: error: {shown(err['message'])}\n")
        if err.get("hint"):
            sys.stderr.write(f"  hint: {shown(err['hint'])}\n")

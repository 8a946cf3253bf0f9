#!/usr/bin/env bash
# The avfs demo (`make demo`): a short story of what avfs does, on a real vault that git reads.
# Each feature adds a chapter here (mount, proxy exec, merge, remotes, search, the quickstart).
set -euo pipefail

AVFS="${AVFS_BIN:-avfs}"
WORK="$(mktemp -d -t avfs-demo.XXXXXX)"
export AVFS_HOME="$WORK/home"
# the home's layers file system (a loop-mounted btrfs image, where root can make one) is
# unmounted before the home is removed, once the home's warm server has stopped (a command
# it ran may still be finishing what it does after its answer: a fork's next snapshot)
trap '"$AVFS" server stop >/dev/null 2>&1 || true; umount "$WORK/home/layers" 2>/dev/null || true; rm -rf "$WORK"' EXIT

# colour only for a terminal, and never under NO_COLOR (https://no-color.org)
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
    C_HEAD=$'\033[1;34m' DIM=$'\033[2m' OFF=$'\033[0m'
else
    C_HEAD='' DIM='' OFF=''
fi
say() { printf '\n%s== %s%s\n' "$C_HEAD" "$*" "$OFF"; }
# each command is shown as a shell would take it back: an argument with a space, a quote or
# a newline in single quotes (`-m 'a message'`, `sh -c 'cd … && …'`), so a line can be copied
quoted() {
    local a out=""
    for a in "$@"; do
        if [[ -n "$a" && "$a" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
            out+="$a "
        else
            out+="'${a//\'/\'\\\'\'}' "
        fi
    done
    printf '%s' "${out% }"
}
run() { printf '%s$ %s%s\n' "$DIM" "$(quoted "$@")" "$OFF"; "$@"; }

say "A sample project (a git checkout with one uncommitted change)"
mkdir -p "$WORK/proj/src"
cat > "$WORK/proj/src/app.py" <<'PY'
def greet(name):
    return "hello " + name
PY
printf '# proj\n' > "$WORK/proj/README.md"
printf '*.log\n__pycache__/\n' > "$WORK/proj/.gitignore"  # (python's bytecode: not the project's)
printf 'noise\n' > "$WORK/proj/debug.log"
git -C "$WORK/proj" init -q -b main
git -C "$WORK/proj" add -A
git -C "$WORK/proj" -c user.name=demo -c user.email=demo@localhost commit -qm "initial"
printf 'TODO: tests\n' >> "$WORK/proj/README.md"

say "Import it: its history comes along; the uncommitted change is uncheckpointed work"
run "$AVFS" vault create proj --from "$WORK/proj"
run "$AVFS" --vault proj status
run "$AVFS" --vault proj checkpoint save imported -m "take the working tree as it was"

say "Fork it for an agent: O(1), nothing copied, main untouched"
run "$AVFS" vault fork proj agent1
export AVFS_VAULT=proj:agent1

say "The agent works: edits, adds, renames"
run "$AVFS" write src/app.py 'def greet(name):
    return f"hello, {name}!"
'
run "$AVFS" write tests/test_app.py 'from src.app import greet

def test_greet():
    assert greet("x") == "hello, x!"
'
run "$AVFS" mv README.md README.txt
run "$AVFS" status
run "$AVFS" diff --stat

say "Checkpoint before a risky step"
run "$AVFS" checkpoint save before-risky -m "greet with punctuation, add a test"

say "The risky step goes wrong..."
run "$AVFS" rm -r src
run "$AVFS" write oops.txt "everything is gone"
run "$AVFS" ls

say "...so roll back. Nothing is lost: even the discarded state is kept"
run "$AVFS" checkpoint restore before-risky
run "$AVFS" ls
run "$AVFS" op log -n 3

say "Changed our mind? undo the restore, then undo again to go back"
run "$AVFS" undo
run "$AVFS" cat oops.txt
echo
run "$AVFS" undo --op "$("$AVFS" --json op log -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["operations"][0]["id"])')"
run "$AVFS" ls

say "History, and what an agent sees with --json (one document on stdout)"
run "$AVFS" log --oneline
run "$AVFS" --json status
run "$AVFS" diff imported before-risky --name-status

say "Mount the fork: ordinary tools work in it, and what they write is the fork's"
MNT="$("$AVFS" mount proj:agent1)"
echo "mounted at $MNT"
run ls -la "$MNT"
run sh -c "cd '$MNT' && python3 -c 'from src.app import greet; print(greet(\"mount\"))'"
run sh -c "cd '$MNT' && printf 'built by a tool in the mount\n' > BUILD.txt && mkdir -p out && cp src/app.py out/"
run "$AVFS" status
run "$AVFS" checkpoint save from-the-mount -m "files written by tools in the mount"
run "$AVFS" mount --list

say "proxy exec: an agent's command under the policy, in the mount, committed as one commit"
run "$AVFS" proxy exec -- python3 -c "from src.app import greet; open('GREETING.txt', 'w').write(greet('proxy'))"
run "$AVFS" log --oneline -n 2
run "$AVFS" policy check -- rm -rf /
printf '%s$ %s%s\n' "$DIM" "$(quoted "$AVFS" --json proxy exec -- rm -rf /) | (its decision and exit code)" "$OFF"
"$AVFS" --json proxy exec -- rm -rf / | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["decision"]["reason"], "| exit", d["exit_code"])' || true
run "$AVFS" audit --limit 2
run "$AVFS" unmount proj:agent1

say "Merge the agent's work back: main moved on meanwhile, so it is a three-way merge"
run "$AVFS" --vault proj:main write CHANGELOG.md "main moved on while agent1 worked"
run "$AVFS" --vault proj:main checkpoint save -m "changelog on main"
run "$AVFS" merge agent1 --into main --dry-run
run "$AVFS" merge agent1 --into main
run "$AVFS" --vault proj:main log --oneline -n 3
run git --git-dir "$("$AVFS" vault path proj)" log --graph --oneline -n 4 main

say "It is just git: clone the vault, check it, read the agent's branch"
run git clone -q "$("$AVFS" vault path proj)" "$WORK/clone"
run git -C "$WORK/clone" log --oneline --all
run git --git-dir "$("$AVFS" vault path proj)" fsck --strict --no-dangling
run git -C "$WORK/clone" show origin/agent1:src/app.py

say "Push to a git server (here a bare repository) and clone it back as a new vault"
run git init -q --bare "$WORK/server.git"
run "$AVFS" --vault proj remote add origin "$WORK/server.git"
run "$AVFS" --vault proj push origin --all --checkpoints --tags
run "$AVFS" vault clone "$WORK/server.git" proj-copy
run "$AVFS" --vault proj-copy:agent1 log --oneline -n 2

say "Search and upkeep: grep and full-text search without a checkout, stats, gc"
run "$AVFS" --vault proj:main grep -n greet
run "$AVFS" --vault proj:main search hello
run "$AVFS" --vault proj stats
run "$AVFS" --vault proj gc

say "One command for an agent: up mounts a fresh fork of a project, down merges it back"
# (a checkout of its own: `up` of $WORK/proj would take the vault `vault create --from` made
# of it, whose main the merge above moved, and `apply` would then refuse to overwrite
# README.md, changed in that directory too)
run git clone -q "$WORK/proj" "$WORK/app"
printf '%s$ %s%s\n' "$DIM" "$(quoted "$AVFS" --json up "$WORK/app" --agent demo-agent) | (its vault and mount point)" "$OFF"
UP=$("$AVFS" --json up "$WORK/app" --agent demo-agent)
UPV=$(printf '%s' "$UP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["vault"])')
AGENT_MNT=$(printf '%s' "$UP" | python3 -c 'import json,sys; print(json.load(sys.stdin)["mountpoint"])')
echo "vault $UPV, fork demo-agent mounted at $AGENT_MNT"
run sh -c "cd '$AGENT_MNT' && printf 'written by the agent\n' > AGENT.txt"
run "$AVFS" down --fork "$UPV:demo-agent" --keep
run "$AVFS" --vault "$UPV:main" cat AGENT.txt
run "$AVFS" --vault "$UPV" apply
run cat "$WORK/app/AGENT.txt"

say "Done. Everything above ran on $AVFS_HOME (removed on exit)."

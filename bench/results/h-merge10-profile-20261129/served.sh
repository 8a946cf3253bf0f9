#!/bin/bash
# per-process CPU (ns, /proc/PID/schedstat) of the resident server and its children over N native ff merges
TREE=${TREE:-/work/h-merge10}; N=${N:-20}; R=/tmp/h-merge10-st/ff
export HOME=$R/userhome AVFS_HOME=$R/side/home GIT_CONFIG_NOSYSTEM=1 LC_ALL=C.UTF-8 AVFS_PROGRESS=never
cd /tmp
PREP=$(cd $TREE && .venv/bin/python -c "import bench.mergereal as m; print(m.PREP)")
$TREE/.venv/bin/python -m avfs_git server start >/dev/null 2>&1
forks=()
for i in $(seq $((N+2))); do f=s$RANDOM$i; AVFS_SERVER=off $TREE/.venv/bin/python -c "$PREP" $f "{\"fork\":{\"$f.md\":\"$f\\n\"},\"main\":{}}"; forks+=($f); done
SP=$(cat $AVFS_HOME/run/cli.pid)
snap() { for p in $(ps -eo pid,ppid | awk -v p=$SP '$1==p||$2==p{print $1}'); do echo "$p $(cut -d' ' -f1 /proc/$p/schedstat)"; done; }
# two warm-up merges (the kept process made)
for f in ${forks[@]:0:2}; do $TREE/.venv/bin/avfs --vault mm merge $f --into main >/dev/null; sleep 0.3; done
snap > /tmp/h-merge10-prof/b; c0=$(date +%s%N)
for f in ${forks[@]:2}; do $TREE/.venv/bin/avfs --vault mm merge $f --into main >/dev/null; sleep 0.3; done
snap > /tmp/h-merge10-prof/a
join /tmp/h-merge10-prof/b /tmp/h-merge10-prof/a | awk -v n=$N '{printf "%s %.3f ms/merge\n", $1, ($3-$2)/1e6/n}'
for p in $(cut -d' ' -f1 /tmp/h-merge10-prof/a); do echo "$p $(tr '\0' ' ' </proc/$p/cmdline | cut -c1-60)"; done
$TREE/.venv/bin/python -m avfs_git server stop >/dev/null 2>&1

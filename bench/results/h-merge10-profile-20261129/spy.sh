#!/bin/bash
TREE=${TREE:-/work/h-merge10}; N=${N:-30}; R=/tmp/h-merge10-st/ff
export HOME=$R/userhome AVFS_HOME=$R/side/home GIT_CONFIG_NOSYSTEM=1 LC_ALL=C.UTF-8 AVFS_PROGRESS=never
cd /tmp
PREP=$(cd $TREE && .venv/bin/python -c "import bench.mergereal as m; print(m.PREP)")
$TREE/.venv/bin/python -m avfs_git server start >/dev/null 2>&1
forks=()
for i in $(seq $((N+2))); do f=y$RANDOM$i; AVFS_SERVER=off $TREE/.venv/bin/python -c "$PREP" $f "{\"fork\":{\"$f.md\":\"$f\\n\"},\"main\":{}}"; forks+=($f); done
SP=$(cat $AVFS_HOME/run/cli.pid)
for f in ${forks[@]:0:2}; do $TREE/.venv/bin/avfs --vault mm merge $f --into main >/dev/null; sleep 0.3; done
KP=$(ps -eo pid,ppid | awk -v p=$SP '$2==p{print $1}' | tail -1)
$TREE/.venv/bin/py-spy record -r 2000 -f raw -o /tmp/h-merge10-prof/kept.spy --pid $KP --nonblocking >/tmp/h-merge10-prof/spy.log 2>&1 &
SPY=$!; sleep 1
for f in ${forks[@]:2}; do $TREE/.venv/bin/avfs --vault mm merge $f --into main >/dev/null; sleep 0.2; done
kill -INT $SPY; wait $SPY
$TREE/.venv/bin/python -m avfs_git server stop >/dev/null 2>&1

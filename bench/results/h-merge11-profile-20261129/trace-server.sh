#!/bin/bash
TREE=${TREE:-/work/h-merge11}; N=${N:-3}; R=${R:-/tmp/h-merge11/st}
export HOME=$R/userhome AVFS_HOME=$R/side/home GIT_CONFIG_NOSYSTEM=1 LC_ALL=C.UTF-8 AVFS_PROGRESS=never
cd /tmp
PREP=$(cd $TREE && .venv/bin/python -c "import bench.mergereal as m; print(m.PREP)")
$TREE/.venv/bin/python -m avfs_git server start >/dev/null 2>&1
forks=()
for i in $(seq $((N+2))); do f=t$RANDOM$i; AVFS_SERVER=off $TREE/.venv/bin/python -c "$PREP" $f "{\"fork\":{\"$f.md\":\"$f\\n\"},\"main\":{}}"; forks+=($f); done
SP=$(cat $AVFS_HOME/run/cli.pid)
for f in ${forks[@]:0:2}; do $TREE/.venv/bin/avfs --vault mm merge $f --into main >/dev/null; sleep 0.3; done
KP=$(ps -eo pid,ppid,etimes | awk -v p=$SP '$2==p{print $3, $1}' | sort -n | tail -1 | cut -d' ' -f2)
KP=$SP
echo kept $KP
strace -tt -T -p $KP -o $R/strace-server.txt & ST=$!; sleep 1
for f in ${forks[@]:2}; do $TREE/.venv/bin/avfs --vault mm merge $f --into main >/dev/null; sleep 0.3; done
kill $ST; wait $ST
$TREE/.venv/bin/python -m avfs_git server stop >/dev/null 2>&1

#!/bin/bash
# per-process CPU (/proc/PID/schedstat) of the resident server and its children over N native merges of KIND
TREE=${TREE:-/work/h-merge11}; N=${N:-20}; R=${R:-/tmp/h-merge11/st}; KIND=${KIND:-ff}
export HOME=$R/userhome AVFS_HOME=$R/side/home GIT_CONFIG_NOSYSTEM=1 LC_ALL=C.UTF-8 AVFS_PROGRESS=never
cd /tmp
PREP=$(cd $TREE && .venv/bin/python -c "import bench.mergereal as m; print(m.PREP)")
$TREE/.venv/bin/python -m avfs_git server start >/dev/null 2>&1
forks=()
for i in $(seq $((N+2))); do f=s$RANDOM$i
  if [ $KIND = ff ]; then w="{\"fork\":{\"$f.md\":\"$f\\n\"},\"main\":{}}"
  elif [ $KIND = root ]; then w="{\"fork\":{\"$f.md\":\"$f\\n\"},\"main\":{\"$f-m.md\":\"m\\n\"}}"
  else w="{\"fork\":{\"index.js\":\"fork $f\\n\"},\"main\":{}}"; fi
  AVFS_SERVER=off $TREE/.venv/bin/python -c "$PREP" $f "$w"; forks+=($f); done
SP=$(cat $AVFS_HOME/run/cli.pid)
snap() { for p in $(ps -eo pid,ppid | awk -v p=$SP '$1==p||$2==p{print $1}'); do echo "$p $(cut -d' ' -f1 /proc/$p/schedstat)"; done; }
one() { if [ $KIND = conflict ]; then
   # main's side of the conflict written just before (untimed, cold)
   AVFS_SERVER=off $TREE/.venv/bin/python -c "$PREP" x$1 "{\"fork\":{},\"main\":{\"index.js\":\"main $1\\n\"}}" >/dev/null
   $TREE/.venv/bin/avfs --vault mm merge $1 --into main --write-conflicts >/dev/null; $TREE/.venv/bin/avfs --vault mm merge --abort --into main >/dev/null 2>&1
 else $TREE/.venv/bin/avfs --vault mm merge $1 --into main >/dev/null; fi; }
for f in ${forks[@]:0:2}; do one $f; sleep 0.3; done
snap > $R/b
for f in ${forks[@]:2}; do one $f; sleep 0.3; done
snap > $R/a
join $R/b $R/a | awk -v n=$N '{printf "%s %.3f ms/merge\n", $1, ($3-$2)/1e6/n}'
for p in $(cut -d' ' -f1 $R/a); do echo "$p $(tr '\0' ' ' </proc/$p/cmdline | cut -c1-60)"; done
$TREE/.venv/bin/python -m avfs_git server stop >/dev/null 2>&1

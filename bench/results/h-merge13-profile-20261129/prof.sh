#!/bin/bash
# N native merges of KIND into fork main mounted on BACKEND, with the resident server;
# MODE=spy: py-spy of the server and its children (and the mount daemon), MODE=strace: strace -c -f
# of the server's tree, MODE=exec: every execve under the server, MODE=cpu: schedstat per process
TREE=${TREE:-/work/h-merge13}; N=${N:-10}; R=${R:-/tmp/h-merge13-pr}; KIND=${KIND:-ff}; BACKEND=${BACKEND:-overlay}
MODE=${MODE:-cpu}; OUT=${OUT:-/tmp/h-merge13-pr-out}
mkdir -p $OUT
export HOME=$R/userhome AVFS_HOME=$R/side/home GIT_CONFIG_NOSYSTEM=1 LC_ALL=C.UTF-8 AVFS_PROGRESS=never
PY=$TREE/.venv/bin/python
[ -d $AVFS_HOME ] || (cd $TREE && $PY bench/results/h-merge13-profile-20261129/mkhome.py $TREE $R >/dev/null)
cd /tmp
PREP=$(cd $TREE && $PY -c "import bench.mergereal as m; print(m.PREP)")
mkdir -p $R/mnt
AVFS_SERVER=off $PY -m avfs_git mount mm:main $R/mnt --backend $BACKEND >/dev/null
$PY -m avfs_git server start >/dev/null 2>&1
forks=()
for i in $(seq $((N+2))); do f=s$RANDOM$i
  if [ $KIND = ff ]; then w="{\"fork\":{\"$f.md\":\"$f\\n\"},\"main\":{}}"
  elif [ $KIND = root ]; then w="{\"fork\":{\"$f.md\":\"$f\\n\"},\"main\":{}}"
  else w="{\"fork\":{\"index.js\":\"fork $f\\n\"},\"main\":{}}"; fi
  AVFS_SERVER=off $PY -c "$PREP" $f "$w"; forks+=($f); done
SP=$(cat $AVFS_HOME/run/cli.pid)
DP=$(pgrep -f "avfs_git.fuse.daemon.*$R/mnt" | head -1)
one() { if [ $KIND = root ]; then echo "m $1" > $R/mnt/$1-m.md; AVFS_SERVER=off $PY -m avfs_git --vault mm checkpoint save >/dev/null; fi
 if [ $KIND = conflict ]; then
   echo "main $1" > $R/mnt/index.js; AVFS_SERVER=off $PY -m avfs_git --vault mm checkpoint save >/dev/null
   $TREE/.venv/bin/avfs --vault mm merge $1 --into main --write-conflicts >/dev/null; AVFS_SERVER=off $PY -m avfs_git --vault mm merge --abort --into main >/dev/null 2>&1
 else $TREE/.venv/bin/avfs --vault mm merge $1 --into main >/dev/null; fi; }
snap() { for p in $(ps -eo pid,ppid | awk -v p=$SP '$1==p||$2==p{print $1}') $DP; do echo "$p $(cat /proc/$p/task/*/schedstat | awk '{s+=$1} END {print s}')"; done | sort; }
for f in ${forks[@]:0:2}; do one $f; sleep 0.3; done
case $MODE in
 spy) KP=$(ps -eo pid,ppid | awk -v p=$SP '$2==p{print $1}' | head -1)
   $TREE/.venv/bin/py-spy record -r 500 -p $SP --subprocesses -f raw -o $OUT/spy-$BACKEND-$KIND.raw --nonblocking >/dev/null 2>&1 & S1=$!
   $TREE/.venv/bin/py-spy record -r 500 -p $DP -f raw -o $OUT/spy-daemon-$BACKEND-$KIND.raw --nonblocking >/dev/null 2>&1 & S2=$!
   sleep 1.5 ;;
 strace) strace -c -f $(for p in $(ps -eo pid,ppid | awk -v p=$SP '$1==p||$2==p{print $1}'); do echo -p $p; done) -o $OUT/strace-$BACKEND-$KIND.txt & S1=$!; sleep 1 ;;
 exec) strace -f -e trace=execve -s 200 $(for p in $(ps -eo pid,ppid | awk -v p=$SP '$1==p||$2==p{print $1}'); do echo -p $p; done) -o $OUT/exec-$BACKEND-$KIND.txt & S1=$!; sleep 1 ;;
 cpu) snap > $R/b ;;
esac
for f in ${forks[@]:2}; do one $f; sleep 0.3; done
case $MODE in
 cpu) snap > $R/a; join $R/b $R/a | awk -v n=$N '{printf "%s %.3f ms/merge\n", $1, ($3-$2)/1e6/n}'
   for p in $(cut -d' ' -f1 $R/a); do echo "$p $(tr '\0' ' ' </proc/$p/cmdline | cut -c1-80)"; done ;;
 *) kill -INT $S1 $S2 2>/dev/null; wait $S1 $S2 2>/dev/null ;;
esac
$PY -m avfs_git server stop >/dev/null 2>&1
AVFS_SERVER=off $PY -m avfs_git unmount mm:main >/dev/null 2>&1

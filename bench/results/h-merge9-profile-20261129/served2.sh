#!/bin/bash
# N served native merges of kind K, the server's processes under `strace -f -c` (or -tt with TT=1)
K=${1:-ff}; N=${2:-10}; TREE=/work/h-merge9
R=/tmp/h-merge9/mr/kept/$K
export HOME=$R/userhome AVFS_HOME=$R/side/home GIT_CONFIG_NOSYSTEM=1 LC_ALL=C.UTF-8
unset PYTHONPATH
cd /tmp
PREP=$(cd $TREE && .venv/bin/python -c "import bench.mergereal as m; print(m.PREP)")
prep() { AVFS_SERVER=off $TREE/.venv/bin/python -c "$PREP" "$1" "$2"; }
w() { if [ $K = ff ]; then echo "{\"fork\":{\"$1.md\":\"$1\\n\"},\"main\":{}}"; else echo "{\"fork\":{\"$1.md\":\"$1\\n\"},\"main\":{\"$1-main.md\":\"m\\n\"}}"; fi; }
SP=$(cat $AVFS_HOME/run/cli.pid)
PIDS=$(ps -eo pid,ppid | awk -v p=$SP '$1==p||$2==p{print "-p "$1}')
for i in $(seq $N); do f=w$RANDOM$i; prep $f "$(w $f)"; echo $f; done > /tmp/h-merge9/prof/forks.$K
OUT=/tmp/h-merge9/prof/strace-$K.txt
if [ -n "$TT" ]; then strace -f -tt -T -o $OUT $PIDS & else strace -f -c -o $OUT $PIDS & fi
ST=$!; sleep 1
for f in $(cat /tmp/h-merge9/prof/forks.$K); do $TREE/.venv/bin/avfs --vault mm merge $f --into main >/dev/null; sleep 0.4; done
kill -INT $ST; wait $ST; echo done $OUT

#!/bin/bash
# py-spy (1000 Hz, raw, no idle) on the served kept process and the server during N native merges of kind K
K=${1:-ff}; N=${2:-20}; TREE=/work/h-merge9
R=/tmp/h-merge9/mr/kept/$K
export HOME=$R/userhome AVFS_HOME=$R/side/home GIT_CONFIG_NOSYSTEM=1 LC_ALL=C.UTF-8
cd /tmp
PREP=$(cd $TREE && .venv/bin/python -c "import bench.mergereal as m; print(m.PREP)")
w() { if [ $K = ff ]; then echo "{\"fork\":{\"$1.md\":\"$1\\n\"},\"main\":{}}"; elif [ $K = root ]; then echo "{\"fork\":{\"$1.md\":\"$1\\n\"},\"main\":{\"$1-main.md\":\"m\\n\"}}"; fi; }
for i in $(seq $N); do f=q$RANDOM$i; AVFS_SERVER=off $TREE/.venv/bin/python -c "$PREP" $f "$(w $f)"; echo $f; done > /tmp/h-merge9/prof/forks3.$K
SP=$(cat $AVFS_HOME/run/cli.pid)
KP=$(ps -eo pid,ppid,etimes | awk -v p=$SP '$2==p{print $3, $1}' | sort -rn | head -1 | cut -d" " -f2)
echo server $SP kept $KP
$TREE/.venv/bin/py-spy record -p $KP -r 1000 -f raw -o /tmp/h-merge9/prof/spy-kept.$K --nonblocking >/dev/null 2>&1 &
A=$!
$TREE/.venv/bin/py-spy record -p $SP -r 1000 -f raw -o /tmp/h-merge9/prof/spy-server.$K --nonblocking >/dev/null 2>&1 &
B=$!
sleep 1.5
for f in $(cat /tmp/h-merge9/prof/forks3.$K); do $TREE/.venv/bin/avfs --vault mm merge $f --into main >/dev/null; sleep 0.3; done
sleep 0.5; kill -INT $A $B; wait $A $B 2>/dev/null
ls -la /tmp/h-merge9/prof/spy-*.$K

#!/bin/bash
# per-process CPU (utime+stime, /proc/PID/stat, 10 ms ticks → summed over N merges) of the resident server and its children during N native merges
K=${1:-ff}; N=${2:-20}; TREE=/work/h-merge9
R=/tmp/h-merge9/mr/kept/$K
export HOME=$R/userhome AVFS_HOME=$R/side/home GIT_CONFIG_NOSYSTEM=1 LC_ALL=C.UTF-8
cd /tmp
PREP=$(cd $TREE && .venv/bin/python -c "import bench.mergereal as m; print(m.PREP)")
w() { if [ $K = ff ]; then echo "{\"fork\":{\"$1.md\":\"$1\\n\"},\"main\":{}}"; else echo "{\"fork\":{\"$1.md\":\"$1\\n\"},\"main\":{\"$1-main.md\":\"m\\n\"}}"; fi; }
for i in $(seq $N); do f=p$RANDOM$i; AVFS_SERVER=off $TREE/.venv/bin/python -c "$PREP" $f "$(w $f)"; echo $f; done > /tmp/h-merge9/prof/forks2.$K
SP=$(cat $AVFS_HOME/run/cli.pid)
snap() { for p in $(ps -eo pid,ppid | awk -v p=$SP '$1==p||$2==p{print $1}'); do echo "$p $(awk '{print $14+$15}' /proc/$p/stat) $(tr '\0' ' ' </proc/$p/cmdline | cut -c1-40)"; done; }
snap > /tmp/h-merge9/prof/split-before.$K
for f in $(cat /tmp/h-merge9/prof/forks2.$K); do $TREE/.venv/bin/avfs --vault mm merge $f --into main >/dev/null; sleep 0.4; done
snap > /tmp/h-merge9/prof/split-after.$K
join /tmp/h-merge9/prof/split-before.$K /tmp/h-merge9/prof/split-after.$K | awk -v n=$N '{print $1, ($3-$2)*10/n " ms/merge"}'
echo new:; cat /tmp/h-merge9/prof/split-after.$K

#!/bin/bash
# strace -c of the mount daemon (and, apart, the resident server's tree) during N served fast-forwards
# into fork main of the profile home (R, made by h-merge12's mkhome.py), BACKEND; OUT: the two counts
TREE=${TREE:-/work/h-merge15}; N=${N:-6}; R=${R:-/tmp/h-merge15-pr}; BACKEND=${BACKEND:-overlay}
OUT=${OUT:-/tmp/h-merge15-strace}; mkdir -p $OUT
export HOME=$R/userhome AVFS_HOME=$R/side/home GIT_CONFIG_NOSYSTEM=1 LC_ALL=C.UTF-8 AVFS_PROGRESS=never
PY=$TREE/.venv/bin/python
cd /tmp
PREP=$(cd $TREE && $PY -c "import bench.mergereal as m; print(m.PREP)")
mkdir -p $R/mnt
AVFS_SERVER=off $PY -m avfs_git mount mm:main $R/mnt --backend $BACKEND >/dev/null
$PY -m avfs_git server start >/dev/null 2>&1
forks=(); for i in $(seq $((N+2))); do f=d$RANDOM$i; AVFS_SERVER=off $PY -c "$PREP" $f "{\"fork\":{\"$f.md\":\"$f\\n\"},\"main\":{}}"; forks+=($f); done
SP=$(cat $AVFS_HOME/run/cli.pid); DP=$(pgrep -f "avfs_git.fuse.daemon.*$R/mnt" | head -1)
[ -n "$DP" ] || DP=$(grep -l "$R/mnt" /proc/[0-9]*/cmdline 2>/dev/null | head -1 | cut -d/ -f3)
for f in ${forks[@]:0:2}; do $TREE/.venv/bin/avfs --vault mm merge $f --into main >/dev/null; sleep 0.3; done
strace -c -f -p $DP -o $OUT/daemon-$BACKEND.txt & S1=$!
strace -c -f $(for p in $(ps -eo pid,ppid | awk -v p=$SP '$1==p||$2==p{print $1}'); do echo -p $p; done) -o $OUT/server-$BACKEND.txt & S2=$!
sleep 1
for f in ${forks[@]:2}; do $TREE/.venv/bin/avfs --vault mm merge $f --into main >/dev/null; sleep 0.3; done
kill -INT $S1 $S2; wait $S1 $S2 2>/dev/null
$PY -m avfs_git server stop >/dev/null 2>&1
AVFS_SERVER=off $PY -m avfs_git unmount mm:main >/dev/null 2>&1
echo "daemon $DP server $SP: $OUT"

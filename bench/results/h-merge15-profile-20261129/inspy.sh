#!/bin/bash
# h-merge12's inproc.py on a mounted fork under py-spy (raw, RATE Hz): TREE's code, BACKEND, KIND, N;
# OUT: the raw file. The home (R) made by h-merge12's mkhome.py (SRC: minimist with node_modules).
TREE=${TREE:-/work/h-merge15}; N=${N:-30}; R=${R:-/tmp/h-merge15-pr}; KIND=${KIND:-ff}; BACKEND=${BACKEND:-overlay}
RATE=${RATE:-1000}; SPY=${SPY:-/tmp/h-merge15-spy/bin/py-spy}; OUT=${OUT:-/tmp/h-merge15-spy-$BACKEND-$KIND.raw}
export HOME=$R/userhome AVFS_HOME=$R/side/home GIT_CONFIG_NOSYSTEM=1 LC_ALL=C.UTF-8 AVFS_PROGRESS=never AVFS_SERVER=off TREE
PY=$TREE/.venv/bin/python
P12=$(cd $(dirname $0)/../h-merge12-profile-20261129 && pwd)
[ -d $AVFS_HOME ] || (cd $TREE && $PY $P12/mkhome.py $TREE $R >/dev/null)
cd /tmp
PREP=$(cd $TREE && $PY -c "import bench.mergereal as m; print(m.PREP)")
mkdir -p $R/mnt
$PY -m avfs_git mount mm:main $R/mnt --backend $BACKEND >/dev/null
if [ -n "$NOSPY" ]; then PYTHONPATH=$TREE $PY $P12/inproc.py $KIND $N "$PREP" $R/mnt
else PYTHONPATH=$TREE $SPY record -r $RATE -f raw -o $OUT -- $PY $P12/inproc.py $KIND $N "$PREP" $R/mnt; fi
$PY -m avfs_git unmount mm:main >/dev/null 2>&1

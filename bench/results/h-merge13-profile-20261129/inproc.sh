#!/bin/bash
# inproc.py on a mounted fork: TREE's code, BACKEND, KIND, N
TREE=${TREE:-/work/h-merge13}; N=${N:-10}; R=${R:-/tmp/h-merge13-pr}; KIND=${KIND:-ff}; BACKEND=${BACKEND:-overlay}
export HOME=$R/userhome AVFS_HOME=$R/side/home GIT_CONFIG_NOSYSTEM=1 LC_ALL=C.UTF-8 AVFS_PROGRESS=never AVFS_SERVER=off TREE
PY=$TREE/.venv/bin/python
HERE=$(cd $(dirname $0) && pwd)
[ -d $AVFS_HOME ] || (cd $TREE && $PY $HERE/mkhome.py $TREE $R >/dev/null)
cd /tmp
PREP=$(cd $TREE && $PY -c "import bench.mergereal as m; print(m.PREP)")
mkdir -p $R/mnt
$PY -m avfs_git mount mm:main $R/mnt --backend $BACKEND >/dev/null
PYTHONPATH=$TREE $PY $HERE/inproc.py $KIND $N "$PREP" $R/mnt
$PY -m avfs_git unmount mm:main >/dev/null 2>&1

#!/bin/bash
# run prof.sh then make sure the server and mount are gone
D=$(dirname "$0")/../h-merge12-profile-20261129; export TREE=${TREE:-/work/h-merge13} R=${R:-/tmp/h-merge13-pr} SRC=${SRC:-/tmp/h-merge13-src/minimist}
bash $D/prof.sh
export HOME=$R/userhome AVFS_HOME=$R/side/home GIT_CONFIG_NOSYSTEM=1
PY=${TREE:-/work/h-merge13}/.venv/bin/python
sleep 0.5; AVFS_SERVER=off $PY -m avfs_git server stop >/dev/null 2>&1; AVFS_SERVER=off $PY -m avfs_git unmount mm:main >/dev/null 2>&1; true

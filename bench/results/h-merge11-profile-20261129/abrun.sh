#!/bin/bash
# interleaved A/B: per-process CPU (schedstat) of the resident server and its kept process, N native merges a kind
ROUNDS=${ROUNDS:-3}; N=${N:-8}; OUT=${OUT:-/tmp/h-merge11/ab.jsonl}
for r in $(seq $ROUNDS); do for kind in ${KINDS:-ff root}; do
  if [ $(((r + ${SHIFT:-0}) % 2)) = 1 ]; then order="this base"; else order="base this"; fi
  for side in $order; do
    if [ $side = this ]; then T=/work/h-merge11; R=/tmp/h-merge11/st2; else T=/work/h-merge11-base; R=/tmp/h-merge11/sb2; fi
    load=$(cut -d' ' -f1 /proc/loadavg)
    out=$(TREE=$T R=$R N=$N KIND=$kind /tmp/h-merge11/served.sh 2>/dev/null)
    sp=$(cat $R/side/home/run/cli.pid 2>/dev/null)
    echo "$out" | awk -v r=$r -v k=$kind -v s=$side -v l=$load -v n=$N '/ms\/merge/{v[NR]=$2; p[NR]=$1} END{srv=0; kept=0; for(i in v){ if(v[i]>kept){srv2=kept; kept=v[i]} } ; printf "{\"round\":%d,\"kind\":\"%s\",\"side\":\"%s\",\"load\":%s,\"n\":%d,\"procs\":[", r,k,s,l,n; c=0; for(i in v){ printf "%s%s", (c++?",":""), v[i]} ; printf "]}\n"}' >> $OUT
    tail -1 $OUT
  done
done; done

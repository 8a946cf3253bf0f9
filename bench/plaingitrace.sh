#!/bin/bash
# two gits in a plain worktree: A `git commit -qam` (moves HEAD, then writes the index), B
# `git commit -q --allow-empty` started at once; B's commit is "stale" when its parent is A's
# commit but its tree is not A's (B committed the index it read before A wrote it)
# usage: bench/plaingitrace.sh N [HOOK_SLEEP]  (docs/benchmarks.md, h-gitmodel4: avfs's mount against this)
n=$1; sl=${2:-}
d=$(mktemp -d); cd $d; git init -q; echo 0 > a; git add a; git -c user.name=a -c user.email=b commit -qm 0
export GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=b GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=b
if [ -n "$sl" ]; then
  printf '#!/bin/sh\nsleep %s\nprintf "/\\0"\n' "$sl" > .git/slowhook; chmod +x .git/slowhook
  # (git's v1 protocol: "everything may have changed" after a pause, as a slow daemon's answer)
  git config core.fsmonitor "$d/.git/slowhook"; git config core.fsmonitorHookVersion 1
fi
stale=0; landed=0; failed=0
for i in $(seq $n); do
  echo $i >> a
  git commit -qam "A $i" & pa=$!
  git commit -q --allow-empty -m "B $i" 2>/dev/null & pb=$!
  wait $pa; wait $pb; rb=$?
  if [ $rb -ne 0 ]; then failed=$((failed+1)); continue; fi
  landed=$((landed+1))
  # B's commit: HEAD or HEAD~1 (A after B)
  for c in HEAD HEAD~1; do
    if git log -1 --format=%s $c | grep -q "^B $i$"; then
      p=$(git rev-parse $c~1); if git log -1 --format=%s $p | grep -q "^A $i$"; then
        [ "$(git rev-parse $c^{tree})" != "$(git rev-parse $p^{tree})" ] && stale=$((stale+1))
      fi
    fi
  done
  git reset -q --hard HEAD 2>/dev/null
done
printf '{"rounds": %s, "hook_sleep_s": "%s", "b_landed": %s, "b_failed": %s, "stale": %s, "load": "%s"}\n' $n "${sl:-none}" $landed $failed $stale "$(cut -d" " -f1-3 /proc/loadavg)"
rm -rf $d

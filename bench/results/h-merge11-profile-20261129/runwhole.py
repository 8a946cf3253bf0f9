import sys
from pathlib import Path

sys.path.insert(0, "/work/h-merge11")
import bench.spareab as s

s.CGROUPS = Path("/sys/fs/cgroup/cpuacct/h-merge11-mr")  # (this run's groups under h-merge11-*)
import bench.mergereal as m  # noqa: E402  (after the groups moved)

sys.argv = ["mergereal", *sys.argv[1:]]
m.main()

import os
import sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
from bench import realproj7

root = Path(sys.argv[2])
root.mkdir(parents=True, exist_ok=True)
realproj7.ROOT = root
(root / "userhome").mkdir(exist_ok=True)
(root / "userhome" / ".gitconfig").write_text("[user]\n\tname = mr\n\temail = mr@example.org\n")
os.environ["HOME"] = str(root / "userhome")
src = Path("/tmp/h-merge11/src/plain")
proj = realproj7.project(src)
print(realproj7.avfs_side("side", proj, src / "node_modules"))

# a home as bench/mergereal.py makes its sides: minimist + its ignored node_modules through an overlay mount
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
if os.environ.get("SYN10K"):  # the synthetic 10k tree (bench/trees.py), its vault made from it
    import avfs_git
    from bench.trees import ensure_tree

    home = root / "side" / "home"
    os.environ.update(realproj7.env_for(home, None))
    h = avfs_git.open_home()
    h.create_vault("mm", from_dir=str(ensure_tree("10k")))
    h.close()
    print(home)
    sys.exit(0)
src = Path(os.environ.get("SRC", "/tmp/h-merge13-src/minimist"))
proj = realproj7.project(src)
print(realproj7.avfs_side("side", proj, src / "node_modules"))

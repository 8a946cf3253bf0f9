"""`python -m avfs_git` runs the CLI."""

import sys

from avfs_git.cli.client import main

if __name__ == "__main__":
    sys.exit(main())

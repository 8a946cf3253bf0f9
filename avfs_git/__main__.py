"""`python -m avfs_git` runs the CLI."""

from avfs_git.cli.main import run

if __name__ == "__main__":
    run()

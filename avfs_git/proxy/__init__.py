"""The execution boundary: classify -> decide -> checkpoint -> run in the mount -> commit."""

"""The FUSE adapter and mount lifecycle (imports mfusepy; nothing in core imports this)."""

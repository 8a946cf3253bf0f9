"""The vault and its home: the home (settings, the layers file system, making vaults from a
directory or a URL), a vault and its forks, the mount registry, the operation log, the audit log
and the quota. Built on the workspace and the store."""

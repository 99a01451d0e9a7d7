"""The learn face (``safe-pip allow learn`` / ``allow review``): what a project uses, its verified
publishers, allowlist proposals and their review. May import check and the rooms below it."""

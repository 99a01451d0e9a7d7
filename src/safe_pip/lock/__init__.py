"""The verify face (``safe-pip verify``): locate a lock's files, check them, decide with the lock's
identities, report, keep evidence and caches. May import check and the rooms below it."""

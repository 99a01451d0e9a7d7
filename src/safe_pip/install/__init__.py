"""The install face (``safe-pip install``): requirements, resolution through the verifying index,
the final pip, its report. May import check, options, the rooms below; serve and lock (peers).

Modules: ``args`` (safe-pip's and pip's arguments), ``requirements`` (requirement files),
``sources`` (where files come from, index confusion), ``resolve`` (the resolve step),
``verdicts`` (the verify step), ``apply`` (the install step), ``report`` (outcome and JSON
report), ``piprun`` (running pip), ``run`` (the whole run).

Phases, strictly ordered (threat T10, T12, T19, T26):

1. **Resolve**: ``python -m pip install --dry-run --report`` with the user's arguments, isolated
   from pip's configuration, wheels only unless sdist builds are allowed. Nothing is installed
   and (wheels only) nothing is built or run. With ``allow-sdist = true`` (and one index),
   pip resolves through an in-process verifying index (:func:`safe_pip.serve.start_server`,
   block mode) in front of the user's index instead, without ``--only-binary``: every file pip
   fetches, the sdists and the build dependencies its isolated build environments install,
   passes verification first (a refused one is a 403 and the resolution fails).
2. **Fetch and verify**: every file in the report (transitive dependencies included) is
   downloaded into a private temporary wheelhouse (0700), hashed, its provenance fetched,
   verified and decided by :class:`safe_pip.check.Checker`, in parallel.
3. **Refuse or install**: any refusal prints one table and exits 1 with nothing installed.
   Otherwise one ``pip install --no-index --no-deps --require-hashes --isolated`` over the files
   in the wheelhouse, pinned to the sha256 that was verified (pip re-hashes them, so a swap
   after verification fails the install), then the history records what was installed.
   Verified sdists are first built into wheels by ``pip wheel --no-deps`` (build isolation on,
   build dependencies through the verifying index); those wheels are pinned to the hash they
   have when built and reported as ``built_from`` the sdist (their bytes are not attested).

Several indexes (``-i`` plus ``--extra-index-url``): a project listed on more than one of them
is refused (``refused-index-confusion``, threat T11) unless the policy names its publisher
(docs/adr/0005-dependency-confusion.md).
"""

from __future__ import annotations

from safe_pip.install.piprun import HOOKS, Hooks
from safe_pip.install.report import Outcome
from safe_pip.install.run import run_install

__all__ = ["HOOKS", "Hooks", "Outcome", "run_install"]

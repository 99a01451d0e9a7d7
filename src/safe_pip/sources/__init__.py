"""Where file references come from (the target room for every lockfile reader).

Today it holds the readers of ``poetry.lock`` and ``pdm.lock``; the pylock, requirements and
uv.lock readers still live in :mod:`safe_pip.lockfile` (a layout issue moves them here). Every
reader returns the same :class:`safe_pip.lockfile.model.Lock`.
"""

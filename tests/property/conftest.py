"""Hypothesis settings for the property suite: modest example counts, no deadline, the same
examples every run (see tests/conftest.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile(
    "safe-pip",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("safe-pip")

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    return st.recursive(
        _scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=12), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )

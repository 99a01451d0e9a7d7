"""The policy: its file (read: ``file``, edit: ``edit``), the history model, the pure ``decide()``.
May import net, output, models, errors and text.

``decide()`` is pure: no network, no disk writes, no clock; the caller passes the time in.
"""

from __future__ import annotations

from safe_pip.policy.file import (
    Defaults,
    PackageRule,
    Policy,
    UnsignedException,
    load_policy,
)
from safe_pip.policy.history import HistoryRecord, ProjectHistory
from safe_pip.policy.rules import decide, history_records_for, identity_matches

__all__ = [
    "Defaults",
    "HistoryRecord",
    "PackageRule",
    "Policy",
    "ProjectHistory",
    "UnsignedException",
    "decide",
    "history_records_for",
    "identity_matches",
    "load_policy",
]

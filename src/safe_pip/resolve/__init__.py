"""Turning an install request or a lockfile into the list of files to check.

- :mod:`safe_pip.resolve.pip_report`: pip's ``--dry-run --report`` (format version 1).
"""

from __future__ import annotations

from safe_pip.resolve.pip_report import ReportItem, parse_report, read_report

__all__ = ["ReportItem", "parse_report", "read_report"]

"""safe_pip.sources.pip_report.parse_report: arbitrary report documents give items or a
ConfigError, never another exception."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from property.conftest import json_values
from safe_pip.errors import ConfigError
from safe_pip.sources.pip_report import parse_report

items = st.fixed_dictionaries(
    {},
    optional={
        "download_info": st.fixed_dictionaries(
            {},
            optional={
                "url": st.sampled_from(
                    ["https://f.test/demo-1.0-py3-none-any.whl", "file:///tmp/x", "::"]
                )
                | json_values(2),
                "archive_info": json_values(4),
                "dir_info": json_values(3),
                "vcs_info": json_values(3),
            },
        )
        | json_values(3),
        "metadata": st.fixed_dictionaries(
            {},
            optional={"name": json_values(2) | st.just("demo"), "version": json_values(2)},
        )
        | json_values(3),
        "is_direct": json_values(1),
        "requested": json_values(1),
        "is_yanked": json_values(1),
    },
)


@given(
    st.fixed_dictionaries(
        {"version": st.sampled_from(["1", 1, "2", None])},
        optional={"install": st.lists(items | json_values(3), max_size=5) | json_values(3)},
    )
    | json_values()
)
def test_reports(doc: object) -> None:
    with contextlib.suppress(ConfigError):
        parse_report(doc)

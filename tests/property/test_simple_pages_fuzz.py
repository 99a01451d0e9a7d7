"""safe_pip.net.simple: arbitrary PEP 691 JSON and PEP 503 HTML bodies parse to a page or a
NetworkError (MalformedResponse / ResponseTooLarge), never another exception; every file on a
parsed page belongs to the project and has an http(s) URL."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from property.conftest import json_values
from safe_pip.errors import NetworkError
from safe_pip.net import Http, Limits, Response, SimpleIndex

BASE = "https://example.test/simple/demo/"
INDEX = SimpleIndex(Http(Limits(max_files_per_page=50)), "https://example.test/simple/")
JSON_T = "application/vnd.pypi.simple.v1+json"


def _parse(body: bytes, ctype: str) -> None:
    resp = Response(200, {"Content-Type": ctype}, body, BASE)
    try:
        page = INDEX.parse_page("demo", resp)
    except NetworkError:
        return
    assert page.name == "demo"
    for f in page.files:
        assert f.project == "demo"
        assert f.url is not None
        assert f.url.startswith(("https://", "http://"))


file_entries = st.fixed_dictionaries(
    {
        "filename": st.sampled_from(
            ["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz", "other-1.0.tar.gz", "x", ""]
        )
        | st.text(max_size=30),
        "url": st.sampled_from(["demo-1.0.tar.gz", "https://f.test/a", "//h/x", "::", "http://[::"])
        | st.text(max_size=30),
    },
    optional={
        "hashes": json_values(5),
        "yanked": json_values(3),
        "provenance": json_values(3),
        "size": json_values(2),
        "upload-time": json_values(2),
    },
)

pages = st.fixed_dictionaries(
    {
        "meta": st.fixed_dictionaries({}, optional={"api-version": json_values(2)})
        | json_values(3),
        "name": st.sampled_from(["demo", "Demo", "other"]) | json_values(2),
        "files": st.lists(file_entries | json_values(3), max_size=6) | json_values(3),
    },
    optional={"versions": json_values(4)},
)


@given(pages)
def test_json_pages(doc: dict[str, object]) -> None:
    _parse(json.dumps(doc).encode(), JSON_T)


@given(st.binary(max_size=300), st.sampled_from([JSON_T, "text/html", "", "application/x"]))
def test_arbitrary_bytes(body: bytes, ctype: str) -> None:
    _parse(body, ctype)


anchor = st.builds(
    lambda href, attrs, text: f"<a href={href!r} {attrs}>{text}</a>",
    st.sampled_from(["demo-1.0.tar.gz", "https://f.test/demo-1.0-py3-none-any.whl#sha256=zz"])
    | st.text(max_size=20),
    st.sampled_from(["", "data-yanked", 'data-yanked="r"', 'data-provenance="::"']),
    st.text(max_size=10),
)


@given(
    st.lists(
        anchor
        | st.sampled_from(
            ["<base href='http://[::'>", "<meta name='pypi:repository-version' content='2.0'>"]
        ),
        max_size=60,
    )
)
def test_html_pages(parts: list[str]) -> None:
    _parse("".join(parts).encode(), "text/html")

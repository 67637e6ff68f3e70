"""Docker's reference filter: Go's ``path.Match`` on familiar names (see strata.cli.refmatch)."""

from __future__ import annotations

import pytest

from strata.cli.refmatch import path_pattern, reference_filter
from strata.errors import InvalidArgument


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("localhost:5000/*", "localhost:5000/x", True),
        ("localhost:5000/*", "localhost:5000/a/b", False),  # * never crosses a /
        ("*:t1", "localhost:5000/a/b:t1", False),
        ("localhost:5000/*/*:t?", "localhost:5000/a/b:t1", True),
        ("debi*", "debian", True),
        ("debian:*", "debian:bookworm", True),
        ("[a-d]ebian", "debian", True),
        ("[^d]ebian", "debian", False),
        ("a\\*", "a*", True),
        ("a\\*", "ab", False),
    ],
)
def test_path_match(pattern: str, text: str, matches: bool) -> None:
    assert bool(path_pattern(pattern).fullmatch(text)) is matches


def test_filter_rows() -> None:
    rows = [
        {"Repository": "localhost:5000/x", "Tag": "1"},
        {"Repository": "localhost:5000/x", "Tag": "latest"},
        {"Repository": "<none>", "Tag": "<none>"},
    ]
    assert reference_filter(rows, "localhost:5000/x") == rows[:2]
    assert reference_filter(rows, "localhost:5000/x:1") == rows[:1]
    assert reference_filter(rows, "*") == []
    with pytest.raises(InvalidArgument, match="syntax error"):
        reference_filter(rows, "a[b")

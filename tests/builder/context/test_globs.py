"""Go's path.Clean and filepath.Match, case by case (Go's own test table)."""

from __future__ import annotations

import pytest

from strata.builder.context import globs

# (pattern, name, matches); None: Go returns ErrBadPattern.
MATCH_CASES = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("[]a]", "]", None),
    ("[-]", "-", None),
    ("[x-]", "x", None),
    ("[x-]", "-", None),
    ("[-x]", "x", None),
    ("\\", "a", None),
    ("[a-b-c]", "a", None),
    ("[", "a", None),
    ("[^", "a", None),
    ("[^bc", "a", None),
    ("a[", "a", None),
    ("a[", "ab", None),
    ("a[", "x", None),
    ("a/b[", "x", None),
    ("*x", "xxx", True),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), MATCH_CASES)
def test_match_like_go(pattern: str, name: str, expected: bool | None) -> None:
    if expected is None:
        with pytest.raises(globs.BadPattern):
            globs.match(pattern, name)
    else:
        assert globs.match(pattern, name) is expected


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [
        ("", "."),
        ("abc", "abc"),
        ("abc/def/", "abc/def"),
        ("a/b/../c", "a/c"),
        ("../../x", "../../x"),
        ("/../x", "/x"),
        ("./a/./b/", "a/b"),
        ("a//b", "a/b"),
        ("/", "/"),
        ("abc/..", "."),
        ("!foo/../bar", "bar"),
    ],
)
def test_clean_like_go(path: str, cleaned: str) -> None:
    assert globs.clean(path) == cleaned


@pytest.mark.parametrize(
    ("path", "wild"),
    [("a.txt", False), ("*.txt", True), ("a?", True), ("[ab]", True), ("a\\*b", False)],
)
def test_has_wildcards(path: str, wild: bool) -> None:
    assert globs.has_wildcards(path) is wild

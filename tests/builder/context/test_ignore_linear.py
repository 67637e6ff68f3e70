""".dockerignore matching cannot be stalled: patterns that make a backtracking regexp run for
minutes finish at once, and the automaton agrees with patternmatcher's regexp everywhere else."""

from __future__ import annotations

import random
import re

import pytest

from strata.builder.context.automaton import Automaton
from strata.builder.context.ignore import IgnoreRules
from strata.errors import BuildError


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("pattern", "long_name_b"),
    [
        ("a*a*a*a*a*a*a*a*a*a*a*a*b", True),
        ("**/a*a*a*a*a*a*a*a*a*a*a*b", True),
        ("a**a**a**a**a**a**a**a**b", False),  # each ** taken needs a "/"
        ("a/**/a/**/a/**/a/**/a/**/b", False),
        ("?*?*?*?*?*?*?*?*?*?*?*?*b", True),
        ("[a]*[a]*[a]*[a]*[a]*[a]*[a]*[a]*b", True),
    ],
)
def test_pathological_patterns_finish(pattern: str, long_name_b: bool) -> None:
    rules = IgnoreRules.from_patterns([pattern])
    for name in ("a" * 5000, "a/" * 2500, "a" * 5000 + "c"):
        assert not rules.excluded(name)
    assert rules.excluded("a" * 5000 + "b") is long_name_b


def _oracle(pattern: str) -> re.Pattern[str]:
    """patternmatcher's regexp, written out the way it writes it (fine on tiny inputs)."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*" and pattern[i : i + 1] == "*":
            i += 1
            if pattern[i : i + 1] == "/":
                i += 1
            out.append(".*" if i >= len(pattern) else "(?:.*/)?")
        elif ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.index("]", i + 1)
            out.append("[" + pattern[i:end].replace("!", "^") + "]")
            i = end + 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out))


def test_automaton_agrees_with_the_regexp() -> None:
    rng = random.Random(10)
    atoms = ["a", "b", "/", "*", "**", "**/", "?", "[ab]", "[^a]", "\n"]
    names = "ab/\n"
    for _ in range(3000):
        pattern = "".join(rng.choice(atoms) for _ in range(rng.randint(1, 6)))
        oracle = _oracle(pattern)
        automaton = Automaton(pattern)
        for _ in range(20):
            name = "".join(rng.choice(names) for _ in range(rng.randint(0, 8)))
            expected = oracle.fullmatch(name) is not None
            assert automaton.matches(name) is expected, (pattern, name)


# moby/patternmatcher TestMatches rows not in test_ignore.SINGLE (a trailing "/"), matched with
# parent results as the CLI's walk does. Its rows for the path "/" are left out: here that is the
# context root, which is never excluded (the CLI never asks about it).
MORE_MATCHES: list[tuple[str, str, bool | None]] = [
    ("**/", "dir/file/", True),
    ("**/**", "dir/file/", True),
    ("dir/**", "dir/file/", True),
    ("dir/**", "dir/dir2/file/", True),
    ("**/dir2/*", "dir/dir2/file/", True),
    ("**/dir2/**", "dir/dir2/dir3/file/", True),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        True,
    ),
]

# moby/patternmatcher TestMatch (Go's filepath.Match table through Matches): None = bad pattern.
GO_MATCH = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", True),
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
    ("a?b", "a\u263ab", True),
    ("a[^a]b", "a\u263ab", True),
    ("a???b", "a\u263ab", False),
    ("a[^a][^a][^a]b", "a\u263ab", False),
    ("[a-\u03b6]*", "\u03b1", True),
    ("*[a-\u03b6]", "A", False),
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
    ("[x-]", "z", None),
    ("[-x]", "x", None),
    ("[-x]", "-", None),
    ("[-x]", "a", None),
    ("\\", "a", None),
    ("[a-b-c]", "a", None),
    ("[", "a", None),
    ("[^", "a", None),
    ("[^bc", "a", None),
    ("a[", "a", None),
    ("a[", "ab", None),
    ("*x", "xxx", True),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), MORE_MATCHES + GO_MATCH)
def test_patternmatcher_match_tables(pattern: str, path: str, expected: bool | None) -> None:
    if expected is None:
        with pytest.raises(BuildError, match="syntax error in pattern"):
            IgnoreRules.from_patterns([pattern])
        return
    assert IgnoreRules.from_patterns([pattern]).excluded(path) is expected

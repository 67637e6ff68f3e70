""".dockerignore matching cannot be stalled: patterns that make a backtracking regexp run for
minutes finish at once, and the automaton agrees with patternmatcher's regexp everywhere else."""

from __future__ import annotations

import random
import re

import pytest

from strata.build.context.automaton import Automaton
from strata.build.context.ignore import IgnoreRules


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

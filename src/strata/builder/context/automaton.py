"""A backtracking-free matcher for the regexps moby/patternmatcher builds from patterns.

patternmatcher turns a ``.dockerignore`` pattern into a Go regexp, and Go's regexps run in time
linear in the input. Python's ``re`` backtracks, so the same translation lets a 50-byte pattern
such as ``a*a*a*a*a*a*a*a*b`` run for minutes against a long name. This module compiles the
pattern to a Thompson NFA instead and simulates it with bit sets (one bit per state), so a match
costs O(len(path) x len(pattern)) whatever the pattern.

The language is exactly the regexp patternmatcher writes:

- ``*`` is ``[^/]*``; ``?`` is ``[^/]``; ``[...]`` a class (which, as in Go's regexp, may match
  ``/``); ``\\x`` the literal ``x``;
- ``**`` followed by more pattern is ``(.*/)?`` (a ``/`` right after it is eaten), and ``**`` at
  the end is ``.*``; Go's ``.`` does not match a newline, so neither does ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from strata.builder.context.globs import BadPattern

_CACHE_LIMIT: Final = 4096
"""Per-pattern cache of per-character transition masks; bounded against hostile names."""


@dataclass(frozen=True, slots=True)
class _Class:
    negated: bool
    ranges: tuple[tuple[str, str], ...]

    def accepts(self, ch: str) -> bool:
        return any(lo <= ch <= hi for lo, hi in self.ranges) != self.negated


def _parse_class(pattern: str, i: int) -> tuple[_Class, int]:
    """The class opening at ``pattern[i]`` (already validated by ``globs.check``) and its end.

    ``\\x`` is a literal ``x`` and an unescaped ``-`` between two items makes a range; Go's
    ``filepath.Match`` check has already refused a ``-`` or ``]`` anywhere else.
    """
    i += 1
    negated = i < len(pattern) and pattern[i] == "^"
    if negated:
        i += 1
    items: list[tuple[str, bool]] = []  # (character, is an unescaped "-")
    while i < len(pattern):
        ch = pattern[i]
        if ch == "]" and items:
            break
        if ch == "\\" and i + 1 < len(pattern):
            items.append((pattern[i + 1], False))
            i += 2
            continue
        items.append((ch, ch == "-"))
        i += 1
    else:
        raise BadPattern
    ranges: list[tuple[str, str]] = []
    k = 0
    while k < len(items):
        lo = items[k][0]
        if k + 2 < len(items) and items[k + 1][1]:
            hi = items[k + 2][0]
            if lo > hi:
                raise BadPattern  # e.g. [z-a], which Go's regexp rejects as well
            ranges.append((lo, hi))
            k += 3
            continue
        ranges.append((lo, lo))
        k += 1
    return _Class(negated, tuple(ranges)), i + 1


class Automaton:
    """The NFA of one pattern's regexp; `matches` is a full match of a path.

    States are numbered 0..n; state n accepts. A state either consumes one character and moves
    to the next state (a literal, ``?``, a class), loops on characters of a set with an empty
    move to the next state (``*``, ``.*``), or is a split with empty moves to the next state and
    to a later one (the optional group of ``**/``).
    """

    __slots__ = (
        "_accept",
        "_any",
        "_cache",
        "_classes",
        "_literals",
        "_loop_line",
        "_loop_name",
        "_prefix",
        "_skip",
        "_split_mask",
        "_splits",
        "_suffix",
    )

    def __init__(self, text: str) -> None:
        literals: dict[str, int] = {}
        classes: list[tuple[int, _Class]] = []
        any_mask = loop_name = loop_line = skip = split_mask = 0
        splits: list[tuple[int, int]] = []
        lits: list[str | None] = []  # per state: its literal, or None

        def add(kind: str, value: object = None) -> int:
            nonlocal any_mask, loop_name, loop_line, skip, split_mask
            state = len(lits)
            bit = 1 << state
            lits.append(value if kind == "lit" and isinstance(value, str) else None)
            if kind == "lit":
                assert isinstance(value, str)
                literals[value] = literals.get(value, 0) | bit
            elif kind == "any":
                any_mask |= bit
            elif kind == "class":
                assert isinstance(value, _Class)
                classes.append((bit, value))
            elif kind == "name*":
                loop_name |= bit
                skip |= bit
            elif kind == "line*":
                loop_line |= bit
                skip |= bit
            elif kind == "split":
                split_mask |= bit
                skip |= bit
            return state

        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            i += 1
            if ch == "*" and i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1
                if i >= n:
                    add("line*")
                else:
                    split = add("split")
                    add("line*")
                    add("lit", "/")
                    splits.append((split, len(lits)))
            elif ch == "*":
                add("name*")
            elif ch == "?":
                add("any")
            elif ch == "\\":
                if i < n:
                    add("lit", text[i])
                    i += 1
                else:
                    add("lit", "\\")
            elif ch == "[":
                cls, i = _parse_class(text, i - 1)
                add("class", cls)
            else:
                add("lit", ch)
        self._literals = literals
        self._classes = tuple(classes)
        self._any = any_mask
        self._loop_name = loop_name
        self._loop_line = loop_line
        self._skip = skip
        self._split_mask = split_mask
        self._splits = tuple(splits)
        self._accept = 1 << len(lits)
        self._cache: dict[str, tuple[int, int]] = {}
        # A cheap necessary test: the literal states every match starts and ends with.
        start = 0
        while start < len(lits) and lits[start] is not None:
            start += 1
        self._prefix = "".join(c for c in lits[:start] if c is not None)
        targets = {target for _, target in splits}
        end = len(lits)
        while end > start and lits[end - 1] is not None and end not in targets:
            end -= 1
        self._suffix = "".join(c for c in lits[end:] if c is not None)

    def _masks(self, ch: str) -> tuple[int, int]:
        """States that consume ``ch`` and move on, and states that loop on ``ch``."""
        cached = self._cache.get(ch)
        if cached is not None:
            return cached
        consume = self._literals.get(ch, 0)
        if ch != "/":
            consume |= self._any
        for bit, cls in self._classes:
            if cls.accepts(ch):
                consume |= bit
        loop = (self._loop_name if ch != "/" else 0) | (self._loop_line if ch != "\n" else 0)
        if len(self._cache) < _CACHE_LIMIT:
            self._cache[ch] = (consume, loop)
        return consume, loop

    def _closure(self, states: int) -> int:
        """Add every state reachable by empty moves."""
        skip, split_mask, splits = self._skip, self._split_mask, self._splits
        while True:
            grown = states | ((states & skip) << 1)
            if grown & split_mask:
                for state, target in splits:
                    if grown >> state & 1:
                        grown |= 1 << target
            if grown == states:
                return states
            states = grown

    def matches(self, path: str) -> bool:
        """True if the whole of ``path`` is in the pattern's language."""
        prefix, suffix = self._prefix, self._suffix
        if len(path) < len(prefix) + len(suffix):
            return False
        if not path.startswith(prefix) or not path.endswith(suffix):
            return False
        states = self._closure(1)
        masks = self._masks
        closure = self._closure
        for ch in path:
            consume, loop = masks(ch)
            states = closure(((states & consume) << 1) | (states & loop))
            if not states:
                return False
        return bool(states & self._accept)

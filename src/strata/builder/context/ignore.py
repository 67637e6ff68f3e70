"""``.dockerignore``: which files of the context a build may not see.

Read as moby's ``ignorefile.ReadAll`` reads it (a UTF-8 BOM dropped, ``#`` lines skipped, each
line trimmed, cleaned with ``filepath.Clean`` and a leading ``/`` dropped) and matched as
``moby/patternmatcher`` matches, which is what the Docker CLI uses to build the context tar:

- ``*`` and ``?`` never cross ``/``; ``**`` crosses any number of directories; ``[...]`` classes
  and ``\\`` escapes as in Go's ``filepath.Match``;
- patterns apply in order and the last one that matches decides; ``!pattern`` re-includes;
- a pattern that matches a directory matches everything below it.

A walk may skip an excluded directory only when no exception could re-include something below
it (`IgnoreRules.can_skip_dir`). That test is exact for plain patterns and conservative (never
skips) for exceptions with ``**`` or character classes, where Docker's CLI uses a literal
string-prefix test and so can drop files an exception names (``!*/keep`` below ``node_modules``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from strata.builder.context import globs
from strata.builder.context.automaton import Automaton
from strata.errors import BuildError

DEFAULT_SOURCE: Final = ".dockerignore"

_BOM: Final = "\ufeff"


class _Kind(Enum):
    EXACT = 1
    PREFIX = 2
    SUFFIX = 3
    REGEXP = 4


MatchInfo = tuple[bool, ...]
"""Per pattern: did it match this directory (or a parent)? Passed down a walk."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """One cleaned pattern; ``exclusion`` is True for a ``!`` exception."""

    text: str
    exclusion: bool
    kind: _Kind
    automaton: Automaton | None

    def matches(self, path: str) -> bool:
        """patternmatcher's ``Pattern.match`` on a cleaned, ``/``-separated relative path."""
        kind = self.kind
        if kind is _Kind.EXACT:
            return path == self.text
        if kind is _Kind.PREFIX:
            return path.startswith(self.text[:-2])
        if kind is _Kind.SUFFIX:
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.automaton is not None
        return self.automaton.matches(path)

    def could_match_below(self, parts: list[str]) -> bool:
        """Could this pattern match some path strictly below the directory ``parts``?"""
        text = self.text
        if "**" in text or "[" in text or "\\" in text:
            return True  # not fixed-depth: assume it could
        segments = text.split("/")
        if len(segments) <= len(parts):
            return False
        return all(globs.match(seg, part) for seg, part in zip(segments, parts, strict=False))


def _kind(text: str) -> _Kind:
    """patternmatcher's ``compile``: which match kind the pattern gets (the cheap ones where
    they apply, else the regexp, which `Automaton` runs)."""
    kind = _Kind.EXACT
    i = 0
    n = len(text)
    while i < n:
        start = i
        ch = text[i]
        i += 1
        if ch == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1
                # "**" at the end of an otherwise exact pattern is a prefix test.
                exact = i >= n and kind is _Kind.EXACT
                kind = _Kind.PREFIX if exact else _Kind.REGEXP
                if start == 0:
                    kind = _Kind.SUFFIX
            else:
                kind = _Kind.REGEXP
        elif ch in "?[":
            kind = _Kind.REGEXP
        elif ch == "\\" and i < n:
            i += 1
            kind = _Kind.REGEXP
    return kind


def read_patterns(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` text, as moby's ``ignorefile.ReadAll`` returns them."""
    patterns: list[str] = []
    # Go's bufio.Scanner: lines end at "\n", and one "\r" before it is dropped.
    for number, raw in enumerate(text.split("\n")):
        line = raw[:-1] if raw.endswith("\r") else raw
        if number == 0 and line.startswith(_BOM):
            line = line[1:]
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = globs.clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append("!" + line if invert else line)
    return patterns


class IgnoreRules:
    """A parsed ``.dockerignore``: ask whether a context path is excluded."""

    __slots__ = ("_dirs", "exclusions", "patterns", "source")

    def __init__(self, patterns: list[Pattern], source: str) -> None:
        self.patterns: tuple[Pattern, ...] = tuple(patterns)
        self.source = source
        self.exclusions = any(p.exclusion for p in patterns)
        self._dirs: dict[str, tuple[bool, MatchInfo]] = {}

    @classmethod
    def parse(cls, text: str, source: str = DEFAULT_SOURCE) -> IgnoreRules:
        """Parse ``.dockerignore`` text; a bad pattern raises `BuildError` naming ``source``."""
        return cls.from_patterns(read_patterns(text), source)

    @classmethod
    def from_patterns(cls, lines: list[str], source: str = DEFAULT_SOURCE) -> IgnoreRules:
        """Rules from pattern strings (patternmatcher's ``New``: trimmed, cleaned, checked)."""
        patterns: list[Pattern] = []
        for line in lines:
            text = line.strip()
            if not text:
                continue
            text = globs.clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise BuildError(f'{source}: illegal exclusion pattern: "!"')
                text = text[1:]
            try:
                globs.check(text)
                kind = _kind(text)
                automaton = Automaton(text) if kind is _Kind.REGEXP else None
            except globs.BadPattern:
                raise BuildError(
                    f"{source}: invalid pattern {line!r}: syntax error in pattern"
                ) from None
            patterns.append(Pattern(text, exclusion, kind, automaton))
        return cls(patterns, source)

    @classmethod
    def empty(cls) -> IgnoreRules:
        """No patterns: nothing is excluded."""
        return cls([], DEFAULT_SOURCE)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __repr__(self) -> str:
        shown = ["!" + p.text if p.exclusion else p.text for p in self.patterns]
        return f"IgnoreRules({shown!r})"

    def match(self, path: str, parent: MatchInfo | None) -> tuple[bool, MatchInfo]:
        """patternmatcher's ``MatchesUsingParentResults``: is ``path`` excluded, and the
        per-pattern results to pass to its children. ``parent`` is None for top-level paths."""
        matched = False
        info: list[bool] = []
        for i, pattern in enumerate(self.patterns):
            hit = parent[i] if parent else False
            if not hit:
                if pattern.exclusion != matched:
                    info.append(False)
                    continue
                hit = pattern.matches(path)
            info.append(hit)
            if hit:
                matched = not pattern.exclusion
        return matched, tuple(info)

    def _dir_info(self, parts: list[str]) -> MatchInfo | None:
        """The match info of the directory ``parts``, computed top-down from the deepest
        memoised ancestor (iteratively: a context may nest thousands of directories)."""
        depth = len(parts)
        keys = []
        key = ""
        for part in parts:
            key = f"{key}/{part}" if key else part
            keys.append(key)
        known = depth
        while known > 0 and keys[known - 1] not in self._dirs:
            known -= 1
        info = self._dirs[keys[known - 1]][1] if known else None
        for level in range(known, depth):
            result = self.match(keys[level], info)
            if len(self._dirs) < 65536:
                self._dirs[keys[level]] = result
            info = result[1]
        return info

    def excluded(self, relpath: str) -> bool:
        """True if the context path ``relpath`` (``/``-separated, relative) is excluded.

        The context root itself (``.`` or empty) is never excluded.
        """
        if not self.patterns:
            return False
        path = globs.clean(relpath.lstrip("/"))
        if path == ".":
            return False
        parts = path.split("/")
        return self.match(path, self._dir_info(parts[:-1]))[0]

    def can_skip_dir(self, relpath: str) -> bool:
        """True if nothing below the excluded directory ``relpath`` can be re-included."""
        if not self.exclusions:
            return True
        parts = globs.clean(relpath.lstrip("/")).split("/")
        return not any(p.exclusion and p.could_match_below(parts) for p in self.patterns)

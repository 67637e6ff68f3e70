"""Shell patterns of ``${VAR#pat}``, ``${VAR%pat}`` and ``${VAR/pat/repl}``, as BuildKit reads them.

BuildKit turns a pattern into a Go regular expression (``*`` is ``.*`` or ``.*?``, ``?`` is ``.``,
``\\*``, ``\\?`` and ``\\\\`` are literals, no bracket expressions) and takes the leftmost-first
match. This module gives the same matches without a regex engine: a small matcher that explores
star lengths in the same priority order as the regex would, remembering the (segment, position)
states that already failed, so a hostile pattern such as ``*a*a*a*a*b`` costs polynomial time
rather than the exponential backtracking Python's ``re`` would do.
"""

from __future__ import annotations

from collections.abc import Iterator

from strata.errors import DockerfileError

_EOF_RUNE = "\ufffd"  # what Go prints for the scanner's EOF rune in "%c"


class _Segment:
    """A run of fixed-width tokens: literal characters and ``?`` (any one character)."""

    __slots__ = ("anys", "size", "text")

    def __init__(self, tokens: list[str | None]) -> None:
        self.text = "".join("?" if t is None else t for t in tokens)
        self.anys = frozenset(i for i, t in enumerate(tokens) if t is None)
        self.size = len(tokens)

    def at(self, s: str, p: int) -> bool:
        if not self.anys:
            return s.startswith(self.text, p)
        if p + self.size > len(s):
            return False
        anys, text = self.anys, self.text
        for k in range(self.size):
            c = s[p + k]
            if k in anys:
                # Go's "." does not match a newline
                if c == "\n":
                    return False
            elif c != text[k]:
                return False
        return True


class Glob:
    """A compiled shell pattern: a head segment, then segments each preceded by a star."""

    __slots__ = ("greedy", "head", "rest")

    def __init__(self, pattern: str, greedy: bool) -> None:
        # Go's text/scanner skips a byte order mark at the start of its input.
        if pattern.startswith("\ufeff"):
            pattern = pattern[1:]
        segments: list[list[str | None]] = [[]]
        i, n = 0, len(pattern)
        while i < n:
            c = pattern[i]
            i += 1
            if c == "*":
                # "**" matches what "*" matches, first: fold them to keep the search small.
                if len(segments) == 1 or segments[-1]:
                    segments.append([])
            elif c == "?":
                segments[-1].append(None)
            elif c == "\\":
                # "\}" and "\/" only keep "}" and "/" from closing the ${}; the "\" is dropped.
                if i < n and pattern[i] in "}/":
                    continue
                esc = pattern[i] if i < n else _EOF_RUNE
                i += 1
                if esc not in ("*", "?", "\\"):
                    raise DockerfileError(f"invalid escape '\\{esc}'")
                segments[-1].append(esc)
            else:
                segments[-1].append(c)
        self.greedy = greedy
        self.head = _Segment(segments[0])
        self.rest = tuple(_Segment(s) for s in segments[1:])

    def _stars(self, s: str, p: int) -> Iterator[int]:
        """Where a star starting at ``p`` may end, in the regex's priority order."""
        line_end = s.find("\n", p)  # Go's ".*" stops at a newline
        if line_end < 0:
            line_end = len(s)
        if self.greedy:
            return iter(range(line_end, p - 1, -1))
        return iter(range(p, line_end + 1))

    def match_at(self, s: str, start: int, failed: set[tuple[int, int]]) -> int | None:
        """End of the leftmost-first match beginning at ``start``, or None.

        ``failed`` remembers (segment, position) states that cannot succeed; it may be shared
        between calls on the same ``s``.
        """
        if not self.head.at(s, start):
            return None
        pos = start + self.head.size
        rest = self.rest
        if not rest:
            return pos
        last = len(rest) - 1
        # Depth-first over star lengths, iteratively so long patterns cannot exhaust the stack.
        stack: list[tuple[int, int, Iterator[int]]] = [(0, pos, self._stars(s, pos))]
        while stack:
            j, at, ends = stack[-1]
            seg = rest[j]
            for q in ends:
                if seg.at(s, q):
                    e = q + seg.size
                    if j == last:
                        return e
                    if (j + 1, e) not in failed:
                        stack.append((j + 1, e, self._stars(s, e)))
                        break
            else:
                failed.add((j, at))
                stack.pop()
        return None

    def search(self, s: str, pos: int, failed: set[tuple[int, int]]) -> tuple[int, int] | None:
        """(start, end) of the leftmost match at or after ``pos``, or None."""
        n = len(s)
        head = self.head
        literal = head.text if head.size and not head.anys else ""
        start = pos
        while start <= n:
            if literal:
                start = s.find(literal, start)
                if start < 0:
                    return None
            end = self.match_at(s, start, failed)
            if end is not None:
                return start, end
            start += 1
        return None


def _compile(pattern: str, greedy: bool) -> Glob:
    try:
        return Glob(pattern, greedy)
    except DockerfileError as err:
        raise DockerfileError(f"invalid pattern ({pattern}) in substitution: {err}") from None


def trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    """``${VAR#pattern}`` (shortest) or ``${VAR##pattern}`` (greedy, longest)."""
    end = _compile(pattern, greedy).match_at(value, 0, set())
    return value if end is None else value[end:]


def trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    """``${VAR%pattern}`` / ``${VAR%%pattern}``: a prefix trim of the reversed value.

    As BuildKit does, since a leftmost search cannot find the shortest rightmost match.
    """
    return trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern but keep each ``\\x`` escape in order (``a\\*c`` -> ``c\\*a``)."""
    out = [""] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        c = pattern[i]
        o = last - i
        if c == "\\" and i != last:
            out[o - 1] = c
            out[o] = pattern[i + 1]
            i += 2
        else:
            out[o] = c
            i += 1
    return "".join(out)


def replace(pattern: str, value: str, replacement: str, replace_all: bool) -> str:
    """``${VAR/pattern/repl}`` (first match, taken literally) or ``${VAR//pattern/repl}``.

    The replace-all form goes through Go's ``Regexp.ReplaceAllString``: ``$0``/``${0}`` in the
    replacement insert the match, ``$$`` a dollar, other ``$name`` nothing; an empty match right
    after a match is not replaced.
    """
    glob = _compile(pattern, True)
    failed: set[tuple[int, int]] = set()
    if not replace_all:
        span = glob.search(value, 0, failed)
        if span is None:
            return value
        return value[: span[0]] + replacement + value[span[1] :]
    out: list[str] = []
    last_end = 0
    pos = 0
    n = len(value)
    while pos <= n:
        span = glob.search(value, pos, failed)
        if span is None:
            break
        a, b = span
        out.append(value[last_end:a])
        if b > last_end or a == 0:
            out.append(_expand_template(replacement, value[a:b]))
        last_end = b
        pos = pos + 1 if pos + 1 > b else b
    out.append(value[last_end:])
    return "".join(out)


def _expand_template(template: str, match: str) -> str:
    """Go's ``Regexp.Expand`` for a regex whose only group is the whole match (group 0)."""
    if "$" not in template:
        return template
    out: list[str] = []
    i, n = 0, len(template)
    while True:
        k = template.find("$", i)
        if k < 0:
            break
        out.append(template[i:k])
        i = k + 1
        if i < n and template[i] == "$":
            out.append("$")
            i += 1
            continue
        brace = i < n and template[i] == "{"
        j = i + 1 if brace else i
        name_start = j
        while j < n and (template[j].isalpha() or template[j].isdecimal() or template[j] == "_"):
            j += 1
        name = template[name_start:j]
        if not name or (brace and (j >= n or template[j] != "}")):
            out.append("$")  # malformed: Go keeps the "$" as text
            continue
        i = j + 1 if brace else j
        if name == "0":
            out.append(match)
    out.append(template[i:])
    return "".join(out)

"""Docker's reference filter (``images NAME``, ``--filter reference=PATTERN``).

Docker matches a pattern with Go's ``path.Match`` against each image name's familiar
``NAME:TAG``, else its familiar name: ``*`` never crosses a ``/``, so ``localhost:5000/*``
lists ``localhost:5000/x`` but not ``localhost:5000/a/b``, and a port's ``:`` is just a
character of the name.
"""

from __future__ import annotations

import re
from typing import Any

from strata.errors import InvalidArgument


def reference_filter(rows: list[dict[str, Any]], pattern: str) -> list[dict[str, Any]]:
    """Docker's reference filter: ``pattern`` matched (as Go's ``path.Match``) against each
    row's familiar ``NAME:TAG``, else its familiar name; dangling rows never match."""
    match = path_pattern(pattern).fullmatch
    return [
        r
        for r in rows
        if r["Repository"] != "<none>"
        and (
            (r["Tag"] != "<none>" and match(f"{r['Repository']}:{r['Tag']}"))
            or match(r["Repository"])
        )
    ]


def path_pattern(pattern: str) -> re.Pattern[str]:
    """Go's ``path.Match`` syntax as a regex: ``*`` and ``?`` never cross a ``/``."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("^", "]") else i + 1)
            if end < 0:
                raise InvalidArgument(f"invalid reference pattern {pattern!r}: syntax error")
            body = pattern[i + 1 : end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            out.append(f"[{'^/' if negate else ''}{body.replace(chr(92), chr(92) * 2)}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))

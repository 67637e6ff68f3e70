"""JSON from outside (registries, token servers, archives), decoded with a size and depth bound.

Python's decoder recurses once per nesting level, so a few thousand ``[`` end in a
``RecursionError`` (or, under a raised recursion limit, a crashed interpreter), and whatever walks
the decoded value afterwards recurses too. Go's decoder, which Docker uses, stops at 10,000
levels; no manifest, config, token or ``manifest.json`` needs more than a handful, so the bound
here is far lower and the nesting is measured before anything is decoded. Every failure is one
line naming the input: `TooLarge` past the size, `FormatError` for the rest.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, Final

from strata.errors import FormatError, TooLarge

MAX_DEPTH: Final = 100
"""Nesting levels (arrays and objects) a document may have."""

# A JSON string (unrolled and possessive, so linear on any input), or one bracket.
_STRING: Final = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]+")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (brackets inside strings do not
    count); linear time, no recursion."""
    if text.count("[") + text.count("{") == 0:
        return 0
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def loads(
    data: bytes | str, *, source: str, limit: int, max_depth: int = MAX_DEPTH, what: str = ""
) -> Any:
    """Decode ``data`` (strict UTF-8 when bytes) as one JSON value of at most ``limit`` bytes
    and ``max_depth`` levels. ``source`` starts every message (``"<registry>: token response"``);
    ``what`` names the kind of input in the size message."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > limit:
        kind = f" for {what}" if what else ""
        raise TooLarge(f"{source}: {size} bytes is over the {limit}-byte limit{kind}")
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(f"{source}: not valid JSON: not UTF-8 at byte {err.start}") from None
    # Cheap bound first: a document with fewer brackets than the limit cannot nest past it.
    if text.count("[") + text.count("{") > max_depth and depth(text) > max_depth:
        raise FormatError(f"{source}: not valid JSON: nested too deeply (over {max_depth} levels)")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise FormatError(
            f"{source}: not valid JSON: {err.msg} (line {err.lineno} column {err.colno})"
        ) from None
    except RecursionError:
        # Only reachable if the caller's stack is already deep: still one line, never a crash.
        raise FormatError(f"{source}: not valid JSON: nested too deeply") from None
    except ValueError as err:
        # Integers past Python's digit limit and NaN/Infinity land here.
        raise FormatError(f"{source}: not valid JSON: {' '.join(str(err).split())}") from None

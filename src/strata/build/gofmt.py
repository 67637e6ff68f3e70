"""Go's ``fmt`` output for the values Docker's legacy builder prints into history.

Docker 20.10 writes a HEALTHCHECK step as ``fmt.Sprintf("HEALTHCHECK %q", runConfig.Healthcheck)``:
Go's ``%q`` applied field by field to a ``*HealthConfig`` — ``&{["CMD-SHELL" "true"] "30s" "0s"
"0s" '\\x03'}``: the test as a quoted list, the three durations through ``time.Duration.String``
and quoted, and the retry count quoted *as a rune* (``%q`` of an int). To make
``history --no-trunc`` the same text in both tools, these are reproduced here exactly.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Final

from strata.build.dockerfile.dump import go_quote

_RUNE_ESCAPES: Final = {
    0x07: "\\a",
    0x08: "\\b",
    0x0C: "\\f",
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x0B: "\\v",
    0x5C: "\\\\",
    0x27: "\\'",
}
_MAX_RUNE: Final = 0x10FFFF
_RUNE_ERROR: Final = 0xFFFD


def _fraction(value: int, digits: int) -> str:
    """``value / 10**digits`` with Go's formatting: trailing zeros (and a bare dot) dropped."""
    whole, rest = divmod(value, 10**digits)
    if not rest:
        return str(whole)
    return f"{whole}." + f"{rest:0{digits}d}".rstrip("0")


def go_duration(nanoseconds: int) -> str:
    """Go's ``time.Duration.String``: ``0s``, ``1.5s``, ``1m30s``, ``1h0m0s``, ``500ms``."""
    sign = "-" if nanoseconds < 0 else ""
    u = abs(nanoseconds)
    if u == 0:
        return "0s"
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_fraction(u, 3)}µs"
    if u < 1_000_000_000:
        return f"{sign}{_fraction(u, 6)}ms"
    seconds, nanos = divmod(u, 1_000_000_000)
    text = _fraction(seconds % 60 * 1_000_000_000 + nanos, 9) + "s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        if hours:
            text = f"{hours}h{text}"
    return sign + text


def _go_printable(code: int) -> bool:
    """Go's ``strconv.IsPrint``: letters, marks, numbers, punctuation, symbols and U+0020."""
    if code == 0x20:
        return True
    category = unicodedata.category(chr(code))
    return category[0] in "LMNPS"


def go_quote_rune(value: int) -> str:
    """Go's ``%q`` of an integer: ``strconv.QuoteRune`` (invalid code points print as U+FFFD)."""
    code = value if 0 <= value <= _MAX_RUNE and not 0xD800 <= value <= 0xDFFF else _RUNE_ERROR
    if code in _RUNE_ESCAPES:
        return f"'{_RUNE_ESCAPES[code]}'"
    if _go_printable(code):
        return f"'{chr(code)}'"
    if code < 0x20 or code == 0x7F:
        return f"'\\x{code:02x}'"
    if code < 0x10000:
        return f"'\\u{code:04x}'"
    return f"'\\U{code:08x}'"


def healthcheck_text(check: Mapping[str, Any]) -> str:
    """``HEALTHCHECK &{...}``: Docker 20.10's history text of the config ``check``.

    Docker 20.10's HealthConfig has Test, Interval, Timeout, StartPeriod, Retries; a
    StartInterval (a later Docker's flag, which strata accepts) is not part of its text.
    """
    test: Sequence[str] = check.get("Test") or ()
    fields = [
        "[" + " ".join(go_quote(part) for part in test) + "]",
        *(
            go_quote(go_duration(int(check.get(name, 0))))
            for name in ("Interval", "Timeout", "StartPeriod")
        ),
        go_quote_rune(int(check.get("Retries", 0))),
    ]
    return "HEALTHCHECK &{" + " ".join(fields) + "}"

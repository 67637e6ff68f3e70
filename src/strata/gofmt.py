"""Go's ``fmt`` and ``strconv`` text for strings, runes and durations, exactly.

Docker and BuildKit print through Go: parser dumps and history texts use ``%q``
(``strconv.Quote``), HEALTHCHECK texts quote durations (``time.Duration.String``) and a retry
count as a rune, and ``--format`` templates print through ``fmt``. Matching them byte for byte
needs Go's rules, which differ from Python's ``repr``; they live here, once, for every layer.
Pure functions, no imports from the rest of strata.
"""

from __future__ import annotations

from typing import Final

_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
_RUNE_ESCAPES: Final = {
    **{ord(k): v for k, v in _ESCAPES.items()},
    0x5C: "\\\\",
    0x27: "\\'",
}
_MAX_RUNE: Final = 0x10FFFF
_RUNE_ERROR: Final = 0xFFFD


def go_quote(text: str, *, ascii_only: bool = False) -> str:
    """``strconv.Quote`` (``strconv.QuoteToASCII`` with ``ascii_only``): Go's escapes, printable
    runes kept as they are (Python's ``isprintable`` is Go's ``IsPrint``: letters, marks,
    numbers, punctuation, symbols and the ASCII space).

    Lone surrogates from ``surrogateescape`` decoding stand for undecodable bytes and are written
    as ``\\xNN``, as Go writes invalid UTF-8.
    """
    if text.isascii() and text.isprintable():
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif 0xD800 <= code <= 0xDFFF:
            if 0xDC80 <= code <= 0xDCFF:
                out.append(f"\\x{code - 0xDC00:02x}")
            else:
                # Go sees the three bytes of an encoded surrogate as invalid UTF-8.
                out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
        elif ch.isprintable() and not (ascii_only and code >= 0x80):
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_quote_rune(value: int) -> str:
    """Go's ``%q`` of an integer: ``strconv.QuoteRune`` (invalid code points print as U+FFFD)."""
    code = value if 0 <= value <= _MAX_RUNE and not 0xD800 <= value <= 0xDFFF else _RUNE_ERROR
    if code in _RUNE_ESCAPES:
        return f"'{_RUNE_ESCAPES[code]}'"
    if chr(code).isprintable():
        return f"'{chr(code)}'"
    if code < 0x80:
        return f"'\\x{code:02x}'"
    if code < 0x10000:
        return f"'\\u{code:04x}'"
    return f"'\\U{code:08x}'"


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

"""Instruction flags (``--from=build``, ``--link``, ``--mount=...``) and Go-style values.

Each instruction declares which flags it takes and their kind; `parse_flags` checks the raw
words against that, with BuildKit's rules and messages: an unknown flag (with a "did you mean"
suggestion), a repeated one, a string flag without ``=value``, a boolean that is not
true/false. ``--`` ends the flags. Durations are Go's (``30s``, ``1m30s``, ``1.5h``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["FlagError", "FlagKind", "Flags", "parse_duration", "parse_flags", "suggest"]

FlagKind = Literal["bool", "string", "strings"]


class FlagError(Exception):
    """A flag or flag value is refused; the caller adds the file and line."""


@dataclass(frozen=True, slots=True)
class Flags:
    """The flags an instruction was given: each used flag's value, by name."""

    values: Mapping[str, bool | str | tuple[str, ...]]

    def used(self, name: str) -> bool:
        return name in self.values

    def string(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) else None

    def boolean(self, name: str) -> bool:
        return self.values.get(name) is True

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.values.get(name)
        return value if isinstance(value, tuple) else ()


def parse_flags(raw: Iterable[str], kinds: Mapping[str, FlagKind]) -> Flags:
    """Check raw ``--name[=value]`` words against the flags an instruction accepts."""
    values: dict[str, bool | str | tuple[str, ...]] = {}
    for word in raw:
        if word == "--":
            break
        if not word.startswith("--"):
            raise FlagError(f"arg should start with -- : {word}")
        flag_name, has_value, value = word.partition("=")
        name = flag_name[2:]
        kind = kinds.get(name)
        if kind is None:
            message = f"unknown flag: {flag_name}"
            match = suggest(name, kinds, case_sensitive=True)
            raise FlagError(f"{message} (did you mean {match}?)" if match else message)
        if name in values and kind != "strings":
            raise FlagError(f"duplicate flag specified: {flag_name}")
        if kind == "bool":
            if has_value and not value:
                raise FlagError(f"missing a value on flag: {flag_name}")
            lowered = value.lower()
            if lowered not in ("", "true", "false"):
                raise FlagError(f"expecting boolean value for flag {flag_name}, not: {value}")
            values[name] = lowered != "false"
        elif not has_value:
            raise FlagError(f"missing a value on flag: {flag_name}")
        elif kind == "string":
            values[name] = value
        else:
            previous = values.get(name, ())
            assert isinstance(previous, tuple)
            values[name] = (*previous, value)
    return Flags(values)


def suggest(value: str, options: Iterable[str], *, case_sensitive: bool) -> str | None:
    """The option within edit distance 2 of ``value`` (BuildKit's "did you mean"), if any."""
    original = value
    if not case_sensitive:
        value = value.lower()
    best: str | None = None
    best_distance = 3
    for option in sorted(options):
        candidate = option if case_sensitive else option.lower()
        if candidate == value:
            return None
        distance = _levenshtein(value, candidate)
        if distance < best_distance:
            best, best_distance = candidate, distance
    if best is None or case_sensitive:
        return best
    if original == original.lower():
        return best.lower()
    if original == original.upper():
        return best.upper()
    return best


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_COMPONENT = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_MAX_DURATION = (1 << 63) - 1


def parse_duration(text: str) -> int:
    """Nanoseconds in a Go duration (``time.ParseDuration``): ``300ms``, ``-1.5h``, ``2h45m``.

    Raises `FlagError` with Go's message (``time: invalid duration "x"``).
    """
    quoted = '"' + text + '"'
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise FlagError(f"time: invalid duration {quoted}")
    total = 0
    while rest:
        match = _COMPONENT.match(rest)
        assert match is not None
        whole, fraction, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not fraction:
            raise FlagError(f"time: invalid duration {quoted}")
        if not unit:
            raise FlagError(f"time: missing unit in duration {quoted}")
        scale = _UNITS.get(unit)
        if scale is None:
            raise FlagError(f'time: unknown unit "{unit}" in duration {quoted}')
        total += int(whole or "0") * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
        if total > _MAX_DURATION + negative:
            raise FlagError(f"time: invalid duration {quoted}")
        rest = rest[match.end() :]
    return -total if negative else total

"""Docker's ``--filter`` for containers (``ps``, ``container prune``): parsing and matching.

``KEY=VALUE`` pairs; the same key given twice matches either value (OR), different keys must
all match (AND), as Docker's ``filters.Args``. Which keys a command takes is its own: an
unknown one is ``Invalid filter 'KEY'``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from strata.errors import InvalidArgument

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_filters(given: Iterable[str], allowed: Iterable[str]) -> dict[str, list[str]]:
    """``--filter`` values as key -> values; an unknown key or a value without ``=`` fails
    as Docker's do."""
    keys = set(allowed)
    found: dict[str, list[str]] = {}
    for text in given:
        key, eq, value = text.partition("=")
        if not eq:
            raise InvalidArgument(f"Bad format of filter (expected name=value): {text}")
        key = key.strip().lower()
        if key not in keys:
            raise InvalidArgument(f"Invalid filter '{key}'")
        found.setdefault(key, []).append(value)
    return found


def parse_until(value: str, now: float | None = None) -> float:
    """A Docker ``until``/``since`` time: a Go duration before now (``10m``, ``1h30m``), a
    Unix timestamp, or an RFC 3339 date or time; as seconds since the epoch."""
    now = time.time() if now is None else now
    text = value.strip()
    if text and re.fullmatch(f"(?:{_DURATION.pattern})+", text):
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))
        return now - seconds
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    for form in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S",
                 "%Y-%m-%dT%H:%M", "%Y-%m-%d"):  # fmt: skip
        try:
            moment = datetime.strptime(text.replace("Z", "+00:00"), form)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise InvalidArgument(f"failed to parse value as time or duration: {value!r}")


def match_labels(labels: Mapping[str, str], wanted: Iterable[str]) -> bool:
    """Docker's ``label=KEY`` / ``label=KEY=VALUE``: every one given must match."""
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def match_not_labels(labels: Mapping[str, str], unwanted: Iterable[str]) -> bool:
    """Docker's ``label!=...`` (prune): none of the given may match."""
    return not any(match_labels(labels, [item]) for item in unwanted)


def created_seconds(created: str) -> float:
    """A record's ``created`` time (``...Z``) as seconds since the epoch."""
    return datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()

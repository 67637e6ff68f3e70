"""HEALTHCHECK: the check a container's image or ``--health-*`` options give, and its state.

The check is kept in Docker's form (``Config.Healthcheck``: ``Test``, durations in
nanoseconds, ``Retries``), merged field by field over the image's as Docker's daemon does. Its
state is Docker's ``State.Health``: ``Status`` (starting, healthy, unhealthy), ``FailingStreak``
and the last five probes. `HealthState.after` is the rule that moves it; the monitor runs the
probes (:mod:`strata.runtime.prober`) and records each result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from strata.errors import InvalidArgument

DEFAULT_INTERVAL = 30.0  # seconds, Docker's defaults
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
LOG_ENTRIES = 5
MAX_OUTPUT = 4096  # bytes of a probe's output kept, as Docker
NS = 1_000_000_000
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3600 * NS}


def parse_duration(text: str, flag: str) -> int:
    """A Go duration (``1s``, ``500ms``, ``1m30s``) in nanoseconds."""
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    body = body.lstrip("+-")
    if body == "0":
        return 0
    pos, total = 0, 0.0
    while pos < len(body):
        match = _DURATION.match(body, pos)
        if match is None:
            raise InvalidArgument(
                f'invalid argument "{text}" for "{flag}" flag: time: invalid duration "{text}"'
            )
        total += float(match.group(1)) * _UNIT[match.group(2)]
        pos = match.end()
    if not body:
        raise InvalidArgument(
            f'invalid argument "{text}" for "{flag}" flag: time: invalid duration "{text}"'
        )
    return sign * int(total)


def given_healthcheck(
    *,
    cmd: str | None = None,
    interval: int = 0,
    timeout: int = 0,
    start_period: int = 0,
    retries: int = 0,
    disable: bool = False,
) -> dict[str, Any] | None:
    """The ``--health-*`` options as Docker's client makes them (None: none given)."""
    any_given = cmd is not None or interval or timeout or start_period or retries
    if disable:
        if any_given:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not any_given:
        return None
    for value, flag in (
        (interval, "--health-interval"),
        (timeout, "--health-timeout"),
        (start_period, "--health-start-period"),
    ):
        if value < 0:
            raise InvalidArgument(f"{flag} cannot be negative")
    if retries < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    out: dict[str, Any] = {}
    if cmd is not None:
        out["Test"] = ["CMD-SHELL", cmd]
    for key, value in (
        ("Interval", interval),
        ("Timeout", timeout),
        ("StartPeriod", start_period),
        ("Retries", retries),
    ):
        if value:
            out[key] = value
    return out


def merge_healthcheck(
    image: Mapping[str, Any] | None, given: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The container's check: the given fields over the image's (Docker's daemon's merge)."""
    if given is None:
        return dict(image) if image is not None else None
    merged = dict(given)
    if image is not None:
        for key in ("Test", "Interval", "Timeout", "StartPeriod", "Retries"):
            if not merged.get(key) and image.get(key):
                merged[key] = image[key]
    return merged


@dataclass(frozen=True, slots=True)
class Probe:
    """How to run the check, from a Healthcheck (None from `probe_of`: no check to run)."""

    command: tuple[str, ...]
    interval: float
    timeout: float
    start_period: float
    retries: int


def probe_of(healthcheck: Mapping[str, Any] | None) -> Probe | None:
    """The probe a container's Healthcheck asks for; None for none or ``NONE``."""
    if not healthcheck:
        return None
    test = list(healthcheck.get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        command: tuple[str, ...] = ("/bin/sh", "-c", " ".join(test[1:]))
    elif test[0] == "CMD":
        command = tuple(test[1:])
    else:
        return None
    if not command:
        return None

    def seconds(key: str, default: float) -> float:
        value = healthcheck.get(key) or 0
        return value / NS if value else default

    return Probe(
        command=command,
        interval=seconds("Interval", DEFAULT_INTERVAL),
        timeout=seconds("Timeout", DEFAULT_TIMEOUT),
        start_period=seconds("StartPeriod", 0.0),
        retries=int(healthcheck.get("Retries") or DEFAULT_RETRIES),
    )


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One run of the check, as Docker logs it."""

    start: str
    end: str
    exit_code: int
    output: str

    def to_json(self) -> dict[str, Any]:
        return {
            "Start": self.start,
            "End": self.end,
            "ExitCode": self.exit_code,
            "Output": self.output,
        }


@dataclass(frozen=True, slots=True)
class HealthState:
    """Docker's ``State.Health``."""

    status: str = "starting"
    failing_streak: int = 0
    log: tuple[ProbeResult, ...] = field(default_factory=tuple)

    def after(self, result: ProbeResult, probe: Probe, *, in_start_period: bool) -> HealthState:
        """The state once ``result`` is in (Docker's rules: a failure within the start period
        is logged but not counted, unless the container was already healthy)."""
        log = (*self.log, result)[-LOG_ENTRIES:]
        if result.exit_code == 0:
            return HealthState("healthy", 0, log)
        if in_start_period and self.status != "healthy":
            return replace(self, log=log)
        streak = self.failing_streak + 1
        status = "unhealthy" if streak >= probe.retries else self.status
        return HealthState(status, streak, log)

    def to_json(self) -> dict[str, Any]:
        return {
            "Status": self.status,
            "FailingStreak": self.failing_streak,
            "Log": [entry.to_json() for entry in self.log],
        }

    @classmethod
    def from_json(cls, raw: Any) -> HealthState | None:
        if not isinstance(raw, dict):
            return None
        log = tuple(
            ProbeResult(str(e["Start"]), str(e["End"]), int(e["ExitCode"]), str(e["Output"]))
            for e in raw.get("Log") or []
            if isinstance(e, dict)
        )
        return cls(str(raw.get("Status", "starting")), int(raw.get("FailingStreak", 0)), log)

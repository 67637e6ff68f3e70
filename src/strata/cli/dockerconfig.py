"""Image configs as Docker's API prints them: every field of its ``container.Config`` struct.

Docker 20.10 decodes an image's ``config`` and ``container_config`` into a Go struct and encodes
that again, so ``image inspect`` shows every field in the struct's order, zero values included,
except the few marked ``omitempty``; JSON keys match case-insensitively on the way in. An image
strata built stores only what is set (as the OCI image-spec has it), so this is done on output.
"""

from __future__ import annotations

from typing import Any, Final

# (field, zero value, omitempty), in moby's api/types/container.Config order.
_FIELDS: Final[tuple[tuple[str, Any, bool], ...]] = (
    ("Hostname", "", False),
    ("Domainname", "", False),
    ("User", "", False),
    ("AttachStdin", False, False),
    ("AttachStdout", False, False),
    ("AttachStderr", False, False),
    ("ExposedPorts", None, True),
    ("Tty", False, False),
    ("OpenStdin", False, False),
    ("StdinOnce", False, False),
    ("Env", None, False),
    ("Cmd", None, False),
    ("Healthcheck", None, True),
    ("ArgsEscaped", False, True),
    ("Image", "", False),
    ("Volumes", None, False),
    ("WorkingDir", "", False),
    ("Entrypoint", None, False),
    ("NetworkDisabled", False, True),
    ("MacAddress", "", True),
    ("OnBuild", None, False),
    ("Labels", None, False),
    ("StopSignal", "", True),
    ("StopTimeout", None, True),
    ("Shell", None, True),
)

# HealthConfig: every field omitempty.
_HEALTH: Final = ("Test", "Interval", "Timeout", "StartPeriod", "Retries")


def docker_config(raw: object) -> dict[str, Any]:
    """``raw`` (a stored config's ``config`` object, or None) as Docker's inspect prints it."""
    given = {str(k).lower(): v for k, v in raw.items()} if isinstance(raw, dict) else {}
    out: dict[str, Any] = {}
    for name, zero, omitempty in _FIELDS:
        value = given.get(name.lower(), zero)
        if value is None:
            value = zero
        if name == "Healthcheck" and isinstance(value, dict):
            value = _health(value)
        if omitempty and _empty(value):
            continue
        out[name] = value
    return out


def _health(raw: dict[str, Any]) -> dict[str, Any] | None:
    given = {str(k).lower(): v for k, v in raw.items()}
    out = {name: given[name.lower()] for name in _HEALTH if not _empty(given.get(name.lower()))}
    return out  # Go encodes a non-nil pointer to an all-zero struct as {}


def _empty(value: object) -> bool:
    """Go's omitempty: false, 0, "", nil, and empty slices and maps."""
    return value is None or value is False or value in (0, "", [], {})

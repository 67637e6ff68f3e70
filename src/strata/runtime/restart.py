"""``--restart``: Docker's restart policies and its back-off, kept by the container's monitor.

There is no daemon: the monitor that watched the container exit decides, by `should_restart`,
whether to start it again, and waits `backoff` first (Docker's restart manager: 100 ms,
doubling after each restart, at most a minute, back to 100 ms once a run lasted 10 seconds).
A container stopped or killed by the user is not restarted (`strata stop`/`kill` record it).
"""

from __future__ import annotations

from strata.errors import InvalidArgument

POLICIES = ("no", "always", "unless-stopped", "on-failure")
BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
RESET_AFTER = 10.0  # seconds a run must last for the back-off to start over


def parse_restart(text: str) -> tuple[str, int]:
    """``no``, ``always``, ``unless-stopped``, ``on-failure[:N]`` as (name, maximum retries)."""
    name, colon, count = text.partition(":")
    if name == "":
        return "no", 0
    if name not in POLICIES:
        raise InvalidArgument(f"invalid restart policy '{name}'")
    if not colon:
        return name, 0
    try:
        maximum = int(count)
    except ValueError:
        raise InvalidArgument(
            "invalid restart policy format: maximum retry count must be an integer"
        ) from None
    if name != "on-failure":
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    if maximum < 0:
        raise InvalidArgument("maximum retry count cannot be negative")
    return name, maximum


def should_restart(policy: str, maximum: int, code: int, restarts: int, stopped: bool) -> bool:
    """Whether a container that exited with ``code`` starts again (Docker's rules);
    ``restarts`` it has had, ``stopped``: by the user (stop, kill)."""
    if stopped or policy == "no":
        return False
    if policy in ("always", "unless-stopped"):
        return True
    return code != 0 and (maximum == 0 or restarts < maximum)


def backoff(previous: float, ran_for: float) -> float:
    """The wait before the next restart, after waiting ``previous`` before the last one."""
    if ran_for >= RESET_AFTER or previous <= 0:
        return BACKOFF_START
    return min(previous * 2, BACKOFF_MAX)

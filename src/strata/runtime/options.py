"""What a container is made to run, from its image's config and ``run``/``create``'s options.

Docker's rules: ENTRYPOINT + CMD with the command line's replacements, the image's environment
with ``-e`` on top, signals by name or number.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass, field

from strata.errors import InvalidArgument
from strata.oci.config import ContainerConfig

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What ``strata run`` / ``create`` take besides the image."""

    name: str | None = None
    command: tuple[str, ...] = ()
    entrypoint: str | None = None  # None: the image's; "": none
    env: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    network: str = "host"
    volumes: tuple[str, ...] = ()
    tty: bool = False
    interactive: bool = False
    runtime: str | None = None
    autoremove: bool = False
    labels: dict[str, str] = field(default_factory=dict)


def process_args(config: ContainerConfig, options: RunOptions) -> tuple[str, ...]:
    """Docker's rule: ENTRYPOINT + CMD, where a given command replaces CMD and a given
    ``--entrypoint`` replaces ENTRYPOINT (and drops the image's CMD)."""
    entrypoint, cmd = entrypoint_cmd(config, options)
    args = (*(entrypoint or ()), *(cmd or ()))
    if not args:
        raise InvalidArgument("no command specified")
    return args


def entrypoint_cmd(
    config: ContainerConfig, options: RunOptions
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """The container's Entrypoint and Cmd, as Docker records them (what ``commit`` keeps)."""
    if options.entrypoint is not None:
        entrypoint = (options.entrypoint,) if options.entrypoint else None
        return entrypoint, options.command or None
    return config.entrypoint, options.command or config.cmd


def process_env(config: ContainerConfig, extra: Sequence[str]) -> tuple[str, ...]:
    """The image's env, then ``-e`` values; PATH defaults as Docker's."""
    merged: dict[str, str] = {}
    for entry in (*config.env, *extra):
        key, sep, value = entry.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {entry!r}")
        merged[key] = value if sep else ""
    merged.setdefault("PATH", DEFAULT_PATH)
    return tuple(f"{k}={v}" for k, v in merged.items())


def parse_signal(text: str) -> int:
    """``KILL``, ``SIGKILL``, ``kill`` or ``9`` as a signal number (Docker's rules)."""
    name = text.strip().upper().removeprefix("SIG")
    if name.isdigit():
        number = int(name)
        if 0 < number < signal.NSIG:
            return number
    elif name and (found := getattr(signal.Signals, f"SIG{name}", None)) is not None:
        return int(found)
    raise InvalidArgument(f"Invalid signal: {text}")


@dataclass(frozen=True, slots=True)
class Attach:
    """An attached start: ``stdin`` sends ours (``-i``); the terminal's size for ``-t``."""

    stdin: bool = False
    console_size: tuple[int, int] | None = None

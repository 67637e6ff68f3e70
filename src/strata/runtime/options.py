"""What a container is made to run, from its image's config and ``run``/``create``'s options.

Docker's rules: ENTRYPOINT + CMD with the command line's replacements, the image's environment
with ``-e`` on top, signals by name or number.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from strata.errors import InvalidArgument
from strata.runtime.resources import Resources

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ProcessDefaults(Protocol):
    """What a container takes from its image's config (an OCI ``ContainerConfig`` has it)."""

    @property
    def entrypoint(self) -> tuple[str, ...] | None: ...
    @property
    def cmd(self) -> tuple[str, ...] | None: ...
    @property
    def env(self) -> tuple[str, ...]: ...
    @property
    def working_dir(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def stop_signal(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ConfigDefaults:
    """`ProcessDefaults` read straight from a config's JSON ``config`` object.

    ``run``'s quick path uses it so it need not load the OCI model (see strata.runtime.quick).
    """

    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    env: tuple[str, ...]
    working_dir: str
    user: str
    stop_signal: str
    volumes: tuple[str, ...] = ()  # vol: the image's VOLUMEs (anonymous volumes of a run)
    exposed_ports: tuple[str, ...] = ()  # net (issue 12): for -P and ps's PORTS
    healthcheck: Mapping[str, Any] | None = None  # res: the image's HEALTHCHECK

    @classmethod
    def from_json(cls, config: Any) -> ConfigDefaults | None:
        """None unless every field has the plain type the OCI spec gives it."""
        if config is None:
            config = {}
        if not isinstance(config, dict):
            return None
        entrypoint, cmd, env = (config.get(k) for k in ("Entrypoint", "Cmd", "Env"))
        strings = (config.get(k) or "" for k in ("WorkingDir", "User", "StopSignal"))
        working_dir, user, stop_signal = strings
        lists = (entrypoint, cmd, env)
        if not all(v is None or (isinstance(v, list) and _all_str(v)) for v in lists):
            return None
        if not all(isinstance(v, str) for v in (working_dir, user, stop_signal)):
            return None
        volumes = config.get("Volumes") or {}
        exposed = config.get("ExposedPorts") or {}
        healthcheck = config.get("Healthcheck")
        if not isinstance(volumes, dict) or not isinstance(exposed, dict):
            return None
        if healthcheck is not None and not isinstance(healthcheck, dict):
            return None
        return cls(
            tuple(entrypoint) if entrypoint is not None else None,
            tuple(cmd) if cmd is not None else None,
            tuple(env or ()),
            working_dir,
            user,
            stop_signal,
            tuple(sorted(str(v) for v in volumes)),
            tuple(sorted(str(k) for k in exposed)),
            healthcheck,
        )


def _all_str(values: list[Any]) -> bool:
    return all(isinstance(v, str) for v in values)


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
    # vol: --mount, --tmpfs and --volumes-from as typed (strata.runtime.mounts parses them).
    mounts: tuple[str, ...] = ()
    tmpfs: tuple[str, ...] = ()
    volumes_from: tuple[str, ...] = ()
    # net (issue 12)
    publish: tuple[str, ...] = ()  # -p
    publish_all: bool = False  # -P
    aliases: tuple[str, ...] = ()  # --network-alias
    default_network: str = "bridge"  # what --network default means (a build's RUN: host)
    # res (resources and life): limits, ``--restart``, the ``--health-*`` options given
    # (Docker's Healthcheck form, merged over the image's at create; Test ["NONE"] disables).
    resources: Resources = field(default_factory=Resources)
    restart: str = "no"
    restart_max: int = 0
    healthcheck: Mapping[str, Any] | None = None


def process_args(config: ProcessDefaults, options: RunOptions) -> tuple[str, ...]:
    """Docker's rule: ENTRYPOINT + CMD, where a given command replaces CMD and a given
    ``--entrypoint`` replaces ENTRYPOINT (and drops the image's CMD)."""
    entrypoint, cmd = entrypoint_cmd(config, options)
    args = (*(entrypoint or ()), *(cmd or ()))
    if not args:
        raise InvalidArgument("No command specified")  # Docker's words
    return args


def entrypoint_cmd(
    config: ProcessDefaults, options: RunOptions
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """The container's Entrypoint and Cmd, as Docker records them (what ``commit`` keeps)."""
    if options.entrypoint is not None:
        entrypoint = (options.entrypoint,) if options.entrypoint else None
        return entrypoint, options.command or None
    return config.entrypoint, options.command or config.cmd


def pass_host_env(entries: Sequence[str], host: Mapping[str, str]) -> tuple[str, ...]:
    """Docker's client on ``-e NAME`` (no ``=``): ``NAME=<the host's value>``, or the bare
    ``NAME`` when the host has none, which then unsets NAME in the container (`process_env`)."""
    return tuple(
        f"{entry}={host[entry]}" if "=" not in entry and entry in host else entry
        for entry in entries
    )


def process_env(config: ProcessDefaults, extra: Sequence[str]) -> tuple[str, ...]:
    """The image's env, then ``-e`` values, as Docker records them (``inspect``'s ``Config.Env``).

    No default PATH is added here: Docker gives the process one (`strata.runtime.spec`) but
    records none, so neither the container nor an image committed from it gains a PATH.

    A bare ``NAME`` (no ``=``) unsets NAME, the image's value too, as Docker's daemon does; it
    stays in the list as Docker lists it (``inspect``'s ``Config.Env``), and `process_vars`
    leaves it out of what the process gets.
    """
    merged: dict[str, str | None] = {}
    for entry in (*config.env, *extra):
        key, sep, value = entry.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {entry!r}")
        if not sep:
            merged.pop(key, None)  # listed last, as Docker appends what it cannot merge
        merged[key] = value if sep else None
    return tuple(k if v is None else f"{k}={v}" for k, v in merged.items())


def process_vars(env: Sequence[str]) -> tuple[str, ...]:
    """What the process gets of a container's env: the ``NAME=VALUE`` entries only."""
    return tuple(entry for entry in env if "=" in entry)


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
    """An attached start: ``stdin`` sends ours (``-i``); the terminal's size for ``-t``.

    ``stdio``: our descriptors (stdin, stdout, stderr) the monitor copies to and reads from.
    """

    stdin: bool = False
    console_size: tuple[int, int] | None = None
    stdio: tuple[int, int, int] = (0, 1, 2)

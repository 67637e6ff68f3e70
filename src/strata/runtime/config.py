"""What a container was created to be: its process, its network, its mounts, its flags.

`ContainerConfig` is fixed at ``create`` (by `strata.runtime.records`) and read by every later
command: a start builds the runtime bundle from it, ``inspect`` and ``ps`` show it, ``commit``
keeps its environment, entrypoint and command. It is stored as the ``config`` column of the
``containers`` table, as JSON whose keys are those of the records written before it was typed,
so a store made by an older strata reads the same (`from_json` fills what such a record lacks
with what the readers of its dict assumed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from strata.errors import InvalidArgument
from strata.runtime.guard import TIED_LABEL
from strata.runtime.resources import Resources


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """A container's configuration, as recorded at ``create``."""

    args: tuple[str, ...] = ()  # the process: ENTRYPOINT + CMD, as run
    entrypoint: tuple[str, ...] | None = None  # as Docker records them (what commit keeps)
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()  # a bare NAME unsets NAME (`strata.runtime.options.process_env`)
    cwd: str = ""
    user: str = ""
    hostname: str = ""  # empty: the short ID (see `strata.runtime.tasks`)
    network: str = "host"  # what the runtime gets: host or none
    network_mode: str = ""  # as typed (inspect's HostConfig); empty in the oldest records
    volumes: tuple[str, ...] = ()  # the -v arguments, as typed
    tty: bool = False
    interactive: bool = False
    autoremove: bool = False
    stop_signal: str = ""  # empty: SIGTERM
    labels: Mapping[str, str] = field(default_factory=dict)
    # res (resources and life): limits, restart policy, healthcheck. Stored only when set, so
    # a container without them keeps the record it always had.
    resources: Resources = field(default_factory=Resources)
    restart: str = "no"  # no, on-failure, always, unless-stopped
    restart_max: int = 0  # on-failure's N (0: no maximum)
    healthcheck: Mapping[str, Any] | None = None  # Docker's Config.Healthcheck (durations in ns)

    @property
    def tied(self) -> bool:
        """Whether the container is removed once its owner is gone (a build's RUN step)."""
        return self.labels.get(TIED_LABEL) == "true"

    def to_json(self) -> dict[str, Any]:
        """The stored form: the keys and their order as records have always had them."""
        return {
            "args": list(self.args),
            "entrypoint": list(self.entrypoint) if self.entrypoint is not None else None,
            "cmd": list(self.cmd) if self.cmd is not None else None,
            "env": list(self.env),
            "cwd": self.cwd,
            "user": self.user,
            "hostname": self.hostname,
            "network": self.network,
            "network_mode": self.network_mode,
            "volumes": list(self.volumes),
            "tty": self.tty,
            "interactive": self.interactive,
            "autoremove": self.autoremove,
            "stop_signal": self.stop_signal,
            "labels": dict(self.labels),
            **self._life_json(),
        }

    def _life_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if limits := self.resources.to_json():
            out["resources"] = limits
        if self.restart != "no":
            out["restart"] = {"name": self.restart, "max": self.restart_max}
        if self.healthcheck is not None:
            out["healthcheck"] = dict(self.healthcheck)
        return out

    @classmethod
    def from_json(cls, raw: Any) -> ContainerConfig:
        """A stored record's config; a missing key takes its default (older records lack
        some); a value of the wrong type is refused as a damaged record."""
        if not isinstance(raw, dict):
            raise InvalidArgument(f"container config: expected an object, got {_kind(raw)}")
        labels = raw.get("labels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise InvalidArgument("container config: labels: expected an object of strings")
        return cls(
            args=_strings(raw, "args") or (),
            entrypoint=_strings(raw, "entrypoint"),
            cmd=_strings(raw, "cmd"),
            env=_strings(raw, "env") or (),
            cwd=_string(raw, "cwd"),
            user=_string(raw, "user"),
            hostname=_string(raw, "hostname"),
            network=_string(raw, "network") or "host",
            network_mode=_string(raw, "network_mode"),
            volumes=_strings(raw, "volumes") or (),
            tty=bool(raw.get("tty")),
            interactive=bool(raw.get("interactive")),
            autoremove=bool(raw.get("autoremove")),
            stop_signal=_string(raw, "stop_signal"),
            labels=dict(labels),
            **_life(raw),
        )


def _life(raw: dict[str, Any]) -> dict[str, Any]:
    """The res fields of a stored config (absent in most records: the defaults)."""
    out: dict[str, Any] = {}
    if "resources" in raw:
        out["resources"] = Resources.from_json(raw["resources"])
    restart = raw.get("restart")
    if restart is not None:
        name, maximum = (
            (restart.get("name"), restart.get("max", 0))
            if isinstance(restart, dict)
            else (None, None)
        )
        if not isinstance(name, str) or not isinstance(maximum, int):
            raise InvalidArgument("container config: restart: expected a name and a maximum")
        out["restart"], out["restart_max"] = name, maximum
    health = raw.get("healthcheck")
    if health is not None:
        if not isinstance(health, dict):
            raise InvalidArgument("container config: healthcheck: expected an object")
        out["healthcheck"] = health
    return out


def _strings(raw: dict[str, Any], key: str) -> tuple[str, ...] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"container config: {key}: expected a list of strings")
    return tuple(value)


def _string(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"container config: {key}: expected a string, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    return type(value).__name__

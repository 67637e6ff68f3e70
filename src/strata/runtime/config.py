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
from strata.runtime.mounts import MountPoint
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
    # vol: the mounts resolved at create (binds, volumes, --mount tmpfs; strata.runtime.mounts),
    # ``--tmpfs`` as typed (HostConfig.Tmpfs), ``--volumes-from`` as typed, Config.Volumes.
    # Written only when not empty, so a record without them reads and writes as before.
    mounts: tuple[MountPoint, ...] = ()
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    volumes_from: tuple[str, ...] = ()
    config_volumes: tuple[str, ...] = ()
    # net (issue 12): published ports and network membership; written only when set, so a
    # record without them reads and writes back as before.
    publish: tuple[str, ...] = ()  # the -p arguments, as typed
    publish_all: bool = False  # -P: every exposed port to an ephemeral host port
    exposed: tuple[str, ...] = ()  # the image's ExposedPorts ("80/tcp"), for -P and ps
    aliases: tuple[str, ...] = ()  # --network-alias on the first network
    networks: tuple[str, ...] = ()  # networks joined by `network connect` (IDs), after `network`
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
            **self._volume_json(),
            **self._net_json(),
            **self._life_json(),
        }

    def _volume_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.mounts:
            out["mounts"] = [m.to_json() for m in self.mounts]
        if self.tmpfs:
            out["tmpfs"] = dict(self.tmpfs)
        if self.volumes_from:
            out["volumes_from"] = list(self.volumes_from)
        if self.config_volumes:
            out["config_volumes"] = list(self.config_volumes)
        return out

    def _net_json(self) -> dict[str, Any]:
        """The net part's keys, those that differ from their defaults only."""
        out: dict[str, Any] = {}
        if self.publish:
            out["publish"] = list(self.publish)
        if self.publish_all:
            out["publish_all"] = True
        if self.exposed:
            out["exposed"] = list(self.exposed)
        if self.aliases:
            out["aliases"] = list(self.aliases)
        if self.networks:
            out["networks"] = list(self.networks)
        return out

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
            mounts=tuple(MountPoint.from_json(m) for m in _list(raw, "mounts")),
            tmpfs=_string_map(raw, "tmpfs"),
            volumes_from=_strings(raw, "volumes_from") or (),
            config_volumes=_strings(raw, "config_volumes") or (),
            publish=_strings(raw, "publish") or (),
            publish_all=bool(raw.get("publish_all")),
            exposed=_strings(raw, "exposed") or (),
            aliases=_strings(raw, "aliases") or (),
            networks=_strings(raw, "networks") or (),
            **_life(raw),
        )


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise InvalidArgument(f"container config: {key}: expected a list")
    return value


def _string_map(raw: dict[str, Any], key: str) -> dict[str, str]:
    value = raw.get(key) or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidArgument(f"container config: {key}: expected an object of strings")
    return dict(value)


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

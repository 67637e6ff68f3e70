"""Image configs (image-spec config.md, Docker's image JSON) and their RFC 3339 times.

Field names on the wire are Docker's (``Env``, ``Cmd``, ``ExposedPorts``...), which OCI adopted.
Keys strata does not model (``container_config``, ``docker_version``, ``Hostname``...) are kept in
``extra`` so a config read and written again loses nothing. Output omits empty fields as Go's
``omitempty`` does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from strata.digest import Digest
from strata.oci._fields import (
    as_object,
    dumps,
    fail,
    json_type,
    load_object,
    opt_bool,
    opt_key_set,
    opt_object,
    opt_str,
    opt_str_list,
    opt_str_map,
    req_str,
    show,
)
from strata.oci.descriptor import Platform, parse_digest
from strata.oci.mediatypes import MAX_CONFIG_SIZE

# image-spec's validator: every Env entry is NAME=VALUE (the value may hold newlines).
_ENV: Final = r"(?s)[^=]+=.*"
_TIME: Final = (
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:([Zz])|([+-])(\d\d):?(\d\d))"
)
_ZERO_TIME: Final = datetime(1, 1, 1, tzinfo=UTC)

# Docker's fields of one image that its children do not inherit (see `ImageConfig.child`).
_OWN_KEYS: Final = frozenset({"comment", "container", "container_config", "docker_version"})
_TOP_KEYS: Final = frozenset(
    {"architecture", "os", "variant", "os.version", "created", "author", "config", "rootfs"}
    | {"history"}
)
_CONTAINER_KEYS: Final = frozenset(
    {"User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels"}
    | {"OnBuild", "StopSignal", "Healthcheck", "Shell", "ArgsEscaped"}
)


def _none_if_empty(obj: object, *names: str) -> None:
    # "" and an absent field serialise the same way, so the value holds None for both.
    for name in names:
        if getattr(obj, name) == "":
            object.__setattr__(obj, name, None)


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """How to run the image (the ``config`` object). ``exposed_ports`` and ``volumes`` are sets,
    held sorted and unique as Go serialises its maps."""

    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    args_escaped: bool | None = None
    healthcheck: Mapping[str, Any] | None = None
    on_build: tuple[str, ...] = ()
    shell: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "exposed_ports", tuple(sorted(set(self.exposed_ports))))
        object.__setattr__(self, "volumes", tuple(sorted(set(self.volumes))))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object with Docker's names and order; empty fields omitted."""
        out: dict[str, Any] = {}
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.volumes:
            out["Volumes"] = {volume: {} for volume in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(sorted(self.labels.items()))
        if self.on_build:
            out["OnBuild"] = list(self.on_build)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.healthcheck is not None:
            out["Healthcheck"] = dict(self.healthcheck)
        if self.shell is not None:
            out["Shell"] = list(self.shell)
        if self.args_escaped is not None:
            out["ArgsEscaped"] = self.args_escaped
        for key in sorted(self.extra):
            if key not in _CONTAINER_KEYS:
                out[key] = self.extra[key]
        return out


@dataclass(frozen=True, slots=True)
class RootFS:
    """The layers' uncompressed digests (diff IDs), bottom first."""

    type: str = "layers"
    diff_ids: tuple[Digest, ...] = ()


@dataclass(frozen=True, slots=True)
class History:
    """One build step; ``empty_layer`` steps (ENV, CMD...) made no layer."""

    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False

    def __post_init__(self) -> None:
        _none_if_empty(self, "created", "created_by", "author", "comment")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object; None fields and a false ``empty_layer`` omitted."""
        out: dict[str, Any] = {}
        if self.created is not None:
            out["created"] = self.created
        if self.created_by is not None:
            out["created_by"] = self.created_by
        if self.author is not None:
            out["author"] = self.author
        if self.comment is not None:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """An image config: platform, run config, layer diff IDs and history.

    ``created`` is kept as the string it was (see `parse_time`); ``extra`` holds unknown
    top-level keys. Edit with ``dataclasses.replace``.
    """

    architecture: str
    os: str
    config: ContainerConfig = field(default_factory=ContainerConfig)
    rootfs: RootFS = field(default_factory=RootFS)
    history: tuple[History, ...] = ()
    created: str | None = None
    author: str | None = None
    variant: str | None = None
    os_version: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _none_if_empty(self, "created", "author")

    def child(self) -> ImageConfig:
        """The config an image made on top of this one starts from (a build stage, a commit).

        Docker's own top-level fields that describe this image alone — its ``comment``, the
        ``container`` it was committed from and that container's ``container_config``, the
        ``docker_version`` that wrote it — are not inherited, as Docker's ``NewChildImage``
        does not inherit them; everything else is.
        """
        extra = {k: v for k, v in self.extra.items() if k not in _OWN_KEYS}
        return replace(self, extra=extra)

    @property
    def platform(self) -> Platform:
        """The platform this image is for."""
        return Platform(self.architecture, self.os, self.variant, self.os_version)

    @property
    def created_time(self) -> datetime | None:
        """``created`` as an aware UTC datetime, or None if absent or unreadable."""
        return parse_time(self.created)

    def to_json(self) -> bytes:
        """Compact JSON: architecture, os, config, created, author, rootfs, history, then extras."""
        out: dict[str, Any] = {"architecture": self.architecture}
        if self.variant is not None:
            out["variant"] = self.variant
        out["os"] = self.os
        if self.os_version is not None:
            out["os.version"] = self.os_version
        out["config"] = self.config.to_dict()
        if self.created is not None:
            out["created"] = self.created
        if self.author is not None:
            out["author"] = self.author
        out["rootfs"] = {
            "type": self.rootfs.type,
            "diff_ids": [str(d) for d in self.rootfs.diff_ids],
        }
        if self.history:
            out["history"] = [h.to_dict() for h in self.history]
        for key in sorted(self.extra):
            if key not in _TOP_KEYS:
                out[key] = self.extra[key]
        return dumps(out)


def parse_config(data: bytes, *, source: str) -> ImageConfig:
    """Parse and validate an image config; errors start with ``source`` and name the field.

    Over `MAX_CONFIG_SIZE` raises `TooLarge`; wrong types, missing required fields (architecture,
    os, rootfs), bad diff IDs and Env entries without ``=`` raise `FormatError`. Times are not
    checked: configs in the wild carry odd ones.
    """
    doc = load_object(data, source=source, limit=MAX_CONFIG_SIZE, what="image configs")
    architecture = req_str(doc, "architecture", source, "")
    os_name = req_str(doc, "os", source, "")
    variant = opt_str(doc, "variant", source, "")
    os_version = opt_str(doc, "os.version", source, "")
    opt_str_list(doc, "os.features", source, "")
    created = opt_str(doc, "created", source, "")
    author = opt_str(doc, "author", source, "")
    raw_config = opt_object(doc, "config", source, "")
    container = ContainerConfig() if raw_config is None else _container(raw_config, source)
    raw_rootfs = doc.get("rootfs")
    if raw_rootfs is None:
        fail(source, "rootfs", "missing")
    rootfs = _rootfs(as_object(raw_rootfs, source, "rootfs"), source)
    history = _history(doc.get("history"), source)
    return ImageConfig(
        architecture=architecture,
        os=os_name,
        config=container,
        rootfs=rootfs,
        history=history,
        created=created,
        author=author,
        variant=variant,
        os_version=os_version,
        extra={k: v for k, v in doc.items() if k not in _TOP_KEYS},
    )


def _container(doc: dict[str, Any], source: str) -> ContainerConfig:
    path = "config"
    env = opt_str_list(doc, "Env", source, path) or ()
    for i, entry in enumerate(env):
        if not re.fullmatch(_ENV, entry):
            fail(source, f"config.Env[{i}]", f"{show(entry)} is not NAME=VALUE")
    healthcheck = opt_object(doc, "Healthcheck", source, path)
    return ContainerConfig(
        user=opt_str(doc, "User", source, path) or "",
        exposed_ports=opt_key_set(doc, "ExposedPorts", source, path) or (),
        env=env,
        entrypoint=opt_str_list(doc, "Entrypoint", source, path),
        cmd=opt_str_list(doc, "Cmd", source, path),
        volumes=opt_key_set(doc, "Volumes", source, path) or (),
        working_dir=opt_str(doc, "WorkingDir", source, path) or "",
        labels=opt_str_map(doc, "Labels", source, path) or {},
        stop_signal=opt_str(doc, "StopSignal", source, path) or "",
        args_escaped=opt_bool(doc, "ArgsEscaped", source, path),
        healthcheck=healthcheck,
        on_build=opt_str_list(doc, "OnBuild", source, path) or (),
        shell=opt_str_list(doc, "Shell", source, path),
        extra={k: v for k, v in doc.items() if k not in _CONTAINER_KEYS},
    )


def _rootfs(doc: dict[str, Any], source: str) -> RootFS:
    kind = req_str(doc, "type", source, "rootfs")
    if kind != "layers":
        fail(source, "rootfs.type", f"must be 'layers', not {show(kind)}")
    raw = doc.get("diff_ids")
    if raw is None:
        fail(source, "rootfs.diff_ids", "missing")
    if not isinstance(raw, list):
        fail(source, "rootfs.diff_ids", f"must be an array of digests, not {json_type(raw)}")
    diff_ids = []
    for i, item in enumerate(raw):
        where = f"rootfs.diff_ids[{i}]"
        if not isinstance(item, str):
            fail(source, where, f"must be a string, not {json_type(item)}")
        diff_ids.append(parse_digest(item, source, where))
    return RootFS(kind, tuple(diff_ids))


def _history(raw: object, source: str) -> tuple[History, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        fail(source, "history", f"must be an array, not {json_type(raw)}")
    entries = []
    for i, item in enumerate(raw):
        path = f"history[{i}]"
        doc = as_object(item, source, path)
        entries.append(
            History(
                created=opt_str(doc, "created", source, path),
                created_by=opt_str(doc, "created_by", source, path),
                author=opt_str(doc, "author", source, path),
                comment=opt_str(doc, "comment", source, path),
                empty_layer=bool(opt_bool(doc, "empty_layer", source, path)),
            )
        )
    return tuple(entries)


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time (nanoseconds, ``Z`` or an offset) as an aware UTC datetime.

    None for no time: empty, Go's zero time ``0001-01-01T00:00:00Z``, or anything unreadable
    (an odd time must never fail a whole image). Digits past microseconds are dropped.
    """
    if not text or not isinstance(text, str):
        return None
    m = re.fullmatch(_TIME, text.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    micro = int((m.group(7) or "").ljust(6, "0")[:6])
    if m.group(8):
        tz = UTC
    else:
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        if offset >= timedelta(hours=24):
            return None
        tz = timezone(-offset if m.group(9) == "-" else offset)
    try:
        when = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return None if when == _ZERO_TIME else when


def format_time(when: datetime) -> str:
    """``when`` in RFC 3339 with Go's RFC3339Nano trimming, in UTC with ``Z``.

    A naive datetime is taken to be UTC.
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    text = (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
        f"T{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    )
    if when.microsecond:
        text += "." + f"{when.microsecond:06d}".rstrip("0")
    return text + "Z"

"""Docker's typed view of an inspect document, for the first of its two template passes.

docker/cli runs an inspect template over the Go struct the API decoded into (a nil ``[]string``
prints ``[]``, a nil map ``map[]``, a nil pointer ``<nil>``, a label that is not set ``<no
value>``, ``json`` honours ``omitempty``); only if that fails does it run the template again over
the raw JSON, with ``missingkey=error``. The schemas below are those structs (docker 28's types),
written as data; parts left as ``ANY`` stay raw in both passes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strata.cli.template.gofmt import (
    GoDuration,
    GoInt64,
    GoMap,
    GoNil,
    GoSlice,
    GoStruct,
    GoTime,
    JsonNumber,
)

ANY = "any"


@dataclass(frozen=True)
class Slice:
    elem: Any
    type_name: str = "[]string"


@dataclass(frozen=True)
class Map:
    elem: Any
    type_name: str = "map[string]string"
    zero: Any = ""


@dataclass(frozen=True)
class Ptr:
    target: Any
    type_name: str = ""


@dataclass(frozen=True)
class F:
    """One struct field: its Go name, JSON key, type, ``omitempty``, and the embedded struct it
    was promoted from (printing groups those fields as Go does: ``{{a b} {c}}``)."""

    go: str
    spec: Any = "string"
    json: str | None = None
    omitempty: bool = False
    group: int = -1


@dataclass(frozen=True)
class Struct:
    name: str
    fields: tuple[F, ...]


_ZERO = {"string": "", "int": 0, "bool": False, "duration": GoDuration(0), ANY: None}
_EMPTY_STRUCT = Struct("struct {}", ())


def typed(value: Any, spec: Any) -> Any:
    """``value`` (decoded JSON) as the Go value of type ``spec``."""
    if isinstance(spec, Struct):
        return _struct(value if isinstance(value, Mapping) else {}, spec)
    if isinstance(spec, Ptr):
        if value is None:
            name = spec.type_name or getattr(spec.target, "name", str(spec.target))
            return GoNil("ptr", "*" + name)
        target = typed(value, spec.target)
        if isinstance(target, GoStruct):
            target.pointer = True
        return target
    if isinstance(spec, Slice):
        if not isinstance(value, list):
            return GoNil("slice", spec.type_name)
        return GoSlice([typed(v, spec.elem) for v in value], spec.type_name)
    if isinstance(spec, Map):
        if not isinstance(value, Mapping):
            return GoNil("map", spec.type_name, spec.zero)
        return GoMap({k: typed(v, spec.elem) for k, v in value.items()}, spec.zero)
    if spec == "time":
        return GoTime(value if isinstance(value, str) else "")
    if spec == "duration":
        return GoDuration(value if isinstance(value, int) else 0)
    if spec == "int64":
        return GoInt64(value if isinstance(value, int) else 0)
    if value is None:
        return _ZERO.get(spec)
    return value


def raw(value: Any) -> Any:
    """The document as docker/cli's raw pass sees it: numbers are json.Number."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return JsonNumber(json.dumps(value))
    if isinstance(value, list):
        return [raw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: raw(v) for k, v in value.items()}
    return value


def _struct(doc: Mapping[str, Any], spec: Struct) -> GoStruct:
    fields = {f.go: typed(doc.get(f.json or f.go), f.spec) for f in spec.fields}
    tags = {f.go: (f.json or f.go, f.omitempty) for f in spec.fields}
    groups = [f.group for f in spec.fields]
    return GoStruct(spec.name, fields, json_tags=tags, groups=groups)


_HEALTH = Struct(
    "container.HealthConfig",
    (
        F("Test", Slice("string"), omitempty=True),
        F("Interval", "duration", omitempty=True),
        F("Timeout", "duration", omitempty=True),
        F("StartPeriod", "duration", omitempty=True),
        F("StartInterval", "duration", omitempty=True),
        F("Retries", "int", omitempty=True),
    ),
)
_PORTS = Map(_EMPTY_STRUCT, "nat.PortSet", None)
_VOLUMES = Map(_EMPTY_STRUCT, "map[string]struct {}", None)

CONTAINER_CONFIG = Struct(
    "container.Config",
    (
        F("Hostname"),
        F("Domainname"),
        F("User"),
        F("AttachStdin", "bool"),
        F("AttachStdout", "bool"),
        F("AttachStderr", "bool"),
        F("ExposedPorts", _PORTS, omitempty=True),
        F("Tty", "bool"),
        F("OpenStdin", "bool"),
        F("StdinOnce", "bool"),
        F("Env", Slice("string")),
        F("Cmd", Slice("string", "strslice.StrSlice")),
        F("Healthcheck", Ptr(_HEALTH), omitempty=True),
        F("ArgsEscaped", "bool", omitempty=True),
        F("Image"),
        F("Volumes", _VOLUMES),
        F("WorkingDir"),
        F("Entrypoint", Slice("string", "strslice.StrSlice")),
        F("NetworkDisabled", "bool", omitempty=True),
        F("MacAddress", omitempty=True),
        F("OnBuild", Slice("string")),
        F("Labels", Map("string")),
        F("StopSignal", omitempty=True),
        F("StopTimeout", Ptr("int"), omitempty=True),
        F("Shell", Slice("string", "strslice.StrSlice"), omitempty=True),
    ),
)

IMAGE_CONFIG = Struct(
    "v1.DockerOCIImageConfig",
    (
        F("User", omitempty=True, group=0),
        F("ExposedPorts", _VOLUMES, omitempty=True, group=0),
        F("Env", Slice("string"), omitempty=True, group=0),
        F("Entrypoint", Slice("string"), omitempty=True, group=0),
        F("Cmd", Slice("string"), omitempty=True, group=0),
        F("Volumes", _VOLUMES, omitempty=True, group=0),
        F("WorkingDir", omitempty=True, group=0),
        F("Labels", Map("string"), omitempty=True, group=0),
        F("StopSignal", omitempty=True, group=0),
        F("ArgsEscaped", "bool", omitempty=True, group=0),
        F("Healthcheck", Ptr(_HEALTH), omitempty=True, group=1),
        F("OnBuild", Slice("string"), omitempty=True, group=1),
        F("Shell", Slice("string"), omitempty=True, group=1),
    ),
)

_DRIVER = Struct("storage.DriverData", (F("Data", Map("string")), F("Name")))
_DESCRIPTOR = Struct(
    "v1.Descriptor",
    (
        F("MediaType", json="mediaType"),
        F("Digest", json="digest"),
        F("Size", "int64", json="size"),
        F("URLs", Slice("string"), json="urls", omitempty=True),
        F("Annotations", Map("string"), json="annotations", omitempty=True),
        F("Data", ANY, json="data", omitempty=True),
        F("Platform", ANY, json="platform", omitempty=True),
        F("ArtifactType", json="artifactType", omitempty=True),
    ),
)

_ROOTFS = Struct(
    "image.RootFS", (F("Type", omitempty=True), F("Layers", Slice("string"), omitempty=True))
)

IMAGE_INSPECT = Struct(
    "image.InspectResponse",
    (
        F("ID", json="Id"),
        F("RepoTags", Slice("string")),
        F("RepoDigests", Slice("string")),
        F("Parent"),
        F("Comment"),
        F("Created", omitempty=True),
        F("Container", omitempty=True),
        F("ContainerConfig", Ptr(CONTAINER_CONFIG), omitempty=True),
        F("DockerVersion"),
        F("Author"),
        F("Config", Ptr(IMAGE_CONFIG)),
        F("Architecture"),
        F("Variant", omitempty=True),
        F("Os"),
        F("OsVersion", omitempty=True),
        F("Size", "int64"),
        F("VirtualSize", "int64", omitempty=True),
        F("GraphDriver", _DRIVER),
        F("RootFS", _ROOTFS),
        F("Metadata", Struct("image.Metadata", (F("LastTagTime", "time", omitempty=True),))),
        F("Descriptor", Ptr(_DESCRIPTOR), omitempty=True),
        F("Manifests", Slice(ANY, "[]image.ManifestSummary"), omitempty=True),
    ),
)

_STATE = Struct(
    "container.State",
    (
        F("Status"),
        F("Running", "bool"),
        F("Paused", "bool"),
        F("Restarting", "bool"),
        F("OOMKilled", "bool"),
        F("Dead", "bool"),
        F("Pid", "int"),
        F("ExitCode", "int"),
        F("Error"),
        F("StartedAt"),
        F("FinishedAt"),
        F("Health", Ptr(ANY, "container.Health"), omitempty=True),
    ),
)

CONTAINER_INSPECT = Struct(
    "container.InspectResponse",
    (
        F("ID", json="Id", group=0),
        F("Created", group=0),
        F("Path", group=0),
        F("Args", Slice("string"), group=0),
        F("State", Ptr(_STATE), group=0),
        F("Image", group=0),
        F("ResolvConfPath", group=0),
        F("HostnamePath", group=0),
        F("HostsPath", group=0),
        F("LogPath", group=0),
        F("Name", group=0),
        F("RestartCount", "int", group=0),
        F("Driver", group=0),
        F("Platform", group=0),
        F("MountLabel", group=0),
        F("ProcessLabel", group=0),
        F("AppArmorProfile", group=0),
        F("ExecIDs", Slice("string"), group=0),
        F("HostConfig", ANY, group=0),
        F("GraphDriver", _DRIVER, group=0),
        F("SizeRw", Ptr("int64"), omitempty=True, group=0),
        F("SizeRootFs", Ptr("int64"), omitempty=True, group=0),
        F("Mounts", Slice(ANY, "[]container.MountPoint")),
        F("Config", Ptr(CONTAINER_CONFIG)),
        F("NetworkSettings", ANY),
        F("ImageManifestDescriptor", Ptr(_DESCRIPTOR), omitempty=True),
    ),
)

# vol: ``volume inspect`` (Docker's volume.Volume).
VOLUME_INSPECT = Struct(
    "volume.Volume",
    (
        F("CreatedAt", omitempty=True),
        F("Driver"),
        F("Labels", Map("string")),
        F("Mountpoint"),
        F("Name"),
        F("Options", Map("string")),
        F("Scope"),
    ),
)

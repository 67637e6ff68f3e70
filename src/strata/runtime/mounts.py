"""A container's mounts as Docker makes them: ``-v``, ``--mount``, ``--tmpfs``, ``--volumes-from``
and the image's ``VOLUME``s, parsed with Docker's grammar and errors and resolved at ``create``.

Docker's precedence (moby's ``registerMountPoints``): the mounts of ``--volumes-from``
containers first, replaced at the same destination by ``-v`` binds and named volumes, then
``--mount``s (a destination given twice by these is "Duplicate mount point"); an anonymous
volume (``-v /path``, an image's VOLUME) only where nothing is mounted yet. The result is
recorded in the container's config (`MountPoint` values), so a start needs no parsing, and
``inspect`` shows ``Mounts`` from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from strata.errors import InvalidArgument

BIND, VOLUME, TMPFS = "bind", "volume", "tmpfs"
_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_MOUNT_KEYS = {
    "type", "source", "src", "target", "destination", "dst", "readonly", "ro",
    "bind-propagation", "bind-nonrecursive", "consistency", "volume-nocopy", "volume-label",
    "volume-driver", "volume-opt", "tmpfs-size", "tmpfs-mode",
}  # fmt: skip
_TMPFS_DEFAULTS = ("nosuid", "nodev", "noexec")
_TMPFS_CLEARS = {"suid": "nosuid", "dev": "nodev", "exec": "noexec"}
_RAM = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class MountPoint:
    """One mount of a container, as recorded at ``create`` (``inspect``'s ``Mounts`` entry)."""

    kind: str  # bind, volume or tmpfs
    destination: str
    source: str = ""  # bind: the host path; volume: the volume's name
    rw: bool = True
    mode: str = ""  # inspect's Mode, as Docker shows it
    propagation: str = ""  # binds: rprivate unless given
    anonymous: bool = False  # a volume made for this container (`rm -v` removes it)
    copy: bool = False  # fill the volume with the image's content there when it is empty
    options: tuple[str, ...] = ()  # tmpfs: its mount options
    spec: Mapping[str, Any] | None = field(default=None, compare=False)  # HostConfig.Mounts

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "destination": self.destination}
        for key, value, default in (
            ("source", self.source, ""),
            ("rw", self.rw, True),
            ("mode", self.mode, ""),
            ("propagation", self.propagation, ""),
            ("anonymous", self.anonymous, False),
            ("copy", self.copy, False),
            ("options", list(self.options), []),
            ("spec", self.spec, None),
        ):
            if value != default:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, raw: Any) -> MountPoint:
        if not isinstance(raw, dict) or not isinstance(raw.get("destination"), str):
            raise InvalidArgument("container config: mounts: expected objects with a destination")
        kind = raw.get("kind")
        if kind not in (BIND, VOLUME, TMPFS):
            raise InvalidArgument(f"container config: mounts: unknown kind {kind!r}")
        return cls(
            kind=kind,
            destination=raw["destination"],
            source=str(raw.get("source", "")),
            rw=bool(raw.get("rw", True)),
            mode=str(raw.get("mode", "")),
            propagation=str(raw.get("propagation", "")),
            anonymous=bool(raw.get("anonymous", False)),
            copy=bool(raw.get("copy", False)),
            options=tuple(str(o) for o in raw.get("options") or ()),
            spec=raw.get("spec"),
        )

    def document(self, volume_path: str) -> dict[str, Any]:
        """``inspect``'s ``Mounts`` entry (``volume_path``: the volume's host directory)."""
        if self.kind == VOLUME:
            return {
                "Type": VOLUME,
                "Name": self.source,
                "Source": volume_path,
                "Destination": self.destination,
                "Driver": "local",
                "Mode": self.mode,
                "RW": self.rw,
                "Propagation": self.propagation,
            }
        return {
            "Type": self.kind,
            "Source": self.source,
            "Destination": self.destination,
            "Mode": self.mode,
            "RW": self.rw,
            "Propagation": self.propagation,
        }


def _check_path(path: str, spec: str | None = None, kind: str = VOLUME) -> None:
    if not path.startswith("/"):
        message = f"invalid mount path: '{path}' mount path must be absolute"
        if spec is not None:
            message = (
                f"invalid volume specification: '{spec}': invalid mount config for type"
                f' "{kind}": {message}'
            )
        raise InvalidArgument(message)
    if path.rstrip("/") == "":
        raise InvalidArgument(f"invalid specification: destination can't be '/' in '{spec}'")


def _mode_words(mode: str) -> list[str] | None:
    """Docker's valid ``-v`` modes: rw|ro, z|Z, a propagation, nocopy; each at most once."""
    words = mode.split(",")
    seen: dict[str, int] = {}
    for word in words:
        group = (
            "rw" if word in ("rw", "ro")
            else "label" if word in ("z", "Z")
            else "propagation" if word in _PROPAGATIONS
            else "copy" if word == "nocopy"
            else None
        )  # fmt: skip
        if group is None:
            return None
        seen[group] = seen.get(group, 0) + 1
        if seen[group] > 1:
            return None
    return words


def parse_volume_flag(text: str) -> MountPoint:
    """``-v [SOURCE:]DESTINATION[:MODE]``: a host path (absolute) is a bind, a name a named
    volume, no source an anonymous volume (its name is given at create)."""
    parts = text.split(":")
    if len(parts) == 2 and _mode_words(parts[1]) is not None and parts[0].startswith("/"):
        parts = ["", *parts]  # /path:ro is an anonymous volume with a mode
    if len(parts) == 1:
        source, destination, mode = "", parts[0], ""
    elif len(parts) == 2:
        source, destination, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        source, destination, mode = parts
    else:
        raise InvalidArgument(f"invalid volume specification: '{text}'")
    if not destination:
        raise InvalidArgument(f"invalid volume specification: '{text}'")
    words = _mode_words(mode) if mode else []
    if words is None:
        raise InvalidArgument(f"invalid mode: {mode}")
    rw = "ro" not in words
    propagation = next((w for w in words if w in _PROPAGATIONS), "")
    if source.startswith("/"):
        _check_path(destination, text, BIND)
        return MountPoint(
            BIND, destination, source, rw=rw, mode=mode, propagation=propagation or "rprivate"
        )
    if propagation:
        raise InvalidArgument(f"invalid mode: {mode}")
    _check_path(destination, text, VOLUME)
    if not source:
        return MountPoint(VOLUME, destination, rw=rw, mode=mode, anonymous=True, copy=True)
    from strata.volume.store import check_name

    check_name(source)
    # Docker shows a named volume given without a mode as "z" (its default relabel word).
    return MountPoint(
        VOLUME, destination, source, rw=rw, mode=mode or "z", copy="nocopy" not in words
    )


def _bool(key: str, value: str | None, field_text: str) -> bool:
    if value is None:
        return True
    lowered = value.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise InvalidArgument(f"invalid value for {key}: {value!r} in {field_text!r}")


def ram_bytes(text: str) -> int:
    """go-units RAMInBytes: ``64m`` is 64 MiB (binary units, as Docker's --tmpfs sizes)."""
    match = _RAM.fullmatch(text.strip())
    if match is None:
        raise InvalidArgument(f"invalid size: '{text}'")
    power = "kmgtp".find(match.group(2).lower()) + 1 if match.group(2) else 0
    return int(float(match.group(1)) * 1024**power)


def parse_mount_flag(text: str) -> MountPoint:
    """``--mount type=bind|volume|tmpfs,source=…,target=…,readonly,…`` (Docker's CSV grammar;
    the type defaults to volume)."""
    bad = f'invalid argument "{text}" for "--mount" flag'
    values: dict[str, str | None] = {}
    for item in (f for f in text.split(",") if f):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if key not in _MOUNT_KEYS:
            raise InvalidArgument(f"{bad}: unexpected key '{key}' in '{item}'")
        if not eq and key not in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
            raise InvalidArgument(f"{bad}: invalid field '{item}' must be a key=value pair")
        values[key] = value if eq else None
    kind = values.get("type") or VOLUME
    source = values.get("source") or values.get("src") or ""
    target = values.get("target") or values.get("destination") or values.get("dst") or ""
    if not target:
        raise InvalidArgument(f"{bad}: target is required")
    readonly = any(
        _bool(k, values[k], text) for k in ("readonly", "ro") if k in values
    )  # fmt: skip
    config = f'invalid mount config for type "{kind}"'
    if kind not in (BIND, VOLUME, TMPFS):
        raise InvalidArgument(f"{config}: mount type unknown")
    for prefix, owner in (("bind-", BIND), ("volume-", VOLUME), ("tmpfs-", TMPFS)):
        if kind != owner and any(k.startswith(prefix) for k in values):
            name = {"bind-": "BindOptions", "volume-": "VolumeOptions", "tmpfs-": "TmpfsOptions"}
            raise InvalidArgument(f"{config}: field {name[prefix]} must not be specified")
    if not target.startswith("/"):
        raise InvalidArgument(
            f"{config}: invalid mount path: '{target}' mount path must be absolute"
        )
    spec: dict[str, Any] = {"Type": kind}
    if source:
        spec["Source"] = source
    spec["Target"] = target
    if readonly:
        spec["ReadOnly"] = True
    if kind == BIND:
        if not source:
            raise InvalidArgument(f"{config}: field Source must not be empty")
        if not source.startswith("/"):
            raise InvalidArgument(
                f"{config}: invalid mount path: '{source}' mount path must be absolute"
            )
        propagation = values.get("bind-propagation") or ""
        if propagation and propagation not in _PROPAGATIONS:
            raise InvalidArgument(f"{config}: invalid propagation mode: {propagation}")
        if propagation:
            spec["BindOptions"] = {"Propagation": propagation}
        return MountPoint(
            BIND, target, source, rw=not readonly, propagation=propagation or "rprivate", spec=spec
        )
    if kind == TMPFS:
        if source:
            raise InvalidArgument(f"{config}: field Source must not be specified")
        options = list(_TMPFS_DEFAULTS)
        tmpfs: dict[str, int] = {}
        if values.get("tmpfs-size"):
            tmpfs["SizeBytes"] = ram_bytes(values["tmpfs-size"] or "")
            options.append(f"size={tmpfs['SizeBytes']}")
        if values.get("tmpfs-mode"):
            try:
                mode = int(values["tmpfs-mode"] or "", 8)
            except ValueError:
                raise InvalidArgument(
                    f"{bad}: invalid value for tmpfs-mode: {values['tmpfs-mode']}"
                ) from None
            tmpfs["Mode"] = mode
            options.append(f"mode={mode:o}")
        if readonly:
            options.append("ro")
        if tmpfs:
            spec["TmpfsOptions"] = tmpfs
        return MountPoint(TMPFS, target, rw=not readonly, options=tuple(options), spec=spec)
    driver = values.get("volume-driver") or "local"
    if driver != "local":
        raise InvalidArgument(f"{config}: volume driver {driver!r}: only local volumes")
    if "volume-opt" in values:
        raise InvalidArgument(
            f"{config}: volume-opt is not supported: strata's volumes are plain directories"
        )
    nocopy = "volume-nocopy" in values and _bool("volume-nocopy", values["volume-nocopy"], text)
    labels = {}
    if "volume-label" in values:
        key, _, value = (values["volume-label"] or "").partition("=")
        labels[key] = value
    volume_options: dict[str, Any] = {}
    if nocopy:
        volume_options["NoCopy"] = True
    if labels:
        volume_options["Labels"] = labels
    if volume_options:
        spec["VolumeOptions"] = volume_options
    if source:
        from strata.volume.store import check_name

        check_name(source)
    return MountPoint(
        VOLUME,
        target,
        source,
        rw=not readonly,
        mode="z",
        anonymous=not source,
        copy=not nocopy,
        spec=spec,
    )


def parse_tmpfs_flag(text: str) -> tuple[str, str]:
    """``--tmpfs /path[:options]``: (destination, the options as typed)."""
    destination, _, options = text.partition(":")
    _check_path(destination)
    return destination, options


def tmpfs_mount(destination: str, options: str) -> MountPoint:
    """A ``--tmpfs``'s mount: Docker's defaults (nosuid, nodev, noexec) unless overridden."""
    given = [o for o in options.split(",") if o]
    cleared = {_TMPFS_CLEARS[o] for o in given if o in _TMPFS_CLEARS}
    merged = [o for o in _TMPFS_DEFAULTS if o not in cleared]
    merged += [o for o in given if o not in _TMPFS_CLEARS]
    return MountPoint(TMPFS, destination, rw="ro" not in given, options=tuple(merged))


def parse_volumes_from(text: str) -> tuple[str, bool]:
    """``--volumes-from CONTAINER[:ro|rw]``: (the container, read-only)."""
    name, sep, mode = text.partition(":")
    if sep and mode not in ("ro", "rw"):
        raise InvalidArgument(f"invalid mode: {mode}")
    if not name:
        raise InvalidArgument(f"invalid volumes-from specification: '{text}'")
    return name, mode == "ro"


def inherited(mounts: Iterable[MountPoint], readonly: bool) -> list[MountPoint]:
    """What ``--volumes-from`` takes of another container's mounts (its binds and volumes; its
    mode blank, as Docker shows it; never copied into again)."""
    return [
        replace(m, rw=m.rw and not readonly, mode="", copy=False, spec=None)
        for m in mounts
        if m.kind in (BIND, VOLUME)
    ]


def resolve(
    *,
    inherited_mounts: Sequence[MountPoint],
    volume_flags: Sequence[MountPoint],
    mount_flags: Sequence[MountPoint],
    tmpfs: Mapping[str, str],
    anonymous: Sequence[MountPoint],
) -> list[MountPoint]:
    """Docker's precedence (see the module docstring); anonymous volumes still unnamed."""
    chosen: dict[str, MountPoint] = {}
    for mount in inherited_mounts:
        chosen[_key(mount.destination)] = mount
    given: set[str] = set()
    for mount in (*volume_flags, *mount_flags):
        key = _key(mount.destination)
        if key in given:
            raise InvalidArgument(f"Duplicate mount point: {mount.destination}")
        given.add(key)
        chosen[key] = mount
    for destination in tmpfs:
        key = _key(destination)
        if key in given:
            raise InvalidArgument(f"Duplicate mount point: {destination}")
        given.add(key)
        chosen.pop(key, None)  # a tmpfs is not a mount point (HostConfig.Tmpfs): kept apart
    for mount in anonymous:
        key = _key(mount.destination)
        if key not in chosen and key not in given:
            chosen[key] = mount
    return list(chosen.values())


def mounts_volume(mounts: Iterable[MountPoint], text: str) -> bool:
    """``ps --filter volume=TEXT`` (Docker's rule): a mount whose volume name, bind source or
    destination is ``TEXT`` (the seam for the cmds part's filter)."""
    return any(text in (m.source, m.destination) for m in mounts if m.kind in (BIND, VOLUME))


def _key(path: str) -> str:
    return "/" + "/".join(p for p in path.split("/") if p and p != ".")

"""Image documents as Docker's API prints them (``image inspect``), with every field of its
``container.Config`` struct.

Docker 20.10 decodes an image's ``config`` and ``container_config`` into a Go struct and encodes
that again, so ``image inspect`` shows every field in the struct's order, zero values included,
except the few marked ``omitempty``; JSON keys match case-insensitively on the way in. An image
strata built stores only what is set (as the OCI image-spec has it), so this is done on output.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from strata.oci.reference import parse_reference

if TYPE_CHECKING:
    from strata.image.store import Image, ImageStore

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


def image_document(images: ImageStore, image: Image) -> dict[str, Any]:
    """``docker image inspect``'s document (Docker 20.10, API 1.41), from the stored config."""
    raw = json.loads(images.content.read_bytes(image.config_digest, limit=8 << 20))
    rootfs = raw.get("rootfs") or {}
    parent = images.parent(image)
    doc: dict[str, Any] = {
        "Id": str(image.id),
        "RepoTags": [t.familiar for t in image.tags],
        "RepoDigests": [
            f"{parse_reference(d.split('@')[0]).familiar_name}@{d.split('@')[1]}"
            for d in image.repo_digests
        ],
        "Parent": str(parent) if parent is not None else "",
        "Comment": raw.get("comment", ""),
        "Created": raw.get("created", ""),
        "Container": raw.get("container", ""),
        "ContainerConfig": docker_config(raw.get("container_config")),
        "DockerVersion": raw.get("docker_version", ""),
        "Author": raw.get("author", ""),
        "Config": docker_config(raw.get("config")) if raw.get("config") is not None else None,
        "Architecture": raw.get("architecture", ""),
    }
    if raw.get("variant"):
        doc["Variant"] = raw["variant"]  # omitempty in Docker's struct
    doc |= {
        "Os": raw.get("os", ""),
        "Size": image.size,
        "VirtualSize": image.size,  # the same figure since Docker 20.10 (API 1.41)
        "RootFS": {"Type": rootfs.get("type", "layers"), "Layers": rootfs.get("diff_ids", [])},
        "Metadata": {"LastTagTime": image.added},
        # Not in Docker 20.10's document (newer Dockers with the containerd store add it): the
        # manifest this image is stored as, which a local image has nowhere else.
        "Descriptor": {
            "mediaType": image.media_type,
            "digest": str(image.manifest_digest),
            "size": images.content.info(image.manifest_digest).size,
        },
    }
    return doc

"""Content descriptors and platforms (image-spec descriptor.md, image-index.md)."""

from __future__ import annotations

import base64
import binascii
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from strata.digest import Digest
from strata.errors import InvalidArgument, InvalidDigest
from strata.oci._fields import (
    as_object,
    check_media_type,
    fail,
    join,
    opt_object,
    opt_str,
    opt_str_list,
    opt_str_map,
    req_int,
    req_str,
    show,
)

# RFC 3986 URI (scheme required), as image-spec's "format": "uri" demands of descriptor urls.
_UNRESERVED: Final = r"A-Za-z0-9\-._~"
_SUB_DELIMS: Final = r"!$&'()*+,;="
_PCT: Final = r"%[0-9A-Fa-f]{2}"
_PCHAR: Final = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_HOST: Final = (
    rf"(?:\[[0-9A-Fa-f:.]+\]|\[v[0-9A-Fa-f]+\.[{_UNRESERVED}{_SUB_DELIMS}:]+\]"
    rf"|(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*)"
)
_AUTHORITY: Final = rf"(?:(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*@)?{_HOST}(?::[0-9]*)?"
# Patterns are compiled on first use (re caches them), keeping the import cheap.
_URI: Final = (
    rf"[A-Za-z][A-Za-z0-9+.\-]*:(?://{_AUTHORITY}(?:/{_PCHAR}*)*|(?:{_PCHAR}|/)*)"
    rf"(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?"
)


def is_uri(text: str) -> bool:
    """True if ``text`` is an absolute RFC 3986 URI."""
    return re.fullmatch(_URI, text) is not None


# platform.machine() -> (GOARCH, variant)
_MACHINES: Final[dict[str, tuple[str, str | None]]] = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "i386": ("386", None),
    "i486": ("386", None),
    "i586": ("386", None),
    "i686": ("386", None),
    "aarch64": ("arm64", None),
    "arm64": ("arm64", None),
    "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "armv5l": ("arm", "v5"),
    "ppc64le": ("ppc64le", None),
    "ppc64": ("ppc64", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
    "mips64": ("mips64", None),
    "loongarch64": ("loong64", None),
}
# containerd's platforms.Normalize aliases, for matching only.
_ARCH_ALIASES: Final[dict[str, tuple[str, str | None]]] = {
    "x86_64": ("amd64", None),
    "x86-64": ("amd64", None),
    "i386": ("386", None),
    "aarch64": ("arm64", None),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
}


@dataclass(frozen=True, slots=True)
class Platform:
    """What an image runs on, with Go's names (``linux``, ``amd64``, ``arm`` + ``v7``)."""

    architecture: str
    os: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    # Docker manifest lists only; OCI dropped the field.
    features: tuple[str, ...] = ()

    @classmethod
    def current(cls) -> Platform:
        """This machine's platform (``platform.machine()`` mapped to GOARCH names)."""
        import platform

        os_name = "linux" if sys.platform.startswith("linux") else sys.platform
        return platform_for_machine(platform.machine(), os_name)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse Docker's ``--platform`` form: ``os/arch[/variant]``, e.g. ``linux/arm/v7``."""
        parts = text.split("/")
        if not 2 <= len(parts) <= 3 or not all(parts):
            raise InvalidArgument(f"invalid platform {show(text)}: expected os/arch[/variant]")
        return cls(parts[1], parts[0].lower(), parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def from_dict(cls, obj: object, source: str, path: str = "") -> Platform:
        """Validate a decoded ``platform`` object; errors name ``source`` and ``path``."""
        doc = as_object(obj, source, path)
        return cls(
            architecture=req_str(doc, "architecture", source, path),
            os=req_str(doc, "os", source, path),
            variant=opt_str(doc, "variant", source, path),
            os_version=opt_str(doc, "os.version", source, path),
            os_features=opt_str_list(doc, "os.features", source, path) or (),
            features=opt_str_list(doc, "features", source, path) or (),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, in image-spec's field order, empty fields omitted."""
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version is not None:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant is not None:
            out["variant"] = self.variant
        if self.features:
            out["features"] = list(self.features)
        return out


def platform_for_machine(machine: str, os: str = "linux") -> Platform:
    """The platform for a ``uname -m`` machine name (``armv7l`` -> ``arm`` + ``v7``)."""
    arch, variant = _MACHINES.get(machine.lower(), (machine.lower(), None))
    return Platform(arch, os, variant)


def _normalized(p: Platform) -> tuple[str, str, str]:
    arch, variant = p.architecture.lower(), (p.variant or "").lower()
    alias = _ARCH_ALIASES.get(arch)
    if alias is not None:
        arch = alias[0]
        variant = variant or (alias[1] or "")
    if arch == "arm64" and variant in ("8", "v8", "v8.0"):
        variant = ""
    elif arch == "arm":
        variant = {"": "v7", "5": "v5", "6": "v6", "7": "v7", "8": "v8"}.get(variant, variant)
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return p.os.lower(), arch, variant


def matches(platform: Platform, wanted: Platform) -> bool:
    """True if an index entry for ``platform`` serves ``wanted`` (os, architecture, variant).

    Names are normalised as containerd does (``aarch64`` = ``arm64``, ``arm64/v8`` = ``arm64``,
    ``arm`` = ``arm/v7``). A ``wanted`` without a variant accepts any variant, except for ``arm``
    whose variant defaults to ``v7``.
    """
    have_os, have_arch, have_variant = _normalized(platform)
    want_os, want_arch, want_variant = _normalized(wanted)
    if (have_os, have_arch) != (want_os, want_arch):
        return False
    if wanted.variant is None and want_arch != "arm":
        return True
    return have_variant == want_variant


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A pointer to content: media type, digest and size, plus optional extras.

    Empty ``annotations`` are held as None, as they serialise the same way.
    """

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] | None = None
    platform: Platform | None = None
    artifact_type: str | None = None
    data: bytes | None = None

    def __post_init__(self) -> None:
        if self.annotations is not None and not self.annotations:
            object.__setattr__(self, "annotations", None)

    @classmethod
    def from_dict(cls, obj: object, where: str) -> Descriptor:
        """Validate a decoded descriptor object; errors start with ``where``."""
        return descriptor_from_dict(obj, where, "")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object in image-spec's field order, empty optional fields omitted."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.data is not None:
            out["data"] = base64.b64encode(self.data).decode("ascii")
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        return out


def descriptor_from_dict(
    obj: object, source: str, path: str, *, loose_media_type: bool = False
) -> Descriptor:
    """Validate the descriptor at ``path`` in ``source``.

    ``loose_media_type`` accepts any non-empty media type string (for OCI layout entries, which
    are checked one by one when resolved).
    """
    doc = as_object(obj, source, path)
    media_type = req_str(doc, "mediaType", source, path)
    if loose_media_type:
        if not media_type:
            fail(source, join(path, "mediaType"), "must not be empty")
    else:
        check_media_type(media_type, source, join(path, "mediaType"))
    digest = parse_digest(req_str(doc, "digest", source, path), source, join(path, "digest"))
    size = req_int(doc, "size", source, path)
    urls = opt_str_list(doc, "urls", source, path) or ()
    for i, url in enumerate(urls):
        if not is_uri(url):
            fail(source, f"{join(path, 'urls')}[{i}]", f"{show(url)} is not an absolute URI")
    annotations = opt_str_map(doc, "annotations", source, path)
    artifact_type = opt_str(doc, "artifactType", source, path)
    if artifact_type is not None:
        check_media_type(artifact_type, source, join(path, "artifactType"))
    data = None
    encoded = opt_str(doc, "data", source, path)
    if encoded is not None:
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            fail(source, join(path, "data"), "must be standard base64 with padding")
    raw_platform = opt_object(doc, "platform", source, path)
    platform = (
        None
        if raw_platform is None
        else Platform.from_dict(raw_platform, source, join(path, "platform"))
    )
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=urls,
        annotations=annotations,
        platform=platform,
        artifact_type=artifact_type,
        data=data,
    )


def parse_digest(text: str, source: str, path: str) -> Digest:
    """``text`` as a digest; a bad one is a `FormatError` naming the field."""
    try:
        return Digest.parse(text)
    except InvalidDigest as err:
        fail(source, path, str(err))

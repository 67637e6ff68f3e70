"""The OCI model: descriptors, manifests, indexes, image configs, media types and references.

Pure values and their JSON: frozen dataclasses parsed from bytes with hand-written validation
(stdlib ``json`` only, so importing this is cheap) and serialised with a stable key order. No I/O.
Every rejection is a `strata.errors` class whose one-line message names the input and the field.
OCI image-spec and Docker schema 2 are read; Docker schema 1 is recognised only to be refused.
"""

# Submodules load on first use (PEP 562): `import strata.oci.reference` should not pay for
# the config and manifest classes, and every dataclass costs milliseconds to create.
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strata.oci.config import (
        ContainerConfig,
        History,
        ImageConfig,
        RootFS,
        format_time,
        parse_config,
        parse_time,
    )
    from strata.oci.descriptor import Descriptor, Platform, matches, platform_for_machine
    from strata.oci.layout import (
        ANNOTATION_CONTAINERD_NAME,
        ANNOTATION_REF_NAME,
        layout_header,
        parse_index,
        parse_layout_header,
    )
    from strata.oci.manifest import Index, Manifest, parse_manifest
    from strata.oci.mediatypes import (
        DOCKER_CONFIG,
        DOCKER_LAYER_GZIP,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
        LAYER_MEDIA_TYPES,
        MAX_CONFIG_SIZE,
        MAX_INDEX_JSON_SIZE,
        MAX_MANIFEST_SIZE,
        OCI_CONFIG,
        OCI_EMPTY,
        OCI_INDEX,
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        OCI_MANIFEST,
        layer_compression,
    )
    from strata.oci.reference import Reference, looks_like_id, parse_reference

_WHERE: dict[str, str] = {
    "ANNOTATION_CONTAINERD_NAME": "strata.oci.layout",
    "ANNOTATION_REF_NAME": "strata.oci.layout",
    "ContainerConfig": "strata.oci.config",
    "DOCKER_CONFIG": "strata.oci.mediatypes",
    "DOCKER_LAYER_GZIP": "strata.oci.mediatypes",
    "DOCKER_MANIFEST": "strata.oci.mediatypes",
    "DOCKER_MANIFEST_LIST": "strata.oci.mediatypes",
    "Descriptor": "strata.oci.descriptor",
    "History": "strata.oci.config",
    "ImageConfig": "strata.oci.config",
    "Index": "strata.oci.manifest",
    "LAYER_MEDIA_TYPES": "strata.oci.mediatypes",
    "MAX_CONFIG_SIZE": "strata.oci.mediatypes",
    "MAX_INDEX_JSON_SIZE": "strata.oci.mediatypes",
    "MAX_MANIFEST_SIZE": "strata.oci.mediatypes",
    "Manifest": "strata.oci.manifest",
    "OCI_CONFIG": "strata.oci.mediatypes",
    "OCI_EMPTY": "strata.oci.mediatypes",
    "OCI_INDEX": "strata.oci.mediatypes",
    "OCI_LAYER": "strata.oci.mediatypes",
    "OCI_LAYER_GZIP": "strata.oci.mediatypes",
    "OCI_LAYER_ZSTD": "strata.oci.mediatypes",
    "OCI_MANIFEST": "strata.oci.mediatypes",
    "Platform": "strata.oci.descriptor",
    "Reference": "strata.oci.reference",
    "RootFS": "strata.oci.config",
    "format_time": "strata.oci.config",
    "layer_compression": "strata.oci.mediatypes",
    "layout_header": "strata.oci.layout",
    "looks_like_id": "strata.oci.reference",
    "matches": "strata.oci.descriptor",
    "parse_config": "strata.oci.config",
    "parse_index": "strata.oci.layout",
    "parse_layout_header": "strata.oci.layout",
    "parse_manifest": "strata.oci.manifest",
    "parse_reference": "strata.oci.reference",
    "parse_time": "strata.oci.config",
    "platform_for_machine": "strata.oci.descriptor",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ANNOTATION_CONTAINERD_NAME",
    "ANNOTATION_REF_NAME",
    "DOCKER_CONFIG",
    "DOCKER_LAYER_GZIP",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "LAYER_MEDIA_TYPES",
    "MAX_CONFIG_SIZE",
    "MAX_INDEX_JSON_SIZE",
    "MAX_MANIFEST_SIZE",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "ContainerConfig",
    "Descriptor",
    "History",
    "ImageConfig",
    "Index",
    "Manifest",
    "Platform",
    "Reference",
    "RootFS",
    "format_time",
    "layer_compression",
    "layout_header",
    "looks_like_id",
    "matches",
    "parse_config",
    "parse_index",
    "parse_layout_header",
    "parse_manifest",
    "parse_reference",
    "parse_time",
    "platform_for_machine",
]

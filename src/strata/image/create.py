"""Write a new image (config + OCI manifest) for layers already in the content store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from strata.digest import Digest
from strata.image.store import Image, ImageLayer, ImageStore
from strata.oci.config import ImageConfig
from strata.oci.descriptor import Descriptor
from strata.oci.manifest import Manifest
from strata.oci.mediatypes import OCI_CONFIG, OCI_MANIFEST
from strata.oci.reference import Reference
from strata.store.leases import Lease


def put_blob(images: ImageStore, lease: Lease, data: bytes) -> Digest:
    """Store ``data`` under the operation's lease (leased first, so gc cannot race the write)."""
    digest = Digest.of(data)
    lease.add("blob", str(digest))
    images.content.put_bytes(data, expected=digest)
    return digest


def store_image(
    images: ImageStore,
    lease: Lease,
    *,
    config: ImageConfig,
    layers: Sequence[ImageLayer],
    names: Iterable[Reference] = (),
    intermediate: bool = False,
    parent: Digest | None = None,
) -> Image:
    """Write the config and an OCI manifest for ``layers`` and record the image under ``names``.

    Both blobs are leased in one transaction before either is written (gc cannot race the
    writes, and a build's many metadata steps pay one commit for the two, not two)."""
    config_bytes = config.to_json()
    config_digest = Digest.of(config_bytes)
    manifest = Manifest(
        schema_version=2,
        media_type=OCI_MANIFEST,
        config=Descriptor(OCI_CONFIG, config_digest, len(config_bytes)),
        layers=tuple(
            Descriptor(layer.media_type, layer.blob, images.content.info(layer.blob).size)
            for layer in layers
        ),
    )
    manifest_bytes = manifest.to_json()
    manifest_digest = Digest.of(manifest_bytes)
    lease.add_all("blob", [str(config_digest), str(manifest_digest)])
    images.content.put_bytes(config_bytes, expected=config_digest)
    images.content.put_bytes(manifest_bytes, expected=manifest_digest)
    return images.add(
        manifest_digest=manifest_digest,
        media_type=OCI_MANIFEST,
        config_digest=config_digest,
        config=config,
        layers=layers,
        names=names,
        intermediate=intermediate,
        parent=parent,
    )

"""Choosing the manifest for a platform out of an image index or Docker manifest list."""

from __future__ import annotations

from strata.errors import NotFound
from strata.oci.descriptor import Descriptor, Platform, matches
from strata.oci.manifest import Index
from strata.oci.mediatypes import MANIFEST_MEDIA_TYPES

__all__ = ["select_manifest"]

# BuildKit's provenance and SBOM entries: "unknown/unknown" manifests beside the images.
_REFERENCE_TYPE = "vnd.docker.reference.type"


def _variant_rank(entry: Platform, wanted: Platform) -> int:
    """0 for the exact variant, 1 for none given, 2 for another one the matcher accepted."""
    if (entry.variant or "") == (wanted.variant or ""):
        return 0
    return 1 if entry.variant is None else 2


def select_manifest(index: Index, wanted: Platform, *, source: str) -> Descriptor:
    """The entry of ``index`` that serves ``wanted``, as containerd picks it.

    Entries are matched with containerd's normalisation (`strata.oci.descriptor.matches`);
    among several, the exact variant wins, then index order. Attestation manifests are never
    chosen. An index whose image entries carry no platform at all (some hand-made ones) gives
    its only image entry. `NotFound` names ``source`` and the platform otherwise.
    """
    images = [
        d
        for d in index.manifests
        if d.media_type in MANIFEST_MEDIA_TYPES
        and (d.annotations or {}).get(_REFERENCE_TYPE) != "attestation-manifest"
    ]
    found = [d for d in images if d.platform is not None and matches(d.platform, wanted)]
    if found:
        return min(
            enumerate(found),
            key=lambda pair: (_variant_rank(pair[1].platform or wanted, wanted), pair[0]),
        )[1]
    unlabelled = [d for d in images if d.platform is None]
    if len(unlabelled) == 1 and len(images) == 1:
        return unlabelled[0]
    have = sorted({str(d.platform) for d in images if d.platform is not None})
    listed = f" (it has {', '.join(have)})" if have else ""
    raise NotFound(
        f"{source}: no matching manifest for {wanted} in the manifest list entries{listed}"
    )

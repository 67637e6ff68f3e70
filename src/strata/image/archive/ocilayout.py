"""OCI image layout rules: names from index annotations, and picking a platform from an index.

Names. A descriptor in ``index.json`` names its image by, in order:

1. ``io.containerd.image.name`` — a full reference, written by containerd, Docker >= 25 and
   strata. Docker's containerd image store uses it as the image name; so do we.
2. ``org.opencontainers.image.ref.name`` when it contains ``/``, ``:`` or ``@``: then it is a full
   reference (``debian:bookworm``, ``localhost:5000/a/b:1``), normalised Docker's way
   (``docker.io/library/debian:bookworm``). That is containerd's own test for "a full reference
   rather than a bare tag" (``archive.AddRefPrefix``), and what Podman's normalisation gives.
3. Otherwise the ref name is a bare tag (``latest``, ``3.18``) — the OCI spec's usual meaning —
   and the image gets no name. Here strata deliberately differs from its peers: Docker would
   name the image ``latest`` (``docker.io/library/latest:latest``), Podman
   ``localhost/latest:latest``: names nobody wants. An unnamed image can be tagged after loading.

A name without a tag gets ``latest`` (as ``docker load`` does); a reference pinned only by digest
names nothing; one with both a tag and a digest keeps the tag. Unparseable names are skipped
rather than failing the load, as Docker does (it loads such images untagged).

Platforms. A nested index (a multi-platform image) contributes the one manifest for this machine
(`Platform.current`, matched with containerd's normalisation by `strata.oci.descriptor.matches`).
An index with no manifest for this platform is an error that lists the platforms it does have. A
top-level descriptor that declares another platform is skipped, as containerd's importer does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from strata.errors import InvalidReference
from strata.oci.descriptor import Descriptor, Platform, matches
from strata.oci.layout import ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME
from strata.oci.reference import parse_reference

__all__ = ["choose_platform_manifest", "names_from_annotations", "tagged_name"]


def tagged_name(text: str) -> str | None:
    """``text`` as a full normalised ``name:tag`` reference, or None if it cannot name an image."""
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return None
    if ref.tag is None:
        if ref.digest is not None:
            return None
        ref = ref.with_default_tag()
    if ref.digest is not None:
        ref = dataclasses.replace(ref, digest=None)
    return str(ref)


def names_from_annotations(annotations: Mapping[str, str] | None) -> tuple[str, ...]:
    """The image name an ``index.json`` descriptor carries (see the module docstring)."""
    if not annotations:
        return ()
    full = annotations.get(ANNOTATION_CONTAINERD_NAME)
    if full:
        name = tagged_name(full)
        if name is not None:
            return (name,)
    ref_name = annotations.get(ANNOTATION_REF_NAME)
    if ref_name and any(c in ref_name for c in "/:@"):
        name = tagged_name(ref_name)
        if name is not None:
            return (name,)
    return ()


def choose_platform_manifest(children: tuple[Descriptor, ...], want: Platform) -> Descriptor | None:
    """The child descriptor of an index to use on ``want``; None if no child fits.

    A child declaring a matching platform beats one declaring none; among equals the earlier
    wins, as the index's order is its author's preference.
    """
    fallback = None
    for child in children:
        if child.platform is None:
            fallback = fallback or child
        elif matches(child.platform, want):
            return child
    return fallback

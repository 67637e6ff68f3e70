"""`pull` and `push`: images from and to a registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

from strata.api.progress import Progress, ProgressCallback, TransferProgress, emitter
from strata.api.values import Image, Pushed, Root, image_store, image_value
from strata.errors import ImageNotFound, InvalidArgument

if TYPE_CHECKING:
    from strata.registry.client import RegistryClient

__all__ = ["NEW", "UP_TO_DATE", "pull", "push"]

# The text of a pull's last event, ``pulled``: whether the store had the image already.
UP_TO_DATE: Final = "up to date"
NEW: Final = "downloaded"


def _client(domain: str, insecure: bool | None) -> RegistryClient:
    from strata.registry.client import RegistryClient
    from strata.registry.credentials import CredentialStore

    return RegistryClient(domain, insecure=insecure, credentials=CredentialStore.load())


def pull(
    name: str,
    *,
    platform: str | None = None,
    jobs: int = 3,
    insecure: bool | None = None,
    unpack: bool = True,
    root: Root = None,
    progress: ProgressCallback | None = None,
) -> Image:
    """Pull ``name`` (``latest`` when it has no tag or digest) into the store; the image.

    ``platform`` (``os/arch``, default this machine's) picks the image out of an index; ``jobs``
    layers download at once; ``insecure`` True uses plain HTTP (None: for loopback registries
    and those ~/.docker/config.json lists); ``unpack`` extracts the layers now.
    """
    from strata.oci.descriptor import Platform
    from strata.oci.reference import parse_reference
    from strata.registry.pull import pull as pull_image

    ref = parse_reference(name)
    wanted = Platform.parse(platform) if platform else None
    emit = emitter(progress)
    with image_store(root) as store:
        with _client(ref.domain, insecure) as client:
            result = pull_image(
                store,
                client,
                ref,
                platform=wanted,
                jobs=jobs,
                unpack=unpack,
                events=TransferProgress(emit),
            )
        emit(Progress("pulled", str(result.digest), text=UP_TO_DATE if result.up_to_date else NEW))
        return image_value(result.image, store.root.path)


def push(
    image: Image | str,
    reference: str | None = None,
    *,
    format: Literal["oci", "docker"] | None = None,
    compression: Literal["gzip", "zstd"] = "gzip",
    jobs: int = 3,
    insecure: bool | None = None,
    root: Root = None,
    progress: ProgressCallback | None = None,
) -> Pushed:
    """Push the local ``image`` to ``reference`` (default: the name ``image`` is).

    ``format`` is the manifest's (default OCI, or the image's own when it needs no change);
    ``compression`` applies to layers stored uncompressed.
    """
    from strata.oci.reference import parse_reference
    from strata.registry.push import push as push_image

    source = str(image)
    if reference is None:
        if isinstance(image, Image):
            raise InvalidArgument("push: an image handle needs a reference to push to")
        reference = source
    ref = parse_reference(reference)
    with image_store(root) as store:
        if source != reference:
            store.get(source)  # No such image: SOURCE
        elif ref.digest is None and store.lookup(str(ref.with_default_tag())) is None:
            # Docker's check, before any registry is contacted (and no login is asked for).
            raise ImageNotFound(
                f"An image does not exist locally with the tag: {ref.familiar_name}"
            )
        with _client(ref.domain, insecure) as client:
            result = push_image(
                store,
                client,
                ref,
                source=source,
                manifest_format=format,
                compression=compression,
                jobs=jobs,
                events=TransferProgress(emitter(progress)),
            )
        return Pushed(str(result.reference), str(result.digest), result.size)

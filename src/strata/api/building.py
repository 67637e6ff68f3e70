"""`build`: a Dockerfile into an image."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from strata.api.progress import BuildProgress, ProgressCallback, emitter
from strata.api.values import Image, Root, image_value, store_root
from strata.errors import ImageNotFound, InvalidArgument

__all__ = ["build"]


def build(
    context: str | os.PathLike[str] = ".",
    *,
    tags: Sequence[str] = (),
    dockerfile: str | os.PathLike[str] | None = None,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    no_cache: bool = False,
    network: str = "default",
    timestamp: int | None = None,
    runtime: str | None = None,
    labels: Mapping[str, str] | None = None,
    root: Root = None,
    progress: ProgressCallback | None = None,
) -> Image:
    """Build the Dockerfile of ``context`` (or ``dockerfile``); the final image, tagged ``tags``.

    ``timestamp`` (seconds since 1970) sets every time in the image, as SOURCE_DATE_EPOCH does;
    each step, cache verdict and RUN output line comes through ``progress``. A failed step
    raises `strata.errors.StepFailed`, its output having come through ``progress``.
    """
    from strata.build.events import BuildOptions
    from strata.build.executor import Builder

    if timestamp is not None and timestamp < 0:
        raise InvalidArgument(f"invalid timestamp {timestamp}: before 1970")
    options = BuildOptions(
        context=Path(context),
        dockerfile=Path(dockerfile) if dockerfile is not None else None,
        tags=tuple(tags),
        build_args=dict(build_args or {}),
        target=target,
        no_cache=no_cache,
        network=network,
        epoch=timestamp,
        runtime=runtime,
        labels=dict(labels or {}),
    )
    where = store_root(root)
    result = Builder(where, BuildProgress(emitter(progress))).build(options)
    assert result is not None  # None only when explaining
    from strata.image.store import ImageStore

    found = ImageStore(where).by_manifest(result.manifest_digest)
    if found is None:
        raise ImageNotFound(f"No such image: {result.image_id}")
    return image_value(found, where.path)

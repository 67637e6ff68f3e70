"""`build`: a Dockerfile into an image; and `explain`: what a build would do, doing nothing."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from strata.api.progress import BuildProgress, ProgressCallback, emitter
from strata.api.values import Image, Root, image_value, store_root
from strata.errors import ImageNotFound, InvalidArgument

if TYPE_CHECKING:
    from strata.builder.events import BuildOptions, BuildResult
    from strata.image.root import StoreRoot

__all__ = ["build", "explain"]


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
    options = _options(
        context, tags, dockerfile, build_args, target, no_cache, network, timestamp, runtime, labels
    )
    with store_root(root) as where:
        result = _build(where, options, progress)
        assert result is not None  # None only when explaining
        from strata.image.store import ImageStore

        found = ImageStore(where).by_manifest(result.manifest_digest)
        if found is None:
            raise ImageNotFound(f"No such image: {result.image_id}")
        return image_value(found, where.path)


def explain(
    context: str | os.PathLike[str] = ".",
    *,
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
) -> None:
    """What `build` with these arguments would do, building nothing: each step comes through
    ``progress`` as a ``step`` event and then ``plan-hit`` (from the cache, ``text`` saying
    which) or ``plan-miss`` (it would run, ``text`` saying why)."""
    options = _options(
        context, (), dockerfile, build_args, target, no_cache, network, timestamp, runtime, labels
    )
    from dataclasses import replace

    with store_root(root) as where:
        _build(where, replace(options, explain=True), progress)


def _options(
    context: str | os.PathLike[str],
    tags: Sequence[str],
    dockerfile: str | os.PathLike[str] | None,
    build_args: Mapping[str, str] | None,
    target: str | None,
    no_cache: bool,
    network: str,
    timestamp: int | None,
    runtime: str | None,
    labels: Mapping[str, str] | None,
) -> BuildOptions:
    from strata.builder.events import BuildOptions

    if timestamp is not None and timestamp < 0:
        raise InvalidArgument(f"invalid timestamp {timestamp}: before 1970")
    return BuildOptions(
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


def _build(
    where: StoreRoot, options: BuildOptions, progress: ProgressCallback | None
) -> BuildResult | None:
    from strata.builder.executor import Builder

    return Builder(where, BuildProgress(emitter(progress))).build(options)

"""What a build reports as it goes: the CLI turns these into Docker's classic output."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class BuildEvents(Protocol):
    """Called in order as the build runs; none may raise."""

    def context(self, size: int) -> None:
        """The build context's size, as Docker reports what it sends to its daemon."""

    def step(self, number: int, total: int, text: str) -> None:
        """A step starts: ``Step 1/5 : FROM debian:bookworm``."""

    def triggers(self, count: int) -> None:
        """The base image's ONBUILD triggers run next (``# Executing 1 build trigger``)."""

    def cache_hit(self) -> None:
        """The step's result comes from the cache."""

    def cache_miss(self, reason: str) -> None:
        """The step will run; ``reason`` says why the cache could not give it."""

    def running(self, container_id: str) -> None:
        """A RUN step's container starts."""

    def output(self, data: bytes) -> None:
        """Output of a RUN step's container, as it comes."""

    def removed(self, container_id: str) -> None:
        """A RUN step's container is gone."""

    def image(self, image_id: str) -> None:
        """The image of the step (``---> 1cac91e937bb``)."""

    def plan(self, number: int, text: str, hit: bool, reason: str) -> None:
        """``--explain``: what the step would do, without doing it."""


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """``strata image build``'s options."""

    context: Path
    dockerfile: Path | None = None  # default: <context>/Dockerfile
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    network: str = "host"
    epoch: int | None = None  # SOURCE_DATE_EPOCH / --timestamp: every time in the image
    runtime: str | None = None
    explain: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BuildResult:
    image_id: str  # the final image's ID (config digest)
    manifest_digest: str
    tags: tuple[str, ...]
    steps: int
    cached: int

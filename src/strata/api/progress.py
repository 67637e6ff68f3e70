"""What the long calls report as they go: one `Progress` event type, and the adapters that turn
the library's event protocols (a transfer's, a build's) into it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BuildProgress",
    "Progress",
    "ProgressCallback",
    "ProgressKind",
    "TransferProgress",
    "emitter",
]

ProgressKind = Literal[
    # pull, push: a message; a layer's status; a transfer starts; bytes moved; a layer is done;
    # and last, the digest a pull's name resolved to
    "header",
    "status",
    "start",
    "advance",
    "done",
    "pulled",
    # build: the context's size; a step; ONBUILD triggers; the cache's verdict; a RUN step's
    # container and its output; the step's image; an explained step (``explain=True``)
    "context",
    "step",
    "triggers",
    "cache-hit",
    "cache-miss",
    "running",
    "output",
    "removed",
    "image",
    "plan-hit",
    "plan-miss",
    # load: an image entered the store
    "loaded",
]


@dataclass(frozen=True, slots=True)
class Progress:
    """One thing a long call reports as it goes.

    ``id`` names what the event is about (a layer as Docker names it, a container, an image);
    ``current`` and ``total`` count bytes for a transfer (``advance``: bytes so far), a step's
    number and the step count for ``step``, the size for ``context``; ``text`` is the words
    (Docker's status, a step's instruction, a cache miss's reason, a loaded name); ``data`` is
    the raw bytes of an ``output`` event (``text`` is them decoded).
    """

    kind: ProgressKind
    id: str = ""
    current: int = 0
    total: int | None = None
    text: str = ""
    data: bytes = b""


ProgressCallback = Callable[[Progress], None]


def emitter(progress: ProgressCallback | None) -> ProgressCallback:
    return progress if progress is not None else (lambda event: None)


class TransferProgress:
    """A pull's or push's `TransferEvents` as `Progress` events; ``advance`` counts so far."""

    def __init__(self, emit: ProgressCallback) -> None:
        self._emit = emit
        self._lock = threading.Lock()
        self._moved: dict[str, int] = {}
        self._totals: dict[str, int | None] = {}

    def header(self, text: str) -> None:
        self._emit(Progress("header", text=text))

    def status(self, layer: str, text: str, *, final: bool = False) -> None:
        self._emit(Progress("done" if final else "status", layer, text=text))

    def start(self, layer: str, text: str, total: int | None) -> None:
        with self._lock:
            self._moved[layer] = 0
            self._totals[layer] = total
        self._emit(Progress("start", layer, 0, total, text))

    def advance(self, layer: str, count: int) -> None:
        with self._lock:
            moved = self._moved[layer] = self._moved.get(layer, 0) + count
            total = self._totals.get(layer)
        self._emit(Progress("advance", layer, moved, total))


class BuildProgress:
    """A build's `BuildEvents` as `Progress` events."""

    def __init__(self, emit: ProgressCallback) -> None:
        self._emit = emit

    def context(self, size: int) -> None:
        self._emit(Progress("context", current=size, total=size))

    def step(self, number: int, total: int, text: str) -> None:
        self._emit(Progress("step", current=number, total=total, text=text))

    def triggers(self, count: int) -> None:
        self._emit(Progress("triggers", current=count))

    def cache_hit(self) -> None:
        self._emit(Progress("cache-hit"))

    def cache_miss(self, reason: str) -> None:
        self._emit(Progress("cache-miss", text=reason))

    def running(self, container_id: str) -> None:
        self._emit(Progress("running", container_id))

    def output(self, data: bytes) -> None:
        self._emit(Progress("output", text=data.decode(errors="replace"), data=data))

    def removed(self, container_id: str) -> None:
        self._emit(Progress("removed", container_id))

    def image(self, image_id: str) -> None:
        self._emit(Progress("image", image_id))

    def plan(self, number: int, text: str, hit: bool, reason: str) -> None:
        del text  # the step event said it
        self._emit(Progress("plan-hit" if hit else "plan-miss", current=number, text=reason))

"""What a push or pull reports as it goes; the CLI turns it into Docker's output.

Events come from worker threads as well as the caller's: a listener must be thread-safe and
must not raise. Layers are named as Docker names them: a pull by the short blob digest, a push
by the short diff ID.
"""

from __future__ import annotations

from typing import Final, Protocol

__all__ = [
    "ALREADY_EXISTS",
    "DOWNLOADING",
    "DOWNLOAD_COMPLETE",
    "EXTRACTING",
    "LAYER_EXISTS",
    "PREPARING",
    "PULLING_FS_LAYER",
    "PULL_COMPLETE",
    "PUSHED",
    "PUSHING",
    "VERIFYING",
    "WAITING",
    "NullEvents",
    "TransferEvents",
    "mounted_from",
]

# Docker's words, so scripts reading either tool's output see the same lines.
PULLING_FS_LAYER: Final = "Pulling fs layer"
WAITING: Final = "Waiting"
DOWNLOADING: Final = "Downloading"
VERIFYING: Final = "Verifying Checksum"
DOWNLOAD_COMPLETE: Final = "Download complete"
EXTRACTING: Final = "Extracting"
PULL_COMPLETE: Final = "Pull complete"
ALREADY_EXISTS: Final = "Already exists"
PREPARING: Final = "Preparing"
PUSHING: Final = "Pushing"
PUSHED: Final = "Pushed"
LAYER_EXISTS: Final = "Layer already exists"


def mounted_from(repository: str) -> str:
    """Docker's status for a blob the registry mounted from another of its repositories."""
    return f"Mounted from {repository}"


class TransferEvents(Protocol):
    """Called as a push or pull goes; thread-safe, never raising."""

    def header(self, text: str) -> None:
        """A line before the layers: ``bookworm: Pulling from library/debian``."""

    def status(self, layer: str, text: str, *, final: bool = False) -> None:
        """A layer's state changes (``Waiting``, ``Pushed``...); ``final`` for its last one."""

    def start(self, layer: str, text: str, total: int | None) -> None:
        """Bytes start to move for ``layer`` (``Downloading``, ``Extracting``, ``Pushing``)."""

    def advance(self, layer: str, count: int) -> None:
        """``count`` more bytes of what `start` announced."""


class NullEvents:
    """Reports nothing (library callers that want no progress)."""

    def header(self, text: str) -> None:
        return

    def status(self, layer: str, text: str, *, final: bool = False) -> None:
        return

    def start(self, layer: str, text: str, total: int | None) -> None:
        return

    def advance(self, layer: str, count: int) -> None:
        return

"""Helpers for the apply and diff tests: layer tars built member by member, applied in memory."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from strata.layer.apply import ApplyStats, Whiteouts, apply_layer
from strata.layer.entry import (
    BLKTYPE,
    CHRTYPE,
    DIRTYPE,
    FIFOTYPE,
    LNKTYPE,
    REGTYPE,
    SYMTYPE,
    TarEntry,
)
from strata.layer.tarwriter import TarWriter

MTIME = 1_600_000_000
MODES: tuple[Whiteouts, ...] = ("delete", "overlay")
Member = TarEntry | tuple[TarEntry, bytes]


def _name(name: str | bytes) -> bytes:
    return os.fsencode(name)


def tar(*members: Member) -> bytes:
    """A layer tar of these members, in this order (no checks: hostile input is the point)."""
    out = io.BytesIO()
    with TarWriter(out) as writer:
        for member in members:
            entry, data = member if isinstance(member, tuple) else (member, b"")
            writer.add(entry, data)
        writer.finish()
    return out.getvalue()


def file(name: str | bytes, data: bytes = b"", mode: int = 0o644, **kw: Any) -> Member:
    entry = TarEntry(_name(name), REGTYPE, mode, 0, 0, MTIME, len(data))
    return _with(entry, kw), data


def directory(name: str | bytes, mode: int = 0o755, **kw: Any) -> TarEntry:
    return _with(TarEntry(_name(name), DIRTYPE, mode, 0, 0, MTIME), kw)


def symlink(name: str | bytes, target: str | bytes, **kw: Any) -> TarEntry:
    return _with(TarEntry(_name(name), SYMTYPE, 0o777, 0, 0, MTIME, 0, _name(target)), kw)


def hardlink(name: str | bytes, target: str | bytes, **kw: Any) -> TarEntry:
    return _with(TarEntry(_name(name), LNKTYPE, 0o644, 0, 0, MTIME, 0, _name(target)), kw)


def device(name: str | bytes, major: int, minor: int, *, block: bool = False) -> TarEntry:
    kind = BLKTYPE if block else CHRTYPE
    return TarEntry(_name(name), kind, 0o600, 0, 0, MTIME, 0, b"", major, minor)


def fifo(name: str | bytes, mode: int = 0o644) -> TarEntry:
    return TarEntry(_name(name), FIFOTYPE, mode, 0, 0, MTIME)


def _with(entry: TarEntry, fields: dict[str, Any]) -> TarEntry:
    return dataclasses.replace(entry, **fields) if fields else entry


def apply(data: bytes, target: Path, mode: Whiteouts, **kw: object) -> ApplyStats:
    """Apply a layer held in memory."""
    return apply_layer(io.BytesIO(data), target, whiteouts=mode, source="test layer", **kw)  # type: ignore[arg-type]


@contextmanager
def overlay(lowers: list[Path], upper: Path, work: Path, merged: Path) -> Iterator[Path]:
    """A real overlay mount (the first lower is the top one), unmounted on the way out."""
    upper.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    merged.mkdir(parents=True, exist_ok=True)
    options = (
        f"lowerdir={':'.join(map(str, lowers))},upperdir={upper},workdir={work},"
        "redirect_dir=off,metacopy=off,index=off"
    )
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", str(merged)], check=True)

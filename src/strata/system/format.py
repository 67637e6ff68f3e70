"""Sizes in problem lines, in the units Docker prints (decimal: kB, MB, GB)."""

from __future__ import annotations

__all__ = ["size_text"]


def size_text(size: int) -> str:
    """``size`` bytes as ``12.3MB``."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.3g}{unit}"
        value /= 1000
    raise AssertionError("unreachable")

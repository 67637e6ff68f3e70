"""What a check finds: one problem, printable on one line, with the repair it allows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Problem", "Repair"]

Repair = Callable[[], str]
"""Fixes one problem and says what it did; raises `StrataError` saying why it could not."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: ``what`` kind of object, ``where`` it is, ``why`` it is wrong.

    ``repair`` is None when strata cannot fix it itself; ``advice`` then says what the user can do.
    """

    what: str
    where: str
    why: str
    repair: Repair | None = field(default=None, compare=False)
    advice: str = ""

    def line(self) -> str:
        """The problem as ``system check`` prints it."""
        return f"{self.what} {self.where}: {self.why}"

"""Store-wide maintenance: ``system check`` (is the store what DESIGN.md promises?), its repairs,
and the disk usage of everything under the root, debris included.

It reads every other package's state and changes it only through their own operations
(snapshotter, content store, container service), so that a repair is as safe against a command
running at the same time as that command's own cleanup is.
"""

from strata.system.check import CheckReport, check
from strata.system.problem import Problem

__all__ = ["CheckReport", "Problem", "check"]

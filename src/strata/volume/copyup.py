"""Copy-up: an empty volume, mounted where the image has content, is first filled with it.

Docker does this on every mount of an empty volume (``nocopy`` skips it): owners, modes, times,
extended attributes and symlinks kept, hard links kept as links. GNU ``cp -a`` does exactly
that and never follows a symlink in the source; the caller resolves the source directory inside
the container's root, so an image's symlink cannot point the copy at the host.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from strata.errors import ToolError


def is_empty(directory: Path) -> bool:
    with os.scandir(directory) as entries:
        return next(entries, None) is None


def copy_into_empty(source: Path, target: Path) -> bool:
    """Copy ``source``'s content (and its own owner and mode) into ``target`` if ``target`` is
    empty; whether it copied."""
    if not is_empty(target):
        return False
    proc = subprocess.run(
        ["cp", "-a", "--", f"{source}/.", f"{target}/"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
        raise ToolError(f"copying {source} into volume {target.parent.name}: {detail}")
    return True

"""Where commands write archives: a file written beside its target and renamed, or stdout."""

from __future__ import annotations

import contextlib
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from strata.errors import InvalidArgument
from strata.store.space import is_no_space, no_space


@contextlib.contextmanager
def archive_output(output: str | None) -> Iterator[BinaryIO]:
    """Yield the stream an archive goes to: ``output``, or stdout when it is None.

    A file is written beside its target and renamed into place only when complete, so a
    failed command never leaves a partial archive; stdout must not be a terminal, as Docker.
    """
    if output is None:
        if sys.stdout.isatty():
            raise InvalidArgument(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect"
            )
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(output)
    if _is_special(target):
        # A device, FIFO or socket (`-o /dev/stdout`, `-o /dev/full`, a named pipe) is written in
        # place: renaming a temporary file over it would replace the device with a plain file.
        try:
            with open(target, "wb") as special:
                yield special
        except OSError as exc:
            if is_no_space(exc):
                raise no_space(f"writing {target}", exc) from None
            raise
        return
    from strata.api.stored import replacing

    with replacing(target) as out:
        yield out


def _is_special(target: Path) -> bool:
    """Whether ``target`` exists and is something other than a regular file or a directory."""
    try:
        mode = target.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))

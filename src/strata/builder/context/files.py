"""Reading the two files a build reads itself: the Dockerfile and ``.dockerignore``.

Both come from the build context, which may be hostile: a ``Dockerfile`` that is a symlink to
``/etc/shadow`` must not be read (its first line would appear in the parse error), and a FIFO
must not be opened for a blocking read (Docker's CLI hangs on one for ever). So:

- a file named inside the context must resolve, symlinks followed, to a path inside the context
  (a symlink to another file of the context is fine: Docker builds with it);
- only a regular file is read: it is opened non-blocking and checked with ``fstat`` before any
  read, so a FIFO or a device is refused without waiting.

A Dockerfile given with ``-f`` outside the context is the user's own choice and is read where it
is, but it too must be a regular file. Errors never show anything of a symlink's target.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from strata.errors import BuildError


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def read_build_file(path: Path, context: Path, what: str) -> bytes | None:
    """The bytes of ``path`` (None if it does not exist), read as the module docstring says.

    ``what`` names the file in errors (``Dockerfile /ctx/Dockerfile``, ``.dockerignore``).
    """
    absolute = os.path.abspath(path)
    root = os.path.abspath(context)
    target = absolute
    if _inside(absolute, root):
        target = os.path.realpath(path)
        if not _inside(target, os.path.realpath(root)):
            raise BuildError(f"cannot read {what}: it is a symlink out of the build context")
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BuildError(f"cannot read {what}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise BuildError(f"cannot read {what}: is a directory")
        if not stat.S_ISREG(mode):
            raise BuildError(f"cannot read {what}: not a regular file")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise BuildError(f"cannot read {what}: {exc.strerror}") from None
    finally:
        os.close(fd)

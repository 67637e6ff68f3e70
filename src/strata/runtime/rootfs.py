"""Looking into a container's root filesystem from the host without ever leaving it.

An image is untrusted: its ``/etc/passwd`` may be a symlink to ``/etc/shadow`` of the host, its
``/proc`` a symlink to ``/``. Every path is therefore resolved component by component with
symlinks interpreted relative to the container root (as ``openat2(RESOLVE_IN_ROOT)`` does), and
``..`` stops at the root.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from pathlib import Path

from strata.errors import CommandNotExecutable, CommandNotFound, UnsafePath

MAX_SYMLINKS = 40


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def resolve_components(root: Path, path: str) -> list[str]:
    """The components of ``path`` below ``root`` once every symlink is followed inside ``root``.

    Components past the first missing one are kept literally (they cannot be symlinks).
    """
    base = os.fspath(root)
    pending = deque(_components(path))
    resolved: list[str] = []
    hops = 0
    while pending:
        name = pending.popleft()
        if name == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(base, *resolved, name)
        try:
            info = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(name)
            continue
        except OSError as exc:
            raise UnsafePath(f"{path} in {root}: {exc.strerror}") from None
        if not stat.S_ISLNK(info.st_mode):
            resolved.append(name)
            continue
        hops += 1
        if hops > MAX_SYMLINKS:
            raise UnsafePath(f"{path} in {root}: too many levels of symbolic links")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending.extendleft(reversed(_components(target)))
    return resolved


def resolve(root: Path, path: str) -> Path:
    """The host path that ``path`` names inside the container whose root is ``root``."""
    return root.joinpath(*resolve_components(root, path))


def read_file(root: Path, path: str, *, limit: int = 4 << 20) -> bytes | None:
    """The bytes of a regular file inside ``root``, or None if it is missing or not a file."""
    host = resolve(root, path)
    try:
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > limit:
            raise UnsafePath(f"{path} in {root}: larger than {limit} bytes")
        chunks: list[bytes] = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _under(components: list[str], prefixes: tuple[tuple[str, ...], ...]) -> bool:
    return any(tuple(components[: len(prefix)]) == prefix for prefix in prefixes)


def find_executable(
    root: Path,
    name: str,
    *,
    path_env: str,
    cwd: str = "/",
    opaque: tuple[str, ...] = (),
) -> str | None:
    """Look ``name`` up as the OCI runtime will (Go's ``exec.LookPath`` on the container's PATH).

    Returns the path found inside the container, or None when the answer lies under one of the
    ``opaque`` mount destinations, which the host cannot see before the container starts.
    Raises CommandNotFound (exit 127) or CommandNotExecutable (exit 126) with Docker's message.
    """
    skip = tuple(tuple(_components(dest)) for dest in opaque)

    def probe(candidate: str) -> str | None:
        absolute = candidate if candidate.startswith("/") else f"{cwd.rstrip('/')}/{candidate}"
        parts = resolve_components(root, absolute)
        if _under(parts, skip):
            return "opaque"
        try:
            info = os.stat(root.joinpath(*parts))
        except OSError:
            return "missing"
        if stat.S_ISDIR(info.st_mode) or not info.st_mode & 0o111:
            return "denied"
        return None

    if "/" in name:
        outcome = probe(name)
        if outcome == "opaque":
            return None
        if outcome == "missing":
            raise CommandNotFound(f'exec: "{name}": stat {name}: no such file or directory')
        if outcome == "denied":
            raise CommandNotExecutable(f'exec: "{name}": permission denied')
        return name
    for directory in path_env.split(":") if path_env else []:
        candidate = f"{directory or '.'}/{name}"
        outcome = probe(candidate)
        if outcome is None:
            return candidate
        if outcome == "opaque":
            return None
    raise CommandNotFound(f'exec: "{name}": executable file not found in $PATH')

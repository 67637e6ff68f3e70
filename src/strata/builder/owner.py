"""``COPY --chown`` and ``--chmod``: who owns what a step writes, and with which mode.

``--chown=user[:group]`` follows Docker's legacy builder (``parseChownFlag``): each part is a
number or a name looked up in the image's ``/etc/passwd`` / ``/etc/group``, and a lone user
means the same string for the group (``--chown=app`` is ``app:app``, ``--chown=1000`` is
``1000:1000``). The files are read with `strata.runtime.rootfs.read_file`, so a symlinked
``/etc/passwd`` in the image cannot make us read the host's.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from strata.errors import BuildError
from strata.runtime.rootfs import read_file

MAX_ID: Final = 2**32 - 2
_MAPPING_ERROR: Final = "unable to convert uid/gid chown string to host mapping"


@dataclass(frozen=True, slots=True)
class Owner:
    """Numeric owner of the files a step writes."""

    uid: int
    gid: int

    def __str__(self) -> str:
        return f"{self.uid}:{self.gid}"


ROOT: Final = Owner(0, 0)


def chowned_mode(mode: int) -> int:
    """A regular file's permission bits after Docker's chown of a copied file.

    Docker's builder copies, then chowns each file to the step's owner (``fixPermissions``),
    and Linux's chown(2) clears set-user-ID, and set-group-ID where group execute is set, even
    for root. A ``COPY --from`` without ``--chown`` chowns nothing and keeps both bits.
    """
    if mode & stat.S_ISUID:
        mode &= ~stat.S_ISUID
    if mode & stat.S_ISGID and mode & stat.S_IXGRP:
        mode &= ~stat.S_ISGID
    return mode


def _lookup(rootfs: Path | None, path: str, name: str, id_field: int) -> int | None:
    raw = read_file(rootfs, path) if rootfs is not None else None
    if raw is None:
        return None
    for line in raw.decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) > id_field and fields[0] == name and fields[id_field].isdigit():
            return int(fields[id_field])
    return None


def _number(text: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > MAX_ID:
        raise BuildError(f"{_MAPPING_ERROR}: id {text} out of range")
    return value


def resolve_chown(rootfs: Path | None, spec: str) -> Owner:
    """The owner ``--chown=spec`` names, with names looked up inside ``rootfs``.

    ``rootfs`` may be None (a ``scratch`` stage): only numbers resolve then.
    """
    parts = spec.split(":")
    if len(parts) > 2:
        raise BuildError(f"invalid chown string format: {spec}")
    user = parts[0]
    group = parts[1] if len(parts) == 2 else parts[0]
    uid = _number(user)
    if uid is None:
        uid = _lookup(rootfs, "/etc/passwd", user, 2)
        if uid is None:
            reason = f"can't find uid for user {user}: no such user: {user}"
            raise BuildError(f"{_MAPPING_ERROR}: {reason}")
    gid = _number(group)
    if gid is None:
        gid = _lookup(rootfs, "/etc/group", group, 2)
        if gid is None:
            reason = f"can't find gid for group {group}: no such group: {group}"
            raise BuildError(f"{_MAPPING_ERROR}: {reason}")
    return Owner(uid, gid)


def parse_chmod(text: str) -> int:
    """The mode of ``--chmod=text``: octal digits, at most 07777."""
    if not text or any(c not in "01234567" for c in text) or int(text, 8) > 0o7777:
        raise BuildError(f"invalid chmod parameter: {text!r}: expected an octal mode like 0755")
    return int(text, 8)

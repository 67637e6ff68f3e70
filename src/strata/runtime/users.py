"""Users and groups named the way ``docker run -u`` takes them, resolved inside the image.

``user[:group]`` where each part is a name or a number. Names are looked up in the container's
``/etc/passwd`` and ``/etc/group`` (read with :mod:`strata.runtime.rootfs`, so a symlinked file
can never make us read the host's); numbers need no files. The rules follow runc's
``GetExecUser``, which is what Docker uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from strata.errors import InvalidArgument
from strata.runtime.rootfs import read_file

MAX_ID = 2**31 - 1


@dataclass(frozen=True, slots=True)
class ExecUser:
    """The identity the container's process runs as."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


@dataclass(frozen=True, slots=True)
class _Passwd:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True, slots=True)
class _Group:
    name: str
    gid: int
    members: tuple[str, ...]


def _lines(raw: bytes | None) -> list[list[str]]:
    if raw is None:
        return []
    text = raw.decode("utf-8", errors="replace")
    return [
        line.split(":")
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _passwd(rootfs: Path) -> list[_Passwd]:
    entries = []
    for fields in _lines(read_file(rootfs, "/etc/passwd")):
        if len(fields) < 7 or not fields[2].isdigit() or not fields[3].isdigit():
            continue  # a malformed line names nobody, as in runc
        entries.append(_Passwd(fields[0], int(fields[2]), int(fields[3]), fields[5]))
    return entries


def _groups(rootfs: Path) -> list[_Group]:
    entries = []
    for fields in _lines(read_file(rootfs, "/etc/group")):
        if len(fields) < 4 or not fields[2].isdigit():
            continue
        members = tuple(m for m in fields[3].split(",") if m)
        entries.append(_Group(fields[0], int(fields[2]), members))
    return entries


def _number(text: str, what: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > MAX_ID:
        raise InvalidArgument(f"invalid {what} {text}: out of range (0-{MAX_ID})")
    return value


def resolve_user(rootfs: Path, spec: str) -> ExecUser:
    """Resolve ``user[:group]`` (names or numbers; empty means root) inside ``rootfs``."""
    user_part, _, group_part = spec.partition(":")
    if ":" in group_part:
        raise InvalidArgument(f"invalid user {spec!r}: expected user[:group]")
    user_part = user_part or "0"
    uid_number = _number(user_part, "user")
    uid, gid, home = uid_number if uid_number is not None else 0, 0, "/"
    matched: _Passwd | None = None
    for entry in _passwd(rootfs):
        if entry.name == user_part or (uid_number is not None and entry.uid == uid_number):
            matched = entry
            break
    if matched is not None:
        uid, gid, home = matched.uid, matched.gid, matched.home or "/"
    elif uid_number is None:
        raise InvalidArgument(
            f"unable to find user {user_part}: no matching entries in passwd file"
        )

    supplementary: list[int] = []
    if group_part:
        gid_number = _number(group_part, "group")
        found = next(
            (g for g in _groups(rootfs) if g.name == group_part or g.gid == gid_number), None
        )
        if found is not None:
            gid = found.gid
        elif gid_number is not None:
            gid = gid_number
        else:
            raise InvalidArgument(
                f"unable to find group {group_part}: no matching entries in group file"
            )
    elif matched is not None:
        supplementary = [g.gid for g in _groups(rootfs) if matched.name in g.members]
    additional = tuple(dict.fromkeys([gid, *supplementary]))
    return ExecUser(uid=uid, gid=gid, additional_gids=additional, home=home)

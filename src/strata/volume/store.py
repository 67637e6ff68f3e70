"""The volume records and their directories: create, look up, list, remove, prune.

Crash safety: a volume's directory is made, and its row written, inside one write transaction
(``BEGIN IMMEDIATE``), so two commands never race one name; a kill between the ``mkdir`` and the
commit leaves a directory without a row, which `orphans` lists for ``system check`` and
`remove_orphan` clears. A removal renames the directory to ``volumes/.removing-<hex>`` in the
transaction that deletes the row, then deletes it after the commit: a kill leaves only that
trash, which the next removal (or a repair) deletes. No volume name starts with a dot.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from strata.errors import Conflict, InvalidArgument, VolumeNotFound
from strata.store.db import Database

VOLUMES = "volumes"
DATA = "_data"
TRASH_PREFIX = ".removing-"
DRIVER = "local"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
# The local driver's options in Docker: a mount(8) of `device` with `type` and `o`. strata's
# volumes are plain directories, so these are refused rather than silently ignored.
_MOUNT_OPTIONS = ("type", "device", "o")


@dataclass(frozen=True, slots=True)
class Volume:
    """One volume as recorded."""

    name: str
    mountpoint: Path  # the host directory containers see (``.../volumes/<name>/_data``)
    driver: str = DRIVER
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    anonymous: bool = False  # made for a container (`-v /path`, an image's VOLUME)
    created: str = ""  # Docker's CreatedAt: RFC 3339, seconds

    def document(self) -> dict[str, object]:
        """``docker volume inspect``'s object (Docker 20.10: null for no labels or options)."""
        return {
            "CreatedAt": self.created,
            "Driver": self.driver,
            "Labels": dict(sorted(self.labels.items())) or None,
            "Mountpoint": str(self.mountpoint),
            "Name": self.name,
            "Options": dict(sorted(self.options.items())) or None,
            "Scope": "local",
        }


def check_name(name: str) -> None:
    """Docker's rule for a local volume's name (``create NAME: ...`` otherwise)."""
    if len(name) < 2 and _NAME.fullmatch(name + "x"):
        raise InvalidArgument(
            f"create {name}: volume name is too short, names should be at least two"
            " alphanumeric characters"
        )
    if not _NAME.fullmatch(name):
        raise InvalidArgument(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only'
            ' "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host'
            " directory, use absolute path"
        )


def check_driver(name: str, driver: str, options: Mapping[str, str]) -> None:
    """Only the local driver, without options: one line naming what is refused."""
    if driver != DRIVER:
        raise InvalidArgument(
            f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found'
        )
    for key in options:
        if key not in _MOUNT_OPTIONS:
            raise InvalidArgument(f'create {name}: invalid option: "{key}"')
        raise InvalidArgument(
            f'create {name}: option "{key}" is not supported: strata\'s volumes are plain'
            " directories (no mount of a device)"
        )


def new_name() -> str:
    """An anonymous volume's name, as Docker makes them: 64 hex digits."""
    return secrets.token_hex(32)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def volumes_dir(root: Path) -> Path:
    return root / VOLUMES


def data_dir(root: Path, name: str) -> Path:
    """Where the volume's content lives on the host."""
    return root / VOLUMES / name / DATA


# -- inside a caller's transaction (the runtime records a container's volumes with it) ----------


def ensure_in(
    conn: sqlite3.Connection,
    root: Path,
    name: str,
    *,
    anonymous: bool = False,
    labels: Mapping[str, str] | None = None,
) -> bool:
    """Make the volume ``name`` unless it exists; whether this call made it.

    Its directory is made here, inside the transaction: if the transaction is rolled back the
    directory stays without a row, and the caller clears it with `VolumeStore.discard_unrecorded`.
    """
    check_name(name)
    if conn.execute("SELECT 1 FROM volumes WHERE name = ?", (name,)).fetchone() is not None:
        return False
    top = root / VOLUMES
    top.mkdir(mode=0o700, exist_ok=True)
    (top / name).mkdir(mode=0o700, exist_ok=True)
    (top / name / DATA).mkdir(mode=0o755, exist_ok=True)
    conn.execute(
        "INSERT INTO volumes (name, driver, labels, options, anonymous, created)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (name, DRIVER, json.dumps(dict(labels or {})), "{}", int(anonymous), _now()),
    )
    return True


def exists_in(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM volumes WHERE name = ?", (name,)).fetchone() is not None


def use_in(conn: sqlite3.Connection, name: str, container_id: str) -> None:
    """Record that ``container_id`` uses ``name`` (which must exist: VolumeNotFound)."""
    if not exists_in(conn, name):
        raise VolumeNotFound(f"get {name}: no such volume")
    conn.execute(
        "INSERT OR IGNORE INTO volume_users (volume, container) VALUES (?, ?)",
        (name, container_id),
    )


def release_in(conn: sqlite3.Connection, container_id: str) -> list[str]:
    """Forget every use of ``container_id``; the volumes it used."""
    names = [
        r[0]
        for r in conn.execute(
            "SELECT volume FROM volume_users WHERE container = ? ORDER BY volume", (container_id,)
        )
    ]
    conn.execute("DELETE FROM volume_users WHERE container = ?", (container_id,))
    return names


def _row(conn: sqlite3.Connection, root: Path, name: str) -> Volume | None:
    row = conn.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
    return _from_row(root, row) if row is not None else None


def _from_row(root: Path, row: sqlite3.Row) -> Volume:
    return Volume(
        name=row["name"],
        mountpoint=data_dir(root, row["name"]),
        driver=row["driver"],
        labels=json.loads(row["labels"]),
        options=json.loads(row["options"]),
        anonymous=bool(row["anonymous"]),
        created=row["created"],
    )


def _users(conn: sqlite3.Connection, name: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT container FROM volume_users WHERE volume = ? ORDER BY container", (name,)
        )
    ]


class VolumeStore:
    """The volumes of one store root."""

    def __init__(self, root: Path, db: Database) -> None:
        self.root = root
        self.db = db

    def create(
        self,
        name: str | None = None,
        *,
        driver: str = DRIVER,
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
    ) -> Volume:
        """``docker volume create``: a new volume, or the existing one of that name (as Docker)."""
        name = name or new_name()
        check_driver(name, driver, options or {})  # Docker looks up the driver first
        check_name(name)
        try:
            with self.db.transaction(what=f"volume {name}") as conn:
                ensure_in(conn, self.root, name, labels=labels)
        except BaseException:
            self.discard_unrecorded([name])  # only a directory without its row goes
            raise
        return self.get(name)

    def lookup(self, name: str) -> Volume | None:
        with self.db.read() as conn:
            return _row(conn, self.root, name)

    def get(self, name: str) -> Volume:
        found = self.lookup(name)
        if found is None:
            raise VolumeNotFound(f"get {name}: no such volume")
        return found

    def all(self) -> list[Volume]:
        """Every volume, by name (as ``docker volume ls`` lists them)."""
        with self.db.read() as conn:
            rows = conn.execute("SELECT * FROM volumes ORDER BY name").fetchall()
        return [_from_row(self.root, r) for r in rows]

    def users(self, name: str) -> list[str]:
        """The IDs of the containers using ``name``."""
        with self.db.read() as conn:
            return _users(conn, name)

    def used(self) -> set[str]:
        """The names of the volumes some container uses."""
        with self.db.read() as conn:
            return {r[0] for r in conn.execute("SELECT DISTINCT volume FROM volume_users")}

    def all_uses(self) -> list[tuple[str, str]]:
        """Every (volume, container) use recorded."""
        with self.db.read() as conn:
            rows = conn.execute("SELECT volume, container FROM volume_users ORDER BY volume")
            return [(r[0], r[1]) for r in rows]

    def drop_use(self, name: str, container_id: str) -> None:
        """Forget one use (``system check --repair``: a use by a container that is gone)."""
        with self.db.transaction(reclaim=True, what=f"volume {name}") as conn:
            conn.execute(
                "DELETE FROM volume_users WHERE volume = ? AND container = ?", (name, container_id)
            )

    def remove(self, name: str, *, force: bool = False) -> bool:
        """``docker volume rm``: Conflict while a container uses it (even with ``force``, as
        Docker); a missing volume is VolumeNotFound, or nothing with ``force``. Whether it went."""
        trash = self._trash()
        with self.db.transaction(reclaim=True, what=f"removing volume {name}") as conn:
            if _row(conn, self.root, name) is None:
                if force:
                    return False
                raise VolumeNotFound(f"get {name}: no such volume")
            users = _users(conn, name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            self._to_trash(name, trash)
            conn.execute("DELETE FROM volumes WHERE name = ?", (name,))
        self.empty_trash()
        return True

    def remove_unused(self, names: Iterable[str]) -> list[str]:
        """Remove those of ``names`` no container uses (``rm -v``'s anonymous volumes, which
        another container may share through ``--volumes-from``); the names removed."""
        removed = []
        for name in names:
            with contextlib.suppress(Conflict, VolumeNotFound):
                if self.remove(name):
                    removed.append(name)
        return removed

    def _trash(self) -> Path:
        return self.root / VOLUMES / f"{TRASH_PREFIX}{secrets.token_hex(8)}"

    def _to_trash(self, name: str, trash: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.root / VOLUMES / name, trash)

    def empty_trash(self) -> None:
        """Delete what removals renamed away (a killed removal's too)."""
        top = self.root / VOLUMES
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(top):
                if entry.name.startswith(TRASH_PREFIX):
                    shutil.rmtree(entry.path, ignore_errors=True)

    def discard_unrecorded(self, names: Iterable[str]) -> None:
        """Remove the directories of ``names`` that have no row (a failed create's), judged in
        a write transaction so that a concurrent create of the same name is not undone."""
        with self.db.transaction(reclaim=True, what="volume cleanup") as conn:
            for name in names:
                if not exists_in(conn, name):
                    self._to_trash(name, self._trash())
        self.empty_trash()

    def orphans(self) -> list[str]:
        """Entries under ``volumes/`` without a row: a killed create's directory, a killed
        removal's trash."""
        top = self.root / VOLUMES
        try:
            entries = sorted(os.listdir(top))
        except FileNotFoundError:
            return []
        with self.db.read() as conn:
            known = {r[0] for r in conn.execute("SELECT name FROM volumes")}
        return [e for e in entries if e not in known]

    def clear_debris(self) -> None:
        """Remove what killed creates and removals left (see the module docstring). Safe at any
        time: a directory without its row is judged under the write lock, which a create holds
        from its ``mkdir`` to its commit. Costs a listing of ``volumes/`` and one read."""
        for entry in self.orphans():
            self.remove_orphan(entry)

    def missing(self) -> list[str]:
        """Rows whose directory is gone."""
        return [v.name for v in self.all() if not v.mountpoint.is_dir()]

    def remove_orphan(self, entry: str) -> bool:
        """Clear one entry `orphans` listed (re-checked under the write lock); whether it went."""
        if entry.startswith(TRASH_PREFIX):
            shutil.rmtree(self.root / VOLUMES / entry, ignore_errors=True)
            return True
        with self.db.transaction(reclaim=True, what="volume cleanup") as conn:
            if exists_in(conn, entry):
                return False
            self._to_trash(entry, self._trash())
        self.empty_trash()
        return True


def volume_size(path: Path) -> int:
    """The bytes of a volume's files and symlinks, each inode once (Docker's figure)."""
    total, seen = 0, set()
    for top, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            try:
                info = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) in seen or stat.S_ISDIR(info.st_mode):
                continue
            seen.add((info.st_dev, info.st_ino))
            total += info.st_size
    return total


def prune_volumes(
    store: VolumeStore, keep: Callable[[Volume], bool] = lambda v: False
) -> tuple[list[str], int]:
    """``docker volume prune`` (20.10): every volume no container uses, named or anonymous,
    unless ``keep`` says so (the filters); the names removed and the bytes they held.

    The seam ``system prune --volumes`` calls too."""
    removed, reclaimed = [], 0
    used = store.used()
    for volume in store.all():
        if volume.name in used or keep(volume):
            continue
        size = volume_size(volume.mountpoint)
        with contextlib.suppress(Conflict, VolumeNotFound):  # taken meanwhile, or gone
            if store.remove(volume.name):
                removed.append(volume.name)
                reclaimed += size
    return removed, reclaimed

"""The ``snapshots`` table (migration 2): one row per snapshot, read and written inside the
caller's transaction. SQLite errors become `StoreError`; bad keys and labels `InvalidArgument`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from strata.errors import InvalidArgument, StoreError
from strata.snapshot.model import Kind, SnapshotInfo

__all__ = [
    "Row",
    "check_key",
    "check_labels",
    "children",
    "count_children",
    "delete",
    "get",
    "ids",
    "insert",
    "is_committed",
    "lineage",
    "next_id",
    "now",
    "rename_committed",
    "rows",
]

MAX_KEY: Final = 4096
MAX_LABEL: Final = 4096
_COLUMNS: Final = "key, id, parent, kind, created, labels"
_KINDS: Final = {str(kind): kind for kind in Kind}
_NO_LABELS: Final[Mapping[str, str]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Row:
    """A row of ``snapshots``; ``id`` names the directory ``snapshots/<id>``."""

    key: str
    id: int
    parent: str | None
    kind: Kind
    created: str
    labels: Mapping[str, str]

    def info(self) -> SnapshotInfo:
        """The public view of the row."""
        return SnapshotInfo(self.key, self.parent, self.kind, self.created, self.labels)


def now() -> str:
    """The current time as strata stores it: UTC ISO 8601 with microseconds and a ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_key(key: object, what: str = "snapshot key") -> str:
    """``key`` if it can name a snapshot: a non-empty string without control characters."""
    if not isinstance(key, str) or not key:
        raise InvalidArgument(f"invalid {what} {key!r}: must be a non-empty string")
    if len(key) > MAX_KEY:
        raise InvalidArgument(f"invalid {what} {key[:40]!r}...: longer than {MAX_KEY} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise InvalidArgument(f"invalid {what} {key!r}: control characters are not allowed")
    return key


def check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """A plain copy of ``labels`` once every name and value is a string of sane size."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidArgument(f"invalid snapshot labels {labels!r}: must be a mapping")
    out: dict[str, str] = {}
    for name, value in labels.items():
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise InvalidArgument(f"invalid snapshot label {name!r}={value!r}: must be strings")
        if len(name) + len(value) > MAX_LABEL:
            raise InvalidArgument(f"invalid snapshot label {name!r}: over {MAX_LABEL} characters")
        out[name] = value
    return out


def _run(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
    try:
        return conn.execute(sql, params)
    except sqlite3.Error as err:
        raise StoreError(f"snapshot metadata: {err}") from None


def _labels(text: object) -> Mapping[str, str]:
    if text == "{}":
        return _NO_LABELS  # the common case, and lineages of 100+ rows are read per mount
    labels = json.loads(str(text))
    if not isinstance(labels, dict):
        raise ValueError("labels are not an object")
    return MappingProxyType({str(k): str(v) for k, v in labels.items()})


def _row(raw: sqlite3.Row) -> Row:
    try:
        return Row(
            key=str(raw[0]),
            id=int(raw[1]),
            parent=None if raw[2] is None else str(raw[2]),
            kind=_KINDS[raw[3]],
            created=str(raw[4]),
            labels=_labels(raw[5]),
        )
    except KeyError:
        raise StoreError(f"snapshot {raw[0]!r}: corrupt metadata row: kind {raw[3]!r}") from None
    except (ValueError, TypeError) as err:
        raise StoreError(f"snapshot {raw[0]!r}: corrupt metadata row: {err}") from None


def get(conn: sqlite3.Connection, key: str) -> Row | None:
    """The row of ``key``, or None."""
    raw = _run(conn, f"SELECT {_COLUMNS} FROM snapshots WHERE key = ?", (key,)).fetchone()
    return None if raw is None else _row(raw)


def is_committed(conn: sqlite3.Connection, key: str) -> bool:
    """Whether ``key`` is a committed snapshot: one indexed query, for ``run``'s fast path
    (`strata.image.quick`), which must not open a snapshotter to ask."""
    found = _run(
        conn, "SELECT 1 FROM snapshots WHERE key = ? AND kind = ?", (key, str(Kind.COMMITTED))
    ).fetchone()
    return found is not None


def lineage(conn: sqlite3.Connection, key: str) -> list[Row]:
    """``key``'s row followed by its parent's, grandparent's... (empty if ``key`` is unknown)."""
    raws = _run(
        conn,
        "WITH RECURSIVE chain (key, depth) AS ("
        " SELECT key, 0 FROM snapshots WHERE key = ?"
        " UNION ALL"
        " SELECT s.parent, c.depth + 1 FROM snapshots AS s JOIN chain AS c ON s.key = c.key"
        " WHERE s.parent IS NOT NULL)"
        f" SELECT {', '.join('s.' + c for c in _COLUMNS.split(', '))}"
        " FROM chain AS c JOIN snapshots AS s ON s.key = c.key ORDER BY c.depth",
        (key,),
    ).fetchall()
    return [_row(raw) for raw in raws]


def children(conn: sqlite3.Connection, key: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` keys of snapshots whose parent is ``key``."""
    rows = _run(
        conn, "SELECT key FROM snapshots WHERE parent = ? ORDER BY key LIMIT ?", (key, limit)
    )
    return [str(r[0]) for r in rows]


def count_children(conn: sqlite3.Connection, key: str) -> int:
    """How many snapshots have ``key`` as their parent."""
    return int(_run(conn, "SELECT count(*) FROM snapshots WHERE parent = ?", (key,)).fetchone()[0])


def rows(conn: sqlite3.Connection) -> list[Row]:
    """Every row, ordered by key."""
    return [_row(r) for r in _run(conn, f"SELECT {_COLUMNS} FROM snapshots ORDER BY key")]


def ids(conn: sqlite3.Connection) -> set[int]:
    """The directory ids in use."""
    return {int(r[0]) for r in _run(conn, "SELECT id FROM snapshots")}


def next_id(conn: sqlite3.Connection) -> int:
    """An id no row uses (call inside the write transaction that inserts it)."""
    return int(_run(conn, "SELECT COALESCE(MAX(id), 0) + 1 FROM snapshots").fetchone()[0])


def insert(conn: sqlite3.Connection, row: Row) -> None:
    """Add ``row``."""
    _run(
        conn,
        f"INSERT INTO snapshots ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        (
            row.key,
            row.id,
            row.parent,
            str(row.kind),
            row.created,
            json.dumps(dict(row.labels), sort_keys=True, separators=(",", ":")),
        ),
    )


def rename_committed(
    conn: sqlite3.Connection, key: str, name: str, created: str, labels: Mapping[str, str]
) -> None:
    """Turn the active ``key`` into the committed ``name``."""
    _run(
        conn,
        "UPDATE snapshots SET key = ?, kind = ?, created = ?, labels = ? WHERE key = ?",
        (
            name,
            str(Kind.COMMITTED),
            created,
            json.dumps(dict(labels), sort_keys=True, separators=(",", ":")),
            key,
        ),
    )


def delete(conn: sqlite3.Connection, key: str) -> None:
    """Drop ``key``'s row."""
    _run(conn, "DELETE FROM snapshots WHERE key = ?", (key,))

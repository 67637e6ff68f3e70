"""Leases: what a running command is using, so that gc does not collect it from under it.

GC protocol: a writer adds a resource (a blob digest, a snapshot key) to its lease BEFORE it checks
for or writes that resource, and each add is its own committed transaction; gc expires old leases
and marks and sweeps inside one `Database.transaction`. The two never interleave, so gc either
sees the lease or finishes before the writer looks. A crashed command's lease expires after its
time to live.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from types import TracebackType
from typing import Final

from strata.errors import InvalidArgument, StoreError
from strata.store.db import Database

__all__ = ["DEFAULT_TTL", "Lease", "expire", "held", "lease"]

DEFAULT_TTL: Final = 86400.0


class Lease:
    """A lease on resources, released on leaving its ``with`` block. Obtain one from `lease`."""

    def __init__(self, db: Database, lease_id: str, expires: float) -> None:
        self._db = db
        self._id = lease_id
        self._expires = expires

    @property
    def id(self) -> str:
        """The lease's ID."""
        return self._id

    @property
    def expires(self) -> float:
        """When the lease stops protecting its resources (seconds since the epoch)."""
        return self._expires

    def add(self, kind: str, key: str) -> None:
        """Hold ``key`` of ``kind`` (e.g. ``"blob"``, a digest); committed at once, so gc sees it.

        `StoreError` if the lease has expired or been released.
        """
        with self._db.transaction() as conn:
            row = conn.execute("SELECT expires FROM leases WHERE id = ?", (self._id,)).fetchone()
            if row is None or row["expires"] <= time.time():
                raise StoreError(f"lease {self._id}: expired or released, cannot hold {kind} {key}")
            conn.execute(
                "INSERT OR IGNORE INTO lease_resources (lease_id, kind, key) VALUES (?, ?, ?)",
                (self._id, kind, key),
            )

    def release(self) -> None:
        """Drop the lease and everything it holds; idempotent."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM leases WHERE id = ?", (self._id,))

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def lease(db: Database, *, ttl: float = DEFAULT_TTL) -> Lease:
    """Create a lease that protects what is added to it for ``ttl`` seconds, or until released."""
    if not ttl > 0:
        raise InvalidArgument(f"invalid lease time to live {ttl}: must be positive")
    now = time.time()
    lease_id = secrets.token_hex(16)
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO leases (id, created, expires) VALUES (?, ?, ?)",
            (lease_id, now, now + ttl),
        )
    return Lease(db, lease_id, now + ttl)


def held(conn: sqlite3.Connection, kind: str, *, now: float | None = None) -> set[str]:
    """The keys of ``kind`` held by unexpired leases (call inside gc's transaction)."""
    rows = conn.execute(
        "SELECT DISTINCT r.key FROM lease_resources AS r JOIN leases AS l ON l.id = r.lease_id"
        " WHERE r.kind = ? AND l.expires > ?",
        (kind, time.time() if now is None else now),
    )
    return {str(row[0]) for row in rows}


def expire(conn: sqlite3.Connection, *, now: float | None = None) -> int:
    """Delete expired leases and what they hold; return how many leases went."""
    cur = conn.execute(
        "DELETE FROM leases WHERE expires <= ?", (time.time() if now is None else now,)
    )
    return cur.rowcount

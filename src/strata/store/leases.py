"""Leases: what a running command is using, so that gc does not collect it from under it.

GC protocol: a writer adds a resource (a blob digest, a snapshot key) to its lease BEFORE it checks
for or writes that resource, and each add is its own committed transaction; gc expires old leases
and marks and sweeps inside one `Database.transaction`. The two never interleave, so gc either
sees the lease or finishes before the writer looks.

A lease's ID starts with its owner: ``<pid>.<start time>.<pid namespace>.<random>``, the start
time being field 22 of ``/proc/<pid>/stat`` (clock ticks since boot), so that a recycled PID is not
taken for the owner; a lease made in another PID namespace (a store shared with a container) cannot
be judged by its PID, and is left to its time to live. A lease whose owner is no longer running
is dead at once, like an expired one: a crashed command's lease does not protect its debris for
the whole time to live. IDs without an owner (older stores) only expire.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import time
from types import TracebackType
from typing import Final

from strata.errors import InvalidArgument, StoreError, StrataError
from strata.store.db import Database

__all__ = [
    "DEFAULT_TTL",
    "Lease",
    "expire",
    "held",
    "lease",
    "owner_alive",
    "pid_namespace",
    "process_start",
]

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
        with self._db.transaction(what=f"leasing {kind} {key}") as conn:
            row = conn.execute("SELECT expires FROM leases WHERE id = ?", (self._id,)).fetchone()
            if row is None or row["expires"] <= time.time():
                raise StoreError(f"lease {self._id}: expired or released, cannot hold {kind} {key}")
            conn.execute(
                "INSERT OR IGNORE INTO lease_resources (lease_id, kind, key) VALUES (?, ?, ?)",
                (self._id, kind, key),
            )

    def add_all(self, kind: str, keys: list[str]) -> None:
        """Hold every key of ``keys`` in one committed transaction (see `add`)."""
        with self._db.transaction(what=f"leasing {len(keys)} {kind}s") as conn:
            row = conn.execute("SELECT expires FROM leases WHERE id = ?", (self._id,)).fetchone()
            if row is None or row["expires"] <= time.time():
                raise StoreError(f"lease {self._id}: expired or released, cannot hold {kind}s")
            conn.executemany(
                "INSERT OR IGNORE INTO lease_resources (lease_id, kind, key) VALUES (?, ?, ?)",
                [(self._id, kind, key) for key in keys],
            )

    def release(self) -> None:
        """Drop the lease and everything it holds; idempotent. It frees space (gc may now collect
        what it held), so on a full disk it may use the store's reserve."""
        with self._db.transaction(reclaim=True, what=f"releasing lease {self._id}") as conn:
            conn.execute("DELETE FROM leases WHERE id = ?", (self._id,))

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.release()
            return
        # Leaving on an error: that error is the one to report. A lease that cannot be dropped
        # now (the disk is full, the database locked) dies with this process: gc drops the
        # leases of owners that have ended.
        with contextlib.suppress(StrataError):
            self.release()


def lease(db: Database, *, ttl: float = DEFAULT_TTL) -> Lease:
    """Create a lease that protects what is added to it for ``ttl`` seconds, or until released."""
    if not ttl > 0:
        raise InvalidArgument(f"invalid lease time to live {ttl}: must be positive")
    now = time.time()
    pid = os.getpid()
    start, namespace = process_start(pid), pid_namespace()
    lease_id = secrets.token_hex(16)
    if start is not None and start >= 0 and namespace:
        lease_id = f"{pid}.{start}.{namespace}.{lease_id}"
    # else: no /proc to name the owner by, so the lease only expires (never judged dead wrongly)
    with db.transaction(what="taking a lease for this command") as conn:
        conn.execute(
            "INSERT INTO leases (id, created, expires) VALUES (?, ?, ?)",
            (lease_id, now, now + ttl),
        )
    return Lease(db, lease_id, now + ttl)


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None if it is not running
    (a zombie is not).

    The command name in /proc/PID/stat may hold spaces and parentheses, so the fields are counted
    from its last ``)``; the start time is field 22, the 20th after it.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return -1  # unreadable: assume alive, the time to live still bounds it
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[:1] in ([b"Z"], [b"X"]):
        return None  # a zombie has ended; only its exit status waits to be collected
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return -1


def pid_namespace() -> int:
    """The inode of this process's PID namespace (0 if unknown): PIDs mean something only in it."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def owner_alive(lease_id: str) -> bool:
    """False only if the lease names an owner process, in our PID namespace, that has ended."""
    parts = lease_id.split(".")
    namespace = pid_namespace()
    if len(parts) != 4 or not parts[0].isdigit() or not namespace or parts[2] != str(namespace):
        return True  # no owner named, or no way to look it up from here
    start = process_start(int(parts[0]))
    if start is None:
        return False
    if start == -1 or parts[1] in ("None", "-1"):
        return True
    return str(start) == parts[1]


def held(conn: sqlite3.Connection, kind: str, *, now: float | None = None) -> set[str]:
    """The keys of ``kind`` held by live leases (call inside gc's write transaction).

    Expired leases and those of dead owners are deleted first, so that gc reclaims at once
    what a crashed command held.
    """
    expire(conn, now=now)
    rows = conn.execute(
        "SELECT DISTINCT r.key FROM lease_resources AS r JOIN leases AS l ON l.id = r.lease_id"
        " WHERE r.kind = ?",
        (kind,),
    )
    return {str(row[0]) for row in rows}


def expire(conn: sqlite3.Connection, *, now: float | None = None) -> int:
    """Delete expired leases, leases of dead owners, and what they hold; return how many went."""
    now = time.time() if now is None else now
    dead = [
        (row[0],)
        for row in conn.execute("SELECT id, expires FROM leases")
        if row[1] <= now or not owner_alive(str(row[0]))
    ]
    conn.executemany("DELETE FROM leases WHERE id = ?", dead)
    return len(dead)

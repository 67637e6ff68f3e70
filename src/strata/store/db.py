"""The connection helper: opens ``strata.db``, migrates it, and hands out transactions.

Transactions are explicit (``isolation_level=None``): `Database.transaction` takes the write lock
at ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of failing half-way with
"database is locked" on their first write, and `Database.read` gives a consistent snapshot.

On a full disk (see `strata.store.space`): an open may borrow from the store's reserve, a write
transaction only when it is marked ``reclaim``; a transaction that cannot commit for want of space
is rolled back and raises `NoSpace` naming ``strata.db``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Final

from strata.errors import Locked, StoreError
from strata.store.schema import MIGRATIONS
from strata.store.space import Reserve, nearly_full, no_space

__all__ = ["BUSY_TIMEOUT", "Database"]

BUSY_TIMEOUT: Final = 60.0
_FILE_MODE: Final = 0o600
_SQLITE_IOERR: Final = 10
_SQLITE_FULL: Final = 13


def _statements(script: str) -> Iterator[str]:
    """Split an SQL script into statements (semicolons in strings and triggers respected).

    ``executescript`` would do this, but it commits any open transaction first, and a migration
    must run inside the one transaction that also sets ``user_version``.
    """
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                yield pending.strip()
            pending = ""
    if pending.strip(" \t\r\n;"):
        yield pending.strip()


class Database:
    """One connection to ``strata.db``; use from one thread. Rows are `sqlite3.Row`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        try:
            # Created here, not by sqlite, so that it is 0600 whatever the umask says; and only
            # when it is missing: closing a descriptor of an existing file would drop every POSIX
            # lock this process holds on it, those of another connection of ours too, and
            # another process's last close would then take our WAL and shm files from under that
            # connection (SQLite's "how to corrupt", 2.2: the database ends up corrupt).
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, _FILE_MODE)
            os.close(fd)
        except FileExistsError:
            pass
        except OSError as err:
            raise StoreError(f"{self.path}: cannot open: {err.strerror or err}") from None
        self.reserve = Reserve(self.path.with_name(self.path.name + "-reserve"))
        while True:
            try:
                self._conn = self._open()
                break
            except sqlite3.Error as err:
                # Even a read needs space for the shared-memory file: borrow it from the reserve.
                if not self._full(err):
                    raise self._open_error(err) from None
                if not self.reserve.release():
                    raise no_space(f"opening {self.path}") from None
        self.reserve.replenish()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            self._enable_wal(conn)
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_error(self, err: sqlite3.Error) -> StoreError | Locked:
        if isinstance(err, sqlite3.OperationalError):
            return self._error(err)
        if isinstance(err, sqlite3.DatabaseError):
            return StoreError(f"{self.path}: not a usable strata database: {err}")
        return StoreError(f"{self.path}: cannot open: {err}")

    def _full(self, err: sqlite3.Error) -> bool:
        """True if ``err`` is SQLite finding no space: SQLITE_FULL, or an I/O error (what a
        failed extension of the shared-memory file gives) while the disk is nearly full."""
        code = getattr(err, "sqlite_errorcode", 0) & 0xFF
        if code == _SQLITE_FULL or "database or disk is full" in str(err):
            return True
        return code == _SQLITE_IOERR and nearly_full(self.path.parent)

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL (a persistent setting, so only the first open of a file changes it).

        While another process makes that switch SQLite answers "database is locked" at once,
        without the busy handler, so we wait here ourselves.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT
        pause = 0.005
        while True:
            try:
                mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
                break
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        if mode.lower() != "wal":
            raise StoreError(f"{self.path}: cannot use a WAL journal here (got {mode!r})")

    def _error(self, err: sqlite3.Error, what: str = "") -> StoreError | Locked:
        text = str(err)
        if self._full(err):
            return no_space(f"writing {self.path}{f' ({what})' if what else ''}")
        if "locked" in text or "busy" in text:
            return Locked(f"{self.path}: database is locked by another process: {text}")
        return StoreError(f"{self.path}: {text}")

    def _check_version(self, version: int) -> None:
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this strata "
                f"({len(MIGRATIONS)})"
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        self._check_version(version)
        if version == len(MIGRATIONS):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the write lock.
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            self._check_version(version)
            for script in MIGRATIONS[version:]:
                for statement in _statements(script):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @property
    def version(self) -> int:
        """The schema version of the open database."""
        return int(self._connection().execute("PRAGMA user_version").fetchone()[0])

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: database is closed")
        return self._conn

    def _begin(self, statement: str) -> sqlite3.Connection:
        conn = self._connection()
        if conn.in_transaction:
            raise StoreError(f"{self.path}: a transaction is already open; they do not nest")
        try:
            conn.execute(statement)
        except sqlite3.Error as err:
            raise self._error(err) from None
        return conn

    @contextlib.contextmanager
    def _run(
        self, statement: str, *, reclaim: bool = False, what: str = ""
    ) -> Iterator[sqlite3.Connection]:
        if reclaim:
            # SQLite rolls back a COMMIT that finds no space, so the room must be there first.
            self.reserve.make_room(self.path.parent)
        conn = self._begin(statement)
        try:
            yield conn
        except sqlite3.Error as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if self._full(err):
                raise self._error(err, what) from None
            raise
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            if conn.in_transaction:
                conn.execute("COMMIT")
        except sqlite3.Error as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._error(err, what) from None

    def transaction(
        self, *, reclaim: bool = False, what: str = ""
    ) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): committed on exit, rolled back on error.

        Transactions do not nest. Waits up to the busy timeout for another writer, then `Locked`.
        ``reclaim``: the transaction deletes so that space can be freed, and may use the store's
        reserve on a full disk; without it, no space is `NoSpace` naming ``what`` was written.
        """
        return self._run("BEGIN IMMEDIATE", reclaim=reclaim, what=what)

    def read(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A consistent read (``BEGIN DEFERRED``): every query inside sees one snapshot."""
        return self._run("BEGIN DEFERRED")

    def close(self) -> None:
        """Close the connection; idempotent."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

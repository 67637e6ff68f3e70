"""The metadata database: migrations, versions, transactions, and writers in two processes."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from strata.errors import StoreError
from strata.store import db as db_module
from strata.store.db import Database, _statements
from strata.store.schema import MIGRATIONS, SCHEMA_VERSION

FORK = multiprocessing.get_context("fork")
TABLES = {"images", "tags", "repo_digests", "layers", "leases", "lease_resources"}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "strata.db"


def add_image(conn: sqlite3.Connection, digest: str) -> None:
    conn.execute(
        "INSERT INTO images (manifest_digest, config_digest, media_type, created, size, added)"
        " VALUES (?, 'sha256:c', 'application/vnd.oci.image.manifest.v1+json', NULL, 1, 'now')",
        (digest,),
    )


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    finally:
        conn.close()
    return {r[0] for r in rows}


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_migrates_an_empty_file(path: Path) -> None:
    with Database(path) as db:
        assert db.version == SCHEMA_VERSION == len(MIGRATIONS) >= 1
        with db.read() as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
            assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 60000
            row = conn.execute("SELECT count(*) AS n FROM images").fetchone()
            assert isinstance(row, sqlite3.Row)
            assert row["n"] == 0
    assert tables(path) >= TABLES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_reopen_is_idempotent(path: Path) -> None:
    with Database(path) as db, db.transaction() as conn:
        add_image(conn, "sha256:a")
    with Database(path) as db:
        assert db.version == SCHEMA_VERSION
        with db.read() as conn:
            assert [r[0] for r in conn.execute("SELECT manifest_digest FROM images")] == [
                "sha256:a"
            ]


def test_newer_schema_is_refused(path: Path) -> None:
    Database(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError) as err:
        Database(path)
    assert str(err.value) == (
        f"{path} has schema version 99, newer than this strata ({SCHEMA_VERSION})"
    )


def test_corrupt_file_is_refused(path: Path) -> None:
    path.write_bytes(b"this is not a database, just some text that goes on for a while\n" * 100)
    with pytest.raises(StoreError, match=str(path)) as err:
        Database(path)
    assert "\n" not in str(err.value)


def test_unopenable_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        Database(tmp_path / "missing-dir" / "strata.db")


def test_failed_migration_leaves_nothing(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = [*MIGRATIONS, "CREATE TABLE extra (x INTEGER); CREATE TABLE broken (;"]
    monkeypatch.setattr(db_module, "MIGRATIONS", broken)
    with pytest.raises(StoreError, match=str(path)):
        Database(path)
    assert user_version(path) == 0
    assert tables(path) == set()
    monkeypatch.undo()
    with Database(path) as db:
        assert db.version == SCHEMA_VERSION


def test_migration_continues_from_the_stored_version(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Database(path).close()
    more = [*MIGRATIONS, "CREATE TABLE extra (x TEXT DEFAULT 'a;b'); INSERT INTO extra VALUES (1)"]
    monkeypatch.setattr(db_module, "MIGRATIONS", more)
    with Database(path) as db:
        assert db.version == len(MIGRATIONS) + 1
        with db.read() as conn:
            assert conn.execute("SELECT count(*) FROM extra").fetchone()[0] == 1


def test_transaction_rolls_back_on_exception(path: Path) -> None:
    with Database(path) as db:
        with pytest.raises(RuntimeError), db.transaction() as conn:
            add_image(conn, "sha256:a")
            conn.execute("INSERT INTO tags VALUES ('x:latest', 'sha256:a', 'now')")
            raise RuntimeError("boom")
        with db.read() as conn:
            assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM tags").fetchone()[0] == 0
        with db.transaction() as conn:  # usable afterwards
            add_image(conn, "sha256:b")


def test_commit_is_visible_to_another_connection(path: Path) -> None:
    with Database(path) as one, Database(path) as two:
        with one.transaction() as conn:
            add_image(conn, "sha256:a")
        with two.read() as conn:
            assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 1


def test_read_is_a_snapshot(path: Path) -> None:
    with Database(path) as one, Database(path) as two:
        with two.transaction() as conn:
            add_image(conn, "sha256:a")
        with one.read() as conn:
            assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 1
            with two.transaction() as other:
                add_image(other, "sha256:b")
            assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 1
        with one.read() as conn:
            assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 2


def test_transactions_do_not_nest(path: Path) -> None:
    with Database(path) as db, db.transaction():
        with pytest.raises(StoreError, match="do not nest"):
            db.transaction().__enter__()
        with pytest.raises(StoreError, match="do not nest"):
            db.read().__enter__()


def test_foreign_keys_are_enforced(path: Path) -> None:
    with Database(path) as db:
        with pytest.raises(sqlite3.IntegrityError), db.transaction() as conn:
            conn.execute("INSERT INTO tags VALUES ('x:latest', 'sha256:nope', 'now')")
        with db.transaction() as conn:
            add_image(conn, "sha256:a")
            conn.execute(
                "INSERT INTO repo_digests (repository, manifest_digest)"
                " VALUES ('docker.io/library/x', 'sha256:a')"
            )
        with db.transaction() as conn:
            conn.execute("DELETE FROM images WHERE manifest_digest = 'sha256:a'")
            assert conn.execute("SELECT count(*) FROM repo_digests").fetchone()[0] == 0


def test_closed_database(path: Path) -> None:
    db = Database(path)
    db.close()
    db.close()
    with pytest.raises(StoreError, match="closed"):
        db.transaction().__enter__()


def _writer(path: Path, who: str, n: int) -> None:
    with Database(path) as db:
        for i in range(n):
            with db.transaction() as conn:
                # Read-then-write: only safe because BEGIN IMMEDIATE takes the write lock first.
                count = conn.execute("SELECT count(*) FROM layers").fetchone()[0]
                conn.execute(
                    "INSERT INTO layers (digest, diff_id, size, media_type)"
                    " VALUES (?, ?, ?, 'application/vnd.oci.image.layer.v1.tar')",
                    (f"{who}-{i}", f"diff-{count}", count),
                )


def test_two_processes_write_concurrently(path: Path) -> None:
    Database(path).close()
    procs = [FORK.Process(target=_writer, args=(path, who, 100)) for who in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    with Database(path) as db, db.read() as conn:
        rows = conn.execute("SELECT diff_id, size FROM layers").fetchall()
    assert len(rows) == 200
    assert sorted(r["size"] for r in rows) == list(range(200))


def _open_fresh(path: Path, barrier: Barrier) -> None:
    barrier.wait(30)
    with Database(path) as db, db.transaction() as conn:
        conn.execute("INSERT INTO leases VALUES (?, 0, 1)", (str(os.getpid()),))


def test_processes_opening_a_new_database_at_once(path: Path) -> None:
    barrier = FORK.Barrier(4)
    procs = [FORK.Process(target=_open_fresh, args=(path, barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with Database(path) as db, db.read() as conn:
        assert conn.execute("SELECT count(*) FROM leases").fetchone()[0] == 4


def test_statement_splitting() -> None:
    script = "CREATE TABLE a (x TEXT DEFAULT ';'); ; -- comment; here\nINSERT INTO a VALUES ('1;2')"
    assert list(_statements(script)) == [
        "CREATE TABLE a (x TEXT DEFAULT ';');",
        "-- comment; here\nINSERT INTO a VALUES ('1;2');",
    ]

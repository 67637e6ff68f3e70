"""Leases: what they hold is visible at once, expires on time, and goes when released."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.errors import InvalidArgument, StoreError
from strata.store.db import Database
from strata.store.leases import expire, held, lease, owner_alive, pid_namespace, process_start


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with Database(tmp_path / "strata.db") as db:
        yield db


@pytest.fixture
def other(tmp_path: Path, db: Database) -> Iterator[Database]:
    with Database(tmp_path / "strata.db") as other:
        yield other


def count(db: Database, table: str) -> int:
    with db.read() as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_adds_are_visible_to_another_connection_at_once(db: Database, other: Database) -> None:
    with lease(db) as ls:
        ls.add("blob", "sha256:aa")
        with other.transaction() as conn:
            assert held(conn, "blob") == {"sha256:aa"}
        ls.add("blob", "sha256:bb")
        ls.add("blob", "sha256:bb")
        ls.add("snapshot", "k1")
        with other.read() as conn:
            assert held(conn, "blob") == {"sha256:aa", "sha256:bb"}
            assert held(conn, "snapshot") == {"k1"}
            assert held(conn, "container") == set()
    with other.read() as conn:
        assert held(conn, "blob") == set()


def test_held_ignores_expired_leases(db: Database) -> None:
    short = lease(db, ttl=10)
    long = lease(db, ttl=1000)
    short.add("blob", "sha256:short")
    long.add("blob", "sha256:long")
    later = time.time() + 100
    with db.read() as conn:
        assert held(conn, "blob") == {"sha256:short", "sha256:long"}
        assert held(conn, "blob", now=later) == {"sha256:long"}
    assert short.expires < long.expires


def test_release_removes_rows(db: Database) -> None:
    ls = lease(db)
    ls.add("blob", "sha256:aa")
    assert (count(db, "leases"), count(db, "lease_resources")) == (1, 1)
    ls.release()
    assert (count(db, "leases"), count(db, "lease_resources")) == (0, 0)
    ls.release()
    with pytest.raises(StoreError, match=f"lease {ls.id}: expired or released"):
        ls.add("blob", "sha256:bb")


def test_leaving_the_block_releases_even_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), lease(db) as ls:
        ls.add("blob", "sha256:aa")
        raise RuntimeError("boom")
    assert count(db, "leases") == 0


def test_expire_deletes_expired(db: Database) -> None:
    short = lease(db, ttl=10)
    long = lease(db, ttl=1000)
    short.add("blob", "sha256:short")
    long.add("blob", "sha256:long")
    with db.transaction() as conn:
        assert expire(conn) == 0
        assert expire(conn, now=time.time() + 100) == 1
    with db.read() as conn:
        assert [r["id"] for r in conn.execute("SELECT id FROM leases")] == [long.id]
        keys = [r["key"] for r in conn.execute("SELECT key FROM lease_resources")]
    assert keys == ["sha256:long"]


def test_add_to_an_expired_lease_is_refused(db: Database) -> None:
    ls = lease(db, ttl=10)
    with db.transaction() as conn:
        conn.execute("UPDATE leases SET expires = 0 WHERE id = ?", (ls.id,))
    with pytest.raises(StoreError, match="expired or released"):
        ls.add("blob", "sha256:aa")


@pytest.mark.parametrize("ttl", [0.0, -1.0, float("nan")])
def test_bad_ttl(db: Database, ttl: float) -> None:
    with pytest.raises(InvalidArgument):
        lease(db, ttl=ttl)


def test_a_lease_dies_with_its_owner_process(db: Database, tmp_path: Path) -> None:
    """gc (through `held`) drops a dead process's lease at once, not after its time to live."""
    code = (
        "import sys; from pathlib import Path; from strata.store.db import Database;"
        " from strata.store.leases import lease\n"
        "db = Database(Path(sys.argv[1]))\n"
        "ls = lease(db)\n"
        "ls.add('blob', 'sha256:dead')\n"
        "print(ls.id, flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "strata.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    lease_id = proc.stdout.readline().decode().strip()
    assert lease_id.startswith(f"{proc.pid}.")
    assert owner_alive(lease_id)
    with lease(db) as mine:
        mine.add("blob", "sha256:mine")
        with db.transaction() as conn:
            assert held(conn, "blob") == {"sha256:dead", "sha256:mine"}
        proc.kill()
        while Path(f"/proc/{proc.pid}/stat").read_text().split(") ")[1][0] != "Z":
            time.sleep(0.01)  # dead but not yet reaped: a zombie has ended too
        assert not owner_alive(lease_id)
        proc.wait()
        with db.transaction() as conn:
            assert held(conn, "blob") == {"sha256:mine"}
        assert count(db, "leases") == 1


def test_owner_checks_the_start_time_not_only_the_pid() -> None:
    pid = os.getpid()
    start = process_start(pid)
    assert start is not None and start > 0
    ns = pid_namespace()
    assert owner_alive(f"{pid}.{start}.{ns}.abc")
    assert not owner_alive(f"{pid}.{start + 1}.{ns}.abc")  # a recycled PID is another process
    assert owner_alive(f"{pid}.{start + 1}.{ns + 1}.abc")  # another namespace: cannot tell
    assert owner_alive("0123456789abcdef")  # an old ID with no owner only expires

"""Conformance, continued: what a command killed half-way leaves, and `cleanup` putting it right.

A forked child runs a real operation and is SIGKILLed at the one point no `except` can cover,
right before the metadata changes inside the open transaction. The snapshotter's own dirs and
links may then be out of step with the rows; `cleanup` must bring them back, and nothing the
crash left may get in the way of later operations.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
from collections.abc import Callable

import pytest

from strata.snapshot import metadata
from strata.snapshot.base import DirSnapshotter
from strata.snapshot.dirs import make_locked_dir, unlock
from strata.store.db import Database
from tests.snapshot.conftest import IMPLEMENTATIONS, Env
from tests.snapshot.helpers import files, mounted, store_state, write

pytestmark = pytest.mark.root

FORK = multiprocessing.get_context("fork")


def _die(*args: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _crash_in_child(env: Env, hook: str, action: Callable[[DirSnapshotter], object]) -> None:
    """Run ``action`` on a fresh snapshotter in a child that dies when it calls ``hook``."""

    def child() -> None:
        setattr(metadata, hook, _die)
        db = Database(env.root / "strata.db")
        action(IMPLEMENTATIONS[env.name](env.root, db))
        os._exit(0)  # not reached: the hook kills the child first

    proc = FORK.Process(target=child)
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL


def test_crash_before_the_row_is_written_is_cleaned_up(env: Env) -> None:
    env.layer("base", None, write({"a": "a"}))
    before = store_state(env.root)
    _crash_in_child(env, "insert", lambda s: s.prepare("crashed", "base"))
    after = store_state(env.root)
    assert after[2] == before[2]  # no row...
    assert after[:2] != before[:2]  # ...but a directory (and a link) without one
    assert env.snap.cleanup() >= 1
    assert store_state(env.root) == before
    env.snap.prepare("crashed", "base")
    with mounted(env.snap, "crashed", env.work) as target:
        assert files(target) == {"a": "a"}


def test_a_crash_leftover_does_not_block_the_next_snapshot(env: Env) -> None:
    env.layer("base", None, write({"a": "a"}))
    _crash_in_child(env, "insert", lambda s: s.prepare("crashed", "base"))
    assert "2" in store_state(env.root)[0]  # the crashed command's dir, with no row
    env.snap.prepare("next", "base")  # takes id 2 again, over the leftover
    with mounted(env.snap, "next", env.work) as target:
        assert files(target) == {"a": "a"}
    env.snap.cleanup()
    snaps, links, rows = store_state(env.root)
    assert snaps == ["1", "2"]
    assert [(row[0], row[1]) for row in rows] == [("base", 1), ("next", 2)]
    assert len(links) == (len(rows) if env.name == "overlay" else 0)


def test_crash_inside_remove_is_undone(env: Env) -> None:
    env.layer("base", None, write({"a": "a"}))
    env.layer("leaf", "base", write({"b": "b"}))
    before = store_state(env.root)
    _crash_in_child(env, "delete", lambda s: s.remove("leaf"))
    snaps = store_state(env.root)[0]
    assert any(name.startswith("rm-") for name in snaps)  # moved aside, row still there
    assert env.snap.cleanup() == 0  # put back, nothing removed
    assert store_state(env.root) == before
    env.snap.view("look", "leaf")
    with mounted(env.snap, "look", env.work) as target:
        assert files(target) == {"a": "a", "b": "b"}


def test_cleanup_keeps_what_live_processes_hold(env: Env) -> None:
    snapshots = env.root / "snapshots"
    held, lock = make_locked_dir(snapshots, "new-")
    try:

        def child() -> None:
            make_locked_dir(snapshots, "new-")
            make_locked_dir(snapshots, "rm-77-")
            os._exit(0)

        proc = FORK.Process(target=child)
        proc.start()
        proc.join(30)
        assert proc.exitcode == 0
        (snapshots / "99").mkdir()  # an id no row has
        assert len(os.listdir(snapshots)) == 4
        assert env.snap.cleanup() == 3
        assert os.listdir(snapshots) == [held.name]
    finally:
        unlock(lock)
    assert env.snap.cleanup() == 1
    assert os.listdir(snapshots) == []


def test_metadata_is_one_table_of_the_store_database(env: Env) -> None:
    # The metadata lives in the shared store database, next to images and leases.
    env.snap.prepare("a")
    conn = sqlite3.connect(env.root / "strata.db")
    try:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(snapshots)")]
        assert cols == ["key", "id", "parent", "kind", "created", "labels"]
        assert conn.execute("SELECT key, kind, labels FROM snapshots").fetchall() == [
            ("a", "active", "{}")
        ]
    finally:
        conn.close()

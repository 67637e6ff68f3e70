"""A second writer of a blob waits for the first, in another real process, and then uses its
result; if the first dies it takes the ingest over; if the first stops writing it gives up."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from strata.content.local import LocalContentStore
from strata.digest import Digest
from strata.errors import Locked

FORK = multiprocessing.get_context("fork")
REF = "pull-shared"
DATA = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(40_000))  # 1.28 MB
CHUNK = 64 << 10


def _writer(root: Path, started: Event, pause: float, then: str) -> None:
    """Write DATA chunk by chunk with a pause between chunks; then commit, die, or hang."""
    store = LocalContentStore(root)
    with store.writer(REF, expected=Digest.of(DATA), total=len(DATA)) as w:
        half = len(DATA) // 2 if then != "commit" else len(DATA)
        for i in range(0, half, CHUNK):
            w.write(DATA[i : min(i + CHUNK, half)])
            w.flush()
            started.set()
            time.sleep(pause)
        if then == "commit":
            w.commit()
        elif then == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            time.sleep(60)


def _start(root: Path, pause: float, then: str) -> multiprocessing.process.BaseProcess:
    started = FORK.Event()
    proc = FORK.Process(target=_writer, args=(root, started, pause, then))
    proc.start()
    assert started.wait(30)
    return proc


def test_second_writer_waits_reports_progress_and_uses_the_result(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    proc = _start(tmp_path, 0.02, "commit")
    seen: list[int] = []
    with store.writer(
        REF, expected=Digest.of(DATA), total=len(DATA), stall=10, on_wait=seen.append
    ) as w:
        assert w.present, "the first writer committed while we waited"
        w.abort()
    proc.join(30)
    assert proc.exitcode == 0
    assert len(seen) >= 2 and seen == sorted(seen), seen  # progress: the first writer's bytes
    assert store.path(Digest.of(DATA)).read_bytes() == DATA
    assert store.ingests() == []


def test_waiter_takes_over_the_ingest_of_a_writer_that_died(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    proc = _start(tmp_path, 0.05, "die")
    with store.writer(REF, expected=Digest.of(DATA), total=len(DATA), stall=10) as w:
        assert not w.present
        assert w.offset == len(DATA) // 2  # resumed, not started over
        w.write(DATA[w.offset :])
        assert w.commit() == Digest.of(DATA)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    store.verify(Digest.of(DATA))
    assert store.ingests() == []


def test_waiting_gives_up_on_a_writer_that_stopped_writing(tmp_path: Path) -> None:
    store = LocalContentStore(tmp_path)
    proc = _start(tmp_path, 0.0, "hang")
    try:
        begun = time.monotonic()
        with pytest.raises(Locked, match=f"ingest {REF} .* has written nothing for 0.5s"):
            store.writer(REF, expected=Digest.of(DATA), stall=0.5)
        assert time.monotonic() - begun < 5
        with pytest.raises(Locked, match="being written by another process$"):
            store.writer(REF)  # without stall: at once, as before
    finally:
        proc.kill()
        proc.join(30)

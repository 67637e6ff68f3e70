"""The json-file log: Docker's entries, line cutting, tail, follow."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from strata.errors import FormatError
from strata.runtime.logs import MAX_LINE, LogWriter, follow, read_entries, timestamp


def entries(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_entries_are_dockers_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    log = LogWriter(path)
    log.write("stdout", b"one\ntw")
    log.write("stderr", b"oops\n")
    log.write("stdout", b"o\nthree")
    assert [(e["stream"], e["log"]) for e in entries(path)] == [
        ("stdout", "one\n"),
        ("stderr", "oops\n"),
        ("stdout", "two\n"),
    ]
    log.close()  # what waits for a newline is written at the end
    raw = entries(path)
    assert (raw[-1]["stream"], raw[-1]["log"]) == ("stdout", "three")
    assert list(raw[0]) == ["log", "stream", "time"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", e["time"]) for e in raw)


def test_long_lines_terminal_output_and_bad_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    log = LogWriter(path)
    log.write("stdout", b"x" * (MAX_LINE + 10) + b"\n")
    log.write("stdout", b"$ ", raw=True)  # a prompt: no newline will come
    log.write("stderr", b"\xff\xfe ok\n")
    log.close()
    got = [e["log"] for e in entries(path)]
    assert got == ["x" * MAX_LINE, "x" * 10 + "\n", "$ ", "\ufffd\ufffd ok\n"]


def test_read_tail_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    log = LogWriter(path)
    for i in range(5000):
        log.write("stdout" if i % 2 else "stderr", f"line {i}\n".encode())
    log.close()
    everything, offset = read_entries(path)
    assert len(everything) == 5000 and offset == path.stat().st_size
    last, _ = read_entries(path, tail=3)
    assert [(e.stream, e.text) for e in last] == [
        ("stdout", "line 4997\n"),
        ("stderr", "line 4998\n"),
        ("stdout", "line 4999\n"),
    ]
    assert read_entries(path, tail=0)[0] == []
    assert read_entries(tmp_path / "missing.log") == ([], 0)


def test_a_half_written_entry_waits_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    LogWriter(path).write("stdout", b"whole\n")
    with open(path, "ab") as f:
        f.write(b'{"log":"half')
    got, offset = read_entries(path)
    assert [e.text for e in got] == ["whole\n"]
    assert offset == path.stat().st_size - len(b'{"log":"half')


def test_malformed_entry_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    path.write_bytes(b"not json\n")
    with pytest.raises(FormatError, match="malformed entry"):
        read_entries(path)


def test_follow_until_the_writer_is_done(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    log = LogWriter(path)
    log.write("stdout", b"before\n")
    _, offset = read_entries(path)
    done = threading.Event()

    def writer() -> None:
        for i in range(3):
            log.write("stdout", f"after {i}\n".encode())
        log.close()
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen = [e.text for e in follow(path, offset, running=lambda: not done.is_set(), interval=0.01)]
    thread.join()
    assert seen == ["after 0\n", "after 1\n", "after 2\n"]


def test_timestamp_is_rfc3339_nano() -> None:
    assert timestamp(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"

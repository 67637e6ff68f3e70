"""Container logs in Docker's ``json-file`` format: one JSON object per line of output.

Each entry is ``{"log": "<text>", "stream": "stdout"|"stderr", "time": "<RFC 3339, ns>"}``, as
``docker logs`` reads them from ``<id>-json.log``. Output is cut at newlines; a line longer than
16 KiB is cut into several entries (the first without a newline, as Docker's partial messages),
and what is left when a stream ends is written as it is. Output from a terminal is written as it
comes (a shell's prompt has no newline), all of it as ``stdout``, as Docker does.

Bytes that are not UTF-8 become U+FFFD, as Go's JSON encoder makes them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from strata.errors import FormatError

MAX_LINE = 16 * 1024
STREAMS = ("stdout", "stderr")
_READ = 1 << 16


def log_path(directory: Path, container_id: str) -> Path:
    """Where a container's log lives (Docker's file name)."""
    return directory / f"{container_id}-json.log"


def timestamp(ns: int | None = None) -> str:
    """RFC 3339 in UTC with nanoseconds, as Docker writes and ``logs -t`` prints."""
    ns = time.time_ns() if ns is None else ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of a container's log."""

    stream: str
    text: str
    time: str


class LogWriter:
    """Appends a container's output to its json-file log (one writer per container)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._pending = {stream: bytearray() for stream in STREAMS}
        self.dropped = False  # some output could not be written

    def write(self, stream: str, data: bytes, *, raw: bool = False) -> None:
        """Log ``data`` read from ``stream``; ``raw`` (a terminal) writes it without waiting for
        the end of the line."""
        pending = self._pending[stream]
        pending += data
        entries: list[bytes] = []
        while True:
            cut = pending.find(b"\n", 0, MAX_LINE)
            if cut >= 0:
                entries.append(bytes(pending[: cut + 1]))
                del pending[: cut + 1]
            elif len(pending) >= MAX_LINE:
                entries.append(bytes(pending[:MAX_LINE]))
                del pending[:MAX_LINE]
            else:
                break
        if raw and pending:
            entries.append(bytes(pending))
            pending.clear()
        self._emit(stream, entries)

    def flush(self) -> None:
        """Write out what waits for a newline (at the end of a stream)."""
        for stream, pending in self._pending.items():
            if pending:
                self._emit(stream, [bytes(pending)])
                pending.clear()

    def _emit(self, stream: str, chunks: list[bytes]) -> None:
        if not chunks:
            return
        now = timestamp()
        lines = [
            json.dumps(
                {"log": chunk.decode("utf-8", errors="replace"), "stream": stream, "time": now},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            for chunk in chunks
        ]
        data = ("\n".join(lines) + "\n").encode()
        view = memoryview(data)
        try:
            while view and self._fd >= 0:
                view = view[os.write(self._fd, view) :]
        except OSError:
            # A full disk must not stop the container: its output is still drained, and
            # dropped, rather than left to fill the pipe and block the container's writes.
            self.dropped = True

    def close(self) -> None:
        """Flush and close (idempotent)."""
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1


def parse_entry(line: bytes, *, path: Path) -> LogEntry | None:
    """One line of a log file; None for a blank line (a writer cut short)."""
    if not line.strip():
        return None
    try:
        raw = json.loads(line)
        return LogEntry(stream=str(raw["stream"]), text=str(raw["log"]), time=str(raw["time"]))
    except (ValueError, KeyError, TypeError):
        raise FormatError(f"log {path}: malformed entry {line[:60]!r}") from None


def read_entries(path: Path, *, tail: int | None = None) -> tuple[list[LogEntry], int]:
    """The log's entries (the last ``tail`` ones if given) and the offset where it ended."""
    try:
        with open(path, "rb") as f:
            data = f.read() if tail is None else _last_lines(f, tail)
            offset = f.seek(0, os.SEEK_END)
    except FileNotFoundError:
        return [], 0
    except OSError as exc:
        raise FormatError(f"log {path}: cannot read: {exc.strerror}") from None
    end = data.rfind(b"\n") + 1  # an entry being written is read on the next pass
    offset -= len(data) - end
    entries = [e for line in data[:end].splitlines() if (e := parse_entry(line, path=path))]
    return entries, offset


def _last_lines(f: BinaryIO, count: int) -> bytes:
    """The last ``count`` complete lines of a file, read backwards in blocks."""
    if count <= 0:
        return b""
    end = f.seek(0, os.SEEK_END)
    size = end
    data = b""
    while size > 0 and data.count(b"\n") <= count:
        step = min(_READ, size)
        size -= step
        f.seek(size)
        data = f.read(step) + data
    complete = data[: data.rfind(b"\n") + 1]
    lines = complete.splitlines(keepends=True)
    return b"".join(lines[-count:])


def follow(
    path: Path, offset: int, *, running: Callable[[], bool], interval: float = 0.05
) -> Iterator[LogEntry]:
    """Entries appended after ``offset`` while ``running()`` holds, then the last of them."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - held across yields
    except FileNotFoundError:
        return
    with f:
        f.seek(offset)
        pending = b""
        while True:
            alive = running()  # before reading: what the writer wrote before it ended is seen
            chunk = f.read(_READ)
            while chunk:
                pending += chunk
                chunk = f.read(_READ)
            lines = pending.split(b"\n")
            pending = lines.pop()
            for line in lines:
                entry = parse_entry(line, path=path)
                if entry is not None:
                    yield entry
            if not alive:
                return
            time.sleep(interval)

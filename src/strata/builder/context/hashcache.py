"""The sha256 of files, remembered by their stat so an unchanged context is not read again.

A file's hash is reused while its absolute path, device, inode, size, mtime and ctime (both in
nanoseconds) are unchanged; any write changes mtime and ctime, a chmod or chown changes ctime.
A file changed within the timestamp granularity of the moment we hashed it could keep its
times, so hashes of files touched in the last `RACY_NS` are used but never stored (git's
"racy clean" rule).

The cache is one JSON file per namespace (say, one per context directory, so a build loads
only its own entries) in the directory the caller chooses: ``context-hashes.json`` or
``context-hashes-<hash of namespace>.json``. It is replaced atomically (write, then rename); a
missing, unreadable or corrupt file is simply an empty cache; past `MAX_ENTRIES` only the
entries used by the last build are kept. Concurrent builds may overwrite each other's
additions; nothing is ever wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from strata.errors import BuildError

FILE_NAME: Final = "context-hashes.json"
RACY_NS: Final = 2_000_000_000
MAX_ENTRIES: Final = 100_000
_VERSION: Final = 2
_CHUNK: Final = 1 << 20


def stat_key(st: os.stat_result) -> str:
    """The part of a stat that says "same content as before", as the cache stores it."""
    return f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} "


def cache_file_name(namespace: str = "") -> str:
    """The file holding ``namespace``'s entries."""
    if not namespace:
        return FILE_NAME
    digest = hashlib.sha256(namespace.encode("utf-8", "surrogateescape")).hexdigest()
    return f"context-hashes-{digest[:16]}.json"


_local = threading.local()


def _buffer() -> memoryview:
    # One read buffer per thread, reused: allocating one per file (as hashlib.file_digest
    # does, 256 KiB) costs more than hashing a small file.
    buf: memoryview | None = getattr(_local, "buffer", None)
    if buf is None:
        buf = _local.buffer = memoryview(bytearray(_CHUNK))
    return buf


def sha256_file(path: str) -> str:
    """The hex sha256 of the file at ``path`` (not following a final symlink)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise BuildError(f"cannot read {path}: {e.strerror}") from None
    try:
        digest = hashlib.sha256()
        buf = _buffer()
        while n := os.readv(fd, [buf]):
            digest.update(buf[:n])
        return digest.hexdigest()
    except OSError as e:
        raise BuildError(f"cannot read {path}: {e.strerror}") from None
    finally:
        os.close(fd)


class HashCache:
    """File hashes by stat, persisted under ``directory`` (None: this process only)."""

    def __init__(
        self, directory: Path | None, *, namespace: str = "", racy_ns: int = RACY_NS
    ) -> None:
        self.directory = directory
        self.file_name = cache_file_name(namespace)
        self._racy_ns = racy_ns
        self._touched: set[str] = set()
        # path -> stat_key + hex sha256: strings, because JSON parses them fastest.
        self._entries: dict[str, str] | None = None
        self._dirty = False
        self._started = time.time_ns()
        self.hits = 0
        self.misses = 0

    def _load(self) -> dict[str, str]:
        if self._entries is not None:
            return self._entries
        entries: dict[str, str] = {}
        if self.directory is not None:
            with contextlib.suppress(OSError, ValueError):
                with open(self.directory / self.file_name, "rb") as f:
                    doc = json.loads(f.read())
                if isinstance(doc, dict) and doc.get("version") == _VERSION:
                    raw = doc.get("entries")
                    if isinstance(raw, dict):
                        entries = raw  # values are checked when used
        self._entries = entries
        return entries

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        """The cached hex sha256 of ``path`` if its stat still matches, else None."""
        value = self._load().get(path)
        if not isinstance(value, str):
            return None
        key = stat_key(st)
        if len(value) == len(key) + 64 and value.startswith(key):
            self._touched.add(path)
            return value[-64:]
        return None

    def remember(self, path: str, st: os.stat_result, hexdigest: str) -> None:
        """Record the hash of ``path`` as read with stat ``st`` (unless it changed too lately)."""
        if max(st.st_mtime_ns, st.st_ctime_ns) > self._started - self._racy_ns:
            return
        entries = self._load()
        self._touched.add(path)
        value = stat_key(st) + hexdigest
        if entries.get(path) != value:
            entries[path] = value
            self._dirty = True

    def file_sha256(self, path: str, st: os.stat_result) -> str:
        """The hex sha256 of the regular file ``path`` whose lstat is ``st``."""
        cached = self.lookup(path, st)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        hexdigest = sha256_file(path)
        self.remember(path, st, hexdigest)
        return hexdigest

    def hash_many(self, files: Iterable[tuple[str, os.stat_result]]) -> dict[str, str]:
        """The hex sha256 of each ``(path, stat)``, reading only the files not cached."""
        entries = self._load()
        result: dict[str, str] = {}
        todo: dict[str, os.stat_result] = {}
        # The hot loop of a no-change rebuild: `lookup` inlined.
        for path, st in files:
            value = entries.get(path)
            if isinstance(value, str):
                key = f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} "
                if len(value) == len(key) + 64 and value.startswith(key):
                    result[path] = value[-64:]
                    continue
            if path not in todo:
                todo[path] = st
        self.hits += len(result)
        self.misses += len(todo)
        self._touched.update(result)
        self._touched.update(todo)
        # Serially: measured 3x faster than a thread pool on many small files (the GIL is
        # only released for large updates, and handing it over costs more than it saves).
        digests = [sha256_file(path) for path in todo]
        for (path, st), hexdigest in zip(todo.items(), digests, strict=True):
            result[path] = hexdigest
            self.remember(path, st, hexdigest)
        return result

    def save(self) -> None:
        """Write the cache if it changed (atomically); a failure to write is not an error."""
        if not self._dirty or self.directory is None or self._entries is None:
            return
        entries = self._entries
        if len(entries) > MAX_ENTRIES:
            # Forget what the last build did not use (deleted files, other trees).
            entries = {k: v for k, v in entries.items() if k in self._touched}
            if len(entries) > MAX_ENTRIES:
                newest = sorted(entries.items(), key=lambda kv: _mtime(kv[1]), reverse=True)
                entries = dict(newest[:MAX_ENTRIES])
        doc = {"version": _VERSION, "entries": entries}
        data = json.dumps(doc, separators=(",", ":")).encode("utf-8", "surrogateescape")
        tmp = self.directory / f".{self.file_name}.{secrets.token_hex(6)}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, self.directory / self.file_name)
            self._dirty = False
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _mtime(value: object) -> int:
    fields = value.split(" ") if isinstance(value, str) else []
    return int(fields[3]) if len(fields) == 6 and fields[3].isdigit() else 0

"""The store root: one directory holding blobs, ingests, snapshots and the metadata database."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from strata.errors import StoreError
from strata.store.db import Database

if TYPE_CHECKING:
    from strata.content.local import LocalContentStore
    from strata.store.leases import Lease

DEFAULT_ROOT_FOR_ROOT = Path("/var/lib/strata")
RESUMABLE_INGESTS = ("pull-",)
"""Prefixes of ingest refs that a later command opens again to resume (`StoreRoot.lease`)."""


def default_root() -> Path:
    """``STRATA_ROOT``, else /var/lib/strata for root, else ``$XDG_DATA_HOME/strata``."""
    env = os.environ.get("STRATA_ROOT")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return DEFAULT_ROOT_FOR_ROOT
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "strata"


class StoreRoot:
    """Opens (creating on first use) the directory layout of DESIGN.md "On disk".

    The database is opened lazily so commands that only read blobs stay cheap.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"store root {path}: cannot create: {exc.strerror}") from exc
        if not path.is_dir():
            raise StoreError(f"store root {path}: not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise StoreError(f"store root {path}: not writable by this user")
        self._content: LocalContentStore | None = None
        self._db: Database | None = None

    @property
    def content(self) -> LocalContentStore:
        # Lazily: ``run`` of an unpacked image reads no blob through it.
        if self._content is None:
            from strata.content.local import LocalContentStore

            self._content = LocalContentStore(self.path)
        return self._content

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.path / "strata.db")
        return self._db

    @contextlib.contextmanager
    def lease(self, *, ttl: float = 24 * 3600.0) -> Iterator[Lease]:
        """Protect blobs written during an operation from a concurrent gc until it commits.

        Every writer of blobs comes here first, so it first clears what killed writers left
        in its path (`release_dead_writers`).
        """
        from strata.store.leases import lease

        self.release_dead_writers()
        with lease(self.db, ttl=ttl) as held:
            yield held

    def release_dead_writers(self) -> None:
        """Drop the leases of processes that have ended, the ingests nobody writes that nobody
        could resume, and dead commands' scratch (`strata.image.scratch`).

        Cheap: the leases table and ``ingest/`` hold one entry per command at work, so no
        command pays for a store-wide scan. An ingest named by a random ref (an import's, a
        commit's, a load's, a compression's) is never opened by that name again; one named by
        its digest (``pull-sha256:…``) is resumed by the next pull of that blob, so it is left
        for that pull (or ``system check --repair``) unless it holds nothing or its blob is
        there already. Removal is under the ingest's own lock, which its writer holds for its
        whole life: a live writer's is never taken, and one being created meanwhile is made
        again by its writer (`strata.content.ingest.acquire`). Best effort: what fails here is
        the next ``system check``'s to report, not this command's.
        """
        from strata.content.ingest import REF, acquire, read_text, remove_ingest
        from strata.errors import Locked, StrataError
        from strata.image.scratch import remove_dead_scratch
        from strata.store.leases import expire

        try:
            with self.db.transaction() as conn:
                expire(conn)
            base = self.path / "ingest"
            # Directories, not `ingests()`: a writer killed before it wrote its ref leaves one
            # with no ref, which no one can resume either.
            for entry in sorted(os.listdir(base)) if base.is_dir() else []:
                dirpath = base / entry
                ref = read_text(dirpath / REF) if dirpath.is_dir() else None
                if ref is not None and self._worth_resuming(dirpath, ref):
                    continue
                try:
                    lock = acquire(dirpath, entry, create=False)
                except Locked:
                    continue  # a live writer
                if lock is not None:
                    remove_ingest(dirpath, lock)
            remove_dead_scratch(self)
        except (StrataError, OSError):
            return

    def _worth_resuming(self, dirpath: Path, ref: str) -> bool:
        """Whether a later command may resume the ingest: one named by the digest it is
        writing, that holds some bytes of a blob still missing (a pull killed before it wrote
        a byte, or whose blob came meanwhile by another way, left nothing worth keeping)."""
        from strata.content.ingest import DATA
        from strata.digest import Digest
        from strata.errors import StrataError

        prefix = next((p for p in RESUMABLE_INGESTS if ref.startswith(p)), None)
        if prefix is None:
            return False
        try:
            if os.stat(dirpath / DATA).st_size == 0:
                return False
            return not self.content.exists(Digest.parse(ref[len(prefix) :]))
        except FileNotFoundError:
            return False
        except (StrataError, OSError):
            return True  # unreadable or unparsable: left for `system check` to judge

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> StoreRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

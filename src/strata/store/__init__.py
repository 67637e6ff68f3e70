"""Metadata: one SQLite database (``strata.db``, stdlib sqlite3, WAL) for tags, images, layers and
leases. Every change is one transaction; the schema carries a version and migrates forward at open.
"""

from __future__ import annotations

from strata.store.db import Database
from strata.store.leases import Lease, expire, held, lease

__all__ = ["Database", "Lease", "expire", "held", "lease"]

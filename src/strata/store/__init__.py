"""Metadata: one SQLite database (``strata.db``, stdlib sqlite3, WAL) for tags, images, layers and
leases. Every change is one transaction; the schema carries a version and migrates forward at open.
"""

from __future__ import annotations

# Submodules are imported by name (strata.store.db, strata.store.leases): importing the
# package stays free for the commands that need only the database.

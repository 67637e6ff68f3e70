"""User-defined networks as records in the store's ``networks`` table, and name lookup.

The default ``bridge`` network is no row: every root has it (:func:`.bridge.default_network`),
and ``host`` and ``none`` are not bridge networks at all. A user network's bridge and subnet
are host-wide things, so its ID (64 hex, random) names them for the plugins, and its subnet is
chosen clear of every other root's (they show as routes on the host: :func:`.bridge.free_subnet`).
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime

from strata.errors import Conflict, InvalidArgument, NetworkNotFound
from strata.network.bridge import (
    DEFAULT_NAME,
    BridgeNetwork,
    check_subnet,
    default_network,
    free_subnet,
)
from strata.store.db import Database

PREDEFINED = ("bridge", "host", "none")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def _from_row(row: sqlite3.Row) -> BridgeNetwork:
    labels = json.loads(row["labels"] or "{}")
    return BridgeNetwork(
        name=row["name"],
        id=row["id"],
        bridge=row["bridge"],
        subnet=row["subnet"],
        gateway=row["gateway"],
        internal=bool(row["internal"]),
        labels={str(k): str(v) for k, v in labels.items()},
        created=row["created"],
    )


class NetworkRecords:
    """The networks of one store root."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def all(self) -> list[BridgeNetwork]:
        """Every user network, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute("SELECT * FROM networks ORDER BY created, name").fetchall()
        return [_from_row(r) for r in rows]

    def find(self, text: str) -> BridgeNetwork | None:
        """A bridge network by name, full ID or unique ID prefix (``bridge``: the default)."""
        if text == DEFAULT_NAME:
            return default_network()
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT * FROM networks WHERE name = ? OR id = ?", (text, text)
            ).fetchone()
            if row is None and re.fullmatch(r"[0-9a-f]{1,64}", text):
                rows = conn.execute(
                    "SELECT * FROM networks WHERE id LIKE ? LIMIT 2", (f"{text}%",)
                ).fetchall()
                row = rows[0] if len(rows) == 1 else None
        return _from_row(row) if row is not None else None

    def get(self, text: str) -> BridgeNetwork:
        """`find`, or Docker's ``network X not found``."""
        found = self.find(text)
        if found is None:
            raise NetworkNotFound(f"network {text} not found")
        return found

    def create(
        self,
        name: str,
        *,
        subnet: str | None = None,
        gateway: str | None = None,
        internal: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> BridgeNetwork:
        """Record a new bridge network (its bridge is made by the plugins at first use)."""
        if not _NAME.match(name):
            raise InvalidArgument(
                f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'
            )
        if name in PREDEFINED:
            raise Conflict(f"network with name {name} already exists")
        if gateway is not None and subnet is None:
            raise InvalidArgument("--gateway needs a --subnet")
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM networks WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"network with name {name} already exists")
            taken = [r["subnet"] for r in conn.execute("SELECT subnet FROM networks")]
            taken.append(default_network().subnet)
            if subnet is None:
                chosen, gw = check_subnet(free_subnet(taken), None)
            else:
                chosen, gw = check_subnet(subnet, gateway)
                for other in taken:
                    if _overlaps(chosen, other):
                        raise Conflict(
                            f"Pool overlaps with other one on this address space: {chosen}"
                        )
            nid = secrets.token_hex(32)
            created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            conn.execute(
                "INSERT INTO networks (id, name, bridge, subnet, gateway, internal, labels,"
                " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    nid,
                    name,
                    f"strata-{nid[:8]}",
                    chosen,
                    gw,
                    int(internal),
                    json.dumps(dict(labels or {})),
                    created,
                ),
            )
        return self.get(nid)

    def delete(self, network: BridgeNetwork) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM networks WHERE id = ?", (network.id,))


def _overlaps(a: str, b: str) -> bool:
    import ipaddress

    return ipaddress.IPv4Network(a).overlaps(ipaddress.IPv4Network(b))

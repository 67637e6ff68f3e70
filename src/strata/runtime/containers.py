"""Container records: which image, which writable snapshot, which runtime, and what state.

Docker's rules for names and IDs: a 64-hex ID shown as 12, a unique name (given, or an
``adjective_noun`` made up), lookup by full ID, name, or unique ID prefix.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from strata.errors import Conflict, InvalidArgument, NotFound
from strata.runtime.config import ContainerConfig
from strata.store.db import Database

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_ADJECTIVES = (
    "brave", "calm", "clever", "eager", "fervent", "gentle", "happy", "jolly", "keen", "lucid",
    "merry", "nifty", "quirky", "serene", "sharp", "stoic", "tender", "vivid", "wise", "zealous",
)  # fmt: skip
_NOUNS = (
    "babbage", "curie", "dijkstra", "euler", "feynman", "gauss", "hopper", "kepler", "knuth",
    "lamport", "liskov", "lovelace", "noether", "pascal", "ritchie", "shannon", "thompson",
    "torvalds", "turing", "wirth",
)  # fmt: skip


class State(StrEnum):
    """Docker's container states."""

    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    REMOVING = "removing"


@dataclass(frozen=True, slots=True)
class Container:
    """One container as recorded."""

    id: str
    name: str
    image: str  # manifest digest
    image_ref: str  # what the user named
    snapshot: str
    runtime: str
    config: ContainerConfig
    state: State
    pid: int
    exit_code: int | None
    created: str
    started: str | None
    finished: str | None
    # res: what the monitor records of the container's life (migration 9).
    oom_killed: bool = False
    restart_count: int = 0
    restarting: bool = False
    user_stopped: bool = False
    health: str | None = None  # Docker's State.Health, as JSON

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def health_status(self) -> str | None:
        """``starting``, ``healthy`` or ``unhealthy`` (State.Health.Status); None without a
        healthcheck (or a damaged record of one)."""
        if self.health is None:
            return None
        try:
            status = json.loads(self.health).get("Status")
        except (ValueError, AttributeError):
            return None
        return str(status) if status else None


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )


class ContainerStore:
    """The ``containers`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        *,
        name: str | None,
        image: str,
        image_ref: str,
        snapshot: str,
        runtime: str,
        config: ContainerConfig,
        container_id: str | None = None,
        requires: Callable[[sqlite3.Connection], None] | None = None,
    ) -> Container:
        """Record a new container in state ``created``; Conflict if the name is taken.

        ``requires`` runs inside the recording transaction first and may refuse by raising
        (a run checks there that its image is still recorded: see `Containers.create_on`).
        """
        if name is not None:
            check_name(name)
        cid = container_id or secrets.token_hex(32)
        with self.db.transaction() as conn:
            if requires is not None:
                requires(conn)
            chosen = name or self._free_name(conn)
            row = conn.execute("SELECT id FROM containers WHERE name = ?", (chosen,)).fetchone()
            if row is not None:
                raise Conflict(
                    f'Conflict. The container name "/{chosen}" is already in use by container'
                    f' "{row["id"]}". You have to remove (or rename) that container to be able'
                    " to reuse that name."
                )
            conn.execute(
                "INSERT INTO containers (id, name, image, image_ref, snapshot, runtime, config,"
                " state, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cid,
                    chosen,
                    image,
                    image_ref,
                    snapshot,
                    runtime,
                    json.dumps(config.to_json()),
                    State.CREATED.value,
                    now(),
                ),
            )
        return self.get(cid)

    def all(self) -> list[Container]:
        """Every container, newest first."""
        with self.db.read() as conn:
            rows = conn.execute("SELECT * FROM containers ORDER BY created DESC").fetchall()
        return [_from_row(r) for r in rows]

    def lookup(self, text: str) -> Container | None:
        """By full ID, exact name (a leading ``/`` allowed), or unique ID prefix."""
        name = text.removeprefix("/")
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT * FROM containers WHERE id = ? OR name = ?", (text, name)
            ).fetchone()
            if row is not None:
                return _from_row(row)
            if not re.fullmatch(r"[0-9a-f]{1,64}", text):
                return None
            rows = conn.execute(
                "SELECT * FROM containers WHERE id LIKE ?", (text + "%",)
            ).fetchall()
        if len(rows) > 1:
            raise Conflict(f"multiple containers found with provided prefix: {text}")
        return _from_row(rows[0]) if rows else None

    def get(self, text: str) -> Container:
        container = self.lookup(text)
        if container is None:
            raise NotFound(f"No such container: {text}")
        return container

    def set_running(self, cid: str, pid: int) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE containers SET state = ?, pid = ?, started = ?, exit_code = NULL,"
                " finished = NULL WHERE id = ?",
                (State.RUNNING.value, pid, now(), cid),
            )

    def set_exited(self, cid: str, exit_code: int) -> None:
        with self.db.transaction(reclaim=True, what=f"container {cid} exited") as conn:
            conn.execute(
                "UPDATE containers SET state = ?, pid = 0, exit_code = ?, finished = ?"
                " WHERE id = ?",
                (State.EXITED.value, exit_code, now(), cid),
            )

    def claim(self, cid: str) -> bool:
        """Mark a container that is not running as running (pid unknown yet); whether it was."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE containers SET state = ?, pid = 0, started = ?, exit_code = NULL,"
                " finished = NULL WHERE id = ? AND state != ?",
                (State.RUNNING.value, now(), cid, State.RUNNING.value),
            )
            return cursor.rowcount == 1

    def set_failed(self, cid: str, exit_code: int) -> None:
        """A start that failed: back to ``created``, with the exit code (as Docker shows it)."""
        with self.db.transaction(reclaim=True, what=f"container {cid} failed") as conn:
            conn.execute(
                "UPDATE containers SET state = ?, pid = 0, exit_code = ?, started = NULL,"
                " finished = ? WHERE id = ?",
                (State.CREATED.value, exit_code, now(), cid),
            )

    def set_exited_if_running(self, cid: str, exit_code: int) -> bool:
        """Record an exit nobody recorded (its owner died); whether this call did it."""
        with self.db.transaction(reclaim=True, what=f"container {cid} exited") as conn:
            cursor = conn.execute(
                "UPDATE containers SET state = ?, pid = 0, exit_code = ?, finished = ?"
                " WHERE id = ? AND state = ?",
                (State.EXITED.value, exit_code, now(), cid, State.RUNNING.value),
            )
            return cursor.rowcount == 1

    # -- res: the container's life (restarts, OOM kills, stops by the user, health) ---------

    def begin_life(self, cid: str, health: str | None) -> None:
        """A start by the user: no restarts, OOM kill or user stop yet; health ``starting``."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE containers SET oom_killed = 0, restart_count = 0, restarting = 0,"
                " user_stopped = 0, health = ? WHERE id = ?",
                (health, cid),
            )

    def set_oom_killed(self, cid: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE containers SET oom_killed = 1 WHERE id = ?", (cid,))

    def set_user_stopped(self, cid: str) -> None:
        """``stop``/``kill``/``rm -f`` by the user: the restart policy no longer applies."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE containers SET user_stopped = 1 WHERE id = ?", (cid,))

    def set_restarting(self, cid: str, exit_code: int) -> None:
        """Exited and about to be restarted by its policy (still owned: state stays running)."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE containers SET restarting = 1, pid = 0, exit_code = ?, finished = ?,"
                " restart_count = restart_count + 1 WHERE id = ?",
                (exit_code, now(), cid),
            )

    def set_restarted(self, cid: str, pid: int, health: str | None) -> None:
        """Started again by its policy."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE containers SET restarting = 0, pid = ?, started = ?, oom_killed = 0,"
                " health = ? WHERE id = ?",
                (pid, now(), health, cid),
            )

    def set_health(self, cid: str, health: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE containers SET health = ? WHERE id = ?", (health, cid))

    def set_config(self, cid: str, config: ContainerConfig) -> None:
        """Replace the container's config (``update``'s limits or restart policy, ``network
        connect``/``disconnect``'s networks)."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE containers SET config = ? WHERE id = ?",
                (json.dumps(config.to_json()), cid),
            )

    def clear_restarting(self, cid: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE containers SET restarting = 0 WHERE id = ?", (cid,))

    def rename(self, cid: str, new_name: str) -> None:
        """``docker rename``: the container takes ``new_name`` (a leading ``/`` dropped), in
        one transaction with the check that nobody else has it."""
        name = new_name.removeprefix("/")
        if not _NAME.fullmatch(name):
            raise InvalidArgument(
                f"Error when allocating new name: Invalid container name (/{name}), only"
                " [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )
        with self.db.transaction() as conn:
            row = conn.execute("SELECT name FROM containers WHERE id = ?", (cid,)).fetchone()
            if row is None:
                raise NotFound(f"No such container: {cid}")
            if row["name"] == name:
                raise InvalidArgument("Renaming a container with the same name as its current name")
            other = conn.execute("SELECT id FROM containers WHERE name = ?", (name,)).fetchone()
            if other is not None:
                raise Conflict(
                    f'Error when allocating new name: Conflict. The container name "/{name}" is'
                    f' already in use by container "{other["id"]}". You have to remove (or'
                    " rename) that container to be able to reuse that name."
                )
            conn.execute("UPDATE containers SET name = ? WHERE id = ?", (name, cid))

    def delete(
        self, cid: str, *, also: Callable[[sqlite3.Connection], object] | None = None
    ) -> None:
        """Delete the record; ``also`` runs in the same transaction (its volumes released)."""
        with self.db.transaction(reclaim=True, what=f"removing container {cid}") as conn:
            conn.execute("DELETE FROM containers WHERE id = ?", (cid,))
            if also is not None:
                also(conn)

    def users_of_image(self, manifest_digests: list[str]) -> list[Container]:
        marks = ",".join("?" * len(manifest_digests))
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT * FROM containers WHERE image IN ({marks})", manifest_digests
            ).fetchall()
        return [_from_row(r) for r in rows]

    @staticmethod
    def _free_name(conn: sqlite3.Connection) -> str:
        taken = {r[0] for r in conn.execute("SELECT name FROM containers")}
        for _ in range(100):
            name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}"
            if name not in taken:
                return name
        return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}{secrets.randbelow(10000)}"


def _from_row(row: sqlite3.Row) -> Container:
    return Container(
        id=row["id"],
        name=row["name"],
        image=row["image"],
        image_ref=row["image_ref"],
        snapshot=row["snapshot"],
        runtime=row["runtime"],
        config=ContainerConfig.from_json(json.loads(row["config"])),
        state=State(row["state"]),
        pid=int(row["pid"]),
        exit_code=row["exit_code"],
        created=row["created"],
        started=row["started"],
        finished=row["finished"],
        oom_killed=bool(row["oom_killed"]),
        restart_count=int(row["restart_count"]),
        restarting=bool(row["restarting"]),
        user_stopped=bool(row["user_stopped"]),
        health=row["health"],
    )

"""The seam between containers and whatever runs them: the RuntimeBackend protocol and its values.

A backend runs an OCI bundle (a directory holding ``config.json``, see :mod:`strata.runtime.spec`)
under a container ID. Two ways to use one:

* ``run(id, bundle, stdio=...)``: the foreground container of ``strata run`` without ``-d``.
  Blocks until it exits and returns its exit status (``128+N`` when killed by signal N).
  Without a terminal the container's stdin/stdout/stderr *are* the given file descriptors; with
  ``process.terminal`` the backend owns a pty and copies between it and ``stdio`` (raw mode,
  window size, SIGWINCH). Signals the caller gets (SIGINT, SIGTERM, ...) are forwarded to the
  container meanwhile. The container is gone (no state left) when ``run`` returns.
* ``create`` / ``start`` / ``kill`` / ``delete`` / ``state`` by ID: the detached life cycle,
  driven by a monitor process. ``create`` returns once the container exists with its process
  set up but not yet executed; its stdio are the given descriptors (the monitor's log pipes) or,
  with a terminal, the pty master returned in :class:`Created`. The container's init is orphaned
  when ``create`` returns: the process that wants its exit status must be a child subreaper
  (:func:`strata.runtime.syscalls.become_subreaper`) before calling ``create`` and then
  ``waitpid`` it (:func:`strata.runtime.process.wait_exit`). ``kill``/``state``/``delete`` work
  from any process on the same state root, also for a container started by ``run``.

A command that does not exist in the image raises CommandNotFound (exit status 127), one that
cannot be executed CommandNotExecutable (126), both with Docker's message.
"""

from __future__ import annotations

import json
import re
import signal
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from strata.errors import FormatError, InvalidArgument
from strata.runtime.spec import CONFIG_NAME, INIT_ANNOTATION

_ID = re.compile(r"^[A-Za-z0-9_+\-.]{1,128}$")


class Status(StrEnum):
    """A container's state in its runtime (OCI runtime-spec ``status``)."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ProcessIO:
    """File descriptors for the container's stdin, stdout and stderr (the caller keeps them)."""

    stdin: int = 0
    stdout: int = 1
    stderr: int = 2


INHERIT = ProcessIO()  # our own stdin, stdout and stderr


@dataclass(frozen=True, slots=True)
class Created:
    """A created container: its init's host pid, and the pty master when it has a terminal.

    The caller owns ``console`` (close it when done).
    """

    pid: int
    console: int | None = None


@dataclass(frozen=True, slots=True)
class ContainerState:
    """What the runtime knows of one container."""

    id: str
    status: Status
    pid: int  # host pid of the init; 0 once stopped
    bundle: Path


class RuntimeBackend(Protocol):
    """Runs OCI bundles; see the module docstring for the contract."""

    @property
    def name(self) -> str:
        """The ``--runtime`` name: ``runc``, ``crun``, ``chroot``."""
        ...

    @property
    def state_root(self) -> Path:
        """The directory holding this backend's container state."""
        ...

    def available(self) -> bool:
        """Whether this backend can run containers on this host."""
        ...

    def run(self, container_id: str, bundle: Path, *, stdio: ProcessIO = INHERIT) -> int:
        """Run the bundle in the foreground; return the container's exit status."""
        ...

    def create(self, container_id: str, bundle: Path, *, stdio: ProcessIO = INHERIT) -> Created:
        """Create the container, ready to ``start``."""
        ...

    def start(self, container_id: str) -> None:
        """Execute the created container's process."""
        ...

    def kill(self, container_id: str, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the container's init (Conflict if it is not running)."""
        ...

    def delete(self, container_id: str, *, force: bool = False) -> None:
        """Forget a stopped container (``force``: kill it first if it still runs)."""
        ...

    def state(self, container_id: str) -> ContainerState:
        """The container's status (ContainerNotFound if the runtime does not know it)."""
        ...


def check_container_id(container_id: str) -> None:
    """Container IDs are what runc accepts: letters, digits, ``_+-.``, up to 128."""
    if not _ID.match(container_id):
        raise InvalidArgument(f"invalid container ID {container_id!r}")


def load_config(bundle: Path) -> dict[str, Any]:
    """Read ``bundle/config.json`` (a one-line FormatError if it is missing or malformed)."""
    path = bundle / CONFIG_NAME
    try:
        config: dict[str, Any] = json.loads(path.read_bytes())
    except OSError as exc:
        raise FormatError(f"bundle {bundle}: cannot read {CONFIG_NAME}: {exc.strerror}") from None
    except ValueError as exc:
        raise FormatError(f"bundle {bundle}: {CONFIG_NAME}: {exc}") from None
    process = config.get("process") if isinstance(config, dict) else None
    if not isinstance(process, dict) or not isinstance(process.get("args"), list):
        raise FormatError(f"bundle {bundle}: {CONFIG_NAME}: process.args: missing")
    if not isinstance(config.get("root"), dict) or not isinstance(config["root"].get("path"), str):
        raise FormatError(f"bundle {bundle}: {CONFIG_NAME}: root.path: missing")
    return config


def container_command(config: dict[str, Any]) -> str:
    """The command the user asked for (behind the ``--init`` binary when there is one)."""
    args: list[str] = config["process"]["args"]
    annotations = config.get("annotations") or {}
    if annotations.get(INIT_ANNOTATION) == "true" and len(args) > 2 and args[1] == "--":
        return args[2]
    return args[0] if args else ""


def container_path_env(config: dict[str, Any]) -> str:
    """The PATH the container's process will search (empty when it has none)."""
    for entry in config["process"].get("env") or []:
        if isinstance(entry, str) and entry.startswith("PATH="):
            return entry[len("PATH=") :]
    return ""

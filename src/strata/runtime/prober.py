"""The health checks of one running container, run by its monitor as Docker's daemon runs them.

A thread of the monitor: every ``interval`` it runs the check as an exec in the container (the
exec path of :mod:`strata.runtime.execution`), kills it after ``timeout`` (exit code -1 and
Docker's "Health check exceeded timeout" output), and records the new ``State.Health`` in the
container's record, where ``ps`` and ``inspect`` read it. The thread has its own database
connection: SQLite connections are not shared between threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from strata.errors import StrataError
from strata.runtime.backend import ProcessIO, RuntimeBackend
from strata.runtime.containers import ContainerStore, now
from strata.runtime.health import MAX_OUTPUT, HealthState, Probe, ProbeResult
from strata.runtime.process import exit_status


class Prober:
    """Runs ``probe`` against container ``container_id`` until stopped."""

    def __init__(
        self,
        root: Path,
        container_id: str,
        backend: RuntimeBackend,
        bundle: Path,
        probe: Probe,
    ) -> None:
        self.root, self.container_id, self.backend = root, container_id, backend
        self.bundle, self.probe = bundle, probe
        self.started = time.monotonic()
        self.state = HealthState()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="health", daemon=True)

    def start(self) -> Callable[[], None]:
        """Start probing; the function that stops it (and waits for a probe under way)."""
        self._thread.start()

        def stop() -> None:
            self._stop.set()
            self._thread.join()

        return stop

    def _loop(self) -> None:
        from strata.image.root import StoreRoot

        root = StoreRoot(self.root)
        try:
            records = ContainerStore(root.db)
            while not self._stop.wait(self.probe.interval):
                result = self.run_once()
                if self._stop.is_set():
                    break  # the container ended meanwhile: its probe failing means nothing
                in_start = time.monotonic() - self.started < self.probe.start_period
                self.state = self.state.after(result, self.probe, in_start_period=in_start)
                with contextlib.suppress(StrataError):
                    records.set_health(self.container_id, json.dumps(self.state.to_json()))
        finally:
            root.close()

    def run_once(self) -> ProbeResult:
        """One probe: its exit code and (the first 4096 bytes of) its output."""
        start = now()
        with tempfile.TemporaryFile() as out, open(os.devnull, "rb") as null:
            try:
                code = self._exec(ProcessIO(null.fileno(), out.fileno(), out.fileno()))
            except StrataError as exc:
                return ProbeResult(start, now(), -1, str(exc))
            out.seek(0)
            output = out.read(MAX_OUTPUT).decode(errors="replace")
        if code is None:
            seconds = _go_duration(self.probe.timeout)
            return ProbeResult(start, now(), -1, f"Health check exceeded timeout ({seconds})")
        return ProbeResult(start, now(), code, output)

    def _exec(self, stdio: ProcessIO) -> int | None:
        """The probe's exit status; None if it ran past its timeout (it is killed)."""
        from strata.runtime.execution import ExecOptions, run_exec, spawn_exec
        from strata.runtime.runc import RuncBackend

        options = ExecOptions(command=self.probe.command)
        if not isinstance(self.backend, RuncBackend):  # chroot: no timeout (setns in-process)
            rootfs = self.bundle / "rootfs"
            return run_exec(
                self.backend, self.container_id, self.bundle, rootfs, options, stdio=stdio
            )
        pid = spawn_exec(self.backend, self.container_id, self.bundle, options, stdio=stdio)
        pidfd = os.pidfd_open(pid)
        try:
            ready, _, _ = select.select([pidfd], [], [], self.probe.timeout)
            if not ready:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            os.close(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return -1
        return exit_status(status) if ready else None


def _go_duration(seconds: float) -> str:
    """Go's rendering of a whole or fractional number of seconds (``30s``, ``1.5s``, ``1m0s``)."""
    if seconds >= 60:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes)}m{rest:g}s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"

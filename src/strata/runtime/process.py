"""Processes around a container: exit statuses, signal forwarding, liveness by /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

# What `docker run` (sig-proxy) forwards: everything a user sends to stop or poke a process.
FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGCONT,
)


def exit_status(wait_status: int) -> int:
    """A shell-style exit status from a ``waitpid`` status: the code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def wait_exit(pid: int) -> int:
    """Wait for a child (or an adopted orphan, when we are a subreaper); its exit status."""
    _, status = os.waitpid(pid, 0)
    return exit_status(status)


@contextmanager
def forward_signals(send: Callable[[int], None]) -> Iterator[None]:
    """While inside, the signals in FORWARDED_SIGNALS are passed to ``send`` instead of acting.

    Only the main thread can install handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        # ProcessLookupError: the container is already gone, its exit is on its way.
        with contextlib.suppress(OSError):
            send(signum)

    previous = {sig: signal.signal(sig, handler) for sig in FORWARDED_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class SignalRelay:
    """A :func:`forward_signals` target that may be set later: signals that come before it
    is known (while the container starts) are kept and sent once it is, not lost."""

    def __init__(self) -> None:
        self._send: Callable[[int], None] | None = None
        self._pending: list[int] = []

    def __call__(self, sig: int) -> None:
        if self._send is None:
            self._pending.append(sig)
        else:
            self._send(sig)

    def target(self, send: Callable[[int], None]) -> None:
        """From now on signals go to ``send``; those kept so far go first."""
        self._send = send
        pending, self._pending = self._pending, []
        for sig in pending:
            with contextlib.suppress(OSError):
                send(sig)


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The parts of /proc/PID/stat that identify a process and tell whether it still runs."""

    state: str  # R, S, D, Z, ...
    start_time: int  # clock ticks after boot: with the pid, unique across pid reuse


def proc_stat(pid: int) -> ProcStat | None:
    """The process's state and start time, or None if no such process exists."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields resume after the last ")".
    fields = raw[raw.rfind(b")") + 2 :].split()
    return ProcStat(state=fields[0].decode(), start_time=int(fields[19]))


def is_alive(pid: int, start_time: int) -> bool:
    """Whether ``pid`` is still the process that started at ``start_time`` and not a zombie."""
    info = proc_stat(pid)
    return info is not None and info.start_time == start_time and info.state not in ("Z", "X")

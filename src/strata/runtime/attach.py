"""The attached command's side of a monitored container (``run`` without ``-d``, ``start -a``).

The monitor copies the container's output to our stdout/stderr itself (it inherited them when we
forked it); what is left to us is what only the terminal's owner can do: forward the signals we
get to the container, and with a pty put our terminal in raw mode, send our keystrokes to the
container's console and keep its window size in step with ours. We return the exit code the
monitor reports.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

from strata.runtime.detach import EscapeFilter
from strata.runtime.monitor import MonitorLink
from strata.runtime.options import Attach
from strata.runtime.process import SignalRelay, forward_signals
from strata.runtime.tty import raw_mode, set_terminal_size, terminal_size

if TYPE_CHECKING:
    from strata.runtime.containers import Container
    from strata.runtime.lifecycle import Containers

_CHUNK = 1 << 16


def run_attached(
    service: Containers,
    container: Container,
    *,
    stdio: tuple[int, int, int] = (0, 1, 2),
    interactive: bool = False,
    console_size: tuple[int, int] | None = None,
    detach_keys: bytes | None = None,
) -> int:
    """Start ``container`` under its monitor attached to ``stdio``; its exit code.

    The monitor copies the output to ``stdio`` (and to the log); with ``interactive`` the
    container reads ``stdio``'s stdin (through its console with a terminal). Signals we get
    are forwarded to the container from before the start, so none is lost meanwhile. If the
    monitor dies, the code is what the reconciled record says (255 if it says none).
    With a terminal and ``interactive``, typing ``detach_keys`` (parsed, see
    :mod:`.detach`) raises `Detached`: we leave, the container runs on under its monitor.
    """
    tty = container.config.tty
    attach = Attach(stdin=interactive, console_size=console_size if tty else None, stdio=stdio)
    relay = SignalRelay()
    with forward_signals(relay):  # from before the start: a signal meanwhile is kept, not lost
        link = service.start(container, attach=attach)
        assert link is not None
        try:
            code = attach_client(
                link,
                stdin=stdio[0] if interactive and tty else None,
                stdout=stdio[1],
                relay=relay,
                detach_keys=detach_keys,
            )
        finally:
            link.close()
    if code is None:  # the monitor died: what the record says, once reconciled
        current = service.refresh(container)
        code = current.exit_code if current and current.exit_code is not None else 255
    return code


def attach_client(
    link: MonitorLink,
    *,
    stdin: int | None,
    stdout: int = 1,
    relay: SignalRelay | None = None,
    detach_keys: bytes | None = None,
) -> int | None:
    """Stay with the container until it exits; its exit code (None: the monitor died).

    ``stdin`` is our descriptor to send to the container's console (None: send nothing);
    without a console the container already reads our stdin itself. ``relay``: the caller
    forwards signals through it already (since before the start, so none is lost).
    """
    try:
        pidfd: int | None = os.pidfd_open(link.pid)
    except OSError:
        pidfd = None

    def send(sig: int) -> None:
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, sig)

    try:
        with contextlib.ExitStack() as stack:
            if relay is None:
                relay = SignalRelay()
                stack.enter_context(forward_signals(relay))
            relay.target(send)
            if link.console is not None:
                _copy_keys(link, stdin, stdout, detach_keys)
            return link.wait_exit()
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _copy_keys(
    link: MonitorLink, stdin: int | None, stdout: int, detach_keys: bytes | None = None
) -> None:
    """Send ``stdin`` to the console until the monitor speaks (the container exited), or
    until the detach keys are typed (`Detached`)."""
    console = link.console
    assert console is not None
    size_from = next((fd for fd in (stdin, stdout) if fd is not None and os.isatty(fd)), None)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def resize() -> None:
        if size_from is not None and (size := terminal_size(size_from)) is not None:
            with contextlib.suppress(OSError):
                set_terminal_size(console, *size)

    def on_winch(_signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            os.write(wake_w, b"w")

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGWINCH, on_winch) if main else None
    reading = stdin is not None
    escape = EscapeFilter(detach_keys) if detach_keys else None
    try:
        resize()
        with raw_mode(stdin):
            while True:
                poller = select.poll()
                poller.register(link.fileno(), select.POLLIN)
                poller.register(wake_r, select.POLLIN)
                if reading and stdin is not None:
                    poller.register(stdin, select.POLLIN)
                events = dict(poller.poll())
                if link.fileno() in events:
                    return
                if wake_r in events:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 64)
                    resize()
                if stdin is not None and stdin in events:
                    try:
                        chunk = os.read(stdin, _CHUNK)
                    except OSError:
                        chunk = b""
                    if chunk and escape is not None:
                        chunk = escape.feed(chunk)  # raises Detached at the whole sequence
                        if chunk:
                            _send(console, chunk)
                    elif chunk:
                        _send(console, chunk)
                    else:  # nothing more to send; the hangup that comes with it is forwarded
                        reading = False
    finally:
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)
        os.close(wake_r)
        os.close(wake_w)


def _send(console: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(console, view) :]
        except BlockingIOError:
            poller = select.poll()
            poller.register(console, select.POLLOUT)
            poller.poll(1000)
        except OSError:  # the container's terminal is closing: the keys have nowhere to go
            return

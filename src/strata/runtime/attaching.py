"""``docker attach`` to a container that runs already: its output from now on, its exit code.

The container's monitor writes everything the container prints to its log as it comes; an
attached client follows the log from its current end (stdout to ours, stderr to ours), proxies
the signals it gets to the container (``--sig-proxy``, not with a terminal, as Docker), and
ends with the container's exit code. On a terminal the detach keys end it with `Detached`.

Our stdin reaches the container through its monitor's input door (`strata.runtime.inputdoor`):
on a terminal what is typed, less the detach keys, is written to the container's terminal or
stdin pipe; from a pipe or file it is copied until it ends (the container's stdin stays open,
as Docker's does for a container that is not ``--attach``-once).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from strata.errors import Conflict, StrataError
from strata.runtime.containers import Container, State
from strata.runtime.detach import EscapeFilter
from strata.runtime.inputdoor import open_input
from strata.runtime.logs import follow, read_entries
from strata.runtime.pausing import is_paused
from strata.runtime.tty import raw_mode

if TYPE_CHECKING:
    from strata.runtime.lifecycle import Containers

PROXIED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
           signal.SIGUSR2)  # fmt: skip


def check_attachable(service: Containers, container: Container) -> None:
    """Docker's refusals: a container that does not run, or is paused."""
    if container.state is not State.RUNNING:
        raise Conflict("You cannot attach to a stopped container, start it first")
    if is_paused(service, container):
        raise Conflict("You cannot attach to a paused container, unpause it first")


@contextlib.contextmanager
def _proxied(service: Containers, container: Container, enabled: bool) -> Iterator[None]:
    """Forward the signals we get to the container while attached."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(StrataError):
            service.kill(container, signum)

    previous = {sig: signal.signal(sig, forward) for sig in PROXIED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def attach_running(
    service: Containers,
    container: Container,
    *,
    stdout: IO[bytes],
    stderr: IO[bytes],
    stdin: int | None = None,
    detach_keys: bytes | None = None,
    sig_proxy: bool = True,
) -> int:
    """Stay with the running ``container`` until it exits; its exit code.

    ``stdin``: a terminal to watch for ``detach_keys`` (raising ``Detached`` when typed).
    """
    from strata.runtime.lifecycle import owned

    check_attachable(service, container)
    path = service.log_path(container)
    _, offset = read_entries(path, tail=0)
    streams = {"stdout": stdout, "stderr": stderr}
    done = threading.Event()

    def copy() -> None:
        try:
            for entry in follow(path, offset, running=lambda: owned(service, container)):
                stream = streams.get(entry.stream, stdout)
                stream.write(entry.text.encode())
                stream.flush()
        finally:
            done.set()

    copier = threading.Thread(target=copy, name="attach-output", daemon=True)
    copier.start()
    target = open_input(container.id) if stdin is not None else None
    watching = stdin is not None and detach_keys is not None and os.isatty(stdin)
    try:
        with _proxied(service, container, sig_proxy and not container.config.tty):
            if watching:
                assert stdin is not None and detach_keys is not None
                _watch_keys(stdin, EscapeFilter(detach_keys), done, target)
            elif stdin is not None and target is not None:
                _copy_input(stdin, target, done)
            else:
                done.wait()
    finally:
        if target is not None:
            os.close(target)
    copier.join()
    return service.wait(container)


def _watch_keys(
    stdin: int, escape: EscapeFilter, done: threading.Event, target: int | None
) -> None:
    """Read our terminal (raw) until the container's output ends: the detach keys end the
    attach, the rest goes to ``target`` (the container's input), if it takes any."""
    with raw_mode(stdin):
        while not done.is_set():
            if not select.select([stdin], [], [], 0.1)[0]:
                continue
            data = os.read(stdin, 1024)
            if not data:
                done.wait()
                return
            passed = escape.feed(data)  # raises Detached at the whole sequence
            if target is not None and passed and not _send(target, passed):
                target = None


def _copy_input(stdin: int, target: int, done: threading.Event) -> None:
    """Copy a pipe or file on our stdin to the container's input until either ends."""
    while not done.is_set():
        if not select.select([stdin], [], [], 0.1)[0]:
            continue
        data = os.read(stdin, 65536)
        if not data or not _send(target, data):
            done.wait()
            return


def _send(target: int, data: bytes) -> bool:
    """Write all of ``data`` to the container's input; False once it is gone."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(target, view) :]
    except OSError:
        return False
    return True

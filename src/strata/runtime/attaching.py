"""``docker attach`` to a container that runs already: its output from now on, its exit code.

The container's monitor writes everything the container prints to its log as it comes; an
attached client follows the log from its current end (stdout to ours, stderr to ours), proxies
the signals it gets to the container (``--sig-proxy``, not with a terminal, as Docker), and
ends with the container's exit code. On a terminal the detach keys end it with `Detached`.

TODO(cmds): sending our stdin to a container that runs already needs its monitor to take a
second client (today only the command that started it can send input); until then what is
typed, but the detach keys, is not delivered.
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
    watching = stdin is not None and detach_keys is not None and os.isatty(stdin)
    with _proxied(service, container, sig_proxy and not container.config.tty):
        if watching:
            assert stdin is not None and detach_keys is not None
            _watch_keys(stdin, EscapeFilter(detach_keys), done)
        else:
            done.wait()
    copier.join()
    return service.wait(container)


def _watch_keys(stdin: int, escape: EscapeFilter, done: threading.Event) -> None:
    """Read our terminal (raw) for the detach keys until the container's output ends."""
    with raw_mode(stdin):
        while not done.is_set():
            if not select.select([stdin], [], [], 0.1)[0]:
                continue
            data = os.read(stdin, 1024)
            if not data:
                done.wait()
                return
            escape.feed(data)  # raises Detached at the whole sequence

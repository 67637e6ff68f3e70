"""``run -t`` through a real pty: the test is the terminal, the driver runs the container."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from strata.runtime.backend import RuntimeBackend
from strata.runtime.tty import set_terminal_size, terminal_size
from tests.runtime.helpers import driver_argv, make_spec, new_id, prepare

pytestmark = [pytest.mark.root, pytest.mark.peers]


class Terminal:
    """The user's side of a terminal: a pty whose slave is the driver's controlling tty."""

    def __init__(self, master: int, slave: int, proc: subprocess.Popen[bytes]) -> None:
        self.master, self.slave, self.proc = master, slave, proc
        self.seen = b""

    def expect(self, text: bytes, timeout: float = 20.0, *, after: int = 0) -> bytes:
        """Wait until ``text`` appears in the output (past offset ``after``)."""
        deadline = time.monotonic() + timeout
        while text not in self.seen[after:]:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not seen in {self.seen!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                assert chunk, f"terminal closed; {text!r} not seen in {self.seen!r}"
                self.seen += chunk
        return self.seen

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self) -> int:
        code = self.proc.wait(timeout=30)
        while select.select([self.master], [], [], 0.1)[0]:  # collect the last output
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk
        return code


@contextmanager
def terminal(
    backend: RuntimeBackend, tmp_path: Path, rootfs: Path, *args: str, size: tuple[int, int]
) -> Iterator[Terminal]:
    container_id = new_id()
    spec = make_spec(rootfs, *args, terminal=True, console_size=size)
    bundle = prepare(tmp_path, spec, container_id)
    master, slave = os.openpty()
    set_terminal_size(slave, *size)

    proc = subprocess.Popen(
        driver_argv(backend, bundle, container_id),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,  # the driver then makes the pty its controlling terminal
    )
    term = Terminal(master, slave, proc)
    try:
        yield term
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)


def test_tty_window_size_and_exit_code(
    backend: RuntimeBackend, rootfs: Path, tmp_path: Path
) -> None:
    script = "tty; stty size; read line; echo got:$line; stty size; exit 7"
    with terminal(backend, tmp_path, rootfs, "sh", "-c", script, size=(33, 101)) as term:
        saved = termios.tcgetattr(term.slave)
        seen = term.expect(b"33 101")
        assert b"/dev/pts/0" in seen
        # The user resizes the window: the kernel signals SIGWINCH to the driver, which must
        # pass the new size on to the container's pty.
        set_terminal_size(term.master, 40, 120)
        time.sleep(0.3)
        term.send(b"hello\r")
        term.expect(b"40 120")
        assert b"got:hello" in term.seen
        assert term.wait() == 7
        assert termios.tcgetattr(term.slave) == saved  # raw mode undone
        assert terminal_size(term.slave) == (40, 120)


def test_ctrl_c_and_ctrl_d_reach_the_container(
    backend: RuntimeBackend, rootfs: Path, tmp_path: Path
) -> None:
    with terminal(backend, tmp_path, rootfs, "sh", size=(24, 80)) as term:
        term.expect(b"# ")
        term.send(b"echo sl''eeping; sleep 100\r")
        term.expect(b"sleeping")
        # Ctrl-C: a byte for the container's line discipline, not a signal for us. Again if it
        # came while the shell was still starting sleep (it is lost then, as on any terminal).
        for _ in range(10):
            mark = len(term.seen)
            term.send(b"\x03")
            try:
                term.expect(b"# ", timeout=1, after=mark)
                break
            except AssertionError:
                continue
        term.send(b"echo status=$?\r")
        term.expect(b"status=130")
        term.send(b"\x04")  # Ctrl-D at an empty prompt ends the shell
        assert term.wait() == 0
        assert term.proc.returncode == 0


def test_interactive_exit(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    with terminal(backend, tmp_path, rootfs, "bash", size=(24, 80)) as term:
        term.expect(b"# ")
        # Type only once cat runs: the shell's line editor would swallow typeahead.
        term.send(b"echo re''ady; cat\r")
        term.expect(b"ready")
        term.send(b"abc\r")
        term.expect(b"abc\r\nabc\r\n")  # the echo of the pty, then cat's output
        term.send(b"\x04")
        term.send(b"exit 3\r")
        assert term.wait() == 3


def test_sigterm_to_the_driver_reaches_the_container(
    backend: RuntimeBackend, rootfs: Path, tmp_path: Path
) -> None:
    script = "trap 'echo caught; exit 143' TERM; echo ready; while :; do sleep 0.1; done"
    with terminal(backend, tmp_path, rootfs, "sh", "-c", script, size=(24, 80)) as term:
        term.expect(b"ready")
        term.proc.send_signal(signal.SIGTERM)
        assert term.wait() == 143
        assert b"caught" in term.seen

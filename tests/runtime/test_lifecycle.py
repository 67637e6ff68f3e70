"""create/start/state/kill/delete by ID, with a monitor process owning stdio and the exit status."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from strata.errors import Conflict, ContainerNotFound
from strata.runtime import Status
from strata.runtime.backend import RuntimeBackend
from tests.runtime.helpers import make_spec, monitor_argv, new_id, prepare

pytestmark = [pytest.mark.root, pytest.mark.peers]


class Monitored:
    def __init__(self, proc: subprocess.Popen[str], container_id: str, out: Path, err: Path):
        self.proc, self.id, self.out, self.err = proc, container_id, out, err
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[:1] == ["created"], line
        self.pid = int(line[1])

    def exit_code(self) -> int:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        assert line[:1] == ["exit"], line
        assert self.proc.wait(timeout=30) == 0
        return int(line[1])


@contextmanager
def monitored(
    backend: RuntimeBackend, tmp_path: Path, rootfs: Path, *args: str, **changes: object
) -> Iterator[Monitored]:
    container_id = new_id()
    bundle = prepare(tmp_path, make_spec(rootfs, *args, **changes), container_id)
    out, err = tmp_path / f"{container_id}.out", tmp_path / f"{container_id}.err"
    argv = monitor_argv(backend, bundle, container_id, out, err)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        yield Monitored(proc, container_id, out, err)
    finally:
        proc.kill()
        proc.wait()
        with suppress(ContainerNotFound):
            backend.delete(container_id, force=True)


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_create_start_kill_delete(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    script = "echo started; echo to-err >&2; exec sleep 100"
    with monitored(backend, tmp_path, rootfs, "sh", "-c", script) as c:
        state = backend.state(c.id)
        assert (state.status, state.pid) == (Status.CREATED, c.pid)
        time.sleep(0.2)
        assert c.out.read_text() == ""  # nothing runs before start
        backend.start(c.id)
        wait_for(lambda: c.out.read_text() == "started\n")
        assert c.err.read_text() == "to-err\n"
        assert backend.state(c.id).status is Status.RUNNING
        with pytest.raises(Conflict):
            backend.start(c.id)
        with pytest.raises(Conflict):
            backend.delete(c.id)
        backend.kill(c.id, signal.SIGKILL)
        assert c.exit_code() == 137
        wait_for(lambda: backend.state(c.id).status is Status.STOPPED)
        assert backend.state(c.id).pid == 0
        with pytest.raises(Conflict):
            backend.kill(c.id)
        backend.delete(c.id)
        with pytest.raises(ContainerNotFound):
            backend.state(c.id)


def test_exit_status_reaches_the_monitor(
    backend: RuntimeBackend, rootfs: Path, tmp_path: Path
) -> None:
    with monitored(backend, tmp_path, rootfs, "sh", "-c", "echo bye; exit 5") as c:
        backend.start(c.id)
        assert c.exit_code() == 5
        assert c.out.read_text() == "bye\n"
        backend.delete(c.id)


def test_sigterm_to_a_handling_init(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    script = "trap 'exit 143' TERM; echo ready; while :; do sleep 0.1; done"
    with monitored(backend, tmp_path, rootfs, "sh", "-c", script) as c:
        backend.start(c.id)
        wait_for(lambda: c.out.read_text() == "ready\n")
        backend.kill(c.id)  # SIGTERM, as `docker stop` sends first
        assert c.exit_code() == 143


def test_deleting_a_created_container_kills_it(
    backend: RuntimeBackend, rootfs: Path, tmp_path: Path
) -> None:
    with monitored(backend, tmp_path, rootfs, "true") as c:
        backend.delete(c.id)
        assert c.exit_code() == 137
        with pytest.raises(ContainerNotFound):
            backend.state(c.id)


def test_terminal_console_goes_to_the_monitor(
    backend: RuntimeBackend, rootfs: Path, tmp_path: Path
) -> None:
    script = "tty; stty size; echo hi; exit 4"
    with monitored(
        backend, tmp_path, rootfs, "sh", "-c", script, terminal=True, console_size=(24, 80)
    ) as c:
        backend.start(c.id)
        assert c.exit_code() == 4
        assert c.out.read_text().splitlines() == ["/dev/pts/0", "24 80", "hi"]
        backend.delete(c.id)


def test_command_not_found_at_create(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    from strata.errors import CommandNotFound

    container_id = new_id()
    bundle = prepare(tmp_path, make_spec(rootfs, "nope"), container_id)
    with pytest.raises(CommandNotFound):
        backend.create(container_id, bundle)
    with pytest.raises(ContainerNotFound):
        backend.state(container_id)

"""The owner lock: held across a fork, dropped by death however it comes; signals, options."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from strata.errors import InvalidArgument
from strata.oci.config import ContainerConfig
from strata.runtime.options import RunOptions, entrypoint_cmd, parse_signal, process_args
from strata.runtime.owner import OwnerLock, owner_alive
from strata.runtime.process import SignalRelay


def test_lock_is_exclusive_and_probing_does_not_take_it(tmp_path: Path) -> None:
    lock = OwnerLock.try_acquire(tmp_path)
    assert lock is not None and lock.fd >= 0
    assert OwnerLock.try_acquire(tmp_path) is None
    assert owner_alive(tmp_path) and owner_alive(tmp_path)
    lock.release()
    lock.release()  # idempotent
    assert not owner_alive(tmp_path)
    again = OwnerLock.try_acquire(tmp_path)
    assert again is not None
    again.release()


def test_a_forked_holder_keeps_it_and_its_death_drops_it(tmp_path: Path) -> None:
    lock = OwnerLock.try_acquire(tmp_path)
    assert lock is not None
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # the monitor's side: holds the inherited lock until killed
        os.close(read_fd)
        os.write(write_fd, b"x")
        time.sleep(60)
        os._exit(0)
    os.close(write_fd)
    assert os.read(read_fd, 1) == b"x"
    os.close(read_fd)
    lock.release()  # the forking command leaves ...
    assert owner_alive(tmp_path)  # ... the lock stays with the fork
    assert OwnerLock.acquire(tmp_path, 0.1) is None
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    assert not owner_alive(tmp_path)
    taken = OwnerLock.acquire(tmp_path, 5)
    assert taken is not None
    taken.release()


def test_a_removed_container_has_nothing_to_own(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    assert not owner_alive(gone)
    empty = OwnerLock.try_acquire(gone)
    assert empty is not None and empty.fd == -1


@pytest.mark.parametrize(
    ("text", "number"),
    [("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("9", 9), ("sigusr1", signal.SIGUSR1)],
)
def test_parse_signal(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["", "BOGUS", "0", "999", "SIG"])
def test_parse_signal_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument, match="Invalid signal"):
        parse_signal(text)


def test_signal_relay_keeps_early_signals() -> None:
    sent: list[int] = []
    relay = SignalRelay()
    relay(signal.SIGTERM)
    relay(signal.SIGINT)
    relay.target(sent.append)
    relay(signal.SIGUSR1)
    assert sent == [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1]


def test_entrypoint_and_cmd_as_docker_records_them() -> None:
    image = ContainerConfig(entrypoint=("/entry",), cmd=("default",))
    assert entrypoint_cmd(image, RunOptions()) == (("/entry",), ("default",))
    assert entrypoint_cmd(image, RunOptions(command=("x",))) == (("/entry",), ("x",))
    assert entrypoint_cmd(image, RunOptions(entrypoint="")) == (None, None)
    assert entrypoint_cmd(image, RunOptions(entrypoint="sh", command=("-c", "true"))) == (
        ("sh",),
        ("-c", "true"),
    )
    assert process_args(image, RunOptions(command=("x",))) == ("/entry", "x")
    with pytest.raises(InvalidArgument, match="No command specified"):
        process_args(ContainerConfig(), RunOptions())

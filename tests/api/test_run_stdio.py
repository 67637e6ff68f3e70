"""`strata.run` on the caller's stdio, as ``strata run`` uses it: descriptors or streams, the
container's stdin (``interactive``), a terminal (``tty``), and ``detach`` with ``remove``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import strata
from tests.api.conftest import BASE

pytestmark = [pytest.mark.root, pytest.mark.peers]


def test_output_goes_to_the_given_descriptors_and_to_the_log(
    debian_root: Path, tmp_path: Path
) -> None:
    script = "echo out; echo err >&2; exit 4"
    for remove in (True, False):
        with (
            open(os.devnull, "rb") as null,
            (tmp_path / f"out{remove}").open("w+b") as out,
            (tmp_path / f"err{remove}").open("w+b") as err,
        ):
            result = strata.run(
                BASE, ["sh", "-c", script], stdio=(null, out, err.fileno()), remove=remove,
                name=f"c{remove}", root=debian_root,
            )  # fmt: skip
        assert (result.exit_code, result.stdout, result.stderr) == (4, b"", b"")
        assert result.container.state == "exited" and result.container.exit_code == 4
        assert (tmp_path / f"out{remove}").read_bytes() == b"out\n"
        assert (tmp_path / f"err{remove}").read_bytes() == b"err\n"
    # Without remove the container ran under its monitor: it is kept, with its log.
    kept = strata.containers(all=True, root=debian_root)
    assert [(c.name, c.exit_code) for c in kept] == [("cFalse", 4)]
    log = (debian_root / "containers" / kept[0].id).glob("*.log")
    assert b"out" in b"".join(p.read_bytes() for p in log)


def test_interactive_reads_the_given_stdin(debian_root: Path, tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(b"typed\n")
    for remove in (True, False):
        with (tmp_path / "in").open("rb") as stdin, (tmp_path / "out").open("w+b") as out:
            result = strata.run(
                BASE, ["cat"], interactive=True, stdio=(stdin, out, out), remove=remove,
                root=debian_root,
            )  # fmt: skip
        assert result.exit_code == 0
        assert (tmp_path / "out").read_bytes() == b"typed\n"
    with (tmp_path / "in").open("rb") as stdin, (tmp_path / "out").open("w+b") as out:
        # Not interactive: the container's stdin is empty, whatever stdio's is.
        strata.run(BASE, ["cat"], stdio=(stdin, out, out), remove=True, root=debian_root)
        assert (tmp_path / "out").read_bytes() == b""


def test_tty_gives_the_container_a_terminal(debian_root: Path) -> None:
    master, slave = os.openpty()
    try:
        for remove in (True, False):
            result = strata.run(
                BASE, ["sh", "-c", "test -t 0 && test -t 1 && echo yes"], tty=True,
                stdio=(slave, slave, slave), remove=remove, root=debian_root,
            )  # fmt: skip
            assert result.exit_code == 0
            assert b"yes" in os.read(master, 4096)
    finally:
        os.close(master)
        os.close(slave)


def test_detach_with_remove_leaves_nothing_once_it_ends(debian_root: Path) -> None:
    result = strata.run(BASE, ["true"], detach=True, remove=True, root=debian_root)
    assert result.exit_code is None and len(result.container.id) == 64
    deadline = time.monotonic() + 30  # a bound on the wait, not a timing assertion
    while strata.containers(all=True, root=debian_root) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert strata.containers(all=True, root=debian_root) == []

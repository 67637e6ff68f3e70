"""``strata run`` / ``ps`` / ``rm`` end to end on a real Debian image and a real runtime.

The ``-ti`` test drives a real terminal: a tmux session on its own server, read back with
``capture-pane``, as a user at a keyboard would see it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Strata, debian_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.peers]


@pytest.fixture
def debian(strata: Strata) -> Strata:
    strata("import", str(debian_rootfs_tar()), "debian:bookworm")
    return strata


def _mounts_under(root: Path) -> list[str]:
    return [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(root) in line
    ]


def test_run_prints_and_exits_with_the_containers_code(debian: Strata) -> None:
    assert debian("run", "--rm", "debian:bookworm", "echo", "hello").stdout == "hello\n"
    proc = debian("run", "--name", "c1", "debian:bookworm", "sh", "-c", "exit 3", check=False)
    assert proc.returncode == 3
    ps = debian("ps", "-a").stdout.splitlines()
    assert ps[0].split()[:2] == ["CONTAINER", "ID"]
    assert "Exited (3)" in ps[1] and ps[1].rstrip().endswith("c1")
    assert debian("ps", "-q").stdout == ""  # nothing running
    proc = debian(
        "run", "--rm", "-e", "A=1", "-w", "/tmp", "debian:bookworm", "sh", "-c", "echo $A $PWD"
    )
    assert proc.stdout == "1 /tmp\n"
    net = debian(
        "run", "--rm", "--network", "none", "debian:bookworm", "cat", "/proc/net/dev"
    ).stdout
    assert [line.split(":")[0].strip() for line in net.splitlines()[2:]] == ["lo"]
    assert debian("rm", "c1").stdout == "c1\n"
    assert debian("ps", "-a", "-q").stdout == ""
    assert not _mounts_under(debian.root)
    assert not any((debian.root / "containers").iterdir())


def test_run_errors_are_one_line(debian: Strata) -> None:
    proc = debian("run", "--rm", "debian:bookworm", "nope", check=False)
    assert proc.returncode == 127
    assert proc.stderr == 'Error: exec: "nope": executable file not found in $PATH\n'
    debian("run", "--name", "dup", "debian:bookworm", "true")
    assert 'The container name "/dup" is already in use' in debian.fail(
        "run", "--name", "dup", "debian:bookworm", "true"
    )
    assert "No such image: nope:1" in debian.fail("run", "--pull", "never", "nope:1")
    assert "No such container: ghost" in debian.fail("rm", "ghost")
    assert "network nosuch not found" in debian.fail(
        "run", "--network", "nosuch", "debian:bookworm", "true"
    )
    # The image a container stands on cannot be removed without -f.
    assert "must force" in debian.fail("rmi", "debian:bookworm")
    debian("rm", "dup")
    assert not _mounts_under(debian.root)


def test_stdin_is_dev_null_without_i(debian: Strata) -> None:
    for extra in ([], ["--rm"]):
        assert (
            debian("run", *extra, "--name", "s1", "debian:bookworm", "cat", input=b"x\n").stdout
            == ""
        )
        assert debian("run", *extra, "--name", "s2", "-i", "debian:bookworm", "cat",
                      input=b"typed\n").stdout == "typed\n"  # fmt: skip
        if not extra:
            assert debian("logs", "s2").stdout == "typed\n"  # an attached run is logged too
            debian("rm", "s1", "s2")
    assert debian.fail("run", "-ti", "debian:bookworm", "true") == (
        "Error: the input device is not a TTY"
    )


class Tmux:
    """A tmux server of our own, one session in it: the user's terminal."""

    def __init__(self, name: str) -> None:
        self.socket = f"strata-test-{os.getpid()}-{name}"
        self.session = name

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    def start(self, command: str) -> None:
        # Right after the last session was killed, its server may still be exiting and refuse
        # a new one (seen in a loaded CI run): end it and try again.
        for attempt in range(5):
            try:
                self("new-session", "-d", "-s", self.session, "-x", "120", "-y", "40", command)
                return
            except subprocess.CalledProcessError:
                if attempt == 4:
                    raise
                self.close()
                time.sleep(0.5)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", self.session)

    def expect(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            found = re.search(pattern, screen)
            if found:
                return found
            assert time.monotonic() < deadline, f"{pattern!r} not on the screen:\n{screen}"
            time.sleep(0.1)

    def type(self, line: str) -> None:
        self("send-keys", "-t", self.session, line, "Enter")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    terminal = Tmux("strata")
    try:
        yield terminal
    finally:
        terminal.close()


@pytest.mark.parametrize("runtime", ["runc", "chroot"])
def test_run_ti_is_a_real_terminal(debian: Strata, tmux: Tmux, runtime: str) -> None:
    strata = f"env STRATA_ROOT={shlex.quote(str(debian.root))} {sys.executable} -m strata"
    run = f"{strata} run --runtime {runtime} --name=base-container -ti debian:bookworm bash"
    tmux.start(f"{run}; echo EXIT=$?; sleep 600")
    prompt = tmux.expect(r"root@([0-9a-f]{12}):/#")
    cid = debian("ps", "-q").stdout.strip()
    assert prompt.group(1) == cid  # the container's own hostname
    tmux.type("echo hello $((6*7))")
    tmux.expect(r"\nhello 42\n")
    tmux.type("stty size; tty")
    tmux.expect(r"\n40 120\n/dev/pts/0\n")
    tmux("resize-window", "-t", tmux.session, "-x", "100", "-y", "30")
    tmux.type("stty size")
    tmux.expect(r"\n30 100\n")
    tmux.type("exit 3")
    tmux.expect(r"EXIT=3")
    assert debian("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.startswith(
        "base-container Exited (3) "
    )
    assert "hello 42" in debian("logs", "base-container").stdout
    debian("rm", "base-container")
    # Ctrl-D ends the shell too; --rm in the foreground is the path without a monitor.
    tmux("kill-session", "-t", tmux.session)
    tmux.start(
        f"{strata} run --runtime {runtime} --rm -ti debian:bookworm bash; echo EXIT=$?; sleep 600"
    )
    tmux.expect(r"root@[0-9a-f]{12}:/#")
    tmux.type("true")
    tmux("send-keys", "-t", tmux.session, "C-d")
    tmux.expect(r"EXIT=0")
    assert debian("ps", "-a", "-q").stdout == ""
    assert not _mounts_under(debian.root)


@pytest.mark.parametrize("runtime", ["runc", "chroot"])
def test_start_ai_and_exec_ti_are_real_terminals(debian: Strata, tmux: Tmux, runtime: str) -> None:
    strata = f"env STRATA_ROOT={shlex.quote(str(debian.root))} {sys.executable} -m strata"
    debian("create", "--runtime", runtime, "-ti", "--name", "later", "debian:bookworm", "bash")
    tmux.start(f"{strata} start -a -i later; echo EXIT=$?; sleep 600")
    tmux.expect(r"root@[0-9a-f]{12}:/#")
    tmux.type("echo in-$((2+3))")
    tmux.expect(r"\nin-5\n")
    tmux.type("exit 4")
    tmux.expect(r"EXIT=4")
    tmux("kill-session", "-t", tmux.session)

    debian("run", "-d", "--runtime", runtime, "--name", "busy", "debian:bookworm", "sleep", "600")
    tmux.start(f"{strata} exec -ti -w /tmp busy bash; echo EXIT=$?; sleep 600")
    tmux.expect(r"root@[0-9a-f]{12}:/tmp#")
    tmux.type("tty; stty size")
    tmux.expect(r"\n/dev/pts/\d+\n40 120\n")
    tmux.type("exit 5")
    tmux.expect(r"EXIT=5")
    assert debian("ps", "--format", "{{.Names}}").stdout == "busy\n"  # exec left it running
    debian("rm", "-f", "busy", "later")
    assert not _mounts_under(debian.root)


def test_system_df_counts_containers(debian: Strata) -> None:
    debian("run", "--name", "df1", "debian:bookworm", "sh", "-c", "head -c 100000 /dev/zero > /big")
    rows = {
        line.split()[0]: line.split() for line in debian("system", "df").stdout.splitlines()[1:]
    }
    assert rows["Images"][1:3] == ["1", "1"]  # one image, in use by a container
    assert rows["Containers"][1:3] == ["1", "0"]  # one container, not running
    assert rows["Containers"][3].endswith("kB")  # its 100 kB writable layer


def test_inspect_finds_images_and_containers(debian: Strata) -> None:
    debian("run", "--name", "insp", "debian:bookworm", "sh", "-c", "exit 4", check=False)
    out = debian("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.Name}}", "insp")
    assert out.stdout == "exited 4 /insp\n"
    assert debian("container", "inspect", "-f", "{{.Config.Image}}", "insp").stdout == (
        "debian:bookworm\n"
    )
    assert debian("inspect", "-f", "{{.Os}}", "debian:bookworm").stdout == "linux\n"
    assert "No such object: nope" in debian.fail("inspect", "nope")
    assert "No such container: nope" in debian.fail("container", "inspect", "nope")


def test_layers_stay_while_a_container_needs_them(debian: Strata) -> None:
    def snapshots() -> int:
        return sum(1 for p in (debian.root / "snapshots").iterdir() if p.name.isdigit())

    debian("run", "--name", "keep", "debian:bookworm", "true")
    before = snapshots()
    assert before >= 3  # the layer, the init layer, the container's layer
    debian("rmi", "-f", "debian:bookworm")  # untags; the container still stands on it
    assert snapshots() == before
    debian("rm", "keep")
    debian("image", "prune", "-a", "-f")
    assert snapshots() == 0

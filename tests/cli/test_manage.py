"""``rename``, ``top``, ``pause``/``unpause`` end to end with runc, and their output against
Docker's (the anchors' Docker, where it runs)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.anchors import Docker
from tests.cli.test_containers import IMAGE, assert_nothing_left, wait_until
from tests.conftest import Strata, debian_store, remove_containers

pytestmark = [pytest.mark.root, pytest.mark.peers]

TWO_SLEEPS = "sleep 1000 & sleep 2000"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Strata:
    return debian_store(tmp_path_factory, "manage", IMAGE)


@pytest.fixture
def strata(store: Strata) -> Iterator[Strata]:
    yield store
    remove_containers(store)
    assert_nothing_left(store)


def test_rename(strata: Strata) -> None:
    strata("create", "--name", "r1", IMAGE, "true")
    cid = strata("create", "--name", "r2", IMAGE, "true").stdout.strip()
    assert strata("rename", "r1", "/r3").stdout == ""  # a leading / is dropped, as Docker
    assert strata("ps", "-a", "--format", "{{.Names}}").stdout.split() == ["r2", "r3"]
    assert strata.fail("rename", "r3", "r3") == (
        "Error: Renaming a container with the same name as its current name"
    )
    assert strata.fail("rename", "r3", "r2") == (
        'Error: Error when allocating new name: Conflict. The container name "/r2" is already'
        f' in use by container "{cid}". You have to remove (or rename) that container to be'
        " able to reuse that name."
    )
    assert strata.fail("rename", "r3", "bad name") == (
        "Error: Error when allocating new name: Invalid container name (/bad name), only"
        " [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    )
    assert strata.fail("rename", "nope", "x") == "Error: No such container: nope"
    strata("rm", "r2", "r3")


def test_top_and_pause(strata: Strata) -> None:
    cid = strata("run", "-d", "--name", "p1", IMAGE, "sh", "-c", TWO_SLEEPS).stdout.strip()
    wait_until(lambda: len(strata("top", "p1").stdout.splitlines()) == 4, timeout=120)
    top = strata("top", "p1").stdout.splitlines()
    assert (
        top[0]
        == "".join(t.ljust(20) for t in ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME"]) + "CMD"
    )
    assert [line[140:] for line in top[1:]] == [
        "sh -c sleep 1000 & sleep 2000",
        "sleep 1000",
        "sleep 2000",
    ]
    custom = strata("top", "p1", "-o", "pid,comm").stdout.splitlines()
    assert custom[0] == "PID                 COMMAND"
    assert [line[20:] for line in custom[1:]] == ["sh", "sleep", "sleep"]
    assert strata.fail("top", "p1", "-o", "comm") == ("Error: Couldn't find PID field in ps output")

    assert strata("pause", "p1").stdout == "p1\n"
    assert strata.fail("pause", "p1") == f"Error: Container {cid} is already paused"
    row = strata("ps", "--format", "{{.Status}}|{{.State}}").stdout
    assert re.fullmatch(r"Up .+ \(Paused\)\|paused\n", row), row
    state = "{{.State.Status}} {{.State.Paused}} {{.State.Running}}"
    assert strata("inspect", "-f", state, "p1").stdout == "paused true true\n"
    assert strata.fail("exec", "p1", "true") == (
        "Error: Container p1 is paused, unpause the container before exec"
    )
    assert strata("unpause", "p1").stdout == "p1\n"
    assert strata.fail("unpause", "p1") == f"Error: Container {cid} is not paused"
    assert strata("inspect", "-f", state, "p1").stdout == "running false true\n"
    strata("exec", "p1", "true")

    strata("pause", "p1")
    strata("stop", "-t", "1", "p1")  # a paused container stops, as Docker's does
    assert strata("ps", "-a", "--format", "{{.Status}}").stdout.startswith("Exited (137)")
    assert strata.fail("top", "p1") == f"Error: Container {cid} is not running"
    assert strata.fail("pause", "p1") == f"Error: Container {cid} is not running"
    strata("start", "p1")
    strata("pause", "p1")
    strata("kill", "p1")  # SIGKILL thaws it
    assert strata("wait", "p1").stdout == "137\n"
    strata("start", "p1")
    strata("pause", "p1")
    strata("rm", "-f", "p1")


def test_top_matches_docker(strata: Strata, docker: Docker) -> None:
    """The same ``top`` on both: titles and the processes' columns that do not vary."""
    docker("rm", "-f", "strata-top-peer", check=False)
    docker("run", "-d", "--name", "strata-top-peer", "--network", "host", IMAGE, "sh", "-c",
           TWO_SLEEPS)  # fmt: skip
    strata("run", "-d", "--name", "strata-top-peer", IMAGE, "sh", "-c", TWO_SLEEPS)
    try:
        for args in ((), ("-o", "pid,comm,args"), ("aux",)):
            wait_until(
                lambda: len(docker("top", "strata-top-peer").stdout.splitlines()) == 4
                and len(strata("top", "strata-top-peer").stdout.splitlines()) == 4,
                timeout=120,
            )
            theirs = docker("top", "strata-top-peer", *args).stdout.splitlines()
            ours = strata("top", "strata-top-peer", *args).stdout.splitlines()
            assert ours[0] == theirs[0]
            last = theirs[0].rindex(theirs[0].split()[-1])
            assert [line[last:] for line in ours[1:]] == [line[last:] for line in theirs[1:]]
        for cmd in (("pause",), ("unpause",)):
            assert strata(*cmd, "strata-top-peer").stdout == docker(*cmd, "strata-top-peer").stdout
    finally:
        docker("rm", "-f", "strata-top-peer", check=False)
        strata("rm", "-f", "strata-top-peer", check=False)


def _on_terminal(
    argv: list[str], keys: list[bytes], env: dict[str, str], ready: bytes = b"# "
) -> tuple[int, bytes]:
    """Run ``argv`` on a new pty, type ``keys`` once it printed ``ready`` (a second after the
    start when ``ready`` is empty)."""
    import os
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execvpe(argv[0], argv, env)
    out = b""
    typed = False
    started = time.monotonic()
    deadline = started + 120
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            out += data
        if not typed and (ready in out if ready else time.monotonic() - started > 3):
            for key in keys:
                os.write(fd, key)
                time.sleep(0.2)
            typed = True
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            while select.select([fd], [], [], 0.1)[0]:  # what it printed before it left
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                out += data
            os.close(fd)
            return os.waitstatus_to_exitcode(status), out
    os.kill(pid, 9)
    raise AssertionError(f"still attached: {out!r}")


def test_detach_keys_leave_the_container_running(strata: Strata) -> None:
    import os
    import sys

    env = {**os.environ, "STRATA_ROOT": str(strata.root)}
    argv = [sys.executable, "-m", "strata", "run", "-ti", "--name", "dk1", IMAGE, "sh"]
    code, _ = _on_terminal(argv, [b"\x10", b"\x11"], env)
    assert code == 0
    assert strata("ps", "--format", "{{.Names}} {{.State}}").stdout == "dk1 running\n"
    # Ctrl-P then another key: both reach the shell, as Docker's escape proxy sends them.
    argv = [sys.executable, "-m", "strata", "run", "-ti", "--detach-keys", "ctrl-x",
            "--name", "dk2", IMAGE, "sh"]  # fmt: skip
    code, out = _on_terminal(argv, [b"\x10", b"x", b"echo hi\r", b"\x18"], env)
    assert code == 0
    assert b"\x10xecho: not found" in out
    assert sorted(strata("ps", "--format", "{{.Names}}").stdout.split()) == ["dk1", "dk2"]
    strata("rm", "-f", "dk1", "dk2")


def test_attach_to_a_running_container(strata: Strata) -> None:
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "STRATA_ROOT": str(strata.root)}
    script = (
        "echo before; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo out; echo err >&2; exit 3"
    )
    strata("run", "-d", "--name", "at1", IMAGE, "sh", "-c", script)
    wait_until(lambda: strata("logs", "at1").stdout == "before\n", timeout=120)
    attached = subprocess.Popen(
        [sys.executable, "-m", "strata", "attach", "at1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until(lambda: "attach at1" in " ".join(_cmdlines()), timeout=60)
    strata("exec", "at1", "touch", "/tmp/go")
    out, err = attached.communicate(timeout=120)
    assert (attached.returncode, out, err) == (3, b"out\n", b"err\n")  # not what came before
    assert strata.fail("attach", "at1") == (
        "Error: You cannot attach to a stopped container, start it first"
    )

    trap = "trap 'echo bye; exit 143' TERM; echo ready; while :; do sleep 0.1; done"
    strata("run", "-d", "--name", "at2", IMAGE, "sh", "-c", trap)
    wait_until(lambda: strata("logs", "at2").stdout == "ready\n", timeout=120)
    strata("pause", "at2")
    assert strata.fail("attach", "at2") == (
        "Error: You cannot attach to a paused container, unpause it first"
    )
    strata("unpause", "at2")
    attached = subprocess.Popen(
        [sys.executable, "-m", "strata", "attach", "at2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until(lambda: "attach at2" in " ".join(_cmdlines()), timeout=60)
    import time

    time.sleep(1)  # its handlers are in place once it follows the log
    attached.send_signal(signal.SIGTERM)  # proxied to the container (--sig-proxy)
    out, _ = attached.communicate(timeout=120)
    assert (attached.returncode, out) == (143, b"bye\n")

    strata("run", "-d", "--name", "at3", IMAGE, "sleep", "300")
    argv = [sys.executable, "-m", "strata", "attach", "at3"]
    code, out = _on_terminal(argv, [b"\x10", b"\x11"], env, ready=b"")
    assert (code, out) == (1, b"read escape sequence\r\n")
    assert strata("ps", "--format", "{{.Names}}").stdout == "at3\n"
    strata("rm", "-f", "at1", "at2", "at3")


def test_attach_sends_our_input(strata: Strata) -> None:
    """What we type (or pipe) reaches a container started with -i or -ti by someone else,
    through its monitor; the detach keys still leave it running."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "STRATA_ROOT": str(strata.root)}
    script = "echo ready; read a; echo got $a; read b; echo then $b; exit 4"
    strata("run", "-d", "-i", "--name", "in1", IMAGE, "sh", "-c", script)
    wait_until(lambda: strata("logs", "in1").stdout == "ready\n", timeout=120)
    piped = subprocess.run(
        [sys.executable, "-m", "strata", "attach", "in1"], env=env, input=b"one\ntwo\n",
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert (piped.returncode, piped.stdout) == (4, b"got one\nthen two\n")

    strata("run", "-d", "-t", "-i", "--name", "in2", IMAGE, "sh")
    argv = [sys.executable, "-m", "strata", "attach", "in2"]
    code, out = _on_terminal(argv, [b"echo $((6*7))\r", b"\x10", b"\x11"], env, ready=b"")
    assert code == 1 and b"42" in out, out
    assert strata("ps", "--format", "{{.Names}}").stdout == "in2\n"
    strata("rm", "-f", "in1", "in2")


def _cmdlines() -> list[str]:
    import os

    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                found.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found

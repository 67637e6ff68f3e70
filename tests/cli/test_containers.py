"""The container life cycle end to end: the real CLI, a real Debian image, runc and chroot.

Every command runs in its own process, as from another shell: state lives in the store and the
runtime, never in a process. Every test leaves nothing behind (checked after each one): no
container, no mount under the store root, no container directory, no container snapshot.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Strata, debian_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.peers]

RUNTIMES = ["runc", "chroot"]
IMAGE = "debian:bookworm"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Strata:
    """One store with the Debian image for the whole module (the import takes a second)."""
    strata = Strata(tmp_path_factory.mktemp("containers") / "store")
    strata("import", str(debian_rootfs_tar()), IMAGE)
    return strata


def mounts_under(root: Path) -> list[str]:
    return [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(root) in line
    ]


def container_snapshots(root: Path) -> list[str]:
    import sqlite3

    conn = sqlite3.connect(root / "strata.db")
    try:
        rows = conn.execute("SELECT key FROM snapshots WHERE key LIKE 'container-%'").fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


def assert_nothing_left(strata: Strata) -> None:
    assert strata("ps", "-a", "-q").stdout == ""
    assert not mounts_under(strata.root)
    containers = strata.root / "containers"
    assert not containers.exists() or not any(containers.iterdir())
    assert container_snapshots(strata.root) == []


@pytest.fixture
def strata(store: Strata) -> Iterator[Strata]:
    yield store
    leftover = store("ps", "-a", "-q", "--no-trunc").stdout.split()
    if leftover:
        store("rm", "-f", *leftover, check=False)
    assert not leftover, "the test left containers behind"
    assert_nothing_left(store)


def popen(strata: Strata, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "STRATA_ROOT": str(strata.root)}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "strata", *args], env=env, text=True, **kwargs
    )


def wait_until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def status(strata: Strata, name: str) -> str:
    out = strata("ps", "-a", "--format", "{{.Names}}|{{.Status}}").stdout
    found = [line.split("|", 1)[1] for line in out.splitlines() if line.split("|")[0] == name]
    return found[0] if found else ""


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_detached_logs_follow_wait_stop_rm(strata: Strata, runtime: str) -> None:
    script = (
        "echo out1; echo err1 >&2; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo out2; exit 7"
    )
    cid = strata("run", "-d", "--runtime", runtime, "--name", "d1", IMAGE, "sh", "-c", script)
    assert re.fullmatch(r"[0-9a-f]{64}\n", cid.stdout)
    assert strata("ps", "-q").stdout == cid.stdout[:12] + "\n"
    assert status(strata, "d1").startswith("Up ")
    wait_until(lambda: strata("logs", "d1").stdout == "out1\n")
    logs = strata("logs", "d1")
    assert (logs.stdout, logs.stderr) == ("out1\n", "err1\n")  # each to its own stream
    stamped = strata("logs", "-t", "--tail", "1", "d1")  # the last entry: err1, on stderr
    assert stamped.stdout == ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z err1\n", stamped.stderr)

    follower = popen(strata, "logs", "-f", "d1", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    waiter = popen(strata, "wait", "d1", stdout=subprocess.PIPE)
    strata("exec", "d1", "touch", "/tmp/go")  # lets the container finish
    out, err = follower.communicate(timeout=30)
    assert (follower.returncode, out, err) == (0, "out1\nout2\n", "err1\n")
    assert waiter.communicate(timeout=30)[0] == "7\n"
    assert status(strata, "d1").startswith("Exited (7) ")
    assert strata("wait", "d1").stdout == "7\n"
    assert strata("logs", "--tail", "1", "d1").stdout == "out2\n"  # after the exit too
    assert strata("stop", "d1").stdout == "d1\n"  # stopping a stopped container: no error
    assert not mounts_under(strata.root)

    strata("run", "-d", "--runtime", runtime, "--name", "d2", IMAGE, "sleep", "100")
    assert strata("stop", "-t", "1", "d2").stdout == "d2\n"  # sh as pid 1 ignores SIGTERM
    assert status(strata, "d2").startswith("Exited (137) ")
    trap = "trap 'echo bye; exit 143' TERM; echo ready; while :; do sleep 0.1; done"
    strata("run", "-d", "--runtime", runtime, "--name", "d3", IMAGE, "sh", "-c", trap)
    wait_until(lambda: strata("logs", "d3").stdout == "ready\n")
    strata("stop", "d3")
    assert strata("wait", "d3").stdout == "143\n"
    assert strata("logs", "d3").stdout == "ready\nbye\n"
    assert strata("rm", "d1", "d2", "d3").stdout == "d1\nd2\nd3\n"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_create_then_start(strata: Strata, runtime: str) -> None:
    script = "echo hi; exit 5"
    cid = strata("create", "--runtime", runtime, "--name", "c1", IMAGE, "sh", "-c", script)
    assert re.fullmatch(r"[0-9a-f]{64}\n", cid.stdout)
    assert status(strata, "c1") == "Created"
    assert not mounts_under(strata.root)  # nothing is mounted before a start
    start = strata("start", "-a", "c1", check=False)
    assert (start.returncode, start.stdout) == (5, "hi\n")
    assert status(strata, "c1").startswith("Exited (5) ")
    assert strata("start", "c1").stdout == "c1\n"  # again, detached this time
    assert strata("wait", "c1").stdout == "5\n"
    assert strata("logs", "c1").stdout == "hi\nhi\n"

    strata("create", "-i", "--runtime", runtime, "--name", "c2", IMAGE, "sh", "-c", "cat; exit 2")
    proc = strata("start", "-a", "-i", "c2", input=b"typed\n", check=False)
    assert (proc.returncode, proc.stdout) == (2, "typed\n")
    strata("rm", "c1", "c2")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exec_in_a_running_container(strata: Strata, runtime: str) -> None:
    cid = strata("run", "-d", "--runtime", runtime, "--name", "e1", IMAGE, "sleep", "100")
    script = "hostname; echo $HOME; echo err >&2; exit 4"
    proc = strata("exec", "e1", "sh", "-c", script, check=False)
    expected = (4, f"{cid.stdout[:12]}\n/root\n", "err\n")
    assert (proc.returncode, proc.stdout, proc.stderr) == expected
    out = strata("exec", "-u", "nobody", "-w", "/tmp", "-e", "A=1", "e1", "sh", "-c",
                 "id -un; pwd; echo $A $HOME").stdout  # fmt: skip
    assert out == "nobody\n/tmp\n1 /nonexistent\n"
    assert strata("exec", "-i", "e1", "cat", input=b"piped\n").stdout == "piped\n"
    assert strata("exec", "e1", "cat", input=b"ignored\n").stdout == ""  # no -i: /dev/null
    # The exec'd process lives in the container's pid namespace: sleep is its pid 1.
    assert strata("exec", "e1", "cat", "/proc/1/cmdline").stdout.startswith("sleep")
    trap = "trap 'echo term; exit 9' TERM; echo ready; while :; do sleep 0.1; done"
    execd = popen(strata, "exec", "e1", "sh", "-c", trap, stdout=subprocess.PIPE)
    assert execd.stdout is not None
    assert execd.stdout.readline() == "ready\n"
    execd.send_signal(signal.SIGTERM)  # reaches the exec'd process, as with `run`
    assert (execd.wait(timeout=30), execd.stdout.read()) == (9, "term\n")
    proc = strata("exec", "e1", "nope", check=False)
    assert proc.returncode == 126
    assert proc.stderr == 'Error: exec failed: exec: "nope": executable file not found in $PATH\n'
    strata("kill", "e1")
    message = strata.fail("exec", "e1", "true")
    assert message == f"Error: Container {cid.stdout.strip()} is not running"
    strata("rm", "e1")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_kill_with_signals(strata: Strata, runtime: str) -> None:
    script = "trap 'echo usr1' USR1; echo ready; while :; do sleep 0.1; done"
    cid = strata("run", "-d", "--runtime", runtime, "--name", "k1", IMAGE, "sh", "-c", script)
    wait_until(lambda: strata("logs", "k1").stdout == "ready\n")
    assert strata("kill", "-s", "USR1", "k1").stdout == "k1\n"
    wait_until(lambda: strata("logs", "k1").stdout == "ready\nusr1\n")
    assert strata("kill", "-s", "SIGUSR1", "k1").stdout == "k1\n"
    wait_until(lambda: strata("logs", "k1").stdout.count("usr1") == 2)
    assert status(strata, "k1").startswith("Up ")
    assert strata.fail("kill", "-s", "BOGUS", "k1") == "Error: Invalid signal: BOGUS"
    assert strata("kill", "k1").stdout == "k1\n"  # SIGKILL, and it waits for the exit
    assert status(strata, "k1").startswith("Exited (137) ")
    message = strata.fail("kill", "k1")
    assert message == (
        f"Error: Cannot kill container: k1: Container {cid.stdout.strip()} is not running"
    )
    strata("rm", "k1")


@pytest.mark.parametrize("remove", [False, True], ids=["monitored", "rm-foreground"])
def test_removed_from_another_process_while_attached(strata: Strata, remove: bool) -> None:
    args = ["run", *(["--rm"] if remove else []), "--name", "att", IMAGE]
    attached = popen(
        strata,
        *args,
        "sh", "-c", "echo ready; exec sleep 100",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert attached.stdout is not None
    assert attached.stdout.readline() == "ready\n"
    assert status(strata, "att").startswith("Up ")
    message = strata.fail("rm", "att")
    assert message.startswith("Error: You cannot remove a running container ")
    assert strata("rm", "-f", "att").stdout == "att\n"
    assert attached.wait(timeout=30) == 137
    assert strata("ps", "-a", "-q").stdout == ""
    assert not mounts_under(strata.root)


def test_signals_reach_an_attached_container(strata: Strata) -> None:
    script = "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.1; done"
    for extra in ([], ["--rm"]):
        proc = popen(
            strata, "run", *extra, "--name", "sig", IMAGE, "sh", "-c", script,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 42
        assert proc.stdout.read() == "got-term\n"
        if not extra:
            strata("rm", "sig")


def test_many_containers_at_once_are_isolated(strata: Strata) -> None:
    names = [f"many{i}" for i in range(4)]
    script = "echo $(hostname) > /tmp/me; ls /tmp; exec sleep 100"
    ids = [
        strata(
            "run", "-d", "--runtime", RUNTIMES[i % 2], "--name", name, IMAGE, "sh", "-c", script
        ).stdout.strip()
        for i, name in enumerate(names)
    ]
    assert sorted(strata("ps", "-q", "--no-trunc").stdout.split()) == sorted(ids)
    for name, cid in zip(names, ids, strict=True):

        def listed(name: str = name) -> bool:
            return strata("logs", name).stdout == "me\n"  # its /tmp holds its own file only

        wait_until(listed)
        assert strata("exec", name, "cat", "/tmp/me").stdout == f"{cid[:12]}\n"
        assert strata("exec", name, "hostname").stdout == f"{cid[:12]}\n"
        # Its own pid namespace: its sleep is its pid 1, and nothing of the others is seen.
        pids = strata("exec", name, "sh", "-c", "ls /proc | grep -c '^[0-9]'").stdout
        assert int(pids) <= 4, pids  # sleep, sh, ls, grep
    assert strata("rm", "-f", *names).stdout.split() == names


def test_run_detached_with_rm_removes_itself(strata: Strata) -> None:
    strata("run", "-d", "--rm", "--name", "gone", IMAGE, "sh", "-c", "sleep 0.3")
    wait_until(lambda: strata("ps", "-a", "-q").stdout == "")
    strata.fail("logs", "gone")


def test_detached_interactive_and_terminal(strata: Strata) -> None:
    # -di: stdin stays open (a pipe nobody writes), so cat keeps running.
    strata("run", "-di", "--name", "cat", IMAGE, "cat")
    time.sleep(0.3)
    assert status(strata, "cat").startswith("Up ")
    # -dit: the monitor owns the pty and logs what the container writes to it.
    cid = strata("run", "-dit", "--name", "tty", IMAGE, "sh", "-c", "tty; echo hi").stdout.strip()
    assert strata("wait", "tty").stdout == "0\n"
    assert strata("logs", "tty").stdout == "/dev/pts/0\nhi\n"  # text mode folds \r\n
    log = strata.root / "containers" / cid / f"{cid}-json.log"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert "".join(e["log"] for e in entries) == "/dev/pts/0\r\nhi\r\n"  # a terminal's output
    assert {e["stream"] for e in entries} == {"stdout"}
    strata("rm", "-f", "cat", "tty")


def _monitor_of(strata: Strata, name: str) -> int:
    """The monitor is the init's parent (it is the child subreaper that reaps it)."""
    import sqlite3

    conn = sqlite3.connect(strata.root / "strata.db")
    try:
        (pid,) = conn.execute("SELECT pid FROM containers WHERE name = ?", (name,)).fetchone()
    finally:
        conn.close()
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def test_a_dead_monitor_is_reconciled(strata: Strata) -> None:
    # The monitor dies, the container runs on: still seen running, stoppable, then exited 255.
    strata("run", "-d", "--name", "orphan", IMAGE, "sleep", "100")
    os.kill(_monitor_of(strata, "orphan"), signal.SIGKILL)
    time.sleep(0.2)
    assert status(strata, "orphan").startswith("Up ")
    assert strata("exec", "orphan", "echo", "still").stdout == "still\n"
    strata("stop", "-t", "1", "orphan")
    assert status(strata, "orphan").startswith("Exited (255) ")
    assert not mounts_under(strata.root)
    # Monitor and container both die: the next look records the loss and cleans up.
    strata("run", "-d", "--name", "lost", IMAGE, "sleep", "100")
    monitor = _monitor_of(strata, "lost")
    init = int(Path(f"/proc/{monitor}/task/{monitor}/children").read_text().split()[0])
    os.kill(monitor, signal.SIGKILL)
    os.kill(init, signal.SIGKILL)
    wait_until(lambda: status(strata, "lost").startswith("Exited (255) "))
    assert not mounts_under(strata.root)
    assert strata("wait", "lost").stdout == "255\n"
    strata("rm", "orphan", "lost")


def test_bad_input_is_one_line_and_leaves_nothing(strata: Strata) -> None:
    # --pull never: an image that is not here is not fetched from Docker Hub either.
    assert strata.fail("run", "--pull", "never", "nope:1") == "Error: No such image: nope:1"
    assert strata.fail("create", "--pull=never", "nope:1") == "Error: No such image: nope:1"
    for command in (["start"], ["stop"], ["kill"], ["wait"], ["logs"], ["rm"], ["exec"]):
        args = [*command, "ghost", *(["true"] if command == ["exec"] else [])]
        assert strata.fail(*args) == "Error: No such container: ghost", args
    proc = strata("rm", "-f", "ghost", check=False)  # as Docker: said, but not a failure
    assert (proc.returncode, proc.stderr) == (0, "Error: No such container: ghost\n")

    proc = strata("run", "--rm", IMAGE, "nope", check=False)
    assert proc.returncode == 127
    assert proc.stderr == 'Error: exec: "nope": executable file not found in $PATH\n'
    assert_nothing_left(strata)
    for runtime in RUNTIMES:  # without --rm, as Docker: the container stays, "Created"
        proc = strata("run", "--runtime", runtime, "--name", "bad", IMAGE, "nope", check=False)
        assert proc.returncode == 127, proc.stderr
        assert status(strata, "bad") == "Created"
        assert not mounts_under(strata.root)
        strata("rm", "bad")
    proc = strata("run", "-d", "--name", "bad", IMAGE, "/nope", check=False)
    assert proc.returncode == 127
    assert proc.stderr.startswith('Error: exec: "/nope": stat /nope: no such file')
    assert not mounts_under(strata.root)
    strata("rm", "bad")
    assert strata.fail("run", "--rm", "-u", "nosuchuser", IMAGE, "true") == (
        "Error: unable to find user nosuchuser: no matching entries in passwd file"
    )
    assert_nothing_left(strata)

    strata("run", "-d", "--name", "dup", IMAGE, "sleep", "100")
    assert 'The container name "/dup" is already in use' in strata.fail(
        "run", "--name", "dup", IMAGE, "true"
    )
    assert strata.fail("rm", "dup").startswith("Error: You cannot remove a running container ")
    assert "already running" not in strata("start", "dup").stderr  # a no-op, as Docker
    assert strata.fail("start", "-a", "dup").startswith("Error: container dup is already running")
    assert strata("stop", "-t", "0", "dup").stdout == "dup\n"
    assert strata("stop", "dup").stdout == "dup\n"
    assert "is not running" in strata.fail("kill", "dup")
    assert "is not running" in strata.fail("exec", "dup", "true")
    assert strata.fail("logs", "--tail", "x", "dup") == "Error: invalid value for \"tail\": 'x'"
    strata("rm", "dup")
    assert strata.fail("start", "-a", "x", "y").startswith("Error: you cannot start and attach")

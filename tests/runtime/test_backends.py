"""Both backends, one suite: output, exit codes, identity, isolation, limits, signals, many."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from strata.errors import CommandNotExecutable, CommandNotFound, Conflict, ContainerNotFound
from strata.runtime import BindMount, Network, Status
from strata.runtime.backend import RuntimeBackend
from strata.runtime.spec import MASKED_PATHS, find_init, nofile_limit
from tests.runtime.helpers import driver_argv, make_spec, new_id, prepare, run

pytestmark = [pytest.mark.root, pytest.mark.peers]

DOCKER_CAPS = 0xA80425FB  # CapBnd of a default Docker container


def sh(script: str) -> tuple[str, ...]:
    return ("sh", "-c", script)


def test_echo_and_streams(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    result = run(
        backend, tmp_path, make_spec(rootfs, *sh("echo hello; echo oops >&2; cat")), b"in\n"
    )
    assert (result.code, result.out, result.err) == (0, "hello\nin\n", "oops\n")


@pytest.mark.parametrize("code", [0, 3, 255])
def test_exit_codes(backend: RuntimeBackend, rootfs: Path, tmp_path: Path, code: int) -> None:
    assert run(backend, tmp_path, make_spec(rootfs, *sh(f"exit {code}"))).code == code


def test_killed_by_signal_is_128_plus(
    backend: RuntimeBackend, rootfs: Path, tmp_path: Path
) -> None:
    # The shell is not pid 1 here (sh runs it as a child), so the signal is not ignored.
    script = sh("sh -c 'kill -KILL $$'; echo $?")
    assert run(backend, tmp_path, make_spec(rootfs, *script)).out == "137\n"


def test_command_not_found(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    with pytest.raises(CommandNotFound) as err:
        run(backend, tmp_path, make_spec(rootfs, "nope"))
    assert str(err.value) == 'exec: "nope": executable file not found in $PATH'
    assert err.value.exit_code == 127
    assert backend_state_is_empty(backend)


def test_not_executable(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    with pytest.raises(CommandNotExecutable) as err:
        run(backend, tmp_path, make_spec(rootfs, "/etc/passwd"))
    assert str(err.value) == 'exec: "/etc/passwd": permission denied'
    assert err.value.exit_code == 126


def test_not_found_as_the_cli_will_show_it(
    backend: RuntimeBackend, rootfs: Path, tmp_path: Path
) -> None:
    container_id = new_id()
    bundle = prepare(tmp_path, make_spec(rootfs, "nope"), container_id)
    done = subprocess.run(
        driver_argv(backend, bundle, container_id), capture_output=True, text=True, check=False
    )
    assert done.returncode == 127
    assert done.stderr == 'Error: exec: "nope": executable file not found in $PATH\n'


def backend_state_is_empty(backend: RuntimeBackend) -> bool:
    root = backend.state_root
    return not root.exists() or not [p for p in root.iterdir() if p.is_dir()]


def test_env_and_cwd(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    spec = make_spec(
        rootfs,
        *sh('echo "$FOO|$PATH|$HOME|$HOSTNAME"; pwd'),
        env=("FOO=bar baz",),
        cwd="/usr/share",
    )
    out = run(backend, tmp_path, spec).out.splitlines()
    assert out == [
        "bar baz|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root|box",
        "/usr/share",
    ]
    made = run(backend, tmp_path, make_spec(rootfs, "pwd", cwd="/work/dir"))
    assert made.out == "/work/dir\n"  # a missing working directory is created, as in Docker


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", "0 0 0"),
        ("nobody", "65534 65534 65534"),
        ("1000:1000", "1000 1000 1000"),
        ("1000", "1000 0 0"),
        ("alice", "1001 1001 1001 50"),
    ],
)
def test_user(
    backend: RuntimeBackend, rootfs: Path, tmp_path: Path, user: str, expected: str
) -> None:
    with open(rootfs / "etc" / "passwd", "a") as f:
        f.write("alice:x:1001:1001::/home/alice:/bin/sh\n")
    with open(rootfs / "etc" / "group", "a") as f:
        f.write("alice:x:1001:\nmates:x:50:alice\n")
    spec = make_spec(rootfs, *sh('echo "$(id -u) $(id -g) $(id -G)"'), user=user)
    assert run(backend, tmp_path, spec).out.split() == expected.split()


def test_hostname(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    spec = make_spec(rootfs, *sh("hostname; cat /etc/hostname"), hostname="web-1")
    assert run(backend, tmp_path, spec).out == "web-1\nweb-1\n"


def test_network_none(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    spec = make_spec(
        rootfs, *sh("ls /sys/class/net; cat /sys/class/net/lo/flags"), network=Network.NONE
    )
    assert run(backend, tmp_path, spec).out.split() == ["lo", "0x9"]  # IFF_UP | IFF_LOOPBACK


def test_network_host(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    spec = make_spec(rootfs, *sh("ls /sys/class/net; tail -n +3 /proc/net/dev | cut -d: -f1"))
    out = run(backend, tmp_path, spec).out.split()
    host = sorted(os.listdir("/sys/class/net"))
    assert sorted(out[: len(host)]) == host
    assert sorted(out[len(host) :]) == host


def test_binds(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("from host\n")
    mounts = (BindMount(shared, "/mnt", readonly=True), BindMount(shared, "/srv"))
    script = "cat /mnt/in.txt; echo x > /mnt/ro.txt; echo rc=$?; echo y > /srv/rw.txt"
    result = run(backend, tmp_path, make_spec(rootfs, *sh(script), mounts=mounts))
    assert result.out == "from host\nrc=2\n"
    assert "Read-only file system" in result.err
    assert not (shared / "ro.txt").exists()
    assert (shared / "rw.txt").read_text() == "y\n"


def test_readonly_rootfs(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    spec = make_spec(
        rootfs, *sh("touch /x; echo rc=$?; touch /dev/shm/y; echo ok=$?"), readonly_rootfs=True
    )
    assert run(backend, tmp_path, spec).out == "rc=1\nok=0\n"


def test_masked_and_readonly_paths(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    # This kernel has no /proc/kcore; mask what exists, and check the host shows something there.
    masked = [p for p in MASKED_PATHS if os.path.exists(p)]
    assert any(Path(p).is_file() and Path(p).read_bytes() for p in masked)
    assert any(Path(p).is_dir() and os.listdir(p) for p in masked)
    script = " ".join(
        f"if [ -d {p} ]; then ls {p} | wc -l; elif [ -e {p} ]; then wc -c < {p}; else echo no; fi;"
        for p in masked
    )
    script += (
        " echo 1 > /proc/sys/vm/drop_caches; echo sys=$?; echo x > /proc/sysrq-trigger; echo rq=$?"
    )
    out = run(backend, tmp_path, make_spec(rootfs, *sh(script))).out.split()
    assert out == ["0"] * len(masked) + ["sys=2", "rq=2"]


def test_capabilities(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    script = sh("grep -E '^Cap(Bnd|Eff|Prm|Amb)' /proc/self/status")
    caps = dict(
        line.split(":\t")
        for line in run(backend, tmp_path, make_spec(rootfs, *script)).out.splitlines()
    )
    assert int(caps["CapBnd"], 16) == DOCKER_CAPS
    assert int(caps["CapEff"], 16) == DOCKER_CAPS
    assert int(caps["CapPrm"], 16) == DOCKER_CAPS
    assert int(caps["CapAmb"], 16) == 0
    nobody = dict(
        line.split(":\t")
        for line in run(
            backend, tmp_path, make_spec(rootfs, *script, user="nobody")
        ).out.splitlines()
    )
    assert int(nobody["CapBnd"], 16) == DOCKER_CAPS
    assert int(nobody["CapEff"], 16) == 0


def test_rlimit_nofile(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    out = run(backend, tmp_path, make_spec(rootfs, *sh("ulimit -Sn; ulimit -Hn"))).out.split()
    assert tuple(map(int, out)) == nofile_limit()


def test_pid_namespace(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    out = run(backend, tmp_path, make_spec(rootfs, *sh("echo $$; ls /proc | grep -c '^[0-9]'")))
    assert out.out.split()[0] == "1"
    assert int(out.out.split()[1]) <= 4  # sh, ls, grep (and nothing of the host)


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def running(backend: RuntimeBackend, container_id: str) -> bool:
    try:
        return backend.state(container_id).status is Status.RUNNING
    except ContainerNotFound:
        return False


@pytest.mark.parametrize("with_init", [True, False])
def test_sigterm_is_forwarded(
    backend: RuntimeBackend, rootfs: Path, tmp_path: Path, with_init: bool
) -> None:
    if with_init:
        init = find_init()
        if init is None:
            pytest.skip("no docker-init or tini-static on this host")
        spec = make_spec(rootfs, "sleep", "100", init=init)
    else:
        # Without an init, pid 1 gets only the signals it handles (as in Docker).
        spec = make_spec(rootfs, *sh("trap 'exit 143' TERM; while :; do sleep 0.1; done"))
    container_id = new_id()
    bundle = prepare(tmp_path, spec, container_id)
    proc = subprocess.Popen(driver_argv(backend, bundle, container_id))
    try:
        wait_for(lambda: running(backend, container_id))
        time.sleep(0.2)  # let the command reach its sleep
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
    finally:
        proc.kill()
        proc.wait()
    with pytest.raises(ContainerNotFound):
        backend.state(container_id)


def test_many_at_once_are_isolated(
    backend: RuntimeBackend, debian_rootfs: Path, tmp_path: Path
) -> None:
    from strata.runtime import syscalls

    count, procs, merged = 6, [], []
    release = tmp_path / "go"
    try:
        for n in range(count):
            base = tmp_path / f"ov{n}"
            dirs = [base / d for d in ("upper", "work", "merged")]
            for d in dirs:
                d.mkdir(parents=True)
            options = f"lowerdir={debian_rootfs},upperdir={dirs[0]},workdir={dirs[1]}"
            syscalls.mount("overlay", str(dirs[2]), "overlay", 0, options)
            merged.append(dirs[2])
            script = (
                "echo $(hostname) > /tmp/mine; while [ ! -e /mnt/go ]; do sleep 0.05; done; "
                "cat /tmp/mine; ls /tmp; ls /proc | grep -c '^[0-9]'"
            )
            binds = (BindMount(tmp_path, "/mnt", readonly=True),)
            spec = make_spec(dirs[2], *sh(script), hostname=f"box{n}", mounts=binds)
            container_id = new_id()
            bundle = prepare(tmp_path, spec, container_id)
            out = open(tmp_path / f"out{n}", "wb")  # noqa: SIM115
            procs.append(subprocess.Popen(driver_argv(backend, bundle, container_id), stdout=out))
            out.close()
        wait_for(lambda: all((m / "tmp" / "mine").exists() for m in merged))
        release.touch()  # all are running now, together
        assert [p.wait(timeout=60) for p in procs] == [0] * count
        for n in range(count):
            lines = (tmp_path / f"out{n}").read_text().split()
            assert lines[:2] == [f"box{n}", "mine"]  # its own name, its own /tmp
            assert int(lines[2]) <= 4  # its own processes only
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for m in merged:
            syscalls.umount2(str(m), syscalls.MNT_DETACH)


def test_duplicate_id_and_unknown_id(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    container_id = new_id()
    bundle = prepare(tmp_path, make_spec(rootfs, "sleep", "100"), container_id)
    proc = subprocess.Popen(driver_argv(backend, bundle, container_id), stderr=subprocess.PIPE)
    try:
        wait_for(lambda: running(backend, container_id))
        with pytest.raises(Conflict, match="already exists"):
            backend.run(container_id, bundle)
        backend.kill(container_id, signal.SIGKILL)
        assert proc.wait(timeout=30) == 137
    finally:
        proc.kill()
        proc.wait()
    for call in (backend.state, backend.start, backend.kill, backend.delete):
        with pytest.raises(ContainerNotFound):
            call("no-such-container")


def test_readonly_bind_of_missing_dir_is_refused(rootfs: Path, tmp_path: Path) -> None:
    from strata.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        prepare(tmp_path, make_spec(rootfs, "true", mounts=(BindMount(tmp_path / "x", "/x"),)), "c")


def test_no_way_to_the_host_disk(backend: RuntimeBackend, rootfs: Path, tmp_path: Path) -> None:
    # runc has the device cgroup; the chroot backend has nodev mounts. Either way neither a
    # node made inside (CAP_MKNOD is in Docker's set) nor one shipped in the image opens.
    disk = os.stat("/").st_dev
    major, minor = os.major(disk), os.minor(disk)
    os.mknod(rootfs / "planted", 0o600 | stat.S_IFBLK, disk)
    script = (
        f"mknod /tmp/disk b {major} {minor}; echo made=$?; "
        "head -c 512 /tmp/disk > /dev/null; echo made-read=$?; "
        "head -c 512 /planted > /dev/null; echo planted-read=$?; "
        "mknod /tmp/mem c 1 1; head -c 1 /tmp/mem > /dev/null; echo mem-read=$?"
    )
    out = run(backend, tmp_path, make_spec(rootfs, *sh(script))).out.split()
    assert out[0] == "made=0"
    assert all(not line.endswith("=0") for line in out[1:]), out

"""What a Docker user types to ``run``, ``create``, ``exec`` and ``start``, checked against Docker.

Each test runs the same command line through the anchors' Docker and through strata and compares
what a user sees: the output, and the exit status (Docker's 125 for its own failures, 126/127 for
a command that cannot start, the container's code otherwise).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.anchors import Docker
from tests.conftest import Strata, debian_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.peers]

IMAGE = "debian:bookworm"


@pytest.fixture
def debian(strata: Strata) -> Strata:
    strata("import", str(debian_rootfs_tar()), IMAGE)
    return strata


def _with_env(tool: Strata | Docker, env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run ``tool`` with extra host environment variables: (status, stdout)."""
    if isinstance(tool, Docker):
        command = ["docker", *args]
        full = {**tool.env, **env}
    else:
        command = [sys.executable, "-m", "strata", *args]
        full = {**os.environ, "STRATA_ROOT": str(tool.root), **env}
    proc = subprocess.run(command, capture_output=True, text=True, env=full, check=False)
    return proc.returncode, proc.stdout


def test_env_name_without_value_passes_the_hosts(
    debian: Strata, docker: Docker, tmp_path: Path
) -> None:
    env_file = tmp_path / "env"
    # A bare name, a value with a trailing blank, an indented line and a comment.
    env_file.write_text("FROM_FILE\nBARE_UNSET\n  B=two \n# C=3\n")
    script = 'echo "A=$A B=[$B] F=$FROM_FILE"; env | grep -c UNSET_ || true'
    host = {"A": "from host", "FROM_FILE": "f", "UNSET_X": ""}
    del host["UNSET_X"]
    line = ["--env-file", str(env_file), "-e", "A", "-e", "UNSET_Y", IMAGE, "sh", "-c", script]
    for extra in (["--rm"], []):  # the quick path and the full one
        got = _with_env(debian, host, "run", *extra, *line)
        assert got == _with_env(docker, host, "run", "--rm", *line)
        assert got == (0, "A=from host B=[two ] F=f\n0\n")
    debian("run", "-d", "--name", "busy", IMAGE, "sleep", "600")
    try:
        assert _with_env(debian, {"E": "x"}, "exec", "-e", "E", "-e", "NOPE_", "busy", "sh",
                         "-c", 'echo "$E ${NOPE_-unset}"') == (0, "x unset\n")  # fmt: skip
    finally:
        debian("rm", "-f", "busy")
    # A bare name the host lacks unsets the variable, the image's value too; inspect lists it.
    with_env = f"strata-parity-env{os.getpid()}:1"
    for tool in (debian, docker):
        tool("create", "--name", f"parity-env{os.getpid()}", IMAGE, "true")
        tool("commit", "-c", "ENV FOO=image BAR=kept", f"parity-env{os.getpid()}", with_env)
        tool("rm", f"parity-env{os.getpid()}")
    try:
        line = ["-e", "FOO", with_env, "sh", "-c", 'echo "${FOO-unset} $BAR"']
        assert _with_env(debian, {}, "run", "--rm", *line) == (0, "unset kept\n")
        assert _with_env(docker, {}, "run", "--rm", *line) == (0, "unset kept\n")
        assert _with_env(debian, {}, "run", *line) == (0, "unset kept\n")
        debian("create", "--name", "listed", "-e", "FOO", with_env)
        env = debian("inspect", "-f", "{{json .Config.Env}}", "listed").stdout
        assert '"FOO"' in env and "FOO=" not in env and '"BAR=kept"' in env
    finally:
        docker("rmi", with_env, check=False)
    bad = tmp_path / "bad"
    bad.write_text("A B=1\n")
    assert "contains whitespaces" in debian.fail("run", "--rm", "--env-file", str(bad), IMAGE)


def test_volume_binds_a_single_file(debian: Strata, docker: Docker, tmp_path: Path) -> None:
    host_file = tmp_path / "settings.conf"
    host_file.write_text("one\n")
    script = "cat /etc/app.conf; echo two >> /etc/app.conf; echo $?"
    outputs = []
    for tool, runtimes in (
        (docker, [[]]),
        (debian, [["--runtime", "runc"], ["--runtime", "chroot"]]),
    ):
        for runtime in runtimes:
            for mode in (":ro", ""):
                volume = f"{host_file}:/etc/app.conf{mode}"
                proc = tool("run", "--rm", *runtime, "-v", volume, IMAGE, "sh", "-c", script)
                outputs.append((mode, proc.stdout.splitlines()[-1], proc.returncode))
                host_file.write_text("one\n")
    # Read-only: the write fails (sh's status 2); read-write: it lands in the host's file.
    assert set(outputs) == {(":ro", "2", 0), ("", "0", 0)}
    proc = debian("run", "--rm", "-v", f"{host_file}:/new/dir/f", IMAGE, "sh", "-c",
                  "echo more >> /new/dir/f; cat /new/dir/f")  # fmt: skip
    assert proc.stdout == "one\nmore\n"
    assert host_file.read_text() == "one\nmore\n"
    assert host_file.is_file()


@pytest.fixture
def busy(debian: Strata, docker: Docker) -> Iterator[str]:
    """A running container of the same name in both tools."""
    name = f"strata-parity-{os.getpid()}"
    docker("run", "-d", "--name", name, IMAGE, "sleep", "600")
    debian("run", "-d", "--name", name, IMAGE, "sleep", "600")
    try:
        yield name
    finally:
        docker("rm", "-f", name, check=False)
        debian("rm", "-f", name, check=False)


def test_exit_statuses_are_dockers(debian: Strata, docker: Docker, busy: str) -> None:
    cases = [
        ["run", "--nope", IMAGE],  # a bad flag: 125 for every command
        ["ps", "--nope"],
        ["run", "--rm", IMAGE, "nope"],  # command not found
        ["run", IMAGE, "nope"],
        ["run", "-d", IMAGE, "nope"],
        ["run", "--rm", IMAGE, "/etc/passwd"],  # not executable
        ["run", "--rm", IMAGE, "sh", "-c", "exit 3"],  # the container's own code
        ["run", "--name", busy, IMAGE, "true"],  # a name in use: 125 for run...
        ["create", "--name", busy, IMAGE, "true"],  # ...1 for create
        ["rm", "no-such-container"],
        ["start", "no-such-container"],
        ["exec", busy, "nope"],  # exec: 126 for found or not
        ["exec", busy, "/etc/passwd"],
        ["exec", busy, "sh", "-c", "exit 7"],
        ["exec", "no-such-container", "true"],
        ["rm"],  # too few arguments: 1
        ["run", "--rm", "-ti", IMAGE, "true"],  # no terminal: 1, Docker's client says so
        ["run", "--rm", "-u", "nosuchuser", IMAGE, "true"],
        ["run", "--rm", "-w", "relative", IMAGE, "true"],
        ["run", "--rm", "--entrypoint", "", IMAGE],  # no command
    ]
    same_words = {"nosuchuser", "relative", ""}
    for args in cases:
        want = docker(*args, check=False)
        got = debian(*args, check=False)
        assert got.returncode == want.returncode, (args, got.stderr)
        if same_words & set(args):
            # The daemon's words, after Docker's "docker: Error response from daemon: ".
            said = want.stderr.splitlines()[0]
            assert said.endswith(got.stderr.strip().removeprefix("Error: ")), (said, got.stderr)
        assert "Traceback" not in got.stderr
    # An image that is nowhere: Docker fails after trying the registry; strata too.
    assert debian("run", "--pull", "never", "nowhere:1", check=False).returncode == 125
    debian("create", "--name", "wrong", IMAGE, "nope")
    assert docker("create", "--name", f"{busy}-w", IMAGE, "nope").returncode == 0
    try:
        for args in (["start", "wrong"], ["start", "-a", "wrong"]):
            status = docker(args[0], *args[1:-1], f"{busy}-w", check=False).returncode
            assert debian(*args, check=False).returncode == status == 1
    finally:
        docker("rm", "-f", f"{busy}-w", check=False)

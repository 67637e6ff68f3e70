"""The quick ``run --rm`` path: which command lines take it, and that it behaves as the full one."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from strata.cli.quick import parse
from tests.conftest import Strata, debian_rootfs_tar


def test_parse_takes_only_the_plain_form() -> None:
    options, image, command = parse(["--rm", "-e", "A=1", "-eB=2", "--env=C=3", "img", "ls", "-l"])  # type: ignore[misc]
    assert options == {"env": ["A=1", "B=2", "C=3"], "rm": True}
    assert (image, command) == ("img", ["ls", "-l"])
    options, image, _ = parse(["--name", "x", "--network=none", "-w", "/t", "--rm", "i"])  # type: ignore[misc]
    assert options == {"env": [], "name": "x", "network": "none", "workdir": "/t", "rm": True}
    assert image == "i"
    for refused in (
        ["img", "true"],  # no --rm: the container keeps a log, the monitor path
        ["--rm", "-t", "img"],
        ["--rm", "-i", "img"],
        ["--rm", "-d", "img"],
        ["--rm", "-v", "/a:/b", "img"],
        ["--rm", "--", "img"],
        ["--rm", "--name", "a", "--name", "b", "img"],
        ["--rm", "-e"],
        ["--rm"],
    ):
        assert parse(refused) is None, refused


_PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('LOADED', sorted(m for m in ('click', 'strata.oci.config',"
    " 'strata.image.store', 'strata.oci.reference', 'httpx', 'rich') if m in sys.modules)))\n"
    "from strata.cli.entry import main\n"
    "main(sys.argv[1:])\n"
)


def _probe(strata: Strata, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        env={"STRATA_ROOT": str(strata.root), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        check=False,
    )


@pytest.mark.root
@pytest.mark.peers
def test_quick_run_loads_no_model_and_behaves_as_the_full_path(strata: Strata) -> None:
    strata("import", str(debian_rootfs_tar()), "debian:bookworm")
    # Not unpacked yet: the full path runs it (and unpacks).
    first = _probe(strata, "run", "--rm", "debian:bookworm", "echo", "one")
    assert first.stdout.splitlines()[0] == "one"
    assert "click" in first.stdout
    # Neither path loads the registry client or progress bars.
    assert "httpx" not in first.stdout and "rich" not in first.stdout
    quick = _probe(
        strata,
        "run",
        "--rm",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "debian:bookworm",
        "sh",
        "-c",
        "echo $A $PWD; exit 3",
    )
    assert quick.returncode == 3
    assert quick.stdout.splitlines() == ["1 /tmp", "LOADED []"]
    # Errors are the full path's one line, with Docker's exit codes.
    missing = _probe(strata, "run", "--rm", "debian:bookworm", "nope")
    assert missing.returncode == 127
    assert missing.stderr == 'Error: exec: "nope": executable file not found in $PATH\n'
    bad_net = _probe(strata, "run", "--rm", "--network", "nosuch", "debian:bookworm", "true")
    assert bad_net.returncode == 125 and bad_net.stderr == "Error: network nosuch not found\n"
    # Nothing is left behind: no container rows, no container snapshots.
    assert strata("ps", "-a", "-q").stdout == ""
    assert not any((strata.root / "containers").iterdir())
    with sqlite3.connect(strata.root / "strata.db") as conn:
        left = conn.execute("SELECT key FROM snapshots WHERE key LIKE 'container-%'").fetchall()
    assert left == []
    # An unknown image falls back to the full path and its message (no pull: --pull never).
    unknown = _probe(strata, "run", "--rm", "--pull", "never", "nope:1", "true")
    assert unknown.returncode == 125 and unknown.stderr == "Error: No such image: nope:1\n"

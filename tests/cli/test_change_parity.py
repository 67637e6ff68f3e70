"""``commit -c`` and ``import -c`` against Docker: the same changes give the same config.

Both parse each change with the Dockerfile parser and expand its words with the Dockerfile's
shell-word rules (moby's ``BuildFromConfig``); these cases are where that differs from a simple
reading of the text: expansion operators, quoting, the Env an instruction sees, line
continuations, a CMD an ENTRYPOINT keeps, and the parser's own error reasons.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.anchors import Docker
from tests.conftest import Strata, debian_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.peers]

IMAGE = "debian:bookworm"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FIELDS = (
    *("Cmd", "Entrypoint", "Env", "ExposedPorts", "Volumes", "WorkingDir", "User", "Labels"),
    *("OnBuild", "Healthcheck"),
)
CHANGES = [
    pytest.param(["CMD x", 'ENTRYPOINT ["/init"]'], id="entrypoint-keeps-cmd"),
    pytest.param(['ENTRYPOINT ["/init"]', "CMD x"], id="cmd-after-entrypoint"),
    pytest.param(
        ["ENV A=1", "ENV B=$A C=${A:-z} D=${NOPE:-dflt} E=\\$A F='$A' G=${A}x", "ENV H=1 I=$H"],
        id="env-expansion",
    ),
    pytest.param(
        ['ENV P="80 443/udp" W=../w', "EXPOSE $P 8000-8001", "WORKDIR $W", "WORKDIR x"],
        id="expose-workdir",
    ),
    pytest.param(["ENV U=node V=/v", 'LABEL $U="a b" k=$V', "USER ${U}:$U", "VOLUME $V /x"]),
    pytest.param(["ENV A=1 \\\n  B=2\nLABEL x=y", "env  GREETING hello  world"], id="lines"),
    pytest.param(
        ['HEALTHCHECK --interval=5s --retries=2 CMD ["curl", "x"]', "onbuild  run  make $X"],
        id="healthcheck-onbuild",
    ),
]
BAD = [
    "ENV =x",
    "ENV A",
    "LABEL a",
    'LABEL "a=b',
    "ONBUILD ONBUILD RUN x",
    "ONBUILD FROM x",
    'VOLUME ""',
    "ENV A=${B:?unset}",
    "# a comment",
]


@pytest.fixture
def debian(strata: Strata) -> Strata:
    strata("import", str(debian_rootfs_tar()), IMAGE)
    return strata


def _config(tool: Strata | Docker, image: str) -> dict[str, Any]:
    config = json.loads(tool("image", "inspect", "-f", "{{json .Config}}", image).stdout) or {}
    return {field: config.get(field) or None for field in FIELDS}


def _flags(changes: list[str]) -> list[str]:
    return [arg for change in changes for arg in ("-c", change)]


def _with_path(tool: Strata | Docker, image: str) -> None:
    """``image``: IMAGE with Docker's default PATH in its Env. strata's containers have it in
    their config, Docker's get it only when they start: a base that has it compares the rest."""
    name = f"change-parity-base{os.getpid()}"
    tool("create", "--name", name, IMAGE, "true")
    try:
        tool("commit", "-c", f"ENV PATH={DEFAULT_PATH}", name, image)
    finally:
        tool("rm", "-f", name)


@pytest.mark.parametrize("changes", CHANGES)
def test_commit_changes_as_docker(debian: Strata, docker: Docker, changes: list[str]) -> None:
    name, tag = f"change-parity{os.getpid()}", f"strata-change-parity{os.getpid()}"
    base, image = f"{tag}:base", f"{tag}:1"
    configs = []
    for tool in (debian, docker):
        _with_path(tool, base)
        tool("create", "--name", name, base, "true")
        try:
            tool("commit", *_flags(changes), name, image)
            configs.append(_config(tool, image))
        finally:
            tool("rm", "-f", name)
            tool("rmi", image, base, check=False)
    assert configs[0] == configs[1]
    assert configs[0]["Env"][0] == f"PATH={DEFAULT_PATH}"


def test_commit_refuses_bad_changes_for_dockers_reasons(debian: Strata, docker: Docker) -> None:
    name = f"change-parity{os.getpid()}"
    for tool in (debian, docker):
        tool("create", "--name", name, IMAGE, "true")
    try:
        for change in BAD:
            proc = docker("commit", "-c", change, name, "strata-bad:1", check=False)
            assert proc.returncode != 0, change
            reason = proc.stderr.strip().removeprefix("Error response from daemon: ")
            assert debian.fail("commit", "-c", change, name, "bad:1").endswith(f": {reason}")
    finally:
        for tool in (debian, docker):
            tool("rm", "-f", name)


def test_import_changes_as_docker(strata: Strata, docker: Docker, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs.tar"
    (tmp_path / "hello").write_text("hi\n")
    with tarfile.open(rootfs, "w") as tar:
        tar.add(tmp_path / "hello", "hello")
    changes = ["ENV A=1 B=x", "ENV C=$A$B", "CMD x", "ENTRYPOINT y", "WORKDIR $B", "EXPOSE 80"]
    image = f"strata-change-parity-import{os.getpid()}:1"
    configs = []
    for tool in (strata, docker):
        tool("import", *_flags(changes), str(rootfs), image)
        try:
            configs.append(_config(tool, image))
        finally:
            tool("rmi", image, check=False)
    assert configs[0] == configs[1]
    assert configs[0]["Env"] == ["A=1", "B=x", "C=1x"]

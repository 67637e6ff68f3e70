"""The Dockerfile and ``.dockerignore`` of a hostile context: a symlink out of the context is
refused without showing anything of its target, a FIFO is refused without blocking, and a
symlink to another file of the context works (as it does with Docker)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.anchors import Docker
from tests.conftest import Strata

SECRET = "SECRET-FIRST-LINE root:x:0:0"
GOOD = "FROM debian:bookworm\nENV HOSTILE=files\n"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A host file outside every context whose first line must never be printed."""
    path = tmp_path / "host-secret"
    path.write_text(SECRET + "\nmore\n")
    return path


def _ctx(tmp_path: Path, name: str) -> Path:
    ctx = tmp_path / name
    ctx.mkdir()
    return ctx


def _refused(st: Strata, *args: str, secret: Path | None = None) -> str:
    message = st.fail("build", *args)
    assert "SECRET" not in message, message
    assert secret is None or str(secret) not in message, message
    return message


def test_dockerfile_symlink_out_of_the_context(st: Strata, tmp_path: Path, secret: Path) -> None:
    ctx = _ctx(tmp_path, "out")
    (ctx / "Dockerfile").symlink_to(secret)
    message = _refused(st, str(ctx), secret=secret)
    assert message == (
        f"Error: cannot read Dockerfile {ctx / 'Dockerfile'}: "
        "it is a symlink out of the build context"
    )
    # Through a symlinked directory, and named with -f, it is the same.
    ctx2 = _ctx(tmp_path, "out2")
    (ctx2 / "sub").symlink_to(secret.parent)
    assert "symlink out of the build context" in _refused(
        st, "-f", str(ctx2 / "sub" / "host-secret"), str(ctx2)
    )
    (ctx2 / "rel").symlink_to("../host-secret")
    assert "symlink out of the build context" in _refused(st, "-f", str(ctx2 / "rel"), str(ctx2))


def test_dockerfile_symlink_inside_the_context_builds(st: Strata, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "in")
    (ctx / "docker").mkdir()
    (ctx / "docker" / "real").write_text(GOOD)
    (ctx / "Dockerfile").symlink_to("docker/real")
    st("build", "-t", "hostile-in:1", str(ctx))
    env = st("image", "inspect", "-f", "{{json .Config.Env}}", "hostile-in:1").stdout
    assert "HOSTILE=files" in env


def test_dockerfile_outside_the_context_with_f_is_read(st: Strata, tmp_path: Path) -> None:
    """-f naming a file outside the context is the user's choice, as with Docker."""
    ctx = _ctx(tmp_path, "plain")
    outside = tmp_path / "elsewhere.Dockerfile"
    outside.write_text(GOOD)
    st("build", "-f", str(outside), "-t", "hostile-f:1", str(ctx))


@pytest.mark.timeout(60)
def test_fifo_and_devices_are_refused_without_blocking(st: Strata, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "fifo")
    os.mkfifo(ctx / "Dockerfile")
    assert _refused(st, str(ctx)).endswith(": not a regular file")
    assert _refused(st, "-f", "/dev/zero", str(ctx)).endswith(": not a regular file")
    (ctx / "dir").mkdir()
    assert _refused(st, "-f", str(ctx / "dir"), str(ctx)).endswith(": is a directory")

    ign = _ctx(tmp_path, "fifo-ignore")
    (ign / "Dockerfile").write_text(GOOD)
    os.mkfifo(ign / ".dockerignore")
    assert _refused(st, str(ign)) == "Error: cannot read .dockerignore: not a regular file"


def test_dockerignore_symlinks(st: Strata, tmp_path: Path, secret: Path) -> None:
    ctx = _ctx(tmp_path, "ignore-out")
    (ctx / "Dockerfile").write_text(GOOD)
    (ctx / ".dockerignore").symlink_to(secret)
    assert _refused(st, str(ctx), secret=secret) == (
        "Error: cannot read .dockerignore: it is a symlink out of the build context"
    )

    inside = _ctx(tmp_path, "ignore-in")
    (inside / "Dockerfile").write_text("FROM debian:bookworm\nCOPY . /ctx/\n")
    (inside / "ignore.txt").write_text("drop-me\n")
    (inside / ".dockerignore").symlink_to("ignore.txt")
    (inside / "drop-me").write_text("x")
    (inside / "keep-me").write_text("y")
    st("build", "-t", "hostile-ignore:1", str(inside))
    listing = st("run", "--rm", "hostile-ignore:1", "ls", "/ctx").stdout.split()
    assert "keep-me" in listing and "drop-me" not in listing


def test_fifos_in_the_context_are_not_opened(st: Strata, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "fifo-ctx")
    (ctx / "Dockerfile").write_text("FROM debian:bookworm\nCOPY . /ctx/\n")
    os.mkfifo(ctx / "pipe")
    st("build", "-t", "hostile-fifo:1", str(ctx))
    out = st("run", "--rm", "hostile-fifo:1", "stat", "-c", "%F", "/ctx/pipe").stdout
    assert out.strip() == "fifo"


@pytest.mark.peers
def test_docker_refuses_out_and_follows_in(docker: Docker, tmp_path: Path, secret: Path) -> None:
    out = _ctx(tmp_path, "docker-out")
    (out / "Dockerfile").symlink_to(secret)
    proc = docker("build", "-t", "strata-hostile-out", str(out), check=False)
    assert proc.returncode != 0
    assert "SECRET" not in proc.stdout + proc.stderr
    inside = _ctx(tmp_path, "docker-in")
    (inside / "real").write_text(GOOD)
    (inside / "Dockerfile").symlink_to("real")
    docker("build", "-t", "strata-hostile-in", str(inside))
    docker("rmi", "strata-hostile-in")

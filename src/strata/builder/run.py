"""RUN: a container on the stage's image, whose writable snapshot becomes the step's layer.

The container runs through the same runtime as ``strata run`` (runc, or the chroot backend),
stacked right on the parent layer (no init layer), with its output sent to the build's output
as it comes. The container dies with the build, however the build dies (runtime/guard.py). The
runtime's mount points for /etc/hosts, /etc/resolv.conf and /etc/hostname are bind mounts: an
empty file the runtime had to create for one is not the step's doing and is removed before the
layer is written.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from strata.builder.images import StepImage
from strata.runtime.backend import ProcessIO
from strata.runtime.containers import Container
from strata.runtime.guard import TIED_LABEL, tie
from strata.runtime.initlayer import MOUNT_POINTS
from strata.runtime.lifecycle import Containers
from strata.runtime.options import RunOptions

Output = Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What one RUN step runs."""

    args: tuple[str, ...]
    env: tuple[str, ...]  # the full environment (the image's, then build args)
    workdir: str
    user: str
    network: str
    runtime: str | None = None
    volumes: tuple[str, ...] = ()  # HOST:CTR binds (the image's VOLUMEs, see steps.py)


def run_container(
    service: Containers,
    parent: StepImage,
    request: RunRequest,
    output: Output,
    created: Callable[[Container], None] = lambda c: None,
) -> tuple[Container, int]:
    """Run ``request`` on ``parent``; the stopped container (not removed) and its exit code."""
    options = RunOptions(
        command=request.args,
        entrypoint="",
        env=(),
        workdir=request.workdir or "/",
        user=request.user,
        network=request.network,
        # RUN on "default" uses the host's network: a bridge's CNI ADD and DEL would add
        # about 150 ms to every step (README: known differences).
        default_network="host",
        runtime=request.runtime,
        volumes=request.volumes,
        labels={TIED_LABEL: "true"},
    )
    config = parent.config.config
    # The step's environment is exactly the given one: the image's env is already in it.
    defaults = _Defaults(request.env, config.stop_signal)
    image = str(parent.image.manifest_digest) if parent.image is not None else "scratch"
    container = service.create_on(
        image, parent.top, defaults, parent.id, options, init_layer=False, image_required=False
    )
    # A build killed with SIGKILL runs no cleanup: the guard removes the container then.
    tie(service.root.path, container.id)
    created(container)
    read_fd, write_fd = os.pipe()
    reader = threading.Thread(target=_pump, args=(read_fd, output), daemon=True)
    reader.start()
    stdin = os.open(os.devnull, os.O_RDONLY)
    try:
        try:
            code = service.run(container, stdio=ProcessIO(stdin, write_fd, write_fd))
        except BaseException:
            service.discard(container)
            raise
    finally:
        os.close(write_fd)
        os.close(stdin)
        reader.join()
    return container, code


@dataclass(frozen=True, slots=True)
class _Defaults:
    env: tuple[str, ...]
    stop_signal: str
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    working_dir: str = ""
    user: str = ""


def _pump(fd: int, output: Output) -> None:
    try:
        while chunk := os.read(fd, 65536):
            with contextlib.suppress(Exception):  # a failing printer must not hang the step
                output(chunk)
    except OSError:
        pass
    finally:
        os.close(fd)


def clean_mount_points(upper: Path, lower: Path | None) -> None:
    """Remove the empty files the runtime made as mount points (see the module docstring).

    ``lower`` is the parent's full tree for a copying snapshotter (None for overlay, whose
    upper dir holds only what the step changed).
    """
    for relative in MOUNT_POINTS:
        path = upper / relative
        try:
            st = path.lstat()
        except OSError:
            continue
        if not (path.is_file() and not path.is_symlink() and st.st_size == 0):
            continue
        if lower is not None and os.path.lexists(lower / relative):
            continue
        with contextlib.suppress(OSError):
            path.unlink()
    if lower is None and not _opaque(upper / "etc"):
        with contextlib.suppress(OSError):
            (upper / "etc").rmdir()  # a copy-up only for those files, now empty


def _opaque(path: Path) -> bool:
    for name in ("trusted.overlay.opaque", "user.overlay.opaque"):
        with contextlib.suppress(OSError):
            if os.getxattr(path, name, follow_symlinks=False):
                return True
    return False

"""`run`, `commit` and `containers`: containers of the store's images."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import IO, Literal

from strata.api.progress import ProgressCallback
from strata.api.transfer import pull as pull_image  # `run`'s ``pull`` argument hides the name
from strata.api.values import (
    Container,
    Image,
    Root,
    RunResult,
    container_value,
    image_value,
    store_root,
)
from strata.errors import InvalidArgument

__all__ = ["commit", "containers", "run"]


def run(
    image: Image | str,
    command: Sequence[str] | None = None,
    *,
    name: str | None = None,
    entrypoint: str | None = None,
    env: Mapping[str, str] | Sequence[str] = (),
    workdir: str | None = None,
    user: str | None = None,
    hostname: str | None = None,
    network: str = "default",
    volumes: Sequence[str] = (),
    runtime: str | None = None,
    remove: bool = False,
    detach: bool = False,
    pull: Literal["missing", "always", "never"] = "missing",
    root: Root = None,
    progress: ProgressCallback | None = None,
) -> RunResult:
    """Create a container of ``image`` and run ``command`` (default: the image's) in it.

    In the foreground (the default) the call returns when the command ends, with its exit code
    and its stdout and stderr as bytes (stdin is empty); ``remove`` then removes the container.
    ``detach`` returns once it runs (its output goes to its log, as ``strata logs`` shows).
    ``env`` is a mapping or ``NAME=VALUE`` strings; ``volumes`` are ``HOST:CONTAINER[:ro]``;
    ``pull`` (for a name, not a handle) fetches a missing image first, reporting through
    ``progress``.
    """
    import tempfile

    from strata.runtime.backend import ProcessIO
    from strata.runtime.lifecycle import Containers
    from strata.runtime.options import RunOptions

    if detach and remove:
        raise InvalidArgument("run: remove and detach together are not supported")
    where = store_root(root)
    target = str(image)
    if isinstance(image, str) and pull != "never":
        from strata.image.store import ImageStore

        if pull == "always" or ImageStore(where).lookup(image) is None:
            pull_image(image, root=where.path, progress=progress)
    variables = (
        tuple(f"{k}={v}" for k, v in env.items()) if isinstance(env, Mapping) else tuple(env)
    )
    options = RunOptions(
        name=name,
        command=tuple(command or ()),
        entrypoint=entrypoint,
        env=variables,
        workdir=workdir,
        user=user,
        hostname=hostname,
        network=network,
        volumes=tuple(volumes),
        runtime=runtime,
        autoremove=remove,
    )
    service = Containers(where)
    record = service.create(target, options)
    if detach:
        service.start(record)
        return RunResult(None, b"", b"", container_value(service.refresh(record) or record))
    with (
        open(os.devnull, "rb") as stdin,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        code = service.run(record, stdio=ProcessIO(stdin.fileno(), out.fileno(), err.fileno()))
        stdout, stderr = _read_all(out), _read_all(err)
    after = None if remove else service.refresh(record)
    handle = container_value(after or record)
    if after is None:
        handle = replace(handle, state="exited", exit_code=code)
    return RunResult(code, stdout, stderr, handle)


def _read_all(stream: IO[bytes]) -> bytes:
    stream.seek(0)
    return stream.read()


def commit(
    container: Container | str,
    reference: str | None = None,
    *,
    message: str = "",
    author: str = "",
    changes: Sequence[str] = (),
    pause: bool = True,
    root: Root = None,
) -> Image:
    """``docker commit``: the container's changes as one new layer on its image; the image,
    tagged ``reference`` if given. ``changes`` are Dockerfile instructions (``CMD ["sh"]``)."""
    from strata.oci.reference import parse_reference
    from strata.runtime.commit import commit_container
    from strata.runtime.lifecycle import Containers

    ref = parse_reference(reference) if reference else None
    where = store_root(root)
    service = Containers(where)
    record = service.records.get(str(container))
    made = commit_container(
        service, record, ref=ref, message=message, author=author, changes=changes, pause=pause
    )
    return image_value(made, where.path)


def containers(*, all: bool = False, root: Root = None) -> list[Container]:
    """The running containers (every one with ``all``), newest first as ``strata ps``."""
    from strata.runtime.containers import State
    from strata.runtime.lifecycle import Containers

    service = Containers(store_root(root))
    found = []
    for record in service.records.all():
        current = service.refresh(record) if record.state is State.RUNNING else record
        if current is None or (not all and current.state is not State.RUNNING):
            continue
        found.append(container_value(current))
    return found

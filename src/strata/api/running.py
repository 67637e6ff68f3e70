"""`run`, `commit` and `containers`: containers of the store's images."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

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

if TYPE_CHECKING:
    from strata.api.progress import ProgressCallback
    from strata.runtime.containers import Container as ContainerRecord
    from strata.runtime.lifecycle import Containers
    from strata.runtime.options import RunOptions
    from strata.runtime.resources import Resources

__all__ = ["HasFileno", "Stdio", "commit", "containers", "run"]


class HasFileno(Protocol):
    """A stream with a file descriptor: a file, a socket, ``sys.stdout``."""

    def fileno(self) -> int: ...


Stdio = tuple[int | HasFileno, int | HasFileno, int | HasFileno]


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
    mounts: Sequence[str] = (),
    tmpfs: Sequence[str] = (),
    volumes_from: Sequence[str] = (),
    runtime: str | None = None,
    tty: bool = False,
    interactive: bool = False,
    stdio: Stdio | None = None,
    remove: bool = False,
    detach: bool = False,
    pull: Literal["missing", "always", "never"] = "missing",
    root: Root = None,
    progress: ProgressCallback | None = None,
    publish: Sequence[str] = (),
    publish_all: bool = False,
    network_aliases: Sequence[str] = (),
    resources: Resources | None = None,
    restart: str = "no",
    healthcheck: Mapping[str, Any] | None = None,
    detach_keys: bytes | None = None,
    labels: Mapping[str, str] | None = None,
) -> RunResult:
    """Create a container of ``image`` and run ``command`` (default: the image's) in it.

    In the foreground (the default) the call returns when the command ends, with its exit code
    and its stdout and stderr as bytes (stdin is empty); ``remove`` then removes the container.
    With ``stdio`` (stdin, stdout, stderr: descriptors or streams) the container writes there
    instead, as ``strata run`` does on its own stdio: the output is not returned; without
    ``remove`` it is also kept in the container's log, and signals this process gets are
    forwarded to the container. ``interactive`` lets it read ``stdio``'s stdin; ``tty`` gives
    it a terminal (sized as ``stdio``'s, if one is), which needs ``stdio`` in the foreground.
    ``detach`` returns once it runs (its output goes to its log, as ``strata logs`` shows;
    with ``remove`` the container goes when it ends).
    ``env`` is a mapping or ``NAME=VALUE`` strings; ``volumes`` are ``-v``'s
    ``[HOST|NAME:]CONTAINER[:ro]``, ``mounts`` ``--mount``'s ``type=…,target=…``, ``tmpfs``
    ``--tmpfs``'s ``/path[:options]``, ``volumes_from`` ``--volumes-from``'s ``NAME[:ro]``;
    ``pull`` (for a name, not a handle) fetches a missing image first, reporting through
    ``progress``. ``network`` is ``default`` (Docker's ``bridge``), ``host``, ``none`` or a
    network's name; ``publish`` are ``-p`` values (``[IP:]HOST:CTR[/PROTO]``, ``CTR``),
    ``publish_all`` is ``-P``, ``network_aliases`` names the container has on its network.
    ``resources`` limits memory, CPU, pids and rlimits (Docker's checks and
    defaults apply); ``restart`` is Docker's policy (``on-failure:3``, ``always``...), kept
    by the container's monitor (with ``detach``); ``healthcheck`` is Docker's
    ``Config.Healthcheck`` (``{"Test": ["CMD-SHELL", "..."], "Interval": ns, ...}``), over the
    image's. ``detach_keys`` (bytes, see `strata.runtime.detach`): typed on ``stdio``'s
    terminal with ``tty`` and ``interactive``, they raise ``Detached`` and the container runs
    on under its monitor. ``labels`` are the container's (``ps --filter label=``).
    """
    from strata.runtime.lifecycle import Containers
    from strata.runtime.options import RunOptions
    from strata.runtime.resources import Resources
    from strata.runtime.restart import parse_restart

    restart_name, restart_max = parse_restart(restart)
    if tty and stdio is None and not detach:
        raise InvalidArgument("run: tty in the foreground needs stdio (a terminal to attach to)")
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
        tty=tty,
        interactive=interactive,
        runtime=runtime,
        autoremove=remove,
        mounts=tuple(mounts),
        tmpfs=tuple(tmpfs),
        volumes_from=tuple(volumes_from),
        publish=tuple(publish),
        publish_all=publish_all,
        aliases=tuple(network_aliases),
        resources=resources or Resources(),
        restart=restart_name,
        restart_max=restart_max,
        healthcheck=healthcheck,
        labels=dict(labels or {}),
    )
    target = str(image)
    # Closed on return: a container monitor forked later in this process (another run's) must
    # not inherit an open connection to the store's database (SQLite's locks break in it).
    with store_root(root) as where:
        if isinstance(image, str) and pull != "never":
            from strata.image.store import ImageStore

            if pull == "always" or ImageStore(where).lookup(image) is None:
                from strata.api.transfer import pull as pull_image  # the argument hides the name

                pull_image(image, root=where.path, progress=progress)
        service = Containers(where)
        if detach:
            record = service.create(target, options)
            service.start(record)
            return RunResult(None, b"", b"", container_value(service.refresh(record) or record))
        if stdio is not None:
            return _attached(service, target, options, _descriptors(stdio), detach_keys)
        return _captured(service, target, options)


def _descriptors(stdio: Stdio) -> tuple[int, int, int]:
    """The descriptors of ``stdio``, its streams flushed first (what they hold comes first)."""
    fds = []
    for stream in stdio:
        if isinstance(stream, int):
            fds.append(stream)
            continue
        flush = getattr(stream, "flush", None)
        if flush is not None:
            flush()
        fds.append(stream.fileno())
    return fds[0], fds[1], fds[2]


def _attached(
    service: Containers,
    target: str,
    options: RunOptions,
    stdio: tuple[int, int, int],
    detach_keys: bytes | None = None,
) -> RunResult:
    """The foreground run on the caller's descriptors (``strata run`` without ``-d``)."""
    from strata.runtime.backend import ProcessIO
    from strata.runtime.tty import terminal_size

    size = (terminal_size(stdio[0]) or terminal_size(stdio[1])) if options.tty else None
    if not options.autoremove:
        from strata.runtime.attach import run_attached

        record = service.create(target, options)
        code = run_attached(
            service,
            record,
            stdio=stdio,
            interactive=options.interactive,
            console_size=size,
            detach_keys=detach_keys,
        )
        return RunResult(code, b"", b"", _after(service, record, code))
    # Removed at the end: nobody will read a log, so the container takes the descriptors itself.
    record = _create(service, target, options)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        io = ProcessIO(stdio[0] if options.interactive else null, stdio[1], stdio[2])
        code = service.run(record, stdio=io, console_size=size)
    finally:
        os.close(null)
    return RunResult(code, b"", b"", _after(service, record, code))


def _captured(service: Containers, target: str, options: RunOptions) -> RunResult:
    """The foreground run whose output is returned (no ``stdio``): no monitor, no log."""
    import tempfile

    from strata.runtime.backend import ProcessIO

    record = _create(service, target, options)
    with (
        open(os.devnull, "rb") as stdin,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        code = service.run(record, stdio=ProcessIO(stdin.fileno(), out.fileno(), err.fileno()))
        stdout, stderr = _read_all(out), _read_all(err)
    return RunResult(code, stdout, stderr, _after(service, record, code))


def _create(service: Containers, target: str, options: RunOptions) -> ContainerRecord:
    """The container, created the quick way for a ``remove`` run of an unpacked image (as
    ``strata run --rm``'s warm path creates it), else by `Containers.create`."""
    if options.autoremove:
        from strata.runtime.quick import create_unpacked

        quick = create_unpacked(service, target, options)
        if quick is not None:
            return quick
    return service.create(target, options)


def _after(service: Containers, record: ContainerRecord, code: int) -> Container:
    """The container's handle once it ended (as it was, with its code, if it is removed)."""
    after = None if record.config.autoremove else service.refresh(record)
    handle = container_value(after or record)
    if after is None:
        handle = replace(handle, state="exited", exit_code=code)
    return handle


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
    with store_root(root) as where:
        service = Containers(where)
        record = service.records.get(str(container))
        made = commit_container(
            service, record, ref=ref, message=message, author=author, changes=changes, pause=pause
        )
        return image_value(made, where.path)


def containers(
    *,
    all: bool = False,
    filters: Sequence[str] = (),
    limit: int = -1,
    size: bool = False,
    root: Root = None,
) -> list[Container]:
    """The running containers (every one with ``all``), newest first as ``strata ps``.

    ``filters`` are ``docker ps --filter`` values (``status=exited``, ``label=k=v``, ...);
    ``limit`` keeps the newest N of every state (``ps -n``); ``size`` measures each
    container's own layer and its image (``ps -s``).
    """
    from strata.runtime.containers import State
    from strata.runtime.lifecycle import Containers
    from strata.runtime.listing import ps_filters, select

    parsed = ps_filters(filters)
    found = []
    with store_root(root) as where:  # closed on return, as `run`'s
        service = Containers(where)
        for listed in select(service, parsed, show_all=all, limit=limit):
            current = listed.container
            ports = service.networks.ports(current) if current.state is State.RUNNING else []
            value = replace(container_value(current, ports), paused=listed.paused)
            if size:
                own, total = _sizes(service, listed.container)
                value = replace(value, size_rw=own, size_root_fs=total)
            found.append(value)
    return found


def _sizes(service: Containers, record: ContainerRecord) -> tuple[int, int]:
    """Docker's SizeRw (the container's own layer, as overlay2 counts it: a container that
    wrote nothing shows ``0B``) and SizeRootFs (that plus its image)."""
    from strata.diff.size import changed_bytes
    from strata.errors import StrataError

    try:
        own = changed_bytes(service.snapshotter, record.snapshot)
    except (StrataError, OSError):
        own = 0
    image = service.images.lookup(record.image)
    return own, own + (image.size if image is not None else 0)

"""``strata inspect``: images and containers, as ``docker inspect`` (first kind that matches)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import App, pass_app
from strata.cli.format import check_inspect_template, emit_inspect
from strata.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from strata.image.store import Image, ImageStore
    from strata.runtime.config import ContainerConfig


def container_document(app: App, text: str) -> dict[str, Any] | None:
    """``docker container inspect``'s main fields for the container named ``text``."""
    from strata.runtime.containers import ContainerStore, State

    container = ContainerStore(app.store().db).lookup(text)
    if container is None:
        return None
    from strata.runtime.pausing import is_paused
    from strata.runtime.records import ContainerRecords

    paused = is_paused(ContainerRecords(app.store()), container)
    cfg = container.config
    args = list(cfg.args)
    from strata.cli.network import network_settings, port_bindings
    from strata.runtime.networking import ContainerNetworks

    networks = ContainerNetworks(app.store())
    return {
        "Id": container.id,
        "Created": container.created,
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": "paused"
            if paused
            else "restarting"
            if container.restarting
            else container.state.value,
            "Running": container.state is State.RUNNING,
            "Paused": paused,
            "Restarting": container.restarting,
            "OOMKilled": container.oom_killed,
            "Pid": container.pid,
            "ExitCode": container.exit_code or 0,
            "StartedAt": container.started or "0001-01-01T00:00:00Z",
            "FinishedAt": container.finished or "0001-01-01T00:00:00Z",
            **_health(container.health),
        },
        "Image": _image_id(app, container.image),
        "Name": f"/{container.name}",
        "RestartCount": container.restart_count,
        "Driver": "overlay",
        "HostConfig": {
            "NetworkMode": cfg.network_mode or cfg.network,
            "PortBindings": port_bindings(cfg.publish),
            "PublishAllPorts": cfg.publish_all,
            "Binds": list(cfg.volumes),
            "Runtime": container.runtime,
            **_volume_host_config(cfg),
            "RestartPolicy": {"Name": cfg.restart, "MaximumRetryCount": cfg.restart_max},
            **cfg.resources.host_config(),
        },
        "Mounts": _mounts(app, cfg),
        "Config": {
            "Hostname": cfg.hostname or container.id[:12],
            "User": cfg.user,
            "Tty": cfg.tty,
            "OpenStdin": cfg.interactive,
            "Env": list(cfg.env) or None,  # Docker: null when the image and -e give none
            "Cmd": list(cfg.cmd) if cfg.cmd is not None else None,
            **({"Healthcheck": dict(cfg.healthcheck)} if cfg.healthcheck is not None else {}),
            "Entrypoint": list(cfg.entrypoint) if cfg.entrypoint is not None else None,
            "Image": container.image_ref,
            "WorkingDir": cfg.cwd,
            **({"Volumes": {p: {} for p in cfg.config_volumes}} if cfg.config_volumes else {}),
        },
        "NetworkSettings": network_settings(networks, container),
    }


def _volume_host_config(cfg: ContainerConfig) -> dict[str, Any]:
    """vol: HostConfig's Mounts (the --mount specs) and Tmpfs, which Docker leaves out when
    there are none, and VolumesFrom (null when none)."""
    out: dict[str, Any] = {}
    specs = [dict(m.spec) for m in cfg.mounts if m.spec is not None]
    if specs:
        out["Mounts"] = specs
    if cfg.tmpfs:
        out["Tmpfs"] = dict(cfg.tmpfs)
    out["VolumesFrom"] = list(cfg.volumes_from) or None
    return out


def _mounts(app: App, cfg: ContainerConfig) -> list[dict[str, Any]]:
    """inspect's ``Mounts``: binds, volumes and --mount tmpfs (--tmpfs ones are not listed)."""
    from strata.volume.store import data_dir

    root = app.store().path
    mounts = cfg.mounts
    if not mounts and cfg.volumes:  # a record from before volumes: its -v were all binds
        from strata.runtime.mounts import parse_volume_flag

        mounts = tuple(parse_volume_flag(v) for v in cfg.volumes)
    return [m.document(str(data_dir(root, m.source))) for m in mounts]


def _health(raw: str | None) -> dict[str, Any]:
    """``State.Health`` (res), present only for a container with a healthcheck."""
    if raw is None:
        return {}
    try:
        return {"Health": json.loads(raw)}
    except ValueError:
        return {}


def _image_id(app: App, manifest_digest: str) -> str:
    """Docker's ``.Image`` of a container: the image ID (its config digest), where the record
    keeps the manifest it was made from."""
    image = app.images().lookup(manifest_digest) if manifest_digest.startswith("sha256:") else None
    return str(image.id) if image is not None else manifest_digest


def _emit(docs: list[dict[str, Any]], fmt: str | None) -> None:
    if fmt:
        emit_inspect(fmt, docs, click.echo)
    else:
        click.echo(json.dumps(docs, indent=4))


def _image(store: ImageStore, name: str) -> Image | None:
    """The image ``name`` names, or None also when it cannot name one (``Abc`` may still be a
    container's name: Docker says "No such object" for it, not "invalid reference format")."""
    try:
        return store.lookup(name)
    except InvalidArgument:
        return None


@click.command("inspect")
@click.option("-f", "--format", "fmt", help="Format output using a Go template.")
@click.option("--type", "kind", type=click.Choice(["image", "container"]), help="Only this kind.")
@click.argument("names", nargs=-1, required=True)
@pass_app
def inspect_cmd(app: App, fmt: str | None, kind: str | None, names: tuple[str, ...]) -> None:
    """Return low-level information on images or containers."""
    from strata.cli.imagedoc import image_document

    if fmt:
        check_inspect_template(fmt)  # Docker refuses a bad template before looking anything up
    docs: list[dict[str, Any]] = []
    missing = []
    store = app.images() if kind != "container" else None
    for name in names:
        # docker/cli's order: a container before an image of the same name.
        container = container_document(app, name) if kind != "image" else None
        if container is not None:
            docs.append(container)
            continue
        image = _image(store, name) if store is not None else None
        if image is not None and store is not None:
            docs.append(image_document(store, image))
        else:
            missing.append(name)
    if docs or not missing:
        _emit(docs, fmt)
    if missing:
        raise NotFound(f"No such object: {missing[0]}")


@click.command("inspect")
@click.option("-f", "--format", "fmt", help="Format output using a Go template.")
@click.argument("names", nargs=-1, required=True)
@pass_app
def container_inspect_cmd(app: App, fmt: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more containers."""
    if fmt:
        check_inspect_template(fmt)
    docs: list[dict[str, Any]] = []
    for name in names:
        doc = container_document(app, name)
        if doc is None:
            if docs:
                _emit(docs, fmt)
            raise NotFound(f"No such container: {name}")
        docs.append(doc)
    _emit(docs, fmt)

"""``strata push``, ``pull``, ``login`` and ``logout``, with Docker's output.

On a terminal each layer gets a progress bar with bytes and speed (rich, imported only here and
only by push and pull); otherwise each layer's status changes print as plain lines, as Docker
prints them when its output is not a terminal.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import click

from strata.cli.context import App, pass_app
from strata.errors import InvalidArgument

if TYPE_CHECKING:
    from strata.api import Progress
    from strata.oci.reference import Reference
    from strata.registry.compress import LayerCompression
    from strata.registry.progress import TransferEvents
    from strata.registry.push import ManifestFormat

_INSECURE_HELP = "Use plain HTTP (or unverified TLS) for this registry (repeatable)."


# -- progress ---------------------------------------------------------------------------------


class PlainEvents:
    """Docker's non-terminal output: one line per layer status change, no byte counts."""

    def __init__(self, quiet: bool = False, *, err: bool = False) -> None:
        self._lock = threading.Lock()
        self._quiet = quiet
        self._err = err  # ``run``'s pull reports on stderr: stdout is the container's

    def _echo(self, text: str) -> None:
        if self._quiet:
            return
        with self._lock:
            click.echo(text, err=self._err)

    def header(self, text: str) -> None:
        self._echo(text)

    def status(self, layer: str, text: str, *, final: bool = False) -> None:
        self._echo(f"{layer}: {text}")

    def start(self, layer: str, text: str, total: int | None) -> None:
        return

    def advance(self, layer: str, count: int) -> None:
        return


class RichEvents:
    """A live bar per layer: ``<id>: Downloading [=====>   ] 12.3/45.6 MB 80.1 MB/s``."""

    def __init__(self, console: Any = None) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.fields[layer]}: {task.description:<18}"),
            BarColumn(bar_width=40),
            DownloadColumn(binary_units=False),
            TransferSpeedColumn(),
            console=console,
            transient=False,
            refresh_per_second=8,
        )
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RichEvents:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def _task(self, layer: str, description: str = "") -> Any:
        with self._lock:
            task = self._tasks.get(layer)
            if task is None:
                task = self._progress.add_task(description, layer=layer, total=None, start=False)
                self._tasks[layer] = task
            return task

    def header(self, text: str) -> None:
        self._progress.console.print(text, highlight=False, markup=False)

    def status(self, layer: str, text: str, *, final: bool = False) -> None:
        task = self._task(layer, text)
        if final:
            total = self._progress.tasks[self._index(task)].total
            self._progress.update(task, description=text, completed=total or 0)
            self._progress.stop_task(task)
        else:
            self._progress.update(task, description=text)

    def start(self, layer: str, text: str, total: int | None) -> None:
        task = self._task(layer)
        self._progress.reset(task, description=text, total=total, completed=0, start=True)

    def advance(self, layer: str, count: int) -> None:
        self._progress.advance(self._task(layer), count)

    def _index(self, task: Any) -> int:
        return next(i for i, t in enumerate(self._progress.tasks) if t.id == task)


@contextmanager
def _events(quiet: bool, *, err: bool = False) -> Iterator[TransferEvents]:
    if quiet or not (sys.stderr if err else sys.stdout).isatty():
        yield PlainEvents(quiet, err=err)
        return
    if err:
        from rich.console import Console

        with RichEvents(Console(stderr=True)) as events:
            yield events
        return
    with RichEvents() as events:
        yield events


# -- shared -----------------------------------------------------------------------------------


def _insecure(ref: Reference, insecure: tuple[str, ...]) -> bool | None:
    """``--insecure-registry``: True for the registry ``ref`` names if listed, else the default."""
    from strata.registry.credentials import hostname

    wanted = {hostname(name) for name in insecure}
    return True if ref.domain.lower() in wanted else None


def _relay(events: TransferEvents, last: list[Progress]) -> Callable[[Progress], None]:
    """The API's progress events as calls on ``events``; ``pulled`` is kept in ``last``."""
    lock = threading.Lock()
    moved: dict[str, int] = {}

    def relay(event: Progress) -> None:
        kind = event.kind
        if kind == "header":
            events.header(event.text)
        elif kind in ("status", "done"):
            events.status(event.id, event.text, final=kind == "done")
        elif kind == "start":
            with lock:
                moved[event.id] = 0
            events.start(event.id, event.text, event.total)
        elif kind == "advance":
            with lock:
                count = event.current - moved.get(event.id, 0)
                moved[event.id] = event.current
            events.advance(event.id, count)
        elif kind == "pulled":
            last.append(event)

    return relay


def _jobs(value: int) -> int:
    if value < 1:
        raise InvalidArgument(f"invalid --jobs {value}: must be at least 1")
    return value


# -- pull -------------------------------------------------------------------------------------


@click.command("pull")
@click.option("--platform", help="Set platform if server is multi-platform capable (os/arch).")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--jobs", "-j", type=int, default=3, show_default=True, help="Layers at once.")
@click.option("--insecure-registry", "insecure", multiple=True, help=_INSECURE_HELP)
@click.option("--no-unpack", is_flag=True, help="Do not extract the layers now (on first run).")
@click.argument("name")
@pass_app
def pull_cmd(
    app: App,
    platform: str | None,
    quiet: bool,
    jobs: int,
    insecure: tuple[str, ...],
    no_unpack: bool,
    name: str,
) -> None:
    """Download an image from a registry."""
    from strata.oci.descriptor import Platform
    from strata.oci.reference import parse_reference

    if platform:
        Platform.parse(platform)  # a bad one fails before anything is said
    reference = pull_image(
        app,
        parse_reference(name),
        quiet=quiet,
        platform=platform,
        jobs=_jobs(jobs),
        insecure=insecure,
        unpack=not no_unpack,
    )
    click.echo(str(reference))


def pull_image(
    app: App,
    ref: Reference,
    *,
    quiet: bool = False,
    err: bool = False,
    platform: str | None = None,
    jobs: int = 3,
    insecure: tuple[str, ...] = (),
    unpack: bool = True,
) -> Reference:
    """Pull ``ref`` with Docker's report (on stderr with ``err``, as ``run`` and ``create``);
    the reference pulled (with its tag, ``latest`` by default)."""
    from strata.api import pull
    from strata.api.transfer import UP_TO_DATE

    def say(text: str) -> None:
        if not quiet:
            click.echo(text, err=err)

    if ref.tag is None and ref.digest is None:
        say("Using default tag: latest")
    last: list[Progress] = []
    with _events(quiet, err=err) as events:
        pull(
            str(ref),
            platform=platform,
            jobs=jobs,
            insecure=_insecure(ref, insecure),
            unpack=unpack,
            root=app.store().path,
            progress=_relay(events, last),
        )
    say(f"Digest: {last[-1].id}")
    what = "Image is up to date" if last[-1].text == UP_TO_DATE else "Downloaded newer image"
    pulled = ref.with_default_tag()
    say(f"Status: {what} for {pulled.familiar}")
    return pulled


# -- push -------------------------------------------------------------------------------------


@click.command("push")
@click.option(
    "--format",
    "manifest_format",
    type=click.Choice(["oci", "docker"]),
    help="Manifest format (default: oci, or the image's own when it needs no change).",
)
@click.option(
    "--compression",
    type=click.Choice(["gzip", "zstd"]),
    default="gzip",
    show_default=True,
    help="Compression of layers stored uncompressed.",
)
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--jobs", "-j", type=int, default=3, show_default=True, help="Layers at once.")
@click.option("--insecure-registry", "insecure", multiple=True, help=_INSECURE_HELP)
@click.argument("name")
@pass_app
def push_cmd(
    app: App,
    manifest_format: str | None,
    compression: str,
    quiet: bool,
    jobs: int,
    insecure: tuple[str, ...],
    name: str,
) -> None:
    """Upload an image to a registry."""
    from strata.api import push
    from strata.oci.reference import parse_reference

    ref = parse_reference(name)
    if not quiet:
        if ref.tag is None and ref.digest is None:
            click.echo("Using default tag: latest")
        click.echo(f"The push refers to repository [{ref.name}]")
    with _events(quiet) as events:
        pushed = push(
            name,
            format=cast("ManifestFormat | None", manifest_format),
            compression=cast("LayerCompression", compression),
            jobs=_jobs(jobs),
            insecure=_insecure(ref, insecure),
            root=app.store().path,
            progress=_relay(events, []),
        )
    if quiet:
        click.echo(pushed.reference)
    else:
        tag = parse_reference(pushed.reference).tag
        click.echo(f"{tag}: digest: {pushed.digest} size: {pushed.size}")


# -- login / logout ---------------------------------------------------------------------------

_DOCKER_HUB = "docker.io"


@click.command("login")
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password.")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@click.option("--insecure-registry", "insecure", multiple=True, help=_INSECURE_HELP)
@click.argument("server", required=False)
def login_cmd(
    username: str | None,
    password: str | None,
    password_stdin: bool,
    insecure: tuple[str, ...],
    server: str | None,
) -> None:
    """Log in to a registry (Docker Hub by default)."""
    from pathlib import Path

    from strata.registry.client import RegistryClient
    from strata.registry.credentials import CredentialStore, hostname, server_key

    if password is not None and password_stdin:
        raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise InvalidArgument("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password is not None:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
                   err=True)  # fmt: skip
    registry = hostname(server) if server else _DOCKER_HUB
    if username is None:
        username = click.prompt("Username", type=str)
    if password is None:
        password = click.prompt("Password", type=str, hide_input=True)
    if not username or not password:
        raise InvalidArgument("login: username and password are required")
    store = CredentialStore.load()
    # Try the credentials before saving them: a wrong password is not written anywhere.
    trial = CredentialStore(
        Path("/nonexistent"), {"auths": {server_key(registry): {"username": username,
                                                                "password": password}}}
    )  # fmt: skip
    wanted = {hostname(name) for name in insecure} | store.insecure_registries
    with RegistryClient(
        registry, insecure=True if registry in wanted else None, credentials=trial
    ) as client:
        client.ping()
    store.store(registry, username, password)
    click.echo("Login Succeeded")


@click.command("logout")
@click.argument("server", required=False)
def logout_cmd(server: str | None) -> None:
    """Log out from a registry (Docker Hub by default)."""
    from strata.registry.credentials import CredentialStore, hostname, server_key

    registry = hostname(server) if server else _DOCKER_HUB
    key = server_key(registry)
    if CredentialStore.load().erase(registry):
        click.echo(f"Removing login credentials for {key}")
    else:
        click.echo(f"Not logged in to {key}")

"""``strata image build`` (``strata build``) and ``strata builder prune``: Docker's classic output.

Each step prints ``Step N/M : INSTRUCTION``, then `` ---> Using cache`` or, beyond Docker,
`` ---> cache miss: <why>``, a RUN step's output between ``Running in``/``Removing intermediate
container`` lines, and the step's image `` ---> 1cac91e937bb``. ``-q`` prints only the final
ID (and a failed step's output). ``--explain`` prints what every step would do and builds
nothing.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import click

from strata.cli.context import App, pass_app
from strata.errors import InvalidArgument, StrataError

if TYPE_CHECKING:
    from strata.api import Progress


class ClassicPrinter:
    """`BuildEvents` printed as Docker's classic builder prints them."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.buffer = bytearray()  # -q: a failing step's output is shown after all
        self.at_line_start = True
        self.live = _LiveLine() if not quiet and sys.stdout.isatty() else None

    def _line(self, text: str) -> None:
        if self.quiet:
            return
        if self.live:
            self.live.clear()
        if not self.at_line_start:
            sys.stdout.write("\n")
            self.at_line_start = True
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def show(self, event: Progress) -> None:
        """One of the API's build events, printed."""
        kind = event.kind
        if kind == "context":
            self.context(event.current)
        elif kind == "step":
            self.step(event.current, event.total or 0, event.text)
        elif kind == "triggers":
            self.triggers(event.current)
        elif kind == "cache-hit":
            self.cache_hit()
        elif kind == "cache-miss":
            self.cache_miss(event.text)
        elif kind == "running":
            self.running(event.id)
        elif kind == "output":
            self.output(event.data)
        elif kind == "removed":
            self.removed(event.id)
        elif kind == "image":
            self.image(event.id)
        elif kind in ("plan-hit", "plan-miss"):
            self.plan(event.current, "", kind == "plan-hit", event.text)

    def context(self, size: int) -> None:
        from strata.builder.context.scan import human_size_precise

        self._line(f"Sending build context to Docker daemon  {human_size_precise(size)}")

    def step(self, number: int, total: int, text: str) -> None:
        self.buffer.clear()
        self._line(f"Step {number}/{total} : {text}")
        if self.live:
            short = text if len(text) <= 50 else text[:49] + "…"
            self.live.start(f"Step {number}/{total} : {short}")

    def triggers(self, count: int) -> None:
        self._line(f"# Executing {count} build trigger{'s' if count != 1 else ''}")

    def cache_hit(self) -> None:
        self._line(" ---> Using cache")

    def cache_miss(self, reason: str) -> None:
        self._line(f" ---> cache miss: {reason}")

    def running(self, container_id: str) -> None:
        self._line(f" ---> Running in {container_id}")

    def output(self, data: bytes) -> None:
        if self.quiet:
            self.buffer += data
            return
        if self.live:
            self.live.clear()
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        self.at_line_start = data.endswith(b"\n")

    def removed(self, container_id: str) -> None:
        self._line(f"Removing intermediate container {container_id}")

    def image(self, image_id: str) -> None:
        if self.live:
            self.live.stop()
        self._line(f" ---> {image_id}")

    def plan(self, number: int, text: str, hit: bool, reason: str) -> None:
        # The step line is printed by `step`: only the decision goes under it.
        del number, text
        verdict = f"would use cache ({reason})" if hit else f"would run: {reason}"
        self._line(f" ---> {verdict}")

    def close(self) -> None:
        if self.live:
            self.live.stop()


class _LiveLine:
    """On a terminal: the running step and its time, redrawn in place below the output."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.label = ""
        self.since = 0.0
        self.shown = False
        self.active = False
        self.thread: threading.Thread | None = None

    def start(self, label: str) -> None:
        with self.lock:
            self.label, self.since, self.active = label, time.monotonic(), True
        if self.thread is None:
            self.thread = threading.Thread(target=self._loop, daemon=True)
            self.thread.start()

    def stop(self) -> None:
        with self.lock:
            self.active = False
            self._erase()

    def clear(self) -> None:
        with self.lock:
            self._erase()

    def _erase(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
            self.shown = False

    def _loop(self) -> None:
        while True:
            time.sleep(0.2)
            with self.lock:
                elapsed = time.monotonic() - self.since
                if not self.active or elapsed < 1.0:
                    continue
                sys.stderr.write(f"\r\x1b[2K\x1b[2m[+] {self.label}  {elapsed:.1f}s\x1b[0m")
                sys.stderr.flush()
                self.shown = True


def _build_args(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, eq, given = value.partition("=")
        if not name:
            raise InvalidArgument(f"invalid --build-arg {value!r}: the name is empty")
        if eq:
            out[name] = given
        elif name in os.environ:  # Docker: `--build-arg NAME` takes NAME from the environment
            out[name] = os.environ[name]
    return out


def _epoch(timestamp: str | None) -> int | None:
    text = timestamp if timestamp is not None else os.environ.get("SOURCE_DATE_EPOCH")
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        what = "--timestamp" if timestamp is not None else "SOURCE_DATE_EPOCH"
        raise InvalidArgument(f"invalid {what} {text!r}: not a number of seconds") from None
    if value < 0:
        raise InvalidArgument(f"invalid timestamp {text!r}: before 1970")
    return value


@click.command("build")
@click.option("-t", "--tag", "tags", multiple=True, help="Name and tag the image (name:tag).")
@click.option("-f", "--file", "dockerfile", help="The Dockerfile (default: PATH/Dockerfile).")
@click.option("--build-arg", "build_args", multiple=True, help="Set a build-time variable.")
@click.option("--target", help="Build up to this stage.")
@click.option("--no-cache", is_flag=True, help="Do not use the cache.")
@click.option("--network", default="default", help="RUN's network: default|host|none.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.option("--timestamp", help="Seconds since 1970 for every time in the image.")
@click.option("--explain", is_flag=True, help="Say what each step would do; build nothing.")
@click.option("--runtime", help="Runtime for RUN steps (runc, crun, chroot).")
@click.option(
    "--platform",
    envvar="DOCKER_DEFAULT_PLATFORM",  # Docker's default for the flag too
    help="This machine's platform only (os/arch): no emulation.",
)
@click.argument("path")
@pass_app
def build_cmd(
    app: App,
    tags: tuple[str, ...],
    dockerfile: str | None,
    build_args: tuple[str, ...],
    target: str | None,
    no_cache: bool,
    network: str,
    quiet: bool,
    timestamp: str | None,
    explain: bool,
    runtime: str | None,
    platform: str | None,
    path: str,
) -> None:
    """Build an image from a Dockerfile."""
    from strata import api
    from strata.oci.reference import parse_reference

    if platform:  # never a silently wrong image: Docker 20.10 makes one
        from strata.builder.platforms import check_platform

        check_platform(platform, "--platform")
    if path == "-":
        raise InvalidArgument("building from a Dockerfile on stdin is not supported; give a path")
    common: dict[str, Any] = {
        "dockerfile": dockerfile or None,
        "build_args": _build_args(build_args),
        "target": target,
        "no_cache": no_cache,
        "network": network,
        "timestamp": _epoch(timestamp),
        "runtime": runtime,
        "root": app.store().path,
    }
    printer = ClassicPrinter(quiet)
    try:
        if explain:
            api.explain(path, progress=printer.show, **common)
            image = None
        else:
            image = api.build(path, tags=tags, progress=printer.show, **common)
    except StrataError:
        printer.close()
        if quiet and printer.buffer:
            sys.stdout.buffer.write(bytes(printer.buffer))
            sys.stdout.flush()
        raise
    printer.close()
    if image is None:
        return
    if quiet:
        click.echo(image.id)
        return
    click.echo(f"Successfully built {image.short_id}")
    for tag in tags:
        click.echo(f"Successfully tagged {parse_reference(tag).with_default_tag().familiar}")


@click.group("builder")
def builder_group() -> None:
    """Manage the build cache."""


@builder_group.command("prune")
@click.option("-a", "--all", "prune_all", is_flag=True, help="Accepted: the whole cache goes.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@pass_app
def prune_cmd(app: App, prune_all: bool, force: bool) -> None:
    """Remove the build cache (and the intermediate images only it kept)."""
    from strata.builder.prune import prune_build_cache

    del prune_all
    if not force and not click.confirm(
        "WARNING! This will remove all build cache.\nAre you sure you want to continue?"
    ):
        return
    removed, reclaimed = prune_build_cache(app.store())
    from strata.cli.format import human_size

    for image_id in removed:
        click.echo(f"Deleted: {image_id}")
    click.echo(f"Total reclaimed space: {human_size(reclaimed)}")

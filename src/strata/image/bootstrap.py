"""``image bootstrap``: a Debian base image made from a Debian mirror, for hosts with no registry.

mmdebstrap is preferred: it streams a tar with sorted names and, with SOURCE_DATE_EPOCH set,
reproducible timestamps, so two bootstraps of one mirror state give the same image ID. Without a
timestamp from the user, the suite's Release date is used, which keeps that promise by default.
debootstrap is the fallback (or ``--tool debootstrap``): it writes a directory, which strata
turns into a deterministic tar, every time clamped to that date.

Either way the rootfs is shaped as Docker's Debian images are (`strata.image.debian_rootfs`):
no logs of the bootstrap (timestamps, and debootstrap's log names the host's target directory),
no machine identity, no ldconfig cache of file times, apt's lists and caches empty (debootstrap
leaves every .deb it installed), and Docker's apt and dpkg settings for images.
"""

from __future__ import annotations

import email.utils
import os
import re
import shutil
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

from strata.errors import InvalidArgument, StrataError, ToolError
from strata.image.create import store_image
from strata.image.debian_rootfs import mmdebstrap_hooks, shape_rootfs
from strata.image.imports import base_config, write_rootfs_layer
from strata.image.scratch import owned_prefix
from strata.image.store import Image, ImageLayer, ImageStore
from strata.layer.generate import write_tar_from_dir
from strata.oci.config import History, RootFS, format_time
from strata.oci.mediatypes import OCI_LAYER
from strata.oci.reference import Reference
from strata.store.leases import Lease

VARIANTS = ("minbase", "buildd", "important", "required", "standard")
TOOLS = ("auto", "mmdebstrap", "debootstrap")
_SUITE = re.compile(r"[a-z][a-z0-9.-]*")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The live progress: the bootstrapper's latest ``I: …`` line (``Retrieving Packages``).
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Bootstrapped:
    """A bootstrapped image and what made it."""

    image: Image
    tool: str  # with its version: ``debootstrap 1.0.128+nmu2+deb12u2``
    mirror: str


@dataclass(frozen=True, slots=True)
class BootstrapOptions:
    """What to bootstrap and with which tool."""

    suite: str = "bookworm"
    mirror: str | None = None
    variant: str = "minbase"
    timestamp: int | None = None
    tool: str = "auto"
    include: Sequence[str] = ()


def host_mirror(sources: Sequence[Path] = ()) -> str | None:
    """The first Debian archive URI in this host's apt sources (not a -security one)."""
    paths = list(sources) or [
        Path("/etc/apt/sources.list"),
        *sorted(Path("/etc/apt/sources.list.d").glob("*.sources")),
        *sorted(Path("/etc/apt/sources.list.d").glob("*.list")),
    ]
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        uris: list[str] = []
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if line.startswith("URIs:"):
                uris.extend(line[5:].split())
            elif line.startswith("deb "):
                words = [w for w in line[4:].split() if not w.startswith("[")]
                if words and not words[0].endswith("]"):
                    uris.append(words[0])
        for uri in uris:
            if uri.startswith(("http://", "https://")) and "security" not in uri:
                return uri.rstrip("/")
    return None


def release_epoch(mirror: str, suite: str, *, timeout: float = 30.0) -> int | None:
    """The Date of the suite's Release file, for reproducible timestamps; None if unreachable."""
    url = f"{mirror}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            head = response.read(4096).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    match = re.search(r"^Date: (.+)$", head, re.MULTILINE)
    if not match:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(match.group(1).strip()).timestamp())
    except (TypeError, ValueError):
        return None


def choose_tool(tool: str) -> str:
    if tool not in TOOLS:
        raise InvalidArgument(f"invalid --tool {tool!r}: use one of {', '.join(TOOLS)}")
    candidates = ("mmdebstrap", "debootstrap") if tool == "auto" else (tool,)
    for candidate in candidates:
        if shutil.which(candidate):
            return candidate
    raise ToolError(
        f"image bootstrap needs {' or '.join(candidates)}: install it (apt-get install mmdebstrap)"
    )


def check_options(options: BootstrapOptions) -> str:
    """Validate options before anything runs; returns the mirror to use."""
    if not _SUITE.fullmatch(options.suite):
        raise InvalidArgument(f"invalid suite {options.suite!r}")
    if options.variant not in VARIANTS:
        raise InvalidArgument(
            f"invalid variant {options.variant!r}: use one of {', '.join(VARIANTS)}"
        )
    mirror = options.mirror or host_mirror()
    if mirror is None:
        raise InvalidArgument("no Debian mirror in this host's apt sources: pass --mirror URL")
    if not mirror.startswith(("http://", "https://", "file://")):
        raise InvalidArgument(f"invalid mirror {mirror!r}: must be an http(s):// or file:// URL")
    for package in options.include:
        if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", package):
            raise InvalidArgument(f"invalid package name {package!r} in --include")
    return mirror.rstrip("/")


def bootstrap(
    images: ImageStore,
    ref: Reference,
    options: BootstrapOptions,
    progress: Progress | None = None,
) -> Bootstrapped:
    """Make a Debian rootfs with mmdebstrap/debootstrap and store it as ``ref``.

    ``progress`` is called with each step the tool reports, as it goes; a failure says the last.
    """
    mirror = check_options(options)
    tool = choose_tool(options.tool)
    watch = _Watch(tool, progress)
    epoch = options.timestamp
    if epoch is None and os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        epoch = int(os.environ["SOURCE_DATE_EPOCH"])
    if epoch is None:
        epoch = release_epoch(mirror, options.suite)
    created = datetime.fromtimestamp(epoch, UTC) if epoch is not None else datetime.now(UTC)
    command = _command(tool, options, mirror)
    with images.operation() as lease:
        if tool == "mmdebstrap":
            layer = _run_mmdebstrap(images, lease, command, epoch, watch)
        else:
            layer = _run_debootstrap(images, lease, command, epoch, watch)
        when = format_time(created)
        # The command as a user would type it: the cleanup hooks are strata's, not theirs.
        shown = " ".join(a for a in command if a != "-" and "hook" not in a and "skip" not in a)
        config = base_config(created)
        config = replace(
            config,
            config=replace(config.config, env=(f"PATH={DEFAULT_PATH}",), cmd=("/bin/bash",)),
            rootfs=RootFS("layers", (layer.diff_id,)),
            history=(
                History(created=when, created_by=shown, comment="strata image bootstrap"),
                History(
                    created=when,
                    created_by='/bin/sh -c #(nop)  CMD ["/bin/bash"]',
                    empty_layer=True,
                ),
            ),
        )
        image = store_image(images, lease, config=config, layers=[layer], names=[ref])
    return Bootstrapped(image, _version(tool), mirror)


def _version(tool: str) -> str:
    """``debootstrap 1.0.128+nmu2+deb12u2``, or the tool's name if it cannot say."""
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return tool
    words = out.stdout.split()
    return f"{tool} {words[-1]}" if out.returncode == 0 and words else tool


def _command(tool: str, options: BootstrapOptions, mirror: str) -> list[str]:
    include = [f"--include={','.join(options.include)}"] if options.include else []
    if tool == "mmdebstrap":
        mode = "root" if os.geteuid() == 0 else "unshare"
        return [
            "mmdebstrap",
            f"--variant={options.variant}",
            f"--mode={mode}",
            "--format=tar",
            *include,
            *mmdebstrap_hooks(),
            options.suite,
            "-",
            mirror,
        ]
    if os.geteuid() != 0:
        raise ToolError("debootstrap needs root; install mmdebstrap to bootstrap as a user")
    return [
        "debootstrap",
        f"--variant={options.variant}",
        *include,
        options.suite,
        "TARGET",
        mirror,
    ]


def _env(epoch: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(epoch)
    return env


class _Watch:
    """Reads a bootstrapper's messages as they come: keeps them for an error, reports each
    ``I: …`` step to the caller, and remembers the last so a failure says how far it got."""

    def __init__(self, tool: str, progress: Progress | None) -> None:
        self.tool = tool
        self.progress = progress
        self.stage = "starting"
        self.lines: deque[str] = deque(maxlen=100)  # the end is what explains a failure
        # The first error is the cause (mmdebstrap then reports its own cleanup and failure).
        self.error: str | None = None

    def read(self, stream: Iterable[bytes]) -> None:
        for raw in stream:
            text = raw.decode("utf-8", "replace").strip()
            if text:
                self.lines.append(text)
            if text.startswith("E: ") and self.error is None:
                self.error = text
            elif text.startswith("I: ") and self.error is None:
                self.stage = text[3:]
                if self.progress is not None:
                    self.progress(f"{self.tool}: {self.stage}")

    def check(self, returncode: int) -> None:
        """A `ToolError` naming the step it stopped at and its last error line, unless 0."""
        if returncode == 0:
            return
        reason = self.error or (self.lines[-1] if self.lines else f"exit status {returncode}")
        raise ToolError(f"{self.tool} failed (exit {returncode}) at {self.stage!r}: {reason}")


def _run_mmdebstrap(
    images: ImageStore, lease: Lease, command: list[str], epoch: int | None, watch: _Watch
) -> ImageLayer:
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(epoch)
    )
    assert proc.stdout is not None and proc.stderr is not None
    # Its messages come on stderr while the tar streams on stdout: read them beside it.
    reader = threading.Thread(target=watch.read, args=(proc.stderr,), daemon=True)
    reader.start()
    try:
        layer = write_rootfs_layer(
            images, lease, cast(BinaryIO, proc.stdout), name="mmdebstrap output"
        )
    except StrataError:
        # A tool that failed ends the tar early and exits; one still writing is blocked on the
        # pipe, so the error is in what it sent (then ours says why).
        try:
            failed = proc.wait(timeout=60) != 0
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            failed = False
        reader.join()
        if failed:
            watch.check(proc.returncode)
        raise
    finally:
        proc.stdout.close()
    returncode = proc.wait()
    reader.join()
    watch.check(returncode)
    return layer


def _run_debootstrap(
    images: ImageStore, lease: Lease, command: list[str], epoch: int | None, watch: _Watch
) -> ImageLayer:
    scratch = images.root.path / "tmp"
    scratch.mkdir(mode=0o700, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=owned_prefix("bootstrap")) as tmp:
        target = Path(tmp) / "rootfs"
        argv = [str(target) if a == "TARGET" else a for a in command]
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env(epoch)
        )
        assert proc.stdout is not None
        with proc.stdout:
            watch.read(proc.stdout)
        watch.check(proc.wait())
        shape_rootfs(target)
        with images.content.writer(f"layer-{uuid.uuid4().hex}") as writer:
            stats = write_tar_from_dir(target, writer, clamp_mtime=epoch)  # type: ignore[arg-type]
            lease.add("blob", str(stats.diff_id))
            digest = writer.commit(expected=stats.diff_id, size=stats.size)
    return ImageLayer(digest, OCI_LAYER, digest, stats.size, stats.content)

"""``image bootstrap``: a Debian base image made from a Debian mirror, for hosts with no registry.

mmdebstrap is preferred: it streams a tar with sorted names and, with SOURCE_DATE_EPOCH set,
reproducible timestamps, so two bootstraps of one mirror state give the same image ID. Without a
timestamp from the user, the suite's Release date is used, which keeps that promise by default.
debootstrap is the fallback: it writes a directory, which strata turns into a deterministic tar.
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO, cast

from strata.errors import InvalidArgument, StrataError, ToolError
from strata.image.create import store_image
from strata.image.imports import base_config, write_rootfs_layer
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
# Files that differ per host; the container runtime provides them at run time.
HOST_FILES = ("etc/resolv.conf", "etc/hostname")


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


def bootstrap(images: ImageStore, ref: Reference, options: BootstrapOptions) -> Image:
    """Make a Debian rootfs with mmdebstrap/debootstrap and store it as ``ref``."""
    mirror = check_options(options)
    tool = choose_tool(options.tool)
    epoch = options.timestamp
    if epoch is None and os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        epoch = int(os.environ["SOURCE_DATE_EPOCH"])
    if epoch is None:
        epoch = release_epoch(mirror, options.suite)
    created = datetime.fromtimestamp(epoch, UTC) if epoch is not None else datetime.now(UTC)
    command = _command(tool, options, mirror)
    with images.operation() as lease:
        if tool == "mmdebstrap":
            layer = _run_mmdebstrap(images, lease, command, epoch)
        else:
            layer = _run_debootstrap(images, lease, command, epoch)
        when = format_time(created)
        shown = " ".join(a for a in command if a not in ("-", "--quiet") and "hook" not in a)
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
        return store_image(images, lease, config=config, layers=[layer], names=[ref])


def _command(tool: str, options: BootstrapOptions, mirror: str) -> list[str]:
    include = [f"--include={','.join(options.include)}"] if options.include else []
    if tool == "mmdebstrap":
        mode = "root" if os.geteuid() == 0 else "unshare"
        hook = "rm -f " + " ".join(f'"$1/{f}"' for f in HOST_FILES)
        return [
            "mmdebstrap",
            "--quiet",
            f"--variant={options.variant}",
            f"--mode={mode}",
            "--format=tar",
            *include,
            f"--customize-hook={hook}",
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


def _run_mmdebstrap(
    images: ImageStore, lease: Lease, command: list[str], epoch: int | None
) -> ImageLayer:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env=_env(epoch))
        assert proc.stdout is not None
        try:
            layer = write_rootfs_layer(
                images, lease, cast(BinaryIO, proc.stdout), name="mmdebstrap output"
            )
        except StrataError:
            proc.kill()
            proc.wait()
            _check(proc.returncode, command, log)
            raise
        finally:
            proc.stdout.close()
        _check(proc.wait(), command, log)
    return layer


def _run_debootstrap(
    images: ImageStore, lease: Lease, command: list[str], epoch: int | None
) -> ImageLayer:
    scratch = images.root.path / "tmp"
    scratch.mkdir(mode=0o700, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        target = Path(tmp) / "rootfs"
        argv = [str(target) if a == "TARGET" else a for a in command]
        with tempfile.TemporaryFile() as log:
            proc = subprocess.run(argv, stdout=log, stderr=log, env=_env(epoch), check=False)
            _check(proc.returncode, argv, log)
        for name in HOST_FILES:
            with contextlib.suppress(FileNotFoundError):
                (target / name).unlink()
        with images.content.writer(f"layer-{uuid.uuid4().hex}") as writer:
            stats = write_tar_from_dir(target, writer, clamp_mtime=epoch)  # type: ignore[arg-type]
            lease.add("blob", str(stats.diff_id))
            digest = writer.commit(expected=stats.diff_id, size=stats.size)
    return ImageLayer(digest, OCI_LAYER, digest, stats.size, stats.content)


def _check(returncode: int, command: list[str], log: IO[bytes]) -> None:
    if returncode == 0:
        return
    log.seek(0)
    lines = [
        line.strip() for line in log.read().decode("utf-8", "replace").splitlines() if line.strip()
    ]
    reason = lines[-1] if lines else f"exit status {returncode}"
    raise ToolError(f"{command[0]} failed (exit {returncode}): {reason}")

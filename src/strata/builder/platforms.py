"""The platform a build is for: this machine's, or a one-line error.

strata runs RUN steps natively, with no emulator, so it can only build for the machine it runs
on. Docker 20.10's classic builder accepts ``--platform linux/arm64`` (and ``FROM
--platform=linux/arm64``) on an amd64 machine and, when the base image is already there, builds
an amd64 image without a word: an image that is silently not what was asked for. strata refuses
instead. Platforms are read as containerd's ``platforms.Parse`` reads them (``linux``, ``amd64``,
``linux/x86_64``, ``linux/arm64/v8``) and compared with its normalisation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from strata.dockerfile.commands import Stage
from strata.dockerfile.shell import ShellLex
from strata.errors import BuildError
from strata.oci.descriptor import Platform, matches

# Go's GOOS and GOARCH names (containerd's platforms database), and its architecture aliases.
# fmt: off
_KNOWN_OS: Final = frozenset({
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux",
    "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos",
})
_KNOWN_ARCH: Final = frozenset({
    "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "loong64", "mips", "mipsle",
    "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "ppc64", "ppc64le", "riscv",
    "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm",
    "i386", "x86_64", "x86-64", "aarch64", "armhf", "armel",
})
# fmt: on
_COMPONENT: Final = re.compile(r"[A-Za-z0-9_-]+")


def parse_platform(text: str) -> Platform:
    """``os[/arch[/variant]]`` or a lone ``arch``, the missing parts this machine's.

    Raises `BuildError` naming ``text`` when it is not a platform.
    """
    here = Platform.current()
    parts = text.split("/")
    bad = next((p for p in parts if not _COMPONENT.fullmatch(p)), None)
    if bad is not None or len(parts) > 3:
        raise BuildError(
            f"invalid platform {text!r}: expected os/arch[/variant] with letters, digits, - or _"
        )
    if len(parts) == 1:
        word = parts[0].lower()
        if word in _KNOWN_OS:
            return Platform(here.architecture, word, here.variant)
        if word in _KNOWN_ARCH:
            return Platform(word, here.os)
        raise BuildError(f"invalid platform {text!r}: unknown operating system or architecture")
    os_name, arch = parts[0].lower(), parts[1].lower()
    if os_name not in _KNOWN_OS:
        raise BuildError(f"invalid platform {text!r}: unknown operating system {parts[0]!r}")
    if arch not in _KNOWN_ARCH:
        raise BuildError(f"invalid platform {text!r}: unknown architecture {parts[1]!r}")
    return Platform(arch, os_name, parts[2].lower() if len(parts) == 3 else None)


def check_platform(text: str, where: str) -> Platform:
    """The platform ``text`` if it is this machine's; else a `BuildError` saying so.

    ``where`` names the input in the message (``--platform``, ``Dockerfile:3: FROM …``).
    """
    if not text:
        raise BuildError(f"{where}: the platform is empty")
    try:
        wanted = parse_platform(text)
    except BuildError as exc:
        raise BuildError(f"{where}: {exc}") from None
    here = Platform.current()
    if not matches(here, wanted):
        raise BuildError(
            f"{where}: cannot build for platform {wanted}: this machine is {here}, and strata"
            f" runs build steps natively, without emulation"
        )
    return wanted


def automatic_args(platform: Platform) -> dict[str, str]:
    """BuildKit's automatic platform args (``BUILDPLATFORM``, ``TARGETARCH``, …): build and
    target are both this machine, so ``FROM --platform=$BUILDPLATFORM`` means it too."""
    out: dict[str, str] = {}
    for prefix in ("BUILD", "TARGET"):
        out[f"{prefix}PLATFORM"] = str(platform)
        out[f"{prefix}OS"] = platform.os
        out[f"{prefix}ARCH"] = platform.architecture
        out[f"{prefix}VARIANT"] = platform.variant or ""
    return out


def check_stages(
    stages: Iterable[Stage], meta_args: Mapping[str, str | None], lex: ShellLex
) -> None:
    """Every ``FROM --platform=…`` of ``stages`` names this machine, before any step runs.

    The flag is expanded with the args declared before the first FROM, as Docker does, and
    BuildKit's automatic platform args.
    """
    env = automatic_args(Platform.current())
    env.update({k: v for k, v in meta_args.items() if v is not None})
    for stage in stages:
        step = stage.from_
        if step.platform is None:
            continue
        where = f"Dockerfile:{step.node.start_line}: {step.node.original}"
        check_platform(lex.process_word(step.platform, env), where)

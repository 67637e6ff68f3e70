"""What a bootstrapped Debian rootfs drops and adds, to be what Docker's Debian images are.

Docker's official Debian images are made by debuerreotype: its fixup and tar steps drop what
makes a rootfs differ between two builds or belong to one host, and its minimizing-config step
adds apt and dpkg settings for images. mmdebstrap's reproducible cleanup drops much the same.
This module holds that policy once, in two forms: `shape_rootfs` applies it to a directory
(debootstrap's output) and `mmdebstrap_hooks` says it as mmdebstrap hooks (whose output is a
tar stream strata never sees as a directory).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import stat
from pathlib import Path
from typing import Final

# What the rootfs must not keep (relative paths; a last component ``*`` is every entry of that
# directory), compared with debuerreotype's fixup and .tar-exclude, the Docker image script
# (examples/debian.sh) and mmdebstrap's cleanup/reproducible list.
CLEAN: Final = (
    # Per host: the container runtime provides them at run time.
    "etc/resolv.conf",
    "etc/hostname",
    # Logs of the bootstrap: timestamps, and debootstrap's names the host's target directory.
    "var/log/bootstrap.log",
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/apt/history.log",
    "var/log/apt/term.log",
    "var/log/apt/eipp.log.xz",
    # ldconfig's cache of file times and inodes: remade when needed.
    "var/cache/ldconfig/aux-cache",
    # A machine's identity is made where it boots: Docker's Debian images have no machine-id.
    "etc/machine-id",
    "var/lib/dbus/machine-id",
    # The host's kernel versions, a mount table (/run is made at run time), a catalog stamped
    # at build time.
    "etc/apt/apt.conf.d/01autoremove-kernels",
    "run/mount",
    "var/lib/systemd/catalog/database",
    # apt's package lists and caches: empty, as in Docker's images (apt remakes its dirs).
    "var/lib/apt/lists/*",
    "var/cache/apt/*",
)

_CLEAN_APT = (
    "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb"
    " /var/cache/apt/*.bin || true"
)
# Settings Docker's Debian images carry, under the same names (Dockerfiles remove some by name,
# e.g. ``rm -f /etc/apt/apt.conf.d/docker-clean`` before a cache mount): path -> (mode, text).
CONFIG: Final = {
    "usr/sbin/policy-rc.d": (
        0o755,
        "#!/bin/sh\n"
        "# Services do not start when a package is installed: an image build has no init to\n"
        "# run them, and a half-started daemon only makes the install fail.\n"
        "exit 101\n",
    ),
    "etc/dpkg/dpkg.cfg.d/docker-apt-speedup": (
        0o644,
        "# An image build that loses power is started again from scratch: dpkg need not\n"
        "# sync every file it unpacks.\n"
        "force-unsafe-io\n",
    ),
    "etc/apt/apt.conf.d/docker-clean": (
        0o644,
        "// Every install in an image build is a layer of its own: downloaded packages and\n"
        "// apt's binary caches would only make it bigger. They are removed after each dpkg\n"
        '// run and each update (what "apt-get clean" does; calling it here deadlocks).\n'
        f'DPkg::Post-Invoke {{ "{_CLEAN_APT}"; }};\n'
        f'APT::Update::Post-Invoke {{ "{_CLEAN_APT}"; }};\n'
        "\n"
        'Dir::Cache::pkgcache "";\n'
        'Dir::Cache::srcpkgcache "";\n',
    ),
    "etc/apt/apt.conf.d/docker-gzip-indexes": (
        0o644,
        "// Package lists left by `apt-get update` in a layer stay compressed on disk.\n"
        'Acquire::GzipIndexes "true";\n',
    ),
    "etc/apt/apt.conf.d/docker-no-languages": (
        0o644,
        "// No translated package descriptions: a faster, smaller `apt-get update`. Delete\n"
        "// this file to have them again.\n"
        'Acquire::Languages "none";\n',
    ),
    "etc/apt/apt.conf.d/docker-autoremove-suggests": (
        0o644,
        "// `apt-get purge --auto-remove` after a build step removes what the step installed,\n"
        "// even packages another package only suggests.\n"
        'Apt::AutoRemove::SuggestsImportant "false";\n',
    ),
}


def shape_rootfs(root: Path) -> list[str]:
    """Remove `CLEAN`'s paths from the tree at ``root`` and write `CONFIG`'s files.

    Returns the paths removed, sorted. Each directory on the way is opened without following
    symlinks, so nothing outside ``root`` is ever touched, whatever the tree holds; a file of
    `CONFIG` whose directory is not there (a variant without apt) is not written.
    """
    removed: list[str] = []
    for pattern in CLEAN:
        parent, _, name = pattern.rpartition("/")
        fd = _open_dir(root, parent)
        if fd is None:
            continue
        try:
            for entry in sorted(os.listdir(fd)) if name == "*" else [name]:
                try:
                    st = os.lstat(entry, dir_fd=fd)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(entry, dir_fd=fd)
                else:
                    os.unlink(entry, dir_fd=fd)
                removed.append(f"{parent}/{entry}")
        finally:
            os.close(fd)
    for path, (mode, text) in CONFIG.items():
        parent, _, name = path.rpartition("/")
        fd = _open_dir(root, parent)
        if fd is None:
            continue
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)  # a symlink there is replaced, never followed
            out = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode, dir_fd=fd
            )
            with os.fdopen(out, "w") as handle:
                handle.write(text)
                os.fchmod(handle.fileno(), mode)  # whatever the umask
        finally:
            os.close(fd)
    return sorted(removed)


def mmdebstrap_hooks() -> list[str]:
    """mmdebstrap options applying the same policy to what it builds.

    The customize hook runs while /dev, /proc and /sys are mounted: it removes only `CLEAN`'s
    paths and never crosses into another filesystem. apt's own cleanup comes after hooks and
    remakes lock files and partial dirs, so it is skipped: the hook empties lists and caches.
    mmdebstrap removes any policy-rc.d when it unmounts, so its own is skipped and ours is
    written right after extraction, guarding every install after it.
    """
    remove = "rm -rf --one-file-system " + " ".join(
        f'"$1"/{f}' if f.endswith("*") else f'"$1/{f}"' for f in CLEAN
    )
    writes = []
    policy = ""
    for path, (mode, text) in CONFIG.items():
        parent = path.rpartition("/")[0]
        write = (
            f'if [ -d "$1/{parent}" ]; then printf %s {shlex.quote(text)} > "$1/{path}"'
            f' && chmod {mode:o} "$1/{path}"; fi'
        )
        if path == "usr/sbin/policy-rc.d":
            policy = write
        else:
            writes.append(write)
    return [
        "--skip=cleanup/apt,chroot/policy-rc.d",
        f"--extract-hook={policy}",
        f"--customize-hook={remove}",
        f"--customize-hook={'; '.join(writes)}",
    ]


def _open_dir(root: Path, relative: str) -> int | None:
    """A descriptor of ``root/relative``, a real directory in it; None if it is not one."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    fd = os.open(root, flags)
    for part in relative.split("/") if relative else ():
        try:
            inner = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
        except OSError:  # missing, a symlink (ELOOP) or not a directory
            os.close(fd)
            return None
        os.close(fd)
        fd = inner
    return fd

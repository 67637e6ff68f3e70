"""Choosing the backend: ``--runtime NAME``, or the best one that works on this host.

The default is runc when it is installed, the cgroup filesystem is writable (runc as root makes a
cgroup for every container: read-only cgroups, as in an unprivileged container or many CI
runners, make every start fail) *and* a probe container runs (a runc binary can be present yet
unusable: a cgroup layout it does not understand, a missing kernel feature), else the chroot
backend. ``--log-level info`` says which and why. The probe costs one container start, so its
verdict is cached in ``<state_root>/probe.json``, keyed by the runtime binary (path, size, mtime)
and the kernel. Each backend keeps its state in ``<state_root>/<name>``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

from strata.errors import InvalidArgument, StrataError, ToolError
from strata.runtime.backend import RuntimeBackend
from strata.runtime.runc import RuncBackend, cgroup_problem
from strata.runtime.spec import BindMount, Network, ProcessSpec, RunSpec, write_bundle

RUNTIMES = ("runc", "crun", "chroot")
PROBE_NAME = "probe.json"
_HOST_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr")
_log = logging.getLogger(__name__)


def backend_by_name(name: str, state_root: Path) -> RuntimeBackend:
    """The backend for ``--runtime NAME`` (InvalidArgument for an unknown name)."""
    if name in ("runc", "crun"):
        return RuncBackend(state_root / name, binary=name)
    if name == "chroot":
        from strata.runtime.chroot import ChrootBackend

        return ChrootBackend(state_root / name)
    raise InvalidArgument(f"unknown runtime {name!r} (choose from {', '.join(RUNTIMES)})")


def default_backend(state_root: Path, *, runc_binary: str = "runc") -> RuntimeBackend:
    """runc if it is there, can make cgroups and a probe container runs, else chroot (ToolError
    if neither). The choice and its reason are logged at info level."""
    runc = RuncBackend(state_root / "runc", binary=runc_binary)
    why_not = _runc_unusable(runc, state_root)
    if why_not is None:
        _log.info("runtime: %s (a probe container ran here)", runc.name)
        return runc
    from strata.runtime.chroot import ChrootBackend

    chroot = ChrootBackend(state_root / "chroot")
    if chroot.available():
        _log.info("runtime: chroot, because %s (the chroot backend needs no cgroups)", why_not)
        return chroot
    raise ToolError(
        f"no container runtime works here: {why_not}, and the chroot backend needs root "
        "and namespaces"
    )


def _runc_unusable(runc: RuncBackend, state_root: Path) -> str | None:
    """Why runc cannot run containers here, or None when it can."""
    # No `runc --version` here: the cached probe is keyed by the binary itself, and a probe that
    # runs a container says more than a version string (and costs nothing after the first).
    if shutil.which(runc.binary) is None:
        return f"{runc.name} is not installed"
    # Before the probe: its cached verdict was made where cgroups were writable, and a mount
    # namespace (a container, a CI runner) can make them read-only under the same binary.
    problem = cgroup_problem()
    if problem is not None:
        return f"{problem} and {runc.name} needs to create a cgroup for each container"
    if not _probe_cached(runc, state_root):
        return f"{runc.name} is installed but a probe container failed to run"
    return None


def _binary_key(runc: RuncBackend) -> str | None:
    path = shutil.which(runc.binary)
    if path is None:
        return None
    info = os.stat(path)
    return f"{os.path.realpath(path)}:{info.st_size}:{info.st_mtime_ns}:{os.uname().release}"


def _probe_cached(runc: RuncBackend, state_root: Path) -> bool:
    key = _binary_key(runc)
    if key is None:
        return False
    cache = state_root / PROBE_NAME
    with contextlib.suppress(OSError, ValueError, AttributeError):
        verdict = json.loads(cache.read_text()).get(runc.name)
        if isinstance(verdict, dict) and verdict.get("key") == key:
            return bool(verdict.get("works"))
    works = probe(runc)
    with contextlib.suppress(OSError):
        state_root.mkdir(parents=True, exist_ok=True)
        data = {}
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(cache.read_text())
        data[runc.name] = {"key": key, "works": works}
        tmp = cache.with_name(f".{PROBE_NAME}.{os.getpid()}")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, cache)
    return works


def probe(runc: RuncBackend) -> bool:
    """Run ``true`` in a throwaway container made of the host's read-only system directories."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="strata-probe-") as work:
        root = Path(work) / "rootfs"
        root.mkdir()
        binds = []
        for name in _HOST_DIRS:
            host = Path("/") / name
            if host.is_symlink():
                (root / name).symlink_to(os.readlink(host))
            elif host.is_dir():
                binds.append(BindMount(host, f"/{name}", readonly=True))
        spec = RunSpec(
            rootfs=root,
            process=ProcessSpec(args=("true",)),
            hostname="probe",
            network=Network.NONE,
            mounts=tuple(binds),
        )
        container_id = f"strata-probe-{os.getpid()}"
        try:
            bundle = write_bundle(Path(work) / "bundle", spec, container_id=container_id)
            done = subprocess.run(
                runc.argv("run", "--bundle", str(bundle), container_id),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
                check=False,
            )
        except (StrataError, OSError, subprocess.SubprocessError):
            return False
        if done.returncode != 0:  # `run` deletes its container, except when it failed midway
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    runc.argv("delete", "--force", container_id),
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
        return done.returncode == 0

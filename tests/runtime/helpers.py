"""Helpers for the runtime tests: specs, bundles, running a container with stdio on files."""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from strata.runtime import ProcessIO, ProcessSpec, RunSpec, write_bundle, write_etc_files
from strata.runtime.backend import RuntimeBackend

DRIVER = Path(__file__).with_name("driver.py")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def new_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def make_spec(rootfs: Path, *args: str, **changes: object) -> RunSpec:
    """A RunSpec for ``args`` in ``rootfs``; ``process`` fields and spec fields by keyword."""
    process_fields = {k: changes.pop(k) for k in list(changes) if k in ProcessSpec.__annotations__}
    process = replace(ProcessSpec(args=tuple(args)), **process_fields)  # type: ignore[arg-type]
    hostname = str(changes.pop("hostname", "box"))
    spec = RunSpec(rootfs=rootfs, process=process, hostname=hostname)
    return replace(spec, **changes)  # type: ignore[arg-type]


def prepare(tmp_path: Path, spec: RunSpec, container_id: str) -> Path:
    """Write the etc files and the bundle for a container; its bundle dir."""
    home = tmp_path / container_id
    etc = write_etc_files(home / "etc", hostname=spec.hostname, network=spec.network)
    return write_bundle(home / "bundle", replace(spec, etc=etc), container_id=container_id)


def run(backend: RuntimeBackend, tmp_path: Path, spec: RunSpec, stdin: bytes = b"") -> Result:
    """Run a container in the foreground with stdio on files; its exit status and output."""
    container_id = new_id()
    bundle = prepare(tmp_path, spec, container_id)
    files = {name: tmp_path / f"{container_id}.{name}" for name in ("in", "out", "err")}
    files["in"].write_bytes(stdin)
    fds = [
        os.open(files["in"], os.O_RDONLY),
        os.open(files["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        os.open(files["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ]
    try:
        code = backend.run(container_id, bundle, stdio=ProcessIO(*fds))
    finally:
        for fd in fds:
            os.close(fd)
    return Result(code, files["out"].read_text(), files["err"].read_text())


def driver_argv(backend: RuntimeBackend, bundle: Path, container_id: str) -> list[str]:
    """The command that runs one container in the foreground in its own process."""
    state_root = backend.state_root.parent
    return [sys.executable, str(DRIVER), backend.name, str(state_root), str(bundle), container_id]


MONITOR = Path(__file__).with_name("monitor.py")


def monitor_argv(
    backend: RuntimeBackend, bundle: Path, container_id: str, out: Path, err: Path
) -> list[str]:
    """The command that creates a container and waits for it, as the detach monitor will."""
    state_root = backend.state_root.parent
    return [
        sys.executable,
        str(MONITOR),
        backend.name,
        str(state_root),
        str(bundle),
        container_id,
        str(out),
        str(err),
    ]

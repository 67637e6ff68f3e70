"""Running containers: OCI runtime specs and the backends that run them.

This package owns the layer under ``strata run``: a :class:`RunSpec` (rootfs, process, hostname,
network, binds) becomes an OCI bundle (``config.json``, :func:`write_bundle`) that a
:class:`RuntimeBackend` runs under a container ID: :class:`RuncBackend` (runc, or crun) or
:class:`ChrootBackend` (namespaces + pivot_root from Python, for hosts without an OCI runtime).
:func:`default_backend` picks what works here, :func:`backend_by_name` honours ``--runtime``.
Users and paths inside an image are resolved without ever leaving its root (:mod:`.rootfs`).

Container records (:mod:`.containers`), the detach monitor, logs and commit build on this API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strata.runtime.backend import (
        ContainerState,
        Created,
        ProcessIO,
        RuntimeBackend,
        Status,
        load_config,
    )
    from strata.runtime.chroot import ChrootBackend
    from strata.runtime.process import exit_status, wait_exit
    from strata.runtime.runc import RuncBackend
    from strata.runtime.select import RUNTIMES, backend_by_name, default_backend
    from strata.runtime.spec import (
        BindMount,
        EtcFiles,
        Network,
        ProcessSpec,
        RunSpec,
        default_hostname,
        find_init,
        generate_config,
        parse_volume,
        write_bundle,
        write_etc_files,
    )
    from strata.runtime.syscalls import become_subreaper
    from strata.runtime.tty import terminal_size
    from strata.runtime.users import ExecUser, resolve_user

# Every name loads its module on first use: `strata ps` or `logs` must not pay for the backends,
# and `run` with runc not for the chroot backend's fork/namespace code.
_HOMES = {
    "backend": (
        "ContainerState",
        "Created",
        "ProcessIO",
        "RuntimeBackend",
        "Status",
        "load_config",
    ),
    "chroot": ("ChrootBackend",),
    "process": ("exit_status", "wait_exit"),
    "runc": ("RuncBackend",),
    "select": ("RUNTIMES", "backend_by_name", "default_backend"),
    "spec": (
        "BindMount",
        "EtcFiles",
        "Network",
        "ProcessSpec",
        "RunSpec",
        "default_hostname",
        "find_init",
        "generate_config",
        "parse_volume",
        "write_bundle",
        "write_etc_files",
    ),
    "syscalls": ("become_subreaper",),
    "tty": ("terminal_size",),
    "users": ("ExecUser", "resolve_user"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "RUNTIMES",
    "BindMount",
    "ChrootBackend",
    "ContainerState",
    "Created",
    "EtcFiles",
    "ExecUser",
    "Network",
    "ProcessIO",
    "ProcessSpec",
    "RunSpec",
    "RuncBackend",
    "RuntimeBackend",
    "Status",
    "backend_by_name",
    "become_subreaper",
    "default_backend",
    "default_hostname",
    "exit_status",
    "find_init",
    "generate_config",
    "load_config",
    "parse_volume",
    "resolve_user",
    "terminal_size",
    "wait_exit",
    "write_bundle",
    "write_etc_files",
]

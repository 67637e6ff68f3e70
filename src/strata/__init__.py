"""strata: daemonless container images made of layers.

Builds, stores, runs and ships OCI and Docker images. The library never prints or exits; the
command line (`strata.cli`) is the only place that does. See DESIGN.md for which package owns what
and which way imports go.

``import strata`` gives the API (`strata.api`): ``strata.pull``, ``push``, ``build``, ``run``,
``commit``, ``save``, ``load``, ``images``, ``containers``, ``history`` and their types. They load
on first use: ``python -m strata run`` imports this module first and must stay fast.
"""

import sys as _sys

# Not `typing.TYPE_CHECKING`: importing typing here would cost every command ~5 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from strata.api import (
        Container,
        HistoryEntry,
        Image,
        Progress,
        Pushed,
        RunResult,
        build,
        commit,
        containers,
        history,
        images,
        load,
        pull,
        push,
        run,
        save,
    )

__version__ = "0.1.0"

__all__ = [
    "Container",
    "HistoryEntry",
    "Image",
    "Progress",
    "Pushed",
    "RunResult",
    "__version__",
    "build",
    "commit",
    "containers",
    "history",
    "images",
    "load",
    "pull",
    "push",
    "run",
    "save",
]

# The names `strata.api` defines, loaded from there on first access.
_API = frozenset(__all__) - {"__version__", "build"}

# `strata.build` is also the package of that name, which the import system sets as this
# module's attribute when it loads: that package is made callable as the API's `build`, so
# `strata.build(".")` builds and `strata.build.executor` stays the module.
if TYPE_CHECKING:
    from types import ModuleType as _Module
else:
    _Module = type(_sys)  # types.ModuleType, without importing types


class _BuildPackage(_Module):
    """The ``strata.build`` package, which calls `strata.api.build` when called."""

    def __call__(self, *args: "Any", **kwargs: "Any") -> "Image":
        from strata.api import build

        return build(*args, **kwargs)


class _Strata(_Module):
    """This module, seeing the ``strata.build`` package arrive."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "build" and isinstance(value, _Module):
            value.__class__ = _BuildPackage
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Strata


def __getattr__(name: str) -> "Any":
    import importlib

    if name == "build":
        return importlib.import_module("strata.build")  # made callable as it arrives
    if name in _API:
        value = getattr(importlib.import_module("strata.api"), name)
        globals()[name] = value  # later accesses skip this hook
        return value
    raise AttributeError(f"module 'strata' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

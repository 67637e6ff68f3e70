"""strata: daemonless container images made of layers.

Builds, stores, runs and ships OCI and Docker images. The library never prints or exits; the
command line (`strata.cli`) is the only place that does. See DESIGN.md for which package owns what
and which way imports go.

``import strata`` gives the API (`strata.api`): ``strata.pull``, ``push``, ``build``, ``run``,
``commit``, ``save``, ``load``, ``images``, ``containers``, ``history`` and their types. They load
on first use: ``python -m strata run`` imports this module first and must stay fast.
"""

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

# The names `strata.api` defines, loaded from there on first access. (The build package is
# `strata.builder`, so `strata.build` is the API's function and nothing else.)
_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> "Any":
    if name in _API:
        import importlib

        value = getattr(importlib.import_module("strata.api"), name)
        globals()[name] = value  # later accesses skip this hook
        return value
    raise AttributeError(f"module 'strata' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

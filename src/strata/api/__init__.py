"""strata as a library: one call for each thing the command line does, returning values.

``import strata`` re-exports these: `pull`, `push`, `build`, `run`, `commit`, `save`, `load`,
`images`, `containers` and `history`. None of them prints or exits; each raises the typed errors
of `strata.errors` and takes ``root=`` (the store, by default as the command line's: STRATA_ROOT,
else /var/lib/strata as root, else $XDG_DATA_HOME/strata). The long ones (pull, push, build,
load) report as they go through ``progress``, a callable given one `Progress` event at a time
(from worker threads too: it must be thread-safe and must not raise).

Images come back as `Image` handles and containers as `Container` handles: small frozen values
that name what they stand for, and that every function takes where a name is taken (a handle
stands for its ID, so a tag moved meanwhile does not change what it means).
"""

# Not `typing.TYPE_CHECKING`: each name loads its module on first use (see `__getattr__`), so
# `strata run` pays for `run` alone, not for the build and transfer code.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from strata.api.building import build, explain
    from strata.api.progress import Progress, ProgressCallback, ProgressKind
    from strata.api.running import HasFileno, Stdio, commit, containers, run
    from strata.api.stored import history, images, load, save
    from strata.api.transfer import pull, push
    from strata.api.values import Container, HistoryEntry, Image, Pushed, RunResult
    from strata.api.volumes import (
        create_volume,
        prune_unused_volumes,
        remove_volume,
        volume,
        volumes,
    )

__all__ = [
    "Container",
    "HasFileno",
    "HistoryEntry",
    "Image",
    "Progress",
    "ProgressCallback",
    "ProgressKind",
    "Pushed",
    "RunResult",
    "Stdio",
    "build",
    "commit",
    "containers",
    "create_volume",
    "explain",
    "history",
    "images",
    "load",
    "prune_unused_volumes",
    "pull",
    "push",
    "remove_volume",
    "run",
    "save",
    "volume",
    "volumes",
]

# Where each name is defined.
_MODULES = {
    "build": "strata.api.building",
    "explain": "strata.api.building",
    "Progress": "strata.api.progress",
    "ProgressCallback": "strata.api.progress",
    "ProgressKind": "strata.api.progress",
    "HasFileno": "strata.api.running",
    "Stdio": "strata.api.running",
    "commit": "strata.api.running",
    "containers": "strata.api.running",
    "run": "strata.api.running",
    "history": "strata.api.stored",
    "images": "strata.api.stored",
    "load": "strata.api.stored",
    "save": "strata.api.stored",
    "pull": "strata.api.transfer",
    "push": "strata.api.transfer",
    "Container": "strata.api.values",
    "HistoryEntry": "strata.api.values",
    "Image": "strata.api.values",
    "Pushed": "strata.api.values",
    "RunResult": "strata.api.values",
    "create_volume": "strata.api.volumes",
    "prune_unused_volumes": "strata.api.volumes",
    "remove_volume": "strata.api.volumes",
    "volume": "strata.api.volumes",
    "volumes": "strata.api.volumes",
}


def __getattr__(name: str) -> object:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'strata.api' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip this hook
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

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

from strata.api.building import build, explain
from strata.api.progress import Progress, ProgressCallback, ProgressKind
from strata.api.running import commit, containers, run
from strata.api.stored import history, images, load, save
from strata.api.transfer import pull, push
from strata.api.values import Container, HistoryEntry, Image, Pushed, RunResult

__all__ = [
    "Container",
    "HistoryEntry",
    "Image",
    "Progress",
    "ProgressCallback",
    "ProgressKind",
    "Pushed",
    "RunResult",
    "build",
    "commit",
    "containers",
    "explain",
    "history",
    "images",
    "load",
    "pull",
    "push",
    "run",
    "save",
]

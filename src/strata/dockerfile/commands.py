"""The typed Dockerfile instructions (BuildKit's ``commands.go``): one frozen dataclass each.

Each keeps its `Node` for the line numbers and original text; words are raw (``$VAR``, quotes)
until the builder expands them. `instructions` builds these from the parsed nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from strata.dockerfile.ast import Heredoc, Node

__all__ = [
    "Add",
    "Arg",
    "Cmd",
    "Copy",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "Healthcheck",
    "Instruction",
    "Label",
    "Maintainer",
    "Onbuild",
    "Run",
    "Shell",
    "Stage",
    "Stopsignal",
    "User",
    "Volume",
    "Workdir",
]


@dataclass(frozen=True, slots=True)
class From:
    """``FROM [--platform=p] image [AS name]``; ``stage_name`` is lower-cased, as BuildKit does."""

    node: Node
    image: str
    stage_name: str | None = None
    platform: str | None = None


@dataclass(frozen=True, slots=True)
class Run:
    """``RUN``: ``command`` is the exec array, or one shell string when ``shell_form``.

    ``mounts`` and ``devices`` are the raw ``--mount``/``--device`` values; ``network`` is
    ``default``, ``none`` or ``host``; ``security`` is ``sandbox`` or ``insecure``.
    """

    node: Node
    command: tuple[str, ...]
    shell_form: bool
    heredocs: tuple[Heredoc, ...] = ()
    mounts: tuple[str, ...] = ()
    network: str = "default"
    security: str = "sandbox"
    devices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Cmd:
    """``CMD``: the exec array, or one shell string when ``shell_form``."""

    node: Node
    command: tuple[str, ...]
    shell_form: bool


@dataclass(frozen=True, slots=True)
class Entrypoint:
    """``ENTRYPOINT``: the exec array, or one shell string; ``ENTRYPOINT []`` clears it."""

    node: Node
    command: tuple[str, ...]
    shell_form: bool


@dataclass(frozen=True, slots=True)
class Env:
    """``ENV``: (name, raw value) pairs, from ``k=v ...`` or the legacy ``ENV k v``."""

    node: Node
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Label:
    """``LABEL``: (name, raw value) pairs."""

    node: Node
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Arg:
    """``ARG``: (name, raw default or None) pairs."""

    node: Node
    pairs: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True)
class Workdir:
    node: Node
    path: str


@dataclass(frozen=True, slots=True)
class Copy:
    """``COPY``: ``sources`` are paths; heredoc sources (``COPY <<EOF /f``) are in ``heredocs``."""

    node: Node
    sources: tuple[str, ...]
    dest: str
    from_stage: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    exclude: tuple[str, ...] = ()
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True, slots=True)
class Add:
    """``ADD``: as `Copy` (without ``--from``/``--parents``), plus URL and archive options."""

    node: Node
    sources: tuple[str, ...]
    dest: str
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    exclude: tuple[str, ...] = ()
    heredocs: tuple[Heredoc, ...] = ()
    checksum: str | None = None
    keep_git_dir: bool | None = None
    unpack: bool | None = None


@dataclass(frozen=True, slots=True)
class Expose:
    """``EXPOSE``: raw port words, sorted as BuildKit sorts them."""

    node: Node
    ports: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class User:
    node: Node
    user: str


@dataclass(frozen=True, slots=True)
class Volume:
    node: Node
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Shell:
    """``SHELL``: always the JSON form."""

    node: Node
    shell: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Healthcheck:
    """``HEALTHCHECK``: ``test`` as the image config records it (``CMD``/``CMD-SHELL``/``NONE``).

    Durations are nanoseconds, 0 meaning "inherit the default".
    """

    node: Node
    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    @property
    def disabled(self) -> bool:
        """``HEALTHCHECK NONE``: turn off any check inherited from the base image."""
        return self.test == ("NONE",)

    def config(self) -> dict[str, Any]:
        """The image config's ``Healthcheck`` object: ``Test``, and each duration or count set."""
        check: dict[str, Any] = {"Test": list(self.test)}
        for name, number in (
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
            ("Retries", self.retries),
        ):
            if number:
                check[name] = number
        return check


@dataclass(frozen=True, slots=True)
class Stopsignal:
    node: Node
    signal: str


@dataclass(frozen=True, slots=True)
class Onbuild:
    """``ONBUILD``: ``expression`` is the trigger as the image config stores it."""

    node: Node
    expression: str
    trigger: Instruction


@dataclass(frozen=True, slots=True)
class Maintainer:
    node: Node
    maintainer: str


Instruction: TypeAlias = (
    From
    | Run
    | Cmd
    | Entrypoint
    | Env
    | Label
    | Arg
    | Workdir
    | Copy
    | Add
    | Expose
    | User
    | Volume
    | Shell
    | Healthcheck
    | Stopsignal
    | Onbuild
    | Maintainer
)


@dataclass(frozen=True, slots=True)
class Stage:
    """One build stage: its FROM and the instructions up to the next FROM."""

    index: int
    from_: From
    instructions: tuple[Instruction, ...]

    @property
    def name(self) -> str | None:
        return self.from_.stage_name

"""Dockerfile-syntax config changes (``import -c``, ``commit -c``), applied to an image config.

As moby's ``BuildFromConfig`` does: each change is parsed by the Dockerfile parser
(`strata.dockerfile`), checked against the instructions a change may use, typed, and dispatched
against the config, with words expanded by the Dockerfile's shell-word rules against the
config's Env as it stands before each instruction (ENV, LABEL, EXPOSE, USER, VOLUME, WORKDIR;
not CMD/ENTRYPOINT, which the shell expands at run time). The instructions allowed are those
Docker 20.10 accepts: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, USER, VOLUME,
WORKDIR.

moby joins all changes with newlines into one Dockerfile; each change is parsed on its own here,
so that an error names the change it is in. They differ only for a change that ends in a line
continuation or holds a parser directive, which would then reach into the next change.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from strata.dockerfile.commands import (
    Cmd,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Onbuild,
    User,
    Volume,
    Workdir,
)
from strata.dockerfile.instructions import parse_instruction
from strata.dockerfile.parser import parse
from strata.dockerfile.shell import ShellLex
from strata.errors import DockerfileError, InvalidArgument
from strata.oci.config import ContainerConfig, ImageConfig

ALLOWED = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "USER",
    "VOLUME",
    "WORKDIR",
)
# The Dockerfile's own shell, which Docker uses for a shell-form CMD or ENTRYPOINT change even
# when the image has a SHELL: a change is not a build step.
_SHELL = ("/bin/sh", "-c")
# The parser's errors start ``change:LINE: `` (or ``change: ``); the change itself is named in
# the message instead.
_NAME = "change"
_WHERE = re.compile(rf"^{_NAME}(?::\d+)?: ")


@dataclass
class _State:
    """The config being changed, and whether a CMD was set by an earlier change of this call
    (then a later ENTRYPOINT keeps it, as in a Dockerfile stage: moby's ``cmdSet``)."""

    container: ContainerConfig
    cmd_set: bool = False


def apply_changes(config: ImageConfig, changes: Iterable[str]) -> ImageConfig:
    """Return ``config`` with every change applied in order; `InvalidArgument` on a bad one."""
    state = _State(config.config)
    for change in changes:
        _apply(state, change)
    return replace(config, config=state.container)


def apply_change(container: ContainerConfig, change: str) -> ContainerConfig:
    """``container`` with the one change applied; `InvalidArgument` if it is bad."""
    state = _State(container)
    _apply(state, change)
    return state.container


def _apply(state: _State, change: str) -> None:
    if not change.strip():
        raise InvalidArgument(f"invalid change {change!r}: empty")
    try:
        dockerfile = parse(change, filename=_NAME)
    except DockerfileError as err:
        raise _invalid(change, err) from None
    for node in dockerfile.nodes:
        if node.value.upper() not in ALLOWED:
            raise InvalidArgument(
                f"invalid change {change!r}: {node.keyword} is not a valid change command"
                f" (use one of {', '.join(ALLOWED)})"
            )
    lex = ShellLex(dockerfile.escape)
    for node in dockerfile.nodes:
        # Docker takes ``CMD`` alone as an empty shell command; refuse it as an unfinished change.
        if node.value in ("cmd", "entrypoint") and not node.args and not node.json_form:
            raise InvalidArgument(
                f"invalid change {change!r}: {node.value.upper()} requires an argument"
            )
        try:
            instruction = parse_instruction(node, filename=_NAME)
            _dispatch(state, instruction, lex, change)
        except DockerfileError as err:
            raise _invalid(change, err) from None


def _invalid(change: str, err: DockerfileError) -> InvalidArgument:
    return InvalidArgument(f"invalid change {change!r}: {_WHERE.sub('', str(err), count=1)}")


def _dispatch(state: _State, step: Instruction, lex: ShellLex, change: str) -> None:
    """Apply the typed instruction ``step`` to ``state``, as moby's dispatchers do."""
    container = state.container
    env = dict(entry.partition("=")[::2] for entry in container.env)

    def expand(word: str) -> str:
        return lex.process_word(word, env)

    if isinstance(step, Cmd):
        state.container = replace(container, cmd=_command(step.command, step.shell_form))
        state.cmd_set = True
    elif isinstance(step, Entrypoint):
        entrypoint = _command(step.command, step.shell_form)
        cmd = container.cmd if state.cmd_set else None
        state.container = replace(container, entrypoint=entrypoint, cmd=cmd)
    elif isinstance(step, Env):
        entries = list(container.env)
        for key, value in step.pairs:
            name = expand(key)
            entry = f"{name}={expand(value)}"
            # The first entry of that name is replaced in place; a new name goes last.
            for i, old in enumerate(entries):
                if old.partition("=")[0] == name:
                    entries[i] = entry
                    break
            else:
                entries.append(entry)
        state.container = replace(container, env=tuple(entries))
    elif isinstance(step, Label):
        labels = dict(container.labels)
        labels.update((expand(key), expand(value)) for key, value in step.pairs)
        state.container = replace(container, labels=labels)
    elif isinstance(step, Expose):
        ports = list(container.exposed_ports)
        for raw in step.ports:
            for word in lex.process_words(raw, env):
                ports.extend(_ports(word, change))
        state.container = replace(container, exposed_ports=tuple(ports))
    elif isinstance(step, User):
        state.container = replace(container, user=expand(step.user))
    elif isinstance(step, Workdir):
        path = _clean(posixpath.join(container.working_dir or "/", expand(step.path)))
        state.container = replace(container, working_dir=path)
    elif isinstance(step, Volume):
        volumes = list(container.volumes)
        for raw in step.paths:
            volume = expand(raw)
            if not volume:
                raise DockerfileError("VOLUME specified can not be an empty string")
            volumes.append(volume)
        state.container = replace(container, volumes=tuple(volumes))
    elif isinstance(step, Healthcheck):
        state.container = replace(container, healthcheck=step.config())
    elif isinstance(step, Onbuild):
        # Stored as written; it runs when the image is used as a base.
        state.container = replace(container, on_build=(*container.on_build, step.expression))
    else:  # pragma: no cover - `_apply` lets only the ALLOWED instructions through
        raise DockerfileError(f"{step.node.keyword} is not a valid change command")


def _command(command: tuple[str, ...], shell_form: bool) -> tuple[str, ...]:
    return (*_SHELL, *command) if shell_form else command


def _clean(path: str) -> str:
    """Go's ``filepath.Clean`` of an absolute path (posixpath keeps a leading ``//``)."""
    return "/" + posixpath.normpath(path).lstrip("/")


def _ports(word: str, change: str) -> list[str]:
    """The ports of one EXPOSE word (``80``, ``53/udp``, ``8000-8001``), as ``port/proto``."""
    port, _, proto = word.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid change {change!r}: invalid proto {proto!r}")
    start, _, end = port.partition("-")
    if not start.isdigit() or (end and not end.isdigit()):
        raise InvalidArgument(f"invalid change {change!r}: invalid port {word!r}")
    low, high = int(start), int(end or start)
    if not 0 < low <= high <= 65535:
        raise InvalidArgument(f"invalid change {change!r}: invalid port range {word!r}")
    return [f"{p}/{proto}" for p in range(low, high + 1)]

"""A stage's state between steps, and the metadata-only instructions that change it.

Each metadata instruction (ENV, LABEL, CMD, ...) turns the current image config into the next
one and says what Docker's classic builder records as the step's history entry
(``/bin/sh -c #(nop)  CMD ["node" "app.js"]``). Words are expanded with the stage's build args
and environment first, as Docker does for these instructions; the names a word used are kept
for the cache key and its explanation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from strata.builder.healthcheck import healthcheck_text
from strata.dockerfile.commands import (
    Arg,
    Cmd,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from strata.dockerfile.shell import ShellLex
from strata.errors import BuildError
from strata.oci.config import ImageConfig
from strata.runtime.options import DEFAULT_PATH

DEFAULT_SHELL = ("/bin/sh", "-c")
METADATA = (
    *(Arg, Cmd, Entrypoint, Env, Expose, Healthcheck, Label, Maintainer, Onbuild),
    *(Shell, Stopsignal, User, Volume, Workdir),
)


@dataclass
class StageState:
    """What expansion and the next steps need: declared build args and the config so far."""

    config: ImageConfig
    build_args: Mapping[str, str]  # --build-arg values (and the meta ARG values)
    lex: ShellLex
    declared: dict[str, str | None] = field(default_factory=dict)  # ARGs of this stage
    used: set[str] = field(default_factory=set)  # args the current step referenced
    cmd_set: bool = False  # a CMD of this stage ran: a later ENTRYPOINT keeps it
    _env: _ParsedEnv | None = None

    @property
    def shell(self) -> tuple[str, ...]:
        return self.config.config.shell or DEFAULT_SHELL

    def arg_values(self) -> dict[str, str]:
        """The stage's build args that have a value (given, else their default)."""
        out: dict[str, str] = {}
        for name, default in self.declared.items():
            value = self.build_args.get(name, default)
            if value is not None:
                out[name] = value
        return out

    def parsed_env(self) -> Mapping[str, str]:
        """The image's Env as a mapping (the last value of a name wins; read it, never change
        it). Kept between steps: a step that appends to Env parses only what it appended, so
        a stage of N ENV lines is not O(N^2)."""
        env = self.config.config.env
        cached = self._env
        if cached is not None and cached.source is not env:
            known = len(cached.source)
            if len(env) > known and env[:known] == cached.source:
                cached.extend(env)
            else:
                cached = None
        if cached is None:
            cached = self._env = _ParsedEnv.of(env)
        return cached.values

    def env_is_normal(self) -> bool:
        """Whether Env is already what rebuilding it from `parsed_env` gives (NAME=value each,
        no name twice), so that an ENV of new names may append to it."""
        self.parsed_env()
        return self._env is not None and self._env.normal

    def env(self) -> Mapping[str, str]:
        """Expansion environment: build args, overridden by the image's ENV (Docker's rule)."""
        parsed = self.parsed_env()
        args = self.arg_values()
        return {**args, **parsed} if args else parsed

    def expand(self, word: str) -> str:
        env = self.env()
        value, names = self.lex.process_word_with_matches(word, env)
        self._note_used(names)
        return value

    def expand_words(self, word: str) -> list[str]:
        env = self.env()
        _, names = self.lex.process_word_with_matches(word, env)
        self._note_used(names)
        return self.lex.process_words(word, env)

    def _note_used(self, names: frozenset[str]) -> None:
        if names:
            parsed = self.parsed_env()
            self.used |= {n for n in names if n in self.declared and n not in parsed}

    def used_args(self) -> dict[str, str]:
        values = self.arg_values()
        return {n: values.get(n, "") for n in sorted(self.used)}


@dataclass
class _ParsedEnv:
    """An Env tuple parsed (see `StageState.parsed_env`)."""

    source: tuple[str, ...]
    values: dict[str, str]
    normal: bool  # source == tuple of f"{k}={v}" for values

    @classmethod
    def of(cls, env: tuple[str, ...]) -> _ParsedEnv:
        values = dict(e.partition("=")[::2] for e in env)
        return cls(env, values, tuple(f"{k}={v}" for k, v in values.items()) == env)

    def extend(self, env: tuple[str, ...]) -> None:
        """Take in the entries ``env`` has after `source` (which it starts with)."""
        for entry in env[len(self.source) :]:
            key, sep, value = entry.partition("=")
            if not sep or key in self.values:
                self.normal = False
            self.values[key] = value
        self.source = env


def begin_stage(base: ImageConfig) -> ImageConfig:
    """The config a stage starts from: the base's child (see `ImageConfig.child`), without its
    ONBUILD triggers (they run in this build; no child inherits them), and with Docker's
    default PATH appended to Env when the base has none (FROM scratch, imported bases) —
    Docker's ``setDefaultPath``, so that ``ENV PATH=/x:$PATH`` and RUN see what they see under
    Docker."""
    config = base.config
    env = config.env
    if not any(entry.partition("=")[0] == "PATH" for entry in env):
        env = (*env, f"PATH={DEFAULT_PATH}")
    return replace(base.child(), config=replace(config, on_build=(), env=env))


def nop(shell: tuple[str, ...], text: str) -> str:
    """Docker's history text of a metadata step: ``/bin/sh -c #(nop)  TEXT``.

    Two spaces after ``#(nop)`` except for WORKDIR, which Docker's builder commits through
    another path (``withCmdCommentString``) that writes one.
    """
    marker = "#(nop)" if text.startswith("WORKDIR ") else "#(nop) "
    return " ".join((*shell, marker, text))


def go_list(values: tuple[str, ...] | list[str]) -> str:
    """Go's ``%q`` of a []string: ``["node" "app.js"]``."""
    from strata.gofmt import go_quote

    return "[" + " ".join(go_quote(v) for v in values) + "]"


def _command(state: StageState, command: tuple[str, ...], shell_form: bool) -> tuple[str, ...]:
    return (*state.shell, command[0]) if shell_form else command


def apply_metadata(state: StageState, step: Instruction) -> tuple[ImageConfig, str]:
    """The config after the metadata instruction ``step`` and its history text (``#(nop)``)."""
    config = state.config.config
    shell = state.shell
    new: Any = config
    if isinstance(step, Env):
        current = state.parsed_env()
        added: dict[str, str] = {}
        pairs = []
        for key, raw in step.pairs:
            name, value = state.expand(key), state.expand(raw)
            added[name] = value
            pairs.append(f"{name}={value}")
        if state.env_is_normal() and not any(name in current for name in added):
            # New names only: Env is the old one with them appended (no O(N) rebuild).
            env = (*config.env, *(f"{k}={v}" for k, v in added.items()))
        else:
            merged = {**current, **added}
            env = tuple(f"{k}={v}" for k, v in merged.items())
        new = replace(config, env=env)
        text = "ENV " + " ".join(pairs)
    elif isinstance(step, Label):
        labels = dict(config.labels)
        pairs = []
        for key, raw in step.pairs:
            name, value = state.expand(key), state.expand(raw)
            labels[name] = value
            pairs.append(f"{name}={value}")
        new = replace(config, labels=labels)
        text = "LABEL " + " ".join(pairs)
    elif isinstance(step, Cmd):
        cmd = _command(state, step.command, step.shell_form)
        new = replace(config, cmd=cmd)
        state.cmd_set = True
        text = f"CMD {go_list(cmd)}"
    elif isinstance(step, Entrypoint):
        entry = _command(state, step.command, step.shell_form) if step.command else None
        # A new ENTRYPOINT drops the CMD unless this stage set one (Docker's ``cmdSet``).
        new = replace(config, entrypoint=entry, cmd=config.cmd if state.cmd_set else None)
        text = f"ENTRYPOINT {go_list(entry or ())}"
    elif isinstance(step, Workdir):
        path = state.expand(step.path)
        if not path.startswith("/"):
            base = config.working_dir or "/"
            path = base.rstrip("/") + "/" + path
        new = replace(config, working_dir=path)
        text = f"WORKDIR {path}"
    elif isinstance(step, User):
        user = state.expand(step.user)
        new = replace(config, user=user)
        text = f"USER {user}"
    elif isinstance(step, Expose):
        ports = []
        for raw in step.ports:
            for port in state.expand_words(raw):
                ports.append(port if "/" in port else f"{port}/tcp")
        new = replace(config, exposed_ports=tuple(sorted({*config.exposed_ports, *ports})))
        text = "EXPOSE " + " ".join(state.expand(p) for p in step.ports)
    elif isinstance(step, Volume):
        paths = [state.expand(p) for p in step.paths]
        if any(not p for p in paths):
            raise BuildError(f"{_where(step)}: VOLUME specified can not be an empty string")
        new = replace(config, volumes=tuple(sorted({*config.volumes, *paths})))
        text = "VOLUME [" + " ".join(paths) + "]"
    elif isinstance(step, Shell):
        new = replace(config, shell=step.shell)
        text = "SHELL [" + " ".join(step.shell) + "]"
        shell = step.shell  # Docker writes this step with the new shell
    elif isinstance(step, Stopsignal):
        sig = state.expand(step.signal)
        new = replace(config, stop_signal=sig)
        text = f"STOPSIGNAL {sig}"
    elif isinstance(step, Healthcheck):
        check = step.config()
        new = replace(config, healthcheck=check)
        text = healthcheck_text(check)
    elif isinstance(step, Onbuild):
        new = replace(config, on_build=(*config.on_build, step.expression))
        text = f"ONBUILD {step.expression}"
    elif isinstance(step, Maintainer):
        state.config = replace(state.config, author=step.maintainer)
        text = f"MAINTAINER {step.maintainer}"
    elif isinstance(step, Arg):
        parts = []
        for name, default in step.pairs:
            given = state.expand(default) if default is not None else None
            state.declared[name] = given
            parts.append(name if given is None else f"{name}={given}")
        text = "ARG " + " ".join(parts)
    else:  # pragma: no cover - the caller dispatches only metadata instructions
        raise BuildError(f"{_where(step)}: not a metadata instruction")
    return replace(state.config, config=new), nop(shell, text)


def _where(step: Instruction) -> str:
    return f"Dockerfile:{step.node.start_line}"

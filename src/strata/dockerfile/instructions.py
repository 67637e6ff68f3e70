"""Typed Dockerfile instructions: each `Node` checked and turned into its dataclass (defined in
`commands`, re-exported here), as BuildKit's ``instructions`` package does; build stages.

Words stay raw (``$VAR``, quotes): the builder expands them with the ARG and ENV values in force
when the step runs. Flags are checked here (unknown, repeated, missing value, bad boolean or
duration), so that a bad Dockerfile fails before anything is built, with ``FILE:LINE: reason``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from strata.dockerfile.ast import Dockerfile, Heredoc, Node
from strata.dockerfile.commands import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stage,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from strata.dockerfile.flags import FlagError, FlagKind, Flags, parse_duration, parse_flags
from strata.dockerfile.flags import suggest as _suggest
from strata.dockerfile.heredoc import GO_SPACE, HeredocError, parse_heredoc
from strata.errors import DockerfileError
from strata.gofmt import go_quote

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
    "parse_instruction",
    "parse_instructions",
    "parse_stages",
]


class _Invalid(Exception):
    """An instruction is refused; `parse_instruction` adds the file and line."""


def parse_instruction(node: Node, *, filename: str = "Dockerfile") -> Instruction:
    """The typed instruction of ``node``; `DockerfileError` ``FILE:LINE: reason`` if invalid."""
    try:
        return _parse(node)
    except (_Invalid, FlagError, HeredocError) as err:
        raise DockerfileError(f"{filename}:{node.start_line}: {err}") from None


def parse_instructions(df: Dockerfile) -> tuple[Instruction, ...]:
    """Every instruction of ``df``, typed, in order."""
    return tuple(parse_instruction(node, filename=df.filename) for node in df.nodes)


def parse_stages(df: Dockerfile) -> tuple[tuple[Arg, ...], tuple[Stage, ...]]:
    """The ARGs before the first FROM (meta args), then the build stages in order."""
    meta: list[Arg] = []
    stages: list[tuple[From, list[Instruction]]] = []
    names: set[str] = set()
    for node in df.nodes:
        instruction = parse_instruction(node, filename=df.filename)
        if isinstance(instruction, From):
            name = instruction.stage_name
            if name is not None:
                if name in names:
                    raise DockerfileError(
                        f"{df.filename}:{node.start_line}: duplicate stage name {go_quote(name)}"
                    )
                names.add(name)
            stages.append((instruction, []))
        elif not stages:
            if not isinstance(instruction, Arg):
                raise DockerfileError(
                    f"{df.filename}:{node.start_line}: no build stage in current context"
                )
            meta.append(instruction)
        else:
            stages[-1][1].append(instruction)
    if not stages:
        raise DockerfileError(f"{df.filename}: dockerfile contains no stages to build")
    return tuple(meta), tuple(
        Stage(index, base, tuple(body)) for index, (base, body) in enumerate(stages)
    )


# -- one instruction at a time ---------------------------------------------------------------

_NO_FLAGS: Mapping[str, FlagKind] = {}
_RUN_FLAGS: Mapping[str, FlagKind] = {
    "mount": "strings",
    "network": "string",
    "security": "string",
    "device": "strings",
}
_COPY_FLAGS: Mapping[str, FlagKind] = {
    "chown": "string",
    "from": "string",
    "chmod": "string",
    "link": "bool",
    "exclude": "strings",
    "parents": "bool",
}
_ADD_FLAGS: Mapping[str, FlagKind] = {
    "chown": "string",
    "chmod": "string",
    "link": "bool",
    "keep-git-dir": "bool",
    "checksum": "string",
    "unpack": "bool",
    "exclude": "strings",
}
_HEALTH_FLAGS: Mapping[str, FlagKind] = {
    "interval": "string",
    "timeout": "string",
    "start-period": "string",
    "start-interval": "string",
    "retries": "string",
}
_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*\Z")
_ONBUILD_PREFIX = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)
_RETRIES = re.compile(r"[+-]?[0-9]+\Z")
_INSTRUCTIONS = (
    *("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK"),
    *("LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME"),
    "WORKDIR",
)


def _flags(node: Node, kinds: Mapping[str, FlagKind] = _NO_FLAGS) -> Flags:
    return parse_flags(node.flags, kinds)


def _exactly_one(node: Node, keyword: str) -> str:
    if len(node.args) != 1:
        raise _Invalid(f"{keyword} requires exactly one argument")
    _flags(node)
    return node.args[0]


def _at_least_one(node: Node, keyword: str) -> None:
    if not node.args:
        raise _Invalid(f"{keyword} requires at least one argument")


def _command(node: Node) -> tuple[str, ...]:
    """BuildKit's handleJSONArgs: the exec array, or the shell form as one string."""
    if not node.args:
        return ()
    return node.args if node.json_form else (" ".join(node.args),)


def _pairs(node: Node, keyword: str) -> tuple[tuple[str, str], ...]:
    _flags(node)
    args = node.args
    if not args:
        raise _Invalid(f"{keyword} requires at least one argument")
    if len(args) % 3:
        raise _Invalid(f"Bad input to {keyword}, too many arguments")
    pairs = []
    for i in range(0, len(args), 3):
        if not args[i]:
            raise _Invalid(f"{keyword} names can not be blank")
        pairs.append((args[i], args[i + 1]))
    return tuple(pairs)


def _sources(node: Node, keyword: str) -> tuple[tuple[str, ...], str, tuple[Heredoc, ...]]:
    dest = node.args[-1]
    if parse_heredoc(dest) is not None:
        raise _Invalid(f"{keyword} cannot accept a heredoc as a destination")
    bodies = {doc.name: doc.content for doc in node.heredocs}
    paths: list[str] = []
    docs: list[Heredoc] = []
    for source in node.args[:-1]:
        doc = None if node.json_form else parse_heredoc(source)
        if doc is None:
            paths.append(source)
        else:
            docs.append(Heredoc(doc.name, bodies.get(doc.name, ""), doc.expand, doc.chomp))
    return tuple(paths), dest, tuple(docs)


def _interval(flags: Flags, name: str) -> int:
    text = flags.string(name)
    if not text:
        return 0
    ns = parse_duration(text)
    if ns != 0 and ns < 1_000_000:
        raise _Invalid(f'Interval "{name}" cannot be less than 1ms')
    return ns


def _healthcheck(node: Node) -> Healthcheck:
    if not node.args:
        raise _Invalid("HEALTHCHECK requires at least one argument")
    kind = node.args[0].upper()
    rest = node.args[1:]
    flags = _flags(node, _HEALTH_FLAGS)
    if kind == "NONE":
        if rest:
            raise _Invalid("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(node, ("NONE",))
    if kind != "CMD":
        raise _Invalid(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    command = rest if node.json_form else ((" ".join(rest),) if rest else ())
    if not command:
        raise _Invalid("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *command) if node.json_form else ("CMD-SHELL", *command)
    retries = 0
    text = flags.string("retries")
    if text:
        if not _RETRIES.match(text):
            raise _Invalid(f'strconv.ParseInt: parsing "{text}": invalid syntax')
        retries = int(text)
        if not -(2**31) <= retries < 2**31:
            raise _Invalid(f'strconv.ParseInt: parsing "{text}": value out of range')
        if retries < 0:
            raise _Invalid(f"--retries cannot be negative ({retries})")
    return Healthcheck(
        node,
        test,
        interval=_interval(flags, "interval"),
        timeout=_interval(flags, "timeout"),
        start_period=_interval(flags, "start-period"),
        start_interval=_interval(flags, "start-interval"),
        retries=retries,
    )


def _run(node: Node) -> Run:
    flags = _flags(node, _RUN_FLAGS)
    command = _command(node)
    if not command:
        raise _Invalid("RUN requires at least one argument")
    network = flags.string("network") or "default"
    if network not in ("default", "none", "host"):
        raise _Invalid(f"invalid network mode {go_quote(network)}")
    security = flags.string("security") or "sandbox"
    if security not in ("sandbox", "insecure"):
        raise _Invalid(f"security {go_quote(security)} is not valid")
    mounts = flags.strings("mount")
    for mount in mounts:
        _check_mount(mount)
    return Run(
        node,
        command,
        shell_form=not node.json_form,
        heredocs=node.heredocs,
        mounts=mounts,
        network=network,
        security=security,
        devices=flags.strings("device"),
    )


def _check_mount(mount: str) -> None:
    # Without the build's variables only the CSV syntax and ``from`` can be checked now (as in
    # BuildKit); the builder parses the rest after expansion.
    import csv  # only Dockerfiles with --mount pay for it

    try:
        fields = next(csv.reader([mount]), [])
    except csv.Error as err:
        raise _Invalid(f"failed to parse csv mounts: {err}") from None
    for item in fields:
        key, _, value = item.partition("=")
        dollar = value.find("$")
        if key.lower() == "from" and dollar != -1 and dollar != len(value) - 1:
            raise _Invalid("'from' doesn't support variable expansion, define alias stage instead")


def _from(node: Node) -> From:
    args = node.args
    name: str | None = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise _Invalid(
                f"invalid name for build stage: {go_quote(args[2])}, "
                "name can't start with a number or contain symbols"
            )
    elif len(args) != 1:
        raise _Invalid("FROM requires either one or three arguments")
    flags = _flags(node, {"platform": "string"})
    return From(node, args[0], name, flags.string("platform") or None)


def _onbuild(node: Node) -> Onbuild:
    trigger = node.nested
    if trigger is None:
        raise _Invalid("ONBUILD requires at least one argument")
    _flags(node)
    keyword = trigger.value.upper()
    if keyword == "ONBUILD":
        raise _Invalid("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if keyword in ("MAINTAINER", "FROM"):
        raise _Invalid(f"{keyword} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX.sub("", node.original, count=1)
    for doc in node.heredocs:
        expression += "\n" + doc.content + doc.name
    return Onbuild(node, expression, _parse(trigger))


def _arg(node: Node) -> Arg:
    if not node.args:
        raise _Invalid("ARG requires at least one argument")
    _flags(node)
    pairs: list[tuple[str, str | None]] = []
    for word in node.args:
        name, sep, default = word.partition("=")
        if sep and not name:
            raise _Invalid("ARG names can not be blank")
        pairs.append((name, default if sep else None))
    return Arg(node, tuple(pairs))


def _volume(node: Node) -> Volume:
    _at_least_one(node, "VOLUME")
    _flags(node)
    paths = tuple(path.strip(GO_SPACE) for path in node.args)
    if not all(paths):
        raise _Invalid("VOLUME specified can not be an empty string")
    return Volume(node, paths)


def _shell(node: Node) -> Shell:
    _flags(node)
    if not node.args:
        raise _Invalid("SHELL requires at least one argument")
    if not node.json_form:
        raise _Invalid("SHELL requires the arguments to be in JSON form")
    return Shell(node, node.args)


def _parse(node: Node) -> Instruction:
    value = node.value
    if value == "run":
        return _run(node)
    if value in ("copy", "add"):
        keyword = value.upper()
        if len(node.args) < 2:
            raise _Invalid(
                f"{keyword} requires at least two arguments, but only one was provided. "
                "Destination could not be determined"
            )
        if value == "add":
            flags = _flags(node, _ADD_FLAGS)
            sources, dest, docs = _sources(node, keyword)
            return Add(
                node,
                sources,
                dest,
                chown=flags.string("chown") or None,
                chmod=flags.string("chmod") or None,
                link=flags.boolean("link"),
                exclude=flags.strings("exclude"),
                heredocs=docs,
                checksum=flags.string("checksum") or None,
                keep_git_dir=flags.boolean("keep-git-dir") if flags.used("keep-git-dir") else None,
                unpack=flags.boolean("unpack") if flags.used("unpack") else None,
            )
        flags = _flags(node, _COPY_FLAGS)
        sources, dest, docs = _sources(node, keyword)
        return Copy(
            node,
            sources,
            dest,
            from_stage=flags.string("from") or None,
            chown=flags.string("chown") or None,
            chmod=flags.string("chmod") or None,
            link=flags.boolean("link"),
            parents=flags.boolean("parents"),
            exclude=flags.strings("exclude"),
            heredocs=docs,
        )
    if value == "from":
        return _from(node)
    if value in ("cmd", "entrypoint"):
        _flags(node)
        kind = Cmd if value == "cmd" else Entrypoint
        return kind(node, _command(node), shell_form=not node.json_form)
    if value == "env":
        return Env(node, _pairs(node, "ENV"))
    if value == "label":
        return Label(node, _pairs(node, "LABEL"))
    if value == "arg":
        return _arg(node)
    if value == "workdir":
        return Workdir(node, _exactly_one(node, "WORKDIR"))
    if value == "user":
        return User(node, _exactly_one(node, "USER"))
    if value == "stopsignal":
        return Stopsignal(node, _exactly_one(node, "STOPSIGNAL"))
    if value == "maintainer":
        return Maintainer(node, _exactly_one(node, "MAINTAINER"))
    if value == "expose":
        _at_least_one(node, "EXPOSE")
        _flags(node)
        return Expose(node, tuple(sorted(node.args)))
    if value == "volume":
        return _volume(node)
    if value == "shell":
        return _shell(node)
    if value == "healthcheck":
        return _healthcheck(node)
    if value == "onbuild":
        return _onbuild(node)
    message = f"unknown instruction: {node.keyword}"
    match = _suggest(node.keyword, _INSTRUCTIONS, case_sensitive=False)
    raise _Invalid(f"{message} (did you mean {match}?)" if match else message)

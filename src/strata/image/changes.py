"""Dockerfile-syntax config changes (``import -c``, ``commit -c``), applied to an image config.

Docker accepts these instructions in ``--change``: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
USER, VOLUME, WORKDIR. Values are expanded against the image's environment the way the Dockerfile
dispatcher does for ENV, LABEL, EXPOSE, USER, VOLUME and WORKDIR (not for CMD/ENTRYPOINT, which
the shell expands at run time).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace

from strata.errors import InvalidArgument
from strata.oci.config import ContainerConfig, ImageConfig

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def apply_changes(config: ImageConfig, changes: Iterable[str]) -> ImageConfig:
    """Return ``config`` with every change applied in order; `InvalidArgument` on a bad one."""
    container = config.config
    for change in changes:
        container = apply_change(container, change)
    return replace(config, config=container)


def apply_change(container: ContainerConfig, change: str) -> ContainerConfig:
    keyword, _, rest = change.strip().partition(" ")
    if not keyword:
        raise InvalidArgument(f"invalid change {change!r}: empty")
    instruction = keyword.upper()
    rest = rest.strip()
    if instruction not in ALLOWED:
        raise InvalidArgument(
            f"invalid change {change!r}: {keyword} is not a valid change command"
            f" (use one of {', '.join(ALLOWED)})"
        )
    if not rest:
        raise InvalidArgument(f"invalid change {change!r}: {instruction} requires an argument")
    env = _env_map(container.env)
    if instruction in ("CMD", "ENTRYPOINT"):
        command = _command(rest)
        if instruction == "CMD":
            return replace(container, cmd=command)
        # A new ENTRYPOINT resets CMD, as in a Dockerfile.
        return replace(container, entrypoint=command, cmd=None)
    if instruction == "ENV":
        pairs = _pairs(rest, change, allow_legacy=True, env=env)
        merged = dict(env)
        for key, value in pairs:
            merged[key] = value
        order = [k for k in env] + [k for k, _ in pairs if k not in env]
        return replace(container, env=tuple(f"{k}={merged[k]}" for k in dict.fromkeys(order)))
    if instruction == "LABEL":
        labels = dict(container.labels)
        labels.update(_pairs(rest, change, allow_legacy=True, env=env))
        return replace(container, labels=labels)
    if instruction == "EXPOSE":
        ports = list(container.exposed_ports)
        for word in _words(_expand(rest, env), change):
            for port in _ports(word, change):
                if port not in ports:
                    ports.append(port)
        return replace(container, exposed_ports=tuple(ports))
    if instruction == "USER":
        return replace(container, user=_expand(rest, env))
    if instruction == "WORKDIR":
        path = _expand(rest, env)
        base = container.working_dir or "/"
        return replace(container, working_dir=posixpath.normpath(posixpath.join(base, path)))
    if instruction == "VOLUME":
        volumes = list(container.volumes)
        for volume in _list_or_words(_expand(rest, env), change):
            if not volume:
                raise InvalidArgument(
                    f"invalid change {change!r}: VOLUME specified can not be empty"
                )
            if volume not in volumes:
                volumes.append(volume)
        return replace(container, volumes=tuple(volumes))
    # ONBUILD: stored as written, run when the image is used as a base.
    trigger = rest.split(None, 1)[0].upper()
    if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
        raise InvalidArgument(
            f"invalid change {change!r}: {trigger} isn't allowed as an ONBUILD trigger"
        )
    return replace(container, on_build=(*container.on_build, rest))


def _json_strings(rest: str) -> list[str] | None:
    """``rest`` as a JSON array of strings (Dockerfile exec form), or None if it is not one."""
    if not rest.startswith("["):
        return None
    try:
        parsed = json.loads(rest)
    except ValueError:
        return None
    if isinstance(parsed, list) and all(isinstance(a, str) for a in parsed):
        return parsed
    return None


def _command(rest: str) -> tuple[str, ...]:
    """Exec form if ``rest`` is a JSON array of strings, else shell form under /bin/sh -c."""
    exec_form = _json_strings(rest)
    return tuple(exec_form) if exec_form is not None else ("/bin/sh", "-c", rest)


def _env_map(env: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in env:
        key, _, value = entry.partition("=")
        out[key] = value
    return out


def _expand(text: str, env: Mapping[str, str]) -> str:
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), text)


def _words(text: str, change: str) -> list[str]:
    """Split on unquoted whitespace, removing quotes and backslash escapes (Dockerfile rules)."""
    words: list[str] = []
    current: list[str] = []
    in_word = False
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"' and i + 1 < len(text):
                i += 1
                current.append(text[i])
            else:
                current.append(ch)
        elif ch in "\"'":
            quote = ch
            in_word = True
        elif ch == "\\" and i + 1 < len(text):
            i += 1
            current.append(text[i])
            in_word = True
        elif ch.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(ch)
            in_word = True
        i += 1
    if quote:
        raise InvalidArgument(f"invalid change {change!r}: unterminated quote")
    if in_word:
        words.append("".join(current))
    return words


def _pairs(
    rest: str, change: str, *, allow_legacy: bool, env: Mapping[str, str]
) -> list[tuple[str, str]]:
    first = rest.split(None, 1)[0]
    if "=" not in first and allow_legacy:
        # Legacy form: ``ENV KEY value with spaces``.
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise InvalidArgument(f"invalid change {change!r}: {first} needs a value")
        return [(parts[0], _expand(parts[1].strip(), env))]
    pairs: list[tuple[str, str]] = []
    for word in _words(rest, change):
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid change {change!r}: {word!r} is not KEY=VALUE")
        pairs.append((key, _expand(value, env)))
    return pairs


def _ports(word: str, change: str) -> list[str]:
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


def _list_or_words(rest: str, change: str) -> list[str]:
    listed = _json_strings(rest)
    return listed if listed is not None else _words(rest, change)
